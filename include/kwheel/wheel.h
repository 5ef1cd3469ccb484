/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_WHEEL_H
#define KWHEEL_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"
#include "kwheel/util.h"

/* A wheel file name split per the binary distribution format spec. */
struct kw_wheel_name {
	char *distribution; /* as written (escaped form), e.g. "numpy" */
	char *version;
	char *build;        /* build tag or NULL */
	char *python;       /* compressed tag set, e.g. "py2.py3" */
	char *abi;
	char *platform;     /* compressed, e.g. "manylinux_2_17_x86_64.manylinux2014_x86_64" */
	char **platforms;   /* platform split at '.', NULL-terminated */
	size_t n_platforms;
};

/* Parse a file name (basename or path: the directory part is ignored). */
int kw_wheel_parse_name(const char *filename, struct kw_wheel_name *out, struct kw_error *err);
void kw_wheel_name_release(struct kw_wheel_name *name);

/* The parsed *.dist-info/WHEEL file. */
struct kw_wheel_meta {
	char *wheel_version;  /* "1.0" */
	char *generator;      /* or NULL */
	bool root_is_purelib;
	char **tags;          /* Tag: lines in order, NULL-terminated */
	size_t n_tags;
	char *build;          /* Build: or NULL */
};

struct kw_wheel_member {
	char *name;         /* validated: relative, no "..", no backslash, no NUL */
	uint64_t size;      /* uncompressed size declared by the central directory */
	uint64_t comp_size;
	uint32_t crc;
	uint16_t method;    /* ZIP_CM_STORE / ZIP_CM_DEFLATE ... */
	int64_t mtime;      /* member time stamp (seconds), 0 if unknown */
	bool is_dir;
	uint64_t index;     /* libzip index */
};

struct kw_wheel;

/*
 * Open a wheel read-only and validate it: zip structure (every archive
 * that two zip readers could read as different contents is refused, see
 * rawzip.c), member names (absolute, "..", backslash, NUL, drive letters,
 * not UTF-8 though flagged so, duplicates, names that differ only in case
 * or Unicode normalisation), symlink/device entries, encryption,
 * unsupported compression, exactly one *.dist-info directory. Names are
 * those pip sees (CP437 decoded where the zip says CP437). Nothing is
 * inflated here; the size limits apply to what is inflated later.
 * Returns 0 and a new wheel (kw_wheel_free) in *out; on failure err names
 * the path and the problem.
 */
int kw_wheel_open(struct kw_ctx *ctx, const char *path, struct kw_wheel **out, struct kw_error *err);
void kw_wheel_free(struct kw_wheel *w);

/* Borrowed; valid until kw_wheel_free. */
const char *kw_wheel_path(const struct kw_wheel *w);
const struct kw_wheel_name *kw_wheel_name(const struct kw_wheel *w);
/* "pkg-1.0.dist-info" (no trailing slash). */
const char *kw_wheel_dist_info(const struct kw_wheel *w);
size_t kw_wheel_member_count(const struct kw_wheel *w);
const struct kw_wheel_member *kw_wheel_member(const struct kw_wheel *w, size_t i);
/* Index of the member with that name, or -1. */
long kw_wheel_find(const struct kw_wheel *w, const char *name);

/*
 * Inflate up to max bytes of member i from its start into buf; *got is the
 * count read (less than max only at the end of the member).
 */
int kw_wheel_read_head(struct kw_wheel *w, size_t i, void *buf, size_t max, size_t *got,
		       struct kw_error *err);

/*
 * Inflate member i whole into a new buffer (free()), grown as the data
 * arrives. Fails with KW_EHOSTILE if the data inflates to more or fewer
 * bytes than declared, or the CRC is wrong, and with KW_ELIMIT (or
 * KW_EHOSTILE for the ratio) when what is really inflated passes
 * ctx->limits: max_member_size, max_ratio past 1 GiB of one member, and
 * max_total_size over every member of the wheel read so far.
 */
int kw_wheel_read(struct kw_wheel *w, size_t i, unsigned char **buf, size_t *len,
		  struct kw_error *err);

/* kw_wheel_read that also gives the member's sha256, from the same single inflate. */
int kw_wheel_read_sha256(struct kw_wheel *w, size_t i, unsigned char **buf, size_t *len, unsigned char digest[32],
			 struct kw_error *err);

/*
 * A member's bytes as a mapping of an unlinked temporary file, for readers
 * of large members (ELF): the memory it costs grows with the pages read,
 * not with the member's size. A member of at most KW_WHEEL_MAP_IN_MEMORY
 * bytes, or a deflated one of at most 32 MiB either way (inflated in one
 * call, so in memory whole anyway), is read into memory instead (the file
 * would cost more than it saves); the caller cannot tell the difference.
 */
#define KW_WHEEL_MAP_IN_MEMORY ((uint64_t)4 << 20)
struct kw_wheel_map {
	const unsigned char *data; /* len bytes; valid until kw_wheel_unmap, even after kw_wheel_free */
	size_t len;
	void *base_;               /* private */
	size_t maplen_;            /* private */
};

/*
 * Inflate member i into an unlinked temporary file in $TMPDIR (or /tmp),
 * hashing it in the same pass (digest may be NULL), and map it into *map
 * (release with kw_wheel_unmap); into memory if it is small (above). Runs
 * of zeros become holes in the file.
 * Same checks and limits as kw_wheel_read. On failure *map is zeroed.
 */
int kw_wheel_map(struct kw_wheel *w, size_t i, struct kw_wheel_map *map, unsigned char digest[32],
		 struct kw_error *err);
/* Unmap; a zeroed map (or NULL) is fine. */
void kw_wheel_unmap(struct kw_wheel_map *map);

/*
 * Stream member i through cb in chunks (no whole-member buffer). Same checks
 * as kw_wheel_read. cb returns 0 to go on, or a negative status to stop
 * (which is returned).
 */
typedef int (*kw_wheel_chunk_fn)(void *ud, const void *data, size_t len);
int kw_wheel_stream(struct kw_wheel *w, size_t i, kw_wheel_chunk_fn cb, void *ud,
		    struct kw_error *err);

/* Read and parse *.dist-info/WHEEL. Fills *meta (release with kw_wheel_meta_release). */
int kw_wheel_read_meta(struct kw_wheel *w, struct kw_wheel_meta *meta, struct kw_error *err);
void kw_wheel_meta_release(struct kw_wheel_meta *meta);
/* Parse WHEEL text (for tests and for repair). */
int kw_wheel_parse_meta(const char *text, size_t len, struct kw_wheel_meta *meta,
			struct kw_error *err);

enum kw_record_problem_kind {
	KW_RECORD_NOT_LISTED,     /* member present, no RECORD line */
	KW_RECORD_NO_MEMBER,      /* RECORD line, no such member */
	KW_RECORD_HASH_MISMATCH,
	KW_RECORD_SIZE_MISMATCH,
	KW_RECORD_NO_HASH,        /* line without a hash (allowed only for RECORD itself / signatures) */
	KW_RECORD_BAD_HASH,       /* unknown or weak algorithm, malformed digest */
	KW_RECORD_BAD_LINE,       /* not three CSV fields, unsafe path */
	KW_RECORD_DUPLICATE,      /* path listed twice */
};

struct kw_record_problem {
	enum kw_record_problem_kind kind;
	char *path;
	char *detail; /* e.g. "expected sha256=..., got sha256=..." or NULL */
};

struct kw_record_entry {
	char *path;
	char *algo;     /* "sha256" or NULL when empty */
	char *digest;   /* urlsafe base64, no padding, or NULL */
	int64_t size;   /* -1 when empty */
};

struct kw_record {
	struct kw_record_entry *entries;
	size_t n_entries;
	struct kw_record_problem *problems;
	size_t n_problems;
};

/* Parse RECORD CSV text (quoted fields allowed). */
int kw_record_parse(const char *text, size_t len, struct kw_record *rec, struct kw_error *err);
/*
 * Read RECORD and check every member against it (hashing each member in a
 * stream). Problems go into rec->problems; the return is 0 even when there are
 * problems, non-zero only when RECORD cannot be read at all.
 */
int kw_wheel_verify_record(struct kw_wheel *w, struct kw_record *rec, struct kw_error *err);
/*
 * The same, with the sha256 of some members already known (known[i] for
 * member i where have[i]): those are not inflated again.
 */
int kw_wheel_verify_record_known(struct kw_wheel *w, struct kw_record *rec, const unsigned char (*known)[32],
				 const bool *have, struct kw_error *err);
void kw_record_release(struct kw_record *rec);

/* A RECORD being written: one CSV line per member, quoted where the path needs it. */
struct kw_record_text {
	char *buf;
	size_t len, cap;
};
/* Append "path,hash,size" (hash NULL and size < 0 leave those fields empty). */
int kw_record_text_add(struct kw_record_text *r, const char *path, const char *hash, long long size);
/* "sha256=<urlsafe base64>" of a finished hash or of a buffer (new strings, NULL on failure). */
char *kw_record_digest(struct kw_sha256 *sha);
char *kw_record_digest_buf(const void *buf, size_t len);
const char *kw_record_problem_str(enum kw_record_problem_kind kind);

/*
 * Writing a wheel. Members are added in order; nothing reaches the final
 * path until kw_wheel_writer_commit, which writes the new wheel in a private
 * temporary directory next to it (made by kw_wheel_temp_dir: locked for the
 * writer's life, created O_EXCL, never through a link), fsyncs it and
 * renames it into place: the final path holds a complete wheel or nothing,
 * and every wheel kwheel writes goes this way. Members copied from another
 * wheel keep their compressed bytes (no inflate, no deflate) and their time
 * stamp. Every member's mode is made sane: 0644, or 0755 for a directory or
 * a file with an execute bit; set-uid, set-gid, sticky and group- or
 * world-writable bits never reach the output.
 */
struct kw_wheel_writer;

/*
 * level: deflate level 1-9, 0 to store, negative for the default (6). mtime:
 * time stamp for new members (UTC seconds; DOS time has two-second
 * resolution). New members are compressed at commit, on the pool given by
 * kw_wheel_writer_use_pool (the caller's thread alone without one); the
 * bytes are the same on any number of threads.
 */
int kw_wheel_writer_new(const char *final_path, int level, int64_t mtime, struct kw_wheel_writer **out,
			struct kw_error *err);
/* Compress on pool's threads (borrowed: it must outlive the commit). */
void kw_wheel_writer_use_pool(struct kw_wheel_writer *ww, struct kw_pool *pool);
/* Copy member i of src as it is stored (src must stay open until commit). */
int kw_wheel_writer_copy(struct kw_wheel_writer *ww, struct kw_wheel *src, size_t i, struct kw_error *err);
/*
 * Make the output src's archive byte for byte, only member modes made sane
 * (for a wheel that needs no change). Nothing else may be added; src must
 * stay open until commit.
 */
int kw_wheel_writer_copy_whole(struct kw_wheel_writer *ww, struct kw_wheel *src, struct kw_error *err);
/* Add name from a buffer, which the writer takes (free()d by it, even on error). */
int kw_wheel_writer_add_buffer(struct kw_wheel_writer *ww, const char *name, void *buf, size_t len,
			       unsigned mode, struct kw_error *err);
/* Add name from a file read at commit time (it must stay until then). */
int kw_wheel_writer_add_file(struct kw_wheel_writer *ww, const char *name, const char *path, unsigned mode,
			     struct kw_error *err);
/*
 * The files added are scratch, each added once: commit removes each as soon
 * as it is compressed, so their pages are freed on the pool while the rest
 * compresses, not all at the end on one core (a repair's work files: 500 MB
 * for torch). A commit that fails may have removed some.
 */
void kw_wheel_writer_consume_files(struct kw_wheel_writer *ww);
/* Progress of a long step: phase, and bytes done of total (0, 0 when unknown). */
typedef void (*kw_progress_fn)(void *ud, const char *phase, uint64_t done, uint64_t total);
/* Have commit report its progress through fn (called from the committing thread only). */
void kw_wheel_writer_on_progress(struct kw_wheel_writer *ww, kw_progress_fn fn, void *ud);
/* Write everything and rename into place. The writer is freed either way. */
int kw_wheel_writer_commit(struct kw_wheel_writer *ww, struct kw_error *err);
/* Drop everything; nothing is left on disk. */
void kw_wheel_writer_abort(struct kw_wheel_writer *ww);

/*
 * Rewriting a wheel: the one way repair and km make a new wheel from an old
 * one. Every member of src is copied as it is stored unless it is dropped or
 * replaced (same name, same place); new members are added, those outside
 * the dist-info directory before it (vendored libraries), those inside it
 * after its members, so RECORD is always last. RECORD is regenerated: the
 * line of an unchanged member is taken from the verified RECORD when it
 * names the same size, otherwise the member's bytes are hashed; every new or
 * replaced member is hashed from what is written. RECORD.jws and RECORD.p7s
 * are dropped: they sign the old RECORD, which no longer stands (auditwheel
 * unsigns the same way). No two output names may be equal or differ only in
 * case, and every added name must be a safe member name. Nothing reaches
 * out_path until commit, which goes through the wheel writer (atomic).
 */
struct kw_wheel_rewrite;

/*
 * verified: a RECORD whose every entry was checked against the members'
 * bytes (kw_wheel_verify_record with no problem), or NULL to hash every
 * member. It must stay valid until commit. level as for the writer. mtime:
 * time stamp of new members, or negative for the newest member's time in
 * src (reruns give the same bytes).
 */
int kw_wheel_rewrite_new(struct kw_wheel *src, const struct kw_record *verified, const char *out_path, int level,
			 int64_t mtime, struct kw_wheel_rewrite **out, struct kw_error *err);
void kw_wheel_rewrite_on_progress(struct kw_wheel_rewrite *rw, kw_progress_fn fn, void *ud);
/*
 * Write the added members outside the dist-info directory first, before
 * every member of src: for loaders that load a wheel's libraries in archive
 * order (Pyodide's loadPackage), dependencies must come before what needs
 * them.
 */
void kw_wheel_rewrite_additions_first(struct kw_wheel_rewrite *rw);
/* The files given are scratch, each given once: as kw_wheel_writer_consume_files. */
void kw_wheel_rewrite_consume_files(struct kw_wheel_rewrite *rw);
/* Leave member i out. */
int kw_wheel_rewrite_drop(struct kw_wheel_rewrite *rw, size_t i, struct kw_error *err);
/* Member i's content from a file read at commit (it must stay until then), or from a buffer (taken). */
int kw_wheel_rewrite_replace_file(struct kw_wheel_rewrite *rw, size_t i, const char *path, unsigned mode,
				  struct kw_error *err);
int kw_wheel_rewrite_replace_buffer(struct kw_wheel_rewrite *rw, size_t i, void *buf, size_t len, unsigned mode,
				    struct kw_error *err);
/* A new member. */
int kw_wheel_rewrite_add_file(struct kw_wheel_rewrite *rw, const char *name, const char *path, unsigned mode,
			      struct kw_error *err);
int kw_wheel_rewrite_add_buffer(struct kw_wheel_rewrite *rw, const char *name, void *buf, size_t len, unsigned mode,
				struct kw_error *err);

/*
 * Retagging WHEEL, by one rule for every caller: the Tag lines become the
 * old tags whose platform is not replaced, then one per python-abi pair
 * (those of the old tags, or of the file name when WHEEL has none) and new
 * platform, each once, where the first Tag line was (at the end if there
 * was none). A wheel that was tagged "any" and is replaced is platlib now
 * (Root-Is-Purelib: false): installers would otherwise put its ELF code in
 * purelib. Every other line stays as it was.
 */
struct kw_wheel_retag {
	const char *const *plats;   /* the new platform tags */
	size_t n_plats;
	/* Does an old tag with this platform give way? NULL: every one does. */
	bool (*replaced)(void *ud, const char *plat);
	void *ud;
};
/* WHEEL's text retagged (new string, free()), or NULL when out of memory. */
char *kw_wheel_meta_retag(const char *text, size_t len, const struct kw_wheel_name *name,
			  const struct kw_wheel_retag *rt);
/* Retag src's WHEEL in the rewritten wheel (rt and what it points to must stay valid until commit). */
int kw_wheel_rewrite_retag(struct kw_wheel_rewrite *rw, const struct kw_wheel_retag *rt, struct kw_error *err);
/* Write the new wheel and rename it into place. rw is freed either way. */
int kw_wheel_rewrite_commit(struct kw_wheel_rewrite *rw, struct kw_error *err);
/* Drop it all (buffers given to it are freed); nothing is left on disk. */
void kw_wheel_rewrite_abort(struct kw_wheel_rewrite *rw);

/*
 * A new private directory "<dir>/<stem>-<pid>-XXXXXX" (mode 0700), held with
 * flock(LOCK_EX) through *fd until kw_wheel_temp_dir_remove: the sweeper
 * never touches it while the lock is held. New path in *path (free() it, or
 * pass it to kw_wheel_temp_dir_remove). stem must match what
 * kw_wheel_sweep_stale knows: ".kwheel-work" or ".<wheel name>.kwheel".
 */
int kw_wheel_temp_dir(const char *dir, const char *stem, char **path, int *fd, struct kw_error *err);
/* Empty and remove such a directory, then drop its lock; takes path (freed) and fd (closed). */
void kw_wheel_temp_dir_remove(char *path, int fd);
/*
 * Remove the temporaries runs killed before they could clean up left in
 * dir: those no live process holds the lock of (the pid in the name is not
 * trusted: another pid namespace may share the directory).
 */
void kw_wheel_sweep_stale(const char *dir);

#endif
