/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/report.h"
#include "kwheel/resolve.h"

#include "cli.h"

static const char synopsis[] = "[options] FILE...";
static const char summary[] =
	"Print the libraries an ELF file loads, in the loader's order, as glibc's ld.so\n"
	"would find them: DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, ld.so.conf, system dirs.";

enum { OPT_JSON = 2001 };

static const struct kw_opt_help helps[] = {
	{ { "json", no_argument, NULL, OPT_JSON }, NULL, "one JSON object per file, one a line" },
	{ { "list", no_argument, NULL, 'l' }, NULL, "only the resolved paths, one a line, like ldd's right column" },
	{ { "all", no_argument, NULL, 'a' }, NULL, "repeat libraries under every object that needs them" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

static int cmd_lddtree(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[16];
	char shortopts[32];
	struct kw_error err = { 0 };
	struct kw_resolver *r = NULL;
	bool json = false, list = false, all = false;
	int c, i, rc = KW_EXIT_OK;

	kw_cli_opts(helps, longopts, 16, shortopts, sizeof(shortopts));
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int ro = kw_cli_resolve_opt(ctx, c, optarg, &err);

		if (ro < 0) {
			return kw_cli_error(&err);
		}
		if (ro > 0) {
			continue;
		}
		switch (c) {
		case OPT_JSON: json = true; break;
		case 'l': list = true; break;
		case 'a': all = true; break;
		case 'h':
			kw_cli_help(stdout, "lddtree", synopsis, summary, helps);
			return KW_EXIT_OK;
		default:
			return kw_cli_bad_option("lddtree", c, argv);
		}
	}
	if (optind >= argc) {
		return kw_cli_usage("lddtree", "no file given");
	}
	/* The libraries one level of a tree needs are parsed side by side. */
	kw_cli_pool_open(ctx, 0);
	for (i = optind; i < argc; i++) {
		struct kw_dep_graph *g = NULL;
		size_t k;

		/* One resolver per file: its lookup budget (ctx->limits.max_lookups) is per file. */
		kw_resolver_free(r);
		r = NULL;
		if (kw_resolver_new(ctx, &r, &err) || kw_resolve_tree(r, argv[i], NULL, &g, &err)) {
			kw_cli_error(&err);
			rc = KW_EXIT_ERROR;
			continue;
		}
		for (k = 1; k < g->n_nodes; k++) {
			if (!g->nodes[k].path && rc == KW_EXIT_OK) {
				rc = KW_EXIT_VERDICT;
			}
		}
		if (json) {
			char *line = NULL;

			if (kw_report_lddtree_json(g, &line, &err)) {
				kw_cli_error(&err);
				rc = KW_EXIT_ERROR;
			} else {
				puts(line);
			}
			free(line);
		} else {
			char *text = NULL;

			if (kw_report_lddtree_text(g, argv[i], (all ? KW_REPORT_LDDTREE_ALL : 0) |
									(list ? KW_REPORT_LDDTREE_LIST : 0),
						   &text, &err)) {
				kw_cli_error(&err);
				rc = KW_EXIT_ERROR;
			} else {
				fputs(text, stdout);
			}
			free(text);
		}
		kw_dep_graph_free(g);
	}
	kw_resolver_free(r);
	kw_cli_pool_close(ctx);
	return rc;
}

const struct kw_cmd kw_cmd_lddtree = { "lddtree", cmd_lddtree,
				       "print an ELF file's library tree as the loader resolves it" };
