/* SPDX-License-Identifier: MIT */
/*
 * Dynamic symbols: renaming them (patchelf's --rename-dynamic-symbols) and
 * clearing their version (--clear-symbol-version).
 *
 * A renamed symbol gets a new st_name, its string placed as any other new
 * string (an identical one in .dynstr, else appended). The hash tables are
 * rebuilt in place, at their size: .hash's buckets and chains hold symbol
 * indices in any order, so only they change. .gnu.hash needs the hashed
 * symbols (from its symoffset on) grouped by bucket, and a new name usually
 * lands in another bucket, so those symbols are reordered, stably, and every
 * table that holds such an index follows: .gnu.version (parallel to .dynsym)
 * and the relocations. Keeping the indices instead would mean a bucket count
 * that puts every new name where the old one was, which does not exist in
 * general, or a single bucket, which turns every lookup in the library into
 * a walk over all its symbols. Version definitions and needs hold version
 * indices, not symbol indices, and are left alone. Reordering is refused
 * where other tables depend on the order (MIPS's GOT, DT_SYMINFO,
 * DT_SYMTAB_SHNDX, Android's packed relocations).
 *
 * Everything is planned and checked in plan_symbols; plan_write_symbols,
 * called once the rest of the rewrite is written, cannot fail.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kwheel/util.h"

#ifndef DT_ANDROID_REL
#define DT_ANDROID_REL 0x6000000f
#define DT_ANDROID_RELA 0x60000011
#endif

/* A relocation table whose entries name symbols: file offset, bytes, entry size. */
struct rel_range {
	uint64_t off, size;
	size_t es;
	bool rela;
};

struct sym_rename {
	uint64_t idx;     /* symbol index (before any reordering) */
	const char *name; /* new name (the caller's) */
	uint64_t off;     /* its offset in the new .dynstr, once placed */
};

struct sym_plan {
	uint64_t off, count; /* .dynsym: file offset and entries */
	size_t es;
	bool versym;
	uint64_t versym_off;
	uint64_t *clear; /* indices whose .gnu.version entry becomes VER_NDX_GLOBAL */
	size_t n_clear;
	struct sym_rename *ren; /* sorted by idx */
	size_t n_ren;
	/* .gnu.hash, rebuilt when gnu is set */
	bool gnu;
	uint64_t gnu_off;
	uint32_t gnu_nb, gnu_symoff, gnu_mask, gnu_shift;
	uint32_t *gnu_hash;  /* new hash of each hashed symbol, in the new order */
	uint32_t *old2new;   /* hashed symbol k (from symoff) moves to old2new[k]; NULL: no move */
	unsigned char *tmp;  /* scratch for the reordering: count - symoff entries */
	struct rel_range *rel;
	size_t n_rel;
	/* .hash, rebuilt when sysv is set */
	bool sysv;
	uint64_t sysv_off, sysv_nb, sysv_nc;
	size_t sysv_w;
	uint32_t *sysv_hash; /* hash of each symbol's new name, in the new order */
};

void plan_symbols_release(struct plan *p)
{
	struct sym_plan *s = p->sym;

	if (!s) {
		return;
	}
	free(s->clear);
	free(s->ren);
	free(s->gnu_hash);
	free(s->old2new);
	free(s->tmp);
	free(s->rel);
	free(s->sysv_hash);
	free(s);
	p->sym = NULL;
}

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++) {
		h = h * 33 + (unsigned char)*s;
	}
	return h;
}

static uint32_t sysv_hash(const char *s)
{
	uint32_t h = 0, g;

	for (; *s; s++) {
		h = (h << 4) + (unsigned char)*s;
		g = h & 0xf0000000u;
		h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

/*
 * A table this rewrite writes in place, [off, off+len): inside the file, off
 * the headers and .dynamic, and on no loader table but those tagged in ok
 * (its own; a relocation table may share bytes with another, as DT_RELA
 * often spans .rela.plt).
 */
static int check_writable(const struct img *im, uint64_t off, uint64_t len, const int64_t *ok, size_t n_ok,
			  const char *what, struct kw_error *err)
{
	size_t i, k;

	if (!kw_elf_in_file(&im->raw, off, len)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s runs past the end of the file", im->name, what);
	}
	if (img_hits_headers(im, off, len) || plan_overlaps_dynamic(im, off, len)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s lies on the headers or .dynamic", im->name, what);
	}
	for (i = 0; i < im->ntab; i++) {
		const struct extent *t = &im->tab[i];
		bool allowed = false;

		for (k = 0; k < n_ok; k++) {
			allowed |= t->tag == ok[k];
		}
		if (!allowed && off < t->off + t->len && t->off < off + len) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s overlaps another table the loader reads", im->name,
					    what);
		}
	}
	return 0;
}

static int cmp_pair_from(const void *a, const void *b)
{
	return strcmp((*(const struct kw_patch_replace *const *)a)->from,
		      (*(const struct kw_patch_replace *const *)b)->from);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Where .dynsym is and how many entries it has. */
static int locate_dynsym(struct plan *p, struct sym_plan *s, struct kw_error *err)
{
	struct img *im = &p->im;
	uint64_t vaddr, ent;
	size_t i;

	s->es = kw_elf_syment_size(&im->raw);
	if (!img_dyn(im, DT_SYMTAB, &vaddr)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': no DT_SYMTAB, no dynamic symbols to edit", im->name);
	}
	if (img_dyn(im, DT_SYMENT, &ent) && ent != s->es) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_SYMENT is %llu, expected %zu", im->name,
				    (unsigned long long)ent, s->es);
	}
	if (!im->nsyms_known) {
		return kw_error_set(err, KW_EFORMAT, "'%s': the dynamic symbol table cannot be sized", im->name);
	}
	/* The loader's count (from the hash tables); a .dynsym section at DT_SYMTAB may say more. */
	s->count = im->nsyms;
	for (i = 0; im->sh && i < im->shnum; i++) {
		if (im->sh[i].type == SHT_DYNSYM && im->sh[i].addr == vaddr && im->sh[i].size / s->es > s->count) {
			s->count = im->sh[i].size / s->es;
		}
	}
	if (s->count > UINT32_MAX || !img_vaddr_off(im, vaddr, s->count * s->es, &s->off)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .dynsym lies outside the file", im->name);
	}
	if (img_dyn(im, DT_VERSYM, &vaddr)) {
		if (!img_vaddr_off(im, vaddr, s->count * 2, &s->versym_off)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': .gnu.version lies outside the file", im->name);
		}
		s->versym = true;
	}
	return 0;
}

/* Symbols whose version is cleared and symbols renamed, by their names before the edit. */
static int match_names(struct plan *p, struct sym_plan *s, const struct kw_patch_ops *ops, struct kw_error *err)
{
	struct img *im = &p->im;
	const struct kw_patch_replace **sorted = NULL;
	const char **clear = NULL;
	uint64_t i;
	size_t k;
	int rc = KW_ENOMEM;

	for (k = 0; k < ops->n_rename_syms; k++) {
		const struct kw_patch_replace *r = &ops->rename_syms[k];

		if (!r->from || !r->to || !*r->from || !*r->to) {
			return kw_error_set(err, KW_EINVAL, "rename-dynamic-symbols needs two non-empty names");
		}
	}
	sorted = kw_calloc(ops->n_rename_syms + 1, sizeof(*sorted));
	clear = kw_calloc(ops->n_clear_version + 1, sizeof(*clear));
	s->ren = kw_calloc(ops->n_rename_syms ? s->count : 1, sizeof(*s->ren));
	s->clear = kw_calloc(ops->n_clear_version ? s->count : 1, sizeof(*s->clear));
	if (!sorted || !clear || !s->ren || !s->clear) {
		rc = plan_oom(err);
		goto out;
	}
	for (k = 0; k < ops->n_rename_syms; k++) {
		sorted[k] = &ops->rename_syms[k];
	}
	qsort(sorted, ops->n_rename_syms, sizeof(*sorted), cmp_pair_from);
	for (k = 1; k < ops->n_rename_syms; k++) {
		if (strcmp(sorted[k - 1]->from, sorted[k]->from) == 0) {
			rc = kw_error_set(err, KW_EINVAL, "symbol '%s' is renamed twice", sorted[k]->from);
			goto out;
		}
	}
	for (k = 0; k < ops->n_clear_version; k++) {
		clear[k] = ops->clear_version[k];
	}
	qsort(clear, ops->n_clear_version, sizeof(*clear), cmp_str);
	for (i = 1; i < s->count; i++) {
		uint32_t name = (uint32_t)img_rd(im, im->b + s->off + i * s->es, 4);
		const char *nm = img_str(im, name);
		struct kw_patch_replace key = { nm, NULL }, *kp = &key, **hit;

		if (!nm) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': symbol %llu names a string outside .dynstr", im->name,
					  (unsigned long long)i);
			goto out;
		}
		if (ops->n_clear_version && bsearch(&nm, clear, ops->n_clear_version, sizeof(*clear), cmp_str)) {
			s->clear[s->n_clear++] = i;
		}
		hit = ops->n_rename_syms ? bsearch(&kp, sorted, ops->n_rename_syms, sizeof(*sorted), cmp_pair_from) : NULL;
		if (hit && strcmp((*hit)->to, nm) != 0) {
			s->ren[s->n_ren].idx = i;
			s->ren[s->n_ren].name = (*hit)->to;
			s->n_ren++;
		}
	}
	rc = 0;
out:
	free(sorted);
	free(clear);
	return rc;
}

/* The name symbol i will have. */
static const char *new_name(const struct plan *p, const struct sym_plan *s, uint64_t i, size_t *cursor)
{
	/* Callers walk i upwards; s->ren is sorted by idx. */
	while (*cursor < s->n_ren && s->ren[*cursor].idx < i) {
		(*cursor)++;
	}
	if (*cursor < s->n_ren && s->ren[*cursor].idx == i) {
		return s->ren[*cursor].name;
	}
	return img_str(&p->im, (uint32_t)img_rd(&p->im, p->im.b + s->off + i * s->es, 4));
}

/* The relocation tables whose entries name .dynsym indices, merged where they overlap. */
static int add_rel(struct sym_plan *s, size_t *cap, const struct img *im, uint64_t off, uint64_t size, bool rela,
		   struct kw_error *err)
{
	size_t w = img_word(im);

	if (size == 0) {
		return 0;
	}
	if (kw_grow(&s->rel, cap, s->n_rel + 1, sizeof(*s->rel)) < 0) {
		return plan_oom(err);
	}
	s->rel[s->n_rel].off = off;
	s->rel[s->n_rel].size = size;
	s->rel[s->n_rel].es = rela ? 3 * w : 2 * w;
	s->rel[s->n_rel].rela = rela;
	s->n_rel++;
	return 0;
}

static int cmp_rel(const void *a, const void *b)
{
	const struct rel_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static int collect_relocs(struct plan *p, struct sym_plan *s, struct kw_error *err)
{
	static const int64_t ok[] = { DT_RELA, DT_REL, DT_JMPREL };
	struct img *im = &p->im;
	uint64_t v, sz, ent, pltrel, off, symaddr = 0;
	size_t cap = 0, i, w = img_word(im), out;
	long dynsym_sec = -1;
	int rc;

	if (img_dyn(im, DT_RELA, &v) && img_dyn(im, DT_RELASZ, &sz)) {
		if (img_dyn(im, DT_RELAENT, &ent) && ent != 3 * w) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_RELAENT is %llu", im->name, (unsigned long long)ent);
		}
		if (!img_vaddr_off(im, v, sz, &off)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_RELA lies outside the file", im->name);
		}
		rc = add_rel(s, &cap, im, off, sz, true, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (img_dyn(im, DT_REL, &v) && img_dyn(im, DT_RELSZ, &sz)) {
		if (img_dyn(im, DT_RELENT, &ent) && ent != 2 * w) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_RELENT is %llu", im->name, (unsigned long long)ent);
		}
		if (!img_vaddr_off(im, v, sz, &off)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_REL lies outside the file", im->name);
		}
		rc = add_rel(s, &cap, im, off, sz, false, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (img_dyn(im, DT_JMPREL, &v) && img_dyn(im, DT_PLTRELSZ, &sz)) {
		pltrel = img_dyn(im, DT_PLTREL, &pltrel) ? pltrel : DT_RELA;
		if (pltrel != DT_RELA && pltrel != DT_REL) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_PLTREL is %llu", im->name, (unsigned long long)pltrel);
		}
		if (!img_vaddr_off(im, v, sz, &off)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_JMPREL lies outside the file", im->name);
		}
		rc = add_rel(s, &cap, im, off, sz, pltrel == DT_RELA, err);
		if (rc < 0) {
			return rc;
		}
	}
	/* Relocation sections that name .dynsym (tools read those, the loader the tags above). */
	(void)img_dyn(im, DT_SYMTAB, &symaddr);
	for (i = 0; im->sh && i < im->shnum; i++) {
		if (im->sh[i].type == SHT_DYNSYM && im->sh[i].addr == symaddr) {
			dynsym_sec = (long)i;
		}
	}
	for (i = 0; dynsym_sec >= 0 && i < im->shnum; i++) {
		const struct kw_elf_shdr *sh = &im->sh[i];

		if ((sh->type == SHT_RELA || sh->type == SHT_REL) && sh->link == (uint32_t)dynsym_sec && sh->size) {
			rc = add_rel(s, &cap, im, sh->offset, sh->size, sh->type == SHT_RELA, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	if (s->n_rel > 1) {
		qsort(s->rel, s->n_rel, sizeof(*s->rel), cmp_rel);
	}
	/* Merge overlapping ranges, so that no entry is renumbered twice. */
	for (i = 0, out = 0; i < s->n_rel; i++) {
		struct rel_range *r = &s->rel[i];

		if (r->size % r->es) {
			return kw_error_set(err, KW_EFORMAT, "'%s': a relocation table is not a whole number of entries",
					    im->name);
		}
		rc = check_writable(im, r->off, r->size, ok, sizeof(ok) / sizeof(ok[0]), "a relocation table", err);
		if (rc < 0) {
			return rc;
		}
		if (out > 0 && r->off < s->rel[out - 1].off + s->rel[out - 1].size) {
			struct rel_range *q = &s->rel[out - 1];

			if (q->rela != r->rela || (r->off - q->off) % q->es) {
				return kw_error_set(err, KW_EFORMAT, "'%s': relocation tables overlap out of step", im->name);
			}
			if (r->off + r->size > q->off + q->size) {
				q->size = r->off + r->size - q->off;
			}
			continue;
		}
		s->rel[out++] = *r;
	}
	s->n_rel = out;
	return 0;
}

/* .gnu.hash: its header, and the new order of the hashed symbols. */
static int plan_gnu_hash(struct plan *p, struct sym_plan *s, struct kw_error *err)
{
	static const int64_t own[] = { DT_GNU_HASH };
	static const int64_t symtabs[] = { DT_SYMTAB, DT_VERSYM };
	struct img *im = &p->im;
	uint64_t vaddr, off, w = img_word(im), len, n, i, maxsym = 0, buckets, chain;
	uint32_t *bucket_of = NULL, *first = NULL;
	size_t cursor = 0;
	bool moves = false;
	int rc = KW_ENOMEM;

	if (!img_dyn(im, DT_GNU_HASH, &vaddr)) {
		return 0;
	}
	if (!img_vaddr_off(im, vaddr, 16, &off)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .gnu.hash lies outside the file", im->name);
	}
	s->gnu_off = off;
	s->gnu_nb = (uint32_t)img_rd(im, im->b + off, 4);
	s->gnu_symoff = (uint32_t)img_rd(im, im->b + off + 4, 4);
	s->gnu_mask = (uint32_t)img_rd(im, im->b + off + 8, 4);
	s->gnu_shift = (uint32_t)img_rd(im, im->b + off + 12, 4);
	if (s->gnu_nb == 0 || s->gnu_mask == 0 || (s->gnu_mask & (s->gnu_mask - 1)) || s->gnu_symoff > s->count) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .gnu.hash has a malformed header", im->name);
	}
	buckets = off + 16 + (uint64_t)s->gnu_mask * w;
	chain = buckets + (uint64_t)s->gnu_nb * 4;
	if (!kw_elf_in_file(&im->raw, buckets, (uint64_t)s->gnu_nb * 4)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .gnu.hash runs past the end of the file", im->name);
	}
	for (i = 0; i < s->gnu_nb; i++) {
		uint64_t b = img_rd(im, im->b + buckets + 4 * i, 4);

		maxsym = b > maxsym ? b : maxsym;
	}
	/* An empty table (nothing exported) says nothing reliable about symoffset, and needs no rebuild. */
	if (maxsym == 0) {
		return 0;
	}
	/* The hashed range must end where .dynsym does: walk the last chain to its end bit. */
	for (;; maxsym++) {
		if (maxsym < s->gnu_symoff || maxsym >= s->count ||
		    !kw_elf_in_file(&im->raw, chain + 4 * (maxsym - s->gnu_symoff), 4)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': .gnu.hash chains run past .dynsym", im->name);
		}
		if (img_rd(im, im->b + chain + 4 * (maxsym - s->gnu_symoff), 4) & 1) {
			break;
		}
	}
	if (maxsym + 1 != s->count) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': .gnu.hash covers %llu of %llu symbols", im->name,
				    (unsigned long long)(maxsym + 1 - s->gnu_symoff), (unsigned long long)s->count);
	}
	n = s->count - s->gnu_symoff;
	len = chain + 4 * n - off;
	rc = check_writable(im, off, len, own, 1, ".gnu.hash", err);
	if (rc < 0) {
		return rc;
	}
	s->gnu = true;
	s->gnu_hash = kw_calloc(n, sizeof(*s->gnu_hash));
	s->old2new = kw_calloc(n, sizeof(*s->old2new));
	bucket_of = kw_calloc(n, sizeof(*bucket_of));
	first = kw_calloc((size_t)s->gnu_nb + 1, sizeof(*first));
	if (!s->gnu_hash || !s->old2new || !bucket_of || !first) {
		rc = plan_oom(err);
		goto out;
	}
	/* A stable counting sort by bucket: symbols of one bucket keep their order. */
	for (i = 0; i < n; i++) {
		const char *nm = new_name(p, s, s->gnu_symoff + i, &cursor);

		s->gnu_hash[i] = gnu_hash(nm);
		bucket_of[i] = s->gnu_hash[i] % s->gnu_nb;
		first[bucket_of[i] + 1]++;
	}
	for (i = 0; i < s->gnu_nb; i++) {
		first[i + 1] += first[i];
	}
	for (i = 0; i < n; i++) {
		s->old2new[i] = first[bucket_of[i]]++;
		moves |= s->old2new[i] != i;
	}
	/* gnu_hash in the new order: bucket_of is free to hold the old order's values. */
	memcpy(bucket_of, s->gnu_hash, n * sizeof(*bucket_of));
	for (i = 0; i < n; i++) {
		s->gnu_hash[s->old2new[i]] = bucket_of[i];
	}
	if (!moves) {
		free(s->old2new);
		s->old2new = NULL;
		rc = 0;
		goto out;
	}
	if (im->machine == EM_MIPS || img_dyn(im, DT_SYMINFO, &vaddr) || img_dyn(im, DT_SYMTAB_SHNDX, &vaddr) ||
	    img_dyn(im, DT_ANDROID_REL, &vaddr) || img_dyn(im, DT_ANDROID_RELA, &vaddr)) {
		rc = kw_error_set(err, KW_EUNSUPPORTED,
				  "'%s': renaming reorders .dynsym for .gnu.hash, which this file's tables do not allow",
				  im->name);
		goto out;
	}
	rc = check_writable(im, s->off + s->gnu_symoff * s->es, n * s->es, symtabs, 1, ".dynsym", err);
	if (rc == 0 && s->versym) {
		rc = check_writable(im, s->versym_off + s->gnu_symoff * 2, n * 2, symtabs + 1, 1, ".gnu.version", err);
	}
	if (rc == 0) {
		rc = collect_relocs(p, s, err);
	}
	if (rc < 0) {
		goto out;
	}
	s->tmp = kw_malloc(n * s->es);
	if (!s->tmp) {
		rc = plan_oom(err);
		goto out;
	}
	rc = 0;
out:
	free(bucket_of);
	free(first);
	return rc;
}

static int plan_sysv_hash(struct plan *p, struct sym_plan *s, struct kw_error *err)
{
	static const int64_t own[] = { DT_HASH };
	struct img *im = &p->im;
	uint64_t vaddr, off, i;
	size_t cursor = 0;
	int rc;

	if (!img_dyn(im, DT_HASH, &vaddr)) {
		return 0;
	}
	/* 64-bit s390x and alpha use 64-bit hash words; everyone else 32-bit. */
	s->sysv_w = im->is64 && (im->machine == EM_S390 || im->machine == EM_ALPHA) ? 8 : 4;
	if (!img_vaddr_off(im, vaddr, 2 * s->sysv_w, &off)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .hash lies outside the file", im->name);
	}
	s->sysv_off = off;
	s->sysv_nb = img_rd(im, im->b + off, s->sysv_w);
	s->sysv_nc = img_rd(im, im->b + off + s->sysv_w, s->sysv_w);
	if (s->sysv_nb == 0 || s->sysv_nb > im->len || s->sysv_nc > s->count) {
		return kw_error_set(err, KW_EFORMAT, "'%s': .hash has a malformed header", im->name);
	}
	if (s->old2new && s->sysv_nc != s->count) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': .hash and .gnu.hash cover different symbols", im->name);
	}
	rc = check_writable(im, off, (2 + s->sysv_nb + s->sysv_nc) * s->sysv_w, own, 1, ".hash", err);
	if (rc < 0) {
		return rc;
	}
	/*
	 * Hashed now, while every old name is readable: the write comes after
	 * the rest of the rewrite, which may have cleared the old .dynstr.
	 */
	s->sysv_hash = kw_calloc(s->sysv_nc + 1, sizeof(*s->sysv_hash));
	if (!s->sysv_hash) {
		return plan_oom(err);
	}
	for (i = 1; i < s->sysv_nc; i++) {
		uint64_t at = i;

		if (s->old2new && i >= s->gnu_symoff) {
			at = s->gnu_symoff + s->old2new[i - s->gnu_symoff];
		}
		s->sysv_hash[at] = sysv_hash(new_name(p, s, i, &cursor));
	}
	s->sysv = true;
	return 0;
}

int plan_symbols(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err)
{
	static const int64_t own_sym[] = { DT_SYMTAB }, own_ver[] = { DT_VERSYM };
	struct sym_plan *s;
	int rc;

	if (ops->n_rename_syms == 0 && ops->n_clear_version == 0) {
		return 0;
	}
	if (!p->im.has_dyn) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': no dynamic section (a static executable?)", p->im.name);
	}
	s = kw_calloc(1, sizeof(*s));
	if (!s) {
		return plan_oom(err);
	}
	p->sym = s;
	rc = locate_dynsym(p, s, err);
	if (rc == 0) {
		rc = match_names(p, s, ops, err);
	}
	if (rc < 0) {
		return rc;
	}
	/* Without .gnu.version every symbol is unversioned already: nothing to clear. */
	if (!s->versym) {
		s->n_clear = 0;
	}
	if (s->n_clear) {
		rc = check_writable(&p->im, s->versym_off, s->count * 2, own_ver, 1, ".gnu.version", err);
	}
	if (rc == 0 && s->n_ren) {
		rc = check_writable(&p->im, s->off, s->count * s->es, own_sym, 1, ".dynsym", err);
	}
	if (rc == 0 && s->n_ren) {
		rc = plan_gnu_hash(p, s, err);
	}
	if (rc == 0 && s->n_ren) {
		rc = plan_sysv_hash(p, s, err);
	}
	return rc;
}

/* Offsets of the strings in .dynstr that start at 0 or after a NUL, hashed by content, for lookups by name. */
struct str_index {
	uint64_t *slot; /* offset + 1, 0: empty */
	size_t mask;
};

static int index_strings(const struct img *im, struct str_index *x, struct kw_error *err)
{
	const char *base = (const char *)im->b + im->str_off;
	size_t n = 0, size = 16;
	uint64_t i;

	for (i = 0; i < im->str_size; i++) {
		n += base[i] == 0;
	}
	while (size < 2 * n + 2) {
		size *= 2;
	}
	x->slot = kw_calloc(size, sizeof(*x->slot));
	if (!x->slot) {
		return plan_oom(err);
	}
	x->mask = size - 1;
	/* Only strings terminated inside .dynstr (img_str's rule). */
	for (i = 0; i < im->str_size; i++) {
		if (i == 0 || base[i - 1] == 0) {
			size_t h;

			if (!memchr(base + i, 0, im->str_size - i)) {
				break;
			}
			for (h = kw_hash_str(base + i) & x->mask; x->slot[h]; h = (h + 1) & x->mask) {
				if (strcmp(base + x->slot[h] - 1, base + i) == 0) {
					break;
				}
			}
			if (!x->slot[h]) {
				x->slot[h] = i + 1;
			}
		}
	}
	return 0;
}

static bool index_find(const struct img *im, const struct str_index *x, const char *s, uint64_t *off)
{
	const char *base = (const char *)im->b + im->str_off;
	size_t h;

	for (h = kw_hash_str(s) & x->mask; x->slot[h]; h = (h + 1) & x->mask) {
		if (strcmp(base + x->slot[h] - 1, s) == 0) {
			*off = x->slot[h] - 1;
			return true;
		}
	}
	return false;
}

static int cmp_ren_name(const void *a, const void *b)
{
	const struct sym_rename *x = *(const struct sym_rename *const *)a, *y = *(const struct sym_rename *const *)b;

	return strcmp(x->name, y->name);
}

/*
 * New names: an identical string that starts a string of .dynstr (kept from
 * now on), or one appended copy per distinct name. Names are looked up in an
 * index rather than searched for one by one: renaming every symbol of a large
 * library must not be quadratic in its string table.
 */
int plan_place_symbol_names(struct plan *p, struct kw_error *err)
{
	struct sym_plan *s = p->sym;
	struct sym_rename **by_name = NULL;
	struct str_index x = { NULL, 0 };
	size_t i;
	int rc;

	if (!s || s->n_ren == 0) {
		return 0;
	}
	by_name = kw_calloc(s->n_ren, sizeof(*by_name));
	if (!by_name) {
		return plan_oom(err);
	}
	rc = index_strings(&p->im, &x, err);
	for (i = 0; i < s->n_ren; i++) {
		by_name[i] = &s->ren[i];
	}
	qsort(by_name, s->n_ren, sizeof(*by_name), cmp_ren_name);
	for (i = 0; rc == 0 && i < s->n_ren; i++) {
		struct sym_rename *r = by_name[i];

		if (i > 0 && strcmp(by_name[i - 1]->name, r->name) == 0) {
			r->off = by_name[i - 1]->off;
		} else if (index_find(&p->im, &x, r->name, &r->off)) {
			rc = plan_add_ref(p, r->off, err);
		} else {
			rc = plan_append_string(p, r->name, &r->off, err);
		}
	}
	free(x.slot);
	free(by_name);
	return rc;
}

/* Move the entries of [start, start + n) of the es-byte table at off to old2new's places. */
static void permute(const struct img *im, uint64_t off, uint64_t start, uint64_t n, size_t es,
		    const uint32_t *old2new, unsigned char *tmp)
{
	unsigned char *b = im->b;
	uint64_t i;

	memcpy(tmp, b + off + start * es, n * es);
	img_mark(im, b + off + start * es, n * es);
	for (i = 0; i < n; i++) {
		memcpy(b + off + (start + old2new[i]) * es, tmp + i * es, es);
	}
}

static void renumber_relocs(struct plan *p, const struct sym_plan *s)
{
	struct img *im = &p->im;
	size_t w = img_word(im), k;
	uint64_t n = s->count - s->gnu_symoff, e;

	for (k = 0; k < s->n_rel; k++) {
		const struct rel_range *r = &s->rel[k];

		for (e = 0; e < r->size / r->es; e++) {
			unsigned char *q = im->b + r->off + e * r->es + w;
			uint64_t info = img_rd(im, q, w), sym = im->is64 ? info >> 32 : info >> 8;

			if (sym < s->gnu_symoff || sym - s->gnu_symoff >= n) {
				continue;
			}
			sym = s->gnu_symoff + s->old2new[sym - s->gnu_symoff];
			info = im->is64 ? (sym << 32) | (info & 0xffffffffu) : (sym << 8) | (info & 0xff);
			img_wr(im, q, w, info);
		}
	}
}

static void write_gnu_hash(struct plan *p, const struct sym_plan *s)
{
	struct img *im = &p->im;
	size_t w = img_word(im);
	unsigned bits = (unsigned)(8 * w);
	unsigned char *bloom = im->b + s->gnu_off + 16, *buckets = bloom + (size_t)s->gnu_mask * w;
	unsigned char *chain = buckets + (size_t)s->gnu_nb * 4;
	uint64_t n = s->count - s->gnu_symoff, i;

	img_mark(im, bloom, (size_t)s->gnu_mask * w + (size_t)s->gnu_nb * 4);
	memset(bloom, 0, (size_t)s->gnu_mask * w + (size_t)s->gnu_nb * 4);
	for (i = 0; i < n; i++) {
		uint32_t h = s->gnu_hash[i], b = h % s->gnu_nb;
		unsigned char *word = bloom + ((h / bits) & (s->gnu_mask - 1)) * w;
		uint64_t v = img_rd(im, word, w);
		bool last = i + 1 == n || s->gnu_hash[i + 1] % s->gnu_nb != b;

		v |= (uint64_t)1 << (h % bits);
		v |= (uint64_t)1 << ((h >> (s->gnu_shift % 32)) % bits);
		img_wr(im, word, w, v);
		if (img_rd(im, buckets + 4 * b, 4) == 0) {
			img_wr(im, buckets + 4 * b, 4, s->gnu_symoff + i);
		}
		img_wr(im, chain + 4 * i, 4, last ? h | 1 : h & ~1u);
	}
}

static void write_sysv_hash(struct plan *p, const struct sym_plan *s)
{
	struct img *im = &p->im;
	unsigned char *buckets = im->b + s->sysv_off + 2 * s->sysv_w, *chain = buckets + s->sysv_nb * s->sysv_w;
	uint64_t i;

	img_mark(im, buckets, (s->sysv_nb + s->sysv_nc) * s->sysv_w);
	memset(buckets, 0, (s->sysv_nb + s->sysv_nc) * s->sysv_w);
	/* Each symbol goes to the head of its bucket's chain; symbol 0 (STN_UNDEF) ends every chain. */
	for (i = 1; i < s->sysv_nc; i++) {
		unsigned char *head = buckets + (s->sysv_hash[i] % s->sysv_nb) * s->sysv_w;

		img_wr(im, chain + i * s->sysv_w, s->sysv_w, img_rd(im, head, s->sysv_w));
		img_wr(im, head, s->sysv_w, i);
	}
}

bool plan_write_symbols(struct plan *p)
{
	struct sym_plan *s = p->sym;
	struct img *im = &p->im;
	size_t k;

	if (!s || (s->n_clear == 0 && s->n_ren == 0)) {
		return false;
	}
	for (k = 0; k < s->n_clear; k++) {
		img_wr(im, im->b + s->versym_off + s->clear[k] * 2, 2, 1);
	}
	for (k = 0; k < s->n_ren; k++) {
		img_wr(im, im->b + s->off + s->ren[k].idx * s->es, 4, s->ren[k].off);
	}
	if (s->old2new) {
		uint64_t n = s->count - s->gnu_symoff;

		permute(im, s->off, s->gnu_symoff, n, s->es, s->old2new, s->tmp);
		if (s->versym) {
			permute(im, s->versym_off, s->gnu_symoff, n, 2, s->old2new, s->tmp);
		}
		renumber_relocs(p, s);
	}
	if (s->gnu) {
		write_gnu_hash(p, s);
	}
	if (s->sysv) {
		write_sysv_hash(p, s);
	}
	return true;
}

/* ---- rename maps -------------------------------------------------------- */

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The next word of the line [*at, end), NUL-terminated in place, or NULL. */
static char *word(char **at, char *end)
{
	char *w;

	while (*at < end && blank(**at)) {
		(*at)++;
	}
	if (*at == end) {
		return NULL;
	}
	w = *at;
	while (*at < end && !blank(**at)) {
		(*at)++;
	}
	if (*at < end) {
		*(*at)++ = 0;
	}
	return w;
}

static int cmp_pair_ptr(const void *a, const void *b)
{
	return strcmp((*(const struct kw_patch_replace *const *)a)->from,
		      (*(const struct kw_patch_replace *const *)b)->from);
}

/* The whole of path (a pipe too: `<(...)`), NUL-terminated, in *out (free()). */
static int slurp(const char *path, char **out, size_t *len, struct kw_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	*out = NULL;
	if (!f) {
		return kw_error_set(err, KW_EIO, "cannot open '%s': %s", path, strerror(errno));
	}
	do {
		if (kw_grow(&buf, &cap, n + 65536 + 1, 1) < 0) {
			fclose(f);
			free(buf);
			return plan_oom(err);
		}
		got = fread(buf + n, 1, 65536, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return kw_error_set(err, KW_EIO, "cannot read '%s'", path);
	}
	fclose(f);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

int kw_patch_symbol_map_read(struct kw_patch_symbol_map *m, const char *path, struct kw_error *err)
{
	const struct kw_patch_replace **sorted = NULL;
	char *text = NULL, *at, *eol, **texts;
	size_t len = 0, n0 = m->n, line = 0, i;
	int rc;

	rc = slurp(path, &text, &len, err);
	if (rc < 0) {
		return rc;
	}
	texts = kw_realloc(m->texts, (m->n_texts + 1) * sizeof(*m->texts));
	if (!texts) {
		rc = plan_oom(err);
		goto fail;
	}
	m->texts = texts;
	if (memchr(text, 0, len)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': a NUL byte in a rename map", path);
		goto fail;
	}
	for (at = text; at < text + len; at = eol + 1) {
		char *from, *to;

		line++;
		eol = memchr(at, '\n', (size_t)(text + len - at));
		eol = eol ? eol : text + len;
		*eol = 0;
		from = word(&at, eol);
		if (!from) {
			continue;
		}
		to = word(&at, eol);
		if (!to) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s' line %zu: no new name after '%s'", path, line, from);
			goto fail;
		}
		if (strchr(from, '@') || strchr(to, '@')) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s' line %zu: a version in '%s %s' (a renamed symbol keeps its own)",
					  path, line, from, to);
			goto fail;
		}
		if (kw_grow(&m->pairs, &m->cap, m->n + 1, sizeof(*m->pairs)) < 0) {
			rc = plan_oom(err);
			goto fail;
		}
		m->pairs[m->n].from = from;
		m->pairs[m->n].to = to;
		m->n++;
	}
	sorted = kw_calloc(m->n + 1, sizeof(*sorted));
	if (!sorted) {
		rc = plan_oom(err);
		goto fail;
	}
	for (i = 0; i < m->n; i++) {
		sorted[i] = &m->pairs[i];
	}
	qsort(sorted, m->n, sizeof(*sorted), cmp_pair_ptr);
	for (i = 1; i < m->n; i++) {
		if (strcmp(sorted[i - 1]->from, sorted[i]->from) == 0) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': '%s' is renamed twice", path, sorted[i]->from);
			goto fail;
		}
	}
	free(sorted);
	m->texts[m->n_texts++] = text;
	return 0;
fail:
	free(sorted);
	m->n = n0;
	free(text);
	return rc;
}

void kw_patch_symbol_map_release(struct kw_patch_symbol_map *m)
{
	size_t i;

	for (i = 0; i < m->n_texts; i++) {
		free(m->texts[i]);
	}
	free(m->texts);
	free(m->pairs);
	memset(m, 0, sizeof(*m));
}
