/* SPDX-License-Identifier: MIT */
/* Whole-file helpers: a private mapping and a copy. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/util.h"

int kw_map_file(const char *path, unsigned char **buf, size_t *len, struct kw_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		int e = errno;

		if (fd >= 0) {
			close(fd);
		}
		return kw_error_set(err, KW_EIO, "cannot read '%s': %s", path,
				    fd < 0 ? strerror(e) : "not a regular file or empty");
	}
	/* Writable but private: libelf may convert data in place, and no write reaches the file. */
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		return kw_error_set(err, KW_EIO, "cannot map '%s': %s", path, strerror(errno));
	}
	*buf = p;
	*len = (size_t)st.st_size;
	return 0;
}

void kw_unmap_file(unsigned char *buf, size_t len)
{
	if (buf) {
		munmap(buf, len);
	}
}

int kw_copy_file(const char *src, const char *dst, unsigned mode, struct kw_error *err)
{
	unsigned char buf[1 << 16];
	int in = open(src, O_RDONLY | O_CLOEXEC), out, e;
	ssize_t n;

	if (in < 0) {
		return kw_error_set(err, KW_EIO, "cannot read '%s': %s", src, strerror(errno));
	}
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (out < 0) {
		e = errno;
		close(in);
		return kw_error_set(err, KW_EIO, "cannot create '%s': %s", dst, strerror(e));
	}
	for (;;) {
		size_t off = 0;

		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			e = errno;
			close(in);
			close(out);
			return kw_error_set(err, KW_EIO, "cannot read '%s': %s", src, strerror(e));
		}
		if (n == 0) {
			break;
		}
		/* A short write is not an error by itself: the next one says why, if any. */
		while (off < (size_t)n) {
			ssize_t w = write(out, buf + off, (size_t)n - off);

			if (w < 0 && errno == EINTR) {
				continue;
			}
			if (w <= 0) {
				e = w < 0 ? errno : EIO;
				close(in);
				close(out);
				return kw_error_set(err, KW_EIO, "cannot write '%s': %s", dst, strerror(e));
			}
			off += (size_t)w;
		}
	}
	close(in);
	if (close(out) != 0) {
		return kw_error_set(err, KW_EIO, "cannot write '%s': %s", dst, strerror(errno));
	}
	return 0;
}
