/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kw-config.h"
#include "kwheel/kwheel.h"

#include "cli.h"

static const struct kw_cmd *const commands[] = {
	&kw_cmd_show,
	&kw_cmd_lddtree,
	&kw_cmd_repair,
	&kw_cmd_patch,
	&kw_cmd_km,
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: kwheel [--version] [--help] [-v] COMMAND [ARGS]\n\n"
		   "Audit and repair Python wheels.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	}
	fprintf(f, "\nRun 'kwheel COMMAND --help' for a command's options.\n"
		   "exit codes: 0 ok, 1 negative verdict, 2 error, 3 usage\n");
}

static void log_stderr(void *ud, enum kw_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	(void)ud;
	fprintf(stderr, "kwheel: %s: %s\n", names[level], msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct kw_ctx *ctx = NULL;
	struct kw_error err = { 0 };
	const struct kw_cmd *cmd = NULL;
	int verbosity = KW_LOG_WARN;
	int rc = KW_EXIT_USAGE;
	const char *fail_alloc = getenv("KWHEEL_FAIL_ALLOC");
	long fail_at = -1;
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	int c;
	size_t i;

	/*
	 * libzip turns every member's DOS time stamp into a time_t with mktime,
	 * and glibc, with TZ unset, stats /etc/localtime again on each call: two
	 * path lookups per member, 3,000 for a 1,500-member wheel, all before the
	 * wheel's reads can start. ":/etc/localtime" is the zone glibc uses when
	 * TZ is unset, read once. Set before any thread exists.
	 */
	if (!getenv("TZ")) {
		setenv("TZ", ":/etc/localtime", 0);
	}
	/* Called by patchelf's name (a link), it is patchelf's command line from the first word on. */
	base = base ? base + 1 : argc > 0 ? argv[0] : "";
	if (strcmp(base, "patchelf") == 0 || strcmp(base, "kwheel-patchelf") == 0) {
		cmd = &kw_cmd_patchelf;
		optind = 0;
		goto run;
	}
	while ((c = getopt_long(argc, argv, "+hVvq", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return KW_EXIT_OK;
		case 'V':
			printf("kwheel %s\n", KW_VERSION);
			return KW_EXIT_OK;
		case 'v':
			verbosity++;
			break;
		case 'q':
			verbosity = KW_LOG_ERROR;
			break;
		default:
			usage(stderr);
			return KW_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return KW_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i]->name, argv[optind]) == 0) {
			cmd = commands[i];
		}
	}
	if (!cmd) {
		fprintf(stderr, "kwheel: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return KW_EXIT_USAGE;
	}
run:
	/*
	 * show inflates members into buffers of a few MiB, one after another on
	 * each thread. With glibc's default pad of 128 KiB the heaps are grown
	 * and trimmed around them: system calls and fresh zeroed pages per
	 * member. Heaps that keep 16 MiB spare reuse their pages: measured, 5%
	 * of a show of scipy, and torch's peak RSS 54 MiB instead of 69. Not for
	 * the other commands: repair -j 2 of four wheels was 7% slower with it
	 * (5.6-5.8 s against 5.2-5.4 s, side by side after a sync each).
	 */
	if (cmd == &kw_cmd_show) {
		mallopt(M_TOP_PAD, 16 << 20);
	}
	/*
	 * Test hook, always compiled in: KWHEEL_FAIL_ALLOC=N makes the Nth library
	 * allocation of the command, and every later one, fail (kw_alloc_fail_at).
	 * N=0 fails nothing and prints "kwheel: debug: A allocations" on stderr at
	 * the end, so a test knows how far to step. Used by tests/integration/robust.
	 */
	if (fail_alloc && *fail_alloc) {
		char *end;

		errno = 0;
		fail_at = strtol(fail_alloc, &end, 10);
		if (errno || *end || fail_at < 0) {
			fprintf(stderr, "kwheel: KWHEEL_FAIL_ALLOC is not a count: '%s'\n", fail_alloc);
			return KW_EXIT_USAGE;
		}
		kw_alloc_fail_at(fail_at);
	}
	if (kw_ctx_new(&ctx, &err)) {
		return kw_cli_error(&err);
	}
	ctx->log_fn = log_stderr;
	ctx->log_level = verbosity;
	if (getenv("LD_LIBRARY_PATH") && kw_ctx_set_ld_library_path(ctx, getenv("LD_LIBRARY_PATH"), &err)) {
		kw_ctx_free(ctx);
		return kw_cli_error(&err);
	}
	/* Commands parse from their own name on: a full getopt reset; they word their own option errors. */
	c = optind;
	optind = 0;
	opterr = 0;
	rc = cmd->fn(ctx, argc - c, argv + c);
	kw_ctx_free(ctx);
	if (fail_at == 0) {
		fprintf(stderr, "kwheel: debug: %ld allocations\n", kw_alloc_fail_at(0));
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "kwheel: cannot write output: %s\n", strerror(errno));
		return KW_EXIT_ERROR;
	}
	return rc;
}
