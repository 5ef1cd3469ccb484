/* SPDX-License-Identifier: MIT */
/*
 * km's outputs are written as repair writes its wheel: each to a unique
 * temporary beside its final name (never through whatever a name already
 * is: a planted symlink is replaced, not followed), and renamed over the
 * final name only once every output of the run is ready, so a failed or
 * killed run leaves the previous run's outputs as they were. They are not
 * synced: they are a build's intermediates, which the link reads next, as
 * ar's and ld's outputs are, and the objects directory (hundreds of
 * megabytes) is not synced either, so a sync of the archive alone would
 * not make the set survive a power loss; it cost a second of a 300-library
 * conversion. The payload wheel is repair's writer's, synced as repair's.
 */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/km.h"
#include "internal.h"

/* "DIR/.NAME.XXXXXX" for final "DIR/NAME": hidden, in the same directory (rename stays atomic). */
static char *temp_name(const char *final)
{
	const char *slash = strrchr(final, '/');

	if (!slash) {
		return kw_asprintf(".%s.XXXXXX", final);
	}
	return kw_asprintf("%.*s/.%s.XXXXXX", (int)(slash - final), final, slash + 1);
}

int km_out_open(struct km_out *o, const char *final, struct kw_error *err)
{
	int fd;

	memset(o, 0, sizeof(*o));
	o->final = kw_strdup(final);
	o->tmp = temp_name(final);
	if (!o->final || !o->tmp) {
		km_out_discard(o);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* mkstemp creates with O_CREAT | O_EXCL: nothing already at the name, a symlink least of all, is opened. */
	fd = mkostemp(o->tmp, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		free(o->tmp);
		o->tmp = NULL;
		km_out_discard(o);
		return kw_error_set(err, KW_EIO, "cannot create a file beside '%s': %s", final, strerror(e));
	}
	if (fchmod(fd, 0644) != 0 || !(o->f = fdopen(fd, "w"))) {
		int e = errno;

		close(fd);
		km_out_discard(o);
		return kw_error_set(err, KW_EIO, "cannot create a file beside '%s': %s", final, strerror(e));
	}
	return 0;
}

int km_out_close(struct km_out *o, struct kw_error *err)
{
	int bad, e;

	if (!o->f) {
		return 0;
	}
	/* The first failure says why: errno is cleared so a stale value cannot stand in for it. */
	errno = 0;
	bad = fflush(o->f) != 0 || ferror(o->f);
	e = errno;
	if (fclose(o->f) != 0) {
		bad = 1;
		e = e ? e : errno;
	}
	o->f = NULL;
	if (bad) {
		return kw_error_set(err, KW_EIO, "cannot write '%s': %s", o->final, strerror(e ? e : EIO));
	}
	return 0;
}

int km_out_write(struct km_out *o, const void *data, size_t len, struct kw_error *err)
{
	if (fwrite(data, 1, len, o->f) != len) {
		return kw_error_set(err, KW_EIO, "cannot write '%s': %s", o->final, strerror(errno));
	}
	return km_out_close(o, err);
}

int km_out_commit(struct km_out *o, struct kw_error *err)
{
	int rc = km_out_close(o, err);

	if (rc) {
		return rc;
	}
	if (o->tmp && rename(o->tmp, o->final) != 0) {
		return kw_error_set(err, KW_EIO, "cannot rename '%s' into place: %s", o->final, strerror(errno));
	}
	free(o->tmp);
	o->tmp = NULL;
	return 0;
}

void km_out_discard(struct km_out *o)
{
	if (o->f) {
		fclose(o->f);
	}
	if (o->tmp) {
		unlink(o->tmp);
	}
	free(o->tmp);
	free(o->final);
	memset(o, 0, sizeof(*o));
}

/* Remove the regular files directly in dir (the objects of one run), then dir; a non-directory is unlinked. */
static void remove_flat(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0) {
		unlink(dir);
		return;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			unlinkat(fd, de->d_name, 0);
		}
	}
	closedir(d);
	rmdir(dir);
}

int km_dir_open(struct km_dir *d, const char *final, struct kw_error *err)
{
	memset(d, 0, sizeof(*d));
	d->final = kw_strdup(final);
	d->tmp = temp_name(final);
	if (!d->final || !d->tmp) {
		km_dir_discard(d);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (!mkdtemp(d->tmp)) {
		int e = errno;

		free(d->tmp);
		d->tmp = NULL;
		km_dir_discard(d);
		return kw_error_set(err, KW_EIO, "cannot create a directory beside '%s': %s", final, strerror(e));
	}
	chmod(d->tmp, 0755);
	return 0;
}

int km_dir_commit(struct km_dir *d, struct kw_error *err)
{
	/* An existing directory (or whatever stands at the name) is swapped out in one step, then removed. */
	if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->final, RENAME_EXCHANGE) != 0) {
		if (errno != ENOENT || rename(d->tmp, d->final) != 0) {
			return kw_error_set(err, KW_EIO, "cannot rename '%s' into place: %s", d->final, strerror(errno));
		}
	} else {
		remove_flat(d->tmp);
	}
	free(d->tmp);
	d->tmp = NULL;
	return 0;
}

void km_dir_discard(struct km_dir *d)
{
	if (d->tmp) {
		remove_flat(d->tmp);
	}
	free(d->tmp);
	free(d->final);
	memset(d, 0, sizeof(*d));
}
