/* SPDX-License-Identifier: MIT */
/* Version needs: following a renamed library, dropping a removed one. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"


/* True if [off, off+len) shares a byte with the dynamic table, which a rewrite writes in place. */
bool plan_overlaps_dynamic(const struct img *im, uint64_t off, uint64_t len)
{
	uint64_t d = im->dyn_off, dl = (uint64_t)im->dyn_cap * img_dynentsize(im);

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
		return plan_oom(v->err);
	}
	v->at[v->n++] = off;
	/* Likewise, no record inside the tables rewritten in place (.dynamic, .dynstr). */
	if (plan_overlaps_dynamic(im, off, size) || (off < im->str_off + im->str_size && im->str_off < off + size)) {
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
int plan_each_verneed(struct plan *p, int (*fn)(struct plan *, uint64_t off, const char *file, void *),
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

int plan_vn_replace_cb(struct plan *p, uint64_t off, const char *file, void *ud)
{
	struct plan_vn_replace_ctx *c = ud;
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
			return plan_oom(c->err);
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
		return plan_oom(a->err);
	}
	a->r = nr;
	a->r[a->n].off = off;
	a->r[a->n].file = file;
	a->n++;
	return 0;
}

bool plan_name_in(const char *s, const char *const *v, size_t n)
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
int plan_verneed_removal(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	struct img *im = &p->im;
	struct vn_all all = { NULL, 0, err };
	uint64_t lo = UINT64_MAX, hi = 0, pos = 0;
	size_t i, kept = 0, total_aux = 0;
	int rc;

	if (ops->n_remove_needed == 0) {
		return 0;
	}
	rc = plan_each_verneed(p, vn_collect_cb, &all, err);
	if (rc < 0) {
		goto out;
	}
	for (i = 0; i < all.n; i++) {
		if (plan_name_in(all.r[i].file, ops->remove_needed, ops->n_remove_needed)) {
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
		rc = plan_oom(err);
		goto out;
	}
	p->vn_off = lo;
	p->vn_area = hi - lo;
	for (i = 0; i < all.n; i++) {
		const unsigned char *r = im->b + all.r[i].off;
		uint64_t cnt = img_rd(im, r + 2, 2), aux = all.r[i].off + img_rd(im, r + 8, 4), k, rec = pos;
		bool drop = plan_name_in(all.r[i].file, ops->remove_needed, ops->n_remove_needed);

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
					rc = plan_oom(err);
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

		while ((j = plan_find_tag(p, DT_VERNEED)) >= 0) {
			plan_ent_remove(p, (size_t)j);
		}
		while ((j = plan_find_tag(p, DT_VERNEEDNUM)) >= 0) {
			plan_ent_remove(p, (size_t)j);
		}
		/* With no version definitions either, symbol versioning is gone altogether. */
		if (plan_find_tag(p, DT_VERDEF) < 0) {
			while ((j = plan_find_tag(p, DT_VERSYM)) >= 0) {
				plan_ent_remove(p, (size_t)j);
			}
			p->drop_versioning = true;
		}
	}
	rc = 0;
out:
	free(all.r);
	return rc;
}
