/* SPDX-License-Identifier: MIT */
/*
 * A second, independent reader of a zip's central directory. The writer
 * uses it to find the compressed bytes it copies; the reader uses it to
 * check that libzip's view (names as C strings) is the whole truth: a name
 * with a NUL byte in it, or a local header that disagrees, is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawzip.h"

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

/*
 * Read a central directory (zip64 included) and every local header it
 * points to. Every size and offset is checked against the file: this also
 * reads archives that came from outside, even if libzip accepted them first.
 */
int rawzip_open(struct rawzip *z, const char *path, struct kw_error *err)
{
	unsigned char tail[65536 + 22], h[64], *cd = NULL;
	uint64_t fsize, cd_off, cd_size, n_ent, pos, i;
	size_t tl, k;
	struct stat st;
	long eocd = -1;
	int rc = KW_EFORMAT;

	memset(z, 0, sizeof(*z));
	z->fd = open(path, O_RDONLY | O_CLOEXEC);
	z->path = kw_strdup(path);
	if (z->fd < 0 || !z->path || fstat(z->fd, &st) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(errno));
		goto fail;
	}
	fsize = (uint64_t)st.st_size;
	tl = fsize < sizeof(tail) ? (size_t)fsize : sizeof(tail);
	if (tl < 22 || pread_all(z->fd, tail, tl, fsize - tl) < 0) {
		kw_error_set(err, rc, "'%s': not a zip archive", path);
		goto fail;
	}
	for (k = tl - 22 + 1; k-- > 0;) {
		if (le32(tail + k) == SIG_EOCD && k + 22 + le16(tail + k + 20) <= tl) {
			eocd = (long)k;
			break;
		}
	}
	if (eocd < 0) {
		kw_error_set(err, rc, "'%s': no end of central directory", path);
		goto fail;
	}
	n_ent = le16(tail + eocd + 10);
	cd_size = le32(tail + eocd + 12);
	cd_off = le32(tail + eocd + 16);
	if ((n_ent == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) && eocd >= 20 &&
	    le32(tail + eocd - 20) == SIG_LOC64) {
		uint64_t e64 = le64(tail + eocd - 20 + 8);

		if (e64 > fsize - 56 || pread_all(z->fd, h, 56, e64) < 0 || le32(h) != SIG_EOCD64) {
			kw_error_set(err, rc, "'%s': bad zip64 end of central directory", path);
			goto fail;
		}
		n_ent = le64(h + 32);
		cd_size = le64(h + 40);
		cd_off = le64(h + 48);
	}
	if (cd_off > fsize || cd_size > fsize - cd_off || n_ent > cd_size / 46 || cd_size > (1u << 30)) {
		kw_error_set(err, rc, "'%s': central directory lies outside the file", path);
		goto fail;
	}
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
		struct raw *r = &z->e[z->n];
		uint64_t nl, xl, cl, lho, x;
		const unsigned char *c = cd + pos;

		if (cd_size - pos < 46 || le32(c) != SIG_CENTRAL) {
			kw_error_set(err, rc, "'%s': corrupt central directory entry %llu", path, (unsigned long long)i);
			goto fail;
		}
		nl = le16(c + 28);
		xl = le16(c + 30);
		cl = le16(c + 32);
		if (46 + nl + xl + cl > cd_size - pos) {
			kw_error_set(err, rc, "'%s': central directory entry %llu runs past it", path, (unsigned long long)i);
			goto fail;
		}
		r->cd_entry_off = cd_off + pos;
		r->made_by = le16(c + 4);
		r->flags = le16(c + 8);
		r->method = le16(c + 10);
		r->dtime = le16(c + 12);
		r->ddate = le16(c + 14);
		r->crc = le32(c + 16);
		r->comp_size = le32(c + 20);
		r->size = le32(c + 24);
		r->ext_attr = le32(c + 38);
		lho = le32(c + 42);
		r->name = kw_malloc(nl + 1);
		if (r->name) {
			memcpy(r->name, c + 46, nl);
			r->name[nl] = 0;
		}
		r->name_len = nl;
		if (!r->name) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto fail;
		}
		z->n++;
		/* zip64 extra: the fields that were 0xffffffff, in this order. */
		for (x = 0; x + 4 <= xl;) {
			const unsigned char *f = c + 46 + nl + x;
			uint64_t id = le16(f), fl = le16(f + 2), q = 4;

			if (x + 4 + fl > xl) {
				break;
			}
			if (id == 1) {
				if (r->size == 0xffffffffu && q + 8 <= 4 + fl) {
					r->size = le64(f + q), q += 8;
				}
				if (r->comp_size == 0xffffffffu && q + 8 <= 4 + fl) {
					r->comp_size = le64(f + q), q += 8;
				}
				if (lho == 0xffffffffu && q + 8 <= 4 + fl) {
					lho = le64(f + q);
				}
			}
			x += 4 + fl;
		}
		if (lho > fsize - 30 || pread_all(z->fd, h, 30, lho) < 0 || le32(h) != SIG_LOCAL) {
			kw_error_set(err, rc, "'%s': member '%s' has no local header", path, r->name);
			goto fail;
		}
		r->data_off = lho + 30 + le16(h + 26) + le16(h + 28);
		if (r->data_off > fsize || r->comp_size > fsize - r->data_off) {
			kw_error_set(err, rc, "'%s': member '%s' runs past the end of the file", path, r->name);
			goto fail;
		}
		pos += 46 + nl + xl + cl;
	}
	if (z->n) {
		qsort(z->e, z->n, sizeof(*z->e), raw_cmp);
	}
	free(cd);
	return 0;
fail:
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

