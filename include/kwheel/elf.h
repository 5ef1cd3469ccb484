/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_ELF_H
#define KWHEEL_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

/* A version requirement: one vna_name under one vn_file. */
struct kw_elf_verneed {
	char *file;        /* "libc.so.6" */
	char **versions;   /* "GLIBC_2.17", ... NULL-terminated, in file order */
	size_t n_versions;
};

/* A dynamic symbol (.dynsym, found through the dynamic segment or section). */
struct kw_elf_sym {
	char *name;
	char *version;      /* version name from versym/verneed/verdef, or NULL */
	bool defined;       /* st_shndx != SHN_UNDEF */
	uint16_t shndx;     /* st_shndx (SHN_ABS: value is not an address) */
	bool version_hidden;/* VERSYM_HIDDEN bit: not the default version */
	unsigned char bind; /* STB_* */
	unsigned char type; /* STT_* */
	unsigned char visibility; /* STV_* */
	uint64_t value;
	uint64_t size;
};

/* What kwheel knows about one ELF object. All strings are owned copies. */
struct kw_elf_info {
	int elfclass;           /* ELFCLASS32 / ELFCLASS64 */
	int data;               /* ELFDATA2LSB / ELFDATA2MSB */
	uint16_t machine;       /* EM_* */
	uint8_t osabi;          /* EI_OSABI */
	uint16_t type;          /* ET_* */
	uint32_t e_flags;
	char *interp;           /* PT_INTERP or NULL */
	bool has_tls;           /* PT_TLS present */
	bool has_dynamic;       /* PT_DYNAMIC present */
	char **needed;          /* DT_NEEDED in order, NULL-terminated */
	size_t n_needed;
	char *soname;           /* DT_SONAME or NULL */
	char *rpath;            /* DT_RPATH or NULL */
	char *runpath;          /* DT_RUNPATH or NULL */
	uint64_t dt_flags;      /* DT_FLAGS */
	uint64_t dt_flags_1;    /* DT_FLAGS_1 */
	bool textrel;           /* DT_TEXTREL or DF_TEXTREL */
	struct kw_elf_verneed *verneed;
	size_t n_verneed;
	char **verdef;          /* version names this object defines (DT_VERDEF) */
	size_t n_verdef;
	struct kw_elf_sym *syms;/* dynamic symbols, index 0 (the null symbol) left out */
	size_t n_syms;
	uint32_t *reloc_types;  /* distinct dynamic relocation types, sorted */
	size_t n_reloc_types;
	bool has_relr;          /* DT_RELR present */
	int arm_cpu_arch;       /* EM_ARM: Tag_CPU_arch from .ARM.attributes, -1 if absent */
	/*
	 * x86: GNU_PROPERTY_X86_ISA_1_NEEDED of the GNU property note (the
	 * PT_GNU_PROPERTY segment, else any SHT_NOTE section): bit 0 baseline,
	 * 1 x86-64-v2, 2 x86-64-v3, 3 x86-64-v4.
	 */
	bool has_x86_isa_needed;
	uint32_t x86_isa_needed;
	/*
	 * Private: where the names of syms and their version names live, a
	 * copy of the string table they index; one allocation instead of two
	 * per symbol (a C++ library has a hundred thousand).
	 */
	char *strings_;
};

/* True if buf starts with the ELF magic. */
bool kw_elf_is_elf(const void *buf, size_t len);

/*
 * Parse an ELF image in memory. name is used only in messages. The buffer is
 * borrowed for the duration of the call only. Every offset, count and string
 * index is range-checked: a forged file is KW_EFORMAT with a message, never
 * a crash or an allocation bigger than the input justifies.
 * Returns 0 and a new info (kw_elf_info_free) in *out.
 */
int kw_elf_parse_memory(const void *buf, size_t len, const char *name, struct kw_elf_info **out,
			struct kw_error *err);
/*
 * Checks buf exactly as kw_elf_parse_memory does (the same files fail, with
 * the same code and message, KW_ENOMEM apart: this allocates less) and writes
 * in *n_syms, on success only, the symbol count it would report, copying no
 * name, version or string: for a caller that needs only the verdict and the
 * count. The buffer is borrowed for the duration of the call.
 */
int kw_elf_check_memory(const void *buf, size_t len, const char *name, uint64_t *n_syms, struct kw_error *err);
/* The same for a file on disk (mapped read-only). */
int kw_elf_parse_file(const char *path, struct kw_elf_info **out, struct kw_error *err);
void kw_elf_info_free(struct kw_elf_info *info);

/*
 * The architecture name used in platform tags: "x86_64", "i686", "aarch64",
 * "armv7l", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64", "mips64",
 * ..., or NULL when unknown. For 32-bit ARM, EABI version 5 with hard float
 * is "armv7l"; soft float is "armv5l" (wheel tags say the rest).
 */
const char *kw_elf_arch(const struct kw_elf_info *info);
/* "x86-64", "AArch64", ... human name of e_machine, never NULL. */
const char *kw_elf_machine_str(uint16_t machine);
/* Name of a relocation type for a machine ("R_X86_64_RELATIVE"), or NULL. */
const char *kw_elf_reloc_str(uint16_t machine, uint32_t type);

/*
 * Could the loader use b to satisfy a's DT_NEEDED? Same class, data,
 * machine, and a compatible OSABI (NONE/GNU/LINUX mix freely).
 */
bool kw_elf_compatible(const struct kw_elf_info *a, const struct kw_elf_info *b);

/* Find a symbol by name among the dynamic symbols, or NULL. Borrowed. */
const struct kw_elf_sym *kw_elf_find_sym(const struct kw_elf_info *info, const char *name);

#endif
