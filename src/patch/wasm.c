/* SPDX-License-Identifier: MIT */
/*
 * kwheel patch on a wasm side module: the ELF operations that have a
 * dylink.0 meaning (the search path is RUNTIME_PATH, the needed libraries
 * are NEEDED), applied by wasm/'s splice and written like an ELF patch: a
 * temporary file beside the destination, renamed over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/patch.h"
#include "kwheel/util.h"
#include "kwheel/wasm.h"

/* The new lists: operations in the order kw_patch_file applies them to ELF. */
static int plan(const struct kw_wasm_info *w, const struct kw_patch_ops *ops, struct kw_strv *needed,
		struct kw_strv *rpath, const char *in, struct kw_error *err)
{
	size_t i, k;

	if (ops->set_soname || ops->force_rpath) {
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': a wasm module has no %s", in,
				    ops->set_soname ? "SONAME" : "DT_RPATH (RUNTIME_PATH is not inherited)");
	}
	for (i = 0; i < ops->n_add_needed; i++) {
		if (kw_strv_push(needed, ops->add_needed[i])) {
			return KW_ENOMEM;
		}
	}
	for (i = 0; i < w->n_needed; i++) {
		const char *n = w->needed[i];
		bool drop = false;

		for (k = 0; k < ops->n_remove_needed; k++) {
			drop = drop || strcmp(ops->remove_needed[k], n) == 0;
		}
		for (k = 0; !drop && k < ops->n_replace_needed; k++) {
			if (strcmp(ops->replace_needed[k].from, n) == 0) {
				n = ops->replace_needed[k].to;
			}
		}
		if (!drop && kw_strv_push(needed, n)) {
			return KW_ENOMEM;
		}
	}
	if (ops->set_rpath) {
		if (*ops->set_rpath && kw_strv_split(rpath, ops->set_rpath, ':')) {
			return KW_ENOMEM;
		}
	} else if (!ops->remove_rpath) {
		for (i = 0; i < w->n_runtime_path; i++) {
			if (kw_strv_push(rpath, w->runtime_path[i])) {
				return KW_ENOMEM;
			}
		}
	}
	for (i = 0; i < ops->n_add_rpath; i++) {
		if (kw_strv_split(rpath, ops->add_rpath[i], ':')) {
			return KW_ENOMEM;
		}
	}
	/* "a::b" names no empty directory: the loader would split it the same way. */
	for (i = k = 0; i < rpath->n; i++) {
		if (*rpath->v[i]) {
			rpath->v[k++] = rpath->v[i];
		} else {
			free(rpath->v[i]);
		}
	}
	rpath->n = k;
	return 0;
}

/* Written as kw_patch_file writes: a temporary renamed into place, synced only if durable. */
static int write_out(const char *out, const unsigned char *buf, size_t len, mode_t mode, bool durable,
		     struct kw_error *err)
{
	const char *slash = strrchr(out, '/');
	char *tmp = slash ? kw_asprintf("%.*s/.%s.kwheel-XXXXXX", (int)(slash - out), out, slash + 1)
			  : kw_asprintf(".%s.kwheel-XXXXXX", out);
	int fd, rc = 0;

	if (!tmp) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot create a temporary file: %s", out, strerror(errno));
		free(tmp);
		return rc;
	}
	while (len > 0 && !rc) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = kw_error_set(err, KW_EIO, "'%s': write failed: %s", out, strerror(errno));
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
	if (!rc && (fchmod(fd, mode & 07777) < 0 || (durable && fsync(fd) < 0))) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
	}
	if (close(fd) < 0 && !rc) {
		rc = kw_error_set(err, KW_EIO, "'%s': %s", out, strerror(errno));
	}
	if (!rc && rename(tmp, out) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot rename into place: %s", out, strerror(errno));
	}
	if (rc) {
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

int kw_patch_wasm_file(const char *in, const char *out, const struct kw_patch_ops *ops, bool *changed,
		       struct kw_error *err)
{
	struct kw_wasm_info *w = NULL;
	struct kw_strv needed = { 0 }, rpath = { 0 };
	struct kw_wasm_edit e = { 0 };
	unsigned char *buf = NULL, *res = NULL;
	size_t len = 0, res_len = 0;
	struct stat st;
	int rc;

	*changed = false;
	if (!out) {
		out = in;
	}
	rc = kw_map_file(in, &buf, &len, err);
	if (rc) {
		return rc;
	}
	rc = stat(in, &st) < 0 ? kw_error_set(err, KW_EIO, "'%s': %s", in, strerror(errno)) : 0;
	if (!rc) {
		rc = kw_wasm_parse_memory(buf, len, in, &w, err);
	}
	if (!rc) {
		rc = plan(w, ops, &needed, &rpath, in, err);
		if (rc == KW_ENOMEM) {
			kw_error_set(err, rc, "out of memory");
		}
	}
	if (!rc) {
		e.set_needed = true;
		e.needed = (const char *const *)needed.v;
		e.n_needed = needed.n;
		e.set_runtime_path = true;
		e.runtime_path = (const char *const *)rpath.v;
		e.n_runtime_path = rpath.n;
		rc = kw_wasm_edit_dylink(buf, len, in, &e, &res, &res_len, err);
	}
	if (!rc) {
		*changed = res_len != len || memcmp(res, buf, len) != 0;
		if (*changed || strcmp(in, out) != 0) {
			rc = write_out(out, res, res_len, st.st_mode, ops->durable, err);
		}
	}
	free(res);
	kw_wasm_info_free(w);
	kw_strv_release(&needed);
	kw_strv_release(&rpath);
	kw_unmap_file(buf, len);
	return rc;
}
