/* SPDX-License-Identifier: MIT */
/*
 * The one place raw ELF bytes become values (see kwheel/elf-decode.h). The
 * layouts are the System V gABI's: ELF32 and ELF64 differ in word size and,
 * for program headers, in where p_flags sits.
 */
#include <elf.h>
#include <string.h>

#include "kwheel/elf-decode.h"

enum kw_elf_ident kw_elf_raw_init(struct kw_elf_raw *r, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	memset(r, 0, sizeof(*r));
	if (len < EI_NIDENT || memcmp(b, ELFMAG, SELFMAG) != 0) {
		return KW_ELF_IDENT_NOT_ELF;
	}
	if (b[EI_CLASS] != ELFCLASS32 && b[EI_CLASS] != ELFCLASS64) {
		return KW_ELF_IDENT_BAD_CLASS;
	}
	if (b[EI_DATA] != ELFDATA2LSB && b[EI_DATA] != ELFDATA2MSB) {
		return KW_ELF_IDENT_BAD_DATA;
	}
	r->b = b;
	r->len = len;
	r->is64 = b[EI_CLASS] == ELFCLASS64;
	r->msb = b[EI_DATA] == ELFDATA2MSB;
	return KW_ELF_IDENT_OK;
}

void kw_elf_raw_like(struct kw_elf_raw *r, const struct kw_elf_raw *like, const void *buf, size_t len)
{
	r->b = buf;
	r->len = len;
	r->is64 = like->is64;
	r->msb = like->msb;
}

size_t kw_elf_word(const struct kw_elf_raw *r)
{
	return r->is64 ? 8 : 4;
}

size_t kw_elf_ehdr_size(const struct kw_elf_raw *r)
{
	return r->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
}

size_t kw_elf_phent_size(const struct kw_elf_raw *r)
{
	return r->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
}

size_t kw_elf_shent_size(const struct kw_elf_raw *r)
{
	return r->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
}

size_t kw_elf_dynent_size(const struct kw_elf_raw *r)
{
	return r->is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
}

size_t kw_elf_syment_size(const struct kw_elf_raw *r)
{
	return r->is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
}

uint64_t kw_elf_rd(const struct kw_elf_raw *r, const unsigned char *p, size_t width)
{
	uint64_t v = 0;
	size_t i;

	switch (width) {
	case 2: return kw_elf_rd16(r, p);
	case 4: return kw_elf_rd32(r, p);
	case 8: return kw_elf_rd64(r, p);
	default: break;
	}
	for (i = 0; i < width; i++) {
		v |= (uint64_t)p[r->msb ? i : width - 1 - i] << (8 * (width - 1 - i));
	}
	return v;
}

uint64_t kw_elf_rdword(const struct kw_elf_raw *r, const unsigned char *p)
{
	return r->is64 ? kw_elf_rd64(r, p) : kw_elf_rd32(r, p);
}

bool kw_elf_in_file(const struct kw_elf_raw *r, uint64_t off, uint64_t size)
{
	return size <= r->len && off <= r->len - size;
}

bool kw_elf_table_in_file(const struct kw_elf_raw *r, uint64_t off, uint64_t n, uint64_t entsize)
{
	if (entsize != 0 && n > r->len / entsize) {
		return false;
	}
	return kw_elf_in_file(r, off, n * entsize);
}

bool kw_elf_get_ehdr(const struct kw_elf_raw *r, struct kw_elf_ehdr *eh)
{
	const unsigned char *p = r->b;
	size_t w = kw_elf_word(r), q;

	if (r->len < kw_elf_ehdr_size(r)) {
		return false;
	}
	eh->osabi = p[EI_OSABI];
	eh->abiversion = p[EI_ABIVERSION];
	eh->type = kw_elf_rd16(r, p + 16);
	eh->machine = kw_elf_rd16(r, p + 18);
	eh->version = kw_elf_rd32(r, p + 20);
	eh->entry = kw_elf_rd(r, p + 24, w);
	eh->phoff = kw_elf_rd(r, p + 24 + w, w);
	eh->shoff = kw_elf_rd(r, p + 24 + 2 * w, w);
	/* e_flags and the halves follow the three words: at 36 (ELF32) or 48 (ELF64). */
	q = 24 + 3 * w;
	eh->flags = kw_elf_rd32(r, p + q);
	eh->ehsize = kw_elf_rd16(r, p + q + 4);
	eh->phentsize = kw_elf_rd16(r, p + q + 6);
	eh->phnum = kw_elf_rd16(r, p + q + 8);
	eh->shentsize = kw_elf_rd16(r, p + q + 10);
	eh->shnum = kw_elf_rd16(r, p + q + 12);
	eh->shstrndx = kw_elf_rd16(r, p + q + 14);
	return true;
}

bool kw_elf_get_phdr(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_phdr *ph)
{
	const unsigned char *p;

	if (!kw_elf_in_file(r, off, kw_elf_phent_size(r))) {
		return false;
	}
	p = r->b + off;
	ph->type = kw_elf_rd32(r, p);
	if (r->is64) {
		/* ELF64 moves p_flags up beside p_type, for alignment. */
		ph->flags = kw_elf_rd32(r, p + 4);
		ph->offset = kw_elf_rd64(r, p + 8);
		ph->vaddr = kw_elf_rd64(r, p + 16);
		ph->paddr = kw_elf_rd64(r, p + 24);
		ph->filesz = kw_elf_rd64(r, p + 32);
		ph->memsz = kw_elf_rd64(r, p + 40);
		ph->align = kw_elf_rd64(r, p + 48);
	} else {
		ph->offset = kw_elf_rd32(r, p + 4);
		ph->vaddr = kw_elf_rd32(r, p + 8);
		ph->paddr = kw_elf_rd32(r, p + 12);
		ph->filesz = kw_elf_rd32(r, p + 16);
		ph->memsz = kw_elf_rd32(r, p + 20);
		ph->flags = kw_elf_rd32(r, p + 24);
		ph->align = kw_elf_rd32(r, p + 28);
	}
	return true;
}

bool kw_elf_get_shdr(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_shdr *sh)
{
	const unsigned char *p;
	size_t w = kw_elf_word(r);

	if (!kw_elf_in_file(r, off, kw_elf_shent_size(r))) {
		return false;
	}
	p = r->b + off;
	sh->name = kw_elf_rd32(r, p);
	sh->type = kw_elf_rd32(r, p + 4);
	sh->flags = kw_elf_rd(r, p + 8, w);
	sh->addr = kw_elf_rd(r, p + 8 + w, w);
	sh->offset = kw_elf_rd(r, p + 8 + 2 * w, w);
	sh->size = kw_elf_rd(r, p + 8 + 3 * w, w);
	sh->link = kw_elf_rd32(r, p + 8 + 4 * w);
	sh->info = kw_elf_rd32(r, p + 12 + 4 * w);
	sh->addralign = kw_elf_rd(r, p + 16 + 4 * w, w);
	sh->entsize = kw_elf_rd(r, p + 16 + 5 * w, w);
	return true;
}

bool kw_elf_get_dyn(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_dyn *d)
{
	size_t w = kw_elf_word(r);

	if (!kw_elf_in_file(r, off, 2 * w)) {
		return false;
	}
	d->tag = (int64_t)kw_elf_rd(r, r->b + off, w);
	if (!r->is64) {
		d->tag = (int32_t)(uint32_t)d->tag;
	}
	d->val = kw_elf_rd(r, r->b + off + w, w);
	return true;
}

bool kw_elf_dyn_at(const struct kw_elf_raw *r, uint64_t off, uint64_t size, uint64_t n, struct kw_elf_dyn *d)
{
	uint64_t es = kw_elf_dynent_size(r);

	if (!kw_elf_in_file(r, off, size) || n >= size / es) {
		return false;
	}
	return kw_elf_get_dyn(r, off + n * es, d);
}

bool kw_elf_vaddr_range(const struct kw_elf_raw *r, const struct kw_elf_phdr *ph, size_t n, uint64_t vaddr,
			uint64_t size, uint64_t *off)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct kw_elf_phdr *p = &ph[i];

		if (p->type != PT_LOAD || vaddr < p->vaddr || vaddr - p->vaddr > p->filesz ||
		    size > p->filesz - (vaddr - p->vaddr)) {
			continue;
		}
		/* The segment holds the range; if its file image is not in the file, nothing does. */
		if (p->offset > r->len || vaddr - p->vaddr > r->len - p->offset ||
		    !kw_elf_in_file(r, p->offset + (vaddr - p->vaddr), size)) {
			return false;
		}
		*off = p->offset + (vaddr - p->vaddr);
		return true;
	}
	return false;
}

uint64_t kw_elf_vaddr_room(const struct kw_elf_raw *r, const struct kw_elf_phdr *ph, size_t n, uint64_t vaddr,
			   uint64_t *off)
{
	size_t i;

	*off = 0;
	for (i = 0; i < n; i++) {
		const struct kw_elf_phdr *p = &ph[i];
		uint64_t o, room;

		if (p->type != PT_LOAD || vaddr < p->vaddr || vaddr - p->vaddr >= p->filesz) {
			continue;
		}
		/* A segment whose file image starts past the end holds nothing of the file. */
		if (p->offset >= r->len || vaddr - p->vaddr >= r->len - p->offset) {
			continue;
		}
		o = p->offset + (vaddr - p->vaddr);
		room = p->filesz - (vaddr - p->vaddr);
		if (room > r->len - o) {
			room = r->len - o;
		}
		*off = o;
		return room;
	}
	return 0;
}

const char *kw_elf_str(const struct kw_elf_raw *r, uint64_t off, uint64_t size, uint64_t idx)
{
	const char *s;

	if (!kw_elf_in_file(r, off, size) || idx >= size) {
		return NULL;
	}
	s = (const char *)r->b + off + idx;
	return memchr(s, 0, (size_t)(size - idx)) ? s : NULL;
}

/* Decode the entry of the given kind at off, known to lie in the image. */
static void get_ver(const struct kw_elf_raw *r, uint64_t off, bool def, bool record, struct kw_elf_ver *v)
{
	const unsigned char *p = r->b + off;

	memset(v, 0, sizeof(*v));
	v->record = record;
	v->off = off;
	if (def && record) {
		v->size = 20;
		v->version = kw_elf_rd16(r, p);
		v->flags = kw_elf_rd16(r, p + 2);
		v->ndx = kw_elf_rd16(r, p + 4);
		v->cnt = kw_elf_rd16(r, p + 6);
		v->hash = kw_elf_rd32(r, p + 8);
		v->aux = kw_elf_rd32(r, p + 12);
		v->next = kw_elf_rd32(r, p + 16);
	} else if (def) {
		v->size = 8;
		v->name = kw_elf_rd32(r, p);
		v->next = kw_elf_rd32(r, p + 4);
	} else if (record) {
		v->size = 16;
		v->version = kw_elf_rd16(r, p);
		v->cnt = kw_elf_rd16(r, p + 2);
		v->name = kw_elf_rd32(r, p + 4);
		v->aux = kw_elf_rd32(r, p + 8);
		v->next = kw_elf_rd32(r, p + 12);
	} else {
		v->size = 16;
		v->hash = kw_elf_rd32(r, p);
		v->flags = kw_elf_rd16(r, p + 4);
		v->ndx = kw_elf_rd16(r, p + 6);
		v->name = kw_elf_rd32(r, p + 8);
		v->next = kw_elf_rd32(r, p + 12);
	}
}

/* Does an entry of size bytes at pos lie in [.., end)? end is at most the image's length. */
static bool fits(uint64_t pos, uint64_t size, uint64_t end)
{
	return pos <= end && end - pos >= size;
}

int kw_elf_ver_walk(const struct kw_elf_raw *r, uint64_t off, uint64_t end, uint64_t num, unsigned flags,
		    int (*fn)(void *ud, const struct kw_elf_ver *v), void *ud)
{
	bool def = flags & KW_ELF_VER_DEF, lenient = flags & KW_ELF_VER_LENIENT;
	uint64_t rec = def ? 20 : 16, auxsz = def ? 8 : 16, pos = off, i, k, total = 0;
	int rc;

	if (end > r->len) {
		end = r->len;
	}
	if (num > KW_ELF_VER_MAX_RECORDS) {
		if (!lenient) {
			return KW_ELF_VER_TOO_MANY_RECORDS;
		}
		num = KW_ELF_VER_MAX_RECORDS;
	}
	/* Offsets only grow, by at most 2^32 a step and 2^12 + 2^16 steps: pos cannot wrap. */
	for (i = 0; i < num; i++) {
		struct kw_elf_ver v;
		uint64_t apos;

		if (!fits(pos, rec, end)) {
			return lenient ? 0 : KW_ELF_VER_RECORD_PAST;
		}
		get_ver(r, pos, def, true, &v);
		rc = fn(ud, &v);
		if (rc < 0) {
			return rc;
		}
		apos = pos + v.aux;
		for (k = 0; rc != KW_ELF_VER_NEXT_RECORD && k < v.cnt; k++) {
			struct kw_elf_ver a;

			if (++total > KW_ELF_VER_MAX_ENTRIES) {
				if (!lenient) {
					return KW_ELF_VER_TOO_MANY_ENTRIES;
				}
				break;
			}
			if (!fits(apos, auxsz, end)) {
				if (!lenient) {
					return KW_ELF_VER_ENTRY_PAST;
				}
				break;
			}
			get_ver(r, apos, def, false, &a);
			rc = fn(ud, &a);
			if (rc < 0) {
				return rc;
			}
			if (a.next == 0) {
				break;
			}
			apos += a.next;
		}
		if (v.next == 0) {
			break;
		}
		pos += v.next;
	}
	return 0;
}
