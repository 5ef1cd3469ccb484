/* SPDX-License-Identifier: MIT */
/* The dynamic entries of a rewrite and the operations that change them. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool plan_is_str_tag(int64_t tag)
{
	return tag == DT_NEEDED || tag == DT_SONAME || tag == DT_RPATH || tag == DT_RUNPATH;
}

int plan_oom(struct kw_error *err)
{
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

static int ent_insert(struct plan *p, size_t at, const struct ent *e, struct kw_error *err)
{
	if (kw_grow(&p->e, &p->cap, p->n + 1, sizeof(*p->e)) < 0) {
		return plan_oom(err);
	}
	memmove(&p->e[at + 1], &p->e[at], (p->n - at) * sizeof(*p->e));
	p->e[at] = *e;
	p->n++;
	return 0;
}

void plan_ent_remove(struct plan *p, size_t at)
{
	memmove(&p->e[at], &p->e[at + 1], (p->n - at - 1) * sizeof(*p->e));
	p->n--;
}

int plan_load_entries(struct plan *p, struct kw_error *err)
{
	size_t i;

	p->cap = p->im.ndyn + 8;
	p->e = kw_calloc(p->cap, sizeof(*p->e));
	if (!p->e) {
		return plan_oom(err);
	}
	for (i = 0; i < p->im.ndyn; i++) {
		struct ent *e = &p->e[p->n++];

		e->tag = p->im.dyn[i].tag;
		e->val = p->im.dyn[i].val;
		if (plan_is_str_tag(e->tag)) {
			e->str = img_str(&p->im, e->val);
			if (!e->str) {
				return kw_error_set(err, KW_EFORMAT, "'%s': dynamic entry %zu names a string outside .dynstr",
						    p->im.name, i);
			}
			e->old = e->val;
			e->had_old = true;
		}
	}
	return 0;
}

/* The last entry with tag: a repeated tag's last one is what the loader uses. */
long plan_find_tag(const struct plan *p, int64_t tag)
{
	size_t i;
	long at = -1;

	for (i = 0; i < p->n; i++) {
		if (p->e[i].tag == tag) {
			at = (long)i;
		}
	}
	return at;
}

static long find_first_tag(const struct plan *p, int64_t tag)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (p->e[i].tag == tag) {
			return (long)i;
		}
	}
	return -1;
}

static size_t count_tag(const struct plan *p, int64_t tag)
{
	size_t i, n = 0;

	for (i = 0; i < p->n; i++) {
		n += p->e[i].tag == tag;
	}
	return n;
}

/* Where new entries of a kind go: after the last of tags, else at the front. */
static size_t after_last(const struct plan *p, const int64_t *tags, size_t n_tags)
{
	size_t i, j, at = 0;

	for (i = 0; i < p->n; i++) {
		for (j = 0; j < n_tags; j++) {
			if (p->e[i].tag == tags[j]) {
				at = i + 1;
			}
		}
	}
	return at;
}

static void set_str(struct ent *e, const char *s)
{
	if (e->str && strcmp(e->str, s) == 0) {
		return;
	}
	e->str = s;
	e->changed = true;
}

/* ---- applying operations ---------------------------------------------- */

#ifndef DF_1_NODEFLIB
#define DF_1_NODEFLIB 0x800
#endif

/* DT_DEBUG (the debugger's hook, which ld.so fills in) and DF_1_NODEFLIB: entries without strings. */
static int apply_flags(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	int rc;

	if (ops->add_debug_tag && plan_find_tag(p, DT_DEBUG) < 0) {
		struct ent e = { .tag = DT_DEBUG, .val = 0 };

		rc = ent_insert(p, p->n, &e, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (ops->no_default_lib) {
		long at = plan_find_tag(p, DT_FLAGS_1);

		if (at >= 0) {
			p->e[at].val |= DF_1_NODEFLIB;
		} else {
			struct ent e = { .tag = DT_FLAGS_1, .val = DF_1_NODEFLIB };

			rc = ent_insert(p, p->n, &e, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	return 0;
}

int plan_apply_ops(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	size_t i, k;
	int rc;

	for (i = 0; i < p->n;) {
		if (p->e[i].tag == DT_NEEDED && plan_name_in(p->e[i].str, ops->remove_needed, ops->n_remove_needed)) {
			plan_ent_remove(p, i);
		} else {
			i++;
		}
	}
	for (k = 0; k < ops->n_replace_needed; k++) {
		const struct kw_patch_replace *r = &ops->replace_needed[k];
		struct plan_vn_replace_ctx c = { r->from, r->to, err };

		if (!r->from || !r->to || !*r->to) {
			return kw_error_set(err, KW_EINVAL, "replace-needed needs two non-empty names");
		}
		for (i = 0; i < p->n; i++) {
			if (p->e[i].tag == DT_NEEDED && strcmp(p->e[i].str, r->from) == 0) {
				set_str(&p->e[i], r->to);
			}
		}
		if (strcmp(r->from, r->to) != 0) {
			rc = plan_each_verneed(p, plan_vn_replace_cb, &c, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	for (k = ops->n_add_needed; k-- > 0;) {
		struct ent e = { .tag = DT_NEEDED, .str = ops->add_needed[k], .changed = true };
		long first = find_first_tag(p, DT_NEEDED);
		bool have = false;

		if (!*e.str) {
			return kw_error_set(err, KW_EINVAL, "add-needed needs a non-empty name");
		}
		for (i = 0; i < p->n; i++) {
			have |= p->e[i].tag == DT_NEEDED && strcmp(p->e[i].str, e.str) == 0;
		}
		if (!have) {
			rc = ent_insert(p, first < 0 ? 0 : (size_t)first, &e, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	if (ops->set_soname) {
		long at = plan_find_tag(p, DT_SONAME);

		if (!*ops->set_soname) {
			return kw_error_set(err, KW_EINVAL, "set-soname needs a non-empty name");
		}
		if (at >= 0) {
			set_str(&p->e[at], ops->set_soname);
		} else {
			static const int64_t after[] = { DT_NEEDED };
			struct ent e = { .tag = DT_SONAME, .str = ops->set_soname, .changed = true };

			rc = ent_insert(p, after_last(p, after, 1), &e, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	rc = apply_flags(p, ops, err);
	if (rc < 0) {
		return rc;
	}
	if (ops->set_rpath || ops->n_add_rpath || ops->remove_rpath || ops->force_rpath) {
		long rp = plan_find_tag(p, DT_RPATH), rn = plan_find_tag(p, DT_RUNPATH);
		const char *cur = rn >= 0 ? p->e[rn].str : rp >= 0 ? p->e[rp].str : NULL;
		/*
		 * As patchelf does: a search path written is DT_RUNPATH unless
		 * DT_RPATH is asked for, so a DT_RPATH file is converted. DT_RPATH
		 * also applies to the object's dependencies and cannot be overridden
		 * by LD_LIBRARY_PATH, which is rarely what an edit means.
		 */
		int64_t tag = ops->force_rpath ? DT_RPATH : DT_RUNPATH;
		size_t len = 0, at;
		long j;

		if (ops->remove_rpath) {
			cur = NULL;
		}
		if (ops->set_rpath) {
			cur = ops->set_rpath;
		}
		len = cur ? strlen(cur) : 0;
		for (k = 0; k < ops->n_add_rpath; k++) {
			len += strlen(ops->add_rpath[k]) + 1;
		}
		p->rpath_buf = kw_malloc(len + 1);
		if (!p->rpath_buf) {
			return plan_oom(err);
		}
		p->rpath_buf[0] = 0;
		if (cur) {
			strcpy(p->rpath_buf, cur);
		}
		for (k = 0; k < ops->n_add_rpath; k++) {
			if (p->rpath_buf[0]) {
				strcat(p->rpath_buf, ":");
			}
			strcat(p->rpath_buf, ops->add_rpath[k]);
		}
		/*
		 * Keep the entry in place (and its string, if equal) when tag and
		 * value stay; a repeated entry is rebuilt as one.
		 */
		if (!ops->remove_rpath && (rn < 0) != (rp < 0) &&
		    count_tag(p, DT_RUNPATH) + count_tag(p, DT_RPATH) == 1) {
			struct ent *e = &p->e[rn >= 0 ? rn : rp];

			e->tag = tag;
			set_str(e, p->rpath_buf);
			return 0;
		}
		at = p->n;
		while ((j = plan_find_tag(p, DT_RPATH)) >= 0 || (j = plan_find_tag(p, DT_RUNPATH)) >= 0) {
			if ((size_t)j < at) {
				at = (size_t)j;
			}
			plan_ent_remove(p, (size_t)j);
		}
		if (p->rpath_buf[0] && (!ops->remove_rpath || ops->set_rpath || ops->n_add_rpath)) {
			static const int64_t after[] = { DT_NEEDED, DT_SONAME };
			struct ent e = { .tag = tag, .str = p->rpath_buf, .changed = true };

			if (at > p->n) {
				at = p->n;
			}
			if (at == p->n) {
				at = after_last(p, after, 2);
			}
			return ent_insert(p, at, &e, err);
		}
	}
	return 0;
}
