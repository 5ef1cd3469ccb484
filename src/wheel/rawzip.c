/* SPDX-License-Identifier: MIT */
/*
 * The project's own reader of a zip's structure. The writer uses it to find
 * the compressed bytes it copies; the wheel reader uses it first, to refuse
 * every archive whose contents depend on which zip reader reads it. pip
 * reads wheels with Python's zipfile, which picks the last end record in
 * the file's last 64 KiB, trusts a zip64 locator whenever one precedes it,
 * shifts every offset by any bytes between the central directory and the
 * end record ("concat"), walks the directory by its size, not its count,
 * and checks only the name of a local header. libzip picks the end record
 * whose directory looks most consistent and walks by count. An archive
 * kwheel accepts is one on which all of these agree: one end record, one
 * central directory ending where the end records begin, local headers that
 * repeat their directory entries, and members that tile the file from
 * offset 0 to the directory without gaps or overlaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <unistr.h>

#include "rawzip.h"

/* Where Python looks for the end record: its 22 bytes and a comment of up to 64 KiB. */
#define EOCD_WINDOW (22 + 65536)

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void rawzip_close(struct rawzip *z)
{
	size_t i;

	for (i = 0; i < z->n; i++) {
		free(z->e[i].name);
		free(z->e[i].raw_name);
	}
	free(z->e);
	if (z->fd >= 0) {
		close(z->fd);
	}
	free(z->path);
	memset(z, 0, sizeof(*z));
	z->fd = -1;
}

static int raw_cmp(const void *a, const void *b)
{
	return strcmp(((const struct raw *)a)->name, ((const struct raw *)b)->name);
}

static int off_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct raw *)a)->local_off, y = ((const struct raw *)b)->local_off;

	return x < y ? -1 : x > y;
}

/* CP437 bytes 0x80-0xff as Python's codec decodes them; 0x00-0x7f are ASCII. */
static const uint16_t cp437_high[128] = {
	0x00c7, 0x00fc, 0x00e9, 0x00e2, 0x00e4, 0x00e0, 0x00e5, 0x00e7,
	0x00ea, 0x00eb, 0x00e8, 0x00ef, 0x00ee, 0x00ec, 0x00c4, 0x00c5,
	0x00c9, 0x00e6, 0x00c6, 0x00f4, 0x00f6, 0x00f2, 0x00fb, 0x00f9,
	0x00ff, 0x00d6, 0x00dc, 0x00a2, 0x00a3, 0x00a5, 0x20a7, 0x0192,
	0x00e1, 0x00ed, 0x00f3, 0x00fa, 0x00f1, 0x00d1, 0x00aa, 0x00ba,
	0x00bf, 0x2310, 0x00ac, 0x00bd, 0x00bc, 0x00a1, 0x00ab, 0x00bb,
	0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556,
	0x2555, 0x2563, 0x2551, 0x2557, 0x255d, 0x255c, 0x255b, 0x2510,
	0x2514, 0x2534, 0x252c, 0x251c, 0x2500, 0x253c, 0x255e, 0x255f,
	0x255a, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256c, 0x2567,
	0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256b,
	0x256a, 0x2518, 0x250c, 0x2588, 0x2584, 0x258c, 0x2590, 0x2580,
	0x03b1, 0x00df, 0x0393, 0x03c0, 0x03a3, 0x03c3, 0x00b5, 0x03c4,
	0x03a6, 0x0398, 0x03a9, 0x03b4, 0x221e, 0x03c6, 0x03b5, 0x2229,
	0x2261, 0x00b1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00f7, 0x2248,
	0x00b0, 0x2219, 0x00b7, 0x221a, 0x207f, 0x00b2, 0x25a0, 0x00a0,
};

int rawzip_decode_name(const char *raw, size_t len, uint16_t flags, char **out, const char **why)
{
	const uint8_t *s = (const uint8_t *)raw;
	uint8_t *d;
	size_t i, o = 0;

	*out = NULL;
	*why = NULL;
	if (flags & ZFLAG_UTF8) {
		/* Python's strict decoder: no overlong forms, no surrogates, nothing past U+10FFFF. */
		if (u8_check(s, len)) {
			*why = "name is not valid UTF-8 though flag bit 11 says it is";
			return KW_EHOSTILE;
		}
		d = kw_malloc(len + 1);
		if (!d) {
			return KW_ENOMEM;
		}
		memcpy(d, s, len);
		d[len] = 0;
		*out = (char *)d;
		return 0;
	}
	/* Every CP437 character is in the BMP: three UTF-8 bytes at most; len < 64 KiB. */
	d = kw_malloc(3 * len + 1);
	if (!d) {
		return KW_ENOMEM;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < 0x80) {
			d[o++] = s[i];
		} else {
			o += (size_t)u8_uctomb(d + o, cp437_high[s[i] - 0x80], 3);
		}
	}
	d[o] = 0;
	*out = (char *)d;
	return 0;
}

/* Walk an extra field block; 0 if its fields tile it exactly, else -1. *z64 points at the zip64 one (or NULL). */
static int walk_extra(const unsigned char *x, size_t xl, const unsigned char **z64, size_t *z64_len)
{
	size_t p = 0;

	*z64 = NULL;
	*z64_len = 0;
	while (p < xl) {
		size_t id, fl;

		if (xl - p < 4) {
			return -1;
		}
		id = le16(x + p);
		fl = le16(x + p + 2);
		if (fl > xl - p - 4) {
			return -1;
		}
		if (id == 1) {
			if (*z64) {
				return -1; /* two of them: readers differ in which one counts */
			}
			*z64 = x + p + 4;
			*z64_len = fl;
		}
		p += 4 + fl;
	}
	return 0;
}

/* Take a zip64 field for *v when it holds the 32-bit marker, in the order the format gives. */
static bool take64(uint64_t *v, uint64_t marker, const unsigned char *z64, size_t len, size_t *q)
{
	if (*v != marker) {
		return true;
	}
	if (!z64 || len < 8 || *q > len - 8) {
		return false;
	}
	*v = le64(z64 + *q);
	*q += 8;
	return true;
}

/*
 * The data descriptor after a member with flag bit 3: an optional signature,
 * the CRC, and the two sizes (8 bytes each when the entry is zip64). It
 * must repeat the central directory; returns its length, or 0.
 */
static size_t descriptor_len(const unsigned char *d, size_t avail, const struct raw *r, bool z64)
{
	size_t sw = z64 ? 8 : 4, form;

	for (form = 0; form < 2; form++) {
		size_t s = form == 0 ? 4 : 0, len = s + 4 + 2 * sw;
		uint64_t cs, us;

		if (avail < len || (s && le32(d) != SIG_DESCRIPTOR)) {
			continue;
		}
		cs = z64 ? le64(d + s + 4) : le32(d + s + 4);
		us = z64 ? le64(d + s + 4 + sw) : le32(d + s + 4 + sw);
		if (le32(d + s) == r->crc && cs == r->comp_size && us == r->size) {
			return len;
		}
	}
	return 0;
}

/*
 * The local headers, read in file order through one buffer: a read takes
 * every header that follows within WINDOW bytes, so a wheel of small
 * members costs a read per few dozen of them, not two per member, and a
 * big member costs one read of its header, not of its data. Reads only
 * move forward, and one overlaps the one before only by a header whose
 * extra field outgrew the guess: whatever the directory claims, the bytes
 * read come to the file's and the headers' at most.
 */
#define WINDOW 65536
#define HEADER_MAX (30 + 2 * 65535) /* the buffer's size: a local header with the longest name and extra */

struct window {
	unsigned char *buf;   /* HEADER_MAX bytes */
	uint64_t off;         /* what buf holds: [off, off + len) */
	size_t len;
};

/* A header's likely end: its name as in the directory, and room for the usual extra fields. */
static uint64_t likely_end(const struct raw *r)
{
	return r->local_off + 30 + r->name_len + 64;
}

/*
 * The len bytes at off (off + len <= cd_off, len <= HEADER_MAX), from the
 * window or read into it, with the headers of the entries after e[i] that
 * fit. NULL if they cannot be read.
 */
static const unsigned char *fetch(struct rawzip *z, struct window *w, size_t i, uint64_t off, size_t len)
{
	uint64_t end = off + len;

	if (off >= w->off && end <= w->off + w->len) {
		return w->buf + (off - w->off);
	}
	for (i++; i < z->n && z->e[i].local_off >= off && likely_end(&z->e[i]) <= off + WINDOW; i++) {
		end = likely_end(&z->e[i]) > end ? likely_end(&z->e[i]) : end;
	}
	end = end < z->cd_off ? end : z->cd_off;
	if (pread_all(z->fd, w->buf, (size_t)(end - off), off) < 0) {
		w->len = 0;
		return NULL;
	}
	w->off = off;
	w->len = (size_t)(end - off);
	return w->buf;
}

/* The local header of e[i]: it must repeat what the directory says; sets data_off and end. */
static int check_local(struct rawzip *z, size_t i, struct window *w, struct kw_error *err)
{
	struct raw *r = &z->e[i];
	const char *path = z->path;
	uint64_t lcs, lus;
	size_t lnl, lxl, q = 0, z64_len;
	const unsigned char *z64, *lb, *nx;
	uint16_t lflags, lmethod;
	uint32_t lcrc;

	if (r->local_off > z->cd_off || z->cd_off - r->local_off < 30 ||
	    !(lb = fetch(z, w, i, r->local_off, 30)) || le32(lb) != SIG_LOCAL) {
		return kw_error_set(err, KW_EFORMAT, "'%s': member '%s' has no local header (inconsistent archive)", path,
				    r->name);
	}
	lflags = le16(lb + 6);
	lcrc = le32(lb + 14);
	lcs = le32(lb + 18);
	lus = le32(lb + 22);
	lnl = le16(lb + 26);
	lxl = le16(lb + 28);
	lmethod = le16(lb + 8);
	/* lb is the window's: the next fetch may move it. */
	if (lnl + lxl > z->cd_off - r->local_off - 30 || !(nx = fetch(z, w, i, r->local_off + 30, lnl + lxl))) {
		return kw_error_set(err, KW_EFORMAT, "'%s': local header of member '%s' runs past the members", path,
				    r->name);
	}
	if (lnl != r->name_len || memcmp(nx, r->raw_name, lnl) != 0) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': the local header of member '%s' names another file "
				    "(inconsistent archive)", path, r->name);
	}
	if (lflags != r->flags || lmethod != r->method) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': the local header of member '%s' gives flags %#x and method %u, "
				    "the central directory %#x and %u (inconsistent archive)", path, r->name, lflags,
				    lmethod, r->flags, r->method);
	}
	if (walk_extra(nx + lnl, lxl, &z64, &z64_len) < 0) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': the local header of member '%s' has a corrupt extra field",
				    path, r->name);
	}
	/* A local zip64 field holds the uncompressed size, then the compressed one. */
	if (!take64(&lus, 0xffffffffu, z64, z64_len, &q) || !take64(&lcs, 0xffffffffu, z64, z64_len, &q)) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': the local header of member '%s' lacks its zip64 sizes", path,
				    r->name);
	}
	/* With a data descriptor the local fields may be zero; where they are given they must agree. */
	if (!((r->flags & ZFLAG_DESCRIPTOR) && lcrc == 0 && lcs == 0 && lus == 0) &&
	    (lcrc != r->crc || lcs != r->comp_size || lus != r->size)) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': the local header of member '%s' declares crc %08x and sizes "
				    "%llu/%llu, the central directory %08x and %llu/%llu (inconsistent archive)", path,
				    r->name, lcrc, (unsigned long long)lcs, (unsigned long long)lus, r->crc,
				    (unsigned long long)r->comp_size, (unsigned long long)r->size);
	}
	r->data_off = r->local_off + 30 + lnl + lxl;
	if (r->comp_size > z->cd_off - r->data_off) {
		return kw_error_set(err, KW_EFORMAT, "'%s': member '%s' runs past the end of the members into the "
				    "central directory", path, r->name);
	}
	r->end = r->data_off + r->comp_size;
	if (r->flags & ZFLAG_DESCRIPTOR) {
		const unsigned char *d;
		size_t avail = z->cd_off - r->end < 24 ? (size_t)(z->cd_off - r->end) : 24, dl;

		if (!(d = fetch(z, w, i, r->end, avail))) {
			return kw_error_set(err, KW_EIO, "'%s': cannot read: %s", path, strerror(errno));
		}
		dl = descriptor_len(d, avail, r, z64 != NULL);
		if (!dl) {
			return kw_error_set(err, KW_EHOSTILE, "'%s': the data descriptor of member '%s' is missing or "
					    "disagrees with the central directory", path, r->name);
		}
		r->end += dl;
	}
	return 0;
}

/* One central directory entry at c (avail bytes left); fills r, *used. */
static int read_entry(struct rawzip *z, const unsigned char *c, uint64_t avail, uint64_t i, struct raw *r,
		      uint64_t *used, struct kw_error *err)
{
	const char *path = z->path, *why = NULL;
	const unsigned char *z64;
	size_t nl, xl, cl, q = 0, z64_len;
	uint64_t disk;
	int rc;

	if (avail < 46 || le32(c) != SIG_CENTRAL) {
		return kw_error_set(err, KW_EFORMAT, "'%s': corrupt central directory entry %llu (inconsistent archive)",
				    path, (unsigned long long)i);
	}
	nl = le16(c + 28);
	xl = le16(c + 30);
	cl = le16(c + 32);
	if (46 + nl + xl + cl > avail) {
		return kw_error_set(err, KW_EFORMAT, "'%s': central directory entry %llu runs past it", path,
				    (unsigned long long)i);
	}
	r->made_by = le16(c + 4);
	r->flags = le16(c + 8);
	r->method = le16(c + 10);
	r->dtime = le16(c + 12);
	r->ddate = le16(c + 14);
	r->crc = le32(c + 16);
	r->comp_size = le32(c + 20);
	r->size = le32(c + 24);
	disk = le16(c + 34);
	r->ext_attr = le32(c + 38);
	r->local_off = le32(c + 42);
	r->cd_index = (size_t)i;
	r->name_len = nl;
	r->raw_name = kw_malloc(nl + 1);
	if (!r->raw_name) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	memcpy(r->raw_name, c + 46, nl);
	r->raw_name[nl] = 0;
	rc = rawzip_decode_name(r->raw_name, nl, r->flags, &r->name, &why);
	if (rc == KW_ENOMEM) {
		return kw_error_set(err, rc, "out of memory");
	}
	if (rc) {
		return kw_error_set(err, rc, "'%s': member %llu: %s", path, (unsigned long long)i, why);
	}
	if (walk_extra(c + 46 + nl, xl, &z64, &z64_len) < 0) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' has a corrupt extra field", path, r->name);
	}
	/* The zip64 field holds the values that are 0xffffffff, in this order. */
	if (!take64(&r->size, 0xffffffffu, z64, z64_len, &q) || !take64(&r->comp_size, 0xffffffffu, z64, z64_len, &q) ||
	    !take64(&r->local_off, 0xffffffffu, z64, z64_len, &q)) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' lacks the zip64 field its directory entry "
				    "needs", path, r->name);
	}
	if (disk != 0) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' is on disk %llu of a split archive", path,
				    r->name, (unsigned long long)disk);
	}
	*used = 46 + nl + xl + cl;
	return 0;
}

/*
 * Find the end record. Python takes the last signature in the final 64 KiB
 * (or the last 22 bytes when they are a record without comment); libzip
 * tries every signature whose comment runs exactly to the end of the file.
 * Only a file where those are one and the same record is accepted.
 */
static int find_eocd(struct rawzip *z, uint64_t fsize, unsigned char *tail, size_t *tl_out, size_t *at,
		     struct kw_error *err)
{
	size_t tl = fsize < EOCD_WINDOW ? (size_t)fsize : EOCD_WINDOW, k, last = SIZE_MAX, found = SIZE_MAX, n = 0;

	if (fsize == 0) {
		return kw_error_set(err, KW_EFORMAT, "'%s': not a zip archive: the file is empty", z->path);
	}
	if (pread_all(z->fd, tail, tl, fsize - tl) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': cannot read: %s", z->path, strerror(errno));
	}
	for (k = 0; k + 4 <= tl; k++) {
		if (le32(tail + k) != SIG_EOCD) {
			continue;
		}
		last = k;
		if (tl - k >= 22 && le16(tail + k + 20) == tl - k - 22) {
			found = k;
			n++;
		}
	}
	if (!n) {
		return kw_error_set(err, KW_EFORMAT, "'%s': not a zip archive: no end of central directory record "
				    "(truncated?)", z->path);
	}
	if (n > 1) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': %zu end of central directory records, each of which a zip "
				    "reader could take", z->path, n);
	}
	if (last != found) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': a second end of central directory record inside the archive "
				    "comment", z->path);
	}
	*tl_out = tl;
	*at = found;
	return 0;
}

int rawzip_open(struct rawzip *z, const char *path, struct kw_error *err)
{
	unsigned char *tail = NULL, h[56], *cd = NULL, *p;
	struct window win = { NULL, 0, 0 };
	uint64_t fsize, cd_off, cd_size, n_ent, pos, i, eocd_off, cd_end, prev;
	size_t tl = 0, at = 0;
	struct stat st;
	int rc = KW_EFORMAT;

	memset(z, 0, sizeof(*z));
	z->fd = open(path, O_RDONLY | O_CLOEXEC);
	z->path = kw_strdup(path);
	if (z->fd < 0 || !z->path || fstat(z->fd, &st) < 0) {
		rc = z->path ? kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(errno))
			     : kw_error_set(err, KW_ENOMEM, "out of memory");
		goto fail;
	}
	fsize = (uint64_t)st.st_size;
	tail = kw_malloc(EOCD_WINDOW);
	win.buf = kw_malloc(HEADER_MAX);
	if (!tail || !win.buf) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto fail;
	}
	rc = find_eocd(z, fsize, tail, &tl, &at, err);
	if (rc) {
		goto fail;
	}
	rc = KW_EFORMAT;
	p = tail + at;
	eocd_off = fsize - tl + at;
	if (le16(p + 4) != 0 || le16(p + 6) != 0 || le16(p + 8) != le16(p + 10)) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': a split (multi-disk) zip archive", path);
		goto fail;
	}
	n_ent = le16(p + 10);
	cd_size = le32(p + 12);
	cd_off = le32(p + 16);
	cd_end = eocd_off;
	/* Python trusts a zip64 locator whenever one precedes the end record, and looks for its record just before it. */
	if (eocd_off >= 20 && pread_all(z->fd, h, 20, eocd_off - 20) == 0 && le32(h) == SIG_LOC64) {
		uint64_t e64 = le64(h + 8);

		if (le32(h + 4) != 0 || le32(h + 16) > 1) {
			rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': a split (multi-disk) zip64 archive", path);
			goto fail;
		}
		if (eocd_off < 76 || e64 != eocd_off - 76 || pread_all(z->fd, h, 56, e64) < 0 || le32(h) != SIG_EOCD64 ||
		    le64(h + 4) != 44) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': the zip64 locator does not point at a zip64 end record "
					  "just before it", path);
			goto fail;
		}
		if (le32(h + 16) != 0 || le32(h + 20) != 0 || le64(h + 24) != le64(h + 32)) {
			rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': a split (multi-disk) zip64 archive", path);
			goto fail;
		}
		if ((n_ent != 0xffff && n_ent != le64(h + 32)) || (cd_size != 0xffffffffu && cd_size != le64(h + 40)) ||
		    (cd_off != 0xffffffffu && cd_off != le64(h + 48))) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': the zip64 end record and the end record describe different "
					  "central directories", path);
			goto fail;
		}
		n_ent = le64(h + 32);
		cd_size = le64(h + 40);
		cd_off = le64(h + 48);
		cd_end = e64;
	}
	/* Python shifts every offset by whatever lies between the directory and the end records. */
	if (cd_off > cd_end || cd_size > cd_end - cd_off) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': the central directory runs past the end record (inconsistent "
				  "archive)", path);
		goto fail;
	}
	if (cd_size != cd_end - cd_off) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': %llu bytes between the central directory and the end record",
				  path, (unsigned long long)(cd_end - cd_off - cd_size));
		goto fail;
	}
	if (cd_size > (1u << 30) || n_ent > cd_size / 46) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': a central directory of %llu bytes cannot hold %llu entries", path,
				  (unsigned long long)cd_size, (unsigned long long)n_ent);
		goto fail;
	}
	z->cd_off = cd_off;
	cd = kw_malloc(cd_size + 1);
	z->e = kw_calloc(n_ent + 1, sizeof(*z->e));
	if (!cd || !z->e) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto fail;
	}
	if (pread_all(z->fd, cd, cd_size, cd_off) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot read the central directory", path);
		goto fail;
	}
	for (pos = 0, i = 0; i < n_ent; i++) {
		uint64_t used = 0;

		rc = read_entry(z, cd + pos, cd_size - pos, i, &z->e[z->n], &used, err);
		if (!rc) {
			z->e[z->n].cd_entry_off = cd_off + pos;
			z->n++;
		} else if (z->e[z->n].raw_name || z->e[z->n].name) {
			z->n++; /* rawzip_close frees what it holds */
		}
		if (rc) {
			goto fail;
		}
		pos += used;
	}
	/* Python walks the directory by its size, libzip by its count: both must end at the same place. */
	if (pos != cd_size) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': the central directory holds %llu bytes more than its %llu "
				  "entries", path, (unsigned long long)(cd_size - pos), (unsigned long long)n_ent);
		goto fail;
	}
	/* The local headers in file order; then the members must tile the file from 0 to the directory. */
	if (z->n) {
		qsort(z->e, z->n, sizeof(*z->e), off_cmp);
	}
	for (i = 0; i < z->n; i++) {
		rc = check_local(z, (size_t)i, &win, err);
		if (rc) {
			goto fail;
		}
	}
	for (prev = 0, i = 0; i < z->n; i++) {
		const struct raw *r = &z->e[i];

		if (r->local_off < prev) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': members '%s' and '%s' overlap", path, z->e[i - 1].name,
					  r->name);
			goto fail;
		}
		if (r->local_off > prev) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': %llu bytes before member '%s' that no member accounts for",
					  path, (unsigned long long)(r->local_off - prev), r->name);
			goto fail;
		}
		prev = r->end;
	}
	if (prev != cd_off) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': %llu bytes before the central directory that no member accounts "
				  "for", path, (unsigned long long)(cd_off - prev));
		goto fail;
	}
	if (z->n) {
		qsort(z->e, z->n, sizeof(*z->e), raw_cmp);
	}
	free(win.buf);
	free(tail);
	free(cd);
	return 0;
fail:
	free(win.buf);
	free(tail);
	free(cd);
	rawzip_close(z);
	return rc;
}

const struct raw *rawzip_find(const struct rawzip *z, const char *name)
{
	struct raw key;

	key.name = (char *)name;
	return z->n ? bsearch(&key, z->e, z->n, sizeof(*z->e), raw_cmp) : NULL;
}
