/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/policy.h"
#include "kwheel/repair.h"
#include "kwheel/report.h"
#include "kwheel/util.h"

#include "cli.h"
#include "inputs.h"

static const char synopsis[] = "[options] WHEEL|DIR|- ...";
static const char summary[] =
	"Vendor the external libraries of wheels into <dist>.libs/, point the extensions at\n"
	"them, retag for the best reachable manylinux/musllinux policy, and write the new\n"
	"wheels to the wheel directory. Options mean what auditwheel's do.";

enum {
	OPT_JSON = 2001, OPT_PLAT, OPT_ONLY_PLAT, OPT_EXCLUDE, OPT_STRIP, OPT_NO_UPDATE_TAGS, OPT_NO_ISA, OPT_ALLOW_PURE,
	OPT_LDPATHS, OPT_PATCHER, OPT_HASH_NAMES,
};

static const struct kw_opt_help helps[] = {
	{ { "wheel-dir", required_argument, NULL, 'w' }, "DIR", "where repaired wheels go (default: wheelhouse)" },
	{ { "plat", required_argument, NULL, OPT_PLAT }, "TAG",
	  "target tag, or auto: the most compatible reachable (default: $AUDITWHEEL_PLAT, else auto)" },
	{ { "only-plat", no_argument, NULL, OPT_ONLY_PLAT }, NULL,
	  "tag with --plat alone, without the more compatible tag reached" },
	{ { "no-update-tags", no_argument, NULL, OPT_NO_UPDATE_TAGS }, NULL,
	  "keep the file name and WHEEL's Tag lines as they are" },
	{ { "lib-sdir", required_argument, NULL, 'L' }, "SUFFIX", "libraries go to <dist>SUFFIX/ (default: .libs)" },
	{ { "exclude", required_argument, NULL, OPT_EXCLUDE }, "GLOB",
	  "leave libraries whose name or resolved path match external, and what only they need (repeatable)" },
	{ { "strip", no_argument, NULL, OPT_STRIP }, NULL, "strip symbols from grafted libraries and ELF members" },
	{ { "zip-compression-level", required_argument, NULL, 'z' }, "N",
	  "deflate level for new members: 0 stores, 1-9 (default: $AUDITWHEEL_ZIP_COMPRESSION_LEVEL, else 6)" },
	{ { "disable-isa-ext-check", no_argument, NULL, OPT_NO_ISA }, NULL,
	  "an ISA level above the architecture's baseline (x86-64-v2...) does not lower the tag" },
	{ { "allow-pure-python-wheel", no_argument, NULL, OPT_ALLOW_PURE }, NULL,
	  "copy a pure wheel to the wheel directory instead of refusing it (exit 1)" },
	{ { "ldpaths", required_argument, NULL, OPT_LDPATHS }, "DIRS",
	  "search these directories instead of ld.so.conf and the defaults ($AUDITWHEEL_LD_LIBRARY_PATH first)" },
	{ { "hash-names", no_argument, NULL, OPT_HASH_NAMES }, NULL,
	  "wasm wheels: graft libraries under unique names (<stem>-<sha256:8>.so) and rewrite NEEDED" },
	{ { "patcher", required_argument, NULL, OPT_PATCHER }, "NAME",
	  "accepted for auditwheel's sake and ignored: kwheel edits ELF files itself" },
	{ { "jobs", required_argument, NULL, 'j' }, "N",
	  "N threads: N wheels at once, and each wheel's grafts, members and compression on all of them (default: one wheel at a time on every core)" },
	{ { "json", no_argument, NULL, OPT_JSON }, NULL, "one JSON object per wheel, one a line" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

struct job {
	struct kw_ctx *ctx;
	struct kw_strv *inputs;
	struct kw_repair_opts opts;
	bool json;
	bool progress;          /* one wheel at a time and stderr is a terminal */
	int worst;
	pthread_mutex_t lock;
};

static void emit(struct job *job, const char *text, bool is_err, int code)
{
	pthread_mutex_lock(&job->lock);
	if (text) {
		fputs(text, is_err ? stderr : stdout);
		fputc('\n', is_err ? stderr : stdout);
		fflush(is_err ? stderr : stdout);
	}
	if (code > job->worst) {
		job->worst = code;
	}
	pthread_mutex_unlock(&job->lock);
}

/* Wheels this big get a progress line on a terminal: below it a repair takes a blink. */
#define PROGRESS_MIN_SIZE (32u << 20)

static void repair_one(struct job *job, const char *path)
{
	struct kw_repair_result *r = NULL;
	struct kw_error err = { 0 }, rerr = { 0 };
	struct kw_repair_opts opts = job->opts;
	struct kw_cli_progress prog;
	struct stat st;
	char *text = NULL;
	int rc;

	kw_cli_progress_init(&prog, path);
	if (job->progress && stat(path, &st) == 0 && st.st_size >= (off_t)PROGRESS_MIN_SIZE) {
		opts.progress = kw_cli_progress_draw;
		opts.progress_ud = &prog;
		kw_cli_progress_draw(&prog, "auditing", 0, 0);
	}
	rc = kw_cli_check_input(path, &err);
	if (!rc) {
		rc = kw_repair_wheel(job->ctx, path, &opts, &r, &err);
	}
	kw_cli_progress_clear(&prog);
	if (rc) {
		/*
		 * Cannot reach the tag or a library is missing: a verdict; a --plat
		 * for another architecture or libc: usage; the rest: the input is bad.
		 */
		int code = err.code == KW_EPOLICY ? KW_EXIT_VERDICT : err.code == KW_EREQUEST ? KW_EXIT_USAGE : KW_EXIT_ERROR;

		if (job->json && kw_report_error_json(path, &err, &text, &rerr) == 0) {
			emit(job, text, false, code);
		} else {
			char *line = kw_report_error_line(&err);

			emit(job, line ? line : "kwheel: out of memory", true, code);
			free(line);
		}
		free(text);
		return;
	}
	if (!job->json) {
		/* Straight to the stream: the wheel is in place, its report must not fail for want of memory. */
		pthread_mutex_lock(&job->lock);
		kw_report_repair_print(stdout, r);
		fflush(stdout);
		pthread_mutex_unlock(&job->lock);
		kw_repair_result_free(r);
		return;
	}
	if (kw_report_repair_json(r, &text, &rerr)) {
		text = NULL;
	}
	if (text) {
		emit(job, text, false, KW_EXIT_OK);
	} else {
		/*
		 * The wheel is in place: the repair succeeded and exit 2 would
		 * disown a wheel that is there. Say where it went, built without
		 * allocating, and note the report fell short.
		 */
		pthread_mutex_lock(&job->lock);
		kw_report_fprintf(stderr, "kwheel: %s -> %s (out of memory: no fuller report)\n", r->input, r->output);
		fflush(stderr);
		pthread_mutex_unlock(&job->lock);
	}
	free(text);
	kw_repair_result_free(r);
}

static void work(void *ud, size_t idx)
{
	struct job *job = ud;

	repair_one(job, job->inputs->v[idx]);
}

/* A suffix that keeps "<dist><suffix>/" a member name every reader accepts: printable ASCII, no backslash. */
static bool plain_suffix(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '\\') {
			return false;
		}
	}
	return true;
}

/* auto, or a manylinux/musllinux policy by name, alias or tag; plain linux is no target. */
static bool plat_known(const struct kw_policy_set *set, const char *plat)
{
	const struct kw_policy *p = strcmp(plat, "auto") == 0 ? NULL : kw_policy_find(set, plat);

	return strcmp(plat, "auto") == 0 || (p && p->family != KW_POLICY_LINUX);
}

/*
 * auditwheel's search options: --ldpaths stands for ld.so.conf and the
 * default directories (LD_LIBRARY_PATH is then not read, as there), and
 * $AUDITWHEEL_LD_LIBRARY_PATH comes before LD_LIBRARY_PATH, or before what
 * --library-path gave.
 */
static int search_paths(struct kw_ctx *ctx, const char *ldpaths, const char *aw_ldpath, bool library_path,
			struct kw_error *err)
{
	struct kw_strv dirs = { 0 };
	char *joined = NULL;
	const char *cur = ctx->ld_library_path;
	size_t i;
	int rc = 0;

	if (ldpaths) {
		ctx->no_default_paths = true;
		if (!library_path) {
			cur = NULL;
		}
		rc = kw_strv_split(&dirs, ldpaths, ':') ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
		for (i = 0; !rc && i < dirs.n; i++) {
			rc = *dirs.v[i] ? kw_ctx_add_lib_path(ctx, dirs.v[i], err) : 0;
		}
	}
	if (!rc && aw_ldpath && *aw_ldpath) {
		joined = cur && *cur ? kw_asprintf("%s:%s", aw_ldpath, cur) : kw_strdup(aw_ldpath);
		rc = joined ? kw_ctx_set_ld_library_path(ctx, joined, err) : kw_error_set(err, KW_ENOMEM, "out of memory");
	} else if (!rc && cur != ctx->ld_library_path) {
		rc = kw_ctx_set_ld_library_path(ctx, NULL, err);
	}
	free(joined);
	kw_strv_release(&dirs);
	return rc;
}

static int cmd_repair(struct kw_ctx *ctx, int argc, char **argv)
{
	struct sigaction ign;
	struct option longopts[32];
	char shortopts[64];
	struct kw_strv inputs = { 0 }, exclude = { 0 };
	struct kw_error err = { 0 };
	struct job job;
	const struct kw_policy_set *set;
	const char *wheel_dir = "wheelhouse", *sde, *level = getenv("AUDITWHEEL_ZIP_COMPRESSION_LEVEL");
	const char *ldpaths = NULL, *aw_ldpath = getenv("AUDITWHEEL_LD_LIBRARY_PATH");
	bool library_path = false;
	long jobs = 0; /* no -j: kw_cli_pool_run's default */
	int c, rc = KW_EXIT_ERROR;

	/*
	 * Over a file-size limit (ulimit -f) the kernel would kill us with
	 * SIGXFSZ, silently and with our temporaries left: ignored, the write
	 * fails with EFBIG, which is reported and cleaned up like any error.
	 */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGXFSZ, &ign, NULL);
	memset(&job, 0, sizeof(job));
	job.opts.mtime = -1;
	job.opts.sbom = kw_report_sbom;
	job.opts.zip_level = -1;
	job.opts.plat = getenv("AUDITWHEEL_PLAT");
	if (job.opts.plat && !*job.opts.plat) {
		job.opts.plat = NULL;
	}
	if (level && !*level) {
		level = NULL;
	}
	kw_cli_opts(helps, longopts, 32, shortopts, sizeof(shortopts));
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int r = kw_cli_resolve_opt(ctx, c, optarg, &err);

		if (r < 0) {
			rc = kw_cli_error(&err);
			goto out;
		}
		if (r > 0) {
			library_path = library_path || c == KW_OPT_LIBPATH;
			continue;
		}
		switch (c) {
		case 'w': wheel_dir = optarg; break;
		case OPT_PLAT: job.opts.plat = optarg; break;
		case OPT_ONLY_PLAT: job.opts.only_plat = true; break;
		case 'L':
			if (!*optarg || strchr(optarg, '/') || strstr(optarg, "..") || !plain_suffix(optarg)) {
				rc = kw_cli_usage("repair", "--lib-sdir takes a plain name suffix, not '%s'", optarg);
				goto out;
			}
			job.opts.lib_sdir = optarg;
			break;
		case OPT_EXCLUDE:
			if (kw_strv_push(&exclude, optarg)) {
				rc = KW_EXIT_ERROR;
				goto out;
			}
			break;
		case OPT_STRIP: job.opts.strip = true; break;
		case 'z': level = optarg; break;
		case OPT_NO_UPDATE_TAGS: job.opts.no_update_tags = true; break;
		case OPT_NO_ISA: job.opts.no_isa_check = true; break;
		case OPT_ALLOW_PURE: job.opts.allow_pure = true; break;
		case OPT_HASH_NAMES: job.opts.hash_names = true; break;
		case OPT_LDPATHS: ldpaths = optarg; break;
		case OPT_PATCHER:
			fprintf(stderr, "kwheel: --patcher %s ignored: kwheel edits ELF files itself\n", optarg);
			break;
		case 'j':
			if ((rc = kw_cli_jobs("repair", optarg, &jobs))) {
				goto out;
			}
			break;
		case OPT_JSON: job.json = true; break;
		case 'h':
			kw_cli_help(stdout, "repair", synopsis, summary, helps);
			rc = KW_EXIT_OK;
			goto out;
		default:
			rc = kw_cli_bad_option("repair", c, argv);
			goto out;
		}
	}
	if (optind >= argc) {
		rc = kw_cli_usage("repair", "no wheel given");
		goto out;
	}
	if (level) {
		char *end;

		errno = 0;
		job.opts.zip_level = (int)strtol(level, &end, 10);
		if (errno || *end || job.opts.zip_level < 0 || job.opts.zip_level > 9) {
			rc = kw_cli_usage("repair", "--zip-compression-level takes 0 to 9, not '%s'", level);
			goto out;
		}
	}
	rc = search_paths(ctx, ldpaths, aw_ldpath, library_path, &err);
	if (rc) {
		rc = kw_cli_error(&err);
		goto out;
	}
	rc = KW_EXIT_ERROR;
	/* Reproducible output: new members carry SOURCE_DATE_EPOCH when it is set. */
	sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && *sde) {
		char *end;

		errno = 0;
		job.opts.mtime = strtoll(sde, &end, 10);
		if (errno || *end || job.opts.mtime < 0) {
			rc = kw_cli_usage("repair", "SOURCE_DATE_EPOCH is not a number of seconds: '%s'", sde);
			goto out;
		}
	}
	if (mkdir(wheel_dir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "kwheel: '%s': cannot create the wheel directory: %s\n", wheel_dir, strerror(errno));
		goto out;
	}
	job.opts.out_dir = wheel_dir;
	job.opts.exclude = (const char *const *)exclude.v;
	job.opts.n_exclude = exclude.n;
	if (kw_cli_collect_wheels(argv + optind, (size_t)(argc - optind), &inputs, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	if (inputs.n == 0) {
		rc = kw_cli_usage("repair", "no wheel found in the arguments");
		goto out;
	}
	/* Loaded once here, before any worker starts: workers then only read the context. */
	if (kw_ctx_policy(ctx, &set, &err)) {
		rc = kw_cli_error(&err);
		goto out;
	}
	if (job.opts.plat && !plat_known(set, job.opts.plat)) {
		rc = kw_cli_usage("repair", "--plat: unknown platform '%s' (auto, or a manylinux/musllinux tag or alias)",
				  job.opts.plat);
		goto out;
	}
	job.ctx = ctx;
	job.inputs = &inputs;
	pthread_mutex_init(&job.lock, NULL);
	/* Several wheels at once would interleave their lines; JSON readers want no noise. */
	job.progress = jobs <= 1 && !job.json && isatty(STDERR_FILENO);
	kw_cli_pool_run(ctx, jobs, inputs.n, work, &job);
	pthread_mutex_destroy(&job.lock);
	rc = job.worst;
out:
	kw_strv_release(&inputs);
	kw_strv_release(&exclude);
	return rc;
}

const struct kw_cmd kw_cmd_repair = { "repair", cmd_repair,
				      "vendor external libraries, relink and retag wheels (like auditwheel repair)" };
