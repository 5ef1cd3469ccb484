/* SPDX-License-Identifier: MIT */
/*
 * The wheel writer. It writes the zip format itself rather than through
 * libzip's writer for two reasons: members copied from another archive must
 * keep their compressed bytes, moved by the kernel (copy_file_range) without
 * passing through user space; and the output must be the same bytes for the
 * same input (no extra fields, fixed field values, our time stamps). New
 * members are still deflated by libzip: each worker thread compresses its
 * share into a private temporary archive, whose compressed bytes are then
 * copied like any other member. So deflate runs on every core. One large
 * member would still be one core's work (a 120 MB grafted library is most of
 * a repair): members past CHUNKED_MIN are deflated here instead, in
 * independent 1 MiB pieces on every core, as pigz does (each piece primed
 * with the 32 KiB before it, ended by a sync flush, the last by the final
 * block), which any inflater reads as one stream. The pieces are the same
 * whatever the number of cores, so the bytes are too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "internal.h"
#include "rawzip.h"

#define MAX_WORKERS 16
/* New members this large are deflated in pieces of PIECE bytes on every core. */
#define CHUNKED_MIN (UINT64_C(4) << 20)
#define PIECE ((size_t)1 << 20)
#define WINDOW ((size_t)32 << 10)

enum item_kind { ITEM_COPY, ITEM_FILE, ITEM_BUFFER };

struct item {
	enum item_kind kind;
	char *name;
	struct kw_wheel *src;  /* ITEM_COPY */
	size_t src_index;
	char *path;            /* ITEM_FILE */
	void *buf;             /* ITEM_BUFFER */
	size_t len;
	unsigned mode;
	int worker;            /* ITEM_FILE/BUFFER: which temporary archive holds it; -1 chunked */
	int chunked_fd;        /* chunked: its deflated bytes (raw fields in chunked), or -1 */
	struct raw chunked;
};

struct kw_wheel_writer {
	char *final_path;
	char *tmp_dir;         /* private, locked directory of this commit's temporaries */
	int tmp_fd;            /* holds the lock on tmp_dir, or -1 */
	char *dir;
	struct kw_wheel *whole; /* copy this archive whole instead of member by member */
	int level;
	int jobs;
	uint16_t dtime, ddate;
	struct item *items;
	size_t n_items, cap_items;
	kw_progress_fn progress;
	void *progress_ud;
};

static void put16(unsigned char *p, uint64_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint64_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

/* DOS date and time from UTC seconds, independent of the local time zone. */
static void dos_stamp(int64_t t, uint16_t *dtime, uint16_t *ddate)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < 315532800) { /* 1980-01-01, the first DOS date */
		tt = 315532800;
	}
	gmtime_r(&tt, &tm);
	if (tm.tm_year > 207) {
		tm.tm_year = 207;
	}
	*dtime = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
	*ddate = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- output ------------------------------------------------------------ */

struct central {
	unsigned char *buf;
	size_t len, cap;
	uint64_t count;
};

/*
 * The external attributes a member gets in every wheel written: a regular
 * file 0644, or 0755 when the input had any execute bit; a directory 0755.
 * Set-uid, set-gid, sticky and group- or world-writable bits never pass on
 * (an installer may honour them). The low half (MS-DOS attributes) stays;
 * no mode at all stays no mode.
 */
static uint32_t sane_attr(uint32_t attr, const char *name, size_t name_len)
{
	unsigned mode = attr >> 16, perm, type;
	bool dir = name_len > 0 && name[name_len - 1] == '/';

	if (mode == 0) {
		return attr;
	}
	perm = dir || (mode & 0111) ? 0755 : 0644;
	type = dir ? S_IFDIR : S_IFREG;
	return (uint32_t)(type | perm) << 16 | (attr & 0xffff);
}

static bool has_high_bytes(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80) {
			return true;
		}
	}
	return false;
}

/* One member: local header, data, and its central directory record. */
static int emit(int out, uint64_t *pos, struct central *cd, const struct raw *r, const char *name, int src_fd,
		struct kw_error *err, const char *dest)
{
	size_t nl = strlen(name);
	bool z64 = r->size >= 0xffffffffu || r->comp_size >= 0xffffffffu || *pos >= 0xffffffffu;
	unsigned char lh[30 + 20];
	/*
	 * Names are UTF-8 here (a CP437 source name was decoded when read): flag
	 * them so, or Python would decode them as CP437 again. Of the rest keep
	 * the deflate option bits only.
	 */
	uint16_t flags = (uint16_t)((r->flags & 0x0006) | (has_high_bytes(name) ? 0x0800 : 0));
	size_t need = 46 + nl + 28;
	unsigned char *c;

	put32(lh, SIG_LOCAL);
	put16(lh + 4, z64 ? 45 : 20);
	put16(lh + 6, flags);
	put16(lh + 8, r->method);
	put16(lh + 10, r->dtime);
	put16(lh + 12, r->ddate);
	put32(lh + 14, r->crc);
	put32(lh + 18, z64 ? 0xffffffffu : r->comp_size);
	put32(lh + 22, z64 ? 0xffffffffu : r->size);
	put16(lh + 26, nl);
	put16(lh + 28, z64 ? 20 : 0);
	if (z64) {
		put16(lh + 30, 1);
		put16(lh + 32, 16);
		put64(lh + 34, r->size);
		put64(lh + 42, r->comp_size);
	}
	if (write_all(out, lh, 30) < 0 || write_all(out, name, nl) < 0 || (z64 && write_all(out, lh + 30, 20) < 0) ||
	    kw_copy_range(src_fd, r->data_off, out, r->comp_size) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
	}
	if (kw_grow(&cd->buf, &cd->cap, cd->len + need, 1)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	c = cd->buf + cd->len;
	put32(c, SIG_CENTRAL);
	put16(c + 4, 3u << 8 | (z64 ? 45 : 20)); /* made by: unix, so external attributes are modes */
	put16(c + 6, z64 ? 45 : 20);
	put16(c + 8, flags);
	put16(c + 10, r->method);
	put16(c + 12, r->dtime);
	put16(c + 14, r->ddate);
	put32(c + 16, r->crc);
	put32(c + 20, z64 ? 0xffffffffu : r->comp_size);
	put32(c + 24, z64 ? 0xffffffffu : r->size);
	put16(c + 28, nl);
	put16(c + 30, z64 ? 28 : 0);
	put16(c + 32, 0);
	put16(c + 34, 0);
	put16(c + 36, 0);
	put32(c + 38, r->ext_attr);
	put32(c + 42, z64 ? 0xffffffffu : *pos);
	memcpy(c + 46, name, nl);
	if (z64) {
		put16(c + 46 + nl, 1);
		put16(c + 48 + nl, 24);
		put64(c + 50 + nl, r->size);
		put64(c + 58 + nl, r->comp_size);
		put64(c + 66 + nl, *pos);
	}
	cd->len += 46 + nl + (z64 ? 28 : 0);
	cd->count++;
	*pos += 30 + nl + (z64 ? 20 : 0) + r->comp_size;
	return 0;
}

static int finish(int out, uint64_t pos, const struct central *cd, const char *dest, struct kw_error *err)
{
	unsigned char e[56 + 20 + 22];
	bool z64 = cd->count >= 0xffff || pos >= 0xffffffffu || cd->len >= 0xffffffffu;
	size_t el = 0;

	if (write_all(out, cd->buf, cd->len) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
	}
	if (z64) {
		put32(e, SIG_EOCD64);
		put64(e + 4, 44);
		put16(e + 12, 3u << 8 | 45);
		put16(e + 14, 45);
		put32(e + 16, 0);
		put32(e + 20, 0);
		put64(e + 24, cd->count);
		put64(e + 32, cd->count);
		put64(e + 40, cd->len);
		put64(e + 48, pos);
		put32(e + 56, SIG_LOC64);
		put32(e + 60, 0);
		put64(e + 64, pos + cd->len);
		put32(e + 72, 1);
		el = 76;
	}
	put32(e + el, SIG_EOCD);
	put16(e + el + 4, 0);
	put16(e + el + 6, 0);
	put16(e + el + 8, z64 ? 0xffff : cd->count);
	put16(e + el + 10, z64 ? 0xffff : cd->count);
	put32(e + el + 12, z64 ? 0xffffffffu : cd->len);
	put32(e + el + 16, z64 ? 0xffffffffu : pos);
	put16(e + el + 20, 0);
	if (write_all(out, e, el + 22) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
	}
	return 0;
}

/* ---- compression workers ------------------------------------------------ */

struct worker {
	struct kw_wheel_writer *ww;
	int id;
	char *zpath;
	int rc;
	struct kw_error err;
};

static void *compress_worker(void *arg)
{
	struct worker *wk = arg;
	struct kw_wheel_writer *ww = wk->ww;
	zip_t *z;
	int zerr = 0;
	size_t i;

	z = zip_open(wk->zpath, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
	if (!z) {
		wk->rc = kw_error_set(&wk->err, KW_EIO, "'%s': cannot create a temporary archive", ww->final_path);
		return NULL;
	}
	for (i = 0; i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		zip_source_t *s;
		zip_int64_t idx;

		if (it->kind == ITEM_COPY || it->worker != wk->id) {
			continue;
		}
		s = it->kind == ITEM_FILE ? zip_source_file(z, it->path, 0, -1) : zip_source_buffer(z, it->buf, it->len, 0);
		idx = s ? zip_file_add(z, it->name, s, ZIP_FL_ENC_UTF_8) : -1;
		if (idx < 0) {
			zip_source_free(s);
			wk->rc = kw_error_set(&wk->err, KW_EIO, "'%s': %s: %s", ww->final_path, it->name, zip_strerror(z));
			zip_discard(z);
			return NULL;
		}
		zip_set_file_compression(z, (zip_uint64_t)idx, ww->level ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
					 (zip_uint32_t)ww->level);
	}
	if (zip_close(z) < 0) {
		wk->rc = kw_error_set(&wk->err, KW_EIO, "'%s': compressing: %s", ww->final_path, zip_strerror(z));
		zip_discard(z);
	}
	return NULL;
}

/* ---- chunked deflate of large members ----------------------------------- */

struct piece {
	const unsigned char *in;  /* len bytes, preceded by dict bytes of history */
	size_t len, dict;
	bool last;
	int level;
	unsigned char *out;       /* deflated bytes: out_len of out_cap */
	size_t out_len, out_cap;
	uLong crc;
	int rc;
};

static void *deflate_piece(void *arg)
{
	struct piece *p = arg;
	z_stream s;
	int zr;

	memset(&s, 0, sizeof(s));
	p->rc = KW_EINTERNAL;
	p->out_len = 0;
	p->crc = crc32(0L, p->in, (uInt)p->len);
	if (deflateInit2(&s, p->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		p->rc = KW_ENOMEM;
		return NULL;
	}
	if (p->dict && deflateSetDictionary(&s, p->in - p->dict, (uInt)p->dict) != Z_OK) {
		goto out;
	}
	/* A sync flush adds an empty stored block (5 bytes) past what deflateBound allows for. */
	if (p->out_cap < deflateBound(&s, p->len) + 64) {
		unsigned char *n = kw_realloc(p->out, deflateBound(&s, p->len) + 64);

		if (!n) {
			p->rc = KW_ENOMEM;
			goto out;
		}
		p->out = n;
		p->out_cap = deflateBound(&s, p->len) + 64;
	}
	s.next_in = (Bytef *)(uintptr_t)p->in;
	s.avail_in = (uInt)p->len;
	s.next_out = p->out;
	s.avail_out = (uInt)p->out_cap;
	zr = deflate(&s, p->last ? Z_FINISH : Z_SYNC_FLUSH);
	if (s.avail_in != 0 || (p->last ? zr != Z_STREAM_END : zr != Z_OK)) {
		goto out;
	}
	p->out_len = p->out_cap - s.avail_out;
	p->rc = 0;
out:
	deflateEnd(&s);
	return NULL;
}

/* The len bytes of item it from offset off on, with dict bytes before them, into buf (or pointed at). */
static int piece_input(const struct item *it, int fd, uint64_t off, size_t dict, size_t len, unsigned char *buf,
		       const unsigned char **in)
{
	if (it->kind == ITEM_BUFFER) {
		*in = (const unsigned char *)it->buf + off;
		return 0;
	}
	if (pread_all(fd, buf, dict + len, off - dict) != 0) {
		return KW_EIO;
	}
	*in = buf + dict;
	return 0;
}

/*
 * Deflate item it (size bytes) into a new file in the commit's directory,
 * PIECE bytes at a time on up to jobs threads, and describe the result in
 * it->chunked. Memory: jobs pieces in and out, whatever the member's size.
 */
static int deflate_chunked(struct kw_wheel_writer *ww, struct item *it, uint64_t size, int id, struct kw_error *err)
{
	struct piece pc[MAX_WORKERS];
	unsigned char *inbuf[MAX_WORKERS] = { NULL };
	pthread_t th[MAX_WORKERS];
	bool started[MAX_WORKERS];
	char name[32];
	uint64_t off = 0, comp = 0;
	uLong crc = crc32(0L, Z_NULL, 0);
	int fd = -1, rc = KW_ENOMEM, k;

	memset(pc, 0, sizeof(pc));
	if (it->kind == ITEM_FILE) {
		fd = open(it->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			return kw_error_set(err, KW_EIO, "'%s': %s: %s", ww->final_path, it->name, strerror(errno));
		}
		for (k = 0; k < ww->jobs; k++) {
			inbuf[k] = kw_malloc(WINDOW + PIECE);
			if (!inbuf[k]) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
		}
	}
	snprintf(name, sizeof(name), "c%d", id);
	it->chunked_fd = openat(ww->tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (it->chunked_fd < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot create a file there: %s", ww->final_path, strerror(errno));
		goto out;
	}
	while (off < size) {
		int n = 0;

		/* One round: the next pieces, one per thread; written in order once all are done. */
		for (k = 0; k < ww->jobs && off < size; k++, n++) {
			size_t len = size - off < PIECE ? (size_t)(size - off) : PIECE;
			size_t dict = off < WINDOW ? (size_t)off : WINDOW;

			rc = piece_input(it, fd, off, dict, len, inbuf[k], &pc[k].in);
			if (rc) {
				rc = kw_error_set(err, KW_EIO, "'%s': %s: %s", ww->final_path, it->name, strerror(errno));
				goto out;
			}
			pc[k].len = len;
			pc[k].dict = dict;
			pc[k].level = ww->level;
			off += len;
			pc[k].last = off == size;
		}
		for (k = 1; k < n; k++) {
			started[k] = pthread_create(&th[k], NULL, deflate_piece, &pc[k]) == 0;
		}
		deflate_piece(&pc[0]);
		for (k = 1; k < n; k++) {
			if (started[k]) {
				pthread_join(th[k], NULL);
			} else {
				deflate_piece(&pc[k]);
			}
		}
		for (k = 0; k < n; k++) {
			if (pc[k].rc) {
				rc = kw_error_set(err, pc[k].rc, "'%s': %s: deflate failed", ww->final_path, it->name);
				goto out;
			}
			if (write_all(it->chunked_fd, pc[k].out, pc[k].out_len) < 0) {
				rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", ww->final_path, strerror(errno));
				goto out;
			}
			crc = crc32_combine(crc, pc[k].crc, (z_off_t)pc[k].len);
			comp += pc[k].out_len;
		}
	}
	memset(&it->chunked, 0, sizeof(it->chunked));
	it->chunked.method = ZIP_CM_DEFLATE;
	it->chunked.crc = (uint32_t)crc;
	it->chunked.size = size;
	it->chunked.comp_size = comp;
	it->chunked.data_off = 0;
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
	}
	for (k = 0; k < MAX_WORKERS; k++) {
		free(inbuf[k]);
		free(pc[k].out);
	}
	return rc;
}

/* Mark the new members deflate_chunked takes (worker -1) and deflate them; assign() then skips them. */
static int deflate_large(struct kw_wheel_writer *ww, struct kw_error *err)
{
	size_t i;
	int id = 0, rc;

	/* On every machine, one core or many: the output bytes must not depend on it. */
	for (i = 0; ww->level > 0 && i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		struct stat st;
		uint64_t sz;

		if (it->kind == ITEM_COPY) {
			continue;
		}
		if (it->kind == ITEM_BUFFER) {
			sz = it->len;
		} else if (stat(it->path, &st) == 0 && S_ISREG(st.st_mode)) {
			sz = (uint64_t)st.st_size;
		} else {
			continue; /* libzip's worker reports what is wrong with it */
		}
		if (sz < CHUNKED_MIN) {
			continue;
		}
		it->worker = -1;
		rc = deflate_chunked(ww, it, sz, id++, err);
		if (rc) {
			return rc;
		}
	}
	return 0;
}

/* ---- API ---------------------------------------------------------------- */

int kw_wheel_writer_new(const char *final_path, int level, int64_t mtime, struct kw_wheel_writer **out,
			struct kw_error *err)
{
	struct kw_wheel_writer *ww;
	const char *slash = strrchr(final_path, '/');
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	*out = NULL;
	ww = kw_calloc(1, sizeof(*ww));
	if (!ww) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* Negative is "default": zlib's 6, what pip and auditwheel write; 0 stores. */
	ww->level = level < 0 ? 6 : level > 9 ? 9 : level;
	ww->jobs = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : (int)ncpu;
	dos_stamp(mtime, &ww->dtime, &ww->ddate);
	ww->tmp_fd = -1;
	ww->final_path = kw_strdup(final_path);
	ww->dir = slash ? kw_strndup(final_path, (size_t)(slash - final_path)) : kw_strdup(".");
	if (!ww->final_path || !ww->dir) {
		kw_wheel_writer_abort(ww);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	*out = ww;
	return 0;
}

static struct item *new_item(struct kw_wheel_writer *ww, enum item_kind kind, const char *name)
{
	struct item *it;

	if (ww->whole) {
		return NULL;
	}
	if (kw_grow(&ww->items, &ww->cap_items, ww->n_items + 1, sizeof(*ww->items))) {
		return NULL;
	}
	it = &ww->items[ww->n_items];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->chunked_fd = -1;
	it->name = kw_strdup(name);
	if (!it->name) {
		return NULL;
	}
	ww->n_items++;
	return it;
}

int kw_wheel_writer_copy(struct kw_wheel_writer *ww, struct kw_wheel *src, size_t i, struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(src, i);
	struct item *it;

	if (!m) {
		return kw_error_set(err, KW_EINVAL, "no member %zu", i);
	}
	it = new_item(ww, ITEM_COPY, m->name);
	if (!it) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	it->src = src;
	it->src_index = i;
	return 0;
}

int kw_wheel_writer_copy_whole(struct kw_wheel_writer *ww, struct kw_wheel *src, struct kw_error *err)
{
	if (ww->n_items > 0 || ww->whole) {
		return kw_error_set(err, KW_EINVAL, "'%s': a whole copy cannot be mixed with members", ww->final_path);
	}
	ww->whole = src;
	return 0;
}

int kw_wheel_writer_add_buffer(struct kw_wheel_writer *ww, const char *name, void *buf, size_t len, unsigned mode,
			       struct kw_error *err)
{
	struct item *it = new_item(ww, ITEM_BUFFER, name);

	if (!it) {
		free(buf);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	it->buf = buf;
	it->len = len;
	it->mode = mode;
	return 0;
}

int kw_wheel_writer_add_file(struct kw_wheel_writer *ww, const char *name, const char *path, unsigned mode,
			     struct kw_error *err)
{
	struct item *it = new_item(ww, ITEM_FILE, name);

	if (!it || !(it->path = kw_strdup(path))) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	it->mode = mode;
	return 0;
}

/* Spread new members over the workers, biggest first, to the least loaded. */
static int assign(struct kw_wheel_writer *ww)
{
	uint64_t load[MAX_WORKERS] = { 0 };
	size_t i;
	int used = 0;

	for (;;) {
		struct item *big = NULL;
		uint64_t bs = 0;
		int k, best = 0;

		for (i = 0; i < ww->n_items; i++) {
			struct item *it = &ww->items[i];
			uint64_t sz;
			struct stat st;

			if (it->kind == ITEM_COPY || it->worker != 0) {
				continue;
			}
			sz = it->kind == ITEM_BUFFER ? it->len : (stat(it->path, &st) == 0 ? (uint64_t)st.st_size : 0);
			if (!big || sz > bs) {
				big = it;
				bs = sz;
			}
		}
		if (!big) {
			return used;
		}
		for (k = 1; k < ww->jobs; k++) {
			if (load[k] < load[best]) {
				best = k;
			}
		}
		load[best] += bs + 1;
		big->worker = best + 1; /* 0 means unassigned */
		if (best + 1 > used) {
			used = best + 1;
		}
	}
}

void kw_wheel_writer_on_progress(struct kw_wheel_writer *ww, kw_progress_fn fn, void *ud)
{
	ww->progress = fn;
	ww->progress_ud = ud;
}

/* ---- private, locked temporary directories ------------------------------ */

/*
 * Every temporary kwheel leaves in an output directory lives in a directory
 * made here, and the process that made it holds flock(LOCK_EX) on it from
 * before it writes anything until it has removed it. The lock, not a pid,
 * says whether the owner still runs: it goes with the owner's death, in
 * whatever pid namespace that owner ran.
 */
int kw_wheel_temp_dir(const char *dir, const char *stem, char **path, int *fd, struct kw_error *err)
{
	unsigned tries;

	*path = NULL;
	*fd = -1;
	for (tries = 0; tries < 16; tries++) {
		char *p = kw_asprintf("%s/%s-%ld-XXXXXX", dir, stem, (long)getpid());
		struct stat a, b;
		int d;

		if (!p) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		if (!mkdtemp(p)) {
			int e = errno;

			free(p);
			return kw_error_set(err, KW_EIO, "'%s': cannot create a temporary directory: %s", dir,
					    strerror(e));
		}
		d = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		while (d >= 0 && flock(d, LOCK_EX) < 0 && errno == EINTR) {
		}
		/*
		 * A sweeper may have locked and removed it between mkdtemp and our
		 * lock: then the name is gone (or is another's) and we start again.
		 */
		if (d >= 0 && fstat(d, &a) == 0 && lstat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*path = p;
			*fd = d;
			return 0;
		}
		if (d >= 0) {
			close(d);
		}
		free(p);
	}
	return kw_error_set(err, KW_EIO, "'%s': cannot keep a temporary directory there", dir);
}

/* Remove what lies in the directory open as fd (plain files and directories, a few levels). */
static void empty_dir(int fd, unsigned depth)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dup_fd >= 0) {
			close(dup_fd);
		}
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (unlinkat(fd, de->d_name, 0) == 0 || errno != EISDIR || depth > 8) {
			continue;
		}
		sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			empty_dir(sub, depth + 1);
			close(sub);
		}
		unlinkat(fd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void kw_wheel_temp_dir_remove(char *path, int fd)
{
	if (path && fd >= 0) {
		empty_dir(fd, 0);
		rmdir(path);
	}
	if (fd >= 0) {
		close(fd); /* the lock goes last: nothing of ours is left for a sweeper to see */
	}
	free(path);
}

/* ---- committing --------------------------------------------------------- */

/* The whole archive as it is stored, with only the member modes made sane. */
static int copy_whole(struct kw_wheel_writer *ww, int out, struct kw_error *err)
{
	struct rawzip z;
	struct stat st;
	size_t i;
	int rc;

	rc = rawzip_open(&z, kw_wheel_path(ww->whole), err);
	if (rc) {
		return rc;
	}
	if (z.n != kw_wheel_member_count(ww->whole) || fstat(z.fd, &st) < 0) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': changed while it was read", kw_wheel_path(ww->whole));
		goto out;
	}
	if (kw_copy_range(z.fd, 0, out, (uint64_t)st.st_size) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", ww->final_path, strerror(errno));
		goto out;
	}
	for (i = 0; i < z.n; i++) {
		const struct raw *r = &z.e[i];
		uint32_t attr = sane_attr(r->ext_attr, r->name, r->name_len);
		unsigned char b[4];

		if (attr == r->ext_attr) {
			continue;
		}
		put32(b, attr);
		if (pwrite(out, b, 4, (off_t)(r->cd_entry_off + 38)) != 4) {
			rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", ww->final_path, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	rawzip_close(&z);
	return rc;
}

int kw_wheel_writer_commit(struct kw_wheel_writer *ww, struct kw_error *err)
{
	struct worker wk[MAX_WORKERS];
	pthread_t th[MAX_WORKERS];
	bool started[MAX_WORKERS] = { false };
	struct rawzip tz[MAX_WORKERS];
	struct rawzip in[8];
	size_t n_in = 0, i;
	struct central cd = { 0 };
	uint64_t pos = 0, total = 0;
	const char *base = strrchr(ww->final_path, '/') ? strrchr(ww->final_path, '/') + 1 : ww->final_path;
	char *stem = NULL;
	int out = -1, rc = 0, used = 0, k;

	memset(wk, 0, sizeof(wk));
	for (k = 0; k < MAX_WORKERS; k++) {
		tz[k].fd = -1;
		tz[k].n = 0;
		tz[k].e = NULL;
		tz[k].path = NULL;
	}
	/* ".<name>.kwheel-<pid>-XXXXXX": all of this commit's temporaries go in there. */
	stem = kw_asprintf(".%s.kwheel", base);
	rc = stem ? kw_wheel_temp_dir(ww->dir, stem, &ww->tmp_dir, &ww->tmp_fd, err)
		  : kw_error_set(err, KW_ENOMEM, "out of memory");
	free(stem);
	if (rc) {
		goto out;
	}
	rc = ww->whole ? 0 : deflate_large(ww, err);
	if (rc) {
		goto out;
	}
	used = ww->whole ? 0 : assign(ww);
	if (ww->progress && used) {
		ww->progress(ww->progress_ud, "compressing", 0, 0);
	}
	for (k = 0; k < used; k++) {
		wk[k].ww = ww;
		wk[k].id = k + 1;
		wk[k].zpath = kw_asprintf("%s/z%d", ww->tmp_dir, k);
		if (!wk[k].zpath) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			break;
		}
		started[k] = pthread_create(&th[k], NULL, compress_worker, &wk[k]) == 0;
		if (!started[k]) {
			compress_worker(&wk[k]);
		}
	}
	for (k = 0; k < used; k++) {
		if (started[k]) {
			pthread_join(th[k], NULL);
		}
		if (!rc && wk[k].rc) {
			rc = kw_error_set(err, wk[k].rc, "%s", wk[k].err.msg);
		}
	}
	for (k = 0; !rc && k < used; k++) {
		rc = rawzip_open(&tz[k], wk[k].zpath, err);
	}
	if (rc) {
		goto out;
	}
	/* Inside our own directory, by name relative to it: never through a link, never an old file. */
	out = openat(ww->tmp_fd, "wheel", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot create a file there: %s", ww->final_path,
				  strerror(errno));
		goto out;
	}
	if (ww->whole) {
		rc = copy_whole(ww, out, err);
	}
	for (i = 0; ww->progress && i < ww->n_items; i++) {
		const struct item *it = &ww->items[i];
		const struct raw *r = it->kind == ITEM_COPY ? NULL
				      : it->worker < 0 ? &it->chunked : rawzip_find(&tz[it->worker - 1], it->name);

		total += it->kind == ITEM_COPY ? kw_wheel_member(it->src, it->src_index)->comp_size : r ? r->comp_size : 0;
	}
	for (i = 0; !rc && i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		const struct raw *r;
		struct raw copy;
		int fd;

		if (ww->progress) {
			ww->progress(ww->progress_ud, "writing", pos, total);
		}

		if (it->kind == ITEM_COPY) {
			const char *p = kw_wheel_path(it->src);
			const struct kw_wheel_member *m = kw_wheel_member(it->src, it->src_index);
			size_t z;

			for (z = 0; z < n_in && strcmp(in[z].path, p) != 0; z++) {
			}
			if (z == n_in) {
				if (n_in == sizeof(in) / sizeof(in[0])) {
					rc = kw_error_set(err, KW_ELIMIT, "too many source archives");
					break;
				}
				rc = rawzip_open(&in[n_in], p, err);
				if (rc) {
					break;
				}
				n_in++;
			}
			r = rawzip_find(&in[z], m->name);
			/* What libzip validated and what we copy must be the same member. */
			if (!r || r->crc != m->crc || r->comp_size != m->comp_size || r->method != m->method) {
				rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' is not what the central directory says",
						  p, m->name);
				break;
			}
			copy = *r;
			copy.ext_attr = sane_attr(r->ext_attr, r->name, r->name_len);
			fd = in[z].fd;
		} else {
			r = it->worker < 0 ? &it->chunked : rawzip_find(&tz[it->worker - 1], it->name);
			if (!r) {
				rc = kw_error_set(err, KW_EINTERNAL, "compressed member '%s' went missing", it->name);
				break;
			}
			copy = *r;
			copy.dtime = ww->dtime;
			copy.ddate = ww->ddate;
			copy.ext_attr = sane_attr((uint32_t)(0100000 | (it->mode & 0777)) << 16, it->name,
						  strlen(it->name));
			fd = it->worker < 0 ? it->chunked_fd : tz[it->worker - 1].fd;
		}
		rc = emit(out, &pos, &cd, &copy, it->name, fd, err, ww->final_path);
	}
	if (!rc && !ww->whole) {
		rc = finish(out, pos, &cd, ww->final_path, err);
	}
	if (!rc && (fchmod(out, 0644) < 0 || fsync(out) < 0)) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", ww->final_path, strerror(errno));
	}
	if (close(out) < 0 && !rc) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", ww->final_path, strerror(errno));
	}
	out = -1;
	/* rename() replaces whatever the final name is (a planted link included) and never follows it. */
	if (!rc && renameat(ww->tmp_fd, "wheel", AT_FDCWD, ww->final_path) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot rename into place: %s", ww->final_path, strerror(errno));
	}
out:
	if (out >= 0) {
		close(out);
	}
	for (k = 0; k < used; k++) {
		rawzip_close(&tz[k]);
		free(wk[k].zpath);
	}
	for (i = 0; i < n_in; i++) {
		rawzip_close(&in[i]);
	}
	free(cd.buf);
	kw_wheel_writer_abort(ww);
	return rc;
}

void kw_wheel_writer_abort(struct kw_wheel_writer *ww)
{
	size_t i;

	if (!ww) {
		return;
	}
	kw_wheel_temp_dir_remove(ww->tmp_dir, ww->tmp_fd);
	for (i = 0; i < ww->n_items; i++) {
		if (ww->items[i].chunked_fd >= 0) {
			close(ww->items[i].chunked_fd);
		}
		free(ww->items[i].name);
		free(ww->items[i].path);
		free(ww->items[i].buf);
	}
	free(ww->items);
	free(ww->final_path);
	free(ww->dir);
	free(ww);
}

/* ---- sweeping ------------------------------------------------------------- */

static bool alnum6(const char *p, const char **end)
{
	int i;

	for (i = 0; i < 6; i++) {
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9'))) {
			return false;
		}
	}
	*end = p + 6;
	return true;
}

static bool digits(const char *p, const char **end)
{
	const char *s = p;

	while (*p >= '0' && *p <= '9') {
		p++;
	}
	*end = p;
	return p != s;
}

/*
 * The names kwheel gives its temporaries in an output directory:
 * ".kwheel-work-<pid>-XXXXXX" (repair's work directory),
 * ".<wheel>.kwheel-<pid>-XXXXXX" (the writer's directory), and the loose
 * ".kwheel-z<k>-<pid>-XXXXXX[.XXXXXX]" files earlier versions left.
 */
static bool temp_name(const char *name)
{
	const char *p = name, *q, *last = NULL;

	if (name[0] != '.') {
		return false;
	}
	while ((q = strstr(p, ".kwheel-")) != NULL) {
		last = q;
		p = q + 1;
	}
	if (!last) {
		return false;
	}
	p = last + 8;
	if (last == name && strncmp(p, "work-", 5) == 0) {
		p += 5;
	} else if (last == name && *p == 'z') {
		if (!digits(p + 1, &p) || *p != '-') {
			return false;
		}
		p++;
	} else if (last == name) {
		return false;
	}
	if (!digits(p, &p) || *p != '-' || !alnum6(p + 1, &p)) {
		return false;
	}
	return *p == '\0' || (last == name && last[8] == 'z' && *p == '.' && alnum6(p + 1, &p) && *p == '\0');
}

void kw_wheel_sweep_stale(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0) {
			close(dfd);
		}
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat a, b;
		int fd;

		if (!temp_name(de->d_name) || fstatat(dfd, de->d_name, &a, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(S_ISREG(a.st_mode) || S_ISDIR(a.st_mode))) {
			continue;
		}
		fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			continue;
		}
		/* Only what nobody holds: a live run keeps its lock until its temporaries are gone. */
		if (fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0) {
			if (S_ISDIR(b.st_mode)) {
				empty_dir(fd, 0);
				unlinkat(dfd, de->d_name, AT_REMOVEDIR);
			} else {
				unlinkat(dfd, de->d_name, 0);
			}
		}
		close(fd);
	}
	closedir(d);
}
