/* SPDX-License-Identifier: MIT */
/*
 * The low-level ELF decoder: raw bytes of either class and byte order to
 * header, program header, section header, dynamic entry and version record
 * values. It is shared by the read-only view (elf/), the editor (patch/) and
 * the KM converter (km/), so that the three read a file the same way.
 *
 * Nothing here allocates or keeps a pointer past the call: the caller owns
 * every buffer and every array it asks to be filled. Every function that
 * takes an offset checks it against the image first, with checks that cannot
 * overflow; functions that take a pointer read exactly width bytes there and
 * leave the range check to the caller (who has done it for the whole table).
 * Failures are values (false, 0 or a KW_ELF_* code), never messages: each
 * reader words its own.
 */
#ifndef KWHEEL_ELF_DECODE_H
#define KWHEEL_ELF_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An ELF image as the decoder reads it. Borrowed: the decoder never writes through b. */
struct kw_elf_raw {
	const unsigned char *b;
	size_t len;
	bool is64; /* ELFCLASS64 */
	bool msb;  /* ELFDATA2MSB */
};

/* Why kw_elf_raw_init refused a buffer. */
enum kw_elf_ident {
	KW_ELF_IDENT_OK = 0,
	KW_ELF_IDENT_NOT_ELF,    /* shorter than e_ident, or no ELF magic */
	KW_ELF_IDENT_BAD_CLASS,  /* EI_CLASS is neither ELFCLASS32 nor ELFCLASS64 */
	KW_ELF_IDENT_BAD_DATA,   /* EI_DATA is neither ELFDATA2LSB nor ELFDATA2MSB */
};

/* The ELF header's fields, whichever the class. */
struct kw_elf_ehdr {
	uint8_t osabi, abiversion; /* EI_OSABI, EI_ABIVERSION */
	uint16_t type, machine;
	uint32_t version, flags;
	uint64_t entry, phoff, shoff;
	uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct kw_elf_phdr {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

struct kw_elf_shdr {
	uint32_t name, type;
	uint64_t flags, addr, offset, size;
	uint32_t link, info;
	uint64_t addralign, entsize;
};

/* A dynamic entry; an ELF32 tag is sign-extended, as the loader compares it. */
struct kw_elf_dyn {
	int64_t tag;
	uint64_t val;
};

/*
 * Read the identification of buf[0, len): magic, class and byte order. On
 * KW_ELF_IDENT_OK r describes the buffer (borrowed, not copied); otherwise r
 * is left zeroed.
 */
enum kw_elf_ident kw_elf_raw_init(struct kw_elf_raw *r, const void *buf, size_t len);
/* r reads buf[0, len) in like's class and byte order (a file's loaded image, say). */
void kw_elf_raw_like(struct kw_elf_raw *r, const struct kw_elf_raw *like, const void *buf, size_t len);

/* Sizes of the class's structures: word 4 or 8, Ehdr, Phdr, Shdr, Dyn, Sym. */
size_t kw_elf_word(const struct kw_elf_raw *r);
size_t kw_elf_ehdr_size(const struct kw_elf_raw *r);
size_t kw_elf_phent_size(const struct kw_elf_raw *r);
size_t kw_elf_shent_size(const struct kw_elf_raw *r);
size_t kw_elf_dynent_size(const struct kw_elf_raw *r);
size_t kw_elf_syment_size(const struct kw_elf_raw *r);

/* The width-byte (1..8) unsigned value at p in r's byte order; p must hold width bytes. */
uint64_t kw_elf_rd(const struct kw_elf_raw *r, const unsigned char *p, size_t width);
/*
 * The fixed widths, inline: every field every reader takes goes through
 * them (out of line they were 5% of km's conversion of a closure), and
 * one unaligned load and a byte swap where the orders differ is what they
 * come to.
 */
#define KW_ELF_HOST_MSB (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
static inline uint16_t kw_elf_rd16(const struct kw_elf_raw *r, const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return r->msb != KW_ELF_HOST_MSB ? __builtin_bswap16(v) : v;
}
static inline uint32_t kw_elf_rd32(const struct kw_elf_raw *r, const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return r->msb != KW_ELF_HOST_MSB ? __builtin_bswap32(v) : v;
}
static inline uint64_t kw_elf_rd64(const struct kw_elf_raw *r, const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return r->msb != KW_ELF_HOST_MSB ? __builtin_bswap64(v) : v;
}
/* A class-sized word (Addr, Off, Xword/Word). */
uint64_t kw_elf_rdword(const struct kw_elf_raw *r, const unsigned char *p);

/* Does [off, off+size) lie in the image? Never overflows. */
bool kw_elf_in_file(const struct kw_elf_raw *r, uint64_t off, uint64_t size);
/* Does a table of n entries of entsize bytes at off lie in the image? Never overflows. */
bool kw_elf_table_in_file(const struct kw_elf_raw *r, uint64_t off, uint64_t n, uint64_t entsize);

/* The ELF header; false if the image is shorter than the class's header. */
bool kw_elf_get_ehdr(const struct kw_elf_raw *r, struct kw_elf_ehdr *eh);
/* The program header, section header or dynamic entry at file offset off; false if it runs past the image. */
bool kw_elf_get_phdr(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_phdr *ph);
bool kw_elf_get_shdr(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_shdr *sh);
bool kw_elf_get_dyn(const struct kw_elf_raw *r, uint64_t off, struct kw_elf_dyn *d);
/*
 * Entry n of the dynamic table [off, off+size); false when the table does not
 * lie in the image or entry n does not fit whole in it. DT_NULL is returned
 * like any entry: where the table ends is the reader's call.
 */
bool kw_elf_dyn_at(const struct kw_elf_raw *r, uint64_t off, uint64_t size, uint64_t n, struct kw_elf_dyn *d);

/*
 * vaddr to file offset through the PT_LOAD entries of ph[0, n) (other types
 * are skipped), in table order, as the loader maps them.
 *
 * kw_elf_vaddr_range: the first PT_LOAD whose file image holds all of
 * [vaddr, vaddr+size) (size 0: vaddr may be its end); true and its file
 * offset in *off, false if none does or that range is not in the image.
 *
 * kw_elf_vaddr_room: the first PT_LOAD whose file image holds the byte at
 * vaddr and whose offset for it lies in the image; the bytes from there to
 * the end of that file image (clamped to the image), and the offset in *off.
 * 0 and *off 0 if none does, so a caller that checks only the room never
 * reads an unset offset.
 */
bool kw_elf_vaddr_range(const struct kw_elf_raw *r, const struct kw_elf_phdr *ph, size_t n, uint64_t vaddr,
			uint64_t size, uint64_t *off);
uint64_t kw_elf_vaddr_room(const struct kw_elf_raw *r, const struct kw_elf_phdr *ph, size_t n, uint64_t vaddr,
			   uint64_t *off);

/* The NUL-terminated string at idx of the table [off, off+size) of the image, or NULL. */
const char *kw_elf_str(const struct kw_elf_raw *r, uint64_t off, uint64_t size, uint64_t idx);

/*
 * Version chains (DT_VERNEED / DT_VERDEF). One entry of the walk: a record
 * (Verneed / Verdef) or one of its aux entries (Vernaux / Verdaux), with its
 * file offset, its size and its fields decoded. Fields a kind does not have
 * are 0.
 */
struct kw_elf_ver {
	bool record;      /* a Verneed / Verdef, else a Vernaux / Verdaux */
	uint64_t off;     /* file offset of the entry */
	uint64_t size;    /* 16 (Verneed, Vernaux), 20 (Verdef) or 8 (Verdaux) */
	uint16_t version; /* vn_version / vd_version */
	uint16_t flags;   /* vd_flags / vna_flags */
	uint16_t ndx;     /* vd_ndx / vna_other (the index symbols carry) */
	uint16_t cnt;     /* vn_cnt / vd_cnt */
	uint32_t hash;    /* vd_hash / vna_hash */
	uint32_t name;    /* vn_file / vna_name / vda_name (string index) */
	uint32_t aux;     /* vn_aux / vd_aux: offset of the first aux entry from the record */
	uint32_t next;    /* vn_next / vd_next / vna_next / vda_next: offset of the next one, 0 at the end */
};

/* Hard bounds of every walk, far above anything real, so a forged count cannot make us spin. */
#define KW_ELF_VER_MAX_RECORDS 4096
#define KW_ELF_VER_MAX_ENTRIES 65536

/* How a strict walk ended early (kw_elf_ver_walk's positive returns). */
enum kw_elf_ver_defect {
	KW_ELF_VER_RECORD_PAST = 1, /* a record runs past the end of the region */
	KW_ELF_VER_ENTRY_PAST,      /* an aux entry runs past the end of the region */
	KW_ELF_VER_TOO_MANY_RECORDS,/* num is above KW_ELF_VER_MAX_RECORDS */
	KW_ELF_VER_TOO_MANY_ENTRIES,/* more than KW_ELF_VER_MAX_ENTRIES aux entries */
};

/* Flags of kw_elf_ver_walk. */
#define KW_ELF_VER_DEF 1u     /* a Verdef chain; else a Verneed chain */
#define KW_ELF_VER_LENIENT 2u /* stop quietly where a strict walk fails (see below) */
/* A callback's return: go on with the next record, skipping this record's remaining aux entries. */
#define KW_ELF_VER_NEXT_RECORD 1

/*
 * Walk the chain of num records whose first record is at file offset off;
 * every entry must end by end (clamped to the image's length; the next
 * offsets only add, so no entry lies below off). For each record fn sees the
 * record, then its vn_cnt / vd_cnt aux entries, following the next offsets;
 * a next of 0 ends a list. fn returns 0 to go on, KW_ELF_VER_NEXT_RECORD to
 * skip to the next record, or a negative value, which stops the walk and is
 * returned; other positive values count as 0.
 *
 * Strict (the default): an entry past end or a bound exceeded stops the walk
 * with a positive enum kw_elf_ver_defect. Lenient: the walk visits only the
 * first KW_ELF_VER_MAX_RECORDS records and KW_ELF_VER_MAX_ENTRIES aux
 * entries, an aux entry past end ends its record's list and a record past end
 * ends the walk; it returns 0 or fn's value.
 */
int kw_elf_ver_walk(const struct kw_elf_raw *r, uint64_t off, uint64_t end, uint64_t num, unsigned flags,
		    int (*fn)(void *ud, const struct kw_elf_ver *v), void *ud);

#endif
