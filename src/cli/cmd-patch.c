/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli.h"

static int cmd_patch(struct kw_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "kwheel patch: not built yet\n");
	return KW_EXIT_ERROR;
}

const struct kw_cmd kw_cmd_patch = { "patch", cmd_patch, "placeholder" };
