/* SPDX-License-Identifier: MIT */
/* Whole-file helpers: opening only regular files, a private mapping and copies. */
#define _GNU_SOURCE /* copy_file_range */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/util.h"

int kw_open_regular(const char *path, int *fd, struct stat *st, struct kw_error *err)
{
	struct stat local;
	int f, flags, e;

	*fd = -1;
	if (!st) {
		st = &local;
	}
	f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (f < 0) {
		e = errno;
		return kw_error_set(err, e == ENOENT || e == ENOTDIR ? KW_ENOTFOUND : KW_EIO, "cannot open '%s': %s", path,
				    strerror(e));
	}
	if (fstat(f, st) != 0) {
		e = errno;
		close(f);
		return kw_error_set(err, KW_EIO, "cannot open '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st->st_mode)) {
		close(f);
		return kw_error_set(err, KW_EFORMAT, "'%s': not a regular file", path);
	}
	/* Reads of a regular file never block anyway; clearing the flag keeps it so for what follows. */
	flags = fcntl(f, F_GETFL);
	if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		e = errno;
		close(f);
		return kw_error_set(err, KW_EIO, "cannot open '%s': %s", path, strerror(e));
	}
	*fd = f;
	return 0;
}

int kw_map_file(const char *path, unsigned char **buf, size_t *len, struct kw_error *err)
{
	struct stat st;
	void *p;
	int fd, rc;

	rc = kw_open_regular(path, &fd, &st, err);
	if (rc) {
		return rc;
	}
	if (st.st_size == 0) {
		close(fd);
		return kw_error_set(err, KW_EFORMAT, "'%s': empty file", path);
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

/* Both writers: at fd's position, or at off when at is set; short writes and EINTR retried. */
static int write_loop(int fd, const void *buf, size_t len, bool at, uint64_t off)
{
	const unsigned char *p = buf;

	while (len > 0) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;
		ssize_t n = at ? pwrite(fd, p, chunk, (off_t)off) : write(fd, p, chunk);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (n == 0) {
				errno = EIO;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int kw_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return write_loop(fd, buf, len, true, off);
}

int kw_write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, false, 0);
}

/* copy_range where the kernel cannot copy: through a bounded buffer. */
static int copy_by_hand(int in, uint64_t off, int out, bool at, uint64_t out_off, uint64_t len)
{
	unsigned char buf[1 << 16];

	while (len > 0) {
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t n = pread(in, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (n == 0) {
				errno = EIO; /* the file ended early: it shrank under us */
			}
			return -1;
		}
		if (write_loop(out, buf, (size_t)n, at, out_off) < 0) {
			return -1;
		}
		off += (uint64_t)n;
		out_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Both copies: to out's position, or to out_off when at is set. */
static int copy_range(int in, uint64_t off, int out, bool at, uint64_t out_off, uint64_t len)
{
	off_t o = (off_t)off, oo = (off_t)out_off; /* 64 bits: the build sets _FILE_OFFSET_BITS */

	while (len > 0) {
		ssize_t n = copy_file_range(in, &o, out, at ? &oo : NULL, len > (1u << 30) ? (1u << 30) : (size_t)len,
					    0);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
			      errno == EBADF || errno == ETXTBSY || errno == EPERM)) {
			/*
			 * Not possible here (across file systems before 5.3 and
			 * after 5.19, a pipe or device, a seccomp filter): nothing
			 * was copied by the failing call, so do the rest by hand.
			 */
			return copy_by_hand(in, (uint64_t)o, out, at, (uint64_t)oo, len);
		}
		if (n <= 0) {
			if (n == 0) {
				errno = EIO;
			}
			return -1;
		}
		len -= (uint64_t)n;
	}
	return 0;
}

int kw_copy_range(int in, uint64_t off, int out, uint64_t len)
{
	return copy_range(in, off, out, false, 0, len);
}

int kw_pcopy_range(int in, uint64_t off, int out, uint64_t out_off, uint64_t len)
{
	return copy_range(in, off, out, true, out_off, len);
}

int kw_copy_file(const char *src, const char *dst, unsigned mode, struct kw_error *err)
{
	unsigned char buf[1 << 16];
	int in, out, e, rc;
	ssize_t n;

	rc = kw_open_regular(src, &in, NULL, err);
	if (rc) {
		return rc;
	}
	/* A new file only: a link or a file planted at dst is never written through. */
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
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
