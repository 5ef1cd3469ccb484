/* SPDX-License-Identifier: MIT */
/*
 * Read-only view of an ELF object, driven by the program headers: the loader
 * never looks at section headers, so neither do we (stripped files and files
 * whose section headers were removed read the same). Every offset, count and
 * string index is checked against the image before use.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/elf.h"
#include "kwheel/util.h"

#ifndef EM_LOONGARCH
#define EM_LOONGARCH 258
#endif
#ifndef DT_RELR
#define DT_RELR 36
#endif
#ifndef SHT_ARM_ATTRIBUTES
#define SHT_ARM_ATTRIBUTES 0x70000003
#endif

/* Hard bounds, far above anything real, so a forged count cannot make us spin. */
#define MAX_VERNEED_ENTRIES 4096
#define MAX_VERSION_AUX 65536

struct seg {
	uint64_t vaddr, memsz, offset, filesz;
};

struct view {
	const unsigned char *buf;
	size_t len;
	const char *name;
	bool is64, msb;
	struct seg *loads;
	size_t n_loads;
	/* dynamic string table as file range */
	uint64_t str_off, str_size;
	bool have_str;
};

static uint16_t rd16(const struct view *v, const unsigned char *p)
{
	return v->msb ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32(const struct view *v, const unsigned char *p)
{
	return v->msb ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t rd64(const struct view *v, const unsigned char *p)
{
	uint64_t a = rd32(v, p), b = rd32(v, p + 4);

	return v->msb ? a << 32 | b : b << 32 | a;
}

static uint64_t rdword(const struct view *v, const unsigned char *p)
{
	return v->is64 ? rd64(v, p) : rd32(v, p);
}

static bool in_file(const struct view *v, uint64_t off, uint64_t size)
{
	return size <= v->len && off <= v->len - size;
}

/*
 * Bytes available in the file from vaddr to the end of its segment's file
 * image, and in *off the file offset of vaddr; 0 and *off 0 if no segment
 * holds it, so a caller that checks only the room never reads an unset offset.
 */
static uint64_t vaddr_room(const struct view *v, uint64_t vaddr, uint64_t *off)
{
	size_t i;

	*off = 0;
	for (i = 0; i < v->n_loads; i++) {
		const struct seg *s = &v->loads[i];
		uint64_t o, room;

		if (vaddr < s->vaddr || vaddr - s->vaddr >= s->filesz) {
			continue;
		}
		o = s->offset + (vaddr - s->vaddr);
		if (o >= v->len) {
			continue;
		}
		room = s->filesz - (vaddr - s->vaddr);
		if (room > v->len - o) {
			room = v->len - o;
		}
		*off = o;
		return room;
	}
	return 0;
}

/* A NUL-terminated string at index idx of the dynamic string table, or NULL. */
static const char *dynstr(const struct view *v, uint64_t idx)
{
	const unsigned char *base, *nul;

	if (!v->have_str || idx >= v->str_size) {
		return NULL;
	}
	base = v->buf + v->str_off + idx;
	nul = memchr(base, 0, (size_t)(v->str_size - idx));
	return nul ? (const char *)base : NULL;
}

void kw_elf_info_free(struct kw_elf_info *info)
{
	size_t i, k;

	if (!info) {
		return;
	}
	free(info->interp);
	for (i = 0; i < info->n_needed; i++) {
		free(info->needed[i]);
	}
	free(info->needed);
	free(info->soname);
	free(info->rpath);
	free(info->runpath);
	for (i = 0; i < info->n_verneed; i++) {
		free(info->verneed[i].file);
		for (k = 0; k < info->verneed[i].n_versions; k++) {
			free(info->verneed[i].versions[k]);
		}
		free(info->verneed[i].versions);
	}
	free(info->verneed);
	for (i = 0; i < info->n_verdef; i++) {
		free(info->verdef[i]);
	}
	free(info->verdef);
	for (i = 0; i < info->n_syms; i++) {
		free(info->syms[i].name);
		free(info->syms[i].version);
	}
	free(info->syms);
	free(info->reloc_types);
	free(info);
}

bool kw_elf_is_elf(const void *buf, size_t len)
{
	return len >= 4 && memcmp(buf, ELFMAG, SELFMAG) == 0;
}

/* Everything the dynamic section says, before it is interpreted. */
struct dyn {
	uint64_t strtab, strsz, symtab, syment, hash, gnu_hash, versym;
	uint64_t verneed, verneednum, verdef, verdefnum;
	uint64_t rela, relasz, relaent, rel, relsz, relent, jmprel, pltrelsz, pltrel;
	uint64_t soname, rpath, runpath;
	bool has_strtab, has_symtab, has_hash, has_gnu_hash, has_versym, has_verneed, has_verdef;
	bool has_soname, has_rpath, has_runpath, has_rela, has_rel, has_jmprel;
	uint64_t *needed;
	size_t n_needed;
};

static int push_str(char ***v, size_t *n, size_t *cap, const char *s)
{
	char *d;

	if (kw_grow(v, cap, *n + 2, sizeof(**v))) {
		return KW_ENOMEM;
	}
	d = kw_strdup(s);
	if (!d) {
		return KW_ENOMEM;
	}
	(*v)[(*n)++] = d;
	(*v)[*n] = NULL;
	return 0;
}

static int read_dynamic(const struct view *v, uint64_t off, uint64_t size, struct kw_elf_info *info,
			struct dyn *d, struct kw_error *err)
{
	size_t ent = v->is64 ? 16 : 8;
	size_t cap = 0;
	uint64_t i;

	if (!in_file(v, off, size)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': dynamic segment lies outside the file", v->name);
	}
	for (i = 0; i + ent <= size; i += ent) {
		const unsigned char *p = v->buf + off + i;
		int64_t tag = (int64_t)rdword(v, p);
		uint64_t val = rdword(v, p + ent / 2);

		if (!v->is64) {
			tag = (int32_t)tag;
		}
		switch (tag) {
		case DT_NULL:
			return 0;
		case DT_NEEDED:
			if (kw_grow(&d->needed, &cap, d->n_needed + 1, sizeof(*d->needed))) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			d->needed[d->n_needed++] = val;
			break;
		case DT_STRTAB: d->strtab = val; d->has_strtab = true; break;
		case DT_STRSZ: d->strsz = val; break;
		case DT_SYMTAB: d->symtab = val; d->has_symtab = true; break;
		case DT_SYMENT: d->syment = val; break;
		case DT_HASH: d->hash = val; d->has_hash = true; break;
		case DT_GNU_HASH: d->gnu_hash = val; d->has_gnu_hash = true; break;
		case DT_VERSYM: d->versym = val; d->has_versym = true; break;
		case DT_VERNEED: d->verneed = val; d->has_verneed = true; break;
		case DT_VERNEEDNUM: d->verneednum = val; break;
		case DT_VERDEF: d->verdef = val; d->has_verdef = true; break;
		case DT_VERDEFNUM: d->verdefnum = val; break;
		case DT_SONAME: d->soname = val; d->has_soname = true; break;
		case DT_RPATH: d->rpath = val; d->has_rpath = true; break;
		case DT_RUNPATH: d->runpath = val; d->has_runpath = true; break;
		case DT_RELA: d->rela = val; d->has_rela = true; break;
		case DT_RELASZ: d->relasz = val; break;
		case DT_RELAENT: d->relaent = val; break;
		case DT_REL: d->rel = val; d->has_rel = true; break;
		case DT_RELSZ: d->relsz = val; break;
		case DT_RELENT: d->relent = val; break;
		case DT_JMPREL: d->jmprel = val; d->has_jmprel = true; break;
		case DT_PLTRELSZ: d->pltrelsz = val; break;
		case DT_PLTREL: d->pltrel = val; break;
		case DT_FLAGS:
			info->dt_flags = val;
			if (val & DF_TEXTREL) {
				info->textrel = true;
			}
			break;
		case DT_FLAGS_1: info->dt_flags_1 = val; break;
		case DT_TEXTREL: info->textrel = true; break;
		case DT_RELR: info->has_relr = true; break;
		default: break;
		}
	}
	return 0;
}

static int dyn_string(const struct view *v, uint64_t idx, const char *what, char **out,
		      struct kw_error *err)
{
	const char *s = dynstr(v, idx);

	if (!s) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s string index %llu is outside the string table",
				    v->name, what, (unsigned long long)idx);
	}
	*out = kw_strdup(s);
	return *out ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
}

/* Number of dynamic symbols, from DT_HASH or by walking DT_GNU_HASH. */
static int symbol_count(const struct view *v, uint16_t machine, const struct dyn *d, uint64_t max,
			uint64_t *count, struct kw_error *err)
{
	uint64_t off, room;

	*count = 0;
	if (d->has_hash) {
		/* 64-bit s390x and alpha use 64-bit hash words; everyone else 32-bit. */
		bool wide = v->is64 && (machine == EM_S390 || machine == EM_ALPHA);

		room = vaddr_room(v, d->hash, &off);
		if (room < (wide ? 16u : 8u)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_HASH lies outside the file", v->name);
		}
		*count = wide ? rd64(v, v->buf + off + 8) : rd32(v, v->buf + off + 4);
		if (*count > max) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_HASH claims %llu symbols, more than the file holds",
					    v->name, (unsigned long long)*count);
		}
		return 0;
	}
	if (d->has_gnu_hash) {
		uint32_t nbuckets, symoffset, bloom_size;
		uint64_t buckets_off, chain_off, maxsym = 0, i, word = v->is64 ? 8 : 4;

		room = vaddr_room(v, d->gnu_hash, &off);
		if (room < 16) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH lies outside the file", v->name);
		}
		nbuckets = rd32(v, v->buf + off);
		symoffset = rd32(v, v->buf + off + 4);
		bloom_size = rd32(v, v->buf + off + 8);
		if ((uint64_t)bloom_size * word > room - 16 ||
		    (uint64_t)nbuckets * 4 > room - 16 - (uint64_t)bloom_size * word) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH tables run past the file", v->name);
		}
		buckets_off = off + 16 + (uint64_t)bloom_size * word;
		chain_off = buckets_off + (uint64_t)nbuckets * 4;
		for (i = 0; i < nbuckets; i++) {
			uint32_t b = rd32(v, v->buf + buckets_off + 4 * i);

			if (b > maxsym) {
				maxsym = b;
			}
		}
		if (maxsym == 0) {
			*count = symoffset;
			return *count > max ? kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH symbol offset too large", v->name) : 0;
		}
		if (maxsym < symoffset) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH bucket below symbol offset", v->name);
		}
		/* Walk the last chain to its end bit. */
		for (;;) {
			uint64_t co = chain_off + 4 * (maxsym - symoffset);

			if (maxsym > max || !in_file(v, co, 4)) {
				return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH chain runs past the file", v->name);
			}
			if (rd32(v, v->buf + co) & 1) {
				break;
			}
			maxsym++;
		}
		*count = maxsym + 1;
		return 0;
	}
	return 0;
}

struct vermap {
	uint16_t index;
	const char *name;
};

static int read_verneed(const struct view *v, const struct dyn *d, struct kw_elf_info *info,
			struct vermap **map, size_t *n_map, struct kw_error *err)
{
	uint64_t off, room, pos = 0, i, total_aux = 0;
	size_t cap = 0, mcap = 0;

	room = vaddr_room(v, d->verneed, &off);
	if (d->verneednum > MAX_VERNEED_ENTRIES) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERNEEDNUM %llu is absurd", v->name,
				    (unsigned long long)d->verneednum);
	}
	for (i = 0; i < d->verneednum; i++) {
		const unsigned char *p;
		uint16_t cnt;
		uint32_t file, aux, next, k;
		uint64_t apos;
		struct kw_elf_verneed *vn;
		size_t vcap = 0;
		const char *fname;

		if (pos > room || room - pos < 16) {
			return kw_error_set(err, KW_EFORMAT, "'%s': version needs run past the file", v->name);
		}
		p = v->buf + off + pos;
		cnt = rd16(v, p + 2);
		file = rd32(v, p + 4);
		aux = rd32(v, p + 8);
		next = rd32(v, p + 12);
		fname = dynstr(v, file);
		if (!fname) {
			return kw_error_set(err, KW_EFORMAT, "'%s': version need file name outside the string table", v->name);
		}
		if (kw_grow(&info->verneed, &cap, info->n_verneed + 1, sizeof(*info->verneed))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		vn = &info->verneed[info->n_verneed++];
		memset(vn, 0, sizeof(*vn));
		vn->file = kw_strdup(fname);
		if (!vn->file) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		apos = pos + aux;
		for (k = 0; k < cnt; k++) {
			const unsigned char *a;
			const char *vname;
			uint32_t anext;

			if (++total_aux > MAX_VERSION_AUX) {
				return kw_error_set(err, KW_EFORMAT, "'%s': too many version needs", v->name);
			}
			if (apos > room || room - apos < 16) {
				return kw_error_set(err, KW_EFORMAT, "'%s': version need entry runs past the file", v->name);
			}
			a = v->buf + off + apos;
			vname = dynstr(v, rd32(v, a + 8));
			if (!vname) {
				return kw_error_set(err, KW_EFORMAT, "'%s': version name outside the string table", v->name);
			}
			if (push_str(&vn->versions, &vn->n_versions, &vcap, vname)) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			if (kw_grow(map, &mcap, *n_map + 1, sizeof(**map))) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			(*map)[*n_map].index = rd16(v, a + 6) & 0x7fff;
			(*map)[*n_map].name = vname;
			(*n_map)++;
			anext = rd32(v, a + 12);
			if (anext == 0) {
				break;
			}
			apos += anext;
		}
		if (next == 0) {
			break;
		}
		pos += next;
	}
	return 0;
}

static int read_verdef(const struct view *v, const struct dyn *d, struct kw_elf_info *info,
		       struct vermap **map, size_t *n_map, size_t *mcap, struct kw_error *err)
{
	uint64_t off, room, pos = 0, i;
	size_t cap = 0;

	room = vaddr_room(v, d->verdef, &off);
	if (d->verdefnum > MAX_VERNEED_ENTRIES) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERDEFNUM %llu is absurd", v->name,
				    (unsigned long long)d->verdefnum);
	}
	for (i = 0; i < d->verdefnum; i++) {
		const unsigned char *p;
		uint16_t flags, ndx, cnt;
		uint32_t aux, next;
		const char *vname;

		if (pos > room || room - pos < 20) {
			return kw_error_set(err, KW_EFORMAT, "'%s': version definitions run past the file", v->name);
		}
		p = v->buf + off + pos;
		flags = rd16(v, p + 2);
		ndx = rd16(v, p + 4);
		cnt = rd16(v, p + 6);
		aux = rd32(v, p + 12);
		next = rd32(v, p + 16);
		if (cnt > 0) {
			if (aux > room - pos || room - pos - aux < 8) {
				return kw_error_set(err, KW_EFORMAT, "'%s': version definition name runs past the file", v->name);
			}
			vname = dynstr(v, rd32(v, p + aux));
			if (!vname) {
				return kw_error_set(err, KW_EFORMAT, "'%s': version definition name outside the string table", v->name);
			}
			/* The base definition names the file itself, not a version. */
			if (!(flags & VER_FLG_BASE)) {
				if (push_str(&info->verdef, &info->n_verdef, &cap, vname)) {
					return kw_error_set(err, KW_ENOMEM, "out of memory");
				}
			}
			if (kw_grow(map, mcap, *n_map + 1, sizeof(**map))) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			(*map)[*n_map].index = ndx & 0x7fff;
			(*map)[*n_map].name = (flags & VER_FLG_BASE) ? NULL : vname;
			(*n_map)++;
		}
		if (next == 0) {
			break;
		}
		pos += next;
	}
	return 0;
}

/* Highest symbol index a table of dynamic relocations names (0 if none); entries past the file are not read. */
static uint64_t reloc_max_sym(const struct view *v, uint16_t machine, uint64_t addr, uint64_t size, bool rela)
{
	uint64_t ent = v->is64 ? (rela ? 24 : 16) : (rela ? 12 : 8), off, room, i, max = 0;

	room = vaddr_room(v, addr, &off);
	if (size < room) {
		room = size;
	}
	for (i = 0; room >= ent && i <= room - ent; i += ent) {
		const unsigned char *p = v->buf + off + i + (v->is64 ? 8 : 4);
		uint64_t sym;

		if (v->is64) {
			uint64_t rinfo = rd64(v, p);

			/* MIPS64 little-endian stores r_sym as the low word, the types above it. */
			sym = machine == EM_MIPS && !v->msb ? rinfo & 0xffffffff : rinfo >> 32;
		} else {
			sym = rd32(v, p) >> 8;
		}
		if (sym > max) {
			max = sym;
		}
	}
	return max;
}

static int read_symbols(const struct view *v, uint16_t machine, const struct dyn *d, struct kw_elf_info *info,
			const struct vermap *map, size_t n_map, struct kw_error *err)
{
	uint64_t syment = v->is64 ? 24 : 16, off, room, count, i, voff = 0;
	bool have_versym = false;
	int rc;

	if (!d->has_symtab) {
		return 0;
	}
	if (d->syment && d->syment != syment) {
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_SYMENT %llu is not %llu", v->name,
				    (unsigned long long)d->syment, (unsigned long long)syment);
	}
	room = vaddr_room(v, d->symtab, &off);
	rc = symbol_count(v, machine, d, room / syment, &count, err);
	if (rc) {
		return rc;
	}
	/*
	 * A hash table counts only the symbols it hashes and those below
	 * symoffset: GNU ld writes an "empty" DT_GNU_HASH (one unused bucket,
	 * symoffset 1) for an object that exports nothing, whatever undefined
	 * symbols its relocations name. The loader reaches a symbol through a
	 * hash chain or a relocation, so the table holds at least every symbol
	 * a relocation names.
	 */
	{
		uint64_t rmax = 0, m;

		if (d->has_rela) {
			rmax = reloc_max_sym(v, machine, d->rela, d->relasz, true);
		}
		if (d->has_rel && (m = reloc_max_sym(v, machine, d->rel, d->relsz, false)) > rmax) {
			rmax = m;
		}
		if (d->has_jmprel && (m = reloc_max_sym(v, machine, d->jmprel, d->pltrelsz, d->pltrel == DT_RELA)) > rmax) {
			rmax = m;
		}
		if (rmax >= room / syment) {
			return kw_error_set(err, KW_EFORMAT, "'%s': a relocation names symbol %llu, past the symbol table",
					    v->name, (unsigned long long)rmax);
		}
		if (rmax >= count) {
			count = rmax + 1;
		}
	}
	if (count > room / syment) {
		return kw_error_set(err, KW_EFORMAT, "'%s': symbol table runs past the file", v->name);
	}
	if (d->has_versym) {
		uint64_t vroom = vaddr_room(v, d->versym, &voff);

		have_versym = vroom / 2 >= count;
	}
	if (count <= 1) {
		return 0;
	}
	info->syms = kw_calloc((size_t)(count - 1), sizeof(*info->syms));
	if (!info->syms) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 1; i < count; i++) {
		const unsigned char *p = v->buf + off + i * syment;
		struct kw_elf_sym *s = &info->syms[info->n_syms];
		uint32_t name = rd32(v, p);
		unsigned char st_info, st_other;
		uint16_t shndx;
		const char *nm;

		if (v->is64) {
			st_info = p[4];
			st_other = p[5];
			shndx = rd16(v, p + 6);
			s->value = rd64(v, p + 8);
			s->size = rd64(v, p + 16);
		} else {
			s->value = rd32(v, p + 4);
			s->size = rd32(v, p + 8);
			st_info = p[12];
			st_other = p[13];
			shndx = rd16(v, p + 14);
		}
		nm = dynstr(v, name);
		if (!nm) {
			return kw_error_set(err, KW_EFORMAT, "'%s': symbol %llu name outside the string table",
					    v->name, (unsigned long long)i);
		}
		s->name = kw_strdup(nm);
		if (!s->name) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		info->n_syms++;
		s->bind = (unsigned char)(st_info >> 4);
		s->type = (unsigned char)(st_info & 0xf);
		s->visibility = (unsigned char)(st_other & 3);
		s->defined = shndx != SHN_UNDEF;
		s->shndx = shndx;
		if (have_versym) {
			uint16_t vs = rd16(v, v->buf + voff + 2 * i);
			uint16_t idx = vs & 0x7fff;
			size_t k;

			s->version_hidden = (vs & 0x8000) != 0;
			for (k = 0; idx > 1 && k < n_map; k++) {
				if (map[k].index == idx && map[k].name) {
					s->version = kw_strdup(map[k].name);
					if (!s->version) {
						return kw_error_set(err, KW_ENOMEM, "out of memory");
					}
					break;
				}
			}
		}
	}
	return 0;
}

/* Distinct relocation types, kept sorted; few per file, so insertion is cheap. */
struct typeset {
	uint32_t *v;
	size_t n, cap;
};

static int typeset_add(struct typeset *t, uint32_t type)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid] == type) {
			return 0;
		}
		if (t->v[mid] < type) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	if (kw_grow(&t->v, &t->cap, t->n + 1, sizeof(*t->v))) {
		return -1;
	}
	memmove(t->v + lo + 1, t->v + lo, (t->n - lo) * sizeof(*t->v));
	t->v[lo] = type;
	t->n++;
	return 0;
}

static int add_reloc_types(const struct view *v, uint16_t machine, uint64_t addr, uint64_t size,
			   bool rela, struct typeset *seen, struct kw_error *err)
{
	uint64_t ent = v->is64 ? (rela ? 24 : 16) : (rela ? 12 : 8), off, room, i;

	if (size == 0) {
		return 0;
	}
	room = vaddr_room(v, addr, &off);
	if (size > room) {
		return kw_error_set(err, KW_EFORMAT, "'%s': relocation table runs past the file", v->name);
	}
	for (i = 0; i + ent <= size; i += ent) {
		const unsigned char *p = v->buf + off + i + (v->is64 ? 8 : 4);
		uint32_t type;

		if (v->is64) {
			uint64_t rinfo = rd64(v, p);

			/* MIPS64 little-endian stores r_info in two swapped halves. */
			if (machine == EM_MIPS && !v->msb) {
				type = (uint32_t)(rinfo >> 56);
			} else {
				type = (uint32_t)(rinfo & 0xffffffff);
			}
		} else {
			type = rd32(v, p) & 0xff;
		}
		if (typeset_add(seen, type)) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	return 0;
}

static int read_relocs(const struct view *v, uint16_t machine, const struct dyn *d,
		       struct kw_elf_info *info, struct kw_error *err)
{
	struct typeset seen = { NULL, 0, 0 };
	int rc = 0;

	if (d->has_rela) {
		rc = add_reloc_types(v, machine, d->rela, d->relasz, true, &seen, err);
	}
	if (!rc && d->has_rel) {
		rc = add_reloc_types(v, machine, d->rel, d->relsz, false, &seen, err);
	}
	if (!rc && d->has_jmprel) {
		rc = add_reloc_types(v, machine, d->jmprel, d->pltrelsz, d->pltrel == DT_RELA, &seen, err);
	}
	if (rc) {
		free(seen.v);
		return rc;
	}
	info->reloc_types = seen.v;
	info->n_reloc_types = seen.n;
	return 0;
}

/* ARM: Tag_CPU_arch from .ARM.attributes, the only place the ISA level is written. */
static int arm_cpu_arch(Elf *e, const struct view *v)
{
	Elf_Scn *scn = NULL;
	size_t shnum = 0;

	if (elf_getshdrnum(e, &shnum) != 0 || shnum == 0) {
		return -1;
	}
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		const unsigned char *p, *end;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_ARM_ATTRIBUTES) {
			continue;
		}
		if (!in_file(v, sh.sh_offset, sh.sh_size) || sh.sh_size < 1) {
			return -1;
		}
		p = v->buf + sh.sh_offset;
		end = p + sh.sh_size;
		if (*p++ != 'A') {
			return -1;
		}
		while (end - p >= 4) {
			uint32_t sublen = rd32(v, p);
			const unsigned char *sub = p + 4, *subend;

			if (sublen < 4 || sublen > (size_t)(end - p)) {
				return -1;
			}
			subend = p + sublen;
			p = subend;
			if ((size_t)(subend - sub) < 6 || memcmp(sub, "aeabi", 6) != 0) {
				continue;
			}
			sub += 6;
			while (subend - sub >= 5) {
				unsigned tag = *sub;
				uint32_t len = rd32(v, sub + 1);
				const unsigned char *q = sub + 5, *qend;

				if (len < 5 || len > (size_t)(subend - sub)) {
					return -1;
				}
				qend = sub + len;
				sub = qend;
				if (tag != 1 /* Tag_File */) {
					continue;
				}
				while (q < qend) {
					uint64_t t = 0, val = 0;
					int shift = 0;

					while (q < qend && shift < 63) {
						t |= (uint64_t)(*q & 0x7f) << shift;
						shift += 7;
						if (!(*q++ & 0x80)) {
							break;
						}
					}
					/* Odd tags above 32 and tags 4, 5, 67 carry strings. */
					if (t == 4 || t == 5 || t == 67 || (t > 32 && (t & 1))) {
						while (q < qend && *q) {
							q++;
						}
						q++;
						continue;
					}
					shift = 0;
					while (q < qend && shift < 63) {
						val |= (uint64_t)(*q & 0x7f) << shift;
						shift += 7;
						if (!(*q++ & 0x80)) {
							break;
						}
					}
					if (t == 6 /* Tag_CPU_arch */) {
						return (int)val;
					}
				}
			}
		}
	}
	return -1;
}

static int parse(const struct view *v0, struct kw_elf_info **out, struct kw_error *err)
{
	struct view v = *v0;
	struct kw_elf_info *info = NULL;
	struct dyn d;
	struct vermap *map = NULL;
	size_t n_map = 0, mcap = 0, phnum = 0, i, ncap = 0, lcap = 0;
	uint64_t dyn_off = 0, dyn_size = 0;
	bool have_dyn = false;
	GElf_Ehdr eh;
	Elf *e = NULL;
	int rc = KW_EFORMAT;

	memset(&d, 0, sizeof(d));
	*out = NULL;
	if (v.len < EI_NIDENT || !kw_elf_is_elf(v.buf, v.len)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", v.name);
		goto out;
	}
	if (v.buf[EI_CLASS] != ELFCLASS32 && v.buf[EI_CLASS] != ELFCLASS64) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF class %u", v.name, v.buf[EI_CLASS]);
		goto out;
	}
	if (v.buf[EI_DATA] != ELFDATA2LSB && v.buf[EI_DATA] != ELFDATA2MSB) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF byte order %u", v.name, v.buf[EI_DATA]);
		goto out;
	}
	v.is64 = v.buf[EI_CLASS] == ELFCLASS64;
	v.msb = v.buf[EI_DATA] == ELFDATA2MSB;
	/* libelf never writes through an ELF_C_READ descriptor. */
	e = elf_memory((char *)(uintptr_t)v.buf, v.len);
	if (!e || !gelf_getehdr(e, &eh)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': truncated ELF header", v.name);
		goto out;
	}
	info = kw_calloc(1, sizeof(*info));
	if (!info) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	info->elfclass = v.buf[EI_CLASS];
	info->data = v.buf[EI_DATA];
	info->osabi = v.buf[EI_OSABI];
	info->machine = eh.e_machine;
	info->type = eh.e_type;
	info->e_flags = eh.e_flags;
	if (eh.e_phnum == 0) {
		if (eh.e_type == ET_DYN || eh.e_type == ET_EXEC) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': no program headers: the loader cannot load it", v.name);
			goto out;
		}
		goto done;
	}
	if (eh.e_phentsize != (v.is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr))) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': program header size %u is wrong", v.name, eh.e_phentsize);
		goto out;
	}
	/*
	 * The declared count, not elf_getphdrnum's: libelf quietly shrinks a
	 * table that runs past the end to nothing, which would read a truncated
	 * object as one without dependencies.
	 */
	phnum = eh.e_phnum;
	if (phnum == PN_XNUM && (elf_getphdrnum(e, &phnum) != 0 || phnum == PN_XNUM || phnum == 0)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': e_phnum is PN_XNUM but section 0 holds no count", v.name);
		goto out;
	}
	if (!in_file(&v, eh.e_phoff, (uint64_t)phnum * eh.e_phentsize)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': truncated program header table", v.name);
		goto out;
	}
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)i, &ph)) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': unreadable program header %zu", v.name, i);
			goto out;
		}
		switch (ph.p_type) {
		case PT_LOAD:
			/* The loader would map past the end and fault on first touch. */
			if (!in_file(&v, ph.p_offset, ph.p_filesz)) {
				rc = kw_error_set(err, KW_EFORMAT,
						  "'%s': loadable segment %zu runs past the end of the file (truncated?)",
						  v.name, i);
				goto out;
			}
			/*
			 * The loader cannot map a segment whose end wraps around the
			 * address space, and vaddr_room would map addresses through it;
			 * the editor refuses such a file too, so both agree.
			 */
			if (ph.p_memsz > (v.is64 ? UINT64_MAX : UINT32_MAX) - ph.p_vaddr ||
			    ph.p_filesz > (v.is64 ? UINT64_MAX : UINT32_MAX) - ph.p_vaddr) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': PT_LOAD %zu wraps around the address space",
						  v.name, i);
				goto out;
			}
			if (kw_grow(&v.loads, &lcap, v.n_loads + 1, sizeof(*v.loads))) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
			v.loads[v.n_loads].vaddr = ph.p_vaddr;
			v.loads[v.n_loads].memsz = ph.p_memsz;
			v.loads[v.n_loads].offset = ph.p_offset;
			v.loads[v.n_loads].filesz = ph.p_filesz;
			v.n_loads++;
			break;
		case PT_DYNAMIC:
			have_dyn = true;
			dyn_off = ph.p_offset;
			dyn_size = ph.p_filesz;
			break;
		case PT_INTERP:
			if (!in_file(&v, ph.p_offset, ph.p_filesz) || ph.p_filesz == 0 ||
			    !memchr(v.buf + ph.p_offset, 0, ph.p_filesz)) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': interpreter path lies outside the file", v.name);
				goto out;
			}
			free(info->interp);
			info->interp = kw_strdup((const char *)v.buf + ph.p_offset);
			if (!info->interp) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
			break;
		case PT_TLS:
			info->has_tls = true;
			break;
		default:
			break;
		}
	}
	if (!have_dyn) {
		goto done;
	}
	info->has_dynamic = true;
	rc = read_dynamic(&v, dyn_off, dyn_size, info, &d, err);
	if (rc) {
		goto out;
	}
	if (d.has_strtab) {
		uint64_t room = vaddr_room(&v, d.strtab, &v.str_off);

		if (room == 0 || d.strsz > room) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': dynamic string table lies outside the file", v.name);
			goto out;
		}
		v.str_size = d.strsz;
		v.have_str = true;
	} else if (d.n_needed || d.has_soname || d.has_rpath || d.has_runpath) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': dynamic section has strings but no DT_STRTAB", v.name);
		goto out;
	}
	for (i = 0; i < d.n_needed; i++) {
		const char *s = dynstr(&v, d.needed[i]);

		if (!s) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': DT_NEEDED string index %llu is outside the string table",
					  v.name, (unsigned long long)d.needed[i]);
			goto out;
		}
		if (push_str(&info->needed, &info->n_needed, &ncap, s)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	if ((d.has_soname && (rc = dyn_string(&v, d.soname, "DT_SONAME", &info->soname, err))) ||
	    (d.has_rpath && (rc = dyn_string(&v, d.rpath, "DT_RPATH", &info->rpath, err))) ||
	    (d.has_runpath && (rc = dyn_string(&v, d.runpath, "DT_RUNPATH", &info->runpath, err)))) {
		goto out;
	}
	if (d.has_verneed && (rc = read_verneed(&v, &d, info, &map, &n_map, err))) {
		goto out;
	}
	mcap = n_map;
	if (d.has_verdef && (rc = read_verdef(&v, &d, info, &map, &n_map, &mcap, err))) {
		goto out;
	}
	if ((rc = read_symbols(&v, info->machine, &d, info, map, n_map, err)) || (rc = read_relocs(&v, info->machine, &d, info, err))) {
		goto out;
	}
done:
	info->arm_cpu_arch = info->machine == EM_ARM ? arm_cpu_arch(e, &v) : -1;
	*out = info;
	info = NULL;
	rc = 0;
out:
	kw_elf_info_free(info);
	free(map);
	free(d.needed);
	free(v.loads);
	elf_end(e);
	return rc;
}

int kw_elf_parse_memory(const void *buf, size_t len, const char *name, struct kw_elf_info **out,
			struct kw_error *err)
{
	struct view v;

	memset(&v, 0, sizeof(v));
	v.buf = buf;
	v.len = len;
	v.name = name ? name : "(memory)";
	return parse(&v, out, err);
}

int kw_elf_parse_file(const char *path, struct kw_elf_info **out, struct kw_error *err)
{
	struct stat st;
	void *map;
	int fd, rc;

	*out = NULL;
	rc = kw_open_regular(path, &fd, &st, err);
	if (rc) {
		return rc;
	}
	if (st.st_size < EI_NIDENT) {
		close(fd);
		return kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", path);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		return kw_error_set(err, KW_EIO, "cannot map '%s': %s", path, strerror(errno));
	}
	rc = kw_elf_parse_memory(map, (size_t)st.st_size, path, out, err);
	munmap(map, (size_t)st.st_size);
	return rc;
}
