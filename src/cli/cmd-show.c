/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kwheel/audit.h"
#include "kwheel/policy.h"
#include "kwheel/report.h"
#include "kwheel/util.h"

#include "cli.h"
#include "inputs.h"

static const char synopsis[] = "[options] WHEEL|DIR|- ...";
static const char summary[] =
	"Audit wheels: find every ELF member, resolve its libraries as the loader would,\n"
	"and tell which manylinux/musllinux tag the wheel satisfies and why not a better one.\n"
	"DIR is searched for *.whl; '-' reads wheel paths from standard input, one a line.";

enum { OPT_JSON = 2001, OPT_ORDERED, OPT_NO_ISA };

static const struct kw_opt_help helps[] = {
	{ { "json", no_argument, NULL, OPT_JSON }, NULL, "one JSON object per wheel, one a line (JSONL)" },
	{ { "jobs", required_argument, NULL, 'j' }, "N", "audit N wheels at once (default 1)" },
	{ { "ordered", no_argument, NULL, OPT_ORDERED }, NULL,
	  "with -j: write the reports in input order (default: as each wheel finishes)" },
	{ { "verbose", no_argument, NULL, 'v' }, NULL, "the full text report: tags, every member with its dependency tree, every library, "
	  "each policy with every reason, KM warnings" },
	{ { "disable-isa-ext-check", no_argument, NULL, OPT_NO_ISA }, NULL,
	  "do not hold an x86-64 ISA level above the baseline (x86-64-v2/v3/v4) against the wheel" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

/* A finished report waiting for the ones before it, so -j N prints in input order. */
struct slot {
	char *text;
	bool is_err;
	bool done;
};

struct job {
	struct kw_ctx *ctx;
	struct kw_strv *inputs;
	struct slot *slots;
	size_t printed;         /* inputs whose report has been written */
	bool json;
	bool verbose;
	bool ordered;           /* hold reports back to write them in input order */
	unsigned audit_flags;   /* KW_AUDIT_* */
	int worst;              /* highest exit code so far */
	pthread_mutex_t lock;
};

static void emit(struct job *job, size_t idx, const char *text, bool is_err, int code)
{
	pthread_mutex_lock(&job->lock);
	if (code > job->worst) {
		job->worst = code;
	}
	if (!job->ordered) {
		/* Streamed as each wheel finishes: a pipeline sees results without waiting for a slow one. */
		if (text) {
			fputs(text, is_err ? stderr : stdout);
			fputc('\n', is_err ? stderr : stdout);
			fflush(is_err ? stderr : stdout);
		}
		pthread_mutex_unlock(&job->lock);
		return;
	}
	/* Without memory to hold it, a report is written at once, out of order. */
	job->slots[idx].text = text ? kw_strdup(text) : NULL;
	if (text && !job->slots[idx].text) {
		fputs(text, is_err ? stderr : stdout);
		fputc('\n', is_err ? stderr : stdout);
	}
	job->slots[idx].is_err = is_err;
	job->slots[idx].done = true;
	while (job->printed < job->inputs->n && job->slots[job->printed].done) {
		struct slot *sl = &job->slots[job->printed++];

		if (sl->text) {
			fputs(sl->text, sl->is_err ? stderr : stdout);
			fputc('\n', sl->is_err ? stderr : stdout);
			fflush(sl->is_err ? stderr : stdout);
			free(sl->text);
			sl->text = NULL;
		}
	}
	pthread_mutex_unlock(&job->lock);
}

static void audit_one(struct job *job, size_t idx, const char *path)
{
	struct kw_audit *a = NULL;
	struct kw_error err = { 0 };
	struct kw_error rerr = { 0 };
	char *text = NULL;
	int code;

	/* A missing path is named whole ("dir/" has no file name to judge), before its name is read. */
	if (kw_cli_check_input(path, &err) || kw_audit_wheel_flags(job->ctx, path, job->audit_flags, &a, &err)) {
		/* One bad wheel gets its own line and does not stop the others. */
		if (job->json && kw_report_error_json(path, &err, &text, &rerr) == 0) {
			emit(job, idx, text, false, KW_EXIT_ERROR);
		} else {
			char *line = kw_report_error_line(&err);

			emit(job, idx, line ? line : "kwheel: out of memory", true, KW_EXIT_ERROR);
			free(line);
		}
		free(text);
		return;
	}
	code = (a->tags_ok && a->tag_mismatches.n == 0 && a->record.n_problems == 0) ? KW_EXIT_OK : KW_EXIT_VERDICT;
	for (size_t i = 0; i < a->n_members; i++) {
		if (a->members[i].error) {
			code = KW_EXIT_VERDICT; /* an ELF member the loader could not load */
		}
	}
	for (size_t i = 0; i < a->n_libs; i++) {
		/* A library the loader would not find: the wheel would not import here (libpython is the interpreter's). */
		if (!a->libs[i].path && !kw_audit_is_libpython(a->libs[i].soname)) {
			code = KW_EXIT_VERDICT;
		}
	}
	if (job->json ? kw_report_show_json(a, &text, &rerr) : kw_report_show_text(a, job->verbose, &text, &rerr)) {
		char *line;

		kw_error_prefix(&rerr, "'%s'", path);
		line = kw_report_error_line(&rerr);
		emit(job, idx, line ? line : "kwheel: out of memory", true, KW_EXIT_ERROR);
		free(line);
	} else {
		emit(job, idx, text, false, code);
	}
	free(text);
	kw_audit_free(a);
}

static void work(void *ud, size_t idx)
{
	struct job *job = ud;

	audit_one(job, idx, job->inputs->v[idx]);
}

static int cmd_show(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[32];
	char shortopts[64];
	struct kw_strv inputs = { 0 };
	struct kw_error err = { 0 };
	const struct kw_policy_set *set;
	struct job job;
	long jobs = 1;
	int c, rc = KW_EXIT_ERROR;

	memset(&job, 0, sizeof(job));
	kw_cli_opts(helps, longopts, 32, shortopts, sizeof(shortopts));
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int r = kw_cli_resolve_opt(ctx, c, optarg, &err);

		if (r < 0) {
			return kw_cli_error(&err);
		}
		if (r > 0) {
			continue;
		}
		switch (c) {
		case OPT_JSON:
			job.json = true;
			break;
		case OPT_ORDERED:
			job.ordered = true;
			break;
		case OPT_NO_ISA:
			job.audit_flags |= KW_AUDIT_NO_ISA_CHECK;
			break;
		case 'j': {
			char *end;

			errno = 0;
			jobs = strtol(optarg, &end, 10);
			if (errno || *end || jobs < 1 || jobs > 256) {
				return kw_cli_usage("show", "--jobs takes a number from 1 to 256, not '%s'", optarg);
			}
			break;
		}
		case 'v':
			job.verbose = true;
			break;
		case 'h':
			kw_cli_help(stdout, "show", synopsis, summary, helps);
			return KW_EXIT_OK;
		default:
			return kw_cli_bad_option("show", c, argv);
		}
	}
	if (optind >= argc) {
		return kw_cli_usage("show", "no wheel given");
	}
	if (kw_cli_collect_wheels(argv + optind, (size_t)(argc - optind), &inputs, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	if (inputs.n == 0) {
		rc = kw_cli_usage("show", "no wheel found in the arguments");
		goto out;
	}
	/* Loaded once here: workers then only read the context. */
	if (kw_ctx_policy(ctx, &set, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	job.ctx = ctx;
	job.inputs = &inputs;
	job.slots = kw_calloc(inputs.n, sizeof(*job.slots));
	if (!job.slots) {
		kw_error_set(&err, KW_ENOMEM, "out of memory");
		rc = kw_cli_error(&err);
		goto out;
	}
	pthread_mutex_init(&job.lock, NULL);
	kw_cli_pool_run(jobs, inputs.n, work, &job);
	pthread_mutex_destroy(&job.lock);
	rc = job.worst;
out:
	free(job.slots);
	kw_strv_release(&inputs);
	return rc;
}

const struct kw_cmd kw_cmd_show = { "show", cmd_show,
				    "audit wheels: external libraries, symbol versions, best tag" };
