/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_WHEEL_RAWZIP_H
#define KWHEEL_WHEEL_RAWZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

#define ZFLAG_ENCRYPTED 0x0001u
#define ZFLAG_DESCRIPTOR 0x0008u  /* crc and sizes follow the data */
#define ZFLAG_PATCHED 0x0020u
#define ZFLAG_STRONG 0x0040u
#define ZFLAG_UTF8 0x0800u        /* the name is UTF-8; otherwise CP437 */

/* A member as stored in some archive on disk: where its compressed bytes are. */
struct raw {
	char *name;         /* as Python's zipfile reads it: UTF-8, or CP437 decoded to UTF-8 */
	char *raw_name;     /* the bytes of the directory, NUL-terminated */
	size_t name_len;    /* bytes of raw_name; more than strlen(raw_name) if it holds a NUL */
	const char *name_error; /* why the name could not be decoded, or NULL */
	uint16_t flags, method, dtime, ddate, made_by;
	uint32_t crc, ext_attr;
	uint64_t comp_size, size;
	uint64_t local_off;  /* the local header */
	uint64_t data_off;
	uint64_t end;        /* past the data and its data descriptor */
	size_t cd_index;     /* position in the central directory (libzip's index) */
	uint64_t cd_entry_off; /* where its central directory record starts in the file */
};

struct rawzip {
	char *path;
	int fd;
	struct raw *e;
	size_t n;
	uint64_t cd_off;    /* where the central directory starts: every member lies before it */
};

/*
 * Read the central directory (zip64 included) of path and the local header
 * of every entry, and refuse (KW_EHOSTILE) every archive that two zip
 * readers could read as different contents: a second end record a reader
 * could pick, a zip64 record that disagrees with the end record, a
 * central directory that does not end where the end records begin or holds
 * more or fewer entries than it says, a local header that disagrees with
 * its directory entry, members that overlap, and bytes that no member
 * accounts for (before the first, between two, before the directory).
 * Entries are sorted by name; raw names keep every byte.
 */
int rawzip_open(struct rawzip *z, const char *path, struct kw_error *err);
void rawzip_close(struct rawzip *z);
/* The entry whose decoded name is name, or NULL. Borrowed. */
const struct raw *rawzip_find(const struct rawzip *z, const char *name);
int pread_all(int fd, void *buf, size_t len, uint64_t off);

/*
 * Decode a member name as Python's zipfile does (UTF-8 when flag bit 11 is
 * set, CP437 otherwise) into a new UTF-8 string in *out (free()). Returns
 * 0, KW_ENOMEM, or KW_EHOSTILE with *why saying what is wrong (not UTF-8).
 */
int rawzip_decode_name(const char *raw, size_t len, uint16_t flags, char **out, const char **why);

#endif
