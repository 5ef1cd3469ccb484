/* SPDX-License-Identifier: MIT */
/*
 * The low-level decoder (kwheel/elf-decode.h) against binutils' readelf, on
 * shared objects the suite links itself: x86-64 with gcc, and ELF32 i386 by
 * converting a relocation-free object with objcopy -O elf32-i386 and linking
 * it with ld -m elf_i386 (valid: nothing in it depends on the instruction
 * set). Each has version definitions and a version need. Big-endian copies
 * are made here by byte-swapping every header, dynamic entry, symbol and
 * version record with the <elf.h> layouts (binutils cannot change a shared
 * object's byte order); readelf reads those too, so all four kinds are
 * compared field by field: ELF header, program headers, section headers,
 * dynamic entries, version needs and definitions, and vaddr to offset for
 * every allocated section.
 *
 * Then crafted byte buffers: identification, overflow edges of the range
 * checks, truncated tables, the two vaddr queries, strings, and the strict
 * and lenient version walks.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf-decode.h"
#include "testlib.h"

static char *tmpdir;

/* The objects compared with readelf: the four linked ones and their byte-swapped copies. */
static const char *const linked[] = { "libdv.so", "libdn.so", "libdv32.so", "libdn32.so" };
#define N_LINKED (sizeof(linked) / sizeof(linked[0]))

/* ------------------------------------------------------------------ */
/* Byte swapping with the <elf.h> layouts (independent of the decoder) */

static void swap_field(unsigned char *p, size_t w)
{
	size_t i;

	for (i = 0; i < w / 2; i++) {
		unsigned char t = p[i];

		p[i] = p[w - 1 - i];
		p[w - 1 - i] = t;
	}
}

/* Swap consecutive fields of the given widths (0-terminated) at p; returns the bytes covered. */
static size_t swap_fields(unsigned char *p, const unsigned char *widths)
{
	size_t at = 0;

	for (; *widths; widths++) {
		swap_field(p + at, *widths);
		at += *widths;
	}
	return at;
}

static const unsigned char ehdr64_w[] = { 2, 2, 4, 8, 8, 8, 4, 2, 2, 2, 2, 2, 2, 0 };
static const unsigned char ehdr32_w[] = { 2, 2, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 0 };
static const unsigned char phdr64_w[] = { 4, 4, 8, 8, 8, 8, 8, 8, 0 };
static const unsigned char phdr32_w[] = { 4, 4, 4, 4, 4, 4, 4, 4, 0 };
static const unsigned char shdr64_w[] = { 4, 4, 8, 8, 8, 8, 4, 4, 8, 8, 0 };
static const unsigned char shdr32_w[] = { 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0 };
static const unsigned char dyn64_w[] = { 8, 8, 0 };
static const unsigned char dyn32_w[] = { 4, 4, 0 };
static const unsigned char sym64_w[] = { 4, 1, 1, 2, 8, 8, 0 };
static const unsigned char sym32_w[] = { 4, 4, 4, 1, 1, 2, 0 };
static const unsigned char verneed_w[] = { 2, 2, 4, 4, 4, 0 };
static const unsigned char vernaux_w[] = { 4, 2, 2, 4, 4, 0 };
static const unsigned char verdef_w[] = { 2, 2, 2, 2, 4, 4, 4, 0 };
static const unsigned char verdaux_w[] = { 4, 4, 0 };

static uint64_t le(const unsigned char *p, size_t w)
{
	uint64_t v = 0;

	while (w--) {
		v = v << 8 | p[w];
	}
	return v;
}

/* A version chain at off: read each next offset (little-endian) before swapping its entry. */
static void swap_versions(unsigned char *b, uint64_t off, uint64_t num, bool def)
{
	uint64_t i, k;

	for (i = 0; i < num; i++) {
		unsigned char *r = b + off;
		uint64_t cnt = le(r + (def ? 6 : 2), 2), aux = off + le(r + (def ? 12 : 8), 4);
		uint64_t next = le(r + (def ? 16 : 12), 4);

		for (k = 0; k < cnt; k++) {
			uint64_t an = le(b + aux + (def ? 4 : 12), 4);

			swap_fields(b + aux, def ? verdaux_w : vernaux_w);
			aux += an;
		}
		swap_fields(r, def ? verdef_w : verneed_w);
		off += next;
	}
}

/* The little-endian image b turned big-endian in place, EI_DATA included. */
static void to_big_endian(unsigned char *b, size_t len)
{
	bool is64 = b[EI_CLASS] == ELFCLASS64;
	size_t w = is64 ? 8 : 4;
	uint64_t phoff = le(b + 24 + w, w), shoff = le(b + 24 + 2 * w, w), i, k;
	size_t q = 24 + 3 * w, phes = le(b + q + 6, 2), phnum = le(b + q + 8, 2);
	size_t shes = le(b + q + 10, 2), shnum = le(b + q + 12, 2);

	ck_assert_uint_eq(b[EI_DATA], ELFDATA2LSB);
	ck_assert(shoff + shnum * shes <= len);
	for (i = 0; i < shnum; i++) {
		unsigned char *s = b + shoff + i * shes;
		uint32_t type = (uint32_t)le(s + 4, 4);
		uint64_t off = le(s + 8 + 2 * w, w), size = le(s + 8 + 3 * w, w), info = le(s + 12 + 4 * w, 4);

		switch (type) {
		case SHT_DYNAMIC:
			for (k = 0; k + 2 * w <= size; k += 2 * w) {
				swap_fields(b + off + k, is64 ? dyn64_w : dyn32_w);
			}
			break;
		case SHT_DYNSYM:
		case SHT_SYMTAB:
			for (k = 0; k + (is64 ? 24 : 16) <= size; k += is64 ? 24 : 16) {
				swap_fields(b + off + k, is64 ? sym64_w : sym32_w);
			}
			break;
		case SHT_GNU_versym:
			for (k = 0; k + 2 <= size; k += 2) {
				swap_field(b + off + k, 2);
			}
			break;
		case SHT_HASH:
			for (k = 0; k + 4 <= size; k += 4) {
				swap_field(b + off + k, 4);
			}
			break;
		case SHT_GNU_verneed:
		case SHT_GNU_verdef:
			swap_versions(b, off, info, type == SHT_GNU_verdef);
			break;
		default:
			break;
		}
	}
	for (i = 0; i < shnum; i++) {
		swap_fields(b + shoff + i * shes, is64 ? shdr64_w : shdr32_w);
	}
	for (i = 0; i < phnum; i++) {
		swap_fields(b + phoff + i * phes, is64 ? phdr64_w : phdr32_w);
	}
	swap_fields(b + 16, is64 ? ehdr64_w : ehdr32_w);
	b[EI_DATA] = ELFDATA2MSB;
}

/* ------------------------------------------------------------------ */
/* Fixtures */

static void build_fixtures(void)
{
	char *cmd, *out = NULL, *err = NULL;
	size_t i;

	tmpdir = kwt_mkdtemp();
	cmd = kwt_fmt(
		"set -e; cd '%s'; "
		"printf 'int dv_one(void) { return 1; }\\nint dv_two(void) { return 2; }\\n' > dv.c; "
		"printf 'static int unused;\\n' > empty.c; "
		"printf 'DV_1 { global: dv_one; local: *; };\\nDV_2 { global: dv_two; } DV_1;\\n' > dv.map; "
		"gcc -shared -fPIC -O1 -Wl,-soname,libdv.so -Wl,--version-script,dv.map dv.c -o libdv.so; "
		"printf 'extern int dv_two(void);\\nint dn(void) { return dv_two(); }\\n' > dn.c; "
		"gcc -shared -fPIC -O1 -Wl,-soname,libdn.so -Wl,-rpath,'$ORIGIN/x' dn.c -L. -ldv -o libdn.so; "
		"gcc -c -fPIC -O1 dv.c -o dv.o; gcc -c empty.c -o empty.o; "
		"objcopy -O elf32-i386 dv.o dv32.o; objcopy -O elf32-i386 empty.o empty32.o; "
		"ld -m elf_i386 -shared -soname libdv32.so --version-script dv.map dv32.o -o libdv32.so; "
		"ld -m elf_i386 -shared -soname libdn32.so --enable-new-dtags -rpath /opt/dn -u dv_two empty32.o "
		"libdv32.so -o libdn32.so",
		tmpdir);
	ck_assert_msg(kwt_run(cmd, &out, &err) == 0, "building the fixtures failed: %s", err ? err : "");
	free(cmd);
	free(out);
	free(err);
	for (i = 0; i < N_LINKED; i++) {
		char *src = kwt_fmt("%s/%s", tmpdir, linked[i]), *dst = kwt_fmt("%s/be-%s", tmpdir, linked[i]);
		size_t len;
		unsigned char *b = (unsigned char *)kwt_read_file(src, &len);

		ck_assert_ptr_nonnull(b);
		to_big_endian(b, len);
		ck_assert_int_eq(kwt_write_file(dst, b, len), 0);
		free(b);
		free(src);
		free(dst);
	}
}

static void remove_fixtures(void)
{
	kwt_rmtree(tmpdir);
	free(tmpdir);
}

/* ------------------------------------------------------------------ */
/* readelf */

static char *readelf(const char *opts, const char *path)
{
	char *cmd = kwt_fmt("readelf -W %s '%s' 2>&1", opts, path), *out = NULL;
	char *copy;

	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	free(cmd);
	/*
	 * A copy: gcc -O3 cannot tell that kwt_run does not store &out in out,
	 * and then warns that every use of the text may use a dangling pointer.
	 */
	copy = strdup(out ? out : "");
	free(out);
	ck_assert_ptr_nonnull(copy);
	return copy;
}

/* The number after key in readelf -h output (hex with 0x, else decimal). */
static uint64_t h_num(const char *h, const char *key)
{
	const char *p = strstr(h, key);

	ck_assert_msg(p, "readelf -h has no '%s'", key);
	return strtoull(p + strlen(key), NULL, 0);
}

static struct kw_elf_raw raw;
static unsigned char *img;
static size_t img_len;
static struct kw_elf_ehdr eh;
static struct kw_elf_phdr *phs;
static struct kw_elf_shdr *shs;

static void load(const char *path)
{
	size_t i;

	img = (unsigned char *)kwt_read_file(path, &img_len);
	ck_assert_ptr_nonnull(img);
	ck_assert_int_eq(kw_elf_raw_init(&raw, img, img_len), KW_ELF_IDENT_OK);
	ck_assert(kw_elf_get_ehdr(&raw, &eh));
	ck_assert(kw_elf_table_in_file(&raw, eh.phoff, eh.phnum, kw_elf_phent_size(&raw)));
	ck_assert(kw_elf_table_in_file(&raw, eh.shoff, eh.shnum, kw_elf_shent_size(&raw)));
	phs = calloc(eh.phnum + 1u, sizeof(*phs));
	shs = calloc(eh.shnum + 1u, sizeof(*shs));
	for (i = 0; i < eh.phnum; i++) {
		ck_assert(kw_elf_get_phdr(&raw, eh.phoff + i * kw_elf_phent_size(&raw), &phs[i]));
	}
	for (i = 0; i < eh.shnum; i++) {
		ck_assert(kw_elf_get_shdr(&raw, eh.shoff + i * kw_elf_shent_size(&raw), &shs[i]));
	}
}

static void unload(void)
{
	free(img);
	free(phs);
	free(shs);
	img = NULL;
	phs = NULL;
	shs = NULL;
}

static char *fixture(int i)
{
	return kwt_fmt("%s/%s%s", tmpdir, i >= (int)N_LINKED ? "be-" : "", linked[i % N_LINKED]);
}

START_TEST(ehdr_matches_readelf)
{
	char *path = fixture(_i), *h;

	load(path);
	h = readelf("-h", path);
	ck_assert_uint_eq(raw.is64, strstr(h, "ELF64") != NULL);
	ck_assert_uint_eq(raw.msb, strstr(h, "big endian") != NULL);
	ck_assert_uint_eq(raw.msb, _i >= (int)N_LINKED);
	ck_assert_uint_eq(eh.type, ET_DYN);
	ck_assert_ptr_nonnull(strstr(h, "DYN (Shared object file)"));
	ck_assert_uint_eq(eh.machine, raw.is64 ? EM_X86_64 : EM_386);
	ck_assert_ptr_nonnull(strstr(h, raw.is64 ? "Advanced Micro Devices X86-64" : "Intel 80386"));
	ck_assert_uint_eq(eh.osabi, 0);
	ck_assert_uint_eq(eh.version, h_num(h, "\n  Version:                           0x"));
	ck_assert_uint_eq(eh.entry, h_num(h, "Entry point address:"));
	ck_assert_uint_eq(eh.phoff, h_num(h, "Start of program headers:"));
	ck_assert_uint_eq(eh.shoff, h_num(h, "Start of section headers:"));
	ck_assert_uint_eq(eh.flags, h_num(h, "Flags:"));
	ck_assert_uint_eq(eh.ehsize, h_num(h, "Size of this header:"));
	ck_assert_uint_eq(eh.ehsize, kw_elf_ehdr_size(&raw));
	ck_assert_uint_eq(eh.phentsize, h_num(h, "Size of program headers:"));
	ck_assert_uint_eq(eh.phnum, h_num(h, "Number of program headers:"));
	ck_assert_uint_eq(eh.shentsize, h_num(h, "Size of section headers:"));
	ck_assert_uint_eq(eh.shnum, h_num(h, "Number of section headers:"));
	ck_assert_uint_eq(eh.shstrndx, h_num(h, "Section header string table index:"));
	ck_assert_uint_gt(eh.phnum, 3);
	free(h);
	free(path);
	unload();
}
END_TEST

static const char *ptype_name(uint32_t t)
{
	switch (t) {
	case PT_LOAD: return "LOAD";
	case PT_DYNAMIC: return "DYNAMIC";
	case PT_INTERP: return "INTERP";
	case PT_NOTE: return "NOTE";
	case PT_TLS: return "TLS";
	case PT_GNU_EH_FRAME: return "GNU_EH_FRAME";
	case PT_GNU_STACK: return "GNU_STACK";
	case PT_GNU_RELRO: return "GNU_RELRO";
	case 0x6474e553: return "GNU_PROPERTY";
	default: return "?";
	}
}

START_TEST(phdrs_match_readelf)
{
	char *path = fixture(_i), *l, *line, *save = NULL;
	size_t n = 0;

	load(path);
	l = readelf("-l", path);
	for (line = strtok_r(strstr(l, "Program Headers:"), "\n", &save); line && n <= eh.phnum;
	     line = strtok_r(NULL, "\n", &save)) {
		char type[32], fl[8] = "", tok[4][16];
		unsigned long long off, va, pa, fs, ms, al;
		const struct kw_elf_phdr *p = &phs[n];
		int k, got;

		if (strstr(line, "Section to Segment")) {
			break;
		}
		got = sscanf(line, " %31s 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx %15s %15s %15s %15s", type, &off, &va,
			     &pa, &fs, &ms, tok[0], tok[1], tok[2], tok[3]);
		if (got < 8) {
			continue;
		}
		/* Flags are one to three words (R, W, E) before the alignment. */
		for (k = 0; k < got - 7; k++) {
			strcat(fl, tok[k]);
		}
		al = strtoull(tok[got - 7], NULL, 16);
		ck_assert_str_eq(ptype_name(p->type), type);
		ck_assert_uint_eq(p->offset, off);
		ck_assert_uint_eq(p->vaddr, va);
		ck_assert_uint_eq(p->paddr, pa);
		ck_assert_uint_eq(p->filesz, fs);
		ck_assert_uint_eq(p->memsz, ms);
		ck_assert_uint_eq(p->align, al);
		{
			char want[4] = "";
			size_t m = 0;

			if (p->flags & PF_R) {
				want[m++] = 'R';
			}
			if (p->flags & PF_W) {
				want[m++] = 'W';
			}
			if (p->flags & PF_X) {
				want[m++] = 'E';
			}
			want[m] = 0;
			ck_assert_str_eq(want, fl);
		}
		n++;
	}
	ck_assert_uint_eq(n, eh.phnum);
	free(l);
	free(path);
	unload();
}
END_TEST

START_TEST(shdrs_match_readelf)
{
	char *path = fixture(_i), *s, *line, *save = NULL;
	size_t n = 0, mapped = 0;

	load(path);
	s = readelf("-S", path);
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *rb = strchr(line, ']'), *tok[16], *t, *sv = NULL;
		unsigned idx;
		int nt = 0;
		const struct kw_elf_shdr *sh;

		if (sscanf(line, " [%u]", &idx) != 1 || !rb) {
			continue;
		}
		for (t = strtok_r(rb + 1, " ", &sv); t && nt < 16; t = strtok_r(NULL, " ", &sv)) {
			tok[nt++] = t;
		}
		ck_assert_uint_eq(idx, n);
		ck_assert_uint_lt(idx, eh.shnum);
		sh = &shs[idx];
		/* Section 0 has no name: Type Addr Off Size ES Lk Inf Al, else Name first; Flg may be absent. */
		{
			int a = idx == 0 ? 1 : 2;

			ck_assert_int_ge(nt, a + 7);
			ck_assert_uint_eq(sh->addr, strtoull(tok[a], NULL, 16));
			ck_assert_uint_eq(sh->offset, strtoull(tok[a + 1], NULL, 16));
			ck_assert_uint_eq(sh->size, strtoull(tok[a + 2], NULL, 16));
			ck_assert_uint_eq(sh->entsize, strtoull(tok[a + 3], NULL, 16));
			ck_assert_uint_eq(sh->link, strtoull(tok[nt - 3], NULL, 10));
			ck_assert_uint_eq(sh->info, strtoull(tok[nt - 2], NULL, 10));
			ck_assert_uint_eq(sh->addralign, strtoull(tok[nt - 1], NULL, 10));
			ck_assert_uint_eq((sh->flags & SHF_ALLOC) != 0, nt == a + 8 && strchr(tok[a + 4], 'A') != NULL);
		}
		/* Every allocated section with file bytes lies where its address maps. */
		if ((sh->flags & SHF_ALLOC) && sh->type != SHT_NOBITS && sh->size) {
			uint64_t off = UINT64_MAX, roff = UINT64_MAX;

			ck_assert(kw_elf_vaddr_range(&raw, phs, eh.phnum, sh->addr, sh->size, &off));
			ck_assert_uint_eq(off, sh->offset);
			ck_assert_uint_ge(kw_elf_vaddr_room(&raw, phs, eh.phnum, sh->addr, &roff), sh->size);
			ck_assert_uint_eq(roff, sh->offset);
			mapped++;
		}
		n++;
	}
	ck_assert_uint_eq(n, eh.shnum);
	ck_assert_uint_ge(mapped, 6);
	free(s);
	free(path);
	unload();
}
END_TEST

/* The file offset and size of PT_DYNAMIC (the last one, as the loader reads it). */
static void dynamic_table(uint64_t *off, uint64_t *size)
{
	size_t i;
	bool found = false;

	for (i = 0; i < eh.phnum; i++) {
		if (phs[i].type == PT_DYNAMIC) {
			*off = phs[i].offset;
			*size = phs[i].filesz;
			found = true;
		}
	}
	ck_assert(found);
}

static bool dyn_val(int64_t tag, uint64_t *val)
{
	uint64_t off, size, n;
	struct kw_elf_dyn d;

	dynamic_table(&off, &size);
	for (n = 0; kw_elf_dyn_at(&raw, off, size, n, &d) && d.tag != DT_NULL; n++) {
		if (d.tag == tag) {
			*val = d.val;
			return true;
		}
	}
	return false;
}

static const char *dynstr(uint64_t idx)
{
	uint64_t strtab = 0, strsz = 0, off = 0;

	ck_assert(dyn_val(DT_STRTAB, &strtab) && dyn_val(DT_STRSZ, &strsz));
	ck_assert(kw_elf_vaddr_range(&raw, phs, eh.phnum, strtab, strsz, &off));
	return kw_elf_str(&raw, off, strsz, idx);
}

START_TEST(dynamic_matches_readelf)
{
	char *path = fixture(_i), *d, *line, *save = NULL;
	uint64_t off = 0, size = 0, n = 0;
	size_t strings = 0;

	load(path);
	dynamic_table(&off, &size);
	d = readelf("-d", path);
	for (line = strtok_r(d, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long tag;
		char *rp = strchr(line, ')'), *lb = strchr(line, '['), *rb = strrchr(line, ']');
		struct kw_elf_dyn e;

		if (sscanf(line, " 0x%llx", &tag) != 1 || !rp) {
			continue;
		}
		ck_assert_msg(kw_elf_dyn_at(&raw, off, size, n, &e), "entry %llu", (unsigned long long)n);
		/* readelf prints ELF32 tags in 32 bits; the decoder sign-extends them. */
		ck_assert_uint_eq((uint64_t)e.tag & (raw.is64 ? UINT64_MAX : UINT32_MAX), tag);
		if (lb && rb && (e.tag == DT_NEEDED || e.tag == DT_SONAME || e.tag == DT_RPATH || e.tag == DT_RUNPATH)) {
			const char *str = dynstr(e.val);

			ck_assert_ptr_nonnull(str);
			ck_assert_int_eq((int)strlen(str), (int)(rb - lb - 1));
			ck_assert_int_eq(strncmp(str, lb + 1, (size_t)(rb - lb - 1)), 0);
			strings++;
		} else if (strstr(rp, "(bytes)")) {
			ck_assert_uint_eq(e.val, strtoull(rp + 1, NULL, 10));
		} else if (strncmp(rp + 1 + strspn(rp + 1, " "), "0x", 2) == 0) {
			ck_assert_uint_eq(e.val, strtoull(rp + 1, NULL, 16));
		}
		n++;
	}
	/* readelf stops after the first DT_NULL, which it prints. */
	ck_assert_uint_ge(n, 8);
	{
		struct kw_elf_dyn e;

		ck_assert(kw_elf_dyn_at(&raw, off, size, n - 1, &e));
		ck_assert_int_eq(e.tag, DT_NULL);
	}
	/* libdv*: DT_SONAME; libdn*: DT_NEEDED, DT_SONAME, DT_RUNPATH. */
	ck_assert_uint_eq(strings, _i % 2 ? 3 : 1);
	free(d);
	free(path);
	unload();
}
END_TEST

/* The walk as readelf -V prints it: "OFF: File: F Cnt: N", "OFF: Name: V Flags ... Version: N", ... */
struct vtext {
	struct strlist lines;
	uint64_t base;     /* section offset: readelf prints offsets from it */
	bool def;
	bool first_aux;
};

static int collect_version(void *ud, const struct kw_elf_ver *v)
{
	struct vtext *t = ud;
	const char *s = dynstr(v->name);
	char *line = NULL;

	ck_assert_uint_ge(v->off, t->base);
	ck_assert_uint_eq(v->size, t->def ? (v->record ? 20 : 8) : 16);
	if (t->def && v->record) {
		t->first_aux = true;
		line = kwt_fmt("%06llx Rev: %u Flags: %s Index: %u Cnt: %u", (unsigned long long)(v->off - t->base),
			       v->version, v->flags & VER_FLG_BASE ? "BASE" : "none", v->ndx, v->cnt);
	} else if (t->def) {
		ck_assert_ptr_nonnull(s);
		line = t->first_aux ? kwt_fmt("Name: %s", s) : kwt_fmt("%06llx Parent: %s", (unsigned long long)(v->off - t->base), s);
		t->first_aux = false;
	} else if (v->record) {
		ck_assert_ptr_nonnull(s);
		line = kwt_fmt("%06llx Version: %u File: %s Cnt: %u", (unsigned long long)(v->off - t->base), v->version, s,
			       v->cnt);
	} else {
		ck_assert_ptr_nonnull(s);
		line = kwt_fmt("%06llx Name: %s Flags: %s Version: %u", (unsigned long long)(v->off - t->base), s,
			       v->flags ? "?" : "none", v->ndx);
	}
	sl_add(&t->lines, line);
	free(line);
	return 0;
}

/*
 * readelf -V's lines of one section turned into the shape collect_version
 * writes: offsets as 6 hex digits, single spaces, a verdef's first aux name
 * split off its record line.
 */
static void readelf_versions(const char *v, const char *section, bool def, struct strlist *out)
{
	const char *p = strstr(v, section), *end;
	char *copy, *line, *save = NULL;

	if (!p) {
		return;
	}
	end = strstr(p + 1, "\n\n");
	copy = end ? kwt_fmt("%.*s", (int)(end - p), p) : kwt_fmt("%s", p);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long off;
		char *colon = strchr(line, ':'), rest[512], *q, *w;
		size_t m = 0;

		if (sscanf(line, " %llx:", &off) != 1 && sscanf(line, " 0x%llx:", &off) != 1) {
			continue;
		}
		if (!colon || strncmp(line + strspn(line, " "), "Addr", 4) == 0) {
			continue;
		}
		/* Collapse runs of spaces in the rest of the line. */
		for (q = colon + 1; *q && m + 1 < sizeof(rest); q++) {
			if (*q == ' ' && (m == 0 || rest[m - 1] == ' ')) {
				continue;
			}
			rest[m++] = *q;
		}
		while (m && rest[m - 1] == ' ') {
			m--;
		}
		rest[m] = 0;
		if (def && (w = strstr(rest, " Name: ")) != NULL) {
			char *a = kwt_fmt("%06llx %.*s", off, (int)(w - rest), rest), *b = kwt_fmt("Name: %s", w + 7);

			sl_add(out, a);
			sl_add(out, b);
			free(a);
			free(b);
		} else if (def && strncmp(rest, "Parent ", 7) == 0 && (w = strchr(rest, ':')) != NULL) {
			char *a = kwt_fmt("%06llx Parent:%s", off, w + 1);

			sl_add(out, a);
			free(a);
		} else {
			char *a = kwt_fmt("%06llx %s", off, rest);

			sl_add(out, a);
			free(a);
		}
	}
	free(copy);
}

START_TEST(versions_match_readelf)
{
	char *path = fixture(_i), *v;
	static const struct {
		int64_t tag, num;
		const char *section;
		unsigned flags;
	} chains[] = {
		{ DT_VERNEED, DT_VERNEEDNUM, "Version needs section", 0 },
		{ DT_VERDEF, DT_VERDEFNUM, "Version definition section", KW_ELF_VER_DEF },
	};
	size_t c, found = 0;

	load(path);
	v = readelf("-V", path);
	for (c = 0; c < 2; c++) {
		struct vtext t;
		struct strlist want = { 0 };
		uint64_t vaddr, num, off = 0;
		size_t i;

		memset(&t, 0, sizeof(t));
		t.def = chains[c].flags & KW_ELF_VER_DEF;
		readelf_versions(v, chains[c].section, t.def, &want);
		if (!dyn_val(chains[c].tag, &vaddr)) {
			ck_assert_uint_eq(want.n, 0);
			continue;
		}
		found++;
		ck_assert(dyn_val(chains[c].num, &num));
		ck_assert(kw_elf_vaddr_range(&raw, phs, eh.phnum, vaddr, 1, &off));
		t.base = off;
		ck_assert_int_eq(kw_elf_ver_walk(&raw, off, raw.len, num, chains[c].flags, collect_version, &t), 0);
		ck_assert_uint_eq(t.lines.n, want.n);
		for (i = 0; i < want.n; i++) {
			ck_assert_str_eq(t.lines.v[i], want.v[i]);
		}
		sl_free(&t.lines);
		sl_free(&want);
	}
	/* libdv* define versions; libdn* need one. */
	ck_assert_uint_ge(found, 1);
	free(v);
	free(path);
	unload();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Crafted buffers */

START_TEST(ident)
{
	unsigned char b[64];
	struct kw_elf_raw r;

	memset(b, 0, sizeof(b));
	memcpy(b, ELFMAG, SELFMAG);
	b[EI_CLASS] = ELFCLASS32;
	b[EI_DATA] = ELFDATA2MSB;
	ck_assert_int_eq(kw_elf_raw_init(&r, b, EI_NIDENT - 1), KW_ELF_IDENT_NOT_ELF);
	ck_assert_ptr_null(r.b);
	ck_assert_int_eq(kw_elf_raw_init(&r, b, EI_NIDENT), KW_ELF_IDENT_OK);
	ck_assert(!r.is64 && r.msb && r.len == EI_NIDENT);
	/* Identification alone is no header: ELF32's is 52 bytes. */
	{
		struct kw_elf_ehdr e;

		ck_assert(!kw_elf_get_ehdr(&r, &e));
		ck_assert_int_eq(kw_elf_raw_init(&r, b, 52), KW_ELF_IDENT_OK);
		ck_assert(kw_elf_get_ehdr(&r, &e));
		b[EI_CLASS] = ELFCLASS64;
		ck_assert_int_eq(kw_elf_raw_init(&r, b, 63), KW_ELF_IDENT_OK);
		ck_assert(!kw_elf_get_ehdr(&r, &e));
	}
	b[EI_CLASS] = 3;
	ck_assert_int_eq(kw_elf_raw_init(&r, b, sizeof(b)), KW_ELF_IDENT_BAD_CLASS);
	b[EI_CLASS] = ELFCLASS64;
	b[EI_DATA] = 0;
	ck_assert_int_eq(kw_elf_raw_init(&r, b, sizeof(b)), KW_ELF_IDENT_BAD_DATA);
	b[EI_DATA] = ELFDATA2LSB;
	b[1] = 'F';
	ck_assert_int_eq(kw_elf_raw_init(&r, b, sizeof(b)), KW_ELF_IDENT_NOT_ELF);
}
END_TEST

START_TEST(byte_order)
{
	static const unsigned char p[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88 };
	struct kw_elf_raw lsb = { p, sizeof(p), false, false }, msb = { p, sizeof(p), true, true };

	ck_assert_uint_eq(kw_elf_rd16(&lsb, p), 0x0201);
	ck_assert_uint_eq(kw_elf_rd16(&msb, p), 0x0102);
	ck_assert_uint_eq(kw_elf_rd32(&lsb, p), 0x04030201u);
	ck_assert_uint_eq(kw_elf_rd32(&msb, p), 0x01020304u);
	ck_assert_uint_eq(kw_elf_rd64(&lsb, p), 0x8807060504030201ull);
	ck_assert_uint_eq(kw_elf_rd64(&msb, p), 0x0102030405060788ull);
	ck_assert_uint_eq(kw_elf_rd(&msb, p + 5, 3), 0x060788);
	ck_assert_uint_eq(kw_elf_rdword(&lsb, p), 0x04030201u);
	ck_assert_uint_eq(kw_elf_rdword(&msb, p), 0x0102030405060788ull);
	ck_assert_uint_eq(kw_elf_word(&lsb) + kw_elf_phent_size(&lsb) + kw_elf_shent_size(&lsb), 4 + 32 + 40);
	ck_assert_uint_eq(kw_elf_dynent_size(&msb) + kw_elf_syment_size(&msb) + kw_elf_ehdr_size(&msb), 16 + 24 + 64);
}
END_TEST

START_TEST(range_checks)
{
	static unsigned char b[100];
	struct kw_elf_raw r = { b, sizeof(b), true, false };

	ck_assert(kw_elf_in_file(&r, 0, 100));
	ck_assert(kw_elf_in_file(&r, 100, 0));
	ck_assert(!kw_elf_in_file(&r, 101, 0));
	ck_assert(!kw_elf_in_file(&r, 1, 100));
	ck_assert(!kw_elf_in_file(&r, UINT64_MAX, 2));
	ck_assert(!kw_elf_in_file(&r, 2, UINT64_MAX));
	ck_assert(!kw_elf_in_file(&r, UINT64_MAX - 10, 20));
	ck_assert(kw_elf_table_in_file(&r, 20, 10, 8));
	ck_assert(!kw_elf_table_in_file(&r, 21, 10, 8));
	/* n * entsize wraps to 0 in 64 bits: still refused. */
	ck_assert(!kw_elf_table_in_file(&r, 0, 1ull << 62, 4));
	ck_assert(!kw_elf_table_in_file(&r, 0, UINT64_MAX, UINT64_MAX));
	ck_assert(kw_elf_table_in_file(&r, 0, UINT64_MAX, 0));
	{
		struct kw_elf_phdr ph;
		struct kw_elf_shdr sh;
		struct kw_elf_dyn d;

		ck_assert(kw_elf_get_phdr(&r, 44, &ph));
		ck_assert(!kw_elf_get_phdr(&r, 45, &ph));
		ck_assert(!kw_elf_get_phdr(&r, UINT64_MAX, &ph));
		ck_assert(kw_elf_get_shdr(&r, 36, &sh));
		ck_assert(!kw_elf_get_shdr(&r, 37, &sh));
		ck_assert(kw_elf_get_dyn(&r, 84, &d));
		ck_assert(!kw_elf_get_dyn(&r, 85, &d));
		/* A table past the end, an entry past the table, a partial last entry. */
		ck_assert(!kw_elf_dyn_at(&r, 90, 16, 0, &d));
		ck_assert(kw_elf_dyn_at(&r, 0, 40, 1, &d));
		ck_assert(!kw_elf_dyn_at(&r, 0, 40, 2, &d));
		ck_assert(!kw_elf_dyn_at(&r, 0, 40, UINT64_MAX, &d));
	}
}
END_TEST

START_TEST(fields_both_orders)
{
	/* An ELF32 program header and dynamic entry written big-endian by hand. */
	static const unsigned char ph32[32] = {
		0, 0, 0, 1,  0, 0, 0x10, 0,  0, 0, 0x20, 0,  0, 0, 0x30, 0,
		0, 0, 0, 0x40,  0, 0, 0, 0x50,  0, 0, 0, 6,  0, 1, 0, 0,
	};
	static const unsigned char dyn32[8] = { 0x80, 0, 0, 1, 0, 0, 0, 7 };
	struct kw_elf_raw r = { ph32, sizeof(ph32), false, true };
	struct kw_elf_phdr ph;
	struct kw_elf_dyn d;

	ck_assert(kw_elf_get_phdr(&r, 0, &ph));
	ck_assert_uint_eq(ph.type, PT_LOAD);
	ck_assert_uint_eq(ph.offset, 0x1000);
	ck_assert_uint_eq(ph.vaddr, 0x2000);
	ck_assert_uint_eq(ph.paddr, 0x3000);
	ck_assert_uint_eq(ph.filesz, 0x40);
	ck_assert_uint_eq(ph.memsz, 0x50);
	ck_assert_uint_eq(ph.flags, PF_R | PF_W);
	ck_assert_uint_eq(ph.align, 0x10000);
	/* An ELF32 tag with the top bit set is negative, as Elf32_Sword. */
	kw_elf_raw_like(&r, &r, dyn32, sizeof(dyn32));
	ck_assert(kw_elf_get_dyn(&r, 0, &d));
	ck_assert_int_eq(d.tag, (int64_t)(int32_t)0x80000001u);
	ck_assert_uint_eq(d.val, 7);
}
END_TEST

START_TEST(vaddr_queries)
{
	static unsigned char b[0x300];
	struct kw_elf_raw r = { b, sizeof(b), true, false };
	struct kw_elf_phdr ph[4];
	uint64_t off = 12345;

	memset(ph, 0, sizeof(ph));
	/* A PT_DYNAMIC covering everything is not a mapping; two loads; one whose file image runs past the end. */
	ph[0] = (struct kw_elf_phdr){ .type = PT_DYNAMIC, .offset = 0, .vaddr = 0, .filesz = 0x300, .memsz = 0x300 };
	ph[1] = (struct kw_elf_phdr){ .type = PT_LOAD, .offset = 0x100, .vaddr = 0x1000, .filesz = 0x80, .memsz = 0x200 };
	ph[2] = (struct kw_elf_phdr){ .type = PT_LOAD, .offset = 0x200, .vaddr = 0x2000, .filesz = 0x200, .memsz = 0x200 };
	ph[3] = (struct kw_elf_phdr){ .type = PT_LOAD, .offset = 0x180, .vaddr = 0x1000, .filesz = 0x100, .memsz = 0x100 };
	ck_assert(!kw_elf_vaddr_range(&r, ph, 4, 0x10, 1, &off));
	ck_assert_uint_eq(off, 12345);
	ck_assert(kw_elf_vaddr_range(&r, ph, 4, 0x1010, 0x70, &off));
	ck_assert_uint_eq(off, 0x110);
	/* Size 0 may sit at the end of the file image; memory past it has no file bytes. */
	ck_assert(kw_elf_vaddr_range(&r, ph, 4, 0x1080, 0, &off));
	ck_assert_uint_eq(off, 0x180);
	/* Too long for the first load: the later one holding it all answers. */
	ck_assert(kw_elf_vaddr_range(&r, ph, 4, 0x1010, 0x71, &off));
	ck_assert_uint_eq(off, 0x190);
	/* The second load's file image runs past the file: refused, not clamped. */
	ck_assert(!kw_elf_vaddr_range(&r, ph, 4, 0x2000, 0x101, &off));
	ck_assert(kw_elf_vaddr_range(&r, ph, 4, 0x2000, 0x100, &off));
	ck_assert(!kw_elf_vaddr_range(&r, ph, 4, UINT64_MAX, 2, &off));

	off = 12345;
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 4, 0x10, &off), 0);
	ck_assert_uint_eq(off, 0);
	/* The first load holding the byte answers, with what is left of its file image. */
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 4, 0x1010, &off), 0x70);
	ck_assert_uint_eq(off, 0x110);
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 4, 0x1080, &off), 0x80);
	ck_assert_uint_eq(off, 0x200);
	/* Clamped to the file. */
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 4, 0x2010, &off), 0xf0);
	ck_assert_uint_eq(off, 0x210);
	/* A load whose file image starts past the end holds nothing. */
	ph[1].offset = 0x300;
	off = 12345;
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 2, 0x1000, &off), 0);
	ck_assert_uint_eq(off, 0);
	ph[1].offset = UINT64_MAX - 4;
	ck_assert_uint_eq(kw_elf_vaddr_room(&r, ph, 2, 0x1010, &off), 0);
	ck_assert(!kw_elf_vaddr_range(&r, ph, 2, 0x1010, 1, &off));
}
END_TEST

START_TEST(strings)
{
	static const unsigned char b[] = "\0abc\0de";
	struct kw_elf_raw r = { b, sizeof(b) - 1, true, false };

	ck_assert_str_eq(kw_elf_str(&r, 0, 5, 1), "abc");
	ck_assert_str_eq(kw_elf_str(&r, 0, 5, 0), "");
	ck_assert_str_eq(kw_elf_str(&r, 1, 4, 0), "abc");
	ck_assert_ptr_null(kw_elf_str(&r, 0, 5, 5));
	/* "de" has no NUL inside the table (or the file). */
	ck_assert_ptr_null(kw_elf_str(&r, 0, 7, 5));
	ck_assert_ptr_null(kw_elf_str(&r, 0, 4, 1));
	/* A table past the file is no table. */
	ck_assert_ptr_null(kw_elf_str(&r, 0, 8, 1));
	ck_assert_ptr_null(kw_elf_str(&r, UINT64_MAX, 2, 0));
}
END_TEST

/* Little-endian Verneed / Vernaux writers for the walk tests. */
static void put_le(unsigned char *p, size_t w, uint64_t v)
{
	size_t i;

	for (i = 0; i < w; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

static void verneed(unsigned char *p, uint16_t cnt, uint32_t file, uint32_t aux, uint32_t next)
{
	put_le(p, 2, 1);
	put_le(p + 2, 2, cnt);
	put_le(p + 4, 4, file);
	put_le(p + 8, 4, aux);
	put_le(p + 12, 4, next);
}

static void vernaux(unsigned char *p, uint16_t other, uint32_t name, uint32_t next)
{
	put_le(p, 4, 0x1234);
	put_le(p + 4, 2, 0);
	put_le(p + 6, 2, other);
	put_le(p + 8, 4, name);
	put_le(p + 12, 4, next);
}

struct seen {
	char log[256];
	int stop_at;    /* return -7 at this entry (1-based), or 0 */
	int skip_at;    /* return KW_ELF_VER_NEXT_RECORD at this entry, or 0 */
	int n;
};

static int log_entry(void *ud, const struct kw_elf_ver *v)
{
	struct seen *s = ud;
	size_t m = strlen(s->log);

	s->n++;
	snprintf(s->log + m, sizeof(s->log) - m, "%s%llu:%u ", v->record ? "R" : "a", (unsigned long long)v->off,
		 v->record ? v->name : v->ndx);
	if (s->n == s->stop_at) {
		return -7;
	}
	return s->n == s->skip_at ? KW_ELF_VER_NEXT_RECORD : 0;
}

START_TEST(version_walks)
{
	static unsigned char b[128];
	struct kw_elf_raw r = { b, sizeof(b), true, false };
	struct seen s;

	memset(b, 0, sizeof(b));
	/* Record at 0 (two aux at 16, 32), record at 48 (one aux at 64, whose next points past the file). */
	verneed(b, 2, 11, 16, 48);
	vernaux(b + 16, 2, 21, 16);
	vernaux(b + 32, 3, 22, 0);
	verneed(b + 48, 2, 12, 16, 0);
	vernaux(b + 64, 4, 23, 60);

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 2, 0, log_entry, &s), KW_ELF_VER_ENTRY_PAST);
	ck_assert_str_eq(s.log, "R0:11 a16:2 a32:3 R48:12 a64:4 ");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 2, KW_ELF_VER_LENIENT, log_entry, &s), 0);
	ck_assert_str_eq(s.log, "R0:11 a16:2 a32:3 R48:12 a64:4 ");
	/* The region's end binds, not only the file's. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, 47, 2, 0, log_entry, &s), KW_ELF_VER_ENTRY_PAST);
	ck_assert_str_eq(s.log, "R0:11 a16:2 ");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, 60, 2, 0, log_entry, &s), KW_ELF_VER_RECORD_PAST);
	/* Lenient: the record's list ends, the walk goes on to the next record. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, 47, 3, KW_ELF_VER_LENIENT, log_entry, &s), 0);
	ck_assert_str_eq(s.log, "R0:11 a16:2 ");
	/* num bounds the records; a next of 0 ends the walk before num. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 1, 0, log_entry, &s), 0);
	ck_assert_str_eq(s.log, "R0:11 a16:2 a32:3 ");
	/* Skipping and stopping. */
	memset(&s, 0, sizeof(s));
	s.skip_at = 1;
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 2, 0, log_entry, &s), KW_ELF_VER_ENTRY_PAST);
	ck_assert_str_eq(s.log, "R0:11 R48:12 a64:4 ");
	memset(&s, 0, sizeof(s));
	s.skip_at = 2;
	s.stop_at = 4;
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 2, 0, log_entry, &s), -7);
	ck_assert_str_eq(s.log, "R0:11 a16:2 R48:12 a64:4 ");
	/* Absurd counts: refused strictly, bounded leniently. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, KW_ELF_VER_MAX_RECORDS + 1, 0, log_entry, &s),
			 KW_ELF_VER_TOO_MANY_RECORDS);
	ck_assert_int_eq(s.n, 0);
}
END_TEST

/* Aux lists that together pass the entry bound: each of 64 records lists the same 0xffff entries. */
START_TEST(version_entry_bound)
{
	size_t len = 2u << 20;
	unsigned char *b = calloc(1, len);
	struct kw_elf_raw r = { b, len, true, false };
	struct seen s;
	uint64_t i;

	ck_assert_ptr_nonnull(b);
	for (i = 0; i < 64; i++) {
		verneed(b + i * 16, 0xffff, 0, (uint32_t)(1024 - i * 16), 16);
	}
	for (i = 0; i < 0xffff; i++) {
		vernaux(b + 1024 + i * 16, 2, 0, 16);
	}
	memset(&s, 0, sizeof(s));
	s.stop_at = -1;
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 64, 0, log_entry, &s), KW_ELF_VER_TOO_MANY_ENTRIES);
	ck_assert_int_eq(s.n, 1 + 0xffff + 1 + 1);
	memset(&s, 0, sizeof(s));
	s.stop_at = -1;
	ck_assert_int_eq(kw_elf_ver_walk(&r, 0, r.len, 64, KW_ELF_VER_LENIENT, log_entry, &s), 0);
	/* Lenient: every record is still seen, but no aux entry past the bound. */
	ck_assert_int_eq(s.n, 64 + KW_ELF_VER_MAX_ENTRIES);
	free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("decode");
	TCase *tr = tcase_create("readelf");
	TCase *tb = tcase_create("crafted");

	tcase_add_unchecked_fixture(tr, build_fixtures, remove_fixtures);
	tcase_set_timeout(tr, 120);
	tcase_add_loop_test(tr, ehdr_matches_readelf, 0, 2 * N_LINKED);
	tcase_add_loop_test(tr, phdrs_match_readelf, 0, 2 * N_LINKED);
	tcase_add_loop_test(tr, shdrs_match_readelf, 0, 2 * N_LINKED);
	tcase_add_loop_test(tr, dynamic_matches_readelf, 0, 2 * N_LINKED);
	tcase_add_loop_test(tr, versions_match_readelf, 0, 2 * N_LINKED);
	suite_add_tcase(s, tr);

	tcase_add_test(tb, ident);
	tcase_add_test(tb, byte_order);
	tcase_add_test(tb, range_checks);
	tcase_add_test(tb, fields_both_orders);
	tcase_add_test(tb, vaddr_queries);
	tcase_add_test(tb, strings);
	tcase_add_test(tb, version_walks);
	tcase_add_test(tb, version_entry_bound);
	suite_add_tcase(s, tb);
	return kwt_main(s);
}
