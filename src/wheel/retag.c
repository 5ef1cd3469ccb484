/* SPDX-License-Identifier: MIT */
/* WHEEL's Tag lines for a retagged wheel: one rule for repair and km. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kwheel/wheel.h"

static bool is_tag_line(const char *line, size_t n)
{
	return n >= 4 && strncasecmp(line, "Tag:", 4) == 0;
}

/* The value of a "Tag:" line without the blanks around it (new string), or NULL. */
static char *tag_value(const char *line, size_t n)
{
	const char *v = line + 4, *end = line + n;

	while (v < end && (*v == ' ' || *v == '\t')) {
		v++;
	}
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
		end--;
	}
	return kw_strndup(v, (size_t)(end - v));
}

static bool gives_way(const struct kw_wheel_retag *rt, const char *plat)
{
	return !rt->replaced || rt->replaced(rt->ud, plat);
}

/* Old tags that stay, python-abi pairs, from the Tag lines; false when out of memory. */
static bool read_tags(const char *text, size_t len, const struct kw_wheel_retag *rt, struct kw_strv *keep,
		      struct kw_strv *pairs, bool *was_any)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		char *t, *dash;

		pos += n + (nl ? 1 : 0);
		if (!is_tag_line(line, n)) {
			continue;
		}
		t = tag_value(line, n);
		if (!t) {
			return false;
		}
		dash = strrchr(t, '-');
		if (dash && strchr(t, '-') != dash) {
			bool replaced = gives_way(rt, dash + 1);

			*was_any = *was_any || (replaced && strcmp(dash + 1, "any") == 0);
			if (!replaced && kw_strv_push_unique(keep, t)) {
				free(t);
				return false;
			}
			*dash = 0;
			if (kw_strv_push_unique(pairs, t)) {
				free(t);
				return false;
			}
		}
		free(t);
	}
	return true;
}

/* The pairs a file name's compressed tag set stands for, when WHEEL lists none. */
static bool name_pairs(const struct kw_wheel_name *name, struct kw_strv *pairs)
{
	struct kw_strv py = { 0 }, abi = { 0 };
	bool ok = !kw_strv_split(&py, name->python, '.') && !kw_strv_split(&abi, name->abi, '.');
	size_t i, k;

	for (i = 0; ok && i < py.n; i++) {
		for (k = 0; ok && k < abi.n; k++) {
			char *p = kw_asprintf("%s-%s", py.v[i], abi.v[k]);

			ok = p && !kw_strv_push_unique(pairs, p);
			free(p);
		}
	}
	kw_strv_release(&py);
	kw_strv_release(&abi);
	return ok;
}

char *kw_wheel_meta_retag(const char *text, size_t len, const struct kw_wheel_name *name,
			  const struct kw_wheel_retag *rt)
{
	struct kw_strv keep = { 0 }, pairs = { 0 }, tags = { 0 };
	struct kw_buf b = { 0 };
	bool was_any = false, written = false, ok;
	size_t i, k, pos = 0;
	char *out = NULL;

	ok = read_tags(text, len, rt, &keep, &pairs, &was_any);
	if (ok && pairs.n == 0) {
		ok = name_pairs(name, &pairs);
	}
	for (i = 0; i < name->n_platforms; i++) {
		was_any = was_any || (strcmp(name->platforms[i], "any") == 0 && gives_way(rt, "any"));
	}
	for (i = 0; ok && i < keep.n; i++) {
		ok = !kw_strv_push_unique(&tags, keep.v[i]);
	}
	for (i = 0; ok && i < pairs.n; i++) {
		for (k = 0; ok && k < rt->n_plats; k++) {
			char *t = kw_asprintf("%s-%s", pairs.v[i], rt->plats[k]);

			ok = t && !kw_strv_push_unique(&tags, t);
			free(t);
		}
	}
	while (ok && pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		pos += n + (nl ? 1 : 0);
		if (n && line[n - 1] == '\r') {
			n--;
		}
		/* At the first Tag line, or at the blank line that ends the headers if there is none. */
		if (is_tag_line(line, n) || n == 0) {
			for (i = 0; !written && i < tags.n; i++) {
				kw_buf_appendf(&b, "Tag: %s\n", tags.v[i]);
			}
			written = true;
			if (n == 0) {
				kw_buf_append(&b, "\n");
			}
		} else if (was_any && n >= 16 && strncasecmp(line, "Root-Is-Purelib:", 16) == 0) {
			kw_buf_append(&b, "Root-Is-Purelib: false\n");
		} else {
			kw_buf_append_n(&b, line, n);
			kw_buf_append(&b, "\n");
		}
	}
	for (i = 0; ok && !written && i < tags.n; i++) {
		kw_buf_appendf(&b, "Tag: %s\n", tags.v[i]);
	}
	if (ok) {
		out = kw_buf_take(&b);
	}
	kw_buf_release(&b);
	kw_strv_release(&keep);
	kw_strv_release(&pairs);
	kw_strv_release(&tags);
	return out;
}
