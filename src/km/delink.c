/* SPDX-License-Identifier: MIT */
/*
 * Delinking: an x86-64 shared object becomes one relocatable object that a
 * static link can take. The loaded image (every PT_LOAD at its address) is
 * one section, so the code's PC-relative references stay valid; every
 * dynamic relocation becomes a static one against that section or against
 * a named symbol; TLS moves to a section of the executable's static TLS;
 * IFUNC slots, .eh_frame registration and the KM registration are done by a
 * constructor emitted as machine code, so no assembler is needed.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/elf-decode.h"
#include "kwheel/elf.h"
#include "kwheel/km.h"

#include "internal.h"

#ifndef R_X86_64_TLSDESC
#define R_X86_64_TLSDESC 36
#endif
#ifndef R_X86_64_IRELATIVE
#define R_X86_64_IRELATIVE 37
#endif
#ifndef R_X86_64_PLT32
#define R_X86_64_PLT32 4
#endif
#ifndef DT_RELR
#define DT_RELR 36
#define DT_RELRSZ 35
#endif
#ifndef STT_GNU_IFUNC
#define STT_GNU_IFUNC 10
#endif

/* A DTPMOD64 slot's content once converted: any value; kw_tls_get_addr ignores it. */
#define TLS_MODULE_MARK 0x4b4d544cull
/* An image larger than this is not a shared object anyone ships. */
#define MAX_IMAGE (1ull << 30)
/*
 * The image is the segments' span, zeros included, and goes whole into the
 * object: a linker leaves at most its maximum page size (2 MiB) between
 * segments and starts a shared object at 0, so a larger hole is a forged
 * address, not a layout (a 200-byte file asked for a 1 GiB object).
 */
#define MAX_HOLE (1ull << 24)
/* TLS blocks are aligned to a cache line or a page in practice. */
#define MAX_TLS_ALIGN (1ull << 16)

struct load {
	uint64_t vaddr, memsz, off, filesz, align;
	uint32_t flags;
};

struct rel {
	uint64_t off;   /* in its section */
	uint32_t type;  /* R_X86_64_* */
	uint32_t sym;   /* index in the output symbol table (patched once locals are counted) */
	int64_t add;
};

struct relvec {
	struct rel *v;
	size_t n, cap;
};

struct bytes {
	unsigned char *v;
	size_t n, cap;
};

/*
 * Output symbols: locals first in the final table, so globals are collected
 * apart. A local's name is its own (made here); a global's is borrowed from
 * the parse or the caller, which outlive the conversion: a C++ library has
 * 100k globals, and copying each name was a fifth of the allocations.
 */
struct osym {
	const char *name;
	unsigned char info, other;
	uint16_t shndx;     /* output section index */
	uint64_t value, size;
};

struct symvec {
	struct osym *v;
	size_t n, cap;
};

struct ifunc {
	uint64_t slot;      /* image offset of the pointer to fill */
	uint64_t resolver;  /* image offset of the resolver */
};

/* Output section indexes (0 = absent). */
enum {
	S_NULL, S_IMG, S_RELA_IMG, S_TDATA, S_RELA_TDATA, S_TEXT, S_RELA_TEXT, S_DATA, S_RELA_DATA, S_STR, S_BSS,
	S_INIT, S_RELA_INIT, S_FINI, S_RELA_FINI, S_PLTREF, S_RELA_PLTREF, S_NOTE, S_SYMTAB, S_STRTAB, S_SHSTRTAB,
	S_COUNT
};

struct dl {
	const unsigned char *buf;
	size_t len;
	struct kw_elf_raw raw;  /* buf, as the decoder reads it */
	struct kw_elf_raw iraw; /* the loaded image img, read the same way */
	const char *name;       /* for messages */
	const char *id;         /* wheel-relative path */
	enum kw_km_mode mode;
	bool wx;                /* restore segment permissions from the constructor */
	const struct kw_strv *runtime; /* sorted names the static link's runtime defines, or NULL */
	struct kw_strv made_local;     /* lib mode: exports the runtime's definitions replace */
	/* Indexes of res->exports, res->undefined and made_local: a C++ library has 100k names. */
	struct kw_strmap exports_idx, undefined_idx, made_local_idx;
	const struct kw_elf_info *info;
	char tag[13];           /* 12 hex digits naming this object's symbols */

	struct load *loads;
	size_t n_loads;
	uint64_t img_size, img_align;
	bool has_tls;
	uint64_t tls_vaddr, tls_filesz, tls_memsz, tls_align;
	bool has_eh;
	uint64_t eh_frame;      /* image offset of .eh_frame */
	bool has_alias;         /* a second registration under the SONAME */
	uint64_t alias_off;     /* its offset in .data.rel.ro.kw */

	/* dynamic tags */
	uint64_t rela, relasz, jmprel, pltrelsz, pltrel, relr, relrsz;
	uint64_t init, fini, init_array, init_arraysz, fini_array, fini_arraysz;
	bool has_init, has_fini;

	unsigned char *img;
	struct relvec r_img, r_tdata, r_text, r_data, r_init, r_fini, r_pltref;
	struct bytes text, data, str, init_arr, fini_arr, pltref;
	struct symvec locals, globals;
	struct ifunc *ifuncs;
	size_t n_ifuncs, ifunc_cap;
	uint64_t *dtpoff;       /* sorted offsets of DTPOFF64 relocations */
	size_t n_dtpoff;
	uint32_t *gsym_of;      /* dynsym index -> output symbol ref (globals: 0x80000000|k), 0 = none yet */
	uint32_t sec_sym[S_COUNT];
	uint32_t tls_sym;
	struct kw_km_converted *res;
	struct kw_error *err;
};

#define GREF 0x80000000u

static void wr64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

static int nomem(struct dl *d)
{
	return kw_error_set(d->err, KW_ENOMEM, "out of memory");
}

static int put(struct bytes *b, const void *p, size_t n)
{
	if (kw_grow(&b->v, &b->cap, b->n + n, 1)) {
		return -1;
	}
	memcpy(b->v + b->n, p, n);
	b->n += n;
	return 0;
}

static int put64(struct bytes *b, uint64_t v)
{
	unsigned char x[8];

	wr64(x, v);
	return put(b, x, 8);
}

static int add_rel(struct relvec *rv, uint64_t off, uint32_t type, uint32_t sym, int64_t add)
{
	if (kw_grow(&rv->v, &rv->cap, rv->n + 1, sizeof(*rv->v))) {
		return -1;
	}
	rv->v[rv->n++] = (struct rel){ off, type, sym, add };
	return 0;
}

/* A new local symbol; returns its reference (its index among locals + 1). */
static uint32_t add_local(struct dl *d, char *name, unsigned char type, uint16_t shndx, uint64_t value,
			  uint64_t size)
{
	if (!name || kw_grow(&d->locals.v, &d->locals.cap, d->locals.n + 1, sizeof(*d->locals.v))) {
		free(name);
		return 0;
	}
	d->locals.v[d->locals.n++] = (struct osym){ name, (unsigned char)ELF64_ST_INFO(STB_LOCAL, type), 0, shndx,
						    value, size };
	return (uint32_t)d->locals.n;
}

static uint32_t add_global(struct dl *d, const char *name, unsigned char bind, unsigned char type, uint16_t shndx,
			   uint64_t value, uint64_t size)
{
	if (kw_grow(&d->globals.v, &d->globals.cap, d->globals.n + 1, sizeof(*d->globals.v))) {
		return 0;
	}
	d->globals.v[d->globals.n++] = (struct osym){ name, (unsigned char)ELF64_ST_INFO(bind, type), 0, shndx, value,
						      size };
	return GREF | (uint32_t)(d->globals.n - 1);
}

static const struct kw_elf_sym *dsym(const struct dl *d, uint32_t idx)
{
	return idx >= 1 && idx - 1 < d->info->n_syms ? &d->info->syms[idx - 1] : NULL;
}

/* The symbol a reference to an undefined dynamic symbol becomes, created once. */
static uint32_t undef_ref(struct dl *d, uint32_t idx)
{
	const struct kw_elf_sym *s = dsym(d, idx);
	const char *name;
	unsigned char type;

	if (d->gsym_of[idx]) {
		return d->gsym_of[idx];
	}
	/* The general-dynamic helper is ours: it knows every TLS offset statically. */
	name = strcmp(s->name, "__tls_get_addr") == 0 ? "kw_tls_get_addr" : s->name;
	type = s->type == STT_TLS ? STT_TLS : s->type == STT_OBJECT ? STT_OBJECT : STT_NOTYPE;
	d->gsym_of[idx] = add_global(d, name, s->bind == STB_WEAK ? STB_WEAK : STB_GLOBAL, type, SHN_UNDEF, 0, 0);
	if (d->gsym_of[idx] && kw_strv_push_indexed(&d->res->undefined, &d->undefined_idx, name)) {
		return 0;
	}
	return d->gsym_of[idx];
}

/* A runtime symbol the object needs (km_dl_register, kw_tlsdesc_static, ...). */
static uint32_t runtime_ref(struct dl *d, const char *name, bool weak)
{
	size_t i;

	for (i = 0; i < d->globals.n; i++) {
		if (d->globals.v[i].shndx == SHN_UNDEF && strcmp(d->globals.v[i].name, name) == 0) {
			return GREF | (uint32_t)i;
		}
	}
	return add_global(d, name, weak ? STB_WEAK : STB_GLOBAL, STT_NOTYPE, SHN_UNDEF, 0, 0);
}

/* --- reading the shared object --- */

static bool vrange(const struct dl *d, uint64_t vaddr, uint64_t size)
{
	return size <= d->img_size && vaddr <= d->img_size - size;
}

static int read_layout(struct dl *d)
{
	struct kw_elf_ehdr eh;
	uint64_t i, dyn_vaddr = 0, dyn_size = 0, eh_hdr = 0;
	bool has_dyn = false, has_eh_hdr = false;
	size_t cap = 0;
	struct kw_elf_dyn e;

	if (kw_elf_raw_init(&d->raw, d->buf, d->len) != KW_ELF_IDENT_OK || !d->raw.is64 || d->raw.msb ||
	    !kw_elf_get_ehdr(&d->raw, &eh) || eh.machine != EM_X86_64) {
		return kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': not an x86-64 ELF object", d->name);
	}
	if (eh.type != ET_DYN) {
		return kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': not a shared object", d->name);
	}
	if (eh.phentsize != kw_elf_phent_size(&d->raw) ||
	    !kw_elf_table_in_file(&d->raw, eh.phoff, eh.phnum, eh.phentsize)) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': truncated program header table", d->name);
	}
	for (i = 0; i < eh.phnum; i++) {
		struct kw_elf_phdr ph;

		(void)kw_elf_get_phdr(&d->raw, eh.phoff + i * eh.phentsize, &ph);
		if (ph.type == PT_LOAD) {
			struct load l = { ph.vaddr, ph.memsz, ph.offset, ph.filesz, ph.align, ph.flags };

			if (l.filesz > l.memsz || !kw_elf_in_file(&d->raw, l.off, l.filesz) || l.memsz > MAX_IMAGE ||
			    l.vaddr > MAX_IMAGE - l.memsz) {
				return kw_error_set(d->err, KW_EFORMAT, "'%s': loadable segment %llu lies outside the file",
						    d->name, (unsigned long long)i);
			}
			/* Ascending and apart, as the ELF specification orders them; W^X relies on it. */
			uint64_t prev_end = d->n_loads ? d->loads[d->n_loads - 1].vaddr + d->loads[d->n_loads - 1].memsz : 0;

			if (l.vaddr < prev_end || l.vaddr - prev_end > MAX_HOLE) {
				return kw_error_set(d->err, KW_EFORMAT,
						    "'%s': loadable segment %llu %s", d->name, (unsigned long long)i,
						    l.vaddr < prev_end ? "overlaps or precedes the one before it"
								       : "leaves a hole no linker would");
			}
			if (kw_grow(&d->loads, &cap, d->n_loads + 1, sizeof(*d->loads))) {
				return nomem(d);
			}
			d->loads[d->n_loads++] = l;
			if (l.vaddr + l.memsz > d->img_size) {
				d->img_size = l.vaddr + l.memsz;
			}
			if (l.align > d->img_align && l.align <= (1u << 21)) {
				d->img_align = l.align;
			}
		} else if (ph.type == PT_DYNAMIC) {
			has_dyn = true;
			dyn_vaddr = ph.vaddr;
			dyn_size = ph.filesz;
		} else if (ph.type == PT_TLS) {
			d->has_tls = true;
			d->tls_vaddr = ph.vaddr;
			d->tls_filesz = ph.filesz;
			d->tls_memsz = ph.memsz;
			d->tls_align = ph.align;
		} else if (ph.type == PT_GNU_EH_FRAME) {
			has_eh_hdr = true;
			eh_hdr = ph.vaddr;
		}
	}
	if (!d->n_loads || !has_dyn) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': no loadable segment or no dynamic segment", d->name);
	}
	if (d->img_align < 4096) {
		d->img_align = 4096;
	}
	/*
	 * Only what the file does not fill is zeroed (the holes between the
	 * segments, their .bss, the tail): clearing the whole image before
	 * copying over it was 2% of a closure's conversion (perf).
	 */
	d->img = kw_malloc(d->img_size ? d->img_size : 1);
	if (!d->img) {
		return nomem(d);
	}
	uint64_t filled = 0;

	for (i = 0; i < d->n_loads; i++) {
		/* Ascending and apart (checked above), so each segment starts at or after the last one's end. */
		memset(d->img + filled, 0, d->loads[i].vaddr - filled);
		memcpy(d->img + d->loads[i].vaddr, d->buf + d->loads[i].off, d->loads[i].filesz);
		filled = d->loads[i].vaddr + d->loads[i].filesz;
	}
	memset(d->img + filled, 0, d->img_size - filled);
	/* From here on everything is read from the image, by address. */
	kw_elf_raw_like(&d->iraw, &d->raw, d->img, d->img_size);
	if (d->has_tls && (d->tls_filesz > d->tls_memsz || !vrange(d, d->tls_vaddr, d->tls_filesz) ||
			   d->tls_memsz > MAX_IMAGE || (d->tls_align & (d->tls_align - 1)))) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': TLS segment lies outside the image", d->name);
	}
	/* The section keeps the segment's alignment: a forged one would pad the object to gigabytes. */
	if (d->has_tls && d->tls_align > MAX_TLS_ALIGN) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': TLS alignment %llu is beyond any real object", d->name,
				    (unsigned long long)d->tls_align);
	}
	if (!vrange(d, dyn_vaddr, dyn_size)) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': dynamic segment lies outside the image", d->name);
	}
	/* Entries up to the first DT_NULL, or as many as the segment holds whole. */
	for (i = 0; kw_elf_dyn_at(&d->iraw, dyn_vaddr, dyn_size, i, &e) && e.tag != DT_NULL; i++) {
		uint64_t val = e.val;

		switch (e.tag) {
		case DT_RELA: d->rela = val; break;
		case DT_RELASZ: d->relasz = val; break;
		case DT_JMPREL: d->jmprel = val; break;
		case DT_PLTRELSZ: d->pltrelsz = val; break;
		case DT_PLTREL: d->pltrel = val; break;
		case DT_RELR: d->relr = val; break;
		case DT_RELRSZ: d->relrsz = val; break;
		case DT_INIT: d->init = val; d->has_init = true; break;
		case DT_FINI: d->fini = val; d->has_fini = true; break;
		case DT_INIT_ARRAY: d->init_array = val; break;
		case DT_INIT_ARRAYSZ: d->init_arraysz = val; break;
		case DT_FINI_ARRAY: d->fini_array = val; break;
		case DT_FINI_ARRAYSZ: d->fini_arraysz = val; break;
		case DT_REL:
			return kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': DT_REL relocations on x86-64", d->name);
		default: break;
		}
	}
	if (!vrange(d, d->rela, d->relasz) || !vrange(d, d->jmprel, d->pltrelsz) || !vrange(d, d->relr, d->relrsz) ||
	    !vrange(d, d->init_array, d->init_arraysz) || !vrange(d, d->fini_array, d->fini_arraysz) ||
	    (d->pltrelsz && d->pltrel != DT_RELA)) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': a relocation or initialiser table lies outside the image",
				    d->name);
	}
	/* .eh_frame through .eh_frame_hdr: section headers may be stripped. */
	if (has_eh_hdr && vrange(d, eh_hdr, 8) && d->img[eh_hdr] == 1) {
		unsigned enc = d->img[eh_hdr + 1];
		const unsigned char *p = d->img + eh_hdr + 4;
		int32_t rel = (int32_t)kw_elf_rd32(&d->iraw, p);

		if (enc == 0x1b) { /* pcrel | sdata4 */
			d->eh_frame = eh_hdr + 4 + (uint64_t)(int64_t)rel;
			d->has_eh = vrange(d, d->eh_frame, 4);
		} else if (enc == 0x03 || enc == 0x0b) { /* udata4 / sdata4, absolute */
			d->eh_frame = enc == 0x03 ? (uint32_t)rel : (uint64_t)(int64_t)rel;
			d->has_eh = vrange(d, d->eh_frame, 4);
		}
		if (!d->has_eh && kw_strv_push(&d->res->warnings, "unreadable .eh_frame_hdr: exceptions through this "
								 "object will not unwind")) {
			return nomem(d);
		}
	}
	return 0;
}

/* --- relocations --- */

/* Is the image offset inside the TLS initialisation image? Such slots move with it. */
static bool in_tls(const struct dl *d, uint64_t off)
{
	return d->has_tls && off >= d->tls_vaddr && off - d->tls_vaddr < d->tls_filesz;
}

static int place(struct dl *d, uint64_t off, uint32_t type, uint32_t sym, int64_t add)
{
	int rc;

	if (in_tls(d, off)) {
		rc = add_rel(&d->r_tdata, off - d->tls_vaddr, type, sym, add);
	} else {
		rc = add_rel(&d->r_img, off, type, sym, add);
	}
	return rc ? nomem(d) : 0;
}

static int add_ifunc(struct dl *d, uint64_t slot, uint64_t resolver)
{
	if (kw_grow(&d->ifuncs, &d->ifunc_cap, d->n_ifuncs + 1, sizeof(*d->ifuncs))) {
		return nomem(d);
	}
	d->ifuncs[d->n_ifuncs++] = (struct ifunc){ slot, resolver };
	return 0;
}

/* The TPOFF64 target of a TLS reference: this object's block, or an imported TLS symbol. */
static int tls_target(struct dl *d, uint32_t symi, int64_t add, uint32_t *sym, int64_t *out_add)
{
	const struct kw_elf_sym *s = symi ? dsym(d, symi) : NULL;

	if (!symi || (s && s->defined)) {
		if (!d->has_tls) {
			return kw_error_set(d->err, KW_EFORMAT, "'%s': a TLS relocation in an object without PT_TLS", d->name);
		}
		*sym = d->tls_sym;
		*out_add = (s ? (int64_t)s->value : 0) + add;
		return 0;
	}
	if (!s) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': relocation names symbol %u, out of range", d->name, symi);
	}
	*sym = undef_ref(d, symi);
	*out_add = add;
	return *sym ? 0 : nomem(d);
}

static bool has_dtpoff(const struct dl *d, uint64_t off)
{
	size_t lo = 0, hi = d->n_dtpoff;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->dtpoff[mid] == off) {
			return true;
		}
		if (d->dtpoff[mid] < off) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return false;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Where the DTPOFF64 halves of general-dynamic pairs are: their DTPMOD64 leaves them alone. */
static int find_dtpoff(struct dl *d)
{
	const uint64_t tabs[2][2] = { { d->rela, d->relasz }, { d->jmprel, d->pltrelsz } };
	size_t cap = 0, t;
	uint64_t i;

	for (t = 0; t < 2; t++) {
		for (i = 0; i + 24 <= tabs[t][1]; i += 24) {
			const unsigned char *p = d->img + tabs[t][0] + i;

			if ((kw_elf_rd64(&d->iraw, p + 8) & 0xffffffff) != R_X86_64_DTPOFF64) {
				continue;
			}
			if (kw_grow(&d->dtpoff, &cap, d->n_dtpoff + 1, sizeof(*d->dtpoff))) {
				return nomem(d);
			}
			d->dtpoff[d->n_dtpoff++] = kw_elf_rd64(&d->iraw, p);
		}
	}
	if (d->n_dtpoff) {
		qsort(d->dtpoff, d->n_dtpoff, sizeof(*d->dtpoff), cmp_u64);
	}
	return 0;
}

static int convert_one(struct dl *d, uint64_t off, uint32_t type, uint32_t symi, int64_t add)
{
	const struct kw_elf_sym *s = symi ? dsym(d, symi) : NULL;
	uint32_t sym;
	int64_t a;
	int rc;

	if (symi && !s) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': relocation names symbol %u, out of range", d->name, symi);
	}
	if (d->img_size < 8 || off > d->img_size - 8) {
		return kw_error_set(d->err, KW_EFORMAT, "'%s': relocation at 0x%llx lies outside the image", d->name,
				    (unsigned long long)off);
	}
	d->res->n_relocs++;
	switch (type) {
	case R_X86_64_NONE:
		return 0;
	case R_X86_64_RELATIVE:
		wr64(d->img + off, 0);
		return place(d, off, R_X86_64_64, d->sec_sym[S_IMG], add);
	case R_X86_64_IRELATIVE:
		wr64(d->img + off, 0);
		return add_ifunc(d, off, (uint64_t)add);
	case R_X86_64_64:
	case R_X86_64_GLOB_DAT:
	case R_X86_64_JUMP_SLOT:
		if (type != R_X86_64_64) {
			add = 0;
		}
		wr64(d->img + off, 0);
		if (!s) {
			wr64(d->img + off, (uint64_t)add); /* absolute */
			return 0;
		}
		if (s->defined && s->shndx == SHN_ABS) {
			wr64(d->img + off, s->value + (uint64_t)add);
			return 0;
		}
		if (s->defined && s->type == STT_GNU_IFUNC) {
			return add_ifunc(d, off, s->value);
		}
		if (s->defined && s->type != STT_TLS && (d->mode == KW_KM_MODULE || s->bind == STB_LOCAL)) {
			/* -Bsymbolic: a module's references to itself stay inside it. */
			return place(d, off, R_X86_64_64, d->sec_sym[S_IMG], (int64_t)s->value + add);
		}
		if (s->defined && !d->gsym_of[symi]) {
			/* Defined but not exported under its own name (a non-default version): bind here. */
			return place(d, off, R_X86_64_64, d->sec_sym[S_IMG], (int64_t)s->value + add);
		}
		sym = s->defined ? d->gsym_of[symi] : undef_ref(d, symi);
		return sym ? place(d, off, R_X86_64_64, sym, add) : nomem(d);
	case R_X86_64_TPOFF64:
	case R_X86_64_DTPOFF64:
		wr64(d->img + off, 0);
		rc = tls_target(d, symi, add, &sym, &a);
		return rc ? rc : place(d, off, R_X86_64_TPOFF64, sym, a);
	case R_X86_64_DTPMOD64:
		if (off > d->img_size - 16) {
			return kw_error_set(d->err, KW_EFORMAT, "'%s': TLS module slot outside the image", d->name);
		}
		/*
		 * The pair's second word becomes a static TP offset. With a symbol
		 * (general dynamic) a DTPOFF64 on it does that; without (local
		 * dynamic) the word holds the offset in this object's block.
		 */
		wr64(d->img + off, TLS_MODULE_MARK);
		if (!has_dtpoff(d, off + 8)) {
			uint64_t inner = kw_elf_rd64(&d->iraw, d->img + off + 8);

			wr64(d->img + off + 8, 0);
			rc = tls_target(d, symi, (int64_t)inner, &sym, &a);
			return rc ? rc : place(d, off + 8, R_X86_64_TPOFF64, sym, a);
		}
		return 0;
	case R_X86_64_TLSDESC:
		if (off > d->img_size - 16) {
			return kw_error_set(d->err, KW_EFORMAT, "'%s': TLS descriptor outside the image", d->name);
		}
		wr64(d->img + off, 0);
		wr64(d->img + off + 8, 0);
		sym = runtime_ref(d, "kw_tlsdesc_static", false);
		if (!sym || place(d, off, R_X86_64_64, sym, 0)) {
			return nomem(d);
		}
		rc = tls_target(d, symi, add, &sym, &a);
		return rc ? rc : place(d, off + 8, R_X86_64_TPOFF64, sym, a);
	default: {
		const char *n = kw_elf_reloc_str(EM_X86_64, type);

		return n ? kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': relocation %s at 0x%llx cannot be converted",
					d->name, n, (unsigned long long)off)
			 : kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': relocation type %u at 0x%llx cannot be converted",
					d->name, type, (unsigned long long)off);
	}
	}
}

static int convert_rela(struct dl *d, uint64_t at, uint64_t size)
{
	uint64_t i;
	int rc;

	/*
	 * A DTPMOD64 without symbol must see its pair's original second word,
	 * and a DTPOFF64 on that word would be converted twice: local-dynamic
	 * pairs never carry one, general-dynamic ones always do.
	 */
	for (i = 0; i + 24 <= size; i += 24) {
		const unsigned char *p = d->img + at + i;
		uint64_t info = kw_elf_rd64(&d->iraw, p + 8);

		rc = convert_one(d, kw_elf_rd64(&d->iraw, p), (uint32_t)(info & 0xffffffff), (uint32_t)(info >> 32),
				 (int64_t)kw_elf_rd64(&d->iraw, p + 16));
		if (rc) {
			return rc;
		}
	}
	return 0;
}

static int convert_relr(struct dl *d)
{
	uint64_t i, where = 0;
	int rc;

	for (i = 0; i + 8 <= d->relrsz; i += 8) {
		uint64_t e = kw_elf_rd64(&d->iraw, d->img + d->relr + i);

		if (!(e & 1)) {
			where = e;
			/* An address entry is the file's word: it can point anywhere (fuzzing: past the image). */
			if (d->img_size < 8 || where > d->img_size - 8) {
				return kw_error_set(d->err, KW_EFORMAT, "'%s': DT_RELR entry outside the image", d->name);
			}
			if ((rc = convert_one(d, where, R_X86_64_RELATIVE, 0,
					      (int64_t)kw_elf_rd64(&d->iraw, d->img + where)))) {
				return rc;
			}
			where += 8;
			continue;
		}
		for (unsigned b = 1; b < 64; b++) {
			uint64_t at = where + 8ull * (b - 1);

			if (!((e >> b) & 1)) {
				continue;
			}
			if (at < where || d->img_size < 8 || at > d->img_size - 8) {
				return kw_error_set(d->err, KW_EFORMAT, "'%s': DT_RELR entry outside the image", d->name);
			}
			if ((rc = convert_one(d, at, R_X86_64_RELATIVE, 0,
					      (int64_t)kw_elf_rd64(&d->iraw, d->img + at)))) {
				return rc;
			}
		}
		where += 63 * 8;
	}
	return 0;
}

/* --- symbols --- */

/* Names the static link defines itself: a weak copy from us would shadow them. */
static bool reserved_name(const char *n)
{
	static const char *const names[] = { "_init", "_fini", "_end", "_edata", "__bss_start", "_DYNAMIC",
					     "_GLOBAL_OFFSET_TABLE_", "__dso_handle" };
	size_t i;

	/* Each starts with '_' and none with "_Z": a C++ library's names are nearly all "_Z...". */
	if (n[0] != '_' || n[1] == 'Z') {
		return false;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(n, names[i]) == 0) {
			return true;
		}
	}
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Must the static program use the runtime's definition of name rather than a converted library's? */
static bool runtime_owned(const struct dl *d, const char *name)
{
	static const char *const unwinder[] = { "_Unwind_", "__register_frame", "__deregister_frame",
						"__frame_state_for" };
	size_t i;

	/* The prefixes start with '_' and none with "_Z" (see reserved_name). */
	for (i = 0; name[0] == '_' && name[1] != 'Z' && i < sizeof(unwinder) / sizeof(unwinder[0]); i++) {
		if (strncmp(name, unwinder[i], strlen(unwinder[i])) == 0) {
			return true;
		}
	}
	return d->runtime && d->runtime->n &&
	       bsearch(&name, d->runtime->v, d->runtime->n, sizeof(*d->runtime->v), cmp_str) != NULL;
}

static int define_symbols(struct dl *d)
{
	size_t i;

	for (i = 0; i < d->info->n_syms; i++) {
		const struct kw_elf_sym *s = &d->info->syms[i];
		bool tls = s->type == STT_TLS;
		uint16_t sec = tls ? S_TDATA : S_IMG;
		char *name;

		if (!s->defined || s->bind == STB_LOCAL || s->shndx == SHN_ABS || (s->version_hidden && s->version) ||
		    (s->type != STT_FUNC && s->type != STT_OBJECT && s->type != STT_TLS && s->type != STT_GNU_IFUNC &&
		     s->type != STT_NOTYPE)) {
			continue;
		}
		if ((tls && !d->has_tls) || reserved_name(s->name)) {
			continue;
		}
		if (!tls && s->value >= d->img_size) {
			continue;
		}
		if (kw_strv_push_indexed(&d->res->exports, &d->exports_idx, s->name)) {
			return nomem(d);
		}
		if (d->mode == KW_KM_MODULE) {
			/* Names for debuggers and nm only: nothing outside binds to a module. */
			name = kw_asprintf("%s_%s_km", s->name, d->tag);
			if (!add_local(d, name, tls ? STT_TLS : s->type == STT_GNU_IFUNC ? STT_FUNC : s->type, sec,
				       s->value, s->size)) {
				return nomem(d);
			}
			continue;
		}
		/*
		 * The runtime's own: the unwinder (a libunwind's weak _Unwind_*
		 * would keep libgcc's out of the link, and with it the .eh_frame
		 * registration) and the C library's functions (libbsd's
		 * arc4random, closefrom). Made local: the object keeps using its
		 * own, everything else gets the runtime's.
		 */
		if (!tls && runtime_owned(d, s->name)) {
			name = kw_asprintf("%s_%s_km", s->name, d->tag);
			if (!add_local(d, name, s->type == STT_GNU_IFUNC ? STT_FUNC : s->type, sec, s->value, s->size) ||
			    kw_strv_push_indexed(&d->made_local, &d->made_local_idx, s->name)) {
				return nomem(d);
			}
			continue;
		}
		/*
		 * An extension in lib mode (it exports to other modules): its
		 * PyInit_ is found through registration, and another package's
		 * module of the same name must not bind to it.
		 */
		if (strncmp(s->name, "PyInit_", 7) == 0) {
			name = kw_asprintf("%s_%s_km", s->name, d->tag);
			if (!add_local(d, name, STT_FUNC, sec, s->value, s->size)) {
				return nomem(d);
			}
			continue;
		}
		/* Lib mode: weak, so the first definition wins as with the loader. */
		d->gsym_of[i + 1] = add_global(d, s->name, STB_WEAK, s->type == STT_NOTYPE ? STT_FUNC : s->type, sec,
					       s->value, s->size);
		if (!d->gsym_of[i + 1]) {
			return nomem(d);
		}
	}
	return 0;
}

/*
 * ld refuses an absolute reference to a libc.a IFUNC (memcpy, strlen, ...)
 * from a writable executable section unless the symbol has a PLT entry: a
 * never-executed jump through the PLT for every imported function makes one.
 */
static int plt_stubs(struct dl *d)
{
	size_t i;

	for (i = 0; i < d->globals.n; i++) {
		const struct osym *g = &d->globals.v[i];
		static const unsigned char jmp[5] = { 0xe9, 0, 0, 0, 0 };

		if (g->shndx != SHN_UNDEF || ELF64_ST_BIND(g->info) == STB_WEAK || ELF64_ST_TYPE(g->info) == STT_TLS ||
		    ELF64_ST_TYPE(g->info) == STT_OBJECT || strcmp(g->name, "kw_tls_get_addr") == 0 ||
		    strcmp(g->name, "kw_tlsdesc_static") == 0) {
			continue;
		}
		if (add_rel(&d->r_pltref, d->pltref.n + 1, R_X86_64_PLT32, GREF | (uint32_t)i, -4) ||
		    put(&d->pltref, jmp, sizeof(jmp))) {
			return nomem(d);
		}
	}
	return 0;
}

/* --- registration, constructor, initialisers --- */

static uint64_t add_string(struct dl *d, const char *s)
{
	uint64_t at = d->str.n;

	return put(&d->str, s, strlen(s) + 1) ? UINT64_MAX : at;
}

/* A pointer-sized slot in sec holding the address of target+add. */
static int ptr_slot(struct dl *d, struct bytes *b, struct relvec *rv, uint32_t target, int64_t add)
{
	if (add_rel(rv, b->n, R_X86_64_64, target, add) || put64(b, 0)) {
		return nomem(d);
	}
	return 0;
}

static int registration(struct dl *d, uint64_t *reg_off)
{
	const char *base = strrchr(d->id, '/') ? strrchr(d->id, '/') + 1 : d->id;
	uint64_t name_s = add_string(d, base), id_s = add_string(d, d->id);
	size_t i, n = 0;

	if (name_s == UINT64_MAX || id_s == UINT64_MAX) {
		return nomem(d);
	}
	/* km_dl_lib_reg_t { char *name; char *id; km_dl_symbol_t *symtable; } */
	*reg_off = d->data.n;
	if (ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_STR], (int64_t)name_s) ||
	    ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_STR], (int64_t)id_s) ||
	    ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_DATA], (int64_t)(*reg_off + 24))) {
		return nomem(d);
	}
	/* km_dl_symbol_t { const char *name; void **addr; } ... { NULL, NULL } */
	for (i = 0; i < d->info->n_syms; i++) {
		const struct kw_elf_sym *s = &d->info->syms[i];
		uint64_t ns;

		if (!s->defined || s->bind == STB_LOCAL || s->shndx == SHN_ABS || (s->version_hidden && s->version) ||
		    (s->type != STT_FUNC && s->type != STT_OBJECT) || s->value >= d->img_size) {
			continue;
		}
		ns = add_string(d, s->name);
		if (ns == UINT64_MAX || ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_STR], (int64_t)ns) ||
		    ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_IMG], (int64_t)s->value)) {
			return nomem(d);
		}
		n++;
	}
	if (put64(&d->data, 0) || put64(&d->data, 0)) {
		return nomem(d);
	}
	d->res->n_registered = n;
	/*
	 * The loader finds a library by its SONAME too (dlopen("libOpenCL.so.1")
	 * of libOpenCL.so.1.0.0): a second registration under that name, with
	 * the same symbol table.
	 */
	if (d->info->soname && *d->info->soname && !strchr(d->info->soname, '/') && strcmp(d->info->soname, base) != 0) {
		uint64_t so_s = add_string(d, d->info->soname);

		d->alias_off = d->data.n;
		if (so_s == UINT64_MAX || ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_STR], (int64_t)so_s) ||
		    ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_STR], (int64_t)so_s) ||
		    ptr_slot(d, &d->data, &d->r_data, d->sec_sym[S_DATA], (int64_t)(*reg_off + 24))) {
			return nomem(d);
		}
		d->has_alias = true;
	}
	return 0;
}

/* x86-64 machine code with a PC-relative 32-bit field at its end, relocated to target+add. */
static int code_pcrel(struct dl *d, const unsigned char *op, size_t n, uint32_t type, uint32_t target, int64_t add)
{
	static const unsigned char zero[4] = { 0 };

	if (put(&d->text, op, n) || add_rel(&d->r_text, d->text.n, type, target, add - 4) ||
	    put(&d->text, zero, 4)) {
		return nomem(d);
	}
	return 0;
}

static int constructor(struct dl *d, uint64_t reg_off)
{
	static const unsigned char push_rbx[] = { 0x53 }, pop_rbx_ret[] = { 0x5b, 0xc3 };
	static const unsigned char lea_rax[] = { 0x48, 0x8d, 0x05 }, call_rax[] = { 0xff, 0xd0 };
	static const unsigned char mov_to_rip[] = { 0x48, 0x89, 0x05 }, lea_rdi[] = { 0x48, 0x8d, 0x3d };
	static const unsigned char lea_rsi[] = { 0x48, 0x8d, 0x35 }, call_rel[] = { 0xe8 };
	static const unsigned char movabs_rax[] = { 0x48, 0xb8 }, test_jz[] = { 0x48, 0x85, 0xc0, 0x74, 0x10 };
	size_t i;

	if (put(&d->text, push_rbx, 1)) {
		return nomem(d);
	}
	/* 1. IFUNC slots: the resolvers live in the image, already relocated by the link. */
	for (i = 0; i < d->n_ifuncs; i++) {
		if (code_pcrel(d, lea_rax, 3, R_X86_64_PC32, d->sec_sym[S_IMG], (int64_t)d->ifuncs[i].resolver) ||
		    put(&d->text, call_rax, 2)) {
			return nomem(d);
		}
		if (in_tls(d, d->ifuncs[i].slot)) {
			return kw_error_set(d->err, KW_EUNSUPPORTED, "'%s': IFUNC slot inside the TLS image", d->name);
		}
		if (code_pcrel(d, mov_to_rip, 3, R_X86_64_PC32, d->sec_sym[S_IMG], (int64_t)d->ifuncs[i].slot)) {
			return nomem(d);
		}
	}
	/* 2. .eh_frame, through a weak reference: C-only programs need not link the unwinder. */
	if (d->has_eh) {
		uint32_t rfi = runtime_ref(d, "__register_frame_info", true);
		static const unsigned char zero8[8] = { 0 };

		if (!rfi || put(&d->text, movabs_rax, 2) || add_rel(&d->r_text, d->text.n, R_X86_64_64, rfi, 0) ||
		    put(&d->text, zero8, 8) || put(&d->text, test_jz, sizeof(test_jz)) ||
		    code_pcrel(d, lea_rdi, 3, R_X86_64_PC32, d->sec_sym[S_IMG], (int64_t)d->eh_frame) ||
		    code_pcrel(d, lea_rsi, 3, R_X86_64_PC32, d->sec_sym[S_BSS], 0) || put(&d->text, call_rax, 2)) {
			return nomem(d);
		}
	}
	/*
	 * 3. W^X: the image is one writable, executable section; once the link
	 * and the IFUNC slots above have written it, its segments get the
	 * loader's permissions back. Only whole pages inside the image: the
	 * section starts page-aligned, its last page may be shared.
	 */
	for (i = 0; d->wx && i < d->n_loads; i++) {
		static const unsigned char mov_esi[] = { 0xbe }, mov_edx[] = { 0xba };
		const struct load *l = &d->loads[i];
		uint64_t start = l->vaddr & ~4095ull, end = (l->vaddr + l->memsz + 4095) & ~4095ull;
		uint32_t prot = (l->flags & PF_R ? 1 : 0) | (l->flags & PF_X ? 4 : 0), len;
		unsigned char imm[4];
		uint32_t mp;

		/* The segment's last page is its own up to the next segment's first; the image's last is not. */
		if (i + 1 < d->n_loads ? end > (d->loads[i + 1].vaddr & ~4095ull) : end > d->img_size) {
			end = (l->vaddr + l->memsz) & ~4095ull;
		}
		if (l->flags & PF_W || end <= start || end - start > UINT32_MAX || (l->vaddr & 4095) > 0 ||
		    (i > 0 && (d->loads[i - 1].vaddr + d->loads[i - 1].memsz) > start)) {
			continue;
		}
		len = (uint32_t)(end - start);
		mp = runtime_ref(d, "mprotect", false);
		if (!mp || code_pcrel(d, lea_rdi, 3, R_X86_64_PC32, d->sec_sym[S_IMG], (int64_t)start)) {
			return nomem(d);
		}
		imm[0] = (unsigned char)len;
		imm[1] = (unsigned char)(len >> 8);
		imm[2] = (unsigned char)(len >> 16);
		imm[3] = (unsigned char)(len >> 24);
		if (put(&d->text, mov_esi, 1) || put(&d->text, imm, 4)) {
			return nomem(d);
		}
		imm[0] = (unsigned char)prot;
		imm[1] = imm[2] = imm[3] = 0;
		if (put(&d->text, mov_edx, 1) || put(&d->text, imm, 4) ||
		    code_pcrel(d, call_rel, 1, R_X86_64_PLT32, mp, 0)) {
			return nomem(d);
		}
		d->res->n_protected++;
	}
	/* 4. registration with the emulated dlopen. */
	{
		uint32_t reg = runtime_ref(d, "km_dl_register", false);

		if (!reg || code_pcrel(d, lea_rdi, 3, R_X86_64_PC32, d->sec_sym[S_DATA], (int64_t)reg_off) ||
		    code_pcrel(d, call_rel, 1, R_X86_64_PLT32, reg, 0) ||
		    (d->has_alias && (code_pcrel(d, lea_rdi, 3, R_X86_64_PC32, d->sec_sym[S_DATA], (int64_t)d->alias_off) ||
				      code_pcrel(d, call_rel, 1, R_X86_64_PLT32, reg, 0))) ||
		    put(&d->text, pop_rbx_ret, 2)) {
			return nomem(d);
		}
	}
	return 0;
}

/* The converted target of a pointer slot in the image (an initialiser), or -1. */
static int64_t slot_target(const struct dl *d, uint64_t off)
{
	size_t i;

	for (i = 0; i < d->r_img.n; i++) {
		if (d->r_img.v[i].off == off && d->r_img.v[i].type == R_X86_64_64 &&
		    d->r_img.v[i].sym == d->sec_sym[S_IMG]) {
			return d->r_img.v[i].add;
		}
	}
	return -1;
}

static int initialisers(struct dl *d)
{
	uint64_t i;
	int64_t t;

	/* .init_array: our constructor, DT_INIT, then DT_INIT_ARRAY, as ld.so runs them. */
	if (ptr_slot(d, &d->init_arr, &d->r_init, d->sec_sym[S_TEXT], 0)) {
		return nomem(d);
	}
	if (d->has_init && ptr_slot(d, &d->init_arr, &d->r_init, d->sec_sym[S_IMG], (int64_t)d->init)) {
		return nomem(d);
	}
	for (i = 0; i + 8 <= d->init_arraysz; i += 8) {
		if ((t = slot_target(d, d->init_array + i)) >= 0 &&
		    ptr_slot(d, &d->init_arr, &d->r_init, d->sec_sym[S_IMG], t)) {
			return nomem(d);
		}
	}
	/* .fini_array runs backwards: DT_FINI first here runs last, after DT_FINI_ARRAY. */
	if (d->has_fini && ptr_slot(d, &d->fini_arr, &d->r_fini, d->sec_sym[S_IMG], (int64_t)d->fini)) {
		return nomem(d);
	}
	for (i = 0; i + 8 <= d->fini_arraysz; i += 8) {
		if ((t = slot_target(d, d->fini_array + i)) >= 0 &&
		    ptr_slot(d, &d->fini_arr, &d->r_fini, d->sec_sym[S_IMG], t)) {
			return nomem(d);
		}
	}
	return 0;
}

/* --- writing the relocatable object --- */

struct secdef {
	const char *name;
	uint32_t type;
	uint64_t flags, align, entsize;
	void *buf;
	uint64_t size;
	uint32_t link, info;
};

static unsigned char *rela_bytes(struct dl *d, const struct relvec *rv, size_t n_locals)
{
	unsigned char *out = kw_calloc(rv->n ? rv->n : 1, 24);
	size_t i;

	if (!out) {
		return NULL;
	}
	for (i = 0; i < rv->n; i++) {
		uint32_t s = rv->v[i].sym;
		/* Output order: null, locals, globals. */
		uint64_t idx = (s & GREF) ? 1 + n_locals + (s & ~GREF) : s;

		wr64(out + 24 * i, rv->v[i].off);
		wr64(out + 24 * i + 8, ELF64_R_INFO(idx, rv->v[i].type));
		wr64(out + 24 * i + 16, (uint64_t)rv->v[i].add);
	}
	(void)d;
	return out;
}

static int write_object(struct dl *d, const char *out_path)
{
	struct bytes shstr = { 0 }, strtab = { 0 }, symtab = { 0 }, def = { 0 };
	struct secdef sd[S_COUNT];
	unsigned char *relas[S_COUNT] = { 0 };
	unsigned char *tdata = NULL;
	Elf *e = NULL;
	int fd = -1, rc = KW_ENOMEM;
	size_t i, n_locals = d->locals.n;
	char *nm = NULL;
	char rela_img_name[40];
	static const unsigned char nul = 0;

	memset(sd, 0, sizeof(sd));
#define SEC(i, n, t, f, a, b, s) (sd[i] = (struct secdef){ n, t, f, a, 0, b, s, 0, 0 })
	nm = kw_asprintf(".kwimg.%s", d->tag);
	if (!nm) {
		goto out;
	}
	if (d->img) {
		SEC(S_IMG, nm, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR, d->img_align, d->img, d->img_size);
	}
	if (d->has_tls) {
		tdata = kw_calloc(1, d->tls_memsz ? d->tls_memsz : 1);
		if (!tdata) {
			goto out;
		}
		memcpy(tdata, d->img + d->tls_vaddr, d->tls_filesz);
		SEC(S_TDATA, ".tdata.kw", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE | SHF_TLS,
		    d->tls_align ? d->tls_align : 1, tdata, d->tls_memsz);
	}
	SEC(S_TEXT, ".text.kw", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16, d->text.v, d->text.n);
	SEC(S_DATA, ".data.rel.ro.kw", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 8, d->data.v, d->data.n);
	SEC(S_STR, ".rodata.kw.str", SHT_PROGBITS, SHF_ALLOC, 1, d->str.v, d->str.n);
	if (d->has_eh) {
		/* libgcc's struct object: a few pointers, 64 bytes is ample. */
		SEC(S_BSS, ".bss.kw", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 16, NULL, 64);
	}
	SEC(S_INIT, ".init_array", SHT_INIT_ARRAY, SHF_ALLOC | SHF_WRITE, 8, d->init_arr.v, d->init_arr.n);
	if (d->fini_arr.n) {
		SEC(S_FINI, ".fini_array", SHT_FINI_ARRAY, SHF_ALLOC | SHF_WRITE, 8, d->fini_arr.v, d->fini_arr.n);
	}
	if (d->pltref.n) {
		SEC(S_PLTREF, ".text.kw.pltref", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 1, d->pltref.v, d->pltref.n);
	}
	SEC(S_NOTE, ".note.GNU-stack", SHT_PROGBITS, 0, 1, NULL, 0);
	{
		static const struct { int sec, rela; const char *name; size_t rv; } rs[] = {
			{ S_IMG, S_RELA_IMG, NULL, offsetof(struct dl, r_img) },
			{ S_TDATA, S_RELA_TDATA, ".rela.tdata.kw", offsetof(struct dl, r_tdata) },
			{ S_TEXT, S_RELA_TEXT, ".rela.text.kw", offsetof(struct dl, r_text) },
			{ S_DATA, S_RELA_DATA, ".rela.data.rel.ro.kw", offsetof(struct dl, r_data) },
			{ S_INIT, S_RELA_INIT, ".rela.init_array", offsetof(struct dl, r_init) },
			{ S_FINI, S_RELA_FINI, ".rela.fini_array", offsetof(struct dl, r_fini) },
			{ S_PLTREF, S_RELA_PLTREF, ".rela.text.kw.pltref", offsetof(struct dl, r_pltref) },
		};
		snprintf(rela_img_name, sizeof(rela_img_name), ".rela.kwimg.%s", d->tag);
		for (i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
			const struct relvec *rv = (const struct relvec *)((const char *)d + rs[i].rv);

			if (!sd[rs[i].sec].name || rv->n == 0) {
				continue;
			}
			if (!(relas[i] = rela_bytes(d, rv, n_locals))) {
				goto out;
			}
			sd[rs[i].rela] = (struct secdef){ rs[i].name ? rs[i].name : rela_img_name, SHT_RELA, SHF_INFO_LINK,
							  8, 24, relas[i], rv->n * 24, S_SYMTAB, (uint32_t)rs[i].sec };
		}
	}
	/*
	 * Symbol table: null, locals (section symbols first), globals. The
	 * defined globals' names are also gathered for the archive's index
	 * (reading them back from each object was a tenth of a closure's run).
	 */
	{
		unsigned char z[24] = { 0 };
		size_t n_def = 0;

		if (put(&strtab, &nul, 1) || put(&symtab, z, 24)) {
			goto out;
		}
		for (i = 0; i < d->locals.n + d->globals.n; i++) {
			const struct osym *s = i < d->locals.n ? &d->locals.v[i] : &d->globals.v[i - d->locals.n];
			unsigned char b[24] = { 0 };
			uint64_t name = 0;

			if (s->name && *s->name) {
				size_t l = strlen(s->name) + 1;

				name = strtab.n;
				if (put(&strtab, s->name, l) ||
				    (i >= d->locals.n && s->shndx != SHN_UNDEF && put(&def, s->name, l))) {
					goto out;
				}
				n_def += i >= d->locals.n && s->shndx != SHN_UNDEF;
			}
			b[0] = (unsigned char)name;
			b[1] = (unsigned char)(name >> 8);
			b[2] = (unsigned char)(name >> 16);
			b[3] = (unsigned char)(name >> 24);
			b[4] = s->info;
			b[5] = s->other;
			b[6] = (unsigned char)s->shndx;
			b[7] = (unsigned char)(s->shndx >> 8);
			wr64(b + 8, s->value);
			wr64(b + 16, s->size);
			if (put(&symtab, b, 24)) {
				goto out;
			}
		}
		/* Not NULL when there are none: NULL is "not known" to the archive's writer. */
		if (!def.v && !(def.v = kw_malloc(1))) {
			goto out;
		}
		free(d->res->defined);
		d->res->defined = (char *)def.v;
		d->res->defined_len = def.n;
		d->res->n_defined = n_def;
		def = (struct bytes){ 0 };
	}
	sd[S_SYMTAB] = (struct secdef){ ".symtab", SHT_SYMTAB, 0, 8, 24, symtab.v, symtab.n, S_STRTAB,
					(uint32_t)(1 + n_locals) };
	sd[S_STRTAB] = (struct secdef){ ".strtab", SHT_STRTAB, 0, 1, 0, strtab.v, strtab.n, 0, 0 };
	sd[S_SHSTRTAB] = (struct secdef){ ".shstrtab", SHT_STRTAB, 0, 1, 0, NULL, 0, 0, 0 };

	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = kw_error_set(d->err, KW_EIO, "cannot create '%s': %s", out_path, strerror(errno));
		goto out;
	}
	rc = KW_EINTERNAL;
	e = elf_begin(fd, ELF_C_WRITE, NULL);
	if (!e || !gelf_newehdr(e, ELFCLASS64)) {
		goto elferr;
	}
	{
		GElf_Ehdr eh;
		size_t shidx[S_COUNT] = { 0 }, k = 0;

		/* Sections in enum order, absent ones skipped: renumber. */
		for (i = 1; i < S_COUNT; i++) {
			if (sd[i].name) {
				shidx[i] = ++k;
			}
		}
		if (put(&shstr, &nul, 1)) {
			rc = KW_ENOMEM;
			goto out;
		}
		for (i = 1; i < S_COUNT; i++) {
			if (sd[i].name) {
				sd[i].link = sd[i].link ? (uint32_t)shidx[sd[i].link] : 0;
				if (sd[i].type == SHT_RELA) {
					sd[i].info = (uint32_t)shidx[sd[i].info];
				}
			}
		}
		/* Symbol section indexes were written in enum terms: map them. */
		for (i = 1; i < symtab.n / 24; i++) {
			unsigned char *b = symtab.v + 24 * i;
			unsigned sh = (unsigned)(b[6] | b[7] << 8);

			if (sh != SHN_UNDEF && sh < S_COUNT) {
				b[6] = (unsigned char)shidx[sh];
				b[7] = (unsigned char)(shidx[sh] >> 8);
			}
		}
		for (i = 1; i < S_COUNT; i++) {
			Elf_Scn *scn;
			Elf_Data *data;
			GElf_Shdr sh;

			if (!sd[i].name) {
				continue;
			}
			memset(&sh, 0, sizeof(sh));
			sh.sh_name = (Elf64_Word)shstr.n;
			if (put(&shstr, sd[i].name, strlen(sd[i].name) + 1)) {
				rc = KW_ENOMEM;
				goto out;
			}
			if (!(scn = elf_newscn(e)) || !(data = elf_newdata(scn))) {
				goto elferr;
			}
			if (i == S_SHSTRTAB) {
				sd[i].buf = shstr.v;
				sd[i].size = shstr.n;
			}
			data->d_buf = sd[i].buf;
			data->d_size = sd[i].size;
			data->d_type = ELF_T_BYTE;
			data->d_align = sd[i].align ? sd[i].align : 1;
			sh.sh_type = sd[i].type;
			sh.sh_flags = sd[i].flags;
			sh.sh_addralign = sd[i].align;
			sh.sh_entsize = sd[i].entsize;
			sh.sh_link = sd[i].link;
			sh.sh_info = sd[i].info;
			sh.sh_size = sd[i].size;
			if (!gelf_update_shdr(scn, &sh)) {
				goto elferr;
			}
		}
		if (!gelf_getehdr(e, &eh)) {
			goto elferr;
		}
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
		eh.e_type = ET_REL;
		eh.e_machine = EM_X86_64;
		eh.e_version = EV_CURRENT;
		eh.e_shstrndx = (Elf64_Half)shidx[S_SHSTRTAB];
		if (!gelf_update_ehdr(e, &eh) || elf_update(e, ELF_C_WRITE) < 0) {
			goto elferr;
		}
	}
	rc = 0;
	goto out;
elferr:
	rc = kw_error_set(d->err, KW_EINTERNAL, "'%s': writing the object: %s", out_path, elf_errmsg(-1));
out:
	if (e) {
		elf_end(e);
	}
	if (fd >= 0 && close(fd) != 0 && !rc) {
		rc = kw_error_set(d->err, KW_EIO, "'%s': %s", out_path, strerror(errno));
	}
	if (rc == KW_ENOMEM) {
		kw_error_set(d->err, rc, "out of memory");
	}
	for (i = 0; i < S_COUNT; i++) {
		free(relas[i]);
	}
	free(tdata);
	free(nm);
	free(shstr.v);
	free(strtab.v);
	free(symtab.v);
	free(def.v);
	return rc;
#undef SEC
}

void kw_km_converted_release(struct kw_km_converted *c)
{
	if (!c) {
		return;
	}
	kw_strv_release(&c->exports);
	kw_strv_release(&c->undefined);
	kw_strv_release(&c->warnings);
	free(c->defined);
	memset(c, 0, sizeof(*c));
}

/*
 * The tag only tells objects apart in one link: a fast 64-bit hash of the
 * bytes will do. FNV-1a's step is taken a word at a time in four lanes,
 * each over every fourth word, so four multiplications are in flight at
 * once instead of one chain (one lane was a tenth of a closure's
 * conversion), and the lanes are folded together at the end. Two different
 * libraries with one tag in a link would define the same names: the link
 * fails, it does not go wrong.
 * Out of line so the fuzzing build can leave this loop out of coverage (fuzz/coverage-ignore.txt).
 */
__attribute__((noinline)) static uint64_t fnv1a64(const unsigned char *buf, size_t len)
{
	uint64_t h[4] = { KW_FNV_BASIS, KW_FNV_BASIS ^ 1, KW_FNV_BASIS ^ 2, KW_FNV_BASIS ^ 3 }, w, x;
	size_t k, j;

	for (k = 0; k + 32 <= len; k += 32) {
		for (j = 0; j < 4; j++) {
			memcpy(&w, buf + k + 8 * j, 8);
			h[j] = (h[j] ^ w) * 0x100000001b3ull;
			h[j] ^= h[j] >> 32;
		}
	}
	for (; k + 8 <= len; k += 8) {
		memcpy(&w, buf + k, 8);
		h[0] = (h[0] ^ w) * 0x100000001b3ull;
		h[0] ^= h[0] >> 32;
	}
	for (; k < len; k++) {
		h[0] = (h[0] ^ buf[k]) * 0x100000001b3ull;
	}
	x = h[0];
	for (j = 1; j < 4; j++) {
		x = (x ^ h[j]) * 0x100000001b3ull;
		x ^= x >> 32;
	}
	return x ^ (x >> 29) ^ len;
}

void km_symbol_tag(const unsigned char *buf, size_t len, char tag[13])
{
	snprintf(tag, 13, "%012llx", (unsigned long long)(fnv1a64(buf, len) & 0xffffffffffffull));
}

int kw_km_delink(const unsigned char *buf, size_t len, const char *name, const char *id, enum kw_km_mode mode,
		 unsigned flags, const char *out_path, struct kw_km_converted *res, struct kw_error *err)
{
	return km_delink(buf, len, NULL, name, id, mode, flags, NULL, out_path, res, err);
}

int kw_km_delink_with(const unsigned char *buf, size_t len, const char *name, const char *id, enum kw_km_mode mode,
		      unsigned flags, const struct kw_strv *runtime, const char *out_path, struct kw_km_converted *res,
		      struct kw_error *err)
{
	return km_delink(buf, len, NULL, name, id, mode, flags, runtime, out_path, res, err);
}

int km_delink(const unsigned char *buf, size_t len, const char *tag, const char *name, const char *id,
	      enum kw_km_mode mode, unsigned flags, const struct kw_strv *runtime, const char *out_path,
	      struct kw_km_converted *res, struct kw_error *err)
{
	struct kw_elf_info *info = NULL;
	struct dl d;
	uint64_t reg_off = 0;
	size_t i;
	int rc;

	memset(&d, 0, sizeof(d));
	memset(res, 0, sizeof(*res));
	d.buf = buf;
	d.len = len;
	d.name = name;
	d.id = id;
	d.mode = mode;
	d.wx = !(flags & KW_KM_NO_WX);
	d.runtime = runtime;
	d.res = res;
	d.err = err;
	rc = kw_elf_parse_memory(buf, len, name, &info, err);
	if (rc) {
		goto out;
	}
	d.info = info;
	if (info->textrel) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': DT_TEXTREL: text relocations cannot be converted", name);
		goto out;
	}
	if (tag) {
		snprintf(d.tag, sizeof(d.tag), "%s", tag);
	} else {
		km_symbol_tag(buf, len, d.tag);
	}
	memcpy(res->tag, d.tag, sizeof(res->tag));
	if ((rc = read_layout(&d))) {
		goto out;
	}
	rc = KW_ENOMEM;
	d.gsym_of = kw_calloc(info->n_syms + 2, sizeof(*d.gsym_of));
	if (!d.gsym_of) {
		nomem(&d);
		goto out;
	}
	/* Local anchors: the image's and the other sections' section symbols, the TLS block. */
	{
		static const int secs[] = { S_IMG, S_TEXT, S_DATA, S_STR, S_BSS, S_TDATA };

		for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
			if ((secs[i] == S_BSS && !d.has_eh) || (secs[i] == S_TDATA && !d.has_tls)) {
				continue;
			}
			d.sec_sym[secs[i]] = add_local(&d, kw_strdup(""), STT_SECTION, (uint16_t)secs[i], 0, 0);
			if (!d.sec_sym[secs[i]]) {
				nomem(&d);
				goto out;
			}
		}
		if (d.has_tls && !(d.tls_sym = add_local(&d, kw_asprintf("__kw_tls_%s", d.tag), STT_TLS, S_TDATA, 0,
							 d.tls_memsz))) {
			nomem(&d);
			goto out;
		}
		if (!add_local(&d, kw_asprintf("__kw_img_%s", d.tag), STT_OBJECT, S_IMG, 0, d.img_size)) {
			nomem(&d);
			goto out;
		}
	}
	if ((rc = define_symbols(&d)) || (rc = find_dtpoff(&d)) || (rc = convert_rela(&d, d.rela, d.relasz)) ||
	    (rc = convert_rela(&d, d.jmprel, d.pltrelsz)) || (rc = convert_relr(&d)) ||
	    (rc = registration(&d, &reg_off)) || (rc = constructor(&d, reg_off)) || (rc = initialisers(&d)) ||
	    (rc = plt_stubs(&d)) || (rc = write_object(&d, out_path))) {
		goto out;
	}
	if (d.made_local.n) {
		struct kw_buf b = { 0 };

		kw_buf_appendf(&b, "defines %zu name%s the static runtime provides (", d.made_local.n,
			       d.made_local.n == 1 ? "" : "s");
		for (i = 0; i < d.made_local.n && i < 3; i++) {
			kw_buf_appendf(&b, "%s%s", i ? ", " : "", d.made_local.v[i]);
		}
		if (d.made_local.n > 3) {
			kw_buf_appendf(&b, " and %zu more", d.made_local.n - 3);
		}
		kw_buf_append(&b, "): made local, the runtime's definitions are the program's");
		if (b.failed || !b.s || kw_strv_push_own(&res->warnings, kw_buf_take(&b))) {
			kw_buf_release(&b);
			rc = nomem(&d);
			goto out;
		}
	}
	res->image_size = d.img_size;
	res->has_tls = d.has_tls;
	res->n_ifuncs = d.n_ifuncs;
	res->eh_frame = d.has_eh;
	rc = 0;
out:
	if (rc) {
		unlink(out_path);
		kw_km_converted_release(res);
	}
	for (i = 0; i < d.locals.n; i++) {
		free((char *)d.locals.v[i].name);
	}
	free(d.locals.v);
	free(d.globals.v);
	kw_strv_release(&d.made_local);
	kw_strmap_release(&d.exports_idx);
	kw_strmap_release(&d.undefined_idx);
	kw_strmap_release(&d.made_local_idx);
	free(d.loads);
	free(d.img);
	free(d.gsym_of);
	free(d.dtpoff);
	free(d.ifuncs);
	free(d.r_img.v);
	free(d.r_tdata.v);
	free(d.r_text.v);
	free(d.r_data.v);
	free(d.r_init.v);
	free(d.r_fini.v);
	free(d.r_pltref.v);
	free(d.text.v);
	free(d.data.v);
	free(d.str.v);
	free(d.init_arr.v);
	free(d.fini_arr.v);
	free(d.pltref.v);
	kw_elf_info_free(info);
	return rc;
}

/*
 * The registration alone, for objects a build produced (Kontain's method):
 * the table maps each name to the renamed symbol that now defines it.
 */
int kw_km_registration_object(const char *id, const char *tag, const char *const *names,
			      const char *const *targets, size_t n, const char *out_path, struct kw_error *err)
{
	struct kw_km_converted res;
	struct kw_elf_info info;
	struct dl d;
	const char *base = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
	uint64_t reg_off = 0, ns;
	size_t i;
	int rc = KW_ENOMEM;

	memset(&d, 0, sizeof(d));
	memset(&res, 0, sizeof(res));
	memset(&info, 0, sizeof(info));
	d.name = out_path;
	d.id = id;
	d.mode = KW_KM_MODULE;
	d.info = &info;
	d.res = &res;
	d.err = err;
	snprintf(d.tag, sizeof(d.tag), "%s", tag);
	{
		static const int secs[] = { S_TEXT, S_DATA, S_STR };

		for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
			if (!(d.sec_sym[secs[i]] = add_local(&d, kw_strdup(""), STT_SECTION, (uint16_t)secs[i], 0, 0))) {
				goto nomem;
			}
		}
	}
	reg_off = d.data.n;
	if ((ns = add_string(&d, base)) == UINT64_MAX || ptr_slot(&d, &d.data, &d.r_data, d.sec_sym[S_STR], (int64_t)ns) ||
	    (ns = add_string(&d, id)) == UINT64_MAX || ptr_slot(&d, &d.data, &d.r_data, d.sec_sym[S_STR], (int64_t)ns) ||
	    ptr_slot(&d, &d.data, &d.r_data, d.sec_sym[S_DATA], 24)) {
		goto nomem;
	}
	for (i = 0; i < n; i++) {
		uint32_t t = add_global(&d, targets[i], STB_GLOBAL, STT_NOTYPE, SHN_UNDEF, 0, 0);

		if (!t || (ns = add_string(&d, names[i])) == UINT64_MAX ||
		    ptr_slot(&d, &d.data, &d.r_data, d.sec_sym[S_STR], (int64_t)ns) ||
		    ptr_slot(&d, &d.data, &d.r_data, t, 0)) {
			goto nomem;
		}
	}
	if (put64(&d.data, 0) || put64(&d.data, 0)) {
		goto nomem;
	}
	rc = constructor(&d, reg_off);
	if (!rc) {
		rc = initialisers(&d);
	}
	if (!rc) {
		rc = write_object(&d, out_path);
	}
	goto out;
nomem:
	rc = nomem(&d);
out:
	for (i = 0; i < d.locals.n; i++) {
		free((char *)d.locals.v[i].name);
	}
	free(d.locals.v);
	free(d.globals.v);
	free(d.r_text.v);
	free(d.r_data.v);
	free(d.r_init.v);
	free(d.text.v);
	free(d.data.v);
	free(d.str.v);
	free(d.init_arr.v);
	kw_km_converted_release(&res);
	if (rc) {
		unlink(out_path);
	}
	return rc;
}
