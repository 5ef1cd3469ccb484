/* SPDX-License-Identifier: MIT */
/* Helpers shared by the libFuzzer harnesses (not part of libkwheel). */
#ifndef KWHEEL_FUZZ_COMMON_H
#define KWHEEL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "kwheel/elf.h"

/* The entry point libFuzzer calls; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_part {
	const uint8_t *p;
	size_t len;
};

/*
 * Split data at each sep byte into at most max parts (the last part keeps
 * the rest, separators included). Returns the number of parts (>= 1).
 */
size_t fz_split(const uint8_t *data, size_t size, uint8_t sep, struct fz_part *parts, size_t max);

/* A NUL-terminated copy of a part (malloc; the harness aborts on OOM). */
char *fz_strdup_part(const struct fz_part *part);

/*
 * Read every field of info, every string to its NUL, so ASan sees an
 * out-of-bounds or use-after-free anywhere in the parsed result. Aborts if
 * a count disagrees with its NULL-terminated array.
 */
void fz_walk_elf(const struct kw_elf_info *info);

/* Fold bytes into a sink the compiler cannot drop. */
void fz_touch(const void *p, size_t len);

#endif
