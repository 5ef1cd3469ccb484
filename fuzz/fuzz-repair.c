/* SPDX-License-Identifier: MIT */
/*
 * fuzz-repair: the whole input is a wheel, written to
 * fz-1.0-py3-none-any.whl in a fresh sandbox directory and repaired end to
 * end by kw_repair_wheel into the sandbox's out/. The sandbox also holds a
 * victim file and two planted symlinks (one to the victim, one dangling out
 * of the sandbox). Libraries resolve against a fixture root only
 * ($FUZZ_REPAIR_ROOT, else an empty directory) with no default paths, so no
 * host library is ever grafted and a run is deterministic.
 *
 * Afterwards, abort() unless: everything in the sandbox outside out/ is as
 * it was (names, types, modes, bytes, link targets); out/ holds nothing
 * after a failure and exactly one *.whl after a success, whose every member
 * name is a plain relative path and which kw_wheel_open accepts again; a
 * failure is a kw_status with a non-empty one-line message.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "kwheel/kwheel.h"
#include "kwheel/repair.h"
#include "kwheel/report.h"
#include "kwheel/wheel.h"

#include "fuzz-common.h"

#define WHEEL_NAME "fz-1.0-py3-none-any.whl"
#define VICTIM_BYTES "victim: must never change\n"

/* Harness state, not library state: one context and one base directory per process. */
static struct kw_ctx *ctx;
static char base[256];
static char sandbox[300];

struct snap {
	char *p;
	size_t len, cap;
};

static void snap_add(struct snap *s, const void *p, size_t len)
{
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;

		while (cap < s->len + len + 1) {
			cap *= 2;
		}
		s->p = realloc(s->p, cap);
		if (!s->p) {
			abort();
		}
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, len);
	s->len += len;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every entry under dir (skip: a path left out, with its contents) in a
 * fixed order: name, type, mode, size, link target or file bytes.
 */
static void snapshot(struct snap *s, const char *dir, const char *skip)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;

	if (!d) {
		abort();
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names) {
				abort();
			}
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			abort();
		}
		n++;
	}
	closedir(d);
	if (n) {
		qsort(names, n, sizeof(*names), cmp_str);
	}
	for (i = 0; i < n; i++) {
		char path[4096], line[256];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		free(names[i]);
		if (skip && !strcmp(path, skip)) {
			snap_add(s, "skip\n", 5);
			continue;
		}
		if (lstat(path, &st) != 0) {
			abort();
		}
		snap_add(s, path, strlen(path) + 1);
		snprintf(line, sizeof(line), "%o %lld\n", (unsigned)st.st_mode, (long long)st.st_size);
		snap_add(s, line, strlen(line));
		if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t k = readlink(path, t, sizeof(t));

			if (k < 0) {
				abort();
			}
			snap_add(s, t, (size_t)k);
		} else if (S_ISREG(st.st_mode)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			char buf[65536];
			ssize_t k;

			if (fd < 0) {
				abort();
			}
			while ((k = read(fd, buf, sizeof(buf))) > 0) {
				snap_add(s, buf, (size_t)k);
			}
			close(fd);
		} else if (S_ISDIR(st.st_mode)) {
			snapshot(s, path, skip);
		}
	}
	free(names);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP) {
		return rmdir(path);
	}
	return unlink(path);
}

static void rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		(void)chmod(path, 0700);
		(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static void cleanup(void)
{
	if (sandbox[0]) {
		rm_tree(sandbox);
	}
	if (base[0]) {
		char root[300];

		snprintf(root, sizeof(root), "%s/root", base);
		rmdir(root);
		rmdir(base);
	}
	kw_ctx_free(ctx);
	ctx = NULL;
}

static void setup(void)
{
	struct kw_error err;
	const char *root = getenv("FUZZ_REPAIR_ROOT");
	const char *tmp = getenv("TMPDIR");
	static const char *const lib_dirs[] = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"};
	char empty[300];
	struct stat st;
	size_t i;

	if (kw_ctx_new(&ctx, &err) < 0) {
		fprintf(stderr, "fuzz-repair: %s\n", err.msg);
		abort();
	}
	/* Small limits keep each run fast; a bomb is still refused, only sooner. */
	ctx->limits.max_member_size = UINT64_C(16) << 20;
	ctx->limits.max_total_size = UINT64_C(64) << 20;
	ctx->limits.max_members = 10000;
	ctx->no_default_paths = true;
	/* tmpfs when there is one: the sandbox is built and removed for every input. */
	if (access("/dev/shm", W_OK) == 0) {
		tmp = "/dev/shm";
	} else if (!tmp || !*tmp) {
		tmp = "/tmp";
	}
	snprintf(base, sizeof(base), "%s/kwfuzz-repair.%ld", tmp, (long)getpid());
	/* A leftover of a crashed run with the same pid is reused. */
	(void)mkdir(base, 0700);
	snprintf(sandbox, sizeof(sandbox), "%s/s", base);
	rm_tree(sandbox);
	snprintf(empty, sizeof(empty), "%s/root", base);
	(void)mkdir(empty, 0700);
	if (!root || !*root || stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		root = empty;
	}
	if (kw_ctx_set_root(ctx, root, &err) < 0) {
		fprintf(stderr, "fuzz-repair: %s\n", err.msg);
		abort();
	}
	/* The root's usual directories, looked up under the root like every path. */
	for (i = 0; i < sizeof(lib_dirs) / sizeof(lib_dirs[0]); i++) {
		if (kw_ctx_add_lib_path(ctx, lib_dirs[i], &err) < 0) {
			fprintf(stderr, "fuzz-repair: %s\n", err.msg);
			abort();
		}
	}
	atexit(cleanup);
}

static void write_file(const char *path, const void *data, size_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	const uint8_t *p = data;
	size_t off = 0;

	if (fd < 0) {
		abort();
	}
	while (off < size) {
		ssize_t n = write(fd, p + off, size - off);

		if (n <= 0) {
			abort();
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) != 0 || close(fd) != 0) {
		abort();
	}
}

static void make_sandbox(const uint8_t *data, size_t size, char *in_path, size_t in_len, char *out_dir,
			 size_t out_len)
{
	char p[512];

	if (mkdir(sandbox, 0700) != 0) {
		abort();
	}
	snprintf(p, sizeof(p), "%s/in", sandbox);
	if (mkdir(p, 0700) != 0) {
		abort();
	}
	snprintf(in_path, in_len, "%s/in/%s", sandbox, WHEEL_NAME);
	write_file(in_path, data, size, 0644);
	snprintf(p, sizeof(p), "%s/victim", sandbox);
	write_file(p, VICTIM_BYTES, strlen(VICTIM_BYTES), 0640);
	/* Names a hostile wheel or a sloppy writer might reach for. */
	snprintf(p, sizeof(p), "%s/victim.so", sandbox);
	if (symlink("victim", p) != 0) {
		abort();
	}
	snprintf(p, sizeof(p), "%s/in/fz.libs", sandbox);
	if (symlink("../../escape", p) != 0) {
		abort();
	}
	snprintf(out_dir, out_len, "%s/out", sandbox);
	if (mkdir(out_dir, 0700) != 0) {
		abort();
	}
}

static int has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) {
			return 1;
		}
	}
	return 0;
}

static int plain_relative(const char *name)
{
	const char *c = name;

	if (!*name || name[0] == '/' || has_control(name) || strchr(name, '\\')) {
		return 0;
	}
	while (*c) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);

		if (len == 2 && c[0] == '.' && c[1] == '.') {
			return 0;
		}
		if (!e) {
			break;
		}
		c = e + 1;
	}
	return 1;
}

/* The one output wheel: every name plain, and kw_wheel_open takes it back. */
static void check_output(const char *path)
{
	struct kw_error err;
	struct kw_wheel *w = NULL;
	zip_t *z;
	zip_int64_t n, i;
	int zerr = 0;

	z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
	if (!z) {
		fprintf(stderr, "fuzz-repair: output %s is not a zip (%d)\n", path, zerr);
		abort();
	}
	n = zip_get_num_entries(z, 0);
	for (i = 0; i < n; i++) {
		const char *name = zip_get_name(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);

		if (!name || !plain_relative(name)) {
			fprintf(stderr, "fuzz-repair: output member %lld has a bad name\n", (long long)i);
			abort();
		}
	}
	zip_discard(z);
	if (kw_wheel_open(ctx, path, &w, &err) < 0) {
		fprintf(stderr, "fuzz-repair: output refused: %s\n", err.msg);
		abort();
	}
	kw_wheel_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kw_repair_opts opts;
	struct kw_repair_result *res = NULL;
	struct kw_error err;
	struct snap before = {0}, after = {0};
	char in_path[512], out_dir[512], out_skip[512];
	DIR *d;
	struct dirent *de;
	int rc, n_out = 0;
	char found[4096] = "";

	if (!ctx) {
		setup();
	}
	rm_tree(sandbox);
	make_sandbox(data, size, in_path, sizeof(in_path), out_dir, sizeof(out_dir));
	snprintf(out_skip, sizeof(out_skip), "%s", out_dir);
	snapshot(&before, base, out_skip);

	memset(&opts, 0, sizeof(opts));
	opts.out_dir = out_dir;
	opts.zip_level = 1;
	opts.mtime = 315532800; /* fixed: the output does not depend on the clock */
	opts.allow_pure = true;
	opts.sbom = kw_report_sbom;
	memset(&err, 0, sizeof(err));
	rc = kw_repair_wheel(ctx, in_path, &opts, &res, &err);

	if (getenv("FUZZ_REPAIR_VERBOSE")) {
		fprintf(stderr, "fuzz-repair: rc %d: %s (%zu grafts)\n", rc, rc ? err.msg : res->output, rc ? (size_t)0 : res->n_grafts);
		for (size_t g = 0; !rc && g < res->n_grafts; g++) {
			fprintf(stderr, "  graft %s from %s\n", res->grafts[g].soname, res->grafts[g].src);
		}
	}
	snapshot(&after, base, out_skip);
	if (before.len != after.len || memcmp(before.p, after.p, before.len) != 0) {
		fprintf(stderr, "fuzz-repair: the sandbox outside out/ changed (rc %d: %s)\n", rc, err.msg);
		abort();
	}
	free(before.p);
	free(after.p);

	if (rc != 0) {
		/* The message is a value; the line the CLI prints from it must be one line, with no control byte. */
		char *line = memchr(err.msg, '\0', sizeof(err.msg)) ? kw_report_error_line(&err) : NULL;
		const char *c;
		bool clean = line != NULL;

		for (c = line; clean && *c; c++) {
			clean = (unsigned char)*c >= 0x20 && (unsigned char)*c != 0x7f;
		}
		if (rc < KW_EPOLICY || rc > KW_ENOMEM || err.code != rc || !err.msg[0] || !clean) {
			fprintf(stderr, "fuzz-repair: bad failure: rc %d code %d msg '%s'\n", rc, err.code, err.msg);
			abort();
		}
		free(line);
	}
	d = opendir(out_dir);
	if (!d) {
		abort();
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
			continue;
		}
		n_out++;
		snprintf(found, sizeof(found), "%s/%s", out_dir, de->d_name);
	}
	closedir(d);
	if (rc != 0 && n_out != 0) {
		fprintf(stderr, "fuzz-repair: failed (%s) but left %s\n", err.msg, found);
		abort();
	}
	if (rc == 0) {
		struct stat st;
		size_t fl = strlen(found);

		if (n_out != 1 || !res || !res->output || lstat(found, &st) != 0 || !S_ISREG(st.st_mode) ||
		    fl < 4 || strcmp(found + fl - 4, ".whl") != 0 || strrchr(found, '/')[1] == '.') {
			fprintf(stderr, "fuzz-repair: success but out/ holds %d entries (%s)\n", n_out, found);
			abort();
		}
		check_output(found);
	}
	kw_repair_result_free(res);
	rm_tree(sandbox);
	return 0;
}
