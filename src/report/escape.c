/* SPDX-License-Identifier: MIT */
/*
 * What kwheel prints can be forged by no input: names from a wheel or an
 * ELF file (member names, DT_NEEDED, tags, paths) reach the terminal and
 * line-oriented readers only escaped. Text: control characters (C0, DEL,
 * C1), bytes that are not UTF-8 and the backslash become \n, \t, \r, \\ or
 * \xNN. JSON: every string is valid JSON whatever its bytes; see
 * report_json_dumps (internal.h).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/report.h"
#include "internal.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80) {
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n) {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	return len;
}

/* Is the valid sequence at s (of len bytes) a C1 control character (U+0080 to U+009F)? */
static bool is_c1(const unsigned char *s, size_t len)
{
	return len == 2 && s[0] == 0xc2 && s[1] <= 0x9f;
}

/*
 * Where escaped text goes: a builder, or a stream (written as it goes,
 * nothing allocated: a report printed after the work is done cannot fail
 * for want of memory).
 */
struct sink {
	struct kw_buf *b;
	FILE *f;
	size_t count;  /* with neither b nor f: only count the bytes (for a width) */
};

static void put_n(struct sink *k, const char *s, size_t n)
{
	if (!k->b && !k->f) {
		k->count += n;
	} else if (k->f) {
		fwrite(s, 1, n, k->f);
	} else {
		kw_buf_append_n(k->b, s, n);
	}
}

static void put(struct sink *k, const char *s)
{
	put_n(k, s, strlen(s));
}

static void putf(struct sink *k, const char *fmt, ...) KW_PRINTF(2, 3);
static void putf(struct sink *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!k->b && !k->f) {
		int n = vsnprintf(NULL, 0, fmt, ap);

		k->count += n > 0 ? (size_t)n : 0;
	} else if (k->f) {
		vfprintf(k->f, fmt, ap);
	} else {
		kw_buf_vappendf(k->b, fmt, ap);
	}
	va_end(ap);
}

/* The first n bytes of str (a precision may cut a sequence: its bytes are then escaped). */
static void escape_n(struct sink *k, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t run = i, len;

		/* The common case, printable ASCII and valid UTF-8, goes in as one piece. */
		while (run < n && (len = utf8_len(s + run, n - run)) != 0 && !is_c1(s + run, len) &&
		       !(len == 1 && (s[run] < 0x20 || s[run] == 0x7f || s[run] == '\\'))) {
			run += len;
		}
		put_n(k, str + i, run - i);
		i = run;
		if (i >= n) {
			break;
		}
		len = utf8_len(s + i, n - i);
		if (s[i] == '\n') {
			put(k, "\\n");
		} else if (s[i] == '\t') {
			put(k, "\\t");
		} else if (s[i] == '\r') {
			put(k, "\\r");
		} else if (s[i] == '\\') {
			put(k, "\\\\");
		} else if (len == 2) {
			/* C1: both bytes, so what is printed is still the byte sequence the input had. */
			putf(k, "\\x%02x\\x%02x", s[i], s[i + 1]);
			i++;
		} else {
			putf(k, "\\x%02x", s[i]);
		}
		i++;
	}
}

static void escape(struct sink *k, const char *s)
{
	escape_n(k, s, strlen(s));
}

void kw_report_escape_append(struct kw_buf *b, const char *s)
{
	struct sink k = { b, NULL, 0 };

	escape(&k, s);
}

void kw_report_escape_fputs(const char *s, FILE *f)
{
	struct sink k = { NULL, f, 0 };

	escape(&k, s);
}

char *kw_report_escape(const char *s)
{
	struct kw_buf b = { 0 };

	kw_report_escape_append(&b, s);
	return kw_buf_take(&b);
}

/*
 * Each conversion but %s is handed to printf as the caller wrote it; the
 * compiler checked the whole format against the arguments at the call
 * (KW_PRINTF), so the pieces need no second check.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void format(struct sink *k, const char *fmt, va_list ap)
{
	const char *p = fmt;

	while (*p) {
		const char *pct = strchr(p, '%');
		char spec[48];
		int width = -1, prec = -1;
		bool left;
		size_t sl;

		if (!pct) {
			put(k, p);
			break;
		}
		put_n(k, p, (size_t)(pct - p));
		if (pct[1] == '%') {
			put(k, "%");
			p = pct + 2;
			continue;
		}
		/*
		 * A conversion: flags, width, precision (either may be *), length,
		 * type. Numbers go to printf with any * replaced by its value; %s
		 * is escaped, its width counting the escaped text.
		 */
		{
			const char *q = pct + 1;
			size_t fl = strspn(q, "-+ #0"), n;

			left = memchr(q, '-', fl) != NULL;
			q += fl;
			if (*q == '*') {
				width = va_arg(ap, int);
				left |= width < 0;
				width = width < 0 ? -width : width;
				q++;
			} else if (*q >= '0' && *q <= '9') {
				width = (int)strtol(q, (char **)&q, 10);
			}
			if (*q == '.') {
				q++;
				if (*q == '*') {
					prec = va_arg(ap, int);
					q++;
				} else {
					prec = (int)strtol(q, (char **)&q, 10);
				}
			}
			n = strspn(q, "hlzj");
			if (!q[n] || fl + n + 2 > sizeof(spec) - 24) {
				put(k, pct);
				return;
			}
			/* The spec printf gets: flags, the width and precision as numbers, length and type. */
			snprintf(spec, sizeof(spec), "%%%.*s", (int)fl, pct + 1);
			if (width >= 0) {
				snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%d", width);
			}
			if (prec >= 0) {
				snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), ".%d", prec);
			}
			snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%.*s", (int)n + 1, q);
			sl = (size_t)(q + n - pct);
		}
		switch (pct[sl]) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			struct sink c = { NULL, NULL, 0 };
			size_t len;

			s = s ? s : "(null)";
			len = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			if (width > 0) {
				escape_n(&c, s, len);
			}
			for (; !left && width > 0 && c.count < (size_t)width; c.count++) {
				put(k, " ");
			}
			escape_n(k, s, len);
			for (; left && width > 0 && c.count < (size_t)width; c.count++) {
				put(k, " ");
			}
			break;
		}
		case 'c':
			putf(k, "%c", va_arg(ap, int));
			break;
		case 'd':
		case 'i':
			if (strstr(spec, "ll")) {
				putf(k, spec, va_arg(ap, long long));
			} else if (strchr(spec, 'l')) {
				putf(k, spec, va_arg(ap, long));
			} else {
				putf(k, spec, va_arg(ap, int));
			}
			break;
		case 'u':
		case 'x':
		case 'X':
			if (strchr(spec, 'z')) {
				putf(k, spec, va_arg(ap, size_t));
			} else if (strstr(spec, "ll")) {
				putf(k, spec, va_arg(ap, unsigned long long));
			} else if (strchr(spec, 'l')) {
				putf(k, spec, va_arg(ap, unsigned long));
			} else {
				putf(k, spec, va_arg(ap, unsigned));
			}
			break;
		default:
			/* Not a conversion this report uses: shown as written rather than guessed at. */
			put_n(k, pct, sl + 1);
			break;
		}
		p = pct + sl + 1;
	}
}

#pragma GCC diagnostic pop

void kw_report_vappendf(struct kw_buf *b, const char *fmt, va_list ap)
{
	struct sink k = { b, NULL, 0 };

	format(&k, fmt, ap);
}

void kw_report_fprintf(FILE *f, const char *fmt, ...)
{
	struct sink k = { NULL, f, 0 };
	va_list ap;

	va_start(ap, fmt);
	format(&k, fmt, ap);
	va_end(ap);
}

void kw_report_appendf(struct kw_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kw_report_vappendf(b, fmt, ap);
	va_end(ap);
}

char *kw_report_error_line(const struct kw_error *e)
{
	struct kw_buf b = { 0 };

	kw_buf_append(&b, "kwheel: ");
	kw_report_escape_append(&b, e->msg[0] ? e->msg : kw_status_str(e->code));
	return kw_buf_take(&b);
}

/* ---- JSON ---- */

static void *json_alloc(size_t n)
{
	return kw_malloc(n);
}

static void use_kw_alloc(void)
{
	json_set_alloc_funcs(json_alloc, free);
}

void report_json_init(void)
{
	/* Once per process, before any report allocates: fault injection then reaches jansson too. */
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, use_kw_alloc);
}

json_t *report_jstr(const char *s)
{
	/* Any bytes: the dump escapes what is not UTF-8. NULL stays a failure, as for json_string. */
	return s ? json_stringn_nocheck(s, strlen(s)) : NULL;
}

static void dump_string(struct kw_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	kw_buf_append(b, "\"");
	while (i < n) {
		size_t len;

		/* Printable ASCII is most of every report: taken in runs, appended at once. */
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') {
			i++;
			continue;
		}
		len = utf8_len(s + i, n - i);
		if (len > 1 && !is_c1(s + i, len)) {
			i += len;
			continue;
		}
		kw_buf_append_n(b, str + run, i - run);
		if (len == 0) {
			/* Python's surrogateescape: the byte 0xNN is U+DCNN, which no valid UTF-8 decodes to. */
			kw_buf_appendf(b, "\\uDC%02X", s[i]);
			i++;
		} else if (s[i] == '"' || s[i] == '\\') {
			kw_buf_appendf(b, "\\%c", s[i]);
			i++;
		} else if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == '\b' || s[i] == '\f') {
			kw_buf_appendf(b, "\\%c", s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : s[i] == '\r' ? 'r'
						 : s[i] == '\b' ? 'b' : 'f');
			i++;
		} else if (len == 1) {
			kw_buf_appendf(b, "\\u%04X", s[i]);
			i++;
		} else {
			kw_buf_appendf(b, "\\u%04X", s[i + 1]);
			i += 2;
		}
		run = i;
	}
	kw_buf_append_n(b, str + run, i - run);
	kw_buf_append(b, "\"");
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A newline and the indentation of depth, when indenting. */
static void newline(struct kw_buf *b, int indent, int depth)
{
	static const char spaces[] = "                                ";
	size_t want, k;

	if (indent <= 0) {
		return;
	}
	kw_buf_append_n(b, "\n", 1);
	for (want = (size_t)indent * (size_t)depth; want; want -= k) {
		k = want < sizeof(spaces) - 1 ? want : sizeof(spaces) - 1;
		kw_buf_append_n(b, spaces, k);
	}
}

static void dump(struct kw_buf *b, const json_t *j, int indent, int depth)
{
	size_t i, n;

	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char **keys;
		const char *k;
		json_t *v;

		n = json_object_size(j);
		keys = kw_calloc(n ? n : 1, sizeof(*keys));
		if (!keys) {
			b->failed = true;
			return;
		}
		i = 0;
		json_object_foreach((json_t *)j, k, v) {
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(*keys), cmp_key);
		kw_buf_append(b, "{");
		for (i = 0; i < n; i++) {
			if (i) {
				kw_buf_append(b, ",");
			}
			newline(b, indent, depth + 1);
			dump_string(b, keys[i], strlen(keys[i]));
			kw_buf_append(b, indent > 0 ? ": " : ":");
			dump(b, json_object_get(j, keys[i]), indent, depth + 1);
		}
		if (n) {
			newline(b, indent, depth);
		}
		kw_buf_append(b, "}");
		free(keys);
		break;
	}
	case JSON_ARRAY:
		kw_buf_append(b, "[");
		for (i = 0, n = json_array_size(j); i < n; i++) {
			if (i) {
				kw_buf_append(b, ",");
			}
			newline(b, indent, depth + 1);
			dump(b, json_array_get(j, i), indent, depth + 1);
		}
		if (n) {
			newline(b, indent, depth);
		}
		kw_buf_append(b, "]");
		break;
	case JSON_STRING:
		dump_string(b, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		kw_buf_appendf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		break;
	case JSON_REAL:
		kw_buf_appendf(b, "%.17g", json_real_value(j));
		break;
	case JSON_TRUE:
		kw_buf_append(b, "true");
		break;
	case JSON_FALSE:
		kw_buf_append(b, "false");
		break;
	case JSON_NULL:
		kw_buf_append(b, "null");
		break;
	}
}

void report_json_dump_into(struct kw_buf *b, const json_t *j, int indent, int depth)
{
	dump(b, j, indent, depth);
}

void report_json_newline(struct kw_buf *b, int indent, int depth)
{
	newline(b, indent, depth);
}

char *report_json_dumps(const json_t *j, int indent)
{
	struct kw_buf b = { 0 };

	dump(&b, j, indent, 0);
	return kw_buf_take(&b);
}
