/* SPDX-License-Identifier: MIT */
#include <elf.h>
#include <string.h>

#include "kwheel/elf.h"

#ifndef EM_LOONGARCH
#define EM_LOONGARCH 258
#endif
#ifndef EF_ARM_ABI_FLOAT_HARD
#define EF_ARM_ABI_FLOAT_HARD 0x400
#endif

const char *kw_elf_arch(const struct kw_elf_info *info)
{
	bool is64 = info->elfclass == ELFCLASS64;
	bool le = info->data == ELFDATA2LSB;

	switch (info->machine) {
	case EM_X86_64:
		return is64 ? "x86_64" : "x32";
	case EM_386:
		return "i686";
	case EM_AARCH64:
		return is64 ? "aarch64" : NULL;
	case EM_ARM:
		/* The ISA level is in .ARM.attributes (Tag_CPU_arch: 10 is v7, 14 v8). */
		if (info->arm_cpu_arch >= 10) {
			return "armv7l";
		}
		if (info->arm_cpu_arch >= 6) {
			return "armv6l";
		}
		if (info->arm_cpu_arch >= 0) {
			return "armv5l";
		}
		return (info->e_flags & EF_ARM_ABI_FLOAT_HARD) ? "armv7l" : "armv5l";
	case EM_PPC64:
		return le ? "ppc64le" : "ppc64";
	case EM_PPC:
		return "ppc";
	case EM_S390:
		return is64 ? "s390x" : "s390";
	case EM_RISCV:
		return is64 ? "riscv64" : "riscv32";
	case EM_MIPS:
		/* uname -m, and so the platform tag, does not tell the byte order. */
		return is64 ? "mips64" : "mips";
	case EM_LOONGARCH:
		return is64 ? "loongarch64" : NULL;
	case EM_SPARCV9:
		return "sparc64";
	}
	return NULL;
}

const char *kw_elf_machine_str(uint16_t machine)
{
	switch (machine) {
	case EM_X86_64: return "x86-64";
	case EM_386: return "Intel 80386";
	case EM_AARCH64: return "AArch64";
	case EM_ARM: return "ARM";
	case EM_PPC64: return "PowerPC64";
	case EM_PPC: return "PowerPC";
	case EM_S390: return "IBM S/390";
	case EM_RISCV: return "RISC-V";
	case EM_MIPS: return "MIPS";
	case EM_LOONGARCH: return "LoongArch";
	case EM_SPARCV9: return "SPARC v9";
	case EM_NONE: return "none";
	}
	return "unknown machine";
}

struct reloc_name {
	uint16_t machine;
	uint32_t type;
	const char *name;
};

static const struct reloc_name relocs[] = {
	{ EM_X86_64, R_X86_64_NONE, "R_X86_64_NONE" },
	{ EM_X86_64, R_X86_64_64, "R_X86_64_64" },
	{ EM_X86_64, R_X86_64_PC32, "R_X86_64_PC32" },
	{ EM_X86_64, R_X86_64_COPY, "R_X86_64_COPY" },
	{ EM_X86_64, R_X86_64_GLOB_DAT, "R_X86_64_GLOB_DAT" },
	{ EM_X86_64, R_X86_64_JUMP_SLOT, "R_X86_64_JUMP_SLOT" },
	{ EM_X86_64, R_X86_64_RELATIVE, "R_X86_64_RELATIVE" },
	{ EM_X86_64, R_X86_64_32, "R_X86_64_32" },
	{ EM_X86_64, R_X86_64_32S, "R_X86_64_32S" },
	{ EM_X86_64, R_X86_64_DTPMOD64, "R_X86_64_DTPMOD64" },
	{ EM_X86_64, R_X86_64_DTPOFF64, "R_X86_64_DTPOFF64" },
	{ EM_X86_64, R_X86_64_TPOFF64, "R_X86_64_TPOFF64" },
	{ EM_X86_64, R_X86_64_PC64, "R_X86_64_PC64" },
	{ EM_X86_64, R_X86_64_16, "R_X86_64_16" },
	{ EM_X86_64, R_X86_64_PC16, "R_X86_64_PC16" },
	{ EM_X86_64, R_X86_64_8, "R_X86_64_8" },
	{ EM_X86_64, R_X86_64_PC8, "R_X86_64_PC8" },
	{ EM_X86_64, R_X86_64_DTPOFF32, "R_X86_64_DTPOFF32" },
	{ EM_X86_64, R_X86_64_TPOFF32, "R_X86_64_TPOFF32" },
	{ EM_X86_64, R_X86_64_SIZE32, "R_X86_64_SIZE32" },
	{ EM_X86_64, R_X86_64_SIZE64, "R_X86_64_SIZE64" },
	{ EM_X86_64, R_X86_64_TLSDESC, "R_X86_64_TLSDESC" },
	{ EM_X86_64, R_X86_64_IRELATIVE, "R_X86_64_IRELATIVE" },
	{ EM_X86_64, R_X86_64_RELATIVE64, "R_X86_64_RELATIVE64" },
	{ EM_AARCH64, R_AARCH64_ABS64, "R_AARCH64_ABS64" },
	{ EM_AARCH64, R_AARCH64_COPY, "R_AARCH64_COPY" },
	{ EM_AARCH64, R_AARCH64_GLOB_DAT, "R_AARCH64_GLOB_DAT" },
	{ EM_AARCH64, R_AARCH64_JUMP_SLOT, "R_AARCH64_JUMP_SLOT" },
	{ EM_AARCH64, R_AARCH64_RELATIVE, "R_AARCH64_RELATIVE" },
	{ EM_AARCH64, R_AARCH64_TLS_DTPMOD, "R_AARCH64_TLS_DTPMOD" },
	{ EM_AARCH64, R_AARCH64_TLS_DTPREL, "R_AARCH64_TLS_DTPREL" },
	{ EM_AARCH64, R_AARCH64_TLS_TPREL, "R_AARCH64_TLS_TPREL" },
	{ EM_AARCH64, R_AARCH64_TLSDESC, "R_AARCH64_TLSDESC" },
	{ EM_AARCH64, R_AARCH64_IRELATIVE, "R_AARCH64_IRELATIVE" },
	{ EM_386, R_386_32, "R_386_32" },
	{ EM_386, R_386_PC32, "R_386_PC32" },
	{ EM_386, R_386_GLOB_DAT, "R_386_GLOB_DAT" },
	{ EM_386, R_386_JMP_SLOT, "R_386_JMP_SLOT" },
	{ EM_386, R_386_RELATIVE, "R_386_RELATIVE" },
	{ EM_386, R_386_TLS_TPOFF, "R_386_TLS_TPOFF" },
	{ EM_386, R_386_TLS_DTPMOD32, "R_386_TLS_DTPMOD32" },
	{ EM_386, R_386_TLS_DTPOFF32, "R_386_TLS_DTPOFF32" },
	{ EM_386, R_386_IRELATIVE, "R_386_IRELATIVE" },
};

const char *kw_elf_reloc_str(uint16_t machine, uint32_t type)
{
	size_t i;

	for (i = 0; i < sizeof(relocs) / sizeof(relocs[0]); i++) {
		if (relocs[i].machine == machine && relocs[i].type == type) {
			return relocs[i].name;
		}
	}
	return NULL;
}

static bool gnu_osabi(uint8_t osabi)
{
	return osabi == ELFOSABI_NONE || osabi == ELFOSABI_GNU;
}

bool kw_elf_compatible(const struct kw_elf_info *a, const struct kw_elf_info *b)
{
	if (a->elfclass != b->elfclass || a->data != b->data || a->machine != b->machine) {
		return false;
	}
	/* The loader accepts SYSV and GNU/Linux objects together; others only alike. */
	return (gnu_osabi(a->osabi) && gnu_osabi(b->osabi)) || a->osabi == b->osabi;
}

const struct kw_elf_sym *kw_elf_find_sym(const struct kw_elf_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_syms; i++) {
		if (strcmp(info->syms[i].name, name) == 0) {
			return &info->syms[i];
		}
	}
	return NULL;
}
