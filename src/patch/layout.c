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

int plan_build(struct plan *p, struct kw_patch_result *res, struct kw_error *err)
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
			return plan_oom(err);
		}
		/* From here on nothing fails: write. */
		ph = kw_calloc(nph, sizeof(*ph));
		if (!ph) {
			free(tail);
			return plan_oom(err);
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
