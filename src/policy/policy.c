/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/policy.h"
#include "kwheel/util.h"

extern const unsigned char kw_policy_data[];
extern const size_t kw_policy_data_len;

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

static void policy_release(struct kw_policy *p)
{
	size_t i, k;

	free(p->name);
	free_strv(p->aliases, p->n_aliases);
	free_strv(p->libs, p->n_libs);
	for (i = 0; i < p->n_arches; i++) {
		for (k = 0; k < p->arches[i].n_symvers; k++) {
			free(p->arches[i].symvers[k].prefix);
			free(p->arches[i].symvers[k].max);
		}
		for (k = 0; k < p->arches[i].n_named; k++) {
			free(p->arches[i].named[k]);
		}
		free(p->arches[i].named);
		free(p->arches[i].symvers);
		free(p->arches[i].arch);
	}
	free(p->arches);
	for (i = 0; i < p->n_blacklist; i++) {
		free(p->blacklist[i].lib);
		kw_strmap_release(&p->blacklist[i].index);
		free_strv(p->blacklist[i].symbols, p->blacklist[i].n_symbols);
	}
	free(p->blacklist);
}

void kw_policy_set_free(struct kw_policy_set *set)
{
	size_t i;

	if (!set) {
		return;
	}
	for (i = 0; i < set->n_policies; i++) {
		policy_release(&set->policies[i]);
	}
	free(set->policies);
	free(set);
}

/* Append the strings of a JSON array to an owned, NULL-terminated vector. */
static int add_strings(json_t *arr, char ***v, size_t *n, const char *where, struct kw_error *err)
{
	struct kw_strv sv = { 0 };
	size_t i;
	json_t *s;

	if (!json_is_array(arr)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: %s: expected an array", where);
	}
	sv.v = *v;
	sv.n = *n;
	sv.cap = *n;
	json_array_foreach(arr, i, s) {
		if (!json_is_string(s)) {
			*v = sv.v;
			*n = sv.n;
			return kw_error_set(err, KW_EFORMAT, "policy data: %s[%zu]: expected a string", where, i);
		}
		if (kw_strv_push_unique(&sv, json_string_value(s))) {
			*v = sv.v;
			*n = sv.n;
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	if (!sv.v) {
		/* Always a NULL-terminated vector, even when empty. */
		if (kw_grow(&sv.v, &sv.cap, 1, sizeof(*sv.v))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		sv.v[0] = NULL;
	}
	*v = sv.v;
	*n = sv.n;
	return 0;
}

/* The union of the named sets of a table (lib_sets or symbol_sets). */
static int add_named(json_t *table, json_t *names, char ***v, size_t *n, const char *where,
		     struct kw_error *err)
{
	size_t i;
	json_t *nm;
	char path[256];

	if (!json_is_array(names)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: %s: expected an array of set names", where);
	}
	json_array_foreach(names, i, nm) {
		json_t *set = json_is_string(nm) ? json_object_get(table, json_string_value(nm)) : NULL;
		int rc;

		if (!set) {
			return kw_error_set(err, KW_EFORMAT, "policy data: %s[%zu]: unknown set", where, i);
		}
		snprintf(path, sizeof(path), "set '%s'", json_string_value(nm));
		rc = add_strings(set, v, n, path, err);
		if (rc) {
			return rc;
		}
	}
	return 0;
}

static int load_symvers(struct kw_policy *p, json_t *groups, struct kw_error *err)
{
	size_t gi, ai, cap = 0;
	json_t *g, *a;

	if (!json_is_array(groups)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'symvers': expected an array", p->name);
	}
	json_array_foreach(groups, gi, g) {
		json_t *arches = json_object_get(g, "arches");
		json_t *max = json_object_get(g, "max");

		if (!json_is_array(arches) || !json_is_object(max)) {
			return kw_error_set(err, KW_EFORMAT,
					    "policy data: '%s'.'symvers'[%zu]: expected 'arches' (array) and 'max' (object)",
					    p->name, gi);
		}
		json_array_foreach(arches, ai, a) {
			struct kw_policy_arch *pa;
			const char *prefix;
			json_t *val;
			size_t k = 0;

			if (!json_is_string(a)) {
				return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'symvers'[%zu].'arches'[%zu]: expected a string",
						    p->name, gi, ai);
			}
			if (kw_policy_arch(p, json_string_value(a))) {
				return kw_error_set(err, KW_EFORMAT, "policy data: '%s': arch '%s' given twice",
						    p->name, json_string_value(a));
			}
			if (kw_grow(&p->arches, &cap, p->n_arches + 1, sizeof(*p->arches))) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			pa = &p->arches[p->n_arches];
			memset(pa, 0, sizeof(*pa));
			p->n_arches++;
			pa->arch = kw_strdup(json_string_value(a));
			pa->symvers = kw_calloc(json_object_size(max) + 1, sizeof(*pa->symvers));
			if (!pa->arch || !pa->symvers) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			json_object_foreach(max, prefix, val) {
				struct kw_policy_symver *sv = &pa->symvers[k];

				if (!json_is_string(val) && !json_is_null(val)) {
					return kw_error_set(err, KW_EFORMAT,
							    "policy data: '%s'.'symvers'[%zu].'max'.'%s': expected a version string or null",
							    p->name, gi, prefix);
				}
				sv->prefix = kw_strdup(prefix);
				sv->max = json_is_string(val) ? kw_strdup(json_string_value(val)) : NULL;
				pa->n_symvers = ++k;
				if (!sv->prefix || (json_is_string(val) && !sv->max)) {
					return kw_error_set(err, KW_ENOMEM, "out of memory");
				}
			}
		}
	}
	return 0;
}

static int load_policy(struct kw_policy *p, json_t *jp, json_t *lib_sets, json_t *sym_sets,
		       struct kw_error *err)
{
	json_t *name = json_object_get(jp, "name");
	json_t *family = json_object_get(jp, "family");
	json_t *version = json_object_get(jp, "version");
	json_t *black = json_object_get(jp, "blacklist");
	const char *lib;
	json_t *sets;
	char where[160];
	int rc;

	if (!json_is_string(name)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: a policy has no 'name' string");
	}
	p->name = kw_strdup(json_string_value(name));
	if (!p->name) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (!json_is_string(family)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'family': expected a string", p->name);
	}
	if (strcmp(json_string_value(family), "manylinux") == 0) {
		p->family = KW_POLICY_MANYLINUX;
	} else if (strcmp(json_string_value(family), "musllinux") == 0) {
		p->family = KW_POLICY_MUSLLINUX;
	} else if (strcmp(json_string_value(family), "android") == 0) {
		p->family = KW_POLICY_ANDROID;
	} else {
		return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'family': unknown family '%s'", p->name,
				    json_string_value(family));
	}
	if (!json_is_array(version) || json_array_size(version) != 2 ||
	    !json_is_integer(json_array_get(version, 0)) || !json_is_integer(json_array_get(version, 1))) {
		return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'version': expected [major, minor]", p->name);
	}
	p->major = (int)json_integer_value(json_array_get(version, 0));
	p->minor = (int)json_integer_value(json_array_get(version, 1));
	snprintf(where, sizeof(where), "'%s'.'aliases'", p->name);
	rc = add_strings(json_object_get(jp, "aliases"), &p->aliases, &p->n_aliases, where, err);
	if (rc) {
		return rc;
	}
	snprintf(where, sizeof(where), "'%s'.'libs'", p->name);
	rc = add_named(lib_sets, json_object_get(jp, "libs"), &p->libs, &p->n_libs, where, err);
	if (rc) {
		return rc;
	}
	rc = load_symvers(p, json_object_get(jp, "symvers"), err);
	if (rc) {
		return rc;
	}
	if (!json_is_object(black)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: '%s'.'blacklist': expected an object", p->name);
	}
	p->blacklist = kw_calloc(json_object_size(black) + 1, sizeof(*p->blacklist));
	if (!p->blacklist) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	json_object_foreach(black, lib, sets) {
		struct kw_policy_blacklist *b = &p->blacklist[p->n_blacklist++];

		b->lib = kw_strdup(lib);
		if (!b->lib) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		snprintf(where, sizeof(where), "'%s'.'blacklist'.'%s'", p->name, lib);
		rc = add_named(sym_sets, sets, &b->symbols, &b->n_symbols, where, err);
		if (rc) {
			return rc;
		}
		for (size_t k = 0; k < b->n_symbols; k++) {
			if (kw_strmap_add(&b->index, b->symbols[k], k) < 0) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
	}
	return 0;
}

/*
 * Version names that are not numbers come with a toolchain, not with a
 * glibc number: each entry says from which manylinux policy on, and on which
 * arches ("*": all), the name exists.
 */
static int load_named_versions(struct kw_policy_set *set, json_t *table, struct kw_error *err)
{
	size_t i, k, a;
	json_t *e;

	if (!table) {
		return 0;
	}
	if (!json_is_array(table)) {
		return kw_error_set(err, KW_EFORMAT, "policy data: 'named_versions': expected an array");
	}
	json_array_foreach(table, i, e) {
		const char *ver = json_string_value(json_object_get(e, "version"));
		json_t *since = json_object_get(e, "since"), *arches = json_object_get(e, "arches");
		int maj, min;

		if (!ver || !strchr(ver, '_') || !json_is_array(since) || json_array_size(since) != 2 ||
		    !(json_is_array(arches) || json_is_string(arches))) {
			return kw_error_set(err, KW_EFORMAT,
					    "policy data: 'named_versions'[%zu]: expected version, since [major, minor], arches", i);
		}
		maj = (int)json_integer_value(json_array_get(since, 0));
		min = (int)json_integer_value(json_array_get(since, 1));
		for (k = 0; k < set->n_policies; k++) {
			struct kw_policy *p = &set->policies[k];

			if (p->family != KW_POLICY_MANYLINUX || p->major < maj || (p->major == maj && p->minor < min)) {
				continue;
			}
			for (a = 0; a < p->n_arches; a++) {
				struct kw_policy_arch *pa = &p->arches[a];
				bool match = json_is_string(arches) && strcmp(json_string_value(arches), "*") == 0;
				size_t q;
				json_t *an;
				char **nv;

				json_array_foreach(arches, q, an) {
					match |= json_is_string(an) && strcmp(json_string_value(an), pa->arch) == 0;
				}
				if (!match) {
					continue;
				}
				nv = kw_realloc(pa->named, (pa->n_named + 1) * sizeof(*nv));
				if (!nv) {
					return kw_error_set(err, KW_ENOMEM, "out of memory");
				}
				pa->named = nv;
				if (!(pa->named[pa->n_named] = kw_strdup(ver))) {
					return kw_error_set(err, KW_ENOMEM, "out of memory");
				}
				pa->n_named++;
			}
		}
	}
	return 0;
}

int kw_policy_set_load_json(const char *text, size_t len, struct kw_policy_set **out, struct kw_error *err)
{
	struct kw_policy_set *set = NULL;
	json_error_t jerr;
	json_t *root, *pols, *jp;
	size_t i;
	int rc = KW_EFORMAT;

	*out = NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		return kw_error_set(err, KW_EFORMAT, "policy data: line %d: %s", jerr.line, jerr.text);
	}
	if (!json_is_object(root) || json_integer_value(json_object_get(root, "format")) != 1) {
		rc = kw_error_set(err, KW_EFORMAT, "policy data: expected an object with \"format\": 1");
		goto out;
	}
	pols = json_object_get(root, "policies");
	if (!json_is_array(pols) || !json_is_object(json_object_get(root, "lib_sets")) ||
	    !json_is_object(json_object_get(root, "symbol_sets"))) {
		rc = kw_error_set(err, KW_EFORMAT, "policy data: expected 'policies' (array), 'lib_sets' and 'symbol_sets' (objects)");
		goto out;
	}
	set = kw_calloc(1, sizeof(*set));
	if (!set || !(set->policies = kw_calloc(json_array_size(pols) + 1, sizeof(*set->policies)))) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(pols, i, jp) {
		if (!json_is_object(jp)) {
			rc = kw_error_set(err, KW_EFORMAT, "policy data: 'policies'[%zu]: expected an object", i);
			goto out;
		}
		set->n_policies++;
		rc = load_policy(&set->policies[i], jp, json_object_get(root, "lib_sets"),
				 json_object_get(root, "symbol_sets"), err);
		if (rc) {
			goto out;
		}
		if (i > 0 && set->policies[i].family == set->policies[i - 1].family &&
		    (set->policies[i].major < set->policies[i - 1].major ||
		     (set->policies[i].major == set->policies[i - 1].major &&
		      set->policies[i].minor <= set->policies[i - 1].minor))) {
			rc = kw_error_set(err, KW_EFORMAT, "policy data: '%s' must come after older policies of its family",
					  set->policies[i].name);
			goto out;
		}
	}
	rc = load_named_versions(set, json_object_get(root, "named_versions"), err);
	if (rc) {
		goto out;
	}
	*out = set;
	set = NULL;
	rc = 0;
out:
	kw_policy_set_free(set);
	json_decref(root);
	return rc;
}

int kw_policy_set_load_default(struct kw_policy_set **out, struct kw_error *err)
{
	return kw_policy_set_load_json((const char *)kw_policy_data, kw_policy_data_len, out, err);
}

int kw_ctx_policy(struct kw_ctx *ctx, const struct kw_policy_set **out, struct kw_error *err)
{
	int rc = 0;

	/* Workers of one context may all ask first; one loads, the others wait and share it. */
	pthread_mutex_lock(&ctx->lock);
	if (!ctx->policy) {
		struct kw_policy_set *set = NULL;

		rc = kw_policy_set_load_default(&set, err);
		if (rc == 0) {
			ctx->policy = set;
			ctx->policy_free = kw_policy_set_free;
		}
	}
	if (rc == 0) {
		*out = ctx->policy;
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

const struct kw_policy_arch *kw_policy_arch(const struct kw_policy *p, const char *arch)
{
	size_t i;

	for (i = 0; arch && i < p->n_arches; i++) {
		if (strcmp(p->arches[i].arch, arch) == 0) {
			return &p->arches[i];
		}
	}
	return NULL;
}

/* Does name equal base, or base + "_" + an arch the policy knows? */
static bool name_matches(const struct kw_policy *p, const char *base, const char *name)
{
	size_t n = strlen(base);

	if (strncmp(name, base, n) != 0) {
		return false;
	}
	if (name[n] == '\0') {
		return true;
	}
	return name[n] == '_' && kw_policy_arch(p, name + n + 1) != NULL;
}

const struct kw_policy *kw_policy_find(const struct kw_policy_set *set, const char *name)
{
	size_t i, k;

	for (i = 0; i < set->n_policies; i++) {
		const struct kw_policy *p = &set->policies[i];

		if (name_matches(p, p->name, name)) {
			return p;
		}
		for (k = 0; k < p->n_aliases; k++) {
			if (name_matches(p, p->aliases[k], name)) {
				return p;
			}
		}
	}
	return NULL;
}

bool kw_policy_allows_lib(const struct kw_policy *p, const char *soname)
{
	size_t i;

	for (i = 0; i < p->n_libs; i++) {
		if (strcmp(p->libs[i], soname) == 0) {
			return true;
		}
	}
	return false;
}

static bool numeric_version(const char *v)
{
	if (!isdigit((unsigned char)*v)) {
		return false;
	}
	for (; *v; v++) {
		if (!isdigit((unsigned char)*v) && *v != '.') {
			return false;
		}
	}
	return true;
}

int kw_version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		unsigned long x = 0, y = 0;
		bool dx = isdigit((unsigned char)*a), dy = isdigit((unsigned char)*b);

		if (dx != dy) {
			/* A numeric part sorts before a non-numeric one ("2.17" < "PRIVATE"). */
			if (!*a || !*b) {
				return *a ? 1 : -1;
			}
			return dx ? -1 : 1;
		}
		if (!dx) {
			int c = strcmp(a, b);

			return c < 0 ? -1 : c > 0;
		}
		while (isdigit((unsigned char)*a)) {
			x = x * 10 + (unsigned long)(*a++ - '0');
			if (x > 1000000000UL) {
				x = 1000000000UL;
			}
		}
		while (isdigit((unsigned char)*b)) {
			y = y * 10 + (unsigned long)(*b++ - '0');
			if (y > 1000000000UL) {
				y = 1000000000UL;
			}
		}
		if (x != y) {
			return x < y ? -1 : 1;
		}
		if (*a == '.') {
			a++;
		}
		if (*b == '.') {
			b++;
		}
	}
	return 0;
}

bool kw_policy_allows_version(const struct kw_policy *p, const char *arch, const char *version)
{
	const struct kw_policy_arch *pa = kw_policy_arch(p, arch);
	const char *us = strchr(version, '_');
	size_t plen, i;

	if (!pa || !us) {
		return pa != NULL;
	}
	/* The prefix is everything before the first '_' ("GLIBC" of "GLIBC_ABI_DT_RELR"). */
	plen = (size_t)(us - version);
	for (i = 0; i < pa->n_symvers; i++) {
		const struct kw_policy_symver *sv = &pa->symvers[i];
		size_t k;

		if (strlen(sv->prefix) != plen || strncmp(sv->prefix, version, plen) != 0) {
			continue;
		}
		if (numeric_version(us + 1)) {
			return sv->max && kw_version_cmp(us + 1, sv->max) <= 0;
		}
		for (k = 0; k < pa->n_named; k++) {
			if (strcmp(pa->named[k], version) == 0) {
				return true;
			}
		}
		return false;
	}
	return true;
}

bool kw_policy_blacklists_lib(const struct kw_policy *p, const char *lib)
{
	size_t i;

	for (i = 0; i < p->n_blacklist; i++) {
		if (p->blacklist[i].n_symbols && strcmp(p->blacklist[i].lib, lib) == 0) {
			return true;
		}
	}
	return false;
}

bool kw_policy_blacklisted(const struct kw_policy *p, const char *lib, const char *symbol)
{
	size_t i;

	for (i = 0; i < p->n_blacklist; i++) {
		if (strcmp(p->blacklist[i].lib, lib) == 0 && kw_strmap_get(&p->blacklist[i].index, symbol) >= 0) {
			return true;
		}
	}
	return false;
}

char *kw_policy_tag(const struct kw_policy *p, const char *arch)
{
	return kw_asprintf("%s_%s", p->name, arch);
}
