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

/* A member as stored in some archive on disk: where its compressed bytes are. */
struct raw {
	char *name;
	size_t name_len;    /* bytes in the directory; more than strlen(name) if it holds a NUL */
	uint16_t flags, method, dtime, ddate, made_by;
	uint32_t crc, ext_attr;
	uint64_t comp_size, size;
	uint64_t data_off;
	uint64_t cd_entry_off; /* where its central directory record starts in the file */
};

struct rawzip {
	char *path;
	int fd;
	struct raw *e;
	size_t n;
};

/*
 * Read the central directory (zip64 included) of path and the local header
 * of every entry; sizes and offsets are checked against the file. Entries
 * are sorted by name; raw names keep every byte (name_len may exceed strlen).
 */
int rawzip_open(struct rawzip *z, const char *path, struct kw_error *err);
void rawzip_close(struct rawzip *z);
const struct raw *rawzip_find(const struct rawzip *z, const char *name);
int pread_all(int fd, void *buf, size_t len, uint64_t off);

#endif
