/* SPDX-License-Identifier: MIT */
/*
 * Read-only view of an ELF object, driven by the program headers: the loader
 * never looks at section headers, so neither do we (stripped files and files
 * whose section headers were removed read the same). Every offset, count and
 * string index is checked against the image before use. The bytes are read
 * through elf/'s decoder (kwheel/elf-decode.h), which the editor and the KM
 * converter share; what is left here is the summary: strings, symbols and
 * versions, relocation types, hash-table counts.
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

#include "kwheel/elf-decode.h"
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

struct view {
	struct kw_elf_raw raw; /* the image, as the decoder reads it */
	const char *name;
	struct kw_elf_phdr *loads; /* the PT_LOAD entries, in table order */
	size_t n_loads;
	/* dynamic string table as file range */
	uint64_t str_off, str_size;
	bool have_str;
	/*
	 * Check everything, copy nothing the summary would only hand back
	 * (strings, symbols, versions, relocation types): the editor needs the
	 * verdict and the symbol count, not the names. The count goes to
	 * *counted, info keeping no symbols.
	 */
	bool verdict_only;
	uint64_t *counted;
};

/*
 * Bytes available in the file from vaddr to the end of its segment's file
 * image, and in *off the file offset of vaddr; 0 and *off 0 if no segment
 * holds it, so a caller that checks only the room never reads an unset offset.
 */
static uint64_t vaddr_room(const struct view *v, uint64_t vaddr, uint64_t *off)
{
	return kw_elf_vaddr_room(&v->raw, v->loads, v->n_loads, vaddr, off);
}

/* A NUL-terminated string at index idx of the dynamic string table, or NULL. */
static const char *dynstr(const struct view *v, uint64_t idx)
{
	return v->have_str ? kw_elf_str(&v->raw, v->str_off, v->str_size, idx) : NULL;
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
	if (info->strings_) {
		free(info->strings_);
	} else {
		for (i = 0; i < info->n_syms; i++) {
			free(info->syms[i].name);
			free(info->syms[i].version);
		}
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
	size_t cap = 0;
	uint64_t i;
	struct kw_elf_dyn e;

	if (!kw_elf_in_file(&v->raw, off, size)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': dynamic segment lies outside the file", v->name);
	}
	for (i = 0; kw_elf_dyn_at(&v->raw, off, size, i, &e); i++) {
		int64_t tag = e.tag;
		uint64_t val = e.val;

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
	if (v->verdict_only) {
		return 0;
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
		bool wide = v->raw.is64 && (machine == EM_S390 || machine == EM_ALPHA);

		room = vaddr_room(v, d->hash, &off);
		if (room < (wide ? 16u : 8u)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_HASH lies outside the file", v->name);
		}
		*count = wide ? kw_elf_rd64(&v->raw, v->raw.b + off + 8) : kw_elf_rd32(&v->raw, v->raw.b + off + 4);
		if (*count > max) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_HASH claims %llu symbols, more than the file holds",
					    v->name, (unsigned long long)*count);
		}
		return 0;
	}
	if (d->has_gnu_hash) {
		uint32_t nbuckets, symoffset, bloom_size;
		uint64_t buckets_off, chain_off, maxsym = 0, i, word = v->raw.is64 ? 8 : 4;

		room = vaddr_room(v, d->gnu_hash, &off);
		if (room < 16) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH lies outside the file", v->name);
		}
		nbuckets = kw_elf_rd32(&v->raw, v->raw.b + off);
		symoffset = kw_elf_rd32(&v->raw, v->raw.b + off + 4);
		bloom_size = kw_elf_rd32(&v->raw, v->raw.b + off + 8);
		if ((uint64_t)bloom_size * word > room - 16 ||
		    (uint64_t)nbuckets * 4 > room - 16 - (uint64_t)bloom_size * word) {
			return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH tables run past the file", v->name);
		}
		buckets_off = off + 16 + (uint64_t)bloom_size * word;
		chain_off = buckets_off + (uint64_t)nbuckets * 4;
		for (i = 0; i < nbuckets; i++) {
			uint32_t b = kw_elf_rd32(&v->raw, v->raw.b + buckets_off + 4 * i);

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

			if (maxsym > max || !kw_elf_in_file(&v->raw, co, 4)) {
				return kw_error_set(err, KW_EFORMAT, "'%s': DT_GNU_HASH chain runs past the file", v->name);
			}
			if (kw_elf_rd32(&v->raw, v->raw.b + co) & 1) {
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

/* One version walk: what its callbacks add to, and where they report. */
struct verwalk {
	const struct view *v;
	struct kw_elf_info *info;
	struct vermap **map;
	size_t *n_map, *mcap;
	size_t cap;                /* of info->verneed or info->verdef */
	struct kw_elf_verneed *vn; /* the need whose versions come next */
	size_t vcap;               /* of vn->versions */
	struct kw_elf_ver rec;     /* the definition whose name comes next */
	struct kw_error *err;
};

static int add_map(struct verwalk *w, uint16_t index, const char *name)
{
	if (kw_grow(w->map, w->mcap, *w->n_map + 1, sizeof(**w->map))) {
		return kw_error_set(w->err, KW_ENOMEM, "out of memory");
	}
	(*w->map)[*w->n_map].index = index & 0x7fff;
	(*w->map)[*w->n_map].name = name;
	(*w->n_map)++;
	return 0;
}

/* A Verneed record names a file; each of its Vernaux entries a version of it. */
static int verneed_entry(void *ud, const struct kw_elf_ver *e)
{
	struct verwalk *w = ud;
	const struct view *v = w->v;
	const char *s = dynstr(v, e->name);

	if (e->record) {
		if (!s) {
			return kw_error_set(w->err, KW_EFORMAT, "'%s': version need file name outside the string table",
					    v->name);
		}
		if (v->verdict_only) {
			return 0;
		}
		if (kw_grow(&w->info->verneed, &w->cap, w->info->n_verneed + 1, sizeof(*w->info->verneed))) {
			return kw_error_set(w->err, KW_ENOMEM, "out of memory");
		}
		w->vn = &w->info->verneed[w->info->n_verneed++];
		memset(w->vn, 0, sizeof(*w->vn));
		w->vcap = 0;
		w->vn->file = kw_strdup(s);
		return w->vn->file ? 0 : kw_error_set(w->err, KW_ENOMEM, "out of memory");
	}
	if (!s) {
		return kw_error_set(w->err, KW_EFORMAT, "'%s': version name outside the string table", v->name);
	}
	if (v->verdict_only) {
		return 0;
	}
	if (push_str(&w->vn->versions, &w->vn->n_versions, &w->vcap, s)) {
		return kw_error_set(w->err, KW_ENOMEM, "out of memory");
	}
	return add_map(w, e->ndx, s);
}

static int read_verneed(const struct view *v, const struct dyn *d, struct kw_elf_info *info,
			struct vermap **map, size_t *n_map, struct kw_error *err)
{
	size_t mcap = 0;
	struct verwalk w = { .v = v, .info = info, .map = map, .n_map = n_map, .mcap = &mcap, .err = err };
	uint64_t off, room = vaddr_room(v, d->verneed, &off);
	int rc = kw_elf_ver_walk(&v->raw, off, off + room, d->verneednum, 0, verneed_entry, &w);

	switch (rc) {
	case KW_ELF_VER_TOO_MANY_RECORDS:
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERNEEDNUM %llu is absurd", v->name,
				    (unsigned long long)d->verneednum);
	case KW_ELF_VER_RECORD_PAST:
		return kw_error_set(err, KW_EFORMAT, "'%s': version needs run past the file", v->name);
	case KW_ELF_VER_ENTRY_PAST:
		return kw_error_set(err, KW_EFORMAT, "'%s': version need entry runs past the file", v->name);
	case KW_ELF_VER_TOO_MANY_ENTRIES:
		return kw_error_set(err, KW_EFORMAT, "'%s': too many version needs", v->name);
	default:
		return rc;
	}
}

/* A Verdef record's first Verdaux names the version it defines; the others name its parents. */
static int verdef_entry(void *ud, const struct kw_elf_ver *e)
{
	struct verwalk *w = ud;
	const struct view *v = w->v;
	const char *s;
	bool base;
	int rc;

	if (e->record) {
		w->rec = *e;
		return 0;
	}
	s = dynstr(v, e->name);
	if (!s) {
		return kw_error_set(w->err, KW_EFORMAT, "'%s': version definition name outside the string table", v->name);
	}
	if (v->verdict_only) {
		return KW_ELF_VER_NEXT_RECORD;
	}
	/* The base definition names the file itself, not a version. */
	base = w->rec.flags & VER_FLG_BASE;
	if (!base && push_str(&w->info->verdef, &w->info->n_verdef, &w->cap, s)) {
		return kw_error_set(w->err, KW_ENOMEM, "out of memory");
	}
	rc = add_map(w, w->rec.ndx, base ? NULL : s);
	return rc ? rc : KW_ELF_VER_NEXT_RECORD;
}

static int read_verdef(const struct view *v, const struct dyn *d, struct kw_elf_info *info,
		       struct vermap **map, size_t *n_map, size_t *mcap, struct kw_error *err)
{
	struct verwalk w = { .v = v, .info = info, .map = map, .n_map = n_map, .mcap = mcap, .err = err };
	uint64_t off, room = vaddr_room(v, d->verdef, &off);
	int rc = kw_elf_ver_walk(&v->raw, off, off + room, d->verdefnum, KW_ELF_VER_DEF, verdef_entry, &w);

	switch (rc) {
	case KW_ELF_VER_TOO_MANY_RECORDS:
		return kw_error_set(err, KW_EFORMAT, "'%s': DT_VERDEFNUM %llu is absurd", v->name,
				    (unsigned long long)d->verdefnum);
	case KW_ELF_VER_RECORD_PAST:
		return kw_error_set(err, KW_EFORMAT, "'%s': version definitions run past the file", v->name);
	case KW_ELF_VER_ENTRY_PAST:
	case KW_ELF_VER_TOO_MANY_ENTRIES:
		return kw_error_set(err, KW_EFORMAT, "'%s': version definition name runs past the file", v->name);
	default:
		return rc;
	}
}

/* Highest symbol index a table of dynamic relocations names (0 if none); entries past the file are not read. */
static uint64_t reloc_max_sym(const struct view *v, uint16_t machine, uint64_t addr, uint64_t size, bool rela)
{
	uint64_t ent = v->raw.is64 ? (rela ? 24 : 16) : (rela ? 12 : 8), off, room, i, max = 0;

	room = vaddr_room(v, addr, &off);
	if (size < room) {
		room = size;
	}
	for (i = 0; room >= ent && i <= room - ent; i += ent) {
		const unsigned char *p = v->raw.b + off + i + (v->raw.is64 ? 8 : 4);
		uint64_t sym;

		if (v->raw.is64) {
			uint64_t rinfo = kw_elf_rd64(&v->raw, p);

			/* MIPS64 little-endian stores r_sym as the low word, the types above it. */
			sym = machine == EM_MIPS && !v->raw.msb ? rinfo & 0xffffffff : rinfo >> 32;
		} else {
			sym = kw_elf_rd32(&v->raw, p) >> 8;
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
	uint64_t syment = v->raw.is64 ? 24 : 16, off, room, count, i, voff = 0;
	bool have_versym = false;
	const char *table;
	char **by_index = NULL;
	size_t n_index = 0;
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
	if (v->verdict_only) {
		/* Only the names can still make the file unreadable. */
		for (i = 1; i < count; i++) {
			if (!dynstr(v, kw_elf_rd32(&v->raw, v->raw.b + off + i * syment))) {
				return kw_error_set(err, KW_EFORMAT, "'%s': symbol %llu name outside the string table",
						    v->name, (unsigned long long)i);
			}
		}
		*v->counted = count - 1;
		return 0;
	}
	info->syms = kw_calloc((size_t)(count - 1), sizeof(*info->syms));
	if (!info->syms) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* The names: the string table copied once (it lies in the file), each name pointing into the copy. */
	table = v->have_str ? (const char *)v->raw.b + v->str_off : NULL;
	if (table && !(info->strings_ = kw_malloc(v->str_size ? (size_t)v->str_size : 1))) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (table) {
		memcpy(info->strings_, table, (size_t)v->str_size);
	}
	/*
	 * The version names by version index: they lie in the same string
	 * table (the version walks read them there), so they point into the
	 * copy too. The first entry of an index is the one a symbol gets, as
	 * the scan this replaces found.
	 */
	if (have_versym && n_map && table) {
		size_t k, top = 0;

		for (k = 0; k < n_map; k++) {
			top = map[k].name && map[k].index > top ? map[k].index : top;
		}
		if (!(by_index = kw_calloc(top + 1, sizeof(*by_index)))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		for (k = 0; k < n_map; k++) {
			if (map[k].name && !by_index[map[k].index]) {
				by_index[map[k].index] = info->strings_ + (map[k].name - table);
			}
		}
		n_index = top + 1;
	}
	for (i = 1; i < count; i++) {
		const unsigned char *p = v->raw.b + off + i * syment;
		struct kw_elf_sym *s = &info->syms[info->n_syms];
		uint32_t name = kw_elf_rd32(&v->raw, p);
		unsigned char st_info, st_other;
		uint16_t shndx;
		const char *nm;

		if (v->raw.is64) {
			st_info = p[4];
			st_other = p[5];
			shndx = kw_elf_rd16(&v->raw, p + 6);
			s->value = kw_elf_rd64(&v->raw, p + 8);
			s->size = kw_elf_rd64(&v->raw, p + 16);
		} else {
			s->value = kw_elf_rd32(&v->raw, p + 4);
			s->size = kw_elf_rd32(&v->raw, p + 8);
			st_info = p[12];
			st_other = p[13];
			shndx = kw_elf_rd16(&v->raw, p + 14);
		}
		nm = dynstr(v, name);
		if (!nm) {
			free(by_index);
			return kw_error_set(err, KW_EFORMAT, "'%s': symbol %llu name outside the string table",
					    v->name, (unsigned long long)i);
		}
		s->name = info->strings_ + (nm - table);
		info->n_syms++;
		s->bind = (unsigned char)(st_info >> 4);
		s->type = (unsigned char)(st_info & 0xf);
		s->visibility = (unsigned char)(st_other & 3);
		s->defined = shndx != SHN_UNDEF;
		s->shndx = shndx;
		if (have_versym) {
			uint16_t vs = kw_elf_rd16(&v->raw, v->raw.b + voff + 2 * i);
			uint16_t idx = vs & 0x7fff;

			s->version_hidden = (vs & 0x8000) != 0;
			if (idx > 1 && idx < n_index) {
				s->version = by_index[idx];
			}
		}
	}
	free(by_index);
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
	uint64_t ent = v->raw.is64 ? (rela ? 24 : 16) : (rela ? 12 : 8), off, room, i;

	if (size == 0) {
		return 0;
	}
	room = vaddr_room(v, addr, &off);
	if (size > room) {
		return kw_error_set(err, KW_EFORMAT, "'%s': relocation table runs past the file", v->name);
	}
	if (v->verdict_only) {
		return 0;
	}
	for (i = 0; i + ent <= size; i += ent) {
		const unsigned char *p = v->raw.b + off + i + (v->raw.is64 ? 8 : 4);
		uint32_t type;

		if (v->raw.is64) {
			uint64_t rinfo = kw_elf_rd64(&v->raw, p);

			/* MIPS64 little-endian stores r_info in two swapped halves. */
			if (machine == EM_MIPS && !v->raw.msb) {
				type = (uint32_t)(rinfo >> 56);
			} else {
				type = (uint32_t)(rinfo & 0xffffffff);
			}
		} else {
			type = kw_elf_rd32(&v->raw, p) & 0xff;
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
		if (!kw_elf_in_file(&v->raw, sh.sh_offset, sh.sh_size) || sh.sh_size < 1) {
			return -1;
		}
		p = v->raw.b + sh.sh_offset;
		end = p + sh.sh_size;
		if (*p++ != 'A') {
			return -1;
		}
		while (end - p >= 4) {
			uint32_t sublen = kw_elf_rd32(&v->raw, p);
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
				uint32_t len = kw_elf_rd32(&v->raw, sub + 1);
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

#ifndef PT_GNU_PROPERTY
#define PT_GNU_PROPERTY 0x6474e553
#endif
#define KW_NT_GNU_PROPERTY_TYPE_0 5
#define KW_GNU_PROPERTY_X86_ISA_1_NEEDED 0xc0008002u

/*
 * x86: GNU_PROPERTY_X86_ISA_1_NEEDED in a GNU property note in file range
 * [off, off + size), notes and properties padded to align (8 in ELFCLASS64,
 * 4 in ELFCLASS32). The linker writes the ISA levels the code needs there
 * (-z x86-64-v3 or -march=x86-64-v3 with -mneeded); glibc refuses to load an
 * object whose level the CPU lacks. A malformed note is ignored: it is not
 * what the loader reads the object's dependencies from.
 */
static void read_gnu_property(const struct view *v, uint64_t off, uint64_t size, uint64_t align,
			      struct kw_elf_info *info)
{
	const unsigned char *p, *end, *base;

	if (!kw_elf_in_file(&v->raw, off, size) || (align != 4 && align != 8)) {
		return;
	}
	base = p = v->raw.b + off;
	end = p + size;
	while (end - p >= 12 && !info->has_x86_isa_needed) {
		uint32_t namesz = kw_elf_rd32(&v->raw, p), descsz = kw_elf_rd32(&v->raw, p + 4);
		uint32_t type = kw_elf_rd32(&v->raw, p + 8);
		uint64_t name_room = ((uint64_t)namesz + 3) & ~(uint64_t)3;
		uint64_t desc_room = ((uint64_t)descsz + align - 1) & ~(align - 1);
		const unsigned char *desc, *q, *dend;

		p += 12;
		if (name_room > (uint64_t)(end - p)) {
			return;
		}
		desc = p + name_room;
		/* The descriptor starts aligned like the note. */
		while ((uint64_t)(desc - base) % align && desc < end) {
			desc++;
		}
		if (descsz > (uint64_t)(end - desc)) {
			return;
		}
		dend = desc + descsz;
		q = desc;
		if (type == KW_NT_GNU_PROPERTY_TYPE_0 && namesz == 4 && memcmp(p, "GNU", 4) == 0) {
			while (dend - q >= 8) {
				uint32_t pr_type = kw_elf_rd32(&v->raw, q), pr_datasz = kw_elf_rd32(&v->raw, q + 4);
				uint64_t room = ((uint64_t)pr_datasz + align - 1) & ~(align - 1);

				q += 8;
				if (room > (uint64_t)(dend - q)) {
					break;
				}
				if (pr_type == KW_GNU_PROPERTY_X86_ISA_1_NEEDED && pr_datasz == 4) {
					info->x86_isa_needed = kw_elf_rd32(&v->raw, q);
					info->has_x86_isa_needed = true;
					break;
				}
				q += room;
			}
		}
		if (desc_room > (uint64_t)(end - desc)) {
			return;
		}
		p = desc + desc_room;
	}
}

/* The GNU property note of sections, when no PT_GNU_PROPERTY segment points at it. */
static void note_sections(Elf *e, const struct view *v, struct kw_elf_info *info)
{
	Elf_Scn *scn = NULL;
	size_t shnum = 0;

	if (elf_getshdrnum(e, &shnum) != 0 || shnum == 0) {
		return;
	}
	while (!info->has_x86_isa_needed && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE) {
			continue;
		}
		read_gnu_property(v, sh.sh_offset, sh.sh_size, v->raw.is64 ? 8 : 4, info);
	}
}

static int parse(const struct view *v0, struct kw_elf_info **out, struct kw_error *err)
{
	struct view v = *v0;
	struct kw_elf_info *info = NULL;
	struct dyn d;
	struct vermap *map = NULL;
	size_t n_map = 0, mcap = 0, phnum = 0, i, ncap = 0, lcap = 0;
	uint64_t dyn_off = 0, dyn_size = 0, prop_off = 0, prop_size = 0;
	bool have_dyn = false, have_prop = false;
	struct kw_elf_ehdr eh;
	GElf_Ehdr geh;
	Elf *e = NULL;
	int rc = KW_EFORMAT;

	memset(&d, 0, sizeof(d));
	*out = NULL;
	switch (kw_elf_raw_init(&v.raw, v0->raw.b, v0->raw.len)) {
	case KW_ELF_IDENT_OK:
		break;
	case KW_ELF_IDENT_BAD_CLASS:
		rc = kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF class %u", v.name, v0->raw.b[EI_CLASS]);
		goto out;
	case KW_ELF_IDENT_BAD_DATA:
		rc = kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF byte order %u", v.name, v0->raw.b[EI_DATA]);
		goto out;
	default:
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", v.name);
		goto out;
	}
	/*
	 * libelf still decides what it can open (it refuses an EI_VERSION other
	 * than EV_CURRENT, for one) and counts PN_XNUM program headers and ARM
	 * sections; the fields come from the decoder. libelf never writes
	 * through an ELF_C_READ descriptor.
	 */
	e = elf_memory((char *)(uintptr_t)v.raw.b, v.raw.len);
	if (!e || !gelf_getehdr(e, &geh) || !kw_elf_get_ehdr(&v.raw, &eh)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': truncated ELF header", v.name);
		goto out;
	}
	info = kw_calloc(1, sizeof(*info));
	if (!info) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	info->elfclass = v.raw.b[EI_CLASS];
	info->data = v.raw.b[EI_DATA];
	info->osabi = v.raw.b[EI_OSABI];
	info->machine = eh.machine;
	info->type = eh.type;
	info->e_flags = eh.flags;
	if (eh.phnum == 0) {
		if (eh.type == ET_DYN || eh.type == ET_EXEC) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': no program headers: the loader cannot load it", v.name);
			goto out;
		}
		goto done;
	}
	if (eh.phentsize != kw_elf_phent_size(&v.raw)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': program header size %u is wrong", v.name, eh.phentsize);
		goto out;
	}
	/*
	 * The declared count, not elf_getphdrnum's: libelf quietly shrinks a
	 * table that runs past the end to nothing, which would read a truncated
	 * object as one without dependencies.
	 */
	phnum = eh.phnum;
	if (phnum == PN_XNUM && (elf_getphdrnum(e, &phnum) != 0 || phnum == PN_XNUM || phnum == 0)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': e_phnum is PN_XNUM but section 0 holds no count", v.name);
		goto out;
	}
	if (!kw_elf_table_in_file(&v.raw, eh.phoff, phnum, eh.phentsize)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': truncated program header table", v.name);
		goto out;
	}
	for (i = 0; i < phnum; i++) {
		struct kw_elf_phdr ph;

		if (!kw_elf_get_phdr(&v.raw, eh.phoff + i * eh.phentsize, &ph)) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': unreadable program header %zu", v.name, i);
			goto out;
		}
		switch (ph.type) {
		case PT_LOAD:
			/* The loader would map past the end and fault on first touch. */
			if (!kw_elf_in_file(&v.raw, ph.offset, ph.filesz)) {
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
			if (ph.memsz > (v.raw.is64 ? UINT64_MAX : UINT32_MAX) - ph.vaddr ||
			    ph.filesz > (v.raw.is64 ? UINT64_MAX : UINT32_MAX) - ph.vaddr) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': PT_LOAD %zu wraps around the address space",
						  v.name, i);
				goto out;
			}
			if (kw_grow(&v.loads, &lcap, v.n_loads + 1, sizeof(*v.loads))) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
			v.loads[v.n_loads++] = ph;
			break;
		case PT_DYNAMIC:
			have_dyn = true;
			dyn_off = ph.offset;
			dyn_size = ph.filesz;
			break;
		case PT_INTERP:
			if (!kw_elf_in_file(&v.raw, ph.offset, ph.filesz) || ph.filesz == 0 ||
			    !memchr(v.raw.b + ph.offset, 0, ph.filesz)) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': interpreter path lies outside the file", v.name);
				goto out;
			}
			if (v.verdict_only) {
				break;
			}
			free(info->interp);
			info->interp = kw_strdup((const char *)v.raw.b + ph.offset);
			if (!info->interp) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
			break;
		case PT_TLS:
			info->has_tls = true;
			break;
		case PT_GNU_PROPERTY:
			have_prop = true;
			prop_off = ph.offset;
			prop_size = ph.filesz;
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
		if (!v.verdict_only && push_str(&info->needed, &info->n_needed, &ncap, s)) {
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
	if (v.verdict_only) {
		/* What follows reads notes and attributes, which never fail a file. */
		goto keep;
	}
	info->arm_cpu_arch = info->machine == EM_ARM ? arm_cpu_arch(e, &v) : -1;
	if (info->machine == EM_X86_64 || info->machine == EM_386) {
		if (have_prop) {
			read_gnu_property(&v, prop_off, prop_size, v.raw.is64 ? 8 : 4, info);
		} else {
			note_sections(e, &v, info);
		}
	}
keep:
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
	v.raw.b = buf;
	v.raw.len = len;
	v.name = name ? name : "(memory)";
	return parse(&v, out, err);
}

int kw_elf_check_memory(const void *buf, size_t len, const char *name, uint64_t *n_syms, struct kw_error *err)
{
	struct kw_elf_info *info = NULL;
	uint64_t counted = 0;
	struct view v;
	int rc;

	memset(&v, 0, sizeof(v));
	v.raw.b = buf;
	v.raw.len = len;
	v.name = name ? name : "(memory)";
	v.verdict_only = true;
	v.counted = &counted;
	rc = parse(&v, &info, err);
	if (rc == 0) {
		*n_syms = counted;
		kw_elf_info_free(info);
	}
	return rc;
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
