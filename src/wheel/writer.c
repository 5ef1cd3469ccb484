/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct kw_wheel_writer {
	zip_t *zip;
	char *final_path;
	char *tmp_path;
	int level;
	uint16_t dos_time, dos_date;
};

/* DOS date and time from UTC seconds, independent of the local time zone. */
static void dos_stamp(int64_t t, uint16_t *dtime, uint16_t *ddate)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < 315532800) { /* 1980-01-01, the first DOS date */
		tt = 315532800;
	}
	gmtime_r(&tt, &tm);
	if (tm.tm_year > 207) { /* 2107 is the last */
		tm.tm_year = 207;
	}
	*dtime = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
	*ddate = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
}

static int zip_err(struct kw_wheel_writer *ww, const char *what, struct kw_error *err)
{
	return kw_error_set(err, KW_EIO, "'%s': %s: %s", ww->final_path, what, zip_strerror(ww->zip));
}

int kw_wheel_writer_new(const char *final_path, int level, int64_t mtime, struct kw_wheel_writer **out,
			struct kw_error *err)
{
	struct kw_wheel_writer *ww;
	const char *slash = strrchr(final_path, '/');
	int zerr = 0, fd;

	*out = NULL;
	ww = kw_calloc(1, sizeof(*ww));
	if (!ww) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	ww->level = level > 0 ? level : 6; /* zlib's default, what pip and auditwheel use */
	dos_stamp(mtime, &ww->dos_time, &ww->dos_date);
	ww->final_path = kw_strdup(final_path);
	/* Hidden and without the .whl suffix: a crash never leaves something that looks like a wheel. */
	ww->tmp_path = slash ? kw_asprintf("%.*s/.%s.kwheel-XXXXXX", (int)(slash - final_path), final_path, slash + 1)
			     : kw_asprintf(".%s.kwheel-XXXXXX", final_path);
	if (!ww->final_path || !ww->tmp_path) {
		kw_wheel_writer_abort(ww);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	fd = mkstemp(ww->tmp_path);
	if (fd < 0) {
		int e = errno;

		free(ww->tmp_path);
		ww->tmp_path = NULL;
		kw_wheel_writer_abort(ww);
		return kw_error_set(err, KW_EIO, "'%s': cannot create a file there: %s", final_path, strerror(e));
	}
	close(fd);
	ww->zip = zip_open(ww->tmp_path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
	if (!ww->zip) {
		zip_error_t ze;

		zip_error_init_with_code(&ze, zerr);
		kw_error_set(err, KW_EIO, "'%s': %s", final_path, zip_error_strerror(&ze));
		zip_error_fini(&ze);
		kw_wheel_writer_abort(ww);
		return KW_EIO;
	}
	*out = ww;
	return 0;
}

static int added(struct kw_wheel_writer *ww, zip_int64_t idx, unsigned mode, bool compress, struct kw_error *err)
{
	if (zip_file_set_dostime(ww->zip, (zip_uint64_t)idx, ww->dos_time, ww->dos_date, 0) < 0 ||
	    zip_file_set_external_attributes(ww->zip, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
					     (zip_uint32_t)(0100000 | (mode & 0777)) << 16) < 0 ||
	    zip_set_file_compression(ww->zip, (zip_uint64_t)idx, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
				     compress ? (zip_uint32_t)ww->level : 0) < 0) {
		return zip_err(ww, "cannot set member attributes", err);
	}
	return 0;
}

int kw_wheel_writer_copy(struct kw_wheel_writer *ww, struct kw_wheel *src, size_t i, struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(src, i);
	zip_t *sz = kw_wheel_zip(src);
	zip_source_t *s;
	zip_int64_t idx;
	zip_uint8_t opsys;
	zip_uint32_t attr;
	zip_stat_t st;

	if (!m) {
		return kw_error_set(err, KW_EINVAL, "no member %zu", i);
	}
	/* start 0, length -1: the compressed bytes, as stored. */
	s = zip_source_zip(ww->zip, sz, m->index, 0, 0, -1);
	if (!s) {
		return zip_err(ww, "cannot copy a member", err);
	}
	idx = zip_file_add(ww->zip, m->name, s, ZIP_FL_ENC_UTF_8);
	if (idx < 0) {
		zip_source_free(s);
		return zip_err(ww, "cannot add a member", err);
	}
	zip_stat_init(&st);
	if (zip_stat_index(sz, m->index, 0, &st) == 0 && (st.valid & ZIP_STAT_MTIME)) {
		zip_file_set_mtime(ww->zip, (zip_uint64_t)idx, st.mtime, 0);
	}
	if (zip_file_get_external_attributes(sz, m->index, 0, &opsys, &attr) == 0) {
		zip_file_set_external_attributes(ww->zip, (zip_uint64_t)idx, 0, opsys, attr);
	}
	return 0;
}

int kw_wheel_writer_add_buffer(struct kw_wheel_writer *ww, const char *name, void *buf, size_t len,
			       unsigned mode, struct kw_error *err)
{
	zip_source_t *s = zip_source_buffer(ww->zip, buf, len, 1);
	zip_int64_t idx;

	if (!s) {
		free(buf);
		return zip_err(ww, "cannot add a member", err);
	}
	idx = zip_file_add(ww->zip, name, s, ZIP_FL_ENC_UTF_8);
	if (idx < 0) {
		zip_source_free(s);
		return zip_err(ww, "cannot add a member", err);
	}
	return added(ww, idx, mode, true, err);
}

int kw_wheel_writer_add_file(struct kw_wheel_writer *ww, const char *name, const char *path, unsigned mode,
			     struct kw_error *err)
{
	zip_source_t *s = zip_source_file(ww->zip, path, 0, -1);
	zip_int64_t idx;

	if (!s) {
		return zip_err(ww, "cannot add a member", err);
	}
	idx = zip_file_add(ww->zip, name, s, ZIP_FL_ENC_UTF_8);
	if (idx < 0) {
		zip_source_free(s);
		return zip_err(ww, "cannot add a member", err);
	}
	return added(ww, idx, mode, true, err);
}

int kw_wheel_writer_commit(struct kw_wheel_writer *ww, struct kw_error *err)
{
	int rc = 0, fd;

	if (zip_close(ww->zip) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot write: %s", ww->final_path, zip_strerror(ww->zip));
		zip_discard(ww->zip);
		ww->zip = NULL;
		kw_wheel_writer_abort(ww);
		return rc;
	}
	ww->zip = NULL;
	/* libzip renamed its own temporary over ours; make it durable, then final. */
	fd = open(ww->tmp_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", ww->final_path, strerror(errno));
	}
	if (fd >= 0) {
		close(fd);
	}
	if (rc == 0 && chmod(ww->tmp_path, 0644) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", ww->final_path, strerror(errno));
	}
	if (rc == 0 && rename(ww->tmp_path, ww->final_path) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot rename into place: %s", ww->final_path, strerror(errno));
	}
	if (rc == 0) {
		free(ww->tmp_path);
		ww->tmp_path = NULL;
	}
	kw_wheel_writer_abort(ww);
	return rc;
}

void kw_wheel_writer_abort(struct kw_wheel_writer *ww)
{
	if (!ww) {
		return;
	}
	if (ww->zip) {
		zip_discard(ww->zip);
	}
	if (ww->tmp_path) {
		unlink(ww->tmp_path);
	}
	free(ww->tmp_path);
	free(ww->final_path);
	free(ww);
}
