/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"

/*
 * Room for need more bytes plus the terminating NUL. A failure is sticky, so
 * a caller may append a whole text and check once, at kw_buf_take.
 */
static bool reserve(struct kw_buf *b, size_t need)
{
	if (b->failed) {
		return false;
	}
	if (need > SIZE_MAX - b->len - 1 || kw_grow(&b->s, &b->cap, b->len + need + 1, 1)) {
		b->failed = true;
		return false;
	}
	return true;
}

void kw_buf_append_n(struct kw_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n)) {
		return;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void kw_buf_append(struct kw_buf *b, const char *s)
{
	kw_buf_append_n(b, s, strlen(s));
}

void kw_buf_vappendf(struct kw_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (b->failed) {
		return;
	}
	/* Measure first: the text is written exactly once, into room it fits. */
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!reserve(b, (size_t)n)) {
		return;
	}
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void kw_buf_appendf(struct kw_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kw_buf_vappendf(b, fmt, ap);
	va_end(ap);
}

char *kw_buf_take(struct kw_buf *b)
{
	char *s = NULL;

	if (!b->failed) {
		/* An empty builder still gives a string, so NULL always means "out of memory". */
		s = b->s ? b->s : kw_strdup("");
		b->s = NULL;
	}
	kw_buf_release(b);
	return s;
}

void kw_buf_release(struct kw_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}
