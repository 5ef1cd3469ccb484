/* SPDX-License-Identifier: MIT */
/*
 * The wheel writer. It writes the zip format itself rather than through
 * libzip's writer for two reasons: members copied from another archive must
 * keep their compressed bytes, moved by the kernel (copy_file_range) without
 * passing through user space; and the output must be the same bytes for the
 * same input (no extra fields, fixed field values, our time stamps). New
 * members are compressed here too, on the caller's pool (see compress_all):
 * small ones whole, large ones in independent 1 MiB pieces on every thread,
 * as pigz does (each piece ended as a sync flush ends it, the last by the
 * final block), which any inflater reads as one stream. The pieces are the
 * same whatever the number of threads, so the bytes are too.
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

#include <libdeflate.h>
#include <zlib.h>

#include "internal.h"
#include "rawzip.h"

/* New members this large are deflated in pieces of PIECE bytes on every core. */
#define CHUNKED_MIN (UINT64_C(4) << 20)
#define PIECE ((size_t)1 << 20)

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
	uint64_t size;         /* new members: bytes before compression (fixed at commit) */
	size_t first_task, n_tasks; /* new members: their pieces, in order, in ww->tasks */
	size_t tasks_left;     /* ITEM_FILE: pieces not yet compressed (under ww->lock) */
	struct raw z;          /* new members: method, crc and sizes once compressed */
};

struct kw_wheel_writer {
	char *final_path;
	char *tmp_dir;         /* private, locked directory of this commit's temporaries */
	int tmp_fd;            /* holds the lock on tmp_dir, or -1 */
	char *dir;
	struct kw_wheel *whole; /* copy this archive whole instead of member by member */
	int level;
	struct kw_pool *pool;  /* borrowed: where the compression runs; NULL: here */
	bool consume;          /* added files are scratch: each removed once compressed */
	pthread_mutex_t lock;  /* the scratch file's end and the compressor cache */
	int scratch_fd;        /* the new members' compressed bytes, or -1 */
	uint64_t scratch_end;
	struct task *tasks;
	size_t n_tasks;
	struct libdeflate_compressor *compressors[64];
	size_t n_compressors;
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

/* ---- output ------------------------------------------------------------ */

/* One piece of a new member's compression (see compress_all). */
struct task {
	size_t item;
	uint64_t off;        /* of the member's bytes */
	size_t len;
	bool last;           /* the member's last piece (chunked: ends the stream) */
	uint64_t out_off;    /* what it made, in the scratch file */
	size_t out_len;
	uint32_t crc;        /* of its len input bytes */
	int error;           /* errno of its failure, or 0 */
};


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

/*
 * One member: local header, data, and its central directory record. The
 * data is r's comp_size bytes at r->data_off in src_fd, or, for a new
 * member, what its n tasks appended there, in order.
 */
static int emit(int out, uint64_t *pos, struct central *cd, const struct raw *r, const char *name, int src_fd,
		const struct task *tasks, size_t n, struct kw_error *err, const char *dest)
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
	size_t need = 46 + nl + 28, k;
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
	if (kw_write_all(out, lh, 30) < 0 || kw_write_all(out, name, nl) < 0 ||
	    (z64 && kw_write_all(out, lh + 30, 20) < 0) || (!tasks && kw_copy_range(src_fd, r->data_off, out, r->comp_size) < 0)) {
		return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
	}
	for (k = 0; k < n; k++) {
		if (kw_copy_range(src_fd, tasks[k].out_off, out, tasks[k].out_len) < 0) {
			return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
		}
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

	if (kw_write_all(out, cd->buf, cd->len) < 0) {
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
	if (kw_write_all(out, e, el + 22) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': write failed: %s", dest, strerror(errno));
	}
	return 0;
}

/* ---- compression --------------------------------------------------------- */

/*
 * Every new member is compressed by the tasks of one batch on the pool: a
 * member under CHUNKED_MIN is one task, deflated whole by libdeflate (about
 * twice zlib's speed at the same level, and as small); a larger one is a
 * task per PIECE, each deflated by libdeflate on its own and then made a
 * piece of the longer stream (unfinal). A task appends what it made to the
 * commit's scratch file and records where, so memory is a few pieces per
 * thread, not the output. The
 * bytes of a task depend on its input alone, and the wheel is written from
 * the records in member order: the same bytes on any number of threads.
 */

/* A libdeflate compressor at the commit's level: reused across tasks, one per thread at a time. */
static struct libdeflate_compressor *take_compressor(struct kw_wheel_writer *ww)
{
	struct libdeflate_compressor *c = NULL;

	pthread_mutex_lock(&ww->lock);
	if (ww->n_compressors > 0) {
		c = ww->compressors[--ww->n_compressors];
	}
	pthread_mutex_unlock(&ww->lock);
	return c ? c : libdeflate_alloc_compressor(ww->level);
}

static void give_compressor(struct kw_wheel_writer *ww, struct libdeflate_compressor *c)
{
	pthread_mutex_lock(&ww->lock);
	if (ww->n_compressors < sizeof(ww->compressors) / sizeof(ww->compressors[0])) {
		ww->compressors[ww->n_compressors++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&ww->lock);
	libdeflate_free_compressor(c);
}

/*
 * libdeflate ends every stream it makes: its last block has BFINAL set and
 * its last byte is padded. To make its output of one piece the middle of a
 * longer stream, find that block's header and the stream's last bit by
 * walking the blocks with zlib's inflate (Z_BLOCK stops at each boundary;
 * data_type tells the unused bits of the last byte read and whether the
 * block just ended was the final one), clear the bit, and end the piece as
 * a sync flush does: an empty stored block (BTYPE 00, then LEN 0 and NLEN
 * 0xffff on a byte boundary). The walk inflates the piece, and it is kept
 * only if that gives the input back and the final bit was where the walk
 * says: a piece that cannot be proven is an error, never a guess. Pieces
 * share no history, and are still smaller than zlib's pieces primed with
 * the 32 KiB before them (torch repaired: 192.5 MB against 193.4 MB).
 * z has room for five more bytes.
 */
static int unfinal(unsigned char *z, size_t *z_len, const unsigned char *in, size_t len)
{
	z_stream s;
	unsigned char *back = kw_malloc(len + 1);
	uint64_t hdr = 0, end = 0;
	bool found = false;
	size_t n;

	memset(&s, 0, sizeof(s));
	if (!back || inflateInit2(&s, -15) != Z_OK) {
		free(back);
		return KW_ENOMEM;
	}
	s.next_in = z;
	s.avail_in = (uInt)*z_len;
	s.next_out = back;
	s.avail_out = (uInt)len + 1;
	/* Each call ends a block or makes no progress (Z_BUF_ERROR): bounded by the piece's blocks. */
	while (!found && inflate(&s, Z_BLOCK) == Z_OK) {
		if (s.data_type & 128) {
			uint64_t at = (uint64_t)(*z_len - s.avail_in) * 8 - (unsigned)(s.data_type & 7);

			if (s.data_type & 64) {
				end = at;
				found = true;
			} else {
				hdr = at;
			}
		}
	}
	found = found && s.total_out == len && memcmp(back, in, len) == 0 && (end + 7) / 8 == *z_len &&
		(z[hdr / 8] >> (hdr % 8) & 1);
	inflateEnd(&s);
	free(back);
	if (!found) {
		return KW_EINTERNAL;
	}
	z[hdr / 8] &= (unsigned char)~(1u << (hdr % 8));
	n = (size_t)((end + 7) / 8);
	if (end % 8) {
		z[n - 1] &= (unsigned char)((1u << (end % 8)) - 1);
	}
	/* The stored block's three header bits fit in the last byte if it has three free. */
	if (end % 8 == 0 || end % 8 > 5) {
		z[n++] = 0;
	}
	memcpy(z + n, "\0\0\377\377", 4);
	*z_len = n + 4;
	return 0;
}

/* Append n bytes to the scratch file; where they went in *off. */
static int scratch_append(struct kw_wheel_writer *ww, const void *buf, size_t n, uint64_t *off)
{
	pthread_mutex_lock(&ww->lock);
	*off = ww->scratch_end;
	ww->scratch_end += n;
	pthread_mutex_unlock(&ww->lock);
	return kw_pwrite_all(ww->scratch_fd, buf, n, *off);
}

/* One task (kw_pool_run_until): its input read, compressed, appended; a failure in the task's slot. */
static int compress_task(void *ud, size_t i)
{
	struct kw_wheel_writer *ww = ud;
	struct task *t = &ww->tasks[i];
	struct item *it = &ww->items[t->item];
	bool chunked = it->size >= CHUNKED_MIN;
	unsigned char *buf = NULL, *made = NULL;
	const unsigned char *in, *out;
	int fd = -1, rc = 0;

	if (it->kind == ITEM_BUFFER) {
		/* An empty member may have no buffer at all. */
		in = it->buf ? (const unsigned char *)it->buf + t->off : (const unsigned char *)"";
	} else {
		fd = open(it->path, O_RDONLY | O_CLOEXEC);
		buf = fd >= 0 ? kw_malloc(t->len + 1) : NULL;
		if (!buf || pread_all(fd, buf, t->len, t->off) != 0) {
			rc = fd < 0 || buf ? KW_EIO : KW_ENOMEM;
			goto out;
		}
		in = buf;
	}
	t->crc = (uint32_t)libdeflate_crc32(0, in, t->len);
	if (ww->level == 0) {
		out = in;
		t->out_len = t->len;
	} else {
		struct libdeflate_compressor *c = take_compressor(ww);
		size_t cap = c ? libdeflate_deflate_compress_bound(c, t->len) + 5 : 0;

		made = c ? kw_malloc(cap) : NULL;
		t->out_len = made ? libdeflate_deflate_compress(c, in, t->len, made, cap - 5) : 0;
		rc = !c || !made ? KW_ENOMEM : t->out_len == 0 ? KW_EINTERNAL : 0;
		if (c) {
			give_compressor(ww, c);
		}
		if (!rc && chunked && !t->last) {
			rc = unfinal(made, &t->out_len, in, t->len);
		}
		out = made;
	}
	if (!rc && scratch_append(ww, out, t->out_len, &t->out_off) < 0) {
		rc = KW_EIO;
	}
out:
	if (rc) {
		t->error = rc == KW_ENOMEM ? ENOMEM : rc == KW_EIO && errno ? errno : EIO;
	}
	if (fd >= 0) {
		close(fd);
	}
	free(buf);
	free(made);
	if (!rc && ww->consume && it->kind == ITEM_FILE) {
		bool read_all;

		pthread_mutex_lock(&ww->lock);
		read_all = --it->tasks_left == 0;
		pthread_mutex_unlock(&ww->lock);
		/* Its pages are freed here, on the pool, while the rest compresses: not all at the end on one core. */
		if (read_all) {
			unlink(it->path);
		}
	}
	return rc;
}

/*
 * The size of each new member, fixed before anything is compressed: a file
 * is read for exactly this many bytes, so one that changes size later is an
 * error, not a different member.
 */
static int measure(struct kw_wheel_writer *ww, struct kw_error *err)
{
	size_t i;

	for (i = 0; i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		struct stat st;

		if (it->kind == ITEM_BUFFER) {
			it->size = it->len;
		} else if (it->kind == ITEM_FILE) {
			if (stat(it->path, &st) < 0) {
				return kw_error_set(err, KW_EIO, "'%s': %s: %s", ww->final_path, it->name, strerror(errno));
			}
			if (!S_ISREG(st.st_mode)) {
				return kw_error_set(err, KW_EIO, "'%s': %s: not a regular file", ww->final_path, it->name);
			}
			it->size = (uint64_t)st.st_size;
		}
	}
	return 0;
}

/* Compress every new member into the scratch file and describe each in it->z. */
static int compress_all(struct kw_wheel_writer *ww, struct kw_error *err)
{
	size_t i, n = 0, failed;
	int rc = measure(ww, err);

	if (rc) {
		return rc;
	}
	for (i = 0; i < ww->n_items; i++) {
		const struct item *it = &ww->items[i];

		if (it->kind != ITEM_COPY) {
			n += it->size >= CHUNKED_MIN ? (size_t)((it->size + PIECE - 1) / PIECE) : 1;
		}
	}
	if (n == 0) {
		return 0;
	}
	ww->scratch_fd = openat(ww->tmp_fd, "deflated", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	ww->tasks = kw_calloc(n, sizeof(*ww->tasks));
	if (ww->scratch_fd < 0 || !ww->tasks) {
		return ww->tasks ? kw_error_set(err, KW_EIO, "'%s': cannot create a file there: %s", ww->final_path,
						strerror(errno))
				 : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		uint64_t off = 0;

		if (it->kind == ITEM_COPY) {
			continue;
		}
		it->first_task = ww->n_tasks;
		do {
			struct task *t = &ww->tasks[ww->n_tasks++];
			uint64_t left = it->size - off;

			t->item = i;
			t->off = off;
			t->len = it->size < CHUNKED_MIN ? (size_t)it->size : left < PIECE ? (size_t)left : PIECE;
			off += t->len;
			t->last = off == it->size;
		} while (off < it->size);
		it->n_tasks = ww->n_tasks - it->first_task;
		it->tasks_left = it->n_tasks;
	}
	failed = kw_pool_run_until(ww->pool, ww->n_tasks, compress_task, ww);
	if (failed < ww->n_tasks) {
		const struct item *it = &ww->items[ww->tasks[failed].item];

		return kw_error_set(err, KW_EIO, "'%s': %s: cannot compress it: %s", ww->final_path, it->name,
				    strerror(ww->tasks[failed].error));
	}
	for (i = 0; i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		uLong crc = crc32(0L, Z_NULL, 0);
		size_t k;

		if (it->kind == ITEM_COPY) {
			continue;
		}
		memset(&it->z, 0, sizeof(it->z));
		for (k = 0; k < it->n_tasks; k++) {
			const struct task *t = &ww->tasks[it->first_task + k];

			crc = crc32_combine(crc, t->crc, (z_off_t)t->len);
			it->z.comp_size += t->out_len;
		}
		it->z.method = ww->level ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
		it->z.crc = (uint32_t)crc;
		it->z.size = it->size;
	}
	return 0;
}

/* ---- API ---------------------------------------------------------------- */

int kw_wheel_writer_new(const char *final_path, int level, int64_t mtime, struct kw_wheel_writer **out,
			struct kw_error *err)
{
	struct kw_wheel_writer *ww;
	const char *slash = strrchr(final_path, '/');

	*out = NULL;
	ww = kw_calloc(1, sizeof(*ww));
	if (!ww) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* Negative is "default": zlib's 6, what pip and auditwheel write; 0 stores. */
	ww->level = level < 0 ? 6 : level > 9 ? 9 : level;
	dos_stamp(mtime, &ww->dtime, &ww->ddate);
	ww->tmp_fd = -1;
	ww->scratch_fd = -1;
	pthread_mutex_init(&ww->lock, NULL);
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

void kw_wheel_writer_use_pool(struct kw_wheel_writer *ww, struct kw_pool *pool)
{
	ww->pool = pool;
}

void kw_wheel_writer_consume_files(struct kw_wheel_writer *ww)
{
	ww->consume = true;
}

int kw_wheel_writer_commit(struct kw_wheel_writer *ww, struct kw_error *err)
{
	struct rawzip in[8];
	size_t n_in = 0, i;
	struct central cd = { 0 };
	uint64_t pos = 0, total = 0;
	const char *base = strrchr(ww->final_path, '/') ? strrchr(ww->final_path, '/') + 1 : ww->final_path;
	char *stem = NULL;
	int out = -1, rc = 0;

	/* ".<name>.kwheel-<pid>-XXXXXX": all of this commit's temporaries go in there. */
	stem = kw_asprintf(".%s.kwheel", base);
	rc = stem ? kw_wheel_temp_dir(ww->dir, stem, &ww->tmp_dir, &ww->tmp_fd, err)
		  : kw_error_set(err, KW_ENOMEM, "out of memory");
	free(stem);
	if (rc) {
		goto out;
	}
	if (ww->progress && !ww->whole) {
		ww->progress(ww->progress_ud, "compressing", 0, 0);
	}
	rc = ww->whole ? 0 : compress_all(ww, err);
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

		total += it->kind == ITEM_COPY ? kw_wheel_member(it->src, it->src_index)->comp_size : it->z.comp_size;
	}
	for (i = 0; !rc && i < ww->n_items; i++) {
		struct item *it = &ww->items[i];
		struct raw copy;

		if (ww->progress) {
			ww->progress(ww->progress_ud, "writing", pos, total);
		}
		if (it->kind == ITEM_COPY) {
			const char *p = kw_wheel_path(it->src);
			const struct kw_wheel_member *m = kw_wheel_member(it->src, it->src_index);
			const struct raw *r;
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
			rc = emit(out, &pos, &cd, &copy, it->name, in[z].fd, NULL, 0, err, ww->final_path);
		} else {
			copy = it->z;
			copy.dtime = ww->dtime;
			copy.ddate = ww->ddate;
			copy.ext_attr = sane_attr((uint32_t)(0100000 | (it->mode & 0777)) << 16, it->name,
						  strlen(it->name));
			rc = emit(out, &pos, &cd, &copy, it->name, ww->scratch_fd, ww->tasks + it->first_task, it->n_tasks,
				  err, ww->final_path);
		}
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
		free(ww->items[i].name);
		free(ww->items[i].path);
		free(ww->items[i].buf);
	}
	if (ww->scratch_fd >= 0) {
		close(ww->scratch_fd);
	}
	while (ww->n_compressors > 0) {
		libdeflate_free_compressor(ww->compressors[--ww->n_compressors]);
	}
	pthread_mutex_destroy(&ww->lock);
	free(ww->tasks);
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
