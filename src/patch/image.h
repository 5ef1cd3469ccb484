/* SPDX-License-Identifier: MIT */
/* A raw, writable view of an ELF image: headers decoded by elf/'s decoder, written back here. */
#ifndef KWHEEL_PATCH_IMAGE_H
#define KWHEEL_PATCH_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/elf-decode.h"
#include "kwheel/kwheel.h"
#include "kwheel/patch.h"

/* A table the loader reads, as file offsets (tag: its DT_ address tag, or IMG_TAB_INTERP for PT_INTERP). */
#define IMG_TAB_INTERP (-1)
struct extent {
	int64_t tag;
	uint64_t off, len;
};

struct img {
	struct kw_elf_raw raw; /* how the decoder reads b */
	unsigned char *b;      /* the image the editor writes: raw.b, writable */
	/*
	 * Bit i set (low bit first): bytes [i * KW_PATCH_BLOCK, (i + 1) *
	 * KW_PATCH_BLOCK) of b may have been written. Every write into b goes
	 * through img_wr, img_put_* or img_mark, so the file writer can copy
	 * the rest from the input without reading it.
	 */
	unsigned char *written;
	size_t len;            /* raw.len, raw.is64 and raw.msb, for the editor's writes */
	const char *name;
	bool is64, msb;
	uint16_t type, machine;
	uint64_t phoff, shoff;
	uint16_t phnum, shnum, shstrndx;
	struct kw_elf_phdr *ph;
	struct kw_elf_shdr *sh; /* NULL when the file has no usable section headers */
	/* dynamic table: PT_DYNAMIC's, or the .dynamic section's where the loader sees none */
	bool has_dyn;        /* false: the file has no dynamic table, only header edits apply */
	long dyn_ph;         /* the PT_DYNAMIC entry, or -1 */
	uint64_t dyn_off, dyn_vaddr, dyn_size;
	size_t dyn_cap;      /* entries the table holds, DT_NULLs included */
	struct kw_elf_dyn *dyn; /* entries before the first DT_NULL */
	size_t ndyn;
	/* dynamic string table */
	uint64_t str_vaddr, str_off, str_size;
	long sh_dynstr, sh_dynamic, sh_verneed;
	/* .dynsym entries the hash tables index, as the reader counts them; 0 if it refused the image */
	uint64_t nsyms;
	bool nsyms_known;
	/* the loader's tables of known extent, so an in-place write can be kept off them */
	struct extent *tab;
	size_t ntab;
};

size_t img_word(const struct img *im); /* 4 or 8 */
size_t img_phentsize(const struct img *im);
size_t img_shentsize(const struct img *im);
size_t img_dynentsize(const struct img *im);

uint64_t img_rd(const struct img *im, const unsigned char *p, size_t width);
/* Store v at p (in b or elsewhere), width bytes in the image's byte order; marks it written if in b. */
void img_wr(const struct img *im, unsigned char *p, size_t width, uint64_t v);
/* Record that [p, p+n) is about to be written by other means (memcpy, memset); p outside b is ignored. */
void img_mark(const struct img *im, const unsigned char *p, size_t n);

/* Decode headers and the dynamic segment. Nothing is written. */
int img_load(struct img *im, unsigned char *buf, size_t len, const char *name, struct kw_error *err);
/* Frees what img_load allocated, im->written too unless the caller took it (set it to NULL). */
void img_release(struct img *im);
/* File offset of [vaddr, vaddr+size) if a PT_LOAD's file image holds all of it. */
bool img_vaddr_off(const struct img *im, uint64_t vaddr, uint64_t size, uint64_t *off);
/* True if [off, off+len) shares a byte with the ELF header or the program or section header table. */
bool img_hits_headers(const struct img *im, uint64_t off, uint64_t len);
/*
 * Call fn on each record and aux entry (file offset, size) of the VERDEF
 * (def) or VERNEED chain of num records at file offset off, within the file
 * and the parser's bounds; a non-zero return of fn stops the walk and is
 * returned.
 */
int img_each_version_entry(const struct img *im, uint64_t off, uint64_t num, bool def,
			   int (*fn)(void *ud, uint64_t off, uint64_t size, bool record), void *ud);
/*
 * The tag of a loader table (relocations, symbols, hash tables, versym,
 * strings, init/fini arrays, the interpreter path) sharing a byte with
 * [off, off+len), other than one tagged except; DT_NULL (0) if none does.
 */
int64_t img_table_hit(const struct img *im, uint64_t off, uint64_t len, int64_t except);
/* The dynamic string at idx, or NULL if it is out of range or unterminated. */
const char *img_str(const struct img *im, uint64_t idx);
/* Value of the first dynamic entry with tag, or false. */
bool img_dyn(const struct img *im, int64_t tag, uint64_t *val);

void img_put_ph(const struct img *im, unsigned char *p, const struct kw_elf_phdr *ph);
void img_put_sh(const struct img *im, unsigned char *p, const struct kw_elf_shdr *sh);
void img_put_dyn(const struct img *im, unsigned char *p, const struct kw_elf_dyn *d);

#endif
