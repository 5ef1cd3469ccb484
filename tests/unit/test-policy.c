/* SPDX-License-Identifier: MIT */
/*
 * The project's policy data (data/policy.json, its own format, written from
 * the PEPs) against auditwheel's policy files (reference/ in the corpus,
 * tools/corpus), read with jansson at test time and never
 * copied. For every policy both know: aliases, order (auditwheel's
 * priority), the library whitelist, the arches, per arch and prefix the
 * highest numeric symbol version (compared with the test's own version
 * comparison) and the named versions, and the blacklists. Every difference
 * is collected and printed ("# DIFF ...") before the test fails, so one run
 * lists all of them.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/policy.h"
#include "testlib.h"

static struct strlist diffs, notes;

#define DIFF(...)                                \
	do {                                     \
		char *m_ = kwt_fmt(__VA_ARGS__); \
		sl_add(&diffs, m_);              \
		free(m_);                        \
	} while (0)

static void report(const char *what)
{
	size_t i;

	for (i = 0; i < notes.n; i++) {
		fprintf(stderr, "# note (%s): %s\n", what, notes.v[i]);
	}
	for (i = 0; i < diffs.n; i++) {
		fprintf(stderr, "# DIFF (%s): %s\n", what, diffs.v[i]);
	}
	ck_assert_msg(diffs.n == 0, "%s: %zu differences from the reference (all printed on stderr), first: %s", what,
		      diffs.n, diffs.v ? diffs.v[0] : "");
	sl_free(&diffs);
	sl_free(&notes);
}

static json_t *load_reference(const char *file)
{
	char *path = kwt_fmt("%s/reference/%s", kwt_corpus(), file);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);

	ck_assert_msg(j != NULL, "cannot read %s: %s", path, je.text);
	ck_assert(json_is_array(j));
	free(path);
	return j;
}

/* The test's own comparison of dotted numbers: "2.17" > "2.5", "3.4.30" > "3.4.9". */
static int vcmp(const char *a, const char *b)
{
	while (*a || *b) {
		unsigned long x = strtoul(a, (char **)&a, 10), y = strtoul(b, (char **)&b, 10);

		if (x != y) {
			return x < y ? -1 : 1;
		}
		if (*a == '.') {
			a++;
		}
		if (*b == '.') {
			b++;
		}
		if (!*a != !*b) {
			return *a ? 1 : -1;
		}
	}
	return 0;
}

static bool numeric(const char *s)
{
	return isdigit((unsigned char)*s) && strspn(s, "0123456789.") == strlen(s);
}

/* The highest numeric version of a list, or NULL. */
static const char *max_version(json_t *list)
{
	const char *best = NULL;
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);

		if (s && numeric(s) && (!best || vcmp(s, best) > 0)) {
			best = s;
		}
	}
	return best;
}

/* "2.17" -> "2.18", "3.4.19" -> "3.4.20": the next version up (new string). */
static char *next_version(const char *v)
{
	const char *dot = strrchr(v, '.');
	const char *last = dot ? dot + 1 : v;

	return kwt_fmt("%.*s%lu", (int)(last - v), v, strtoul(last, NULL, 10) + 1);
}

static const struct kw_policy_symver *find_symver(const struct kw_policy_arch *pa, const char *prefix)
{
	size_t q;

	for (q = 0; q < pa->n_symvers; q++) {
		if (strcmp(pa->symvers[q].prefix, prefix) == 0) {
			return &pa->symvers[q];
		}
	}
	return NULL;
}

static void compare_arch(const struct kw_policy *mine, const char *name, const char *arch, json_t *ref_prefixes)
{
	const struct kw_policy_arch *pa = kw_policy_arch(mine, arch);
	const char *prefix;
	json_t *list;
	size_t k;

	ck_assert_ptr_nonnull(pa);
	ck_assert_str_eq(pa->arch, arch);
	/* kwheel governs exactly the reference's prefixes */
	for (k = 0; k < pa->n_symvers; k++) {
		if (!json_object_get(ref_prefixes, pa->symvers[k].prefix)) {
			DIFF("%s/%s: kwheel governs prefix %s (max %s), the reference does not", name, arch,
			     pa->symvers[k].prefix, pa->symvers[k].max ? pa->symvers[k].max : "none");
		}
	}
	json_object_foreach(ref_prefixes, prefix, list) {
		const struct kw_policy_symver *sv = find_symver(pa, prefix);
		const char *want = max_version(list), *got;
		size_t e;
		json_t *ver;

		if (!sv) {
			DIFF("%s/%s: prefix %s missing (reference max %s)", name, arch, prefix, want ? want : "none");
			continue;
		}
		got = sv->max;
		if (!want && got) {
			DIFF("%s/%s: %s max %s, the reference allows no %s version", name, arch, prefix, got, prefix);
		} else if (want && !got) {
			DIFF("%s/%s: %s allows nothing, reference max %s", name, arch, prefix, want);
		} else if (want && vcmp(got, want) != 0) {
			/*
			 * PEP 600 puts the GLIBC ceiling at the policy's own glibc version;
			 * where that glibc added no symbol version on an arch, the
			 * reference's highest listed version is lower. Same verdict for any
			 * real object (no version in between exists), so a note, not a
			 * difference; anything else is a difference.
			 */
			char *ceiling = kwt_fmt("%d.%d", mine->major, mine->minor);

			if (strcmp(prefix, "GLIBC") == 0 && strcmp(got, ceiling) == 0 && vcmp(want, got) < 0) {
				char *n = kwt_fmt("%s/%s: GLIBC max %s (PEP 600 ceiling), reference's highest listed %s", name,
						  arch, got, want);

				sl_add(&notes, n);
				free(n);
			} else {
				DIFF("%s/%s: %s max %s, reference max %s", name, arch, prefix, got, want);
			}
			free(ceiling);
		}
		/* every version the reference lists is allowed, numeric or named */
		json_array_foreach(list, e, ver) {
			char *full = kwt_fmt("%s_%s", prefix, json_string_value(ver));

			if (!kw_policy_allows_version(mine, arch, full)) {
				DIFF("%s/%s: %s refused, the reference allows it", name, arch, full);
			}
			free(full);
		}
		/* the boundary, through the public question */
		if (got && want && vcmp(got, want) == 0) {
			char *up = next_version(want), *above = kwt_fmt("%s_%s", prefix, up), *above2 = kwt_fmt("%s_%s.1", prefix, want);

			if (kw_policy_allows_version(mine, arch, above)) {
				DIFF("%s/%s: %s allowed, above the reference's %s", name, arch, above, want);
			}
			if (kw_policy_allows_version(mine, arch, above2)) {
				DIFF("%s/%s: %s allowed, above the reference's %s", name, arch, above2, want);
			}
			free(up), free(above), free(above2);
		}
		if (!want) {
			char *any = kwt_fmt("%s_1.0", prefix);

			if (kw_policy_allows_version(mine, arch, any)) {
				DIFF("%s/%s: %s allowed, the reference allows no %s version", name, arch, any, prefix);
			}
			free(any);
		}
		/* named versions of this prefix: kwheel's are the reference's */
		for (k = 0; k < pa->n_named; k++) {
			size_t pl = strlen(prefix);
			bool listed = false;

			if (strncmp(pa->named[k], prefix, pl) != 0 || pa->named[k][pl] != '_') {
				continue;
			}
			json_array_foreach(list, e, ver) {
				listed |= strcmp(json_string_value(ver), pa->named[k] + pl + 1) == 0;
			}
			if (!listed) {
				DIFF("%s/%s: kwheel allows named version %s, the reference does not list it", name, arch,
				     pa->named[k]);
			}
		}
		/* a private version of a governed prefix is never allowed */
		{
			char *priv = kwt_fmt("%s_PRIVATE", prefix);

			if (kw_policy_allows_version(mine, arch, priv)) {
				DIFF("%s/%s: %s allowed", name, arch, priv);
			}
			free(priv);
		}
	}
	/* a library's own versions are not governed */
	ck_assert(kw_policy_allows_version(mine, arch, "OPENSSL_3.0.0"));
	ck_assert(kw_policy_allows_version(mine, arch, "NOUNDERSCORE"));
}

static void compare(const struct kw_policy_set *set, json_t *ref, enum kw_policy_family family, size_t *n_compared)
{
	size_t i, k, last_index = 0;
	long last_priority = -1;
	const char *last_name = NULL;
	json_t *p;

	json_array_foreach(ref, i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));
		const struct kw_policy *mine;
		json_t *libs = json_object_get(p, "lib_whitelist"), *bl = json_object_get(p, "blacklist"),
		       *sv = json_object_get(p, "symbol_versions"), *aliases = json_object_get(p, "aliases"), *v;
		long priority = (long)json_integer_value(json_object_get(p, "priority"));
		const char *key;
		size_t index;

		ck_assert_ptr_nonnull(name);
		if (strcmp(name, "linux") == 0) {
			continue;
		}
		mine = kw_policy_find(set, name);
		if (!mine) {
			DIFF("policy %s missing", name);
			continue;
		}
		(*n_compared)++;
		if (strcmp(mine->name, name) != 0) {
			DIFF("%s found as %s", name, mine->name);
		}
		if (mine->family != family) {
			DIFF("%s: family %d", name, (int)mine->family);
		}
		/* the version in the name */
		{
			char *want = kwt_fmt("%s_%d_%d", family == KW_POLICY_MANYLINUX ? "manylinux" : "musllinux", mine->major,
					     mine->minor);

			if (strcmp(want, name) != 0) {
				DIFF("%s: version %d.%d", name, mine->major, mine->minor);
			}
			free(want);
		}
		/* order: the reference's priority falls as kwheel's list goes on (oldest, most compatible first) */
		index = (size_t)(mine - set->policies);
		if (last_name) {
			if ((index > last_index) != (priority < last_priority)) {
				DIFF("order: %s (priority %ld) and %s (priority %ld) are the other way round in kwheel", last_name,
				     last_priority, name, priority);
			}
		}
		last_name = name, last_index = index, last_priority = priority;

		/* aliases, both ways, with and without an arch suffix */
		json_array_foreach(aliases, k, v) {
			const char *a = json_string_value(v);
			bool have = false;
			size_t q;

			for (q = 0; q < mine->n_aliases; q++) {
				have |= strcmp(mine->aliases[q], a) == 0;
			}
			if (!have) {
				DIFF("%s: alias %s missing", name, a);
			}
			if (kw_policy_find(set, a) != mine) {
				DIFF("%s: kw_policy_find(%s) is not this policy", name, a);
			}
		}
		for (k = 0; k < mine->n_aliases; k++) {
			bool listed = false;
			size_t q;

			json_array_foreach(aliases, q, v) {
				listed |= strcmp(json_string_value(v), mine->aliases[k]) == 0;
			}
			if (!listed) {
				DIFF("%s: kwheel alias %s is not in the reference", name, mine->aliases[k]);
			}
		}
		ck_assert_ptr_null(mine->aliases ? mine->aliases[mine->n_aliases] : NULL);

		/* libraries, both ways */
		json_array_foreach(libs, k, v) {
			if (!kw_policy_allows_lib(mine, json_string_value(v))) {
				DIFF("%s: library %s not allowed, the reference allows it", name, json_string_value(v));
			}
		}
		for (k = 0; k < mine->n_libs; k++) {
			bool listed = false;
			size_t q;

			json_array_foreach(libs, q, v) {
				listed |= strcmp(json_string_value(v), mine->libs[k]) == 0;
			}
			if (!listed) {
				DIFF("%s: library %s allowed, the reference does not allow it", name, mine->libs[k]);
			}
		}
		if (kw_policy_allows_lib(mine, "libkwheel-surely-not.so.1")) {
			DIFF("%s: allows any library", name);
		}

		/* blacklists, both ways */
		json_object_foreach(bl, key, v) {
			size_t s, b;
			json_t *sym;
			const struct kw_policy_blacklist *mb = NULL;

			for (b = 0; b < mine->n_blacklist; b++) {
				if (strcmp(mine->blacklist[b].lib, key) == 0) {
					mb = &mine->blacklist[b];
				}
			}
			if (!mb) {
				if (json_array_size(v)) {
					DIFF("%s: no blacklist for %s (reference: %zu symbols)", name, key, json_array_size(v));
				}
				continue;
			}
			json_array_foreach(v, s, sym) {
				if (!kw_policy_blacklisted(mine, key, json_string_value(sym))) {
					DIFF("%s: %s from %s not blacklisted", name, json_string_value(sym), key);
				}
			}
			for (s = 0; s < mb->n_symbols; s++) {
				bool listed = false;
				size_t q;

				json_array_foreach(v, q, sym) {
					listed |= strcmp(json_string_value(sym), mb->symbols[s]) == 0;
				}
				if (!listed) {
					DIFF("%s: %s from %s blacklisted, the reference does not", name, mb->symbols[s], key);
				}
			}
			if (kw_policy_blacklisted(mine, key, "kwheel_surely_not_blacklisted")) {
				DIFF("%s: blacklists everything from %s", name, key);
			}
		}
		for (k = 0; k < mine->n_blacklist; k++) {
			if (!json_object_get(bl, mine->blacklist[k].lib)) {
				DIFF("%s: blacklist for %s (%zu symbols), the reference has none", name, mine->blacklist[k].lib,
				     mine->blacklist[k].n_symbols);
			}
		}

		/* arches, both ways, then each arch */
		for (k = 0; k < mine->n_arches; k++) {
			if (!json_object_get(sv, mine->arches[k].arch)) {
				DIFF("%s: kwheel has arch %s, the reference does not", name, mine->arches[k].arch);
			}
		}
		json_object_foreach(sv, key, v) {
			if (!kw_policy_arch(mine, key)) {
				DIFF("%s: arch %s missing", name, key);
				continue;
			}
			compare_arch(mine, name, key, v);
			/* lookups with the arch suffix, and the tag */
			{
				char *full = kwt_fmt("%s_%s", name, key), *tag = kw_policy_tag(mine, key);

				if (kw_policy_find(set, full) != mine) {
					DIFF("kw_policy_find(%s) is not %s", full, name);
				}
				ck_assert_str_eq(tag, full);
				free(tag);
				free(full);
			}
		}
		if (kw_policy_arch(mine, "sparc64") || kw_policy_arch(mine, NULL)) {
			DIFF("%s: answers for arch sparc64 or NULL", name);
		}
	}
	/* every kwheel policy of the family is in the reference */
	for (i = 0; i < set->n_policies; i++) {
		const struct kw_policy *mp = &set->policies[i];
		bool found = false;

		if (mp->family != family) {
			continue;
		}
		json_array_foreach(ref, k, p) {
			found |= strcmp(json_string_value(json_object_get(p, "name")), mp->name) == 0;
		}
		if (!found) {
			DIFF("kwheel policy %s is not in the reference", mp->name);
		}
	}
}

START_TEST(manylinux_matches_reference)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err = { 0 };
	json_t *ref = load_reference("manylinux-policy.json");
	size_t n = 0;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	compare(set, ref, KW_POLICY_MANYLINUX, &n);
	fprintf(stderr, "# policy: %zu manylinux policies compared with the reference\n", n);
	report("manylinux");
	ck_assert_uint_ge(n, 16); /* 2_5, 2_12, 2_17, 2_24 ... 2_41 */
	json_decref(ref);
	kw_policy_set_free(set);
}
END_TEST

START_TEST(musllinux_matches_reference)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err = { 0 };
	json_t *ref = load_reference("musllinux-policy.json");
	size_t n = 0;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	compare(set, ref, KW_POLICY_MUSLLINUX, &n);
	fprintf(stderr, "# policy: %zu musllinux policies compared with the reference\n", n);
	report("musllinux");
	ck_assert_uint_ge(n, 2);
	json_decref(ref);
	kw_policy_set_free(set);
}
END_TEST

START_TEST(lookups)
{
	struct kw_policy_set *set = NULL;
	struct kw_error err = { 0 };
	const struct kw_policy *p, *q;
	size_t i;
	char *tag;

	ck_assert_int_eq(kw_policy_set_load_default(&set, &err), 0);
	/* by name, by alias, with an arch suffix */
	p = kw_policy_find(set, "manylinux2014");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "manylinux_2_17");
	ck_assert_int_eq(p->family, KW_POLICY_MANYLINUX);
	ck_assert_int_eq(p->major, 2);
	ck_assert_int_eq(p->minor, 17);
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux_2_17"), p);
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux_2_17_x86_64"), p);
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux2014_aarch64"), p);
	ck_assert_ptr_eq(kw_policy_find(set, "manylinux_2_17_ppc64"), p);
	ck_assert_str_eq(kw_policy_find(set, "manylinux1")->name, "manylinux_2_5");
	ck_assert_str_eq(kw_policy_find(set, "manylinux1_i686")->name, "manylinux_2_5");
	ck_assert_str_eq(kw_policy_find(set, "manylinux2010_x86_64")->name, "manylinux_2_12");
	ck_assert_str_eq(kw_policy_find(set, "musllinux_1_2_aarch64")->name, "musllinux_1_2");
	ck_assert_int_eq(kw_policy_find(set, "musllinux_1_1")->family, KW_POLICY_MUSLLINUX);
	/* names that are not policies, arches a policy does not have, prefixes of names */
	{
		static const char *const none[] = {
			"", "manylinux", "manylinux_1_0", "manylinux_2_1", "manylinux_2_3", "manylinux_2_177",
			"manylinux_2_17_", "manylinux_2_17_sparc64", "manylinux_2_5_aarch64", "manylinux1_aarch64",
			"manylinux2014_x86", "musllinux_1_1_loongarch64", "musllinux_1_3", "MANYLINUX2014",
			"manylinux_2_17x86_64", "manylinux2014x",
		};

		for (i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
			ck_assert_msg(kw_policy_find(set, none[i]) == NULL, "'%s' found", none[i]);
		}
	}
	/* priority order: oldest (most compatible) first within a family, in glibc/musl order */
	for (i = 1; i < set->n_policies; i++) {
		const struct kw_policy *a = &set->policies[i - 1], *b = &set->policies[i];

		if (a->family == b->family) {
			ck_assert_msg(a->major < b->major || (a->major == b->major && a->minor < b->minor), "%s before %s",
				      a->name, b->name);
		}
	}
	q = kw_policy_find(set, "manylinux_2_28");
	ck_assert_ptr_nonnull(q);
	ck_assert(q > p);
	/* the arch table */
	ck_assert_ptr_nonnull(kw_policy_arch(p, "ppc64"));
	ck_assert_ptr_null(kw_policy_arch(q, "ppc64"));
	ck_assert_ptr_null(kw_policy_arch(kw_policy_find(set, "manylinux1"), "aarch64"));
	tag = kw_policy_tag(p, "x86_64");
	ck_assert_str_eq(tag, "manylinux_2_17_x86_64");
	free(tag);
	tag = kw_policy_tag(kw_policy_find(set, "musllinux_1_2"), "armv7l");
	ck_assert_str_eq(tag, "musllinux_1_2_armv7l");
	free(tag);

	/* versions */
	ck_assert(kw_policy_allows_version(p, "x86_64", "GLIBC_2.17"));
	ck_assert(kw_policy_allows_version(p, "x86_64", "GLIBC_2.2.5"));
	ck_assert(!kw_policy_allows_version(p, "x86_64", "GLIBC_2.18"));
	ck_assert(!kw_policy_allows_version(p, "x86_64", "GLIBC_2.17.1"));
	ck_assert(!kw_policy_allows_version(p, "x86_64", "GLIBC_PRIVATE"));
	ck_assert(!kw_policy_allows_version(p, "x86_64", "GLIBC_ABI_DT_RELR")); /* glibc 2.36 */
	ck_assert(kw_policy_allows_version(kw_policy_find(set, "manylinux_2_36"), "x86_64", "GLIBC_ABI_DT_RELR"));
	ck_assert(kw_policy_allows_version(p, "x86_64", "CXXABI_TM_1"));
	ck_assert(kw_policy_allows_version(p, "x86_64", "OPENSSL_3.0.0"));
	ck_assert(!kw_policy_allows_version(p, "sparc64", "GLIBC_2.2"));
	ck_assert(!kw_policy_allows_version(kw_policy_find(set, "manylinux1"), "x86_64", "GLIBC_2.6"));
	ck_assert(!kw_policy_allows_version(kw_policy_find(set, "manylinux1"), "x86_64", "LIBATOMIC_1.0"));

	/* libraries and blacklist */
	ck_assert(kw_policy_allows_lib(p, "libc.so.6"));
	ck_assert(kw_policy_allows_lib(p, "libgcc_s.so.1"));
	ck_assert(!kw_policy_allows_lib(p, "libssl.so.3"));
	ck_assert(!kw_policy_allows_lib(p, "libc.so"));
	ck_assert(kw_policy_allows_lib(kw_policy_find(set, "musllinux_1_2"), "libc.so"));
	ck_assert(!kw_policy_allows_lib(kw_policy_find(set, "musllinux_1_2"), "libc.so.6"));
	ck_assert(!kw_policy_blacklisted(p, "libc.so.6", "printf"));

	/* kw_version_cmp */
	ck_assert_int_lt(kw_version_cmp("2.5", "2.17"), 0);
	ck_assert_int_gt(kw_version_cmp("2.17", "2.5"), 0);
	ck_assert_int_gt(kw_version_cmp("3.4.30", "3.4.9"), 0);
	ck_assert_int_eq(kw_version_cmp("1.3", "1.3"), 0);
	ck_assert_int_lt(kw_version_cmp("1.3", "1.3.1"), 0);
	ck_assert_int_gt(kw_version_cmp("1.10", "1.9.9"), 0);
	ck_assert_int_lt(kw_version_cmp("2.17", "PRIVATE"), 0);
	ck_assert_int_eq(kw_version_cmp("", ""), 0);
	ck_assert_int_gt(kw_version_cmp("99999999999999999999", "1"), 0);
	kw_policy_set_free(set);
	kw_policy_set_free(NULL);
}
END_TEST

START_TEST(ctx_policy_is_loaded_once)
{
	struct kw_ctx *ctx;
	struct kw_error err = { 0 };
	const struct kw_policy_set *a = NULL, *b = NULL;

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(kw_ctx_policy(ctx, &a, &err), 0);
	ck_assert_int_eq(kw_ctx_policy(ctx, &b, &err), 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_nonnull(kw_policy_find(a, "manylinux2014"));
	kw_ctx_free(ctx);
}
END_TEST

static const char *const bad_json[] = {
	"",
	"[",
	"{}",
	"[]",
	"{\"format\": 2, \"policies\": [], \"lib_sets\": {}, \"symbol_sets\": {}}",
	"{\"format\": 1, \"policies\": 3, \"lib_sets\": {}, \"symbol_sets\": {}}",
	"{\"format\": 1, \"policies\": [], \"lib_sets\": [], \"symbol_sets\": {}}",
	"\xff\xfe",
	"{\"format\": 1, \"format\": 1, \"policies\": [], \"lib_sets\": {}, \"symbol_sets\": {}}",
	"{\"format\": 1, \"policies\": [3], \"lib_sets\": {}, \"symbol_sets\": {}}",
	/* unknown library set */
	"{\"format\": 1, \"lib_sets\": {}, \"symbol_sets\": {}, \"policies\": [{\"name\": \"manylinux_2_5\", "
	"\"aliases\": [], \"family\": \"manylinux\", \"version\": [2, 5], \"libs\": [\"nope\"], \"symvers\": [], "
	"\"blacklist\": {}}]}",
	/* an arch twice */
	"{\"format\": 1, \"lib_sets\": {\"s\": [\"libc.so.6\"]}, \"symbol_sets\": {}, \"policies\": [{\"name\": "
	"\"manylinux_2_5\", \"aliases\": [], \"family\": \"manylinux\", \"version\": [2, 5], \"libs\": [\"s\"], "
	"\"symvers\": [{\"arches\": [\"x86_64\"], \"max\": {}}, {\"arches\": [\"x86_64\"], \"max\": {}}], "
	"\"blacklist\": {}}]}",
	/* a max that is neither a string nor null */
	"{\"format\": 1, \"lib_sets\": {\"s\": [\"libc.so.6\"]}, \"symbol_sets\": {}, \"policies\": [{\"name\": "
	"\"manylinux_2_5\", \"aliases\": [], \"family\": \"manylinux\", \"version\": [2, 5], \"libs\": [\"s\"], "
	"\"symvers\": [{\"arches\": [\"x86_64\"], \"max\": {\"GLIBC\": 2.5}}], \"blacklist\": {}}]}",
	/* newer before older */
	"{\"format\": 1, \"lib_sets\": {\"s\": [\"libc.so.6\"]}, \"symbol_sets\": {}, \"policies\": ["
	"{\"name\": \"manylinux_2_17\", \"aliases\": [], \"family\": \"manylinux\", \"version\": [2, 17], \"libs\": [\"s\"], "
	"\"symvers\": [], \"blacklist\": {}}, "
	"{\"name\": \"manylinux_2_5\", \"aliases\": [], \"family\": \"manylinux\", \"version\": [2, 5], \"libs\": [\"s\"], "
	"\"symvers\": [], \"blacklist\": {}}]}",
};

START_TEST(bad_policy_json_is_an_error)
{
	struct kw_policy_set *set = (struct kw_policy_set *)&set;
	struct kw_error err = { 0 };
	int rc = kw_policy_set_load_json(bad_json[_i], strlen(bad_json[_i]), &set, &err);

	ck_assert_msg(rc < 0, "case %d accepted", _i);
	ck_assert_ptr_null(set);
	ck_assert(err.msg[0] != 0);
}
END_TEST

/* The smallest valid document, to show the bad ones fail for their own reason. */
START_TEST(minimal_policy_json)
{
	static const char ok[] =
		"{\"format\": 1, \"lib_sets\": {\"s\": [\"libc.so.6\", \"libm.so.6\"]}, \"symbol_sets\": {\"z\": [\"zz\"]}, "
		"\"policies\": [{\"name\": \"manylinux_2_5\", \"aliases\": [\"manylinux1\"], \"family\": \"manylinux\", "
		"\"version\": [2, 5], \"libs\": [\"s\"], \"symvers\": [{\"arches\": [\"x86_64\", \"i686\"], "
		"\"max\": {\"GLIBC\": \"2.5\", \"ZLIB\": null}}], \"blacklist\": {\"libz.so.1\": [\"z\"]}}]}";
	struct kw_policy_set *set = NULL;
	struct kw_error err = { 0 };
	const struct kw_policy *p;

	ck_assert_msg(kw_policy_set_load_json(ok, strlen(ok), &set, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(set->n_policies, 1);
	p = kw_policy_find(set, "manylinux1_i686");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->n_libs, 2);
	ck_assert(kw_policy_allows_version(p, "i686", "GLIBC_2.5"));
	ck_assert(!kw_policy_allows_version(p, "i686", "GLIBC_2.6"));
	ck_assert(!kw_policy_allows_version(p, "i686", "ZLIB_1.2.0"));
	ck_assert(kw_policy_blacklisted(p, "libz.so.1", "zz"));
	ck_assert(!kw_policy_blacklisted(p, "libc.so.6", "zz"));
	kw_policy_set_free(set);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, manylinux_matches_reference);
	tcase_add_test(tc, musllinux_matches_reference);
	tcase_add_test(tc, lookups);
	tcase_add_test(tc, ctx_policy_is_loaded_once);
	tcase_add_loop_test(tc, bad_policy_json_is_an_error, 0, (int)(sizeof(bad_json) / sizeof(bad_json[0])));
	tcase_add_test(tc, minimal_policy_json);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
