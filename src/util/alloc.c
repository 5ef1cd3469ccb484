/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "kwheel/kwheel.h"

/*
 * Fault injection state. Deliberately process-wide: the allocator is the one
 * place every module reaches, and a test needs to fail "the Nth allocation"
 * across all of them.
 */
static _Atomic long fail_at;
static _Atomic long count;

long kw_alloc_fail_at(long nth)
{
	long c = count;

	fail_at = nth;
	count = 0;
	return c;
}

static int should_fail(void)
{
	count++;
	return fail_at > 0 && count >= fail_at;
}

void *kw_malloc(size_t n)
{
	if (should_fail()) {
		return NULL;
	}
	return malloc(n ? n : 1);
}

void *kw_calloc(size_t nmemb, size_t size)
{
	if (should_fail()) {
		return NULL;
	}
	if (nmemb == 0 || size == 0) {
		return calloc(1, 1);
	}
	return calloc(nmemb, size);
}

void *kw_realloc(void *p, size_t n)
{
	if (should_fail()) {
		return NULL;
	}
	return realloc(p, n ? n : 1);
}

int kw_grow(void *pp, size_t *cap, size_t need, size_t sz)
{
	void **p = pp;
	size_t ncap;
	void *np;

	if (need <= *cap) {
		return 0;
	}
	ncap = *cap ? *cap : 8;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			return KW_ENOMEM;
		}
		ncap *= 2;
	}
	if (sz && ncap > SIZE_MAX / sz) {
		return KW_ENOMEM;
	}
	np = kw_realloc(*p, ncap * sz);
	if (!np) {
		return KW_ENOMEM;
	}
	*p = np;
	*cap = ncap;
	return 0;
}

char *kw_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = kw_malloc(len + 1);

	if (!d) {
		return NULL;
	}
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *kw_strdup(const char *s)
{
	return kw_strndup(s, strlen(s));
}

char *kw_vasprintf(const char *fmt, va_list ap)
{
	va_list again;
	int n;
	char *s;

	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	if (n < 0 || !(s = kw_malloc((size_t)n + 1))) {
		va_end(again);
		return NULL;
	}
	vsnprintf(s, (size_t)n + 1, fmt, again);
	va_end(again);
	return s;
}

char *kw_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kw_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}
