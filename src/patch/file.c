/* SPDX-License-Identifier: MIT */
/* Patching files on disk: copy-on-write mapping in, temporary file and rename out. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/elf.h"
#include "kwheel/patch.h"
#include "kwheel/util.h"

static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
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

int kw_patch_file(const char *in, const char *out, const struct kw_patch_ops *ops, struct kw_patch_result *res,
		  struct kw_error *err)
{
	struct kw_patch_result local;
	struct stat st;
	unsigned char *map = MAP_FAILED;
	char *tmp = NULL;
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
	/* Private and writable: edits touch only a few pages, the rest stays shared with the page cache. */
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
	{
		char *dir = dir_of(out);
		const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;

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
	if (write_all(ofd, map, (size_t)st.st_size) < 0 ||
	    (res->tail_len && write_all(ofd, res->tail, res->tail_len) < 0)) {
		rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", out, strerror(errno));
		goto out;
	}
	if (fchmod(ofd, st.st_mode & 07777) < 0 || fsync(ofd) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
		goto out;
	}
	if (close(ofd) < 0) {
		ofd = -1;
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
		goto out;
	}
	ofd = -1;
	if (rename(tmp, out) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot rename into place: %s", out, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (ofd >= 0) {
		close(ofd);
	}
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	if (map != MAP_FAILED) {
		munmap(map, (size_t)st.st_size);
	}
	close(fd);
	if (res == &local) {
		kw_patch_result_release(&local);
	}
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
	if (!copy || !result || !origin) {
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
		keep = false;
		for (i = 0; i < info->n_needed && !keep; i++) {
			keep = holds(dir, info->needed[i], info);
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
	kw_elf_info_free(info);
	return rc;
}
