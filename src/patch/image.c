/* SPDX-License-Identifier: MIT */
/*
 * The editor works on raw bytes rather than through libelf's update path:
 * libelf rewrites the whole file from its own model, which holds it twice in
 * memory and re-lays-out sections we must not move. Every header is decoded
 * by elf/'s decoder (kwheel/elf-decode.h), the one the reader uses, checked
 * against the image here, and written back field by field.
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "kwheel/elf.h"

#define MAX_DYN_ENTRIES (1u << 20)
#ifndef DT_RELR
#define DT_RELRSZ 35
#define DT_RELR 36
#endif

size_t img_word(const struct img *im)
{
	return kw_elf_word(&im->raw);
}

size_t img_phentsize(const struct img *im)
{
	return kw_elf_phent_size(&im->raw);
}

size_t img_shentsize(const struct img *im)
{
	return kw_elf_shent_size(&im->raw);
}

size_t img_dynentsize(const struct img *im)
{
	return kw_elf_dynent_size(&im->raw);
}

uint64_t img_rd(const struct img *im, const unsigned char *p, size_t width)
{
	return kw_elf_rd(&im->raw, p, width);
}

void img_mark(const struct img *im, const unsigned char *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)im->b;
	size_t off, i;

	/* Compared as integers: the tail and the plan's buffers are other objects. */
	if (n == 0 || !im->written || a < b || a - b >= im->len) {
		return;
	}
	off = a - b;
	n = n > im->len - off ? im->len - off : n;
	for (i = off / KW_PATCH_BLOCK; i <= (off + n - 1) / KW_PATCH_BLOCK; i++) {
		im->written[i / 8] |= (unsigned char)(1u << (i % 8));
	}
}

void img_wr(const struct img *im, unsigned char *p, size_t width, uint64_t v)
{
	size_t i;

	img_mark(im, p, width);
	for (i = 0; i < width; i++) {
		p[im->msb ? width - 1 - i : i] = (unsigned char)(v >> (8 * i));
	}
}

static bool in_file(const struct img *im, uint64_t off, uint64_t size)
{
	return kw_elf_in_file(&im->raw, off, size);
}

static bool ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static bool hits_elf_or_program_headers(const struct img *im, uint64_t off, uint64_t len)
{
	uint64_t eh = kw_elf_ehdr_size(&im->raw);

	return ranges_meet(off, len, 0, eh) || ranges_meet(off, len, im->phoff, (uint64_t)im->phnum * img_phentsize(im));
}

/*
 * The section header table's bytes in the file, whether or not the editor
 * uses the sections: with extended numbering (e_shnum 0) the editor leaves
 * them alone, but other readers take the count from section 0's sh_size
 * (fuzzing: growing .dynamic in place rewrote it).
 */
static uint64_t shdr_bytes(const struct img *im)
{
	uint64_t es = img_shentsize(im), n = im->shnum;
	struct kw_elf_shdr s0;

	if (im->shoff == 0 || !kw_elf_get_shdr(&im->raw, im->shoff, &s0)) {
		return 0;
	}
	if (n == 0) {
		n = s0.size;
	}
	n = n ? n : 1;
	return n > (im->len - im->shoff) / es ? im->len - im->shoff : n * es;
}

/*
 * No table the editor writes may lie on the headers: in a real file none
 * does, and in a forged one a "symbol value" or string written there would
 * rewrite e_phoff or a program header behind the editor's back.
 */
bool img_hits_headers(const struct img *im, uint64_t off, uint64_t len)
{
	return hits_elf_or_program_headers(im, off, len) || ranges_meet(off, len, im->shoff, shdr_bytes(im));
}

void img_put_ph(const struct img *im, unsigned char *p, const struct kw_elf_phdr *ph)
{
	if (im->is64) {
		img_wr(im, p, 4, ph->type);
		img_wr(im, p + 4, 4, ph->flags);
		img_wr(im, p + 8, 8, ph->offset);
		img_wr(im, p + 16, 8, ph->vaddr);
		img_wr(im, p + 24, 8, ph->paddr);
		img_wr(im, p + 32, 8, ph->filesz);
		img_wr(im, p + 40, 8, ph->memsz);
		img_wr(im, p + 48, 8, ph->align);
	} else {
		img_wr(im, p, 4, ph->type);
		img_wr(im, p + 4, 4, ph->offset);
		img_wr(im, p + 8, 4, ph->vaddr);
		img_wr(im, p + 12, 4, ph->paddr);
		img_wr(im, p + 16, 4, ph->filesz);
		img_wr(im, p + 20, 4, ph->memsz);
		img_wr(im, p + 24, 4, ph->flags);
		img_wr(im, p + 28, 4, ph->align);
	}
}

void img_put_sh(const struct img *im, unsigned char *p, const struct kw_elf_shdr *sh)
{
	size_t w = img_word(im);

	img_wr(im, p, 4, sh->name);
	img_wr(im, p + 4, 4, sh->type);
	img_wr(im, p + 8, w, sh->flags);
	img_wr(im, p + 8 + w, w, sh->addr);
	img_wr(im, p + 8 + 2 * w, w, sh->offset);
	img_wr(im, p + 8 + 3 * w, w, sh->size);
	img_wr(im, p + 8 + 4 * w, 4, sh->link);
	img_wr(im, p + 12 + 4 * w, 4, sh->info);
	img_wr(im, p + 16 + 4 * w, w, sh->addralign);
	img_wr(im, p + 16 + 5 * w, w, sh->entsize);
}

void img_put_dyn(const struct img *im, unsigned char *p, const struct kw_elf_dyn *d)
{
	size_t w = img_word(im);

	img_wr(im, p, w, (uint64_t)d->tag);
	img_wr(im, p + w, w, d->val);
}

bool img_vaddr_off(const struct img *im, uint64_t vaddr, uint64_t size, uint64_t *off)
{
	return kw_elf_vaddr_range(&im->raw, im->ph, im->phnum, vaddr, size, off);
}

const char *img_str(const struct img *im, uint64_t idx)
{
	return kw_elf_str(&im->raw, im->str_off, im->str_size, idx);
}

bool img_dyn(const struct img *im, int64_t tag, uint64_t *val)
{
	size_t i;
	bool found = false;

	/* A repeated tag: the last entry wins, as in glibc (elf_get_dynamic_info) and the parser. */
	for (i = 0; i < im->ndyn; i++) {
		if (im->dyn[i].tag == tag) {
			*val = im->dyn[i].val;
			found = true;
		}
	}
	return found;
}

void img_release(struct img *im)
{
	free(im->ph);
	free(im->sh);
	free(im->dyn);
	free(im->tab);
	free(im->written);
	memset(im, 0, sizeof(*im));
}

static int load_sections(struct img *im, struct kw_error *err)
{
	size_t es = img_shentsize(im), i;
	struct kw_elf_ehdr eh;

	im->sh_dynstr = im->sh_dynamic = im->sh_verneed = -1;
	/*
	 * e_shnum 0 with an e_shoff means the count is in section 0 (extended
	 * numbering). A table that starts past the end would start inside the
	 * tail we append, and readers would take our new bytes for headers.
	 */
	if (im->shoff != 0 && im->shnum == 0 && !in_file(im, im->shoff, es)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': section header table runs past the end of the file",
				    im->name);
	}
	if (im->shoff == 0 || im->shnum == 0) {
		return 0;
	}
	/* img_load decoded the header already: the image is long enough for it. */
	(void)kw_elf_get_ehdr(&im->raw, &eh);
	if (eh.shentsize != es) {
		return kw_error_set(err, KW_EFORMAT, "'%s': e_shentsize is %llu, expected %zu", im->name,
				    (unsigned long long)eh.shentsize, es);
	}
	if (!kw_elf_table_in_file(&im->raw, im->shoff, im->shnum, es)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': section header table runs past the end of the file",
				    im->name);
	}
	/* Rewriting a section header there would rewrite the ELF or program headers. */
	if (hits_elf_or_program_headers(im, im->shoff, (uint64_t)im->shnum * es)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': section header table lies on the ELF or program headers",
				    im->name);
	}
	im->sh = kw_calloc(im->shnum, sizeof(*im->sh));
	if (!im->sh) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < im->shnum; i++) {
		(void)kw_elf_get_shdr(&im->raw, im->shoff + i * es, &im->sh[i]);
	}
	for (i = 0; i < im->shnum; i++) {
		const struct kw_elf_shdr *s = &im->sh[i];

		if (s->type == SHT_DYNAMIC && im->sh_dynamic < 0) {
			im->sh_dynamic = (long)i;
		} else if (im->has_dyn && s->type == SHT_STRTAB && (s->flags & SHF_ALLOC) && s->addr == im->str_vaddr &&
			   im->sh_dynstr < 0) {
			im->sh_dynstr = (long)i;
		} else if (s->type == SHT_GNU_verneed && im->sh_verneed < 0) {
			im->sh_verneed = (long)i;
		}
	}
	return 0;
}

/* [off, off+len) of the file, clamped to it (len 0: its first byte). */
static int add_extent_at(struct img *im, int64_t tag, uint64_t off, uint64_t len, struct kw_error *err)
{
	struct extent *t;

	if (len == 0 || len > im->len - off) {
		len = len ? im->len - off : 1;
	}
	t = kw_realloc(im->tab, (im->ntab + 1) * sizeof(*t));
	if (!t) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	im->tab = t;
	im->tab[im->ntab].tag = tag;
	im->tab[im->ntab].off = off;
	im->tab[im->ntab].len = len;
	im->ntab++;
	return 0;
}

static int add_extent(struct img *im, int64_t tag, uint64_t vaddr, uint64_t len, struct kw_error *err)
{
	uint64_t off;

	/* Outside every PT_LOAD's file image the loader reads nothing of the file there. */
	if (!img_vaddr_off(im, vaddr, 1, &off)) {
		return 0;
	}
	return add_extent_at(im, tag, off, len, err);
}

/* Bytes of the hash table at vaddr (DT_HASH or DT_GNU_HASH), up to what its header declares. */
static uint64_t hash_extent(const struct img *im, int64_t tag, uint64_t vaddr)
{
	uint64_t off, w = im->is64 && (im->machine == EM_S390 || im->machine == EM_ALPHA) ? 8 : 4;

	if (!img_vaddr_off(im, vaddr, 16, &off)) {
		return 1;
	}
	if (tag == DT_HASH) {
		uint64_t nb = img_rd(im, im->b + off, w), nc = img_rd(im, im->b + off + w, w);

		/* Counts beyond the file are clamped to it by the caller; here they must not wrap. */
		return nb > im->len || nc > im->len ? im->len : (2 + nb + nc) * w;
	} else {
		uint64_t nb = img_rd(im, im->b + off, 4), symoff = img_rd(im, im->b + off + 4, 4);
		uint64_t bloom = img_rd(im, im->b + off + 8, 4);

		return 16 + bloom * img_word(im) + nb * 4 + (im->nsyms > symoff ? (im->nsyms - symoff) * 4 : 0);
	}
}

/*
 * Where the loader's tables lie, so no in-place write lands on one it does
 * not mean to change (fuzzing: a relocation table overlapping .dynamic, a
 * version need record inside .dynsym). Sizes come from the dynamic section
 * and the tables' own headers; the symbol count from the reader, which counts
 * as the loader does. A table of unknown size is its first byte; the version
 * chains are their first record here and are walked where they are written.
 */
static int load_extents(struct img *im, struct kw_error *err)
{
	static const int64_t sized[][2] = {
		{ DT_RELA, DT_RELASZ }, { DT_REL, DT_RELSZ }, { DT_JMPREL, DT_PLTRELSZ }, { DT_RELR, DT_RELRSZ },
		{ DT_INIT_ARRAY, DT_INIT_ARRAYSZ }, { DT_FINI_ARRAY, DT_FINI_ARRAYSZ },
		{ DT_PREINIT_ARRAY, DT_PREINIT_ARRAYSZ }, { DT_STRTAB, DT_STRSZ },
	};
	struct kw_error perr;
	uint64_t v, len, n;
	size_t k;
	int rc = 0;

	/* The reader's checks without its copies: its count is all the editor takes from it. */
	if (kw_elf_check_memory(im->b, im->len, im->name, &n, &perr) == 0) {
		im->nsyms = n ? n + 1 : 0;
		im->nsyms_known = true;
	} else if (perr.code == KW_ENOMEM) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (k = 0; rc == 0 && k < sizeof(sized) / sizeof(sized[0]); k++) {
		if (img_dyn(im, sized[k][0], &v)) {
			rc = add_extent(im, sized[k][0], v, img_dyn(im, sized[k][1], &len) ? len : 1, err);
		}
	}
	if (rc == 0 && img_dyn(im, DT_SYMTAB, &v)) {
		rc = add_extent(im, DT_SYMTAB, v, im->nsyms * kw_elf_syment_size(&im->raw), err);
	}
	if (rc == 0 && img_dyn(im, DT_VERSYM, &v)) {
		rc = add_extent(im, DT_VERSYM, v, im->nsyms * 2, err);
	}
	if (rc == 0 && img_dyn(im, DT_HASH, &v)) {
		rc = add_extent(im, DT_HASH, v, hash_extent(im, DT_HASH, v), err);
	}
	if (rc == 0 && img_dyn(im, DT_GNU_HASH, &v)) {
		rc = add_extent(im, DT_GNU_HASH, v, hash_extent(im, DT_GNU_HASH, v), err);
	}
	if (rc == 0 && img_dyn(im, DT_VERNEED, &v)) {
		rc = add_extent(im, DT_VERNEED, v, 16, err);
	}
	if (rc == 0 && img_dyn(im, DT_VERDEF, &v)) {
		rc = add_extent(im, DT_VERDEF, v, 20, err);
	}
	/* The kernel reads the interpreter's path by file offset (fuzzing: one on e_phoff changed when it moved). */
	for (k = 0; rc == 0 && k < im->phnum; k++) {
		if (im->ph[k].type == PT_INTERP && im->ph[k].offset < im->len) {
			rc = add_extent_at(im, IMG_TAB_INTERP, im->ph[k].offset, im->ph[k].filesz, err);
		}
	}
	return rc;
}

int64_t img_table_hit(const struct img *im, uint64_t off, uint64_t len, int64_t except)
{
	size_t i;

	for (i = 0; i < im->ntab; i++) {
		const struct extent *t = &im->tab[i];

		if (t->tag != except && off < t->off + t->len && t->off < off + len) {
			return t->tag;
		}
	}
	return DT_NULL;
}

/*
 * The DT_NULL slack after the dynamic entries is room to grow in place, but
 * only up to the first table the loader reads that lies inside it: a forged
 * layout can put .hash or .dynstr there, and growing would overwrite it.
 */
static int clamp_dyn_cap(struct img *im, uint64_t dyn_off, struct kw_error *err)
{
	size_t des = img_dynentsize(im), i;

	for (i = 0; i < im->ntab; i++) {
		const struct extent *t = &im->tab[i];

		if (t->off >= dyn_off + im->dyn_cap * des || t->off + t->len <= dyn_off) {
			continue;
		}
		/* On the entries in use, any rewrite of them would rewrite that table too. */
		if (t->off < dyn_off + (im->ndyn + 1) * des) {
			return kw_error_set(err, KW_EFORMAT, "'%s': a table the loader reads overlaps .dynamic",
					    im->name);
		}
		im->dyn_cap = (size_t)((t->off - dyn_off) / des);
	}
	return 0;
}

/* img_each_version_entry's callback and its value, carried through the decoder's walk. */
struct entry_walk {
	int (*fn)(void *ud, uint64_t off, uint64_t size, bool record);
	void *ud;
	int rc;
};

static int each_entry(void *ud, const struct kw_elf_ver *v)
{
	struct entry_walk *w = ud;

	w->rc = w->fn(w->ud, v->off, v->size, v->record);
	/* Any value of fn stops the walk; the decoder stops on a negative one. */
	return w->rc ? -1 : 0;
}

int img_each_version_entry(const struct img *im, uint64_t off, uint64_t num, bool def,
			   int (*fn)(void *ud, uint64_t off, uint64_t size, bool record), void *ud)
{
	struct entry_walk w = { fn, ud, 0 };

	/*
	 * Lenient, within the file: the walk stops where the parser would refuse
	 * the chain (its 4096 records, 65536 entries), and a longer chain is
	 * refused before anyone writes.
	 */
	(void)kw_elf_ver_walk(&im->raw, off, im->len, num, KW_ELF_VER_LENIENT | (def ? KW_ELF_VER_DEF : 0), each_entry,
			      &w);
	return w.rc;
}

static int entry_hits_headers(void *ud, uint64_t off, uint64_t size, bool record)
{
	(void)record;
	return img_hits_headers(ud, off, size);
}

/* Does a record of the version chain at the vaddr of tag (counted by num_tag) lie on the headers? */
static bool version_chain_hits_headers(const struct img *im, int64_t tag, int64_t num_tag, bool def)
{
	uint64_t vaddr, num, off;

	if (!img_dyn(im, tag, &vaddr) || !img_dyn(im, num_tag, &num) || !img_vaddr_off(im, vaddr, 1, &off)) {
		return false;
	}
	return img_each_version_entry(im, off, num, def, entry_hits_headers, (void *)im) != 0;
}

/*
 * Growing rewrites e_phoff and e_phnum, and section headers: a loader table
 * laid over them would change under the editor. No linker lays one there;
 * a forged file that does is refused (fuzzing: a VERDEF chain whose vd_next
 * was e_phoff).
 */
static int check_tables_off_headers(const struct img *im, struct kw_error *err)
{
	size_t k;

	for (k = 0; k < im->ntab; k++) {
		const struct extent *t = &im->tab[k];
		const char *what = t->tag == IMG_TAB_INTERP ? "the interpreter path" : "a table the loader reads";

		if (img_hits_headers(im, t->off, t->len)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s lies on the ELF, program or section headers", im->name,
					    what);
		}
		/* Strings are rewritten in place: another table starting among them would change with them. */
		if (t->tag != DT_STRTAB && t->off >= im->str_off && t->off - im->str_off < im->str_size) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s lies inside .dynstr", im->name, what);
		}
	}
	if (version_chain_hits_headers(im, DT_VERDEF, DT_VERDEFNUM, true) ||
	    version_chain_hits_headers(im, DT_VERNEED, DT_VERNEEDNUM, false)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': a version record lies on the ELF, program or section headers",
				    im->name);
	}
	return 0;
}

/* The first SHT_DYNAMIC section of at least one entry, in the file: its offset, address and size. */
static bool dynamic_section(const struct img *im, uint64_t *off, uint64_t *vaddr, uint64_t *size)
{
	size_t es = img_shentsize(im), i;
	struct kw_elf_shdr s;

	if (im->shoff == 0 || im->shnum == 0 || !kw_elf_table_in_file(&im->raw, im->shoff, im->shnum, es)) {
		return false;
	}
	for (i = 0; i < im->shnum; i++) {
		if (kw_elf_get_shdr(&im->raw, im->shoff + i * es, &s) && s.type == SHT_DYNAMIC &&
		    s.size >= img_dynentsize(im) && in_file(im, s.offset, s.size)) {
			*off = s.offset;
			*vaddr = s.addr;
			*size = s.size;
			return true;
		}
	}
	return false;
}

int img_load(struct img *im, unsigned char *buf, size_t len, const char *name, struct kw_error *err)
{
	struct kw_elf_ehdr eh;
	size_t pes, des, i, n;
	uint64_t dyn_off = 0;
	int rc;

	memset(im, 0, sizeof(*im));
	im->b = buf;
	im->len = len;
	im->name = name;
	im->written = kw_calloc(len / KW_PATCH_BLOCK / 8 + 1, 1);
	if (!im->written) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	im->dyn_ph = -1;
	im->sh_dynstr = im->sh_dynamic = im->sh_verneed = -1;
	switch (kw_elf_raw_init(&im->raw, buf, len)) {
	case KW_ELF_IDENT_OK:
		break;
	case KW_ELF_IDENT_BAD_CLASS:
		return kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF class %u", name, buf[EI_CLASS]);
	case KW_ELF_IDENT_BAD_DATA:
		return kw_error_set(err, KW_EFORMAT, "'%s': unknown ELF data encoding %u", name, buf[EI_DATA]);
	default:
		return kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", name);
	}
	im->is64 = im->raw.is64;
	im->msb = im->raw.msb;
	if (!kw_elf_get_ehdr(&im->raw, &eh)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': truncated ELF header", name);
	}
	im->type = eh.type;
	im->machine = eh.machine;
	im->phoff = eh.phoff;
	im->shoff = eh.shoff;
	im->phnum = eh.phnum;
	im->shnum = eh.shnum;
	im->shstrndx = eh.shstrndx;
	if (im->type != ET_DYN && im->type != ET_EXEC) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': not a shared object or executable (e_type %u)",
				    name, im->type);
	}
	pes = img_phentsize(im);
	if (eh.phentsize != pes) {
		return kw_error_set(err, KW_EFORMAT, "'%s': e_phentsize is %llu, expected %zu", name,
				    (unsigned long long)eh.phentsize, pes);
	}
	/* PN_XNUM (program header count in section 0) is not something a loader-visible .so uses. */
	if (im->phnum == 0 || im->phnum >= PN_XNUM) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %u program headers", name, im->phnum);
	}
	if (!kw_elf_table_in_file(&im->raw, im->phoff, im->phnum, pes)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': program header table runs past the end of the file", name);
	}
	im->ph = kw_calloc(im->phnum, sizeof(*im->ph));
	if (!im->ph) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < im->phnum; i++) {
		(void)kw_elf_get_phdr(&im->raw, im->phoff + i * pes, &im->ph[i]);
		if (im->ph[i].type == PT_LOAD &&
		    (!in_file(im, im->ph[i].offset, im->ph[i].filesz) || im->ph[i].filesz > im->ph[i].memsz)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_LOAD %zu lies outside the file", name, i);
		}
		/* A wrapped end would hide the segment from the search for free address space (fuzzing). */
		if (im->ph[i].type == PT_LOAD && im->ph[i].memsz > (im->is64 ? UINT64_MAX : UINT32_MAX) - im->ph[i].vaddr) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_LOAD %zu wraps around the address space", name, i);
		}
		/* The last PT_DYNAMIC, as glibc, musl and kw_elf_parse_memory read it. */
		if (im->ph[i].type == PT_DYNAMIC) {
			im->dyn_ph = (long)i;
		}
	}
	des = img_dynentsize(im);
	/*
	 * The dynamic table the loader reads is PT_DYNAMIC's. A file with none
	 * (or an empty one) but a .dynamic section is edited through the
	 * section, as patchelf does; one with neither takes header edits only.
	 */
	if (im->dyn_ph >= 0 && im->ph[im->dyn_ph].filesz > 0) {
		const struct kw_elf_phdr *d = &im->ph[im->dyn_ph];

		if (!in_file(im, d->offset, d->filesz) || d->filesz < des) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_DYNAMIC lies outside the file", name);
		}
		im->has_dyn = true;
		im->dyn_off = d->offset;
		im->dyn_vaddr = d->vaddr;
		im->dyn_size = d->filesz;
	} else if (dynamic_section(im, &im->dyn_off, &im->dyn_vaddr, &im->dyn_size)) {
		im->has_dyn = true;
	}
	if (im->has_dyn) {
		if (img_hits_headers(im, im->dyn_off, im->dyn_size)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_DYNAMIC lies on the ELF, program or section headers", name);
		}
		dyn_off = im->dyn_off;
		im->dyn_cap = im->dyn_size / des;
		if (im->dyn_cap > MAX_DYN_ENTRIES) {
			return kw_error_set(err, KW_EFORMAT, "'%s': PT_DYNAMIC claims %zu entries", name, im->dyn_cap);
		}
	}
	im->dyn = kw_calloc(im->dyn_cap + 1, sizeof(*im->dyn));
	if (!im->dyn) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (n = 0; n < im->dyn_cap; n++) {
		(void)kw_elf_dyn_at(&im->raw, dyn_off, im->dyn_size, n, &im->dyn[n]);
		if (im->dyn[n].tag == DT_NULL) {
			break;
		}
	}
	if (im->has_dyn && n == im->dyn_cap) {
		return kw_error_set(err, KW_EFORMAT, "'%s': dynamic section has no DT_NULL terminator", name);
	}
	im->ndyn = n;
	if (im->has_dyn && (!img_dyn(im, DT_STRTAB, &im->str_vaddr) || !img_dyn(im, DT_STRSZ, &im->str_size))) {
		return kw_error_set(err, KW_EFORMAT, "'%s': no DT_STRTAB/DT_STRSZ", name);
	}
	if (im->has_dyn && (!img_vaddr_off(im, im->str_vaddr, im->str_size, &im->str_off) || im->str_size == 0)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': dynamic string table lies outside the file", name);
	}
	rc = load_extents(im, err);
	if (rc) {
		return rc;
	}
	rc = im->has_dyn ? clamp_dyn_cap(im, dyn_off, err) : 0;
	if (rc) {
		return rc;
	}
	rc = load_sections(im, err);
	if (rc == 0 && img_hits_headers(im, im->str_off, im->str_size)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': .dynstr lies on the ELF, program or section headers", name);
	}
	if (rc == 0) {
		rc = check_tables_off_headers(im, err);
	}
	return rc;
}
