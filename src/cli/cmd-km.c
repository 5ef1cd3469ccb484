/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli.h"

static int cmd_km(struct kw_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "kwheel km: not built yet\n");
	return KW_EXIT_ERROR;
}

const struct kw_cmd kw_cmd_km = { "km", cmd_km, "placeholder" };
