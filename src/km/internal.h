/* SPDX-License-Identifier: MIT */
/* What the km module's files share and nothing outside it needs. */
#ifndef KWHEEL_KM_INTERNAL_H
#define KWHEEL_KM_INTERNAL_H

#include <gelf.h>
#include <libelf.h>

/* Called for each named non-local symbol (index >= sh_info) of each symbol table; non-zero stops the walk. */
typedef int (*km_sym_fn)(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name);

int km_each_nonlocal(Elf *e, km_sym_fn fn, void *ud);

#endif
