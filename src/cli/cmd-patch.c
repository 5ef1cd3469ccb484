/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "kwheel/patch.h"

#include "cli.h"

static const char synopsis[] = "[options] FILE...";
static const char summary[] =
	"Edit the dynamic section of ELF files: search path, SONAME, needed libraries.\n"
	"All edits are applied in one rewrite; files are replaced atomically.";

enum {
	OPT_SET_RPATH = 2001, OPT_ADD_RPATH, OPT_REMOVE_RPATH, OPT_FORCE_RPATH, OPT_SHRINK_RPATH,
	OPT_ALLOWED_PREFIXES, OPT_SET_SONAME, OPT_REPLACE_NEEDED, OPT_ADD_NEEDED, OPT_REMOVE_NEEDED,
	OPT_PRINT_RPATH, OPT_PRINT_SONAME, OPT_PRINT_NEEDED, OPT_PRINT_INTERP,
};

static const struct kw_opt_help helps[] = {
	{ { "set-rpath", required_argument, NULL, OPT_SET_RPATH }, "PATH", "set the search path (DT_RUNPATH, DT_RPATH with --force-rpath)" },
	{ { "add-rpath", required_argument, NULL, OPT_ADD_RPATH }, "PATH", "append entries to the search path" },
	{ { "remove-rpath", no_argument, NULL, OPT_REMOVE_RPATH }, NULL, "remove DT_RPATH and DT_RUNPATH" },
	{ { "force-rpath", no_argument, NULL, OPT_FORCE_RPATH }, NULL, "write DT_RPATH (inherited by dependencies) instead of DT_RUNPATH" },
	{ { "shrink-rpath", no_argument, NULL, OPT_SHRINK_RPATH }, NULL, "keep only search path entries that hold a needed library" },
	{ { "allowed-rpath-prefixes", required_argument, NULL, OPT_ALLOWED_PREFIXES }, "P1:P2", "with --shrink-rpath, also drop entries not starting with one of these" },
	{ { "set-soname", required_argument, NULL, OPT_SET_SONAME }, "NAME", "set DT_SONAME (added if missing)" },
	{ { "replace-needed", required_argument, NULL, OPT_REPLACE_NEEDED }, "OLD NEW", "rename a DT_NEEDED entry and its version needs (two arguments)" },
	{ { "add-needed", required_argument, NULL, OPT_ADD_NEEDED }, "NAME", "add a DT_NEEDED entry before the others" },
	{ { "remove-needed", required_argument, NULL, OPT_REMOVE_NEEDED }, "NAME", "remove a DT_NEEDED entry and its version needs" },
	{ { "print-rpath", no_argument, NULL, OPT_PRINT_RPATH }, NULL, "print DT_RUNPATH, or DT_RPATH if there is none" },
	{ { "print-soname", no_argument, NULL, OPT_PRINT_SONAME }, NULL, "print DT_SONAME" },
	{ { "print-needed", no_argument, NULL, OPT_PRINT_NEEDED }, NULL, "print DT_NEEDED entries, one a line" },
	{ { "print-interpreter", no_argument, NULL, OPT_PRINT_INTERP }, NULL, "print PT_INTERP" },
	{ { "output", required_argument, NULL, 'o' }, "FILE", "write the result to FILE instead of in place (one input only)" },
	{ { "verbose", no_argument, NULL, 'v' }, NULL, "say how each file was changed" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

struct args {
	struct kw_patch_ops ops;
	const char *add_rpath[64];
	const char *add_needed[256];
	const char *remove_needed[256];
	struct kw_patch_replace replace[256];
	bool shrink, print_rpath, print_soname, print_needed, print_interp, verbose;
	const char *prefixes;
	const char *output;
};

static bool has_edits(const struct args *a)
{
	const struct kw_patch_ops *o = &a->ops;

	return o->set_rpath || o->n_add_rpath || o->remove_rpath || o->force_rpath || o->set_soname ||
	       o->n_replace_needed || o->n_add_needed || o->n_remove_needed || a->shrink;
}

static int print_info(const char *path, const struct args *a)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	size_t i;

	if (kw_elf_parse_file(path, &info, &err)) {
		return kw_cli_error(&err);
	}
	if (a->print_interp) {
		if (info->interp) {
			printf("%s\n", info->interp);
		}
	}
	if (a->print_soname && info->soname) {
		printf("%s\n", info->soname);
	}
	if (a->print_rpath) {
		const char *r = info->runpath ? info->runpath : info->rpath;

		printf("%s\n", r ? r : "");
	}
	if (a->print_needed) {
		for (i = 0; i < info->n_needed; i++) {
			printf("%s\n", info->needed[i]);
		}
	}
	kw_elf_info_free(info);
	return KW_EXIT_OK;
}

static int patch_one(struct kw_ctx *ctx, const char *path, struct args *a)
{
	struct kw_patch_ops ops = a->ops;
	struct kw_patch_result res;
	struct kw_error err = { 0 };
	char *shrunk = NULL, *prefix_copy = NULL;
	const char *prefixes[64];
	size_t n_prefixes = 0;
	int rc;

	if (a->shrink) {
		if (a->prefixes) {
			char *save = NULL, *tok;

			prefix_copy = strdup(a->prefixes);
			for (tok = prefix_copy ? strtok_r(prefix_copy, ":", &save) : NULL; tok && n_prefixes < 64;
			     tok = strtok_r(NULL, ":", &save)) {
				prefixes[n_prefixes++] = tok;
			}
		}
		/* Shrinking works on the path as it will be after the other search-path edits. */
		if (ops.set_rpath || ops.n_add_rpath || ops.remove_rpath) {
			free(prefix_copy);
			return kw_cli_usage("patch", "--shrink-rpath cannot be combined with other search path edits");
		}
		if (kw_patch_shrunk_rpath(ctx, path, prefixes, n_prefixes, &shrunk, &err)) {
			free(prefix_copy);
			return kw_cli_error(&err);
		}
		ops.set_rpath = shrunk;
	}
	rc = kw_patch_file(path, a->output, &ops, &res, &err);
	if (rc == 0 && a->verbose) {
		fprintf(stderr, "%s: %s%s%s\n", a->output ? a->output : path,
			!res.changed ? "unchanged" : res.extended ? "grown, last segment extended" : res.grew ? "grown by a new segment" : "edited in place",
			res.moved_dynstr ? ", new .dynstr" : "", res.moved_dynamic ? ", new .dynamic" : "");
	}
	kw_patch_result_release(&res);
	free(shrunk);
	free(prefix_copy);
	return rc ? kw_cli_error(&err) : KW_EXIT_OK;
}

static int cmd_patch(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[32];
	char shortopts[32];
	struct kw_error err = { 0 };
	struct args *a = calloc(1, sizeof(*a));
	int c, i, rc = KW_EXIT_OK;

	if (!a) {
		fprintf(stderr, "kwheel patch: out of memory\n");
		return KW_EXIT_ERROR;
	}
	a->ops.add_rpath = a->add_rpath;
	a->ops.add_needed = a->add_needed;
	a->ops.remove_needed = a->remove_needed;
	a->ops.replace_needed = a->replace;
	kw_cli_opts(helps, longopts, 32, shortopts, sizeof(shortopts));
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int ro = kw_cli_resolve_opt(ctx, c, optarg, &err);

		if (ro < 0) {
			rc = kw_cli_error(&err);
			goto out;
		}
		if (ro > 0) {
			continue;
		}
		switch (c) {
		case OPT_SET_RPATH: a->ops.set_rpath = optarg; break;
		case OPT_ADD_RPATH:
			if (a->ops.n_add_rpath >= 64) {
				rc = kw_cli_usage("patch", "too many --add-rpath");
				goto out;
			}
			a->add_rpath[a->ops.n_add_rpath++] = optarg;
			break;
		case OPT_REMOVE_RPATH: a->ops.remove_rpath = true; break;
		case OPT_FORCE_RPATH: a->ops.force_rpath = true; break;
		case OPT_SHRINK_RPATH: a->shrink = true; break;
		case OPT_ALLOWED_PREFIXES: a->prefixes = optarg; break;
		case OPT_SET_SONAME: a->ops.set_soname = optarg; break;
		case OPT_REPLACE_NEEDED:
			/* Two arguments, like patchelf: the second is the next word. */
			if (optind >= argc || a->ops.n_replace_needed >= 256) {
				rc = kw_cli_usage("patch", "--replace-needed takes OLD and NEW");
				goto out;
			}
			a->replace[a->ops.n_replace_needed].from = optarg;
			a->replace[a->ops.n_replace_needed].to = argv[optind++];
			a->ops.n_replace_needed++;
			break;
		case OPT_ADD_NEEDED:
			if (a->ops.n_add_needed >= 256) {
				rc = kw_cli_usage("patch", "too many --add-needed");
				goto out;
			}
			a->add_needed[a->ops.n_add_needed++] = optarg;
			break;
		case OPT_REMOVE_NEEDED:
			if (a->ops.n_remove_needed >= 256) {
				rc = kw_cli_usage("patch", "too many --remove-needed");
				goto out;
			}
			a->remove_needed[a->ops.n_remove_needed++] = optarg;
			break;
		case OPT_PRINT_RPATH: a->print_rpath = true; break;
		case OPT_PRINT_SONAME: a->print_soname = true; break;
		case OPT_PRINT_NEEDED: a->print_needed = true; break;
		case OPT_PRINT_INTERP: a->print_interp = true; break;
		case 'o': a->output = optarg; break;
		case 'v': a->verbose = true; break;
		case 'h':
			kw_cli_help(stdout, "patch", synopsis, summary, helps);
			goto out;
		default:
			rc = kw_cli_usage("patch", "unknown option");
			goto out;
		}
	}
	if (optind >= argc) {
		rc = kw_cli_usage("patch", "no file given");
		goto out;
	}
	if (a->output && argc - optind > 1) {
		rc = kw_cli_usage("patch", "--output takes one input file");
		goto out;
	}
	if (a->prefixes && !a->shrink) {
		rc = kw_cli_usage("patch", "--allowed-rpath-prefixes only goes with --shrink-rpath");
		goto out;
	}
	if (!has_edits(a) && !a->print_rpath && !a->print_soname && !a->print_needed && !a->print_interp) {
		rc = kw_cli_usage("patch", "nothing to do: give an edit or a --print option");
		goto out;
	}
	for (i = optind; i < argc; i++) {
		int r = KW_EXIT_OK;

		if (has_edits(a) || a->output) {
			r = patch_one(ctx, argv[i], a);
		}
		if (r == KW_EXIT_OK && (a->print_rpath || a->print_soname || a->print_needed || a->print_interp)) {
			r = print_info(a->output ? a->output : argv[i], a);
		}
		if (r != KW_EXIT_OK) {
			rc = r;
		}
	}
out:
	free(a);
	return rc;
}

const struct kw_cmd kw_cmd_patch = { "patch", cmd_patch, "edit RPATH, SONAME and needed libraries of ELF files" };
