/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_RESOLVE_INTERNAL_H
#define KWHEEL_RESOLVE_INTERNAL_H

#include "kwheel/resolve.h"

/* Debian multiarch triplet of the object's architecture ("x86_64-linux-gnu"). */
const char *kw_resolve_triplet(const struct kw_elf_info *info);
/* Fold ".", ".." and "//" of an absolute path in place. */
void kw_resolve_normalize(char *path);
/* Follow symlinks of abspath under root; new string without root, or NULL and *status. */
char *kw_resolve_realpath(const char *root, const char *abspath, int *status);

#endif
