/* SPDX-License-Identifier: MIT */
/*
 * The ELF editor. A rewrite is planned in full before a byte is written:
 * the new dynamic array, where every new string goes, whether the file must
 * grow. Strings go, in order of preference, to an identical string already
 * in .dynstr, over an old string nothing else points into, or into a new
 * .dynstr appended in a new PT_LOAD. Growing never moves existing sections:
 * the program header table, the new .dynstr and (if it must grow) the new
 * .dynamic are appended in one segment aligned to the file's own largest
 * p_align, so files built for 64 KiB pages stay loadable there.
 */
#define _GNU_SOURCE /* memmem */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "kwheel/patch.h"

#ifndef DT_MIPS_RLD_MAP_REL
#define DT_MIPS_RLD_MAP_REL 0x70000035
#endif

/* Spare DT_NULL entries left in a rebuilt .dynamic so the next edit fits in place. */
#define DYN_SLACK 8
/*
 * Most zero padding written between the end of the input and the new
 * segment. Real layouts need at most a few alignment units; a forged
 * p_align or p_vaddr must not make us allocate (and write) gigabytes.
 */
#define MAX_TAIL_PAD (UINT64_C(64) << 20)

struct ent {
	int64_t tag;
	uint64_t val;
	const char *str; /* string-valued tags: the string */
	bool changed;    /* str differs from what val points at */
	uint64_t old;    /* string-valued: the old offset (if it had one) */
	bool had_old;
};

/* One verneed record whose vn_file must name a new string. */
struct vn_edit {
	uint64_t field_off; /* file offset of vn_file */
	const char *str;
	uint64_t val;
};

struct plan {
	struct img im;
	struct ent *e;
	size_t n, cap;
	char *rpath_buf;
	struct vn_edit *vn;
	size_t n_vn;
	/* verneed compaction for removed libraries */
	bool vn_rewrite;
	unsigned char *vn_bytes; /* new contents of the verneed area */
	uint64_t vn_off, vn_area;
	uint64_t vn_count;
	uint16_t *dropped_ndx;   /* version indexes that no longer exist */
	bool drop_versioning;    /* .gnu.version and .gnu.version_r become plain data */
	size_t n_dropped;
	/* strings */
	uint64_t *refs;          /* offsets still referenced after the edit */
	size_t n_refs, cap_refs;
	char *append;            /* bytes appended to .dynstr */
	size_t n_append, cap_append;
	struct slot {
		uint64_t off, len;
		bool used;
	} *slots;
	size_t n_slots;
	struct slot_write {
		uint64_t off, len;
		const char *str;
	} *sw;
	size_t n_sw;
};

static bool is_str_tag(int64_t tag)
{
	return tag == DT_NEEDED || tag == DT_SONAME || tag == DT_RPATH || tag == DT_RUNPATH;
}

static int oom(struct kw_error *err)
{
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

static int ent_insert(struct plan *p, size_t at, const struct ent *e, struct kw_error *err)
{
	if (kw_grow(&p->e, &p->cap, p->n + 1, sizeof(*p->e)) < 0) {
		return oom(err);
	}
	memmove(&p->e[at + 1], &p->e[at], (p->n - at) * sizeof(*p->e));
	p->e[at] = *e;
	p->n++;
	return 0;
}

static void ent_remove(struct plan *p, size_t at)
{
	memmove(&p->e[at], &p->e[at + 1], (p->n - at - 1) * sizeof(*p->e));
	p->n--;
}

static int load_entries(struct plan *p, struct kw_error *err)
{
	size_t i;

	p->cap = p->im.ndyn + 8;
	p->e = kw_calloc(p->cap, sizeof(*p->e));
	if (!p->e) {
		return oom(err);
	}
	for (i = 0; i < p->im.ndyn; i++) {
		struct ent *e = &p->e[p->n++];

		e->tag = p->im.dyn[i].tag;
		e->val = p->im.dyn[i].val;
		if (is_str_tag(e->tag)) {
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
static long find_tag(const struct plan *p, int64_t tag)
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

/* ---- version needs ---------------------------------------------------- */


/* True if [off, off+len) shares a byte with the dynamic table, which a rewrite writes in place. */
static bool overlaps_dynamic(const struct img *im, uint64_t off, uint64_t len)
{
	uint64_t d = im->ph[im->dyn_ph].offset, dl = (uint64_t)im->dyn_cap * img_dynentsize(im);

	return off < d + dl && d < off + len;
}

static int cmp_off(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct vn_entries {
	const struct img *im;
	struct kw_error *err;
	uint64_t *at;
	size_t n, cap;
};

static int collect_vn_entry(void *ud, uint64_t off, uint64_t size, bool record)
{
	struct vn_entries *v = ud;
	const struct img *im = v->im;

	if (v->n >= 65536) {
		return kw_error_set(v->err, KW_EFORMAT, "'%s': too many version need entries", im->name);
	}
	if (kw_grow(&v->at, &v->cap, v->n + 1, sizeof(*v->at))) {
		return oom(v->err);
	}
	v->at[v->n++] = off;
	/* Likewise, no record inside the tables rewritten in place (.dynamic, .dynstr). */
	if (overlaps_dynamic(im, off, size) || (off < im->str_off + im->str_size && im->str_off < off + size)) {
		return kw_error_set(v->err, KW_EFORMAT, "'%s': a version need %s lies inside .dynamic or .dynstr",
				    im->name, record ? "record" : "entry");
	}
	/* And none on another table the loader reads (fuzzing: a record inside .dynsym). */
	if (img_table_hit(im, off, size, DT_VERNEED) != DT_NULL) {
		return kw_error_set(v->err, KW_EFORMAT, "'%s': a version need %s overlaps another table the loader reads",
				    im->name, record ? "record" : "entry");
	}
	return 0;
}

/*
 * Records and their aux entries (16 bytes each) must not share a byte: the
 * editor rewrites vn_file in place, and in an overlapping chain that write
 * lands in another record (fuzzing: a vn_next of 1).
 */
static int verneed_apart(const struct img *im, uint64_t off, uint64_t num, struct kw_error *err)
{
	struct vn_entries v = { im, err, NULL, 0, 0 };
	size_t i;
	int rc = img_each_version_entry(im, off, num, false, collect_vn_entry, &v);

	if (!rc && v.n > 1) {
		qsort(v.at, v.n, sizeof(*v.at), cmp_off);
	}
	for (i = 1; !rc && i < v.n; i++) {
		if (v.at[i] - v.at[i - 1] < 16) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': version need records overlap", im->name);
		}
	}
	free(v.at);
	return rc;
}

/*
 * Walk DT_VERNEED. For each record, call back with its offset and file name.
 * Bounded by DT_VERNEEDNUM and by the file, so a looping chain ends.
 */
static int each_verneed(struct plan *p, int (*fn)(struct plan *, uint64_t off, const char *file, void *),
			void *ud, struct kw_error *err)
{
	struct img *im = &p->im;
	uint64_t vaddr, num, off, i;
	int rc;

	if (!img_dyn(im, DT_VERNEED, &vaddr)) {
		return 0;
	}
	if (!img_dyn(im, DT_VERNEEDNUM, &num) || num > 4096) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERNEED without a sane DT_VERNEEDNUM", im->name);
	}
	if (!img_vaddr_off(im, vaddr, 16, &off)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERNEED lies outside the file", im->name);
	}
	rc = verneed_apart(im, off, num, err);
	if (rc) {
		return rc;
	}
	for (i = 0; i < num; i++) {
		const unsigned char *r;
		const char *file;
		uint64_t next;

		if (off > im->len || im->len - off < 16) {
			return kw_error_set(err, KW_EFORMAT, "'%s': version need record past the end of the file",
					    im->name);
		}
		r = im->b + off;
		file = img_str(im, img_rd(im, r + 4, 4));
		if (!file) {
			return kw_error_set(err, KW_EFORMAT, "'%s': version need names a string outside .dynstr",
					    im->name);
		}
		rc = fn(p, off, file, ud);
		if (rc < 0) {
			return rc;
		}
		next = img_rd(im, r + 12, 4);
		if (next == 0) {
			break;
		}
		off += next;
	}
	return 0;
}

struct vn_replace_ctx {
	const char *from, *to;
	struct kw_error *err;
};

static int vn_replace_cb(struct plan *p, uint64_t off, const char *file, void *ud)
{
	struct vn_replace_ctx *c = ud;
	size_t i;

	if (strcmp(file, c->from) != 0) {
		return 0;
	}
	for (i = 0; i < p->n_vn; i++) {
		if (p->vn[i].field_off == off + 4) {
			p->vn[i].str = c->to;
			return 0;
		}
	}
	{
		struct vn_edit *nv = kw_realloc(p->vn, (p->n_vn + 1) * sizeof(*p->vn));

		if (!nv) {
			return oom(c->err);
		}
		p->vn = nv;
		p->vn[p->n_vn].field_off = off + 4;
		p->vn[p->n_vn].str = c->to;
		p->vn[p->n_vn].val = 0;
		p->n_vn++;
	}
	return 0;
}

/* Collected verneed records, for compaction when a library is removed. */
struct vn_all {
	struct vrec {
		uint64_t off;
		const char *file;
	} *r;
	size_t n;
	struct kw_error *err;
};

static int vn_collect_cb(struct plan *p, uint64_t off, const char *file, void *ud)
{
	struct vn_all *a = ud;
	struct vrec *nr;

	(void)p;
	nr = kw_realloc(a->r, (a->n + 1) * sizeof(*a->r));
	if (!nr) {
		return oom(a->err);
	}
	a->r = nr;
	a->r[a->n].off = off;
	a->r[a->n].file = file;
	a->n++;
	return 0;
}

static bool name_in(const char *s, const char *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(s, v[i]) == 0) {
			return true;
		}
	}
	return false;
}

static bool versym_hits_tables(const struct img *im)
{
	size_t i;

	for (i = 0; i < im->ntab; i++) {
		if (im->tab[i].tag == DT_VERSYM &&
		    img_table_hit(im, im->tab[i].off, im->tab[i].len, DT_VERSYM) != DT_NULL) {
			return true;
		}
	}
	return false;
}

/*
 * Removing a DT_NEEDED that still has version needs would make glibc look
 * for a library that is not loaded, so its Verneed goes too: the chain is
 * rebuilt contiguously in its own bytes without it, and symbols that were
 * bound to its versions fall back to the base version.
 */
static int plan_verneed_removal(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	struct img *im = &p->im;
	struct vn_all all = { NULL, 0, err };
	uint64_t lo = UINT64_MAX, hi = 0, pos = 0;
	size_t i, kept = 0, total_aux = 0;
	int rc;

	if (ops->n_remove_needed == 0) {
		return 0;
	}
	rc = each_verneed(p, vn_collect_cb, &all, err);
	if (rc < 0) {
		goto out;
	}
	for (i = 0; i < all.n; i++) {
		if (name_in(all.r[i].file, ops->remove_needed, ops->n_remove_needed)) {
			break;
		}
	}
	if (i == all.n) {
		goto out;
	}
	/* Measure the area and check it is one block, so a compact rewrite stays inside it. */
	for (i = 0; i < all.n; i++) {
		const unsigned char *r = im->b + all.r[i].off;
		uint64_t cnt = img_rd(im, r + 2, 2), aux = all.r[i].off + img_rd(im, r + 8, 4), k;

		if (all.r[i].off < lo) {
			lo = all.r[i].off;
		}
		if (all.r[i].off + 16 > hi) {
			hi = all.r[i].off + 16;
		}
		for (k = 0; k < cnt; k++) {
			if (aux > im->len || im->len - aux < 16) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': version need aux past the end of the file",
						  im->name);
				goto out;
			}
			if (aux < lo) {
				lo = aux;
			}
			if (aux + 16 > hi) {
				hi = aux + 16;
			}
			total_aux++;
			if (img_rd(im, im->b + aux + 12, 4) == 0) {
				break;
			}
			aux += img_rd(im, im->b + aux + 12, 4);
		}
	}
	if (hi - lo != 16 * (all.n + total_aux)) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': .gnu.version_r is not one contiguous block", im->name);
		goto out;
	}
	if (img_hits_headers(im, lo, hi - lo)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': .gnu.version_r lies on the ELF, program or section headers",
				  im->name);
		goto out;
	}
	/* The chain is rewritten, and so are the version indices in .gnu.version: neither may lie on another table. */
	if (img_table_hit(im, lo, hi - lo, DT_VERNEED) != DT_NULL || versym_hits_tables(im)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': .gnu.version_r or .gnu.version overlaps another table the loader reads",
				  im->name);
		goto out;
	}
	p->vn_bytes = kw_calloc(1, hi - lo);
	if (!p->vn_bytes) {
		rc = oom(err);
		goto out;
	}
	p->vn_off = lo;
	p->vn_area = hi - lo;
	for (i = 0; i < all.n; i++) {
		const unsigned char *r = im->b + all.r[i].off;
		uint64_t cnt = img_rd(im, r + 2, 2), aux = all.r[i].off + img_rd(im, r + 8, 4), k, rec = pos;
		bool drop = name_in(all.r[i].file, ops->remove_needed, ops->n_remove_needed);

		if (!drop) {
			memcpy(p->vn_bytes + rec, r, 16);
			pos += 16;
		}
		for (k = 0; k < cnt; k++) {
			const unsigned char *a = im->b + aux;
			uint64_t next = img_rd(im, a + 12, 4);

			/* Indices 0 and 1 are local and global, never a library's version: no symbol is rebound for them. */
			if (drop && (img_rd(im, a + 6, 2) & 0x7fff) > 1) {
				uint16_t *nd = kw_realloc(p->dropped_ndx, (p->n_dropped + 1) * sizeof(*nd));

				if (!nd) {
					rc = oom(err);
					goto out;
				}
				p->dropped_ndx = nd;
				p->dropped_ndx[p->n_dropped++] = (uint16_t)(img_rd(im, a + 6, 2) & 0x7fff);
			} else if (!drop) {
				memcpy(p->vn_bytes + pos, a, 16);
				img_wr(im, p->vn_bytes + pos + 12, 4, k + 1 < cnt && next ? 16 : 0);
				pos += 16;
			}
			if (next == 0) {
				break;
			}
			aux += next;
		}
		if (!drop) {
			img_wr(im, p->vn_bytes + rec + 8, 4, 16);
			img_wr(im, p->vn_bytes + rec + 12, 4, pos - rec);
			kept++;
			/* vn_file offsets of kept records are patched below if a replace touched them. */
			for (k = 0; k < p->n_vn; k++) {
				if (p->vn[k].field_off == all.r[i].off + 4) {
					p->vn[k].field_off = lo + rec + 4;
				}
			}
		}
	}
	/* The last kept record ends the chain. */
	if (kept > 0) {
		uint64_t q = 0, last = 0;

		for (i = 0; i < kept; i++) {
			last = q;
			q += img_rd(im, p->vn_bytes + q + 12, 4);
		}
		img_wr(im, p->vn_bytes + last + 12, 4, 0);
	}
	p->vn_rewrite = true;
	p->vn_count = kept;
	for (i = 0; i < p->n; i++) {
		if (p->e[i].tag == DT_VERNEEDNUM) {
			p->e[i].val = kept;
		}
	}
	if (kept == 0) {
		/* An empty chain must not be announced at all: glibc reads the first record unconditionally. */
		long j;

		while ((j = find_tag(p, DT_VERNEED)) >= 0) {
			ent_remove(p, (size_t)j);
		}
		while ((j = find_tag(p, DT_VERNEEDNUM)) >= 0) {
			ent_remove(p, (size_t)j);
		}
		/* With no version definitions either, symbol versioning is gone altogether. */
		if (find_tag(p, DT_VERDEF) < 0) {
			while ((j = find_tag(p, DT_VERSYM)) >= 0) {
				ent_remove(p, (size_t)j);
			}
			p->drop_versioning = true;
		}
	}
	rc = 0;
out:
	free(all.r);
	return rc;
}

/* ---- applying operations ---------------------------------------------- */

static int apply_ops(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	size_t i, k;
	int rc;

	for (i = 0; i < p->n;) {
		if (p->e[i].tag == DT_NEEDED && name_in(p->e[i].str, ops->remove_needed, ops->n_remove_needed)) {
			ent_remove(p, i);
		} else {
			i++;
		}
	}
	for (k = 0; k < ops->n_replace_needed; k++) {
		const struct kw_patch_replace *r = &ops->replace_needed[k];
		struct vn_replace_ctx c = { r->from, r->to, err };

		if (!r->from || !r->to || !*r->to) {
			return kw_error_set(err, KW_EINVAL, "replace-needed needs two non-empty names");
		}
		for (i = 0; i < p->n; i++) {
			if (p->e[i].tag == DT_NEEDED && strcmp(p->e[i].str, r->from) == 0) {
				set_str(&p->e[i], r->to);
			}
		}
		if (strcmp(r->from, r->to) != 0) {
			rc = each_verneed(p, vn_replace_cb, &c, err);
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
		long at = find_tag(p, DT_SONAME);

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
	if (ops->set_rpath || ops->n_add_rpath || ops->remove_rpath || ops->force_rpath) {
		long rp = find_tag(p, DT_RPATH), rn = find_tag(p, DT_RUNPATH);
		const char *cur = rn >= 0 ? p->e[rn].str : rp >= 0 ? p->e[rp].str : NULL;
		int64_t tag = ops->force_rpath ? DT_RPATH : rn >= 0 ? DT_RUNPATH : rp >= 0 ? DT_RPATH : DT_RUNPATH;
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
			return oom(err);
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
		if (tag == DT_RUNPATH && rn >= 0 && rp < 0 && !ops->remove_rpath && count_tag(p, DT_RUNPATH) == 1) {
			set_str(&p->e[rn], p->rpath_buf);
			return 0;
		}
		if (tag == DT_RPATH && rp >= 0 && rn < 0 && !ops->remove_rpath && count_tag(p, DT_RPATH) == 1) {
			set_str(&p->e[rp], p->rpath_buf);
			return 0;
		}
		at = p->n;
		while ((j = find_tag(p, DT_RPATH)) >= 0 || (j = find_tag(p, DT_RUNPATH)) >= 0) {
			if ((size_t)j < at) {
				at = (size_t)j;
			}
			ent_remove(p, (size_t)j);
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

/* ---- string placement ------------------------------------------------- */

static int add_ref(struct plan *p, uint64_t off, struct kw_error *err)
{
	if (kw_grow(&p->refs, &p->cap_refs, p->n_refs + 1, sizeof(*p->refs)) < 0) {
		return oom(err);
	}
	p->refs[p->n_refs++] = off;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * True if a string still referenced shares a byte with [off, off+len]: one
 * that starts inside it, or one that starts before it and runs into it (the
 * linker merges tails: "libc.so.6" also serves as ".6").
 */
static bool referenced(const struct plan *p, uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = p->n_refs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->refs[mid] < off) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	if (lo < p->n_refs && p->refs[lo] < off + len) {
		return true;
	}
	if (lo > 0) {
		/* Nearer earlier references are suffixes of farther ones: the nearest decides. */
		const char *s = img_str(&p->im, p->refs[lo - 1]);

		return !s || p->refs[lo - 1] + strlen(s) >= off;
	}
	return false;
}

struct ref_walk {
	struct kw_error *err;
};

static int vn_refs_cb(struct plan *p, uint64_t off, const char *file, void *ud)
{
	struct ref_walk *w = ud;
	struct img *im = &p->im;
	uint64_t cnt = img_rd(im, im->b + off + 2, 2), aux = off + img_rd(im, im->b + off + 8, 4), k;
	size_t i;
	bool edited = false;

	(void)file;
	for (i = 0; i < p->n_vn; i++) {
		edited |= p->vn[i].field_off == off + 4;
	}
	if (!edited && add_ref(p, img_rd(im, im->b + off + 4, 4), w->err) < 0) {
		return KW_ENOMEM;
	}
	for (k = 0; k < cnt && k < 65536; k++) {
		if (aux > im->len || im->len - aux < 16) {
			return kw_error_set(w->err, KW_EFORMAT, "'%s': version need aux past the end of the file",
					    im->name);
		}
		if (add_ref(p, img_rd(im, im->b + aux + 8, 4), w->err) < 0) {
			return KW_ENOMEM;
		}
		if (img_rd(im, im->b + aux + 12, 4) == 0) {
			break;
		}
		aux += img_rd(im, im->b + aux + 12, 4);
	}
	return 0;
}

/*
 * Everything that will still point into .dynstr after the edit. Only with
 * section headers can .dynsym be sized without trusting hash tables, and a
 * section we do not understand linking to .dynstr could hold offsets too;
 * a .dynsym section that is not where DT_SYMTAB points, or shorter than the
 * table the hash tables index, says nothing about (all) the symbols the
 * loader reads. In those cases no old string is overwritten (we append
 * instead), which is always safe.
 */
static int collect_refs(struct plan *p, bool *complete, struct kw_error *err)
{
	struct img *im = &p->im;
	struct ref_walk w = { err };
	uint64_t vaddr, num, off, i, symtab = 0;
	bool has_symtab, symtab_seen = false;
	size_t s;
	int rc;

	*complete = false;
	if (!im->sh || im->sh_dynstr < 0 || !im->nsyms_known) {
		return 0;
	}
	has_symtab = img_dyn(im, DT_SYMTAB, &symtab);
	for (i = 0; i < p->n; i++) {
		if (p->e[i].str && !p->e[i].changed && add_ref(p, p->e[i].val, err) < 0) {
			return KW_ENOMEM;
		}
	}
	for (s = 0; s < im->shnum; s++) {
		const struct kw_elf_shdr *sh = &im->sh[s];

		if (sh->link != (uint32_t)im->sh_dynstr || sh->type == SHT_NOBITS) {
			continue;
		}
		switch (sh->type) {
		case SHT_DYNSYM: {
			size_t es = im->is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);

			if (sh->offset > im->len || sh->size > im->len - sh->offset) {
				return 0;
			}
			/* The loader reads the symbols at DT_SYMTAB: a section elsewhere names other bytes. */
			if (!has_symtab || sh->addr != symtab || !img_vaddr_off(im, symtab, 1, &off) ||
			    off != sh->offset || sh->size / es < im->nsyms) {
				return 0;
			}
			symtab_seen = true;
			for (i = 0; i < sh->size / es; i++) {
				uint64_t n = img_rd(im, im->b + sh->offset + i * es, 4);

				if (n && add_ref(p, n, err) < 0) {
					return KW_ENOMEM;
				}
			}
			break;
		}
		case SHT_DYNAMIC:
		case SHT_GNU_verneed:
		case SHT_GNU_versym:
		case SHT_HASH:
		case SHT_GNU_HASH:
			break; /* handled through the dynamic segment below */
		case SHT_GNU_verdef:
			break;
		default:
			return 0;
		}
	}
	if (has_symtab && !symtab_seen) {
		return 0;
	}
	rc = each_verneed(p, vn_refs_cb, &w, err);
	if (rc < 0) {
		return rc;
	}
	if (img_dyn(im, DT_VERDEF, &vaddr) && img_dyn(im, DT_VERDEFNUM, &num) && num < 65536) {
		if (!img_vaddr_off(im, vaddr, 20, &off)) {
			return 0;
		}
		for (i = 0; i < num; i++) {
			uint64_t cnt, aux, k, next;

			if (off > im->len || im->len - off < 20) {
				return 0;
			}
			cnt = img_rd(im, im->b + off + 6, 2);
			aux = off + img_rd(im, im->b + off + 12, 4);
			next = img_rd(im, im->b + off + 16, 4);
			for (k = 0; k < cnt; k++) {
				if (aux > im->len || im->len - aux < 8) {
					return 0;
				}
				if (add_ref(p, img_rd(im, im->b + aux, 4), err) < 0) {
					return KW_ENOMEM;
				}
				if (img_rd(im, im->b + aux + 4, 4) == 0) {
					break;
				}
				aux += img_rd(im, im->b + aux + 4, 4);
			}
			if (next == 0) {
				break;
			}
			off += next;
		}
	}
	/* qsort's array must not be NULL even for no elements, and nothing may be referenced. */
	if (p->n_refs > 0) {
		qsort(p->refs, p->n_refs, sizeof(*p->refs), cmp_u64);
	}
	*complete = true;
	return 0;
}

/* An identical NUL-terminated string already in .dynstr. */
static bool find_existing(const struct plan *p, const char *s, uint64_t *off)
{
	const char *base = (const char *)p->im.b + p->im.str_off;
	size_t n = strlen(s) + 1;
	const char *hit;

	if (n == 1) {
		/* The empty string: any NUL; index 0 is one by definition. */
		if (base[0] == 0) {
			*off = 0;
			return true;
		}
	}
	hit = memmem(base, p->im.str_size, s, n);
	if (!hit) {
		return false;
	}
	*off = (uint64_t)(hit - base);
	return true;
}

static int place_string(struct plan *p, const char *s, bool can_overwrite, uint64_t *off, struct kw_error *err)
{
	size_t n = strlen(s), i;
	struct slot *best = NULL;

	if (find_existing(p, s, off)) {
		return add_ref(p, *off, err) < 0 ? KW_ENOMEM : 0;
	}
	for (i = 0; i < p->n_sw; i++) {
		if (strcmp(p->sw[i].str, s) == 0) {
			*off = p->sw[i].off;
			return 0;
		}
	}
	if (can_overwrite) {
		for (i = 0; i < p->n_slots; i++) {
			struct slot *sl = &p->slots[i];

			if (!sl->used && sl->len >= n && !referenced(p, sl->off, sl->len) &&
			    img_table_hit(&p->im, p->im.str_off + sl->off, sl->len + 1, DT_STRTAB) == DT_NULL &&
			    (!best || sl->len < best->len)) {
				best = sl;
			}
		}
	}
	if (best) {
		struct slot_write *nw = kw_realloc(p->sw, (p->n_sw + 1) * sizeof(*p->sw));

		if (!nw) {
			return oom(err);
		}
		p->sw = nw;
		best->used = true;
		p->sw[p->n_sw].off = best->off;
		p->sw[p->n_sw].len = best->len;
		p->sw[p->n_sw].str = s;
		p->n_sw++;
		*off = best->off;
		return 0;
	}
	/* Reuse an already appended copy: s and its NUL, n + 1 bytes, must lie wholly inside. */
	for (i = 0; p->append && n < p->n_append && i < p->n_append - n; i++) {
		if ((i == 0 || p->append[i - 1] == 0) && memcmp(p->append + i, s, n + 1) == 0) {
			*off = p->im.str_size + i;
			return 0;
		}
	}
	if (kw_grow(&p->append, &p->cap_append, p->n_append + n + 1, 1) < 0) {
		return oom(err);
	}
	*off = p->im.str_size + p->n_append;
	memcpy(p->append + p->n_append, s, n + 1);
	p->n_append += n + 1;
	return 0;
}

static int place_strings(struct plan *p, struct kw_error *err)
{
	bool complete;
	size_t i, j;
	int rc;

	rc = collect_refs(p, &complete, err);
	if (rc < 0) {
		return rc;
	}
	/* Old strings of changed or removed entries are candidate slots. */
	for (i = 0; complete && i < p->im.ndyn; i++) {
		const struct kw_elf_dyn *d = &p->im.dyn[i];
		bool still = false;

		if (!is_str_tag(d->tag)) {
			continue;
		}
		for (j = 0; j < p->n; j++) {
			still |= p->e[j].str && !p->e[j].changed && p->e[j].val == d->val;
		}
		if (!still) {
			struct slot *ns = kw_realloc(p->slots, (p->n_slots + 1) * sizeof(*ns));

			if (!ns) {
				return oom(err);
			}
			p->slots = ns;
			p->slots[p->n_slots].off = d->val;
			p->slots[p->n_slots].len = strlen(img_str(&p->im, d->val));
			p->slots[p->n_slots].used = false;
			p->n_slots++;
		}
	}
	/* First pass: strings that already exist, so their bytes are protected before any overwrite. */
	for (i = 0; i < p->n; i++) {
		uint64_t off;

		if (p->e[i].str && p->e[i].changed && find_existing(p, p->e[i].str, &off)) {
			p->e[i].val = off;
			p->e[i].changed = false;
			if (add_ref(p, off, err) < 0) {
				return KW_ENOMEM;
			}
		}
	}
	for (i = 0; i < p->n_vn; i++) {
		if (find_existing(p, p->vn[i].str, &p->vn[i].val) && add_ref(p, p->vn[i].val, err) < 0) {
			return KW_ENOMEM;
		}
	}
	if (complete && p->n_refs > 0) {
		qsort(p->refs, p->n_refs, sizeof(*p->refs), cmp_u64);
	}
	for (i = 0; i < p->n; i++) {
		if (p->e[i].str && p->e[i].changed) {
			rc = place_string(p, p->e[i].str, complete, &p->e[i].val, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	for (i = 0; i < p->n_vn; i++) {
		rc = place_string(p, p->vn[i].str, complete, &p->vn[i].val, err);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- layout and writing ----------------------------------------------- */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return a <= 1 ? v : (v + a - 1) / a * a;
}

static bool entries_changed(const struct plan *p)
{
	size_t i;

	if (p->n != p->im.ndyn) {
		return true;
	}
	for (i = 0; i < p->n; i++) {
		if (p->e[i].tag != p->im.dyn[i].tag || p->e[i].val != p->im.dyn[i].val) {
			return true;
		}
	}
	return false;
}

static void write_versym_fixups(struct plan *p)
{
	struct img *im = &p->im;
	uint64_t vaddr, off, i, count = 0;
	size_t k;

	if (p->n_dropped == 0 || !img_dyn(im, DT_VERSYM, &vaddr) || !img_vaddr_off(im, vaddr, 2, &off)) {
		return;
	}
	/* Without section headers the symbol count is bounded by the segment: stop at the file's end. */
	if (im->sh) {
		for (k = 0; k < im->shnum; k++) {
			if (im->sh[k].type == SHT_GNU_versym && im->sh[k].addr == vaddr) {
				count = im->sh[k].size / 2;
			}
		}
	}
	for (i = 0; i < count && off + 2 * i + 2 <= im->len; i++) {
		unsigned char *q = im->b + off + 2 * i;
		uint16_t v;

		/*
		 * A forged sh_size can stretch .gnu.version over the tables this
		 * rewrite has just written; the symbols cannot go on that far.
		 */
		if (overlaps_dynamic(im, off + 2 * i, 2) || img_hits_headers(im, off + 2 * i, 2) ||
		    (off + 2 * i < im->str_off + im->str_size && im->str_off < off + 2 * i + 2) ||
		    (p->vn_rewrite && off + 2 * i < p->vn_off + p->vn_area && p->vn_off < off + 2 * i + 2)) {
			break;
		}
		v = (uint16_t)img_rd(im, q, 2);

		for (k = 0; k < p->n_dropped; k++) {
			if ((v & 0x7fff) == p->dropped_ndx[k]) {
				img_wr(im, q, 2, 1);
			}
		}
	}
}

/*
 * Symbols defined relative to a section that moved (section symbols in
 * .symtab, mostly) follow it, or elflint and debuggers see them out of range.
 */
/*
 * How much of [off, off+size) a symbol table named by a section header may
 * really hold: up to the first table the loader reads that starts after it.
 * A forged sh_size could otherwise run over .gnu.hash or .dynamic, and
 * moving "symbols" there would rewrite them.
 */
static uint64_t clamp_to_tables(const struct img *im, uint64_t off, uint64_t size)
{
	static const int64_t tags[] = { DT_GNU_HASH, DT_HASH, DT_STRTAB, DT_VERSYM, DT_VERNEED, DT_VERDEF,
					DT_RELA, DT_REL, DT_JMPREL, DT_INIT_ARRAY, DT_FINI_ARRAY };
	uint64_t lim = size, v, at;
	size_t i;

	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		if (img_dyn(im, tags[i], &v) && img_vaddr_off(im, v, 1, &at) && at > off && at - off < lim) {
			lim = at - off;
		}
	}
	if (im->dyn_ph >= 0) {
		at = im->ph[im->dyn_ph].offset;
		if (at > off && at - off < lim) {
			lim = at - off;
		}
	}
	return lim;
}

static void move_section_symbols(struct img *im, long sec, uint64_t old_addr, uint64_t old_size, uint64_t new_addr)
{
	size_t es = im->is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym), s, i;

	if (!im->sh || sec < 0) {
		return;
	}
	for (s = 0; s < im->shnum; s++) {
		const struct kw_elf_shdr *t = &im->sh[s];
		uint64_t n;

		if ((t->type != SHT_SYMTAB && t->type != SHT_DYNSYM) || t->offset > im->len ||
		    t->size > im->len - t->offset || img_hits_headers(im, t->offset, t->size)) {
			continue;
		}
		n = clamp_to_tables(im, t->offset, t->size) / es;
		/*
		 * One starting inside .dynamic is no symbol table: its "values" would be dynamic entries;
		 * nor is one lying on another table the loader reads (.dynsym itself excepted).
		 */
		if (n && (overlaps_dynamic(im, t->offset, n * es) ||
			  img_table_hit(im, t->offset, n * es, t->type == SHT_DYNSYM ? DT_SYMTAB : DT_NULL) != DT_NULL)) {
			continue;
		}

		for (i = 0; i < n; i++) {
			unsigned char *q = im->b + t->offset + i * es;
			unsigned char *shndx = q + (im->is64 ? 6 : 14), *val = q + (im->is64 ? 8 : 4);
			uint64_t v = img_rd(im, val, img_word(im));

			if (img_rd(im, shndx, 2) == (uint64_t)sec && v >= old_addr && v <= old_addr + old_size) {
				img_wr(im, val, img_word(im), v - old_addr + new_addr);
			}
		}
	}
}

static uint64_t largest_symbol(const struct img *im)
{
	size_t es = im->is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym), s, i;
	uint64_t max = 0;

	for (s = 0; im->sh && s < im->shnum; s++) {
		const struct kw_elf_shdr *t = &im->sh[s];

		if (t->type != SHT_DYNSYM || t->offset > im->len || t->size > im->len - t->offset) {
			continue;
		}
		for (i = 0; i < t->size / es; i++) {
			uint64_t sz = img_rd(im, im->b + t->offset + i * es + (im->is64 ? 16 : 8), img_word(im));

			if (sz > max && sz < (1u << 30)) {
				max = sz;
			}
		}
	}
	return max;
}

static int build(struct plan *p, struct kw_patch_result *res, struct kw_error *err)
{
	struct img *im = &p->im;
	size_t des = img_dynentsize(im), pes = img_phentsize(im), ses = img_shentsize(im), i, k;
	bool need_dynstr = p->n_append > 0, need_dyn = p->n + 1 > im->dyn_cap;
	uint64_t new_str_size = im->str_size + p->n_append;
	unsigned char *strdst;
	unsigned char *tail = NULL;
	size_t tail_len = 0;

	memset(res, 0, sizeof(*res));
	if (need_dynstr || need_dyn) {
		uint64_t maxalign = 1, maxend = 0, first_delta = 0, seg_off, vaddr, phdr_at, str_at = 0, dyn_at = 0,
			 seg_size, dyn_cap = p->n + 1 + DYN_SLACK;
		bool first = true, has_interp = false;
		size_t nph = im->phnum + 1u, last_load = 0;
		struct kw_elf_phdr *ph;

		for (i = 0; i < im->phnum; i++) {
			const struct kw_elf_phdr *q = &im->ph[i];

			has_interp |= q->type == PT_INTERP;
			if (q->type != PT_LOAD) {
				continue;
			}
			last_load = i;
			if (q->align > maxalign) {
				maxalign = q->align;
			}
			if (q->vaddr + q->memsz > maxend) {
				maxend = q->vaddr + q->memsz;
			}
			if (first) {
				first_delta = q->vaddr - q->offset;
				first = false;
			}
		}
		if (first) {
			return kw_error_set(err, KW_EFORMAT, "'%s': no PT_LOAD segment", im->name);
		}
		if (maxalign & (maxalign - 1)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': p_align %llu is not a power of two", im->name,
					    (unsigned long long)maxalign);
		}
		if (maxend > UINT64_MAX / 2) {
			return kw_error_set(err, KW_ELIMIT, "'%s': no address space left for a new segment", im->name);
		}
		/*
		 * Leave a gap of the largest dynamic symbol's size after the last
		 * segment: it costs only address space, and eu-elflint takes a
		 * relocation to cover its symbol's size when it checks that no
		 * relocation touches a read-only segment.
		 */
		maxend += largest_symbol(im);
		seg_off = align_up(im->len, 16);
		vaddr = align_up(maxend, maxalign) + seg_off % maxalign;
		if (has_interp && vaddr - seg_off != first_delta) {
			/*
			 * Kernels before 5.18 put AT_PHDR at load base + e_phoff, so in an
			 * executable the table's address must be its offset plus the
			 * first segment's delta, even if that costs padding.
			 */
			uint64_t lo = align_up(maxend, maxalign);

			seg_off = lo > first_delta ? lo - first_delta : 0;
			if (seg_off < align_up(im->len, 16)) {
				seg_off = align_up(align_up(im->len, 16), maxalign) + (seg_off % maxalign);
				if (seg_off < im->len) {
					seg_off += maxalign;
				}
			}
			vaddr = seg_off + first_delta;
		}
		/* vaddr below maxend: a huge p_align wrapped the rounding. */
		if (vaddr < maxend || vaddr > UINT64_MAX / 2 || (!im->is64 && vaddr + 0x100000 > UINT32_MAX)) {
			return kw_error_set(err, KW_ELIMIT, "'%s': no address space left for a new segment", im->name);
		}
		if (seg_off < im->len || seg_off - im->len > MAX_TAIL_PAD) {
			return kw_error_set(err, KW_ELIMIT, "'%s': new segment would need %llu bytes of padding",
					    im->name, (unsigned long long)(seg_off - im->len));
		}
		phdr_at = 0;
		seg_size = nph * pes;
		if (need_dynstr) {
			str_at = seg_size;
			seg_size += new_str_size;
		}
		if (need_dyn) {
			seg_size = align_up(seg_size, img_word(im));
			dyn_at = seg_size;
			seg_size += dyn_cap * des;
		}
		tail_len = seg_off - im->len + seg_size;
		tail = kw_calloc(1, tail_len);
		if (!tail) {
			return oom(err);
		}
		/* From here on nothing fails: write. */
		ph = kw_calloc(nph, sizeof(*ph));
		if (!ph) {
			free(tail);
			return oom(err);
		}
		{
			unsigned char *seg = tail + (seg_off - im->len);
			struct kw_elf_phdr load = { .type = PT_LOAD, .flags = PF_R | (need_dyn ? PF_W : 0), .offset = seg_off,
					   .vaddr = vaddr, .paddr = vaddr, .filesz = seg_size, .memsz = seg_size,
					   .align = maxalign };

			for (i = 0, k = 0; i < im->phnum; i++) {
				ph[k] = im->ph[i];
				if (ph[k].type == PT_PHDR) {
					ph[k].offset = seg_off + phdr_at;
					ph[k].vaddr = ph[k].paddr = vaddr + phdr_at;
					ph[k].filesz = ph[k].memsz = nph * pes;
				}
				if (ph[k].type == PT_DYNAMIC && need_dyn) {
					ph[k].offset = seg_off + dyn_at;
					ph[k].vaddr = ph[k].paddr = vaddr + dyn_at;
					ph[k].filesz = ph[k].memsz = dyn_cap * des;
				}
				k++;
				if (i == last_load) {
					ph[k++] = load;
				}
			}
			for (i = 0; i < nph; i++) {
				img_put_ph(im, seg + phdr_at + i * pes, &ph[i]);
			}
			free(ph);
			if (need_dynstr) {
				memcpy(seg + str_at, im->b + im->str_off, im->str_size);
				memcpy(seg + str_at + im->str_size, p->append, p->n_append);
				for (i = 0; i < p->n; i++) {
					if (p->e[i].tag == DT_STRTAB) {
						p->e[i].val = vaddr + str_at;
					} else if (p->e[i].tag == DT_STRSZ) {
						p->e[i].val = new_str_size;
					}
				}
			}
			strdst = need_dynstr ? seg + str_at : im->b + im->str_off;
			if (need_dyn) {
				struct kw_elf_dyn z = { DT_NULL, 0 };

				for (i = 0; i < p->n; i++) {
					struct kw_elf_dyn d = { p->e[i].tag, p->e[i].val };

					if (im->machine == EM_MIPS && d.tag == DT_MIPS_RLD_MAP_REL) {
						/* Relative to the entry's own address, which moved. */
						uint64_t old_at = im->ph[im->dyn_ph].vaddr + i * des;

						d.val += old_at - (vaddr + dyn_at + i * des);
					}
					img_put_dyn(im, seg + dyn_at + i * des, &d);
				}
				for (; i < dyn_cap; i++) {
					img_put_dyn(im, seg + dyn_at + i * des, &z);
				}
			}
			/* ELF header: the table moved and has one more entry. */
			img_wr(im, im->b + (im->is64 ? 32 : 28), img_word(im), seg_off + phdr_at);
			img_wr(im, im->b + (im->is64 ? 56 : 44), 2, nph);
			if (im->sh) {
				if (need_dynstr && im->sh_dynstr >= 0) {
					struct kw_elf_shdr s = im->sh[im->sh_dynstr];

					s.offset = seg_off + str_at;
					s.addr = vaddr + str_at;
					s.size = new_str_size;
					img_put_sh(im, im->b + im->shoff + (size_t)im->sh_dynstr * ses, &s);
					move_section_symbols(im, im->sh_dynstr, im->sh[im->sh_dynstr].addr,
							     im->sh[im->sh_dynstr].size, s.addr);
				}
				if (need_dyn && im->sh_dynamic >= 0) {
					struct kw_elf_shdr s = im->sh[im->sh_dynamic];

					s.offset = seg_off + dyn_at;
					s.addr = vaddr + dyn_at;
					s.size = dyn_cap * des;
					img_put_sh(im, im->b + im->shoff + (size_t)im->sh_dynamic * ses, &s);
					move_section_symbols(im, im->sh_dynamic, im->sh[im->sh_dynamic].addr,
							     im->sh[im->sh_dynamic].size, s.addr);
				}
			}
		}
		res->grew = true;
		res->moved_dynstr = need_dynstr;
		res->moved_dynamic = need_dyn;
	} else {
		strdst = im->b + im->str_off;
	}
	for (i = 0; i < p->n_sw; i++) {
		memset(strdst + p->sw[i].off, 0, p->sw[i].len);
		memcpy(strdst + p->sw[i].off, p->sw[i].str, strlen(p->sw[i].str));
	}
	res->in_place = p->n_sw;
	if (!need_dyn && (entries_changed(p) || res->grew)) {
		struct kw_elf_dyn z = { DT_NULL, 0 };
		unsigned char *d0 = im->b + im->ph[im->dyn_ph].offset;

		for (i = 0; i < p->n; i++) {
			struct kw_elf_dyn d = { p->e[i].tag, p->e[i].val };

			img_put_dyn(im, d0 + i * des, &d);
		}
		for (; i < im->dyn_cap; i++) {
			img_put_dyn(im, d0 + i * des, &z);
		}
	}
	if (p->vn_rewrite) {
		memcpy(im->b + p->vn_off, p->vn_bytes, p->vn_area);
		if (im->sh && im->sh_verneed >= 0) {
			struct kw_elf_shdr s = im->sh[im->sh_verneed];

			s.info = (uint32_t)p->vn_count;
			img_put_sh(im, im->b + im->shoff + (size_t)im->sh_verneed * ses, &s);
		}
		write_versym_fixups(p);
		if (p->drop_versioning && im->sh) {
			/*
			 * Nothing points at them any more. Typed and named as version
			 * sections they would still be read as such, so they become
			 * plain data, named without the leading dot of a reserved name.
			 */
			for (i = 0; i < im->shnum; i++) {
				if (im->sh[i].type == SHT_GNU_versym || im->sh[i].type == SHT_GNU_verneed) {
					struct kw_elf_shdr s = im->sh[i];

					s.type = SHT_PROGBITS;
					s.name += 1;
					s.link = 0;
					s.info = 0;
					img_put_sh(im, im->b + im->shoff + i * ses, &s);
				}
			}
		}
	}
	for (i = 0; i < p->n_vn; i++) {
		img_wr(im, im->b + p->vn[i].field_off, 4, p->vn[i].val);
	}
	res->tail = tail;
	res->tail_len = tail_len;
	res->changed = res->grew || p->n_sw > 0 || entries_changed(p) || p->vn_rewrite || p->n_vn > 0;
	return 0;
}

static void plan_release(struct plan *p)
{
	img_release(&p->im);
	free(p->e);
	free(p->rpath_buf);
	free(p->vn);
	free(p->vn_bytes);
	free(p->dropped_ndx);
	free(p->refs);
	free(p->append);
	free(p->slots);
	free(p->sw);
}

int kw_patch_image(unsigned char *buf, size_t len, const char *name, const struct kw_patch_ops *ops,
		   struct kw_patch_result *res, struct kw_error *err)
{
	struct plan p;
	int rc;

	memset(&p, 0, sizeof(p));
	memset(res, 0, sizeof(*res));
	rc = img_load(&p.im, buf, len, name, err);
	if (rc == 0) {
		rc = load_entries(&p, err);
	}
	if (rc == 0) {
		rc = apply_ops(&p, ops, err);
	}
	if (rc == 0) {
		rc = plan_verneed_removal(&p, ops, err);
	}
	if (rc == 0) {
		rc = place_strings(&p, err);
	}
	if (rc == 0) {
		rc = build(&p, res, err);
	}
	plan_release(&p);
	return rc;
}

void kw_patch_result_release(struct kw_patch_result *res)
{
	free(res->tail);
	memset(res, 0, sizeof(*res));
}
