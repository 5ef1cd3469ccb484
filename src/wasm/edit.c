/* SPDX-License-Identifier: MIT */
/*
 * The one edit a wasm repair makes: a new dylink.0 section, spliced in
 * place of the old one. The core format holds no file offsets (everything
 * refers to indices), so the rest of the module is copied as one block and
 * nothing needs relocating; and the section must stay first, because the
 * loaders read only the first section (appending a second one would be
 * ignored). Unknown subsections travel byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"
#include "kwheel/wasm.h"

#include "internal.h"

/* Check new values as the reader checks input, so an edit cannot write what kwheel would refuse to read. */
static int check_list(const char *const *v, size_t n, bool path, const char *what, struct kw_error *err)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t l;

		if (!v[i] || !v[i][0]) {
			return kw_error_set(err, KW_EINVAL, "empty %s entry", what);
		}
		l = strlen(v[i]);
		if (l > UINT32_MAX || !kw_wasm_utf8_ok((const unsigned char *)v[i], l)) {
			return kw_error_set(err, KW_EINVAL, "%s entry '%s' is not UTF-8", what, v[i]);
		}
		if (path && strchr(v[i], ':')) {
			return kw_error_set(err, KW_EINVAL, "%s entry '%s' holds ':', which the loader splits on",
					    what, v[i]);
		}
	}
	return 0;
}

static bool same_list(char *const *a, size_t na, const char *const *b, size_t nb)
{
	size_t i;

	if (na != nb) {
		return false;
	}
	for (i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0) {
			return false;
		}
	}
	return true;
}

static void put_u32(struct kw_buf *out, uint32_t v)
{
	unsigned char tmp[WASM_LEB32_MAX];
	size_t n = kw_wasm_put_u32(tmp, v);

	kw_buf_append_n(out, (const char *)tmp, n);
}

/* A subsection of type with count, then count strings; nothing for an empty list. */
static int put_list(struct kw_buf *out, uint8_t type, const char *const *v, size_t n, struct kw_error *err)
{
	unsigned char tmp[WASM_LEB32_MAX];
	size_t size, i;

	if (n == 0) {
		return 0;
	}
	if (n > UINT32_MAX) {
		return kw_error_set(err, KW_EINVAL, "too many entries");
	}
	size = kw_wasm_put_u32(tmp, (uint32_t)n);
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i]);

		if (l > UINT32_MAX - WASM_LEB32_MAX || size > UINT32_MAX - WASM_LEB32_MAX - l) {
			return kw_error_set(err, KW_EINVAL, "dylink.0 subsection would exceed 4 GiB");
		}
		size += kw_wasm_put_u32(tmp, (uint32_t)l) + l;
	}
	kw_buf_append_n(out, (const char *)&type, 1);
	put_u32(out, (uint32_t)size);
	put_u32(out, (uint32_t)n);
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i]);

		put_u32(out, (uint32_t)l);
		kw_buf_append_n(out, v[i], l);
	}
	return 0;
}

int kw_wasm_edit_dylink(const void *buf, size_t len, const char *name, const struct kw_wasm_edit *edit,
			unsigned char **out, size_t *out_len, struct kw_error *err)
{
	const unsigned char *b = buf;
	struct kw_wasm_info *info = NULL;
	struct kw_buf payload = { 0 };
	unsigned char hdr[1 + WASM_LEB32_MAX];
	unsigned char *res = NULL;
	bool change_needed, change_rpath, wrote_needed = false, wrote_rpath = false;
	size_t i, hlen, tail, total;
	int rc = KW_EINTERNAL;

	*out = NULL;
	*out_len = 0;
	rc = kw_wasm_parse_memory(buf, len, name, &info, err);
	if (rc) {
		goto out;
	}
	if (info->dylink != KW_WASM_DYLINK_0) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, info->dylink == KW_WASM_DYLINK_LEGACY ?
				  "'%s': legacy 'dylink' section (before Emscripten 2.0.30) cannot hold a runtime path" :
				  "'%s': not a side module (no dylink.0 section first)", name);
		goto out;
	}
	rc = check_list(edit->needed, edit->set_needed ? edit->n_needed : 0, false, "needed", err);
	if (!rc) {
		rc = check_list(edit->runtime_path, edit->set_runtime_path ? edit->n_runtime_path : 0, true,
				"runtime path", err);
	}
	if (rc) {
		goto out;
	}
	change_needed = edit->set_needed &&
			!same_list(info->needed, info->n_needed, edit->needed, edit->n_needed);
	change_rpath = edit->set_runtime_path &&
		       !same_list(info->runtime_path, info->n_runtime_path, edit->runtime_path,
				  edit->n_runtime_path);
	/* Nothing changes: the input as it is, so padded LEBs and all survive. */
	if (!change_needed && !change_rpath) {
		res = kw_malloc(len);
		if (!res) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(res, buf, len);
		*out = res;
		*out_len = len;
		res = NULL;
		rc = 0;
		goto out;
	}

	put_u32(&payload, 8);
	kw_buf_append_n(&payload, "dylink.0", 8);
	for (i = 0; i < info->n_subsections; i++) {
		const struct kw_wasm_subsection *s = &info->subsections[i];

		if (s->type == KW_WASM_DYLINK_NEEDED && change_needed) {
			rc = put_list(&payload, s->type, edit->needed, edit->n_needed, err);
			wrote_needed = true;
		} else if (s->type == KW_WASM_DYLINK_RUNTIME_PATH && change_rpath) {
			rc = put_list(&payload, s->type, edit->runtime_path, edit->n_runtime_path, err);
			wrote_rpath = true;
		} else {
			kw_buf_append_n(&payload, (const char *)b + s->offset, s->end - s->offset);
		}
		if (rc) {
			goto out;
		}
	}
	if (change_needed && !wrote_needed) {
		rc = put_list(&payload, KW_WASM_DYLINK_NEEDED, edit->needed, edit->n_needed, err);
		if (rc) {
			goto out;
		}
	}
	if (change_rpath && !wrote_rpath) {
		rc = put_list(&payload, KW_WASM_DYLINK_RUNTIME_PATH, edit->runtime_path, edit->n_runtime_path,
			      err);
		if (rc) {
			goto out;
		}
	}
	if (payload.failed) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (payload.len > UINT32_MAX) {
		rc = kw_error_set(err, KW_EINVAL, "'%s': new dylink.0 section would exceed 4 GiB", name);
		goto out;
	}
	hdr[0] = KW_WASM_SEC_CUSTOM;
	hlen = 1 + kw_wasm_put_u32(hdr + 1, (uint32_t)payload.len);
	tail = len - info->dylink_end;
	if (payload.len > SIZE_MAX - WASM_HEADER_SIZE - hlen - tail) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	total = WASM_HEADER_SIZE + hlen + payload.len + tail;
	res = kw_malloc(total);
	if (!res) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(res, b, WASM_HEADER_SIZE);
	memcpy(res + WASM_HEADER_SIZE, hdr, hlen);
	memcpy(res + WASM_HEADER_SIZE + hlen, payload.s, payload.len);
	if (tail) {
		memcpy(res + WASM_HEADER_SIZE + hlen + payload.len, b + info->dylink_end, tail);
	}
	*out = res;
	*out_len = total;
	res = NULL;
	rc = 0;
out:
	free(res);
	kw_buf_release(&payload);
	kw_wasm_info_free(info);
	return rc;
}
