/* SPDX-License-Identifier: MIT */
/*
 * A new wheel from an old one, member by member: the plan (copy, drop,
 * replace, add, retag) is recorded first and carried out at commit, so the
 * RECORD written is built from exactly what the writer is given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kwheel/wheel.h"

#include "internal.h"

enum action { COPY, DROP, REPLACE };

/* New content for a member: a file read at commit, or a buffer owned here. */
struct content {
	char *path;
	void *buf;
	size_t len;
	unsigned mode;
	char *hash;      /* path's RECORD hash and size, when taken ahead (prehash) */
	uint64_t size;
};

struct added {
	char *name;
	struct content c;
};

struct kw_wheel_rewrite {
	struct kw_wheel *src;
	char *out_path;
	int level;
	int64_t mtime;
	kw_progress_fn progress;
	void *progress_ud;
	enum action *action;             /* per source member */
	struct content *repl;            /* per source member, for REPLACE */
	struct added *add;
	size_t n_add, cap_add;
	const struct kw_record_entry **verified; /* sorted by path */
	size_t n_verified;
	const struct kw_wheel_retag *retag;
	bool additions_first;            /* added members outside dist-info before src's */
	bool consume;                    /* the files given are scratch (kw_wheel_writer_consume_files) */
	char *dist_info_prefix;          /* "pkg-1.0.dist-info/" */
	char *record_name;
};

static int oom(struct kw_error *err)
{
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

static void content_release(struct content *c)
{
	free(c->path);
	free(c->buf);
	free(c->hash);
	memset(c, 0, sizeof(*c));
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp((*(const struct kw_record_entry *const *)a)->path,
		      (*(const struct kw_record_entry *const *)b)->path);
}

/* Names RECORD's signatures go by: they sign the old RECORD. */
static bool is_signature(const struct kw_wheel_rewrite *rw, const char *name)
{
	size_t l = strlen(rw->record_name);

	return strncmp(name, rw->record_name, l) == 0 && (strcmp(name + l, ".jws") == 0 || strcmp(name + l, ".p7s") == 0);
}

int kw_wheel_rewrite_new(struct kw_wheel *src, const struct kw_record *verified, const char *out_path, int level,
			 int64_t mtime, struct kw_wheel_rewrite **out, struct kw_error *err)
{
	struct kw_wheel_rewrite *rw = kw_calloc(1, sizeof(*rw));
	size_t n = kw_wheel_member_count(src), i;

	*out = NULL;
	if (!rw) {
		return oom(err);
	}
	rw->src = src;
	rw->level = level;
	rw->out_path = kw_strdup(out_path);
	rw->action = kw_calloc(n + 1, sizeof(*rw->action));
	rw->repl = kw_calloc(n + 1, sizeof(*rw->repl));
	rw->dist_info_prefix = kw_asprintf("%s/", kw_wheel_dist_info(src));
	rw->record_name = kw_asprintf("%s/RECORD", kw_wheel_dist_info(src));
	if (verified) {
		rw->verified = kw_calloc(verified->n_entries + 1, sizeof(*rw->verified));
	}
	if (!rw->out_path || !rw->action || !rw->repl || !rw->dist_info_prefix || !rw->record_name ||
	    (verified && !rw->verified)) {
		kw_wheel_rewrite_abort(rw);
		return oom(err);
	}
	/* Our own index: the caller's order is not part of the contract. */
	for (i = 0; verified && i < verified->n_entries; i++) {
		rw->verified[rw->n_verified++] = &verified->entries[i];
	}
	if (rw->n_verified > 1) {
		qsort(rw->verified, rw->n_verified, sizeof(*rw->verified), cmp_entry);
	}
	if (mtime < 0) {
		mtime = 0;
		for (i = 0; i < n; i++) {
			if (kw_wheel_member(src, i)->mtime > mtime) {
				mtime = kw_wheel_member(src, i)->mtime;
			}
		}
	}
	rw->mtime = mtime;
	*out = rw;
	return 0;
}

void kw_wheel_rewrite_on_progress(struct kw_wheel_rewrite *rw, kw_progress_fn fn, void *ud)
{
	rw->progress = fn;
	rw->progress_ud = ud;
}

/* A member the caller may change: once, not a directory, not RECORD or its signatures (the rewrite's own). */
void kw_wheel_rewrite_additions_first(struct kw_wheel_rewrite *rw)
{
	rw->additions_first = true;
}

void kw_wheel_rewrite_consume_files(struct kw_wheel_rewrite *rw)
{
	rw->consume = true;
}

static int check_index(struct kw_wheel_rewrite *rw, size_t i, struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(rw->src, i);

	if (!m || rw->action[i] != COPY || m->is_dir || strcmp(m->name, rw->record_name) == 0 ||
	    is_signature(rw, m->name)) {
		return kw_error_set(err, KW_EINVAL, "'%s': member %s cannot be changed (twice, a directory, or RECORD)",
				    kw_wheel_path(rw->src), m ? m->name : "(none)");
	}
	return 0;
}

int kw_wheel_rewrite_drop(struct kw_wheel_rewrite *rw, size_t i, struct kw_error *err)
{
	int rc = check_index(rw, i, err);

	if (!rc) {
		rw->action[i] = DROP;
	}
	return rc;
}

static int replace(struct kw_wheel_rewrite *rw, size_t i, const char *path, void *buf, size_t len, unsigned mode,
		   struct kw_error *err)
{
	int rc = check_index(rw, i, err);
	char *p = NULL;

	if (!rc && path && !(p = kw_strdup(path))) {
		rc = oom(err);
	}
	if (rc) {
		free(buf);
		return rc;
	}
	rw->action[i] = REPLACE;
	rw->repl[i] = (struct content){ .path = p, .buf = buf, .len = len, .mode = mode };
	return 0;
}

int kw_wheel_rewrite_replace_file(struct kw_wheel_rewrite *rw, size_t i, const char *path, unsigned mode,
				  struct kw_error *err)
{
	return replace(rw, i, path, NULL, 0, mode, err);
}

int kw_wheel_rewrite_replace_buffer(struct kw_wheel_rewrite *rw, size_t i, void *buf, size_t len, unsigned mode,
				    struct kw_error *err)
{
	return replace(rw, i, NULL, buf, len, mode, err);
}

static int add(struct kw_wheel_rewrite *rw, const char *name, const char *path, void *buf, size_t len,
	       unsigned mode, struct kw_error *err)
{
	const char *why = kw_wheel_name_problem(name);
	struct added a = { 0 };

	if (why || strcmp(name, rw->record_name) == 0 || is_signature(rw, name)) {
		free(buf);
		return kw_error_set(err, KW_EINVAL, "'%s': cannot add member '%s': %s", kw_wheel_path(rw->src), name,
				    why ? why : "RECORD is written by the rewrite");
	}
	a.name = kw_strdup(name);
	a.c = (struct content){ .path = path ? kw_strdup(path) : NULL, .buf = buf, .len = len, .mode = mode };
	if (!a.name || (path && !a.c.path) || kw_grow((void **)&rw->add, &rw->cap_add, rw->n_add + 1, sizeof(*rw->add))) {
		free(a.name);
		content_release(&a.c);
		return oom(err);
	}
	rw->add[rw->n_add++] = a;
	return 0;
}

int kw_wheel_rewrite_add_file(struct kw_wheel_rewrite *rw, const char *name, const char *path, unsigned mode,
			      struct kw_error *err)
{
	return add(rw, name, path, NULL, 0, mode, err);
}

int kw_wheel_rewrite_add_buffer(struct kw_wheel_rewrite *rw, const char *name, void *buf, size_t len, unsigned mode,
				struct kw_error *err)
{
	return add(rw, name, NULL, buf, len, mode, err);
}

int kw_wheel_rewrite_retag(struct kw_wheel_rewrite *rw, const struct kw_wheel_retag *rt, struct kw_error *err)
{
	(void)err;
	rw->retag = rt;
	return 0;
}

void kw_wheel_rewrite_abort(struct kw_wheel_rewrite *rw)
{
	size_t i, n;

	if (!rw) {
		return;
	}
	n = kw_wheel_member_count(rw->src);
	for (i = 0; rw->repl && i < n; i++) {
		content_release(&rw->repl[i]);
	}
	for (i = 0; i < rw->n_add; i++) {
		free(rw->add[i].name);
		content_release(&rw->add[i].c);
	}
	free(rw->add);
	free(rw->repl);
	free(rw->action);
	free(rw->verified);
	free(rw->out_path);
	free(rw->dist_info_prefix);
	free(rw->record_name);
	free(rw);
}

/* ---- commit ---- */

static int sha_chunk(void *ud, const void *data, size_t len)
{
	kw_sha256_update(ud, data, len);
	return 0;
}

/*
 * RECORD's hash of a file about to be added (the writer reads the same file
 * at commit), read a piece at a time: mapping it would make the whole file
 * resident, so a repair's peak memory would grow with its largest member.
 */
static int hash_path(const char *path, char **hash, uint64_t *size, struct kw_error *err)
{
	enum { PIECE = 1 << 20 };
	struct kw_sha256 sha;
	unsigned char *buf = NULL;
	uint64_t total = 0;
	int fd = -1, rc;

	rc = kw_open_regular(path, &fd, NULL, err);
	if (rc) {
		return rc;
	}
	buf = kw_malloc(PIECE);
	if (!buf) {
		rc = oom(err);
		goto out;
	}
	kw_sha256_init(&sha);
	for (;;) {
		ssize_t n = read(fd, buf, PIECE);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = kw_error_set(err, KW_EIO, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (n == 0) {
			break;
		}
		kw_sha256_update(&sha, buf, (size_t)n);
		total += (uint64_t)n;
	}
	*hash = kw_record_digest(&sha);
	if (!*hash) {
		rc = oom(err);
		goto out;
	}
	*size = total;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Hand c to the writer as name, with its RECORD line; c is emptied (the writer owns its buffer). */
static int put_content(struct kw_wheel_rewrite *rw, struct kw_wheel_writer *ww, struct kw_record_text *r,
		       const char *name, struct content *c, struct kw_error *err)
{
	uint64_t size = c->len;
	char *h = NULL;
	int rc = 0;

	(void)rw;
	if (c->path && c->hash) {
		h = c->hash;
		c->hash = NULL;
		size = c->size;
	} else if (c->path) {
		rc = hash_path(c->path, &h, &size, err);
	} else {
		h = kw_record_digest_buf(c->buf ? c->buf : "", c->len);
		rc = h ? 0 : oom(err);
	}
	if (!rc && !c->path && !c->buf && !(c->buf = kw_malloc(1))) {
		rc = oom(err);
	}
	if (rc) {
		free(h);
		return rc;
	}
	if (kw_record_text_add(r, name, h, (long long)size)) {
		free(h);
		return oom(err);
	}
	free(h);
	if (c->path) {
		return kw_wheel_writer_add_file(ww, name, c->path, c->mode, err);
	}
	rc = kw_wheel_writer_add_buffer(ww, name, c->buf, c->len, c->mode, err);
	c->buf = NULL;
	return rc;
}

/* The files to hash ahead, each hash in its content (or none, if it failed). */
struct prehash {
	struct content **c;
	size_t n;
};

static void prehash_task(void *ud, size_t i)
{
	struct content *c = ((struct prehash *)ud)->c[i];
	struct kw_error ignored;

	if (hash_path(c->path, &c->hash, &c->size, &ignored)) {
		c->hash = NULL;
	}
}

/*
 * Every new file's hash, taken on the pool before the members are put in
 * order: a repair adds hundreds of libraries (500 MB for torch), too much
 * to read on one core. A file that fails here is hashed again in its turn,
 * so the failure reported is the one the members in order meet first.
 */
static void prehash(struct kw_wheel_rewrite *rw)
{
	size_t n = kw_wheel_member_count(rw->src), i;
	struct prehash p = { kw_calloc(n + rw->n_add + 1, sizeof(*p.c)), 0 };

	if (!p.c) {
		return; /* each file is hashed in its turn instead */
	}
	for (i = 0; i < n; i++) {
		if (rw->action[i] == REPLACE && rw->repl[i].path) {
			p.c[p.n++] = &rw->repl[i];
		}
	}
	for (i = 0; i < rw->n_add; i++) {
		if (rw->add[i].c.path) {
			p.c[p.n++] = &rw->add[i].c;
		}
	}
	kw_pool_run(rw->src->ctx->pool, p.n, prehash_task, &p);
	free(p.c);
}

static int cmp_key_entry(const void *key, const void *e)
{
	return strcmp(key, (*(const struct kw_record_entry *const *)e)->path);
}

/* An unchanged member: its verified RECORD line when it still describes it, else its bytes hashed. */
static int put_copy(struct kw_wheel_rewrite *rw, struct kw_wheel_writer *ww, struct kw_record_text *r, size_t i,
		    struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(rw->src, i);
	const struct kw_record_entry *const *e =
		rw->n_verified ? bsearch(m->name, rw->verified, rw->n_verified, sizeof(*rw->verified), cmp_key_entry)
			       : NULL;
	char *h = NULL;
	int rc;

	if (m->is_dir) {
		return kw_wheel_writer_copy(ww, rw->src, i, err);
	}
	if (e && (*e)->algo && (*e)->digest && (*e)->size >= 0 && (uint64_t)(*e)->size == m->size) {
		h = kw_asprintf("%s=%s", (*e)->algo, (*e)->digest);
	} else {
		struct kw_sha256 sha;

		kw_sha256_init(&sha);
		rc = kw_wheel_stream(rw->src, i, sha_chunk, &sha, err);
		if (rc) {
			return rc;
		}
		h = kw_record_digest(&sha);
	}
	if (!h || kw_record_text_add(r, m->name, h, (long long)m->size)) {
		free(h);
		return oom(err);
	}
	free(h);
	return kw_wheel_writer_copy(ww, rw->src, i, err);
}

static int cmp_case(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* No two output names equal, or equal but for case (they collide when extracted on such file systems). */
static int check_names(struct kw_wheel_rewrite *rw, struct kw_error *err)
{
	size_t n = kw_wheel_member_count(rw->src), i, k = 0;
	const char **names = kw_calloc(n + rw->n_add + 1, sizeof(*names));
	int rc = 0;

	if (!names) {
		return oom(err);
	}
	for (i = 0; i < n; i++) {
		if (rw->action[i] != DROP) {
			names[k++] = kw_wheel_member(rw->src, i)->name;
		}
	}
	for (i = 0; i < rw->n_add; i++) {
		names[k++] = rw->add[i].name;
	}
	qsort(names, k, sizeof(*names), cmp_case);
	for (i = 1; i < k && !rc; i++) {
		if (strcasecmp(names[i - 1], names[i]) == 0) {
			rc = kw_error_set(err, KW_EINVAL, "'%s': the new wheel would hold both '%s' and '%s'",
					  kw_wheel_path(rw->src), names[i - 1], names[i]);
		}
	}
	free(names);
	return rc;
}

static bool in_dist_info(const struct kw_wheel_rewrite *rw, const char *name)
{
	return strncmp(name, rw->dist_info_prefix, strlen(rw->dist_info_prefix)) == 0;
}

/* The added members outside (inside == false) or inside the dist-info directory, in the order added. */
static int put_added(struct kw_wheel_rewrite *rw, struct kw_wheel_writer *ww, struct kw_record_text *r, bool inside,
		     struct kw_error *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < rw->n_add && !rc; i++) {
		if (in_dist_info(rw, rw->add[i].name) == inside) {
			rc = put_content(rw, ww, r, rw->add[i].name, &rw->add[i].c, err);
		}
	}
	return rc;
}

static int put_retagged(struct kw_wheel_rewrite *rw, struct kw_wheel_writer *ww, struct kw_record_text *r, size_t i,
			struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(rw->src, i);
	unsigned char *text = NULL;
	size_t len = 0;
	struct content c = { .mode = 0644 };
	int rc = kw_wheel_read(rw->src, i, &text, &len, err);

	if (rc) {
		return rc;
	}
	c.buf = kw_wheel_meta_retag((const char *)text, len, kw_wheel_name(rw->src), rw->retag);
	free(text);
	if (!c.buf) {
		return oom(err);
	}
	c.len = strlen(c.buf);
	rc = put_content(rw, ww, r, m->name, &c, err);
	free(c.buf); /* still ours if put_content failed before the writer took it */
	return rc;
}

int kw_wheel_rewrite_commit(struct kw_wheel_rewrite *rw, struct kw_error *err)
{
	struct kw_wheel_writer *ww = NULL;
	struct kw_record_text r = { 0 };
	size_t n = kw_wheel_member_count(rw->src), i;
	char *wheel_name = kw_asprintf("%s/WHEEL", kw_wheel_dist_info(rw->src));
	bool outside_done = false;
	int rc = wheel_name ? check_names(rw, err) : oom(err);

	if (!rc) {
		rc = kw_wheel_writer_new(rw->out_path, rw->level, rw->mtime, &ww, err);
	}
	if (!rc) {
		kw_wheel_writer_use_pool(ww, rw->src->ctx->pool);
		if (rw->consume) {
			kw_wheel_writer_consume_files(ww);
		}
		prehash(rw);
	}
	if (!rc && rw->progress) {
		kw_wheel_writer_on_progress(ww, rw->progress, rw->progress_ud);
	}
	if (!rc && rw->additions_first) {
		rc = put_added(rw, ww, &r, false, err);
		outside_done = true;
	}
	for (i = 0; i < n && !rc; i++) {
		const struct kw_wheel_member *m = kw_wheel_member(rw->src, i);

		if (!outside_done && in_dist_info(rw, m->name)) {
			/* Vendored libraries go before the metadata, which installers expect last. */
			rc = put_added(rw, ww, &r, false, err);
			outside_done = true;
			if (rc) {
				break;
			}
		}
		if (rw->action[i] == DROP || strcmp(m->name, rw->record_name) == 0 || is_signature(rw, m->name)) {
			continue;
		}
		if (rw->action[i] == REPLACE) {
			rc = put_content(rw, ww, &r, m->name, &rw->repl[i], err);
		} else if (rw->retag && strcmp(m->name, wheel_name) == 0) {
			rc = put_retagged(rw, ww, &r, i, err);
		} else {
			rc = put_copy(rw, ww, &r, i, err);
		}
	}
	if (!rc && !outside_done) {
		rc = put_added(rw, ww, &r, false, err);
	}
	if (!rc) {
		rc = put_added(rw, ww, &r, true, err);
	}
	if (!rc) {
		rc = kw_record_text_add(&r, rw->record_name, NULL, -1) ? oom(err) : 0;
	}
	if (!rc) {
		rc = kw_wheel_writer_add_buffer(ww, rw->record_name, r.buf, r.len, 0644, err);
		r.buf = NULL;
	}
	if (!rc) {
		rc = kw_wheel_writer_commit(ww, err);
		ww = NULL;
	}
	kw_wheel_writer_abort(ww);
	free(r.buf);
	free(wheel_name);
	kw_wheel_rewrite_abort(rw);
	return rc;
}
