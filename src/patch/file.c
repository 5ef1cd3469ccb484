/* SPDX-License-Identifier: MIT */
/*
 * Patching files on disk: a copy-on-write mapping in, of which the editor
 * faults in only the pages it reads; a temporary file and rename out, made
 * of the blocks it wrote and kernel copies of the rest.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/elf-decode.h"
#include "kwheel/elf.h"
#include "kwheel/patch.h"
#include "kwheel/util.h"

static bool block_written(const struct kw_patch_result *res, size_t i)
{
	return !res->written || (res->written[i / 8] >> (i % 8) & 1);
}

/*
 * The run of blocks from byte *off of a len-byte image that the edit all
 * wrote or all left alone: its end in *end, and whether it was written.
 */
static bool next_run(const struct kw_patch_result *res, size_t len, size_t off, size_t *end)
{
	size_t nblk = len / KW_PATCH_BLOCK + (len % KW_PATCH_BLOCK != 0), i = off / KW_PATCH_BLOCK, j = i + 1;
	bool w = block_written(res, i);

	while (j < nblk && block_written(res, j) == w) {
		j++;
	}
	*end = j == nblk ? len : j * (size_t)KW_PATCH_BLOCK;
	return w;
}

/*
 * Write the edited image at out's position: the blocks the edit wrote from
 * the map, the runs between them copied from the input by the kernel (the
 * map's pages there are never touched), then the tail.
 */
static int write_image(int in, int out, const unsigned char *map, size_t len, const struct kw_patch_result *res)
{
	size_t off, end;

	for (off = 0; off < len; off = end) {
		bool w = next_run(res, len, off, &end);

		if (w ? kw_write_all(out, map + off, end - off) < 0 : kw_copy_range(in, off, out, end - off) < 0) {
			return -1;
		}
	}
	return res->tail_len ? kw_write_all(out, res->tail, res->tail_len) : 0;
}

/*
 * ops->in_place: the edit written into the file it was read from, the
 * inode st describes (opened again for writing, and refused if the name
 * now holds another file). The tail goes first: if the disk is full the
 * file is cut back to its old size and is as it was; then the written
 * blocks, each run in one write, from the private map, whose pages there
 * are the editor's copies. Nothing else is written.
 */
static int write_in_place(const char *path, const struct stat *st, const unsigned char *map, size_t len,
			  const struct kw_patch_result *res, bool durable, struct kw_error *err)
{
	size_t off, end;
	struct stat now;
	int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC), rc = 0;

	if (fd < 0) {
		return kw_error_set(err, KW_EIO, "'%s': cannot write in place: %s", path, strerror(errno));
	}
	if (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
	    now.st_size != st->st_size) {
		close(fd);
		return kw_error_set(err, KW_EIO, "'%s': changed while it was edited", path);
	}
	if (res->tail_len && kw_pwrite_all(fd, res->tail, res->tail_len, (uint64_t)len) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", path, strerror(errno));
		if (ftruncate(fd, (off_t)len) < 0) {
			rc = kw_error_set(err, KW_EIO, "'%s': write failed, and the file keeps %zu new bytes: %s", path,
					  res->tail_len, strerror(errno));
		}
		close(fd);
		return rc;
	}
	for (off = 0; !rc && off < len; off = end) {
		if (next_run(res, len, off, &end) && kw_pwrite_all(fd, map + off, end - off, (uint64_t)off) < 0) {
			rc = kw_error_set(err, KW_EIO, "'%s': write failed, the file may be part edited: %s", path,
					  strerror(errno));
		}
	}
	if (!rc && durable && fsync(fd) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(errno));
	}
	if (close(fd) < 0 && !rc) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(errno));
	}
	return rc;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		return kw_strdup(".");
	}
	if (slash == path) {
		return kw_strdup("/");
	}
	return kw_strndup(path, (size_t)(slash - path));
}

/*
 * Where the result goes. A symbolic link is followed, so the file it names
 * is replaced and the link stays a link. A character device or a FIFO is
 * written through (`-o /dev/stdout`); renaming over one would replace the
 * node with a regular file. Anything else that is not a regular file is
 * refused. *dest is the path to replace (new, free()) or NULL to write
 * through; *old says whether a regular file is there, whose owner, group and
 * mode are in *ost.
 */
static int resolve_dest(const char *out, char **dest, bool *old, struct stat *ost, struct kw_error *err)
{
	struct stat st;
	char *real = NULL;

	*dest = NULL;
	*old = false;
	if (lstat(out, &st) < 0) {
		if (errno != ENOENT) {
			return kw_error_set(err, KW_EIO, "cannot write '%s': %s", out, strerror(errno));
		}
		*dest = kw_strdup(out);
		return *dest ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (S_ISLNK(st.st_mode)) {
		/* What the link names decides; a pipe behind /dev/stdout has no path to resolve. */
		if (stat(out, &st) < 0) {
			return kw_error_set(err, KW_EIO, "cannot write '%s': the link's target: %s", out, strerror(errno));
		}
		if (S_ISREG(st.st_mode)) {
			real = realpath(out, NULL);
			if (!real) {
				return kw_error_set(err, KW_EIO, "cannot write '%s': the link's target: %s", out,
						    strerror(errno));
			}
		}
	}
	if (S_ISREG(st.st_mode)) {
		*dest = real ? kw_strdup(real) : kw_strdup(out);
		free(real);
		*old = true;
		*ost = st;
		return *dest ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	free(real);
	if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
		return 0;
	}
	return kw_error_set(err, KW_EFORMAT, "'%s': not a regular file", out);
}

/* Write the image and its tail through an existing character device or FIFO. */
static int write_through(int in, const char *out, const unsigned char *map, size_t len,
			 const struct kw_patch_result *res, struct kw_error *err)
{
	/* O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of hanging. */
	int fd = open(out, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), flags, rc = 0;

	if (fd < 0) {
		return kw_error_set(err, KW_EIO, "cannot write '%s': %s", out, strerror(errno));
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 || write_image(in, fd, map, len, res) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", out, strerror(errno));
	}
	if (close(fd) < 0 && rc == 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
	}
	return rc;
}

/*
 * Owner, group and mode of the new file: those of the file it replaces (the
 * input when in place), the input's mode for a new one. fchown comes first,
 * because it clears set-user-ID and set-group-ID; if the owner cannot be
 * kept, those bits are dropped rather than handed to whoever runs this.
 */
static int set_owner_mode(int fd, const char *out, const struct stat *in_st, bool old, const struct stat *ost,
			  struct kw_error *err)
{
	mode_t mode = in_st->st_mode & 07777;

	if (old) {
		if (fchown(fd, ost->st_uid, ost->st_gid) < 0) {
			mode &= ~(mode_t)(S_ISUID | S_ISGID);
		}
	}
	if (fchmod(fd, mode) < 0) {
		return kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
	}
	return 0;
}

int kw_patch_file(const char *in, const char *out, const struct kw_patch_ops *ops, struct kw_patch_result *res,
		  struct kw_error *err)
{
	struct kw_patch_result local;
	struct stat st, ost;
	unsigned char *map = MAP_FAILED;
	char *tmp = NULL, *dest = NULL;
	bool old = false;
	int fd = -1, ofd = -1, rc;

	if (!res) {
		res = &local;
	}
	memset(res, 0, sizeof(*res));
	if (!out) {
		out = in;
	}
	rc = kw_open_regular(in, &fd, &st, err);
	if (rc) {
		return rc;
	}
	if (st.st_size == 0) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': empty file, not an ELF object", in);
		goto out;
	}
	/*
	 * Private and writable: the editor reads and writes a few pages (the
	 * headers and the dynamic tables), which alone are ever read in or
	 * duplicated; write_image copies the rest file to file.
	 */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot map: %s", in, strerror(errno));
		goto out;
	}
	rc = kw_patch_image(map, (size_t)st.st_size, in, ops, res, err);
	if (rc < 0) {
		goto out;
	}
	if (!res->changed && strcmp(in, out) == 0) {
		goto out;
	}
	if (ops->in_place && strcmp(in, out) == 0) {
		rc = write_in_place(in, &st, map, (size_t)st.st_size, res, ops->durable, err);
		goto out;
	}
	rc = resolve_dest(out, &dest, &old, &ost, err);
	if (rc < 0) {
		goto out;
	}
	if (!dest) {
		rc = write_through(fd, out, map, (size_t)st.st_size, res, err);
		goto out;
	}
	{
		char *dir = dir_of(dest);
		const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;

		tmp = dir ? kw_asprintf("%s/.%s.kwheel-XXXXXX", dir, base) : NULL;
		free(dir);
	}
	if (!tmp) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	ofd = mkstemp(tmp);
	if (ofd < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot create a temporary file: %s", out, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (write_image(fd, ofd, map, (size_t)st.st_size, res) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", out, strerror(errno));
		goto out;
	}
	rc = set_owner_mode(ofd, out, &st, old, &ost, err);
	if (rc < 0) {
		goto out;
	}
	if (ops->durable && !ops->scratch && fsync(ofd) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
		goto out;
	}
	if (close(ofd) < 0) {
		ofd = -1;
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
		goto out;
	}
	ofd = -1;
	if (rename(tmp, dest) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot rename into place: %s", out, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (ofd >= 0) {
		close(ofd);
	}
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dest);
	if (map != MAP_FAILED) {
		munmap(map, (size_t)st.st_size);
	}
	close(fd);
	if (res == &local) {
		kw_patch_result_release(&local);
	}
	return rc;
}

int kw_patch_read_headers(const char *path, struct kw_patch_headers *h, struct kw_error *err)
{
	struct kw_elf_raw raw;
	struct kw_elf_ehdr eh;
	struct kw_elf_phdr ph;
	unsigned char *buf = NULL;
	size_t len = 0, i;
	int rc, stack = -1;

	rc = kw_map_file(path, &buf, &len, err);
	if (rc) {
		return rc;
	}
	if (kw_elf_raw_init(&raw, buf, len) != KW_ELF_IDENT_OK || !kw_elf_get_ehdr(&raw, &eh)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", path);
		goto out;
	}
	if (eh.phentsize != kw_elf_phent_size(&raw) || !kw_elf_table_in_file(&raw, eh.phoff, eh.phnum, eh.phentsize)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': program header table runs past the end of the file", path);
		goto out;
	}
	for (i = 0; i < eh.phnum; i++) {
		if (kw_elf_get_phdr(&raw, eh.phoff + i * eh.phentsize, &ph) && ph.type == PT_GNU_STACK && stack < 0) {
			stack = (ph.flags & PF_X) != 0;
		}
	}
	h->os_abi = eh.osabi;
	h->execstack = stack;
	rc = 0;
out:
	kw_unmap_file(buf, len);
	return rc;
}

/* Does dir hold a file named lib that the loader could use for obj? */
static bool holds(const char *dir, const char *lib, const struct kw_elf_info *obj)
{
	char *path = kw_asprintf("%s/%s", dir, lib);
	struct kw_elf_info *info = NULL;
	struct kw_error e;
	bool ok = false;

	if (path && kw_elf_parse_file(path, &info, &e) == 0) {
		ok = kw_elf_compatible(obj, info);
		kw_elf_info_free(info);
	}
	free(path);
	return ok;
}

int kw_patch_shrunk_rpath(struct kw_ctx *ctx, const char *path, const char *const *prefixes, size_t n_prefixes,
			  char **out, struct kw_error *err)
{
	struct kw_elf_info *info = NULL;
	const char *cur;
	char *copy = NULL, *result = NULL, *origin = NULL, *save = NULL, *tok;
	bool *found = NULL; /* needed[i] is provided by an entry kept already */
	size_t used = 0, i;
	int rc;

	*out = NULL;
	rc = kw_elf_parse_file(path, &info, err);
	if (rc < 0) {
		return rc;
	}
	cur = info->runpath ? info->runpath : info->rpath ? info->rpath : "";
	copy = kw_strdup(cur);
	result = kw_calloc(1, strlen(cur) + 1);
	origin = dir_of(path);
	found = kw_calloc(info->n_needed + 1, sizeof(*found));
	if (!copy || !result || !origin || !found) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char *dir;
		bool keep = n_prefixes == 0;

		for (i = 0; i < n_prefixes; i++) {
			keep |= strncmp(tok, prefixes[i], strlen(prefixes[i])) == 0;
		}
		if (!keep) {
			continue;
		}
		if (strncmp(tok, "$ORIGIN", 7) == 0 || strncmp(tok, "${ORIGIN}", 9) == 0) {
			dir = kw_asprintf("%s%s", origin, tok + (tok[1] == '{' ? 9 : 7));
		} else {
			dir = kw_ctx_rooted(ctx, tok);
		}
		if (!dir) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		/*
		 * Kept only if it provides a library no earlier entry did: the
		 * loader stops at the first directory that has it, so a later one
		 * is never searched for that library.
		 */
		keep = false;
		for (i = 0; i < info->n_needed; i++) {
			if (!found[i] && holds(dir, info->needed[i], info)) {
				found[i] = true;
				keep = true;
			}
		}
		free(dir);
		if (keep) {
			if (used) {
				result[used++] = ':';
			}
			memcpy(result + used, tok, strlen(tok));
			used += strlen(tok);
			result[used] = 0;
		}
	}
	*out = result;
	result = NULL;
	rc = 0;
out:
	free(copy);
	free(result);
	free(origin);
	free(found);
	kw_elf_info_free(info);
	return rc;
}
