/* SPDX-License-Identifier: MIT */
/*
 * fuzz-elf: the input is an ELF image. kw_elf_parse_memory promises that a
 * forged file is KW_EFORMAT, never a crash; the walk reads every byte of
 * the result so ASan sees any out-of-bounds or dangling pointer in it.
 */
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "kwheel/kwheel.h"

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err;
	uint8_t *copy;
	int rc;

	/* An exact-size heap copy: a read one past the end is an ASan report, not a silent read. */
	copy = malloc(size ? size : 1);
	if (!copy) {
		abort();
	}
	if (size) {
		memcpy(copy, data, size);
	}
	(void)kw_elf_is_elf(copy, size);
	memset(&err, 0, sizeof(err));
	rc = kw_elf_parse_memory(copy, size, "fuzz.so", &info, &err);
	if (rc == 0) {
		if (!info) {
			abort();
		}
		/* The buffer is borrowed for the call only: poison-by-free proves nothing points into it. */
		free(copy);
		copy = NULL;
		fz_walk_elf(info);
	} else {
		if (info || rc > 0) {
			abort();
		}
	}
	kw_elf_info_free(info);
	free(copy);
	return 0;
}
