/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_CLI_INPUTS_H
#define KWHEEL_CLI_INPUTS_H

#include "kwheel/kwheel.h"
#include "kwheel/util.h"

/*
 * Expand command-line inputs into wheel paths: a file is taken as it is, a
 * directory is searched (recursively, sorted, symlinked directories not
 * followed) for *.whl, and "-" reads one path a line from standard input.
 */
int kw_cli_collect_wheels(char **args, size_t n, struct kw_strv *out, struct kw_error *err);

/*
 * Can the input at path be opened at all? A missing path is "no such file"
 * (KW_EIO, err set) whatever its name, before anyone judges the name.
 */
int kw_cli_check_input(const char *path, struct kw_error *err);

#endif
