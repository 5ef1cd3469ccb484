/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/kwheel.h"
#include "kwheel/report.h"

#include "cli.h"

void kw_cli_opts(const struct kw_opt_help *helps, struct option *longopts, size_t n,
		 char *shortopts, size_t shortn)
{
	size_t i, k = 0, s = 0;

	/*
	 * ':' first: a missing argument is told apart from an unknown option
	 * (kw_cli_bad_option). No '+': options may follow the wheels, as in
	 * auditwheel's "repair dist/x.whl -w wheelhouse".
	 */
	if (shortn > 0) {
		shortopts[s++] = ':';
	}
	for (i = 0; helps[i].opt.name && k + 1 < n; i++) {
		longopts[k++] = helps[i].opt;
		/* Short letters are the printable vals; long-only options use vals >= 256. */
		if (helps[i].opt.val > 0 && helps[i].opt.val < 128 && s + 3 < shortn) {
			shortopts[s++] = (char)helps[i].opt.val;
			if (helps[i].opt.has_arg == required_argument) {
				shortopts[s++] = ':';
			}
		}
	}
	memset(&longopts[k], 0, sizeof(longopts[k]));
	if (shortn > 0) {
		shortopts[s] = '\0';
	}
}

void kw_cli_help(FILE *f, const char *cmd, const char *synopsis, const char *summary,
		 const struct kw_opt_help *helps)
{
	size_t i;

	fprintf(f, "usage: kwheel %s %s\n\n%s\n\noptions:\n", cmd, synopsis, summary);
	for (i = 0; helps[i].opt.name; i++) {
		char left[64];
		int v = helps[i].opt.val;

		if (v > 0 && v < 128) {
			snprintf(left, sizeof(left), "-%c, --%s%s%s", v, helps[i].opt.name,
				 helps[i].arg ? " " : "", helps[i].arg ? helps[i].arg : "");
		} else {
			snprintf(left, sizeof(left), "    --%s%s%s", helps[i].opt.name,
				 helps[i].arg ? " " : "", helps[i].arg ? helps[i].arg : "");
		}
		fprintf(f, "  %-28s %s\n", left, helps[i].help);
	}
	fprintf(f, "\nexit codes: 0 ok, 1 negative verdict, 2 error, 3 usage\n");
}

int kw_cli_error(const struct kw_error *err)
{
	/* Messages quote names from the input: escaped, so none can add a line or reach the terminal raw. */
	char *line = kw_report_error_line(err);

	fprintf(stderr, "%s\n", line ? line : "kwheel: out of memory");
	free(line);
	return KW_EXIT_ERROR;
}

int kw_cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kwheel %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'kwheel %s --help'.\n", cmd);
	return KW_EXIT_USAGE;
}

int kw_cli_bad_option(const char *cmd, int c, char **argv)
{
	/* getopt has stepped past the word at fault: a long option is named by it, up to any "=value". */
	const char *word = optind > 0 ? argv[optind - 1] : NULL;
	int len;

	if (word && strncmp(word, "--", 2) == 0) {
		len = (int)strcspn(word, "=");
		if (c == ':') {
			return kw_cli_usage(cmd, "option '%.*s' needs an argument", len, word);
		}
		if (word[len] == '=') {
			return kw_cli_usage(cmd, "option '%.*s' takes no argument", len, word);
		}
		return kw_cli_usage(cmd, "unknown option '%.*s'", len, word);
	}
	if (optopt > 0 && optopt < 128) {
		if (c == ':') {
			return kw_cli_usage(cmd, "option '-%c' needs an argument", optopt);
		}
		return kw_cli_usage(cmd, "unknown option '-%c'", optopt);
	}
	return kw_cli_usage(cmd, "unknown option");
}

int kw_cli_resolve_opt(struct kw_ctx *ctx, int c, const char *arg, struct kw_error *err)
{
	switch (c) {
	case KW_OPT_ROOT:
		return kw_ctx_set_root(ctx, arg, err) ? -1 : 1;
	case KW_OPT_LIBPATH:
		return kw_ctx_set_ld_library_path(ctx, arg, err) ? -1 : 1;
	case KW_OPT_NODEFAULT:
		ctx->no_default_paths = true;
		return 1;
	}
	return 0;
}

int kw_cli_jobs(const char *cmd, const char *arg, long *jobs)
{
	char *end;

	errno = 0;
	*jobs = strtol(arg, &end, 10);
	if (errno || end == arg || *end || *jobs < 1 || *jobs > 256) {
		return kw_cli_usage(cmd, "--jobs takes a number from 1 to 256, not '%s'", arg);
	}
	return 0;
}

void kw_cli_pool_open(struct kw_ctx *ctx, long threads)
{
	struct kw_pool *pool = NULL;
	struct kw_error err = { 0 };

	if (threads == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);

		threads = cores < 1 ? 1 : cores > 256 ? 256 : cores;
	}
	if (threads > 1 && kw_pool_new((unsigned)threads, &pool, &err) == 0) {
		ctx->pool = pool;
	}
}

void kw_cli_pool_close(struct kw_ctx *ctx)
{
	kw_pool_free(ctx->pool);
	ctx->pool = NULL;
}

void kw_cli_pool_run(struct kw_ctx *ctx, long jobs, size_t n, void (*fn)(void *ud, size_t i), void *ud)
{
	size_t i;

	kw_cli_pool_open(ctx, jobs);
	if (jobs == 0) {
		for (i = 0; i < n; i++) {
			fn(ud, i);
		}
	} else {
		kw_pool_run(ctx->pool, n, fn, ud);
	}
	kw_cli_pool_close(ctx);
}

void kw_cli_progress_init(struct kw_cli_progress *p, const char *name)
{
	p->name = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	p->phase = NULL;
	p->last = -1;
	p->shown = false;
}

void kw_cli_progress_draw(void *ud, const char *phase, uint64_t done, uint64_t total)
{
	struct kw_cli_progress *p = ud;
	int pct = total ? (int)(done * 100 / total) : -1;

	if (p->shown && phase == p->phase && pct == p->last) {
		return;
	}
	p->phase = phase;
	p->last = pct;
	p->shown = true;
	if (pct >= 0) {
		fprintf(stderr, "\r\033[Kkwheel: %s: %s %d%% (%llu of %llu MB)", p->name, phase, pct,
			(unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
	} else {
		fprintf(stderr, "\r\033[Kkwheel: %s: %s", p->name, phase);
	}
	fflush(stderr);
}

void kw_cli_progress_clear(struct kw_cli_progress *p)
{
	if (p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->shown = false;
	}
}
