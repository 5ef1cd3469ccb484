/* SPDX-License-Identifier: MIT */
/*
 * Where each new string goes: an identical string already in .dynstr, an
 * old string nothing else points into, or the bytes appended to a new .dynstr.
 */
#define _GNU_SOURCE /* memmem */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * A string offset still referenced after the edit, weighed against each
 * candidate slot as it comes: the slot is hit if the reference starts
 * inside it, and keeps the nearest reference before it (see referenced()).
 * A library has thousands of references and an edit a few slots, so this
 * is cheaper than keeping and sorting them all.
 */
int plan_add_ref(struct plan *p, uint64_t off, struct kw_error *err)
{
	size_t i;

	(void)err;
	for (i = 0; i < p->n_slots; i++) {
		struct slot *sl = &p->slots[i];

		if (off >= sl->off && off < sl->off + sl->len) {
			sl->hit = true;
		} else if (off < sl->off && (!sl->has_before || off > sl->before)) {
			sl->before = off;
			sl->has_before = true;
		}
	}
	return 0;
}

/*
 * True if a string still referenced shares a byte with the slot: one that
 * starts inside it, or one that starts before it and runs into it (the
 * linker merges tails: "libc.so.6" also serves as ".6"). Nearer earlier
 * references are suffixes of farther ones: the nearest decides.
 */
static bool referenced(const struct plan *p, const struct slot *sl)
{
	const char *s;

	if (sl->hit) {
		return true;
	}
	if (!sl->has_before) {
		return false;
	}
	s = img_str(&p->im, sl->before);
	return !s || sl->before + strlen(s) >= sl->off;
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
	if (!edited && plan_add_ref(p, img_rd(im, im->b + off + 4, 4), w->err) < 0) {
		return KW_ENOMEM;
	}
	for (k = 0; k < cnt && k < 65536; k++) {
		if (aux > im->len || im->len - aux < 16) {
			return kw_error_set(w->err, KW_EFORMAT, "'%s': version need aux past the end of the file",
					    im->name);
		}
		if (plan_add_ref(p, img_rd(im, im->b + aux + 8, 4), w->err) < 0) {
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
		if (p->e[i].str && !p->e[i].changed && plan_add_ref(p, p->e[i].val, err) < 0) {
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

				if (n && plan_add_ref(p, n, err) < 0) {
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
	rc = plan_each_verneed(p, vn_refs_cb, &w, err);
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
				if (plan_add_ref(p, img_rd(im, im->b + aux, 4), err) < 0) {
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

/* absent: the caller's own find_existing found no copy in .dynstr, which planning never changes. */
static int place_string(struct plan *p, const char *s, bool can_overwrite, bool absent, uint64_t *off,
			struct kw_error *err)
{
	size_t n = strlen(s), i;
	struct slot *best = NULL;

	if (!absent && find_existing(p, s, off)) {
		return plan_add_ref(p, *off, err) < 0 ? KW_ENOMEM : 0;
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

			if (!sl->used && sl->len >= n && !referenced(p, sl) &&
			    img_table_hit(&p->im, p->im.str_off + sl->off, sl->len + 1, DT_STRTAB) == DT_NULL &&
			    (!best || sl->len < best->len)) {
				best = sl;
			}
		}
	}
	if (best) {
		struct slot_write *nw = kw_realloc(p->sw, (p->n_sw + 1) * sizeof(*p->sw));

		if (!nw) {
			return plan_oom(err);
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
	return plan_append_string(p, s, off, err);
}

int plan_append_string(struct plan *p, const char *s, uint64_t *off, struct kw_error *err)
{
	size_t n = strlen(s);

	if (kw_grow(&p->append, &p->cap_append, p->n_append + n + 1, 1) < 0) {
		return plan_oom(err);
	}
	*off = p->im.str_size + p->n_append;
	memcpy(p->append + p->n_append, s, n + 1);
	p->n_append += n + 1;
	return 0;
}

int plan_place_strings(struct plan *p, struct kw_error *err)
{
	bool complete;
	size_t i, j;
	int rc;

	/*
	 * Old strings of changed or removed entries are candidate slots; they
	 * exist before the references are walked, which are counted against
	 * them, and go again if the walk cannot know every reference.
	 */
	for (i = 0; i < p->im.ndyn; i++) {
		const struct kw_elf_dyn *d = &p->im.dyn[i];
		bool still = false;

		if (!plan_is_str_tag(d->tag)) {
			continue;
		}
		for (j = 0; j < p->n; j++) {
			still |= p->e[j].str && !p->e[j].changed && p->e[j].val == d->val;
		}
		if (!still) {
			struct slot *ns = kw_realloc(p->slots, (p->n_slots + 1) * sizeof(*ns));

			if (!ns) {
				return plan_oom(err);
			}
			p->slots = ns;
			memset(&p->slots[p->n_slots], 0, sizeof(*ns));
			p->slots[p->n_slots].off = d->val;
			p->slots[p->n_slots].len = strlen(img_str(&p->im, d->val));
			p->slots[p->n_slots].tag = d->tag;
			p->n_slots++;
		}
	}
	rc = collect_refs(p, &complete, err);
	if (rc < 0) {
		return rc;
	}
	if (!complete) {
		p->n_slots = 0;
	}
	/* First pass: strings that already exist, so their bytes are protected before any overwrite. */
	for (i = 0; i < p->n; i++) {
		uint64_t off;

		if (p->e[i].str && p->e[i].changed && find_existing(p, p->e[i].str, &off)) {
			p->e[i].val = off;
			p->e[i].changed = false;
			if (plan_add_ref(p, off, err) < 0) {
				return KW_ENOMEM;
			}
		}
	}
	for (i = 0; i < p->n_vn; i++) {
		if (find_existing(p, p->vn[i].str, &p->vn[i].val) && plan_add_ref(p, p->vn[i].val, err) < 0) {
			return KW_ENOMEM;
		}
	}
	rc = plan_place_symbol_names(p, err);
	if (rc < 0) {
		return rc;
	}
	for (i = 0; i < p->n; i++) {
		if (p->e[i].str && p->e[i].changed) {
			/* Still changed: the first pass found no copy. */
			rc = place_string(p, p->e[i].str, complete, true, &p->e[i].val, err);
			if (rc < 0) {
				return rc;
			}
		}
	}
	for (i = 0; i < p->n_vn; i++) {
		rc = place_string(p, p->vn[i].str, complete, false, &p->vn[i].val, err);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/*
 * As patchelf does: an old search path no longer used is overwritten with
 * 'X', so that a scan of the file for store paths (nix's) no longer finds
 * a dependency it dropped. Only where the string placement knew every
 * reference (the slots exist only then) and nothing points into it.
 */
void plan_taint_old_paths(const struct plan *p, unsigned char *strdst)
{
	size_t i;

	for (i = 0; i < p->n_slots; i++) {
		const struct slot *sl = &p->slots[i];

		if (sl->used || (sl->tag != DT_RPATH && sl->tag != DT_RUNPATH) || referenced(p, sl) ||
		    img_table_hit(&p->im, p->im.str_off + sl->off, sl->len + 1, DT_STRTAB) != DT_NULL) {
			continue;
		}
		img_mark(&p->im, strdst + sl->off, sl->len);
		memset(strdst + sl->off, 'X', sl->len);
	}
}
