/* SPDX-License-Identifier: MIT */
/*
 * fuzz-wasm: the wasm reader and the dylink.0 splice. An input that starts
 * with the wasm magic is a module, edited to add the runtime path
 * "$ORIGIN/../fz.libs"; any other is a flags byte (bit 0: set NEEDED, bit 1:
 * set RUNTIME_PATH, bit 2: empty lists), a NEEDED entry and a RUNTIME_PATH
 * entry each ended by a NUL, then the module.
 *
 * kw_wasm_parse_memory promises that a forged module is KW_EFORMAT (or
 * KW_EUNSUPPORTED for another binary version), never a crash: every field is
 * read after the input is freed, and every section and subsection must lie
 * inside the module. A successful edit must re-parse, carry the requested
 * lists (the old ones where none was requested), keep every section and
 * import/export count, and end with the old module's bytes after dylink.0
 * unchanged; a failed one leaves no output, and the line the CLI prints
 * from its message (names may hold control bytes) is one clean line.
 */
#include <stdlib.h>
#include <string.h>

#include "kwheel/kwheel.h"
#include "kwheel/report.h"
#include "kwheel/wasm.h"

#include "fuzz-common.h"

static void walk_strv(char *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!v[i]) {
			abort();
		}
		fz_touch(v[i], strlen(v[i]) + 1);
	}
	if (v && v[n]) {
		abort();
	}
}

static void walk(const struct kw_wasm_info *info, size_t len)
{
	size_t i;

	for (i = 0; i < info->n_sections; i++) {
		const struct kw_wasm_section *s = &info->sections[i];

		if (s->offset >= s->payload || s->payload > len || s->size > len - s->payload) {
			abort();
		}
		if (s->name) {
			fz_touch(s->name, strlen(s->name) + 1);
		}
		if ((s->id == KW_WASM_SEC_CUSTOM) != (s->name != NULL)) {
			abort();
		}
	}
	if (info->dylink != KW_WASM_NOT_SIDE &&
	    (!info->n_sections || info->dylink_end != info->sections[0].payload + info->sections[0].size)) {
		abort();
	}
	for (i = 0; i < info->n_subsections; i++) {
		const struct kw_wasm_subsection *s = &info->subsections[i];

		if (s->offset >= s->end || s->end > info->dylink_end) {
			abort();
		}
	}
	walk_strv(info->needed, info->n_needed);
	walk_strv(info->runtime_path, info->n_runtime_path);
	for (i = 0; i < info->n_runtime_path; i++) {
		if (strchr(info->runtime_path[i], ':') || !info->runtime_path[i][0]) {
			abort();
		}
	}
	for (i = 0; i < info->n_dylink_exports; i++) {
		fz_touch(info->dylink_exports[i].name, strlen(info->dylink_exports[i].name) + 1);
	}
	for (i = 0; i < info->n_dylink_imports; i++) {
		fz_touch(info->dylink_imports[i].module, strlen(info->dylink_imports[i].module) + 1);
		fz_touch(info->dylink_imports[i].field, strlen(info->dylink_imports[i].field) + 1);
	}
	for (i = 0; i < info->n_imports; i++) {
		fz_touch(info->imports[i].module, strlen(info->imports[i].module) + 1);
		fz_touch(info->imports[i].field, strlen(info->imports[i].field) + 1);
	}
	for (i = 0; i < info->n_exports; i++) {
		fz_touch(info->exports[i].name, strlen(info->exports[i].name) + 1);
	}
	fz_touch(&info->mem_size, sizeof(info->mem_size));
}

/*
 * The message is a value and may quote names with control bytes; the line
 * the CLI prints from it must be one line with none.
 */
static bool clean_line(const struct kw_error *err)
{
	char *line = memchr(err->msg, '\0', sizeof(err->msg)) ? kw_report_error_line(err) : NULL;
	bool clean = line != NULL && err->msg[0];
	const char *c;

	for (c = line; clean && *c; c++) {
		clean = (unsigned char)*c >= 0x20 && (unsigned char)*c != 0x7f;
	}
	free(line);
	return clean;
}

static bool same(char *const *a, size_t na, const char *const *b, size_t nb)
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

static void check_edit(const uint8_t *mod, size_t len, const struct kw_wasm_info *before,
		       const struct kw_wasm_edit *edit)
{
	struct kw_wasm_info *after = NULL;
	struct kw_error err;
	unsigned char *out = (unsigned char *)1;
	size_t out_len = 1, tail;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = kw_wasm_edit_dylink(mod, len, "fuzz.so", edit, &out, &out_len, &err);
	if (rc) {
		if (rc > 0 || out || out_len || !clean_line(&err)) {
			abort();
		}
		if (before->dylink == KW_WASM_DYLINK_0 && rc != KW_EINVAL && rc != KW_ENOMEM) {
			abort();
		}
		return;
	}
	if (before->dylink != KW_WASM_DYLINK_0) {
		abort();
	}
	memset(&err, 0, sizeof(err));
	if (kw_wasm_parse_memory(out, out_len, "out.so", &after, &err) != 0) {
		abort();
	}
	walk(after, out_len);
	tail = len - before->dylink_end;
	if (after->dylink != KW_WASM_DYLINK_0 || out_len - after->dylink_end != tail ||
	    memcmp(out + after->dylink_end, mod + before->dylink_end, tail) != 0 ||
	    memcmp(out, mod, 8) != 0) {
		abort();
	}
	if (after->n_sections != before->n_sections || after->n_imports != before->n_imports ||
	    after->n_exports != before->n_exports || after->mem_size != before->mem_size ||
	    after->n_dylink_exports != before->n_dylink_exports) {
		abort();
	}
	if (edit->set_needed ? !same(after->needed, after->n_needed, edit->needed, edit->n_needed)
			     : !same(after->needed, after->n_needed, (const char *const *)before->needed,
				     before->n_needed)) {
		abort();
	}
	if (edit->set_runtime_path
		    ? !same(after->runtime_path, after->n_runtime_path, edit->runtime_path, edit->n_runtime_path)
		    : !same(after->runtime_path, after->n_runtime_path,
			    (const char *const *)before->runtime_path, before->n_runtime_path)) {
		abort();
	}
	kw_wasm_info_free(after);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const default_rp[] = { "$ORIGIN/../fz.libs" };
	struct kw_wasm_edit edit = { .set_runtime_path = true, .runtime_path = default_rp, .n_runtime_path = 1 };
	struct kw_wasm_info *info = NULL;
	struct fz_part parts[3];
	struct kw_error err;
	char *needed = NULL, *rpath = NULL;
	const char *nv[1], *rv[1];
	const uint8_t *mod = data;
	size_t len = size;
	uint8_t *copy;
	int rc;

	if (!kw_wasm_is_wasm(data, size) && size > 0) {
		uint8_t flags = data[0];

		if (fz_split(data + 1, size - 1, 0, parts, 3) != 3) {
			return 0;
		}
		needed = fz_strdup_part(&parts[0]);
		rpath = fz_strdup_part(&parts[1]);
		nv[0] = needed;
		rv[0] = rpath;
		edit.set_needed = flags & 1;
		edit.needed = nv;
		edit.n_needed = flags & 4 ? 0 : 1;
		edit.set_runtime_path = flags & 2;
		edit.runtime_path = rv;
		edit.n_runtime_path = flags & 4 ? 0 : 1;
		mod = parts[2].p;
		len = parts[2].len;
	}
	/* An exact-size heap copy: a read one past the end is an ASan report, not a silent read. */
	copy = malloc(len ? len : 1);
	if (!copy) {
		abort();
	}
	if (len) {
		memcpy(copy, mod, len);
	}
	memset(&err, 0, sizeof(err));
	rc = kw_wasm_parse_memory(copy, len, "fuzz.so", &info, &err);
	if (rc == 0) {
		if (!info) {
			abort();
		}
		check_edit(copy, len, info, &edit);
		/* The buffer is borrowed for the call only: poison-by-free proves nothing points into it. */
		free(copy);
		copy = NULL;
		walk(info, len);
	} else if (info || rc > 0 || (rc != KW_EFORMAT && rc != KW_EUNSUPPORTED && rc != KW_ENOMEM) ||
		   !clean_line(&err)) {
		abort();
	}
	kw_wasm_info_free(info);
	free(copy);
	free(needed);
	free(rpath);
	return 0;
}
