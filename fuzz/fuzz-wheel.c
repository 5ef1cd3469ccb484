/* SPDX-License-Identifier: MIT */
/*
 * fuzz-wheel: the whole input is a wheel. It is written to a file named
 * fz-1.0-py3-none-any.whl (the seeds' .dist-info is fz-1.0.dist-info, see
 * make-corpus), opened, and every member is inflated through the RECORD
 * check and kw_wheel_stream. An input that does not start like a zip feeds
 * the text parsers instead, split at 0x01: part 0 is a file name, part 1
 * WHEEL text, part 2 RECORD text (a short input gives all of them the whole
 * input). Sending each input to one side only doubles the rate: parsing a
 * zip's bytes as RECORD text reaches nothing new.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/kwheel.h"
#include "kwheel/wheel.h"

#include "fuzz-common.h"

#define WHEEL_NAME "fz-1.0-py3-none-any.whl"

/* Harness state, not library state: one context and one temp path per process. */
static struct kw_ctx *ctx;
static char dir[64];
static char path[128];

static void cleanup(void)
{
	if (path[0]) {
		unlink(path);
	}
	if (dir[0]) {
		rmdir(dir);
	}
	kw_ctx_free(ctx);
	ctx = NULL;
}

static void setup(void)
{
	struct kw_error err;

	if (kw_ctx_new(&ctx, &err) < 0) {
		fprintf(stderr, "fuzz-wheel: %s\n", err.msg);
		abort();
	}
	/* Small limits keep each run fast; a bomb is still refused, only sooner. */
	ctx->limits.max_member_size = UINT64_C(16) << 20;
	ctx->limits.max_total_size = UINT64_C(64) << 20;
	ctx->limits.max_members = 10000;
	/* tmpfs when there is one: the file is written and unlinked for every input. */
	snprintf(dir, sizeof(dir), "%s/kwfuzz-wheel.%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
		 (long)getpid());
	/* A leftover of a crashed run with the same pid is reused. */
	(void)mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", dir, WHEEL_NAME);
	atexit(cleanup);
}

static int write_file(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		return -1;
	}
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

struct stream_state {
	uint64_t total;
};

static int on_chunk(void *ud, const void *buf, size_t len)
{
	struct stream_state *st = ud;

	fz_touch(buf, len);
	st->total += len;
	return 0;
}

static void check_strv(char *const *v, size_t n)
{
	size_t i;

	if (!v) {
		if (n) {
			abort();
		}
		return;
	}
	for (i = 0; i < n; i++) {
		if (!v[i]) {
			abort();
		}
		fz_touch(v[i], strlen(v[i]));
	}
	if (v[n]) {
		abort();
	}
}

static void walk_meta(const struct kw_wheel_meta *m)
{
	if (m->wheel_version) {
		fz_touch(m->wheel_version, strlen(m->wheel_version));
	}
	if (m->generator) {
		fz_touch(m->generator, strlen(m->generator));
	}
	if (m->build) {
		fz_touch(m->build, strlen(m->build));
	}
	check_strv(m->tags, m->n_tags);
}

static void walk_record(const struct kw_record *rec)
{
	size_t i;

	for (i = 0; i < rec->n_entries; i++) {
		const struct kw_record_entry *e = &rec->entries[i];

		fz_touch(e->path, strlen(e->path));
		if (e->algo) {
			fz_touch(e->algo, strlen(e->algo));
		}
		if (e->digest) {
			fz_touch(e->digest, strlen(e->digest));
		}
	}
	for (i = 0; i < rec->n_problems; i++) {
		const struct kw_record_problem *pr = &rec->problems[i];

		if (pr->path) {
			fz_touch(pr->path, strlen(pr->path));
		}
		if (pr->detail) {
			fz_touch(pr->detail, strlen(pr->detail));
		}
		fz_touch(kw_record_problem_str(pr->kind), 1);
	}
}

static void walk_name(const struct kw_wheel_name *n)
{
	const char *s[] = { n->distribution, n->version, n->build, n->python, n->abi, n->platform };
	size_t i;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i]) {
			fz_touch(s[i], strlen(s[i]));
		}
	}
	check_strv(n->platforms, n->n_platforms);
}

static void fuzz_archive(const uint8_t *data, size_t size)
{
	struct kw_wheel *w = NULL;
	struct kw_wheel_meta meta;
	struct kw_record rec;
	struct kw_error err;
	size_t i, n;

	if (write_file(data, size) < 0) {
		unlink(path);
		return;
	}
	if (kw_wheel_open(ctx, path, &w, &err) < 0) {
		if (w) {
			abort();
		}
		goto out;
	}
	walk_name(kw_wheel_name(w));
	fz_touch(kw_wheel_dist_info(w), strlen(kw_wheel_dist_info(w)));
	memset(&meta, 0, sizeof(meta));
	if (kw_wheel_read_meta(w, &meta, &err) == 0) {
		walk_meta(&meta);
	}
	kw_wheel_meta_release(&meta);
	memset(&rec, 0, sizeof(rec));
	if (kw_wheel_verify_record(w, &rec, &err) == 0) {
		walk_record(&rec);
	}
	kw_record_release(&rec);
	n = kw_wheel_member_count(w);
	if (n > ctx->limits.max_members) {
		abort();
	}
	for (i = 0; i < n; i++) {
		const struct kw_wheel_member *m = kw_wheel_member(w, i);
		struct stream_state st = { 0 };
		unsigned char head[64];
		size_t got = 0;

		if (!m || !m->name || kw_wheel_find(w, m->name) != (long)i) {
			abort();
		}
		if (kw_wheel_stream(w, i, on_chunk, &st, &err) == 0) {
			/* A completed stream delivered exactly the declared size (that is the check it makes). */
			if (!m->is_dir && st.total != m->size) {
				abort();
			}
		}
		if (kw_wheel_read_head(w, i, head, sizeof(head), &got, &err) == 0 && got > sizeof(head)) {
			abort();
		}
	}
out:
	kw_wheel_free(w);
	unlink(path);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
	struct fz_part parts[3];
	const struct fz_part *pn, *pm, *pr;
	struct kw_wheel_name name;
	struct kw_wheel_meta meta;
	struct kw_record rec;
	struct kw_error err;
	size_t np = fz_split(data, size, 0x01, parts, 3);
	char *s, *t;

	pn = &parts[0];
	pm = np > 1 ? &parts[1] : &parts[0];
	pr = np > 2 ? &parts[2] : pm;

	s = fz_strdup_part(pn);
	memset(&name, 0, sizeof(name));
	if (kw_wheel_parse_name(s, &name, &err) == 0) {
		walk_name(&name);
	}
	kw_wheel_name_release(&name);
	free(s);

	/* Exact-size copies, so a read past len is an ASan report. */
	t = malloc(pm->len ? pm->len : 1);
	if (!t) {
		abort();
	}
	memcpy(t, pm->p, pm->len);
	memset(&meta, 0, sizeof(meta));
	if (kw_wheel_parse_meta(t, pm->len, &meta, &err) == 0) {
		walk_meta(&meta);
	}
	kw_wheel_meta_release(&meta);
	free(t);

	t = malloc(pr->len ? pr->len : 1);
	if (!t) {
		abort();
	}
	memcpy(t, pr->p, pr->len);
	memset(&rec, 0, sizeof(rec));
	if (kw_record_parse(t, pr->len, &rec, &err) == 0) {
		walk_record(&rec);
	}
	kw_record_release(&rec);
	free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx) {
		setup();
	}
	if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
		fuzz_archive(data, size);
	} else {
		fuzz_text(data, size);
	}
	return 0;
}
