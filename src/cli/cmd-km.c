/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/km.h"
#include "kwheel/report.h"
#include "kwheel/util.h"

#include "cli.h"
#include "inputs.h"

static const char synopsis[] = "[options] -o DIR WHEEL|DIR...";
static const char summary[] =
	"Convert wheels' extension modules (and the libraries they need) into static archives\n"
	"for KM's statically linked interpreter: each shared object is delinked into a\n"
	"relocatable object that registers itself with the emulated dlopen. Writes\n"
	"DIR/lib<dist>.km.a, DIR/<dist>.km.link (linker arguments) and DIR/<dist>.km.json.";

enum { OPT_DEPS = 2001, OPT_LINK, OPT_PYTHON, OPT_WHEEL_OUT, OPT_NO_WHEEL, OPT_LINK_FILE, OPT_OBJECTS, OPT_ID, OPT_NO_WX };

static const struct kw_opt_help helps[] = {
	{ { "output", required_argument, NULL, 'o' }, "DIR", "where archives, link files and manifests go" },
	{ { "deps", no_argument, NULL, OPT_DEPS }, NULL,
	  "convert the libraries from outside the wheel the extensions need too (lib mode)" },
	{ { "objects", required_argument, NULL, OPT_OBJECTS }, "DIR",
	  "instead of wheels: the object files (*.o) of one extension's build; their globals are renamed "
	  "and a registration added (needs --id)" },
	{ { "id", required_argument, NULL, OPT_ID }, "PATH",
	  "with --objects: the extension's path as installed, e.g. pkg/_mod.cpython-311-x86_64-linux-gnu.so" },
	{ { "jobs", required_argument, NULL, 'j' }, "N",
	  "N threads for each wheel's members and conversions (default: every core); wheels one after another, "
	  "as they share conversions" },
	{ { "no-wx", no_argument, NULL, OPT_NO_WX }, NULL,
	  "leave converted images writable and executable (by default each object's constructor restores "
	  "its segments' permissions)" },
	{ { "wheel-out", required_argument, NULL, OPT_WHEEL_OUT }, "DIR",
	  "where the wheel for the KM payload goes (default: the output directory)" },
	{ { "no-wheel", no_argument, NULL, OPT_NO_WHEEL }, NULL, "do not write the KM payload wheel" },
	{ { "link-python", required_argument, NULL, OPT_LINK }, "OUT",
	  "then link a static CPython at OUT with the converted wheels built in" },
	{ { "link-file", required_argument, NULL, OPT_LINK_FILE }, "FILE",
	  "with --link-python: also link what FILE names (an installed payload's <dist-info>/km/*.km.link; "
	  "paths in it are relative to the current directory); repeatable, and then no wheel is needed" },
	{ { "python", required_argument, NULL, OPT_PYTHON }, "PY",
	  "the interpreter whose libpython3.X.a --link-python uses (default python3)" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

static int cmd_km(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[20];
	char shortopts[32];
	struct kw_error err = { 0 };
	struct kw_km_options opts = { .manifest = kw_report_km_manifest,
				      .manifest_object = kw_report_km_manifest_object };
	struct kw_km_cache *cache = NULL;
	bool no_wheel = false, progress = false;
	struct kw_strv inputs = { 0 }, links = { 0 };
	const char *link_out = NULL, *python = "python3", *objects = NULL, *id = NULL;
	size_t i;
	long jobs = 0;
	int c, rc = KW_EXIT_OK;

	kw_cli_opts(helps, longopts, 20, shortopts, sizeof(shortopts));
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int r = kw_cli_resolve_opt(ctx, c, optarg, &err);

		if (r < 0) {
			return kw_cli_error(&err);
		}
		if (r > 0) {
			continue;
		}
		switch (c) {
		case 'o':
			opts.outdir = optarg;
			break;
		case OPT_DEPS:
			opts.deps = true;
			break;
		case OPT_NO_WX:
			opts.no_wx = true;
			break;
		case 'j':
			if ((c = kw_cli_jobs("km", optarg, &jobs))) {
				kw_strv_release(&links);
				return c;
			}
			break;
		case OPT_OBJECTS:
			objects = optarg;
			break;
		case OPT_ID:
			id = optarg;
			break;
		case OPT_WHEEL_OUT:
			opts.wheel_dir = optarg;
			break;
		case OPT_NO_WHEEL:
			no_wheel = true;
			break;
		case OPT_LINK:
			link_out = optarg;
			break;
		case OPT_LINK_FILE:
			if (kw_strv_push(&links, optarg)) {
				kw_error_set(&err, KW_ENOMEM, "out of memory");
				return kw_cli_error(&err);
			}
			break;
		case OPT_PYTHON:
			python = optarg;
			break;
		case 'h':
			kw_cli_help(stdout, "km", synopsis, summary, helps);
			return KW_EXIT_OK;
		default:
			return kw_cli_bad_option("km", c, argv);
		}
	}
	if (links.n && !link_out) {
		kw_strv_release(&links);
		return kw_cli_usage("km", "--link-file needs --link-python");
	}
	if (objects && (!id || !opts.outdir || optind < argc)) {
		kw_strv_release(&links);
		return kw_cli_usage("km", "--objects needs --id and -o, and takes no wheel");
	}
	if (optind >= argc && !links.n && !objects) {
		return kw_cli_usage("km", "no wheel given");
	}
	if (!opts.outdir && optind < argc) {
		kw_strv_release(&links);
		return kw_cli_usage("km", "no output directory (-o DIR)");
	}
	if (!opts.outdir) {
		opts.outdir = ".";
	}
	if (mkdir(opts.outdir, 0755) != 0 && errno != EEXIST) {
		kw_error_set(&err, KW_EIO, "cannot create '%s': %s", opts.outdir, strerror(errno));
		return kw_cli_error(&err);
	}
	if (no_wheel) {
		opts.wheel_dir = NULL;
	} else if (!opts.wheel_dir) {
		opts.wheel_dir = opts.outdir;
	} else if (mkdir(opts.wheel_dir, 0755) != 0 && errno != EEXIST) {
		kw_error_set(&err, KW_EIO, "cannot create '%s': %s", opts.wheel_dir, strerror(errno));
		return kw_cli_error(&err);
	}
	if (objects) {
		struct kw_km_wheel res;

		if (kw_km_convert_objects(objects, id, opts.outdir, kw_report_km_manifest, &res, &err)) {
			rc = kw_cli_error(&err);
			goto out;
		}
		printf("%s: %zu object%s -> %s\n", objects, res.n_objects, res.n_objects == 1 ? "" : "s", res.archive);
		if (kw_strv_push(&links, res.link_file)) {
			kw_km_wheel_release(&res);
			kw_error_set(&err, KW_ENOMEM, "out of memory");
			rc = kw_cli_error(&err);
			goto out;
		}
		kw_km_wheel_release(&res);
	}
	if (optind < argc && kw_cli_collect_wheels(argv + optind, (size_t)(argc - optind), &inputs, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	/*
	 * A library several wheels (or a wheel and lib-dynload) need is
	 * delinked once. One wheel alone has no later conversion to share
	 * with, and keying each object costs a parse and a SHA-256 of its
	 * bytes (a closure's 400 MB): then there is no cache.
	 */
	if ((inputs.n > 1 || link_out) && kw_km_cache_new(&cache, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	opts.cache = cache;
	kw_cli_pool_open(ctx, jobs);
	/* On a terminal a progress line: each wheel's conversion takes seconds to minutes with --deps. */
	progress = isatty(STDERR_FILENO);
	for (i = 0; i < inputs.n; i++) {
		struct kw_km_wheel res;
		struct kw_cli_progress prog;
		int crc;

		kw_cli_progress_init(&prog, inputs.v[i]);
		if (progress) {
			opts.progress = kw_cli_progress_draw;
			opts.progress_ud = &prog;
			kw_cli_progress_draw(&prog, "auditing", 0, 0);
		}
		crc = kw_km_convert_wheel(ctx, inputs.v[i], &opts, &res, &err);
		kw_cli_progress_clear(&prog);
		if (crc) {
			int code = err.code == KW_EPOLICY ? KW_EXIT_VERDICT : KW_EXIT_ERROR;

			kw_cli_error(&err);
			if (code > rc) {
				rc = code;
			}
			continue;
		}
		if (!res.archive) {
			printf("%s: no ELF object, nothing to convert (install it as it is)\n", inputs.v[i]);
			continue;
		}
		printf("%s: %zu object%s", inputs.v[i], res.n_objects, res.n_objects == 1 ? "" : "s");
		if (res.n_reused) {
			printf(" (%zu reused from an earlier wheel's conversion)", res.n_reused);
		}
		printf(" -> %s%s%s\n", res.archive, res.wheel ? ", " : "", res.wheel ? res.wheel : "");
		if (kw_strv_push(&links, res.link_file)) {
			kw_error_set(&err, KW_ENOMEM, "out of memory");
			rc = kw_cli_error(&err);
			kw_km_wheel_release(&res);
			goto out;
		}
		kw_km_wheel_release(&res);
	}
	if (link_out && rc == KW_EXIT_OK) {
		struct kw_strv left = { 0 };

		struct kw_cli_progress prog;
		int lrc;

		kw_cli_progress_init(&prog, link_out);
		if (progress) {
			kw_cli_progress_draw(&prog, "linking", 0, 0);
		}
		lrc = kw_km_link_python(link_out, python, (const char *const *)links.v, links.n, cache, &left, &err);
		kw_cli_progress_clear(&prog);
		if (lrc) {
			rc = kw_cli_error(&err);
		} else {
			printf("linked %s\n", link_out);
			if (left.n) {
				printf("not built in (libraries they need are missing or do not convert):");
				for (i = 0; i < left.n; i++) {
					printf(" %s", left.v[i]);
				}
				printf("\n");
			}
		}
		kw_strv_release(&left);
	}
	{
		size_t conv, reused;

		kw_km_cache_counts(cache, &conv, &reused);
		if (reused) {
			printf("%zu object%s delinked, %zu reused: each converted once\n", conv, conv == 1 ? "" : "s",
			       reused);
		}
	}
out:
	kw_cli_pool_close(ctx);
	kw_km_cache_free(cache);
	kw_strv_release(&inputs);
	kw_strv_release(&links);
	return rc;
}

const struct kw_cmd kw_cmd_km = { "km", cmd_km, "convert extension modules into static archives for KM" };
