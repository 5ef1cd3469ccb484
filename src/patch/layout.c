/* SPDX-License-Identifier: MIT */
/* Growing the file and writing the planned edit into the image. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
		if (plan_overlaps_dynamic(im, off + 2 * i, 2) || img_hits_headers(im, off + 2 * i, 2) ||
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
	if (im->has_dyn) {
		at = im->dyn_off;
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
		if (n && (plan_overlaps_dynamic(im, t->offset, n * es) ||
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

/*
 * Where a growing edit puts its new bytes. They start at file offset seg_off,
 * which the segment maps at vaddr; every *_at is a file offset among them.
 */
struct growth {
	long ext;            /* the PT_LOAD that grows to hold them, or -1: a new one follows last_load */
	size_t last_load;    /* the last PT_LOAD in table order */
	size_t nph;          /* program headers after the edit */
	bool keep_phdrs;     /* the table stays at e_phoff (grown there if nph grew) */
	bool str_in_place;   /* .dynstr ends the file: new strings are appended to it where it is */
	uint64_t seg_off, vaddr, align, end;
	uint64_t phdr_at, dyn_at, str_at, moved_at, interp_at;
	uint64_t interp_len;     /* bytes of a new interpreter path placed at interp_at; 0: none */
	uint64_t mv_off, mv_len; /* bytes moved out of the way of the grown table (interpreter path, notes) */
	uint64_t mv_vaddr;       /* their old address */
	uint64_t dyn_cap;
};

static uint64_t gva(const struct growth *g, uint64_t off)
{
	return g->vaddr + (off - g->seg_off);
}

static bool ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static bool movable_type(uint32_t type)
{
	return type == PT_INTERP || type == PT_NOTE || type == PT_GNU_PROPERTY;
}

/*
 * Room for one more program header right after the table, in an executable:
 * there the table cannot move (see plan_growth), so what follows it moves
 * instead. Only the interpreter path and notes are moved, which nothing but
 * their program and section headers point at; anything else in the way (a
 * table the loader reads, a section of another kind) and the answer is no.
 * On yes, [*off, *off + *len) is the block to move (possibly empty).
 */
static bool room_for_phdr(const struct img *im, uint64_t *off, uint64_t *len, uint64_t *vaddr)
{
	uint64_t pes = img_phentsize(im), a = im->phoff + (uint64_t)im->phnum * pes, b = a + pes, lo = a, hi = a, top;
	const struct kw_elf_phdr *f = NULL;
	bool grew = true;
	size_t i;

	for (i = 0; i < im->phnum && !f; i++) {
		const struct kw_elf_phdr *q = &im->ph[i];

		if (q->type == PT_LOAD && q->offset <= im->phoff && b <= im->len && b - q->offset <= q->filesz) {
			f = q;
		}
	}
	if (!f) {
		return false;
	}
	/* The block: every movable segment meeting [a, b), and whatever movable segment meets those. */
	while (grew) {
		grew = false;
		for (i = 0; i < im->phnum; i++) {
			const struct kw_elf_phdr *q = &im->ph[i];

			if (!movable_type(q->type) || q->filesz == 0 || q->offset > im->len || q->filesz > im->len - q->offset ||
			    !ranges_meet(q->offset, q->filesz, lo, hi > b ? hi - lo : b - lo)) {
				continue;
			}
			if (q->offset < a) {
				return false;
			}
			if (lo == a && hi == a) {
				lo = q->offset;
				hi = q->offset + q->filesz;
				grew = true;
			}
			if (q->offset < lo) {
				lo = q->offset;
				grew = true;
			}
			if (q->offset + q->filesz > hi) {
				hi = q->offset + q->filesz;
				grew = true;
			}
		}
	}
	top = hi > b ? hi : b;
	if (top - f->offset > f->filesz) {
		return false;
	}
	/* Nothing else may lie in [a, top): no other segment, loader table, header or section. */
	for (i = 0; i < im->phnum; i++) {
		const struct kw_elf_phdr *q = &im->ph[i];

		if (q->type != PT_LOAD && q->type != PT_PHDR && !movable_type(q->type) &&
		    ranges_meet(q->offset, q->filesz, a, top - a)) {
			return false;
		}
		if (movable_type(q->type) && ranges_meet(q->offset, q->filesz, a, top - a) &&
		    (q->offset < lo || q->offset + q->filesz > hi)) {
			return false;
		}
	}
	if (img_table_hit(im, a, top - a, IMG_TAB_INTERP) != DT_NULL || img_hits_headers(im, a, top - a) ||
	    ranges_meet(im->str_off, im->str_size, a, top - a)) {
		return false;
	}
	for (i = 0; im->sh && i < im->shnum; i++) {
		const struct kw_elf_shdr *s = &im->sh[i];

		if (s->type == SHT_NOBITS || s->size == 0 || !ranges_meet(s->offset, s->size, a, top - a)) {
			continue;
		}
		if (!(s->flags & SHF_ALLOC) || s->offset < lo || s->offset + s->size > hi ||
		    (s->type != SHT_NOTE && s->type != SHT_PROGBITS)) {
			return false;
		}
	}
	*off = lo;
	*len = hi - lo;
	*vaddr = f->vaddr + (lo - f->offset);
	return true;
}

/* Decide where the new bytes go (see struct growth). Nothing is written. */
static int plan_growth(struct plan *p, bool need_dynstr, bool need_dyn, uint64_t interp_len, struct growth *g,
		       struct kw_error *err)
{
	struct img *im = &p->im;
	uint64_t maxalign = 1, maxend = 0, first_delta = 0, pos, new_str_size = im->str_size + p->n_append;
	size_t pes = img_phentsize(im), des = img_dynentsize(im), i, top = 0;
	bool first = true, has_interp = false;
	const struct kw_elf_phdr *l;

	memset(g, 0, sizeof(*g));
	g->ext = -1;
	g->interp_len = interp_len;
	g->dyn_cap = p->n + 1 + DYN_SLACK;
	for (i = 0; i < im->phnum; i++) {
		const struct kw_elf_phdr *q = &im->ph[i];

		has_interp |= q->type == PT_INTERP;
		if (q->type != PT_LOAD) {
			continue;
		}
		g->last_load = i;
		if (q->align > maxalign) {
			maxalign = q->align;
		}
		if (q->vaddr + q->memsz > maxend) {
			maxend = q->vaddr + q->memsz;
			top = i;
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
	if (p->ops->page_size > maxalign) {
		maxalign = p->ops->page_size;
	}
	g->align = maxalign;
	l = &im->ph[g->last_load];
	/*
	 * A last segment that ends the file, in memory too (no .bss), and holds
	 * no code is grown rather than joined by another: it is the one an
	 * earlier growing edit added, mostly, and successive edits then cost
	 * no program header each.
	 */
	if (top == g->last_load && l->filesz == l->memsz && l->offset <= im->len && l->filesz == im->len - l->offset &&
	    !(l->flags & PF_X)) {
		g->ext = (long)g->last_load;
		g->nph = im->phnum;
		g->keep_phdrs = true;
		g->seg_off = im->len;
		g->vaddr = l->vaddr + l->filesz;
		g->str_in_place = need_dynstr && im->str_off >= l->offset && im->str_off + im->str_size == im->len;
		pos = g->seg_off;
		if (g->str_in_place) {
			g->str_at = pos;
			pos += p->n_append;
		}
		if (interp_len) {
			g->interp_at = pos;
			pos += interp_len;
		}
		if (need_dyn) {
			pos = align_up(pos, 16);
			g->dyn_at = pos;
			pos += g->dyn_cap * des;
		}
		if (need_dynstr && !g->str_in_place) {
			g->str_at = pos;
			pos += new_str_size;
		}
		g->end = pos;
		if (g->vaddr > UINT64_MAX / 2 || (!im->is64 && gva(g, g->end) > UINT32_MAX)) {
			return kw_error_set(err, KW_ELIMIT, "'%s': no address space left for a new segment", im->name);
		}
		return 0;
	}
	g->nph = im->phnum + 1u;
	/*
	 * Leave a gap of the largest dynamic symbol's size after the last
	 * segment: it costs only address space, and eu-elflint takes a
	 * relocation to cover its symbol's size when it checks that no
	 * relocation touches a read-only segment.
	 */
	maxend += largest_symbol(im);
	g->seg_off = align_up(im->len, 16);
	g->vaddr = align_up(maxend, maxalign) + g->seg_off % maxalign;
	pos = g->seg_off;
	if (has_interp && room_for_phdr(im, &g->mv_off, &g->mv_len, &g->mv_vaddr)) {
		/*
		 * Kernels before 5.18 put AT_PHDR at the first PT_LOAD's
		 * p_vaddr - p_offset + e_phoff, wherever PT_PHDR says the table is;
		 * glibc takes the load bias from AT_PHDR and PT_PHDR. So in an
		 * executable the table stays where it is, in the first segment, and
		 * grows there over the interpreter path and notes, which move to the
		 * new segment (the kernel reads PT_INTERP by file offset, ld.so reads
		 * it and the notes through their program headers). The new segment
		 * may then lie anywhere, and the file grows by what it holds, not by
		 * the size of .bss.
		 */
		g->keep_phdrs = true;
		g->moved_at = pos + g->mv_off % 16;
		pos = g->moved_at + g->mv_len;
	} else if (has_interp) {
		/*
		 * Nothing movable makes room: the table moves, and for the kernels
		 * above its address must be its offset plus the first segment's
		 * delta, even if that costs padding.
		 */
		if (g->vaddr - g->seg_off != first_delta) {
			uint64_t lo = align_up(maxend, maxalign);

			g->seg_off = lo > first_delta ? lo - first_delta : 0;
			if (g->seg_off < align_up(im->len, 16)) {
				g->seg_off = align_up(align_up(im->len, 16), maxalign) + (g->seg_off % maxalign);
				if (g->seg_off < im->len) {
					g->seg_off += maxalign;
				}
			}
			g->vaddr = g->seg_off + first_delta;
		}
		pos = g->seg_off;
	}
	/* vaddr below maxend: a huge p_align wrapped the rounding. */
	if (g->vaddr < maxend || g->vaddr > UINT64_MAX / 2 || (!im->is64 && g->vaddr + 0x100000 > UINT32_MAX)) {
		return kw_error_set(err, KW_ELIMIT, "'%s': no address space left for a new segment", im->name);
	}
	if (g->seg_off < im->len || g->seg_off - im->len > MAX_TAIL_PAD) {
		return kw_error_set(err, KW_ELIMIT, "'%s': new segment would need %llu bytes of padding", im->name,
				    (unsigned long long)(g->seg_off - im->len));
	}
	if (!g->keep_phdrs) {
		g->phdr_at = pos;
		pos += g->nph * pes;
	}
	if (interp_len) {
		g->interp_at = pos;
		pos += interp_len;
	}
	/* .dynstr last, so that the next edit can append to it where it is. */
	if (need_dyn) {
		pos = align_up(pos, 16);
		g->dyn_at = pos;
		pos += g->dyn_cap * des;
	}
	if (need_dynstr) {
		g->str_at = pos;
		pos += new_str_size;
	}
	g->end = pos;
	return 0;
}

/* Move the block room_for_phdr found, and the program and section headers that describe it. */
static void move_block(struct img *im, const struct growth *g, unsigned char *tail, struct kw_elf_phdr *ph, size_t nph)
{
	size_t ses = img_shentsize(im), i;
	uint64_t dv = gva(g, g->moved_at) - g->mv_vaddr;

	if (g->mv_len == 0) {
		return;
	}
	memcpy(tail + (g->moved_at - im->len), im->b + g->mv_off, g->mv_len);
	for (i = 0; i < nph; i++) {
		if (movable_type(ph[i].type) && ph[i].filesz && ph[i].offset >= g->mv_off &&
		    ph[i].offset - g->mv_off < g->mv_len) {
			ph[i].offset += g->moved_at - g->mv_off;
			ph[i].vaddr += dv;
			ph[i].paddr += dv;
		}
	}
	for (i = 0; im->sh && i < im->shnum; i++) {
		struct kw_elf_shdr s = im->sh[i];

		if (s.type == SHT_NOBITS || s.size == 0 || !(s.flags & SHF_ALLOC) || s.offset < g->mv_off ||
		    s.offset - g->mv_off >= g->mv_len) {
			continue;
		}
		s.offset += g->moved_at - g->mv_off;
		s.addr += dv;
		img_put_sh(im, im->b + im->shoff + i * ses, &s);
		move_section_symbols(im, (long)i, im->sh[i].addr, im->sh[i].size, s.addr);
	}
	img_mark(im, im->b + g->mv_off, g->mv_len);
	memset(im->b + g->mv_off, 0, g->mv_len);
}

/* The section whose bytes PT_INTERP names (.interp), or -1. */
static long interp_section(const struct img *im, const struct kw_elf_phdr *interp)
{
	size_t i;

	for (i = 0; im->sh && i < im->shnum; i++) {
		if (im->sh[i].type == SHT_PROGBITS && im->sh[i].offset == interp->offset && im->sh[i].size > 0) {
			return (long)i;
		}
	}
	return -1;
}

/*
 * Edits of the program headers themselves, on the table as it will be
 * written (ph, nph entries): the interpreter path, written where PT_INTERP
 * now points (its old place, where it moved, or interp_at), and the stack's
 * PF_X. tail holds the bytes from file offset im->len on.
 */
static void edit_headers(struct plan *p, struct kw_elf_phdr *ph, size_t nph, unsigned char *tail, uint64_t interp_at,
			 uint64_t interp_vaddr)
{
	struct img *im = &p->im;
	const struct kw_patch_ops *ops = p->ops;
	long sec = -1;
	size_t i;

	for (i = 0; i < im->phnum; i++) {
		if (im->ph[i].type == PT_INTERP) {
			sec = interp_section(im, &im->ph[i]);
		}
	}
	for (i = 0; i < nph; i++) {
		if (ph[i].type == PT_GNU_STACK && ops->execstack) {
			ph[i].flags = ops->execstack > 0 ? ph[i].flags | PF_X : ph[i].flags & ~(uint32_t)PF_X;
		}
		if (ph[i].type == PT_INTERP && ops->set_interp) {
			uint64_t n = strlen(ops->set_interp) + 1;
			unsigned char *dst;

			if (interp_at) {
				ph[i].offset = interp_at;
				ph[i].vaddr = ph[i].paddr = interp_vaddr;
			} else {
				/* In place (or where the block moved it): the old path's bytes are cleared first. */
				dst = ph[i].offset >= im->len ? tail + (ph[i].offset - im->len) : im->b + ph[i].offset;
				img_mark(im, dst, ph[i].filesz);
				memset(dst, 0, ph[i].filesz);
			}
			dst = ph[i].offset >= im->len ? tail + (ph[i].offset - im->len) : im->b + ph[i].offset;
			img_mark(im, dst, n);
			memcpy(dst, ops->set_interp, n);
			ph[i].filesz = ph[i].memsz = n;
			if (sec >= 0) {
				struct kw_elf_shdr s = im->sh[sec];

				s.offset = ph[i].offset;
				s.addr = ph[i].vaddr;
				s.size = n;
				img_put_sh(im, im->b + im->shoff + (size_t)sec * img_shentsize(im), &s);
				if (s.addr != im->sh[sec].addr) {
					move_section_symbols(im, sec, im->sh[sec].addr, im->sh[sec].size, s.addr);
				}
			}
		}
	}
}

/* Write the new bytes planned in g: program headers, moved block, .dynamic, .dynstr. */
static int write_growth(struct plan *p, const struct growth *g, bool need_dynstr, bool need_dyn, unsigned char **tailp,
			size_t *tail_len, unsigned char **strdst, struct kw_error *err)
{
	struct img *im = &p->im;
	size_t des = img_dynentsize(im), pes = img_phentsize(im), ses = img_shentsize(im), i, k;
	uint64_t new_str_size = im->str_size + p->n_append, dyn_size = g->dyn_cap * des;
	uint64_t phdr_off = g->keep_phdrs ? im->phoff : g->phdr_at;
	struct kw_elf_phdr *ph;
	unsigned char *tail;

	*tail_len = g->end - im->len;
	tail = kw_calloc(1, *tail_len ? *tail_len : 1);
	ph = kw_calloc(g->nph, sizeof(*ph));
	if (!tail || !ph) {
		free(tail);
		free(ph);
		return plan_oom(err);
	}
	/* From here on nothing fails: write. */
	for (i = 0, k = 0; i < im->phnum; i++) {
		ph[k] = im->ph[i];
		if (ph[k].type == PT_PHDR) {
			ph[k].offset = phdr_off;
			ph[k].vaddr = ph[k].paddr = g->keep_phdrs ? im->ph[i].vaddr : gva(g, g->phdr_at);
			ph[k].filesz = ph[k].memsz = g->nph * pes;
		}
		if (ph[k].type == PT_DYNAMIC && need_dyn) {
			ph[k].offset = g->dyn_at;
			ph[k].vaddr = ph[k].paddr = gva(g, g->dyn_at);
			ph[k].filesz = ph[k].memsz = dyn_size;
		}
		if ((long)i == g->ext) {
			ph[k].filesz = ph[k].memsz = g->end - ph[k].offset;
			ph[k].flags |= need_dyn ? PF_W : 0;
		}
		k++;
		if (g->ext < 0 && i == g->last_load) {
			struct kw_elf_phdr load = { .type = PT_LOAD, .flags = PF_R | (need_dyn ? PF_W : 0), .offset = g->seg_off,
						    .vaddr = g->vaddr, .paddr = g->vaddr, .filesz = g->end - g->seg_off,
						    .memsz = g->end - g->seg_off, .align = g->align };

			ph[k++] = load;
		}
	}
	if (g->keep_phdrs) {
		move_block(im, g, tail, ph, g->nph);
	}
	edit_headers(p, ph, g->nph, tail, g->interp_at, g->interp_at ? gva(g, g->interp_at) : 0);
	for (i = 0; i < g->nph; i++) {
		unsigned char *at = phdr_off >= im->len ? tail + (phdr_off - im->len) : im->b + phdr_off;

		img_put_ph(im, at + i * pes, &ph[i]);
	}
	free(ph);
	if (need_dynstr) {
		unsigned char *s = tail + (g->str_at - im->len);

		if (g->str_in_place) {
			memcpy(s, p->append, p->n_append);
		} else {
			memcpy(s, im->b + im->str_off, im->str_size);
			memcpy(s + im->str_size, p->append, p->n_append);
		}
		for (i = 0; i < p->n; i++) {
			if (p->e[i].tag == DT_STRTAB && !g->str_in_place) {
				p->e[i].val = gva(g, g->str_at);
			} else if (p->e[i].tag == DT_STRSZ) {
				p->e[i].val = new_str_size;
			}
		}
	}
	*strdst = need_dynstr && !g->str_in_place ? tail + (g->str_at - im->len) : im->b + im->str_off;
	/*
	 * The old .dynstr is dead once DT_STRTAB and its section header name
	 * the copy: cleared, so the file holds its strings (and old paths) once.
	 * Not where a forged layout lays another table over it.
	 */
	if (need_dynstr && !g->str_in_place && img_table_hit(im, im->str_off, im->str_size, DT_STRTAB) == DT_NULL &&
	    !plan_overlaps_dynamic(im, im->str_off, im->str_size) && !img_hits_headers(im, im->str_off, im->str_size)) {
		img_mark(im, im->b + im->str_off, im->str_size);
		memset(im->b + im->str_off, 0, im->str_size);
	}
	if (need_dyn) {
		unsigned char *d0 = tail + (g->dyn_at - im->len);
		struct kw_elf_dyn z = { DT_NULL, 0 };

		for (i = 0; i < p->n; i++) {
			struct kw_elf_dyn d = { p->e[i].tag, p->e[i].val };

			if (im->machine == EM_MIPS && d.tag == DT_MIPS_RLD_MAP_REL) {
				/* Relative to the entry's own address, which moved. */
				uint64_t old_at = im->dyn_vaddr + i * des;

				d.val += old_at - (gva(g, g->dyn_at) + i * des);
			}
			img_put_dyn(im, d0 + i * des, &d);
		}
		for (; i < g->dyn_cap; i++) {
			img_put_dyn(im, d0 + i * des, &z);
		}
	}
	/* ELF header: where the table is and how many entries it has. */
	img_wr(im, im->b + (im->is64 ? 32 : 28), img_word(im), phdr_off);
	img_wr(im, im->b + (im->is64 ? 56 : 44), 2, g->nph);
	if (im->sh) {
		if (need_dynstr && im->sh_dynstr >= 0) {
			struct kw_elf_shdr s = im->sh[im->sh_dynstr];

			s.size = new_str_size;
			if (!g->str_in_place) {
				s.offset = g->str_at;
				s.addr = gva(g, g->str_at);
			}
			img_put_sh(im, im->b + im->shoff + (size_t)im->sh_dynstr * ses, &s);
			move_section_symbols(im, im->sh_dynstr, im->sh[im->sh_dynstr].addr, im->sh[im->sh_dynstr].size,
					     s.addr);
		}
		if (need_dyn && im->sh_dynamic >= 0) {
			struct kw_elf_shdr s = im->sh[im->sh_dynamic];

			s.offset = g->dyn_at;
			s.addr = gva(g, g->dyn_at);
			s.size = dyn_size;
			img_put_sh(im, im->b + im->shoff + (size_t)im->sh_dynamic * ses, &s);
			move_section_symbols(im, im->sh_dynamic, im->sh[im->sh_dynamic].addr, im->sh[im->sh_dynamic].size,
					     s.addr);
		}
	}
	*tailp = tail;
	return 0;
}

int plan_build(struct plan *p, struct kw_patch_result *res, struct kw_error *err)
{
	struct img *im = &p->im;
	size_t des = img_dynentsize(im), ses = img_shentsize(im), i;
	bool need_dynstr = p->n_append > 0, need_dyn = p->n + 1 > im->dyn_cap;
	unsigned char *strdst = im->b + im->str_off;
	unsigned char *tail = NULL;
	size_t tail_len = 0;
	int rc;

	const struct kw_patch_ops *ops = p->ops;
	uint64_t interp_len = 0;
	bool hdr_changed = false;

	memset(res, 0, sizeof(*res));
	if (!im->has_dyn) {
		/* Only header edits apply to a file without a dynamic table. */
		if (p->n != 0 || p->n_append || p->n_vn || p->vn_rewrite) {
			return kw_error_set(err, KW_EUNSUPPORTED, "'%s': no dynamic section (a static executable?)", im->name);
		}
		need_dyn = false;
	}
	if (ops->set_interp) {
		long ip = -1;

		for (i = 0; i < im->phnum; i++) {
			if (im->ph[i].type == PT_INTERP) {
				ip = (long)i;
			}
		}
		if (ip < 0) {
			return kw_error_set(err, KW_EUNSUPPORTED, "'%s': no PT_INTERP to set (not a dynamic executable)",
					    im->name);
		}
		if (!kw_elf_in_file(&im->raw, im->ph[ip].offset, im->ph[ip].filesz)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_INTERP lies outside the file", im->name);
		}
		if (!*ops->set_interp) {
			return kw_error_set(err, KW_EINVAL, "set-interpreter needs a non-empty path");
		}
		/* A new path longer than the old one's bytes goes to the new segment. */
		if (strlen(ops->set_interp) + 1 > im->ph[ip].filesz) {
			interp_len = strlen(ops->set_interp) + 1;
		}
		hdr_changed |= kw_elf_str(&im->raw, im->ph[ip].offset, im->ph[ip].filesz, 0) == NULL ||
			       strcmp(kw_elf_str(&im->raw, im->ph[ip].offset, im->ph[ip].filesz, 0), ops->set_interp) != 0;
	}
	for (i = 0; i < im->phnum && ops->execstack; i++) {
		if (im->ph[i].type == PT_GNU_STACK) {
			hdr_changed |= ((im->ph[i].flags & PF_X) != 0) != (ops->execstack > 0);
		}
	}
	hdr_changed |= ops->set_os_abi && im->b[EI_OSABI] != ops->os_abi;
	if (need_dynstr || need_dyn || interp_len) {
		struct growth g;

		rc = plan_growth(p, need_dynstr, need_dyn, interp_len, &g, err);
		if (rc == 0) {
			rc = write_growth(p, &g, need_dynstr, need_dyn, &tail, &tail_len, &strdst, err);
		}
		if (rc < 0) {
			return rc;
		}
		res->grew = true;
		res->extended = g.ext >= 0;
		res->moved_dynstr = need_dynstr && !g.str_in_place;
		res->moved_dynamic = need_dyn;
	} else if (hdr_changed && (ops->set_interp || ops->execstack)) {
		struct kw_elf_phdr *ph = kw_calloc(im->phnum, sizeof(*ph));
		size_t pes = img_phentsize(im);

		if (!ph) {
			return plan_oom(err);
		}
		/* From here on nothing fails. */
		memcpy(ph, im->ph, im->phnum * sizeof(*ph));
		edit_headers(p, ph, im->phnum, NULL, 0, 0);
		for (i = 0; i < im->phnum; i++) {
			img_put_ph(im, im->b + im->phoff + i * pes, &ph[i]);
		}
		free(ph);
	}
	for (i = 0; i < p->n_sw; i++) {
		img_mark(im, strdst + p->sw[i].off, p->sw[i].len);
		img_mark(im, strdst + p->sw[i].off, strlen(p->sw[i].str));
		memset(strdst + p->sw[i].off, 0, p->sw[i].len);
		memcpy(strdst + p->sw[i].off, p->sw[i].str, strlen(p->sw[i].str));
	}
	plan_taint_old_paths(p, strdst);
	res->in_place = p->n_sw;
	if (im->has_dyn && !need_dyn && (entries_changed(p) || res->grew)) {
		struct kw_elf_dyn z = { DT_NULL, 0 };
		unsigned char *d0 = im->b + im->dyn_off;

		for (i = 0; i < p->n; i++) {
			struct kw_elf_dyn d = { p->e[i].tag, p->e[i].val };

			img_put_dyn(im, d0 + i * des, &d);
		}
		for (; i < im->dyn_cap; i++) {
			img_put_dyn(im, d0 + i * des, &z);
		}
	}
	if (p->vn_rewrite) {
		img_mark(im, im->b + p->vn_off, p->vn_area);
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
	if (ops->set_os_abi) {
		img_mark(im, im->b + EI_OSABI, 1);
		im->b[EI_OSABI] = ops->os_abi;
	}
	hdr_changed |= plan_write_symbols(p);
	res->changed = res->grew || hdr_changed || p->n_sw > 0 || entries_changed(p) || p->vn_rewrite || p->n_vn > 0;
	return 0;
}
