/* SPDX-License-Identifier: MIT */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"

int kw_strv_push_take(struct kw_strv *sv, char *s)
{
	if (kw_grow(&sv->v, &sv->cap, sv->n + 2, sizeof(*sv->v))) {
		return KW_ENOMEM;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int kw_strv_push_own(struct kw_strv *sv, char *s)
{
	if (!s || kw_strv_push_take(sv, s)) {
		free(s);
		return KW_ENOMEM;
	}
	return 0;
}

int kw_strv_push(struct kw_strv *sv, const char *s)
{
	char *d = kw_strdup(s);

	if (!d) {
		return KW_ENOMEM;
	}
	if (kw_strv_push_take(sv, d)) {
		free(d);
		return KW_ENOMEM;
	}
	return 0;
}

long kw_strv_find(const struct kw_strv *sv, const char *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++) {
		if (strcmp(sv->v[i], s) == 0) {
			return (long)i;
		}
	}
	return -1;
}

int kw_strv_push_unique(struct kw_strv *sv, const char *s)
{
	if (kw_strv_find(sv, s) >= 0) {
		return 0;
	}
	return kw_strv_push(sv, s);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void kw_strv_sort(struct kw_strv *sv)
{
	if (sv->n > 1) {
		qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
	}
}

/* Order by string, then by position: the first of equal strings sorts first. */
static int cmp_at(const void *a, const void *b)
{
	char *const *x = *(char *const *const *)a, *const *y = *(char *const *const *)b;
	int c = strcmp(*x, *y);

	return c ? c : (x > y) - (x < y);
}

int kw_strv_dedup(struct kw_strv *sv)
{
	char ***at;
	size_t i, n = 0;

	if (sv->n < 2) {
		return 0;
	}
	at = kw_calloc(sv->n, sizeof(*at));
	if (!at) {
		return KW_ENOMEM;
	}
	for (i = 0; i < sv->n; i++) {
		at[i] = &sv->v[i];
	}
	qsort(at, sv->n, sizeof(*at), cmp_at);
	/* Later copies are freed and marked; the survivors then close up in their order. */
	for (i = 1; i < sv->n; i++) {
		if (strcmp(*at[i], *at[i - 1]) == 0) {
			free(*at[i]);
			*at[i] = NULL;
			at[i] = at[i - 1];
		}
	}
	free(at);
	for (i = 0; i < sv->n; i++) {
		if (sv->v[i]) {
			sv->v[n++] = sv->v[i];
		}
	}
	sv->n = n;
	sv->v[n] = NULL;
	return 0;
}

void kw_strv_release(struct kw_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++) {
		free(sv->v[i]);
	}
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
	sv->cap = 0;
}

int kw_strv_split(struct kw_strv *sv, const char *s, char sep)
{
	const char *p = s;

	for (;;) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *d = kw_strndup(p, len);

		if (!d || kw_strv_push_take(sv, d)) {
			free(d);
			return KW_ENOMEM;
		}
		if (!e) {
			return 0;
		}
		p = e + 1;
	}
}

int kw_glob_match(const char *pat, const char *name)
{
	return fnmatch(pat, name, 0) == 0;
}
