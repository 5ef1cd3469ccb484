/* SPDX-License-Identifier: MIT */
/*
 * The project's policy data (data/policy.json, written from the PEPs) against
 * auditwheel's policy files in ../shared/reference, read at test time: same
 * libraries, same blacklists, same highest symbol version per prefix and
 * architecture, for every policy both know.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/policy.h"
#include "testlib.h"

static json_t *load_reference(const char *file)
{
	char *path = kwt_fmt("%s/../reference/%s", kwt_corpus(), file);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);

	ck_assert_msg(j != NULL, "cannot read %s: %s", path, je.text);
	free(path);
	return j;
}

static bool numeric(const char *s)
{
	return *s && strspn(s, "0123456789.") == strlen(s);
}

/* The highest numeric version of a list; names like CXXABI's "TM_1" are another prefix to kwheel. */
static const char *max_version(json_t *list)
{
	const char *best = NULL;
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);

		if (numeric(s) && (!best || kw_version_cmp(s, best) > 0)) {
			best = s;
		}
	}
	return best;
}

static void compare(const struct kw_policy_set *set, json_t *ref, size_t *n_compared)
{
	size_t i, k;
	json_t *p;

	json_array_foreach(ref, i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));
		const struct kw_policy *mine;
		json_t *libs = json_object_get(p, "lib_whitelist"), *bl = json_object_get(p, "blacklist"),
		       *sv = json_object_get(p, "symbol_versions"), *v;
		const char *key;

		if (strcmp(name, "linux") == 0) {
			continue;
		}
		mine = kw_policy_find(set, name);
		ck_assert_msg(mine != NULL, "policy %s missing", name);
		(*n_compared)++;
		/* aliases */
		json_array_foreach(json_object_get(p, "aliases"), k, v) {
			ck_assert_msg(kw_policy_find(set, json_string_value(v)) == mine, "%s: alias %s", name,
				      json_string_value(v));
		}
		/* libraries, both ways */
		ck_assert_msg(json_array_size(libs) == mine->n_libs, "%s: %zu libraries, reference %zu", name,
			      mine->n_libs, json_array_size(libs));
		json_array_foreach(libs, k, v) {
			ck_assert_msg(kw_policy_allows_lib(mine, json_string_value(v)), "%s: %s not allowed", name,
				      json_string_value(v));
		}
		/* blacklists */
		json_object_foreach(bl, key, v) {
			size_t s;
			json_t *sym;

			json_array_foreach(v, s, sym) {
				ck_assert_msg(kw_policy_blacklisted(mine, key, json_string_value(sym)),
					      "%s: %s from %s not blacklisted", name, json_string_value(sym), key);
			}
			ck_assert_msg(!kw_policy_blacklisted(mine, key, "kwheel_surely_not_blacklisted"), "%s", name);
			for (s = 0; s < mine->n_blacklist; s++) {
				if (strcmp(mine->blacklist[s].lib, key) == 0) {
					ck_assert_msg(mine->blacklist[s].n_symbols == json_array_size(v),
						      "%s: %zu symbols blacklisted from %s, reference %zu", name,
						      mine->blacklist[s].n_symbols, key, json_array_size(v));
				}
			}
		}
		/* no blacklist the reference does not have */
		for (k = 0; k < mine->n_blacklist; k++) {
			ck_assert_msg(json_object_get(bl, mine->blacklist[k].lib) != NULL, "%s: extra blacklist for %s", name,
				      mine->blacklist[k].lib);
		}
		/* highest version per prefix and arch */
		json_object_foreach(sv, key, v) {
			const struct kw_policy_arch *pa = kw_policy_arch(mine, key);
			const char *prefix;
			json_t *list;

			ck_assert_msg(pa != NULL, "%s: arch %s missing", name, key);
			json_object_foreach(v, prefix, list) {
				const char *want = max_version(list);
				size_t e;
				json_t *ver;

				/* every version the reference lists is allowed, numeric or not */
				json_array_foreach(list, e, ver) {
					char *full = kwt_fmt("%s_%s", prefix, json_string_value(ver));

					ck_assert_msg(kw_policy_allows_version(mine, key, full), "%s/%s: %s refused", name, key, full);
					free(full);
				}
				const char *got = NULL;
				bool found = false;
				size_t q;

				for (q = 0; q < pa->n_symvers; q++) {
					if (strcmp(pa->symvers[q].prefix, prefix) == 0) {
						got = pa->symvers[q].max;
						found = true;
					}
				}
				ck_assert_msg(found, "%s/%s: prefix %s missing", name, key, prefix);
				if (!want) {
					ck_assert_msg(got == NULL, "%s/%s: %s should allow nothing, allows %s", name, key,
						      prefix, got);
				} else {
					/*
					 * PEP 600 puts the GLIBC ceiling at the policy's glibc version; where
					 * that glibc added no symbol version for an arch (2.37 on x86_64),
					 * the reference lists the last one that exists. Same verdicts.
					 */
					char *ceiling = kwt_fmt("%d.%d", mine->major, mine->minor);
					bool pep600 = strcmp(prefix, "GLIBC") == 0 && got && strcmp(got, ceiling) == 0 &&
						      kw_version_cmp(want, got) <= 0;

					free(ceiling);
					ck_assert_msg(got && (strcmp(got, want) == 0 || pep600), "%s/%s: %s max %s, reference %s",
						      name, key, prefix, got ? got : "(none)", want);
					if (pep600) {
						continue;
					}
					/* the boundary, through the public question */
					{
						char *at = kwt_fmt("%s_%s", prefix, want), *above = kwt_fmt("%s_%s.99", prefix, want);

						ck_assert(kw_policy_allows_version(mine, key, at));
						ck_assert_msg(!kw_policy_allows_version(mine, key, above), "%s allows %s", name, above);
						free(at);
						free(above);
					}
				}
			}
		}
	}
}

START_TEST(manylinux_matches_reference)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err;
	json_t *ref = load_reference("manylinux-policy.json");
	size_t n = 0;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	compare(set, ref, &n);
	ck_assert_uint_ge(n, 16); /* every policy the reference has: 2_5, 2_12, 2_17, 2_24 ... 2_41 */
	json_decref(ref);
	kw_policy_set_free(set);
}
END_TEST

START_TEST(musllinux_matches_reference)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err;
	json_t *ref = load_reference("musllinux-policy.json");
	size_t n = 0;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	compare(set, ref, &n);
	ck_assert_uint_ge(n, 2);
	json_decref(ref);
	kw_policy_set_free(set);
}
END_TEST

START_TEST(lookups_and_tags)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err;
	const struct kw_policy *p;
	char *tag;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	p = kw_policy_find(set, "manylinux2014");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "manylinux_2_17");
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux_2_17_x86_64"), p);
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux2014_aarch64"), p);
	ck_assert_ptr_null(kw_policy_find(set, "manylinux_1_0"));
	tag = kw_policy_tag(p, "x86_64");
	ck_assert_str_eq(tag, "manylinux_2_17_x86_64");
	free(tag);
	/* versions a policy does not govern are a library's own */
	ck_assert(kw_policy_allows_version(p, "x86_64", "OPENSSL_3.0.0"));
	ck_assert(!kw_policy_allows_version(p, "x86_64", "GLIBC_PRIVATE"));
	ck_assert_int_lt(kw_version_cmp("2.5", "2.17"), 0);
	ck_assert_int_gt(kw_version_cmp("3.4.30", "3.4.9"), 0);
	ck_assert_int_eq(kw_version_cmp("1.3", "1.3"), 0);
	kw_policy_set_free(set);
}
END_TEST

START_TEST(bad_policy_json_is_an_error)
{
	static const char *const bad[] = { "", "[", "{}", "{\"policies\": 3}", "\xff\xfe" };
	struct kw_policy_set *set = NULL;
	struct kw_error err;

	ck_assert_int_ne(kw_policy_set_load_json(bad[_i], strlen(bad[_i]), &set, &err), 0);
	ck_assert_ptr_null(set);
	ck_assert(err.msg[0] != 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, manylinux_matches_reference);
	tcase_add_test(tc, musllinux_matches_reference);
	tcase_add_test(tc, lookups_and_tags);
	tcase_add_loop_test(tc, bad_policy_json_is_an_error, 0, 5);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
