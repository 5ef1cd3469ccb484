/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_UTIL_H
#define KWHEEL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

/* A growable vector of owned strings. Zero-initialised is empty. */
struct kw_strv {
	char **v;
	size_t n;
	size_t cap;
};

/* Append a copy of s. */
int kw_strv_push(struct kw_strv *sv, const char *s);
/* Append s itself; on success the vector owns it, on failure the caller still does. */
int kw_strv_push_take(struct kw_strv *sv, char *s);
/* Append s, which is taken in every case: freed on failure, and NULL (a failed allocation) fails. */
int kw_strv_push_own(struct kw_strv *sv, char *s);
/* Index of s or -1. */
long kw_strv_find(const struct kw_strv *sv, const char *s);
/* Append a copy of s unless present. */
int kw_strv_push_unique(struct kw_strv *sv, const char *s);
void kw_strv_sort(struct kw_strv *sv);
/*
 * Drop every string equal to an earlier one, keeping the first of each in
 * its place: kw_strv_push_unique for a whole list at once, in O(n log n)
 * rather than a scan per insert. KW_ENOMEM leaves sv as it was.
 */
int kw_strv_dedup(struct kw_strv *sv);
void kw_strv_release(struct kw_strv *sv);
/* Split s at every sep (empty fields kept as ""); appends to sv. */
int kw_strv_split(struct kw_strv *sv, const char *s, char sep);

/*
 * Strings to indexes, by open addressing: the index that makes a lookup in
 * a list O(1) where it would be a scan per insert. It does not own the
 * strings, which must outlive it unchanged (a kw_strv's strings do, even as
 * its array grows). Zero-initialised is empty.
 */
struct kw_strmap_slot {
	const char *key;
	uint64_t hash;         /* the table's hash of key: compared before the key, and kept when the table grows */
	size_t val;
};
struct kw_strmap {
	struct kw_strmap_slot *slot;
	size_t n, n_slot;
};
/* Map s to val unless s is there (its first value stays): 1 if added, 0 if present, or KW_ENOMEM. */
int kw_strmap_add(struct kw_strmap *m, const char *s, size_t val);
/* The value of s, or -1. */
long kw_strmap_get(const struct kw_strmap *m, const char *s);
/* The same for the first n bytes of s as a string. */
long kw_strmap_get_n(const struct kw_strmap *m, const char *s, size_t n);
void kw_strmap_release(struct kw_strmap *m);
/* kw_strv_push_unique with m indexing sv (each string to its index): O(1) rather than a scan. */
int kw_strv_push_indexed(struct kw_strv *sv, struct kw_strmap *m, const char *s);
/* FNV-1a's offset basis: where a hash of a new string starts. */
#define KW_FNV_BASIS 0xcbf29ce484222325ull
/* FNV-1a of the first n bytes of s, continuing from h (KW_FNV_BASIS to start). */
uint64_t kw_hash_bytes(uint64_t h, const char *s, size_t n);
/* FNV-1a of the string s, from KW_FNV_BASIS. */
uint64_t kw_hash_str(const char *s);

/*
 * A growable string. Zero-initialised is empty. Appends never fail loudly:
 * the first failed allocation makes the builder "failed", later appends do
 * nothing, and kw_buf_take reports it, so a text is built without a check per
 * line and without a buffer sized by hand.
 */
struct kw_buf {
	char *s;      /* NUL-terminated once anything was appended */
	size_t len;   /* bytes in s, without the NUL */
	size_t cap;
	bool failed;  /* an allocation failed: the text is incomplete */
};
void kw_buf_append(struct kw_buf *b, const char *s);
void kw_buf_append_n(struct kw_buf *b, const char *s, size_t n);
void kw_buf_appendf(struct kw_buf *b, const char *fmt, ...) KW_PRINTF(2, 3);
void kw_buf_vappendf(struct kw_buf *b, const char *fmt, va_list ap) KW_PRINTF(2, 0);
/* The text as a new string (freed with free()), "" if nothing was appended; NULL if an
 * allocation failed. The builder is empty afterwards in both cases. */
char *kw_buf_take(struct kw_buf *b);
/* Free the text; the builder is empty again. */
void kw_buf_release(struct kw_buf *b);

/*
 * SHA-256, incremental, computed by libcrypto (which libzip links already):
 * its SHA-NI/AVX2 code is several times faster than portable C. The state
 * is plain memory the caller provides (a stack object is fine, nothing to
 * free, abandoning it unfinished leaks nothing); its layout is libcrypto's.
 */
struct kw_sha256 {
	union {
		uint64_t align;
		unsigned char bytes[128];
	} state;
};
void kw_sha256_init(struct kw_sha256 *s);
void kw_sha256_update(struct kw_sha256 *s, const void *data, size_t len);
void kw_sha256_final(struct kw_sha256 *s, unsigned char out[32]);

/* SHA-512, or SHA-384 (same function, other start values, truncated), incremental; as above. */
struct kw_sha512 {
	union {
		uint64_t align;
		unsigned char bytes[256];
	} state;
	size_t out_len;  /* 64, or 48 for SHA-384 */
};
void kw_sha512_init(struct kw_sha512 *s, bool sha384);
void kw_sha512_update(struct kw_sha512 *s, const void *data, size_t len);
/* Writes 64 or 48 bytes; returns how many. */
size_t kw_sha512_final(struct kw_sha512 *s, unsigned char out[64]);

/* URL-safe base64 without padding (RECORD's digest form). out needs 4*ceil(n/3)+1 bytes. */
void kw_b64url_nopad(const unsigned char *in, size_t n, char *out);
/* Lower-case hex. out needs 2n+1 bytes. */
void kw_hex(const unsigned char *in, size_t n, char *out);

struct stat;
/*
 * Open a path given by a user (or found on a search path) for reading, and
 * refuse anything but a regular file before a read could block: the open
 * itself is non-blocking (a FIFO's would wait for a writer) and never makes
 * a terminal the controlling one, fstat decides, and the descriptor is
 * blocking again on return. 0 and a new descriptor in *fd (close it), the
 * file's status in *st if st is not NULL; KW_ENOTFOUND if nothing is there,
 * KW_EIO if it cannot be opened, KW_EFORMAT "'PATH': not a regular file".
 */
int kw_open_regular(const char *path, int *fd, struct stat *st, struct kw_error *err);
/* A private (copy-on-write) mapping of a whole regular, non-empty file; kw_unmap_file releases it. */
int kw_map_file(const char *path, unsigned char **buf, size_t *len, struct kw_error *err);
void kw_unmap_file(unsigned char *buf, size_t len);
/* Write all len bytes at fd's position, retrying short writes and EINTR. 0, or -1 with errno set. */
int kw_write_all(int fd, const void *buf, size_t len);
/* The same at offset off, fd's position untouched (pwrite). */
int kw_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/*
 * Copy len bytes of in from offset off to out at its position (out's
 * position advances, in's does not), in the kernel (copy_file_range) where
 * it can: within one file system no byte passes through this process, and
 * one that shares extents shares them. Where the kernel cannot (across file
 * systems, to a pipe or device, old kernels) a 64 KiB buffer is copied
 * instead, so memory stays bounded either way. 0, or -1 with errno set
 * (EIO if in ends before off + len).
 */
int kw_copy_range(int in, uint64_t off, int out, uint64_t len);
/* The same to out at offset out_off, out's position untouched (as pwrite is to write). */
int kw_pcopy_range(int in, uint64_t off, int out, uint64_t out_off, uint64_t len);
/* Copy src to a new file dst (created with mode; it must not exist, and a link there is not followed). */
int kw_copy_file(const char *src, const char *dst, unsigned mode, struct kw_error *err);

/*
 * Run the program argv[0] (looked up in PATH) with argv (NULL-terminated),
 * stdin from /dev/null, its stdout appended to out and its stderr to
 * errtext (either may be NULL: stdout is then inherited, stderr still read
 * for the message; at most 1 MiB of stderr is kept). Returns 0 if it exited
 * with status 0. Otherwise KW_EIO with err saying exactly how it ended
 * ("gcc failed (exit status 1): <the first lines that name an error>",
 * "strip killed by signal 9 (Killed)", "cannot run ...", "cannot wait
 * ..."), or KW_ENOMEM. Safe to call from several threads at once.
 */
int kw_run(char *const *argv, struct kw_buf *out, struct kw_buf *errtext, struct kw_error *err);
/*
 * The first max_lines lines of a tool's output that name an error
 * ("error:", "undefined reference", "multiple definition", "cannot find"), joined with
 * "; ", or its first non-empty line if none does: the one-line reason for a
 * message, wherever in a long log it stands. New string (free()); NULL if
 * out of memory.
 */
char *kw_run_first_errors(const char *text, size_t len, size_t max_lines);

/*
 * The one worker pool behind every -j: threads that run the items of
 * batches (n independent calls of one function). kw_pool_new starts
 * threads - 1 threads (the caller of kw_pool_run is the last); a thread
 * that cannot start leaves its share to the others. Returns 0 and a new
 * pool in *out (kw_pool_free joins its threads), or KW_ENOMEM.
 */
int kw_pool_new(unsigned threads, struct kw_pool **out, struct kw_error *err);
void kw_pool_free(struct kw_pool *p);
/* How many threads run a batch of p, the caller's included (1 for NULL). */
unsigned kw_pool_threads(const struct kw_pool *p);
/*
 * Call fn(ud, i) once for each i < n, on p's threads and the calling one,
 * and return when all are done. fn may run batches of its own on p (they
 * nest; the newest batch's items are taken first). With p NULL or one
 * thread, the calls are made in order on the calling thread. fn does its
 * own locking for what the items share; results that must not depend on
 * the number of threads go into per-item slots.
 */
void kw_pool_run(struct kw_pool *p, size_t n, void (*fn)(void *ud, size_t i), void *ud);
/*
 * kw_pool_run for items that can fail (fn returns nonzero): once item k has
 * failed, no item after k is started, and what is returned is the lowest
 * item that failed (n: none), so a caller reports the failure a run in
 * order would have stopped at, on any number of threads.
 */
size_t kw_pool_run_until(struct kw_pool *p, size_t n, int (*fn)(void *ud, size_t i), void *ud);
/*
 * An item of a batch (its index i) and what it costs: sorted by
 * kw_sort_largest_first (largest first, equal sizes in index order), a
 * batch run in that order leaves no big item for last on one thread.
 */
struct kw_sized {
	uint64_t size;
	size_t i;
};
void kw_sort_largest_first(struct kw_sized *v, size_t n);

/* Does name match the shell glob pat (fnmatch without flags)? */
int kw_glob_match(const char *pat, const char *name);

#endif
