/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kw-config.h"
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

enum { OPT_JSON = 2001, OPT_ORDERED, OPT_NO_ISA, OPT_SHARD, OPT_SKIP_DONE };

static const struct kw_opt_help helps[] = {
	{ { "json", no_argument, NULL, OPT_JSON }, NULL, "one JSON object per wheel, one a line (JSONL)" },
	{ { "jobs", required_argument, NULL, 'j' }, "N",
	  "N threads: N wheels at once, and each wheel's members read on all of them (default: one wheel at a time on every core)" },
	{ { "ordered", no_argument, NULL, OPT_ORDERED }, NULL,
	  "with -j: write the reports in input order (default: as each wheel finishes)" },
	{ { "verbose", no_argument, NULL, 'v' }, NULL, "the full text report: tags, every member with its dependency tree, every library, "
	  "each policy with every reason, KM warnings" },
	{ { "shard", required_argument, NULL, OPT_SHARD }, "K/N",
	  "audit only the wheels of shard K of N (0 <= K < N), chosen by a hash of the file name" },
	{ { "skip-done", required_argument, NULL, OPT_SKIP_DONE }, "FILE",
	  "skip wheels whose sha256 a --json line of FILE reports for this kwheel version (resume; missing FILE: none)" },
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
	struct kw_strv done;    /* --skip-done: sha256 of wheels already reported by this version, sorted */
	int worst;              /* highest exit code so far */
	bool progress;          /* stderr is a terminal: a progress line, redrawn as wheels finish */
	uint64_t *sizes;        /* with progress: each input's size in bytes (0 if it cannot be read) */
	uint64_t total, done_bytes;
	size_t n_done;
	pthread_mutex_t lock;
};

/* The progress line, in work done: wheels and their bytes (an audit reads each wheel once). */
static void draw_progress(const struct job *job)
{
	int pct = job->total ? (int)(job->done_bytes * 100 / job->total) : (int)(job->n_done * 100 / job->inputs->n);

	fprintf(stderr, "\r\033[Kkwheel show: %zu of %zu wheels, %llu of %llu MB (%d%%)", job->n_done, job->inputs->n,
		(unsigned long long)(job->done_bytes >> 20), (unsigned long long)(job->total >> 20), pct);
	fflush(stderr);
}

static void emit_locked(struct job *job, size_t idx, const char *text, bool is_err, int code);

static void emit(struct job *job, size_t idx, const char *text, bool is_err, int code)
{
	pthread_mutex_lock(&job->lock);
	if (job->progress) {
		/* The line goes away while a report is written (stdout may be the same terminal), then comes back. */
		fputs("\r\033[K", stderr);
		job->n_done++;
		job->done_bytes += job->sizes[idx];
	}
	emit_locked(job, idx, text, is_err, code);
	if (job->progress && job->n_done < job->inputs->n) {
		draw_progress(job);
	}
	pthread_mutex_unlock(&job->lock);
}

static void emit_locked(struct job *job, size_t idx, const char *text, bool is_err, int code)
{
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
}

/* The hex sha256 of the file at path into hex (65 bytes); nonzero if it cannot be read whole. */
static int file_sha256(const char *path, char *hex)
{
	struct kw_error err = { 0 };
	struct kw_sha256 h;
	unsigned char *buf = NULL, digest[32];
	ssize_t n = -1;
	int fd = -1;

	if (kw_open_regular(path, &fd, NULL, &err) || !(buf = kw_malloc(1u << 20))) {
		goto out;
	}
	kw_sha256_init(&h);
	while ((n = read(fd, buf, 1u << 20)) > 0) {
		kw_sha256_update(&h, buf, (size_t)n);
	}
	if (n == 0) {
		kw_sha256_final(&h, digest);
		kw_hex(digest, sizeof(digest), hex);
	}
out:
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return n == 0 ? 0 : -1;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* A wheel's audit and the key of its line (with --json): the two items of one batch. */
struct both {
	struct job *job;
	const char *path;
	char *hex;
	int hashed;             /* file_sha256's result into hex; -1: not yet */
	int rc;
	struct kw_audit *a;
	struct kw_error err;
};

static void key_and_audit(void *ud, size_t i)
{
	struct both *b = ud;

	if (i == 1) {
		b->hashed = file_sha256(b->path, b->hex);
		return;
	}
	/* A missing path is named whole ("dir/" has no file name to judge), before its name is read. */
	b->rc = kw_cli_check_input(b->path, &b->err);
	if (!b->rc) {
		b->rc = kw_audit_wheel_flags(b->job->ctx, b->path, b->job->audit_flags, &b->a, &b->err);
	}
}

static void audit_one(struct job *job, size_t idx, const char *path)
{
	struct kw_audit *a = NULL;
	struct kw_error err = { 0 };
	struct kw_error rerr = { 0 };
	char *text = NULL, hex[65];
	struct kw_report_key key = { NULL, KW_VERSION };
	struct kw_km_verdict km = { 0 };
	const struct kw_km_verdict *kv;
	const char *hp = hex;
	struct both b = { job, path, hex, -1, 0, NULL, { 0 } };
	int code;

	/* The key of the line: the wheel's bytes, whatever its path; what is already reported is skipped. */
	if (job->done.n) {
		b.hashed = file_sha256(path, hex);
		if (b.hashed == 0 && bsearch(&hp, job->done.v, job->done.n, sizeof(*job->done.v), cmp_str)) {
			emit(job, idx, NULL, false, KW_EXIT_OK);
			return;
		}
	}
	/* The key and the audit are independent reads of the wheel: both at once on the pool. */
	kw_pool_run(job->ctx->pool, job->json && b.hashed < 0 ? 2 : 1, key_and_audit, &b);
	key.sha256 = b.hashed == 0 ? hex : NULL;
	a = b.a;
	err = b.err;
	if (b.rc) {
		/* One bad wheel gets its own line and does not stop the others. */
		if (job->json && kw_report_error_json_keyed(path, &err, &key, &text, &rerr) == 0) {
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
	/*
	 * The verdict is the CLI's to make: its plugin scans read system
	 * libraries on the pool. A WebAssembly wheel has none.
	 */
	kv = a->wasm ? NULL : &km;
	if ((kv && kw_km_judge(job->ctx->pool, a, &km, &rerr)) ||
	    (job->json ? kw_report_show_json_keyed(a, kv, &key, &text, &rerr)
		       : kw_report_show_text(a, kv, job->verbose, &text, &rerr))) {
		char *line;

		kw_error_prefix(&rerr, "'%s'", path);
		line = kw_report_error_line(&rerr);
		emit(job, idx, line ? line : "kwheel: out of memory", true, KW_EXIT_ERROR);
		free(line);
	} else {
		emit(job, idx, text, false, code);
	}
	free(text);
	kw_km_verdict_release(&km);
	kw_audit_free(a);
}

static void work(void *ud, size_t idx)
{
	struct job *job = ud;

	audit_one(job, idx, job->inputs->v[idx]);
}

/*
 * The shard of a wheel: FNV-1a of its file name (not the path, so a wheel
 * lands in one shard wherever it is listed from), modulo the count.
 */
static unsigned long shard_of(const char *path, unsigned long n)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	return (unsigned long)(kw_hash_str(base) % n);
}

/* "K/N", 0 <= K < N <= 1000000. */
static bool parse_shard(const char *s, unsigned long *k, unsigned long *n)
{
	char *end;

	if (*s < '0' || *s > '9') {
		return false;
	}
	errno = 0;
	*k = strtoul(s, &end, 10);
	if (errno || *end != '/' || end[1] < '0' || end[1] > '9') {
		return false;
	}
	*n = strtoul(end + 1, &end, 10);
	return !errno && !*end && *n >= 1 && *n <= 1000000 && *k < *n;
}

/*
 * The sha256 of every wheel FILE's lines report for this kwheel version:
 * lines another version wrote are audited again, and a line a killed run
 * cut short counts for nothing. A missing FILE holds none.
 */
static int load_done(const char *file, struct kw_strv *done, struct kw_error *err)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!f) {
		return errno == ENOENT ? 0 : kw_error_set(err, KW_EIO, "cannot read '%s': %s", file, strerror(errno));
	}
	while (!rc && getline(&line, &cap, f) > 0) {
		char *sha = NULL, *ver = NULL;
		struct kw_error kerr = { 0 };
		int r = kw_report_show_json_read_key(line, &sha, &ver, &kerr);

		if (r == KW_ENOMEM || (r == 0 && strcmp(ver, KW_VERSION) == 0 && kw_strv_push(done, sha))) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		free(sha);
		free(ver);
	}
	if (!rc && ferror(f)) {
		rc = kw_error_set(err, KW_EIO, "cannot read '%s': %s", file, strerror(errno));
	}
	free(line);
	fclose(f);
	kw_strv_sort(done);
	return rc;
}

static int cmd_show(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[32];
	char shortopts[64];
	struct kw_strv inputs = { 0 };
	struct kw_error err = { 0 };
	const struct kw_policy_set *set;
	struct job job;
	const char *skip_done = NULL;
	unsigned long shard_k = 0, shard_n = 0;
	long jobs = 0; /* no -j: kw_cli_pool_run's default */
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
		case OPT_SHARD:
			if (!parse_shard(optarg, &shard_k, &shard_n)) {
				return kw_cli_usage("show", "--shard takes K/N with 0 <= K < N, not '%s'", optarg);
			}
			break;
		case OPT_SKIP_DONE:
			skip_done = optarg;
			break;
		case 'j': {
			int u = kw_cli_jobs("show", optarg, &jobs);

			if (u) {
				return u;
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
	if (shard_n) {
		size_t i, kept = 0;

		/* Only this shard's wheels stay, in their order: the rest is another worker's. */
		for (i = 0; i < inputs.n; i++) {
			if (shard_of(inputs.v[i], shard_n) == shard_k) {
				inputs.v[kept++] = inputs.v[i];
			} else {
				free(inputs.v[i]);
			}
		}
		inputs.n = kept;
		inputs.v[kept] = NULL;
		if (kept == 0) {
			rc = KW_EXIT_OK;
			goto out;
		}
	}
	if (skip_done && load_done(skip_done, &job.done, &err)) {
		rc = kw_cli_error(&err);
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
	/* Progress on a terminal only, and only for work that takes a while to watch: several wheels. */
	job.progress = inputs.n > 1 && isatty(STDERR_FILENO);
	if (job.progress) {
		job.sizes = kw_calloc(inputs.n, sizeof(*job.sizes));
		job.progress = job.sizes != NULL;
		for (size_t i = 0; job.sizes && i < inputs.n; i++) {
			struct stat st;

			job.sizes[i] = stat(inputs.v[i], &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
			job.total += job.sizes[i];
		}
	}
	pthread_mutex_init(&job.lock, NULL);
	if (job.progress) {
		draw_progress(&job);
	}
	kw_cli_pool_run(ctx, jobs, inputs.n, work, &job);
	if (job.progress) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	pthread_mutex_destroy(&job.lock);
	rc = job.worst;
out:
	free(job.slots);
	free(job.sizes);
	kw_strv_release(&job.done);
	kw_strv_release(&inputs);
	return rc;
}

const struct kw_cmd kw_cmd_show = { "show", cmd_show,
				    "audit wheels: external libraries, symbol versions, best tag" };
