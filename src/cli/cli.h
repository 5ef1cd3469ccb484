/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_CLI_H
#define KWHEEL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "kwheel/kwheel.h"

/* CLI exit codes (documented in kwheel(1)). */
enum {
	KW_EXIT_OK = 0,      /* done; wheel compliant / convertible */
	KW_EXIT_VERDICT = 1, /* done; negative verdict (not compliant, problems found) */
	KW_EXIT_ERROR = 2,   /* an input could not be processed */
	KW_EXIT_USAGE = 3,   /* bad command line */
};

struct kw_cmd {
	const char *name;
	int (*fn)(struct kw_ctx *ctx, int argc, char **argv);
	const char *summary;
};

/* One option of a command: its getopt entry and its help text, side by side. */
struct kw_opt_help {
	struct option opt;
	const char *arg;   /* metavariable or NULL */
	const char *help;
};

/*
 * Build a getopt_long table and short optstring from helps (terminated by an
 * entry with opt.name NULL). Writes at most n entries into longopts. The
 * optstring starts with ':' (missing arguments reported as ':') and lets
 * options follow operands.
 */
void kw_cli_opts(const struct kw_opt_help *helps, struct option *longopts, size_t n,
		 char *shortopts, size_t shortn);
/* Print "usage: kwheel CMD SYNOPSIS", the summary, options and exit codes. */
void kw_cli_help(FILE *f, const char *cmd, const char *synopsis, const char *summary,
		 const struct kw_opt_help *helps);
/* Print "kwheel: MSG" for an error; returns KW_EXIT_ERROR. */
int kw_cli_error(const struct kw_error *err);
/* Print "kwheel CMD: MSG" usage error with a hint; returns KW_EXIT_USAGE. */
int kw_cli_usage(const char *cmd, const char *fmt, ...) KW_PRINTF(2, 3);

/*
 * The usage error for what getopt_long returned as c ('?' or ':', opterr
 * off): names the option and says whether it is unknown, lacks its argument
 * or was given one it does not take. Returns KW_EXIT_USAGE.
 */
int kw_cli_bad_option(const char *cmd, int c, char **argv);

/* Options every resolving command takes: --root, --library-path, --no-default-paths. */
/* Long-only (vals above 255) so they never collide with a command's letters. */
enum { KW_OPT_ROOT = 1001, KW_OPT_LIBPATH, KW_OPT_NODEFAULT };
#define KW_CLI_RESOLVE_OPTS \
	{ { "root", required_argument, NULL, KW_OPT_ROOT }, "DIR", \
	  "resolve libraries as if DIR were / (ld.so.conf and defaults too)" }, \
	{ { "library-path", required_argument, NULL, KW_OPT_LIBPATH }, "DIRS", \
	  "colon-separated directories searched like LD_LIBRARY_PATH (default: $LD_LIBRARY_PATH)" }, \
	{ { "no-default-paths", no_argument, NULL, KW_OPT_NODEFAULT }, NULL, \
	  "do not search ld.so.conf or the default directories" }
/* Apply one of the resolve options; returns 1 if c was one of them, 0 if not, <0 on error. */
int kw_cli_resolve_opt(struct kw_ctx *ctx, int c, const char *arg, struct kw_error *err);

/*
 * Run fn(ud, i) for each i < n on a pool of jobs threads (kw_pool_run), the
 * pool set as ctx->pool for the calls' own parallel work (a wheel's
 * members) and unset after. jobs 0 (no -j given): one call after another
 * in input order, each with a pool of every core for its own work, so that
 * a lone wheel gets the whole machine and reports keep their order.
 * Without a pool (out of memory), in order here.
 */
void kw_cli_pool_run(struct kw_ctx *ctx, long jobs, size_t n, void (*fn)(void *ud, size_t i), void *ud);
/*
 * The pool alone, for work done in order here whose pieces run on it: set
 * as ctx->pool with threads threads (0: every core; none without memory);
 * kw_cli_pool_close frees it and unsets ctx->pool.
 */
void kw_cli_pool_open(struct kw_ctx *ctx, long threads);
void kw_cli_pool_close(struct kw_ctx *ctx);
/* -j's argument into *jobs (1 to 256): 0, or the usage exit code of cmd after saying why. */
int kw_cli_jobs(const char *cmd, const char *arg, long *jobs);

/*
 * A progress line for one long piece of work, on stderr (the caller checks
 * that it is a terminal): "kwheel: NAME: PHASE P% (D of T MB)", or the phase
 * alone when it has no measure, redrawn in place only when it changes.
 * kw_cli_progress_draw is a kw_progress_fn (ud: the struct kw_cli_progress).
 */
struct kw_cli_progress {
	const char *name;
	const char *phase;
	int last;               /* last percentage drawn, -1 for a phase without one */
	bool shown;
};
/* name: a path, shown without its directory (borrowed: it must outlive p). */
void kw_cli_progress_init(struct kw_cli_progress *p, const char *name);
void kw_cli_progress_draw(void *ud, const char *phase, uint64_t done, uint64_t total);
/* Erase the line, if one was drawn. */
void kw_cli_progress_clear(struct kw_cli_progress *p);

extern const struct kw_cmd kw_cmd_show;
extern const struct kw_cmd kw_cmd_lddtree;
extern const struct kw_cmd kw_cmd_repair;
extern const struct kw_cmd kw_cmd_patch;
/* kwheel patch with patchelf's command line; main() runs it when invoked as patchelf or kwheel-patchelf. */
extern const struct kw_cmd kw_cmd_patchelf;
extern const struct kw_cmd kw_cmd_km;

#endif
