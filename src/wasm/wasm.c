/* SPDX-License-Identifier: MIT */
/*
 * Read-only view of a WebAssembly module, as far as dynamic linking needs
 * it: the header, the section list, the dylink section (which the loaders
 * require first) with its subsections, and the import and export sections.
 * Code and data are never read. Every LEB128, size and count is checked
 * against the bytes that remain in its enclosing range before it is used,
 * and an array is only allocated for a count the remaining bytes can hold
 * (each entry takes at least one byte), so a forged count cannot make an
 * allocation bigger than the input.
 */
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"
#include "kwheel/wasm.h"

#include "internal.h"

static const unsigned char wasm_magic[4] = { 0x00, 0x61, 0x73, 0x6d };

bool kw_wasm_is_wasm(const void *buf, size_t len)
{
	return buf && len >= sizeof(wasm_magic) && memcmp(buf, wasm_magic, sizeof(wasm_magic)) == 0;
}

int kw_wasm_rd_u8(struct wrd *r, uint8_t *v, const char *what, struct kw_error *err)
{
	if (r->off >= r->end) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx runs past its end", r->name,
				    what, r->off);
	}
	*v = r->b[r->off++];
	return 0;
}

int kw_wasm_rd_u32(struct wrd *r, uint32_t *v, const char *what, struct kw_error *err)
{
	size_t start = r->off;
	uint32_t val = 0;
	unsigned i;

	for (i = 0; i < WASM_LEB32_MAX; i++) {
		unsigned char byte;

		if (r->off >= r->end) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: truncated LEB128",
					    r->name, what, start);
		}
		byte = r->b[r->off++];
		if (i == WASM_LEB32_MAX - 1) {
			/* The 5th byte carries bits 28-31 only; more would be a 6th byte or a value past 32 bits. */
			if (byte & 0x80) {
				return kw_error_set(err, KW_EFORMAT,
						    "'%s': %s at offset 0x%zx: LEB128 longer than 5 bytes",
						    r->name, what, start);
			}
			if (byte & 0x70) {
				return kw_error_set(err, KW_EFORMAT,
						    "'%s': %s at offset 0x%zx: LEB128 value above 2^32-1",
						    r->name, what, start);
			}
		}
		val |= (uint32_t)(byte & 0x7f) << (7 * i);
		if (!(byte & 0x80)) {
			break;
		}
	}
	*v = val;
	return 0;
}

/* A varuint64 (memory64 limits): at most 10 bytes, the 10th holding bit 63 only. */
static int rd_u64(struct wrd *r, uint64_t *v, const char *what, struct kw_error *err)
{
	size_t start = r->off;
	uint64_t val = 0;
	unsigned i;

	for (i = 0; i < 10; i++) {
		unsigned char byte;

		if (r->off >= r->end) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: truncated LEB128",
					    r->name, what, start);
		}
		byte = r->b[r->off++];
		if (i == 9 && (byte & 0xfe)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: LEB128 value above 2^64-1",
					    r->name, what, start);
		}
		val |= (uint64_t)(byte & 0x7f) << (7 * i);
		if (!(byte & 0x80)) {
			break;
		}
	}
	*v = val;
	return 0;
}

bool kw_wasm_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t need, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (need > n - i - 1) {
			return false;
		}
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, and code points past U+10FFFF. */
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		i += need + 1;
	}
	return true;
}

int kw_wasm_rd_name(struct wrd *r, char **out, bool nonempty, const char *what, struct kw_error *err)
{
	size_t start = r->off;
	uint32_t n;
	int rc;

	rc = kw_wasm_rd_u32(r, &n, what, err);
	if (rc) {
		return rc;
	}
	if (n > r->end - r->off) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: %u bytes run past its end",
				    r->name, what, start, n);
	}
	if (nonempty && n == 0) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx is empty", r->name, what, start);
	}
	if (memchr(r->b + r->off, 0, n)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx holds a NUL byte", r->name,
				    what, start);
	}
	if (!kw_wasm_utf8_ok(r->b + r->off, n)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx is not UTF-8", r->name, what,
				    start);
	}
	*out = kw_strndup((const char *)r->b + r->off, n);
	if (!*out) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	r->off += n;
	return 0;
}

size_t kw_wasm_put_u32(unsigned char *p, uint32_t v)
{
	size_t n = 0;

	do {
		unsigned char byte = v & 0x7f;

		v >>= 7;
		if (v) {
			byte |= 0x80;
		}
		p[n++] = byte;
	} while (v);
	return n;
}

const char *kw_wasm_section_str(uint8_t id)
{
	static const char *const names[] = {
		"custom", "type", "import", "function", "table", "memory", "global",
		"export", "start", "element", "code", "data", "datacount", "tag",
	};

	return id < sizeof(names) / sizeof(names[0]) ? names[id] : "unknown";
}

const char *kw_wasm_dylink_type_str(uint8_t type)
{
	switch (type) {
	case KW_WASM_DYLINK_MEM_INFO: return "MEM_INFO";
	case KW_WASM_DYLINK_NEEDED: return "NEEDED";
	case KW_WASM_DYLINK_EXPORT_INFO: return "EXPORT_INFO";
	case KW_WASM_DYLINK_IMPORT_INFO: return "IMPORT_INFO";
	case KW_WASM_DYLINK_RUNTIME_PATH: return "RUNTIME_PATH";
	default: return NULL;
	}
}

const char *kw_wasm_kind_str(uint8_t kind)
{
	static const char *const names[] = { "func", "table", "memory", "global", "tag" };

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i]);
	}
	free(v);
}

void kw_wasm_info_free(struct kw_wasm_info *info)
{
	size_t i;

	if (!info) {
		return;
	}
	for (i = 0; i < info->n_sections; i++) {
		free(info->sections[i].name);
	}
	free(info->sections);
	free(info->subsections);
	free_strv(info->needed, info->n_needed);
	free_strv(info->runtime_path, info->n_runtime_path);
	for (i = 0; i < info->n_dylink_exports; i++) {
		free(info->dylink_exports[i].name);
	}
	free(info->dylink_exports);
	for (i = 0; i < info->n_dylink_imports; i++) {
		free(info->dylink_imports[i].module);
		free(info->dylink_imports[i].field);
	}
	free(info->dylink_imports);
	for (i = 0; i < info->n_imports; i++) {
		free(info->imports[i].module);
		free(info->imports[i].field);
	}
	free(info->imports);
	for (i = 0; i < info->n_exports; i++) {
		free(info->exports[i].name);
	}
	free(info->exports);
	free(info);
}

/*
 * Read a count of entries each at least min_entry bytes long and refuse one
 * the remaining bytes cannot hold: the array is sized from it.
 */
static int rd_count(struct wrd *r, uint32_t *n, size_t min_entry, const char *what, struct kw_error *err)
{
	size_t start = r->off;
	int rc;

	rc = kw_wasm_rd_u32(r, n, what, err);
	if (rc) {
		return rc;
	}
	if (*n > (r->end - r->off) / min_entry) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: %u entries cannot fit in %zu bytes",
				    r->name, what, start, *n, r->end - r->off);
	}
	return 0;
}

/* The rest of a subsection must be consumed exactly: trailing bytes mean a misread layout. */
static int rd_done(const struct wrd *r, const char *what, struct kw_error *err)
{
	if (r->off != r->end) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s at offset 0x%zx: %zu bytes left over", r->name,
				    what, r->off, r->end - r->off);
	}
	return 0;
}

/* A list of names (NEEDED, RUNTIME_PATH): count, then count strings; NULL-terminated result. */
static int rd_name_list(struct wrd *r, char ***out, size_t *n_out, const char *what, bool path,
			struct kw_error *err)
{
	char **v = NULL;
	uint32_t n, i;
	int rc;

	rc = rd_count(r, &n, 1, what, err);
	if (rc) {
		goto out;
	}
	v = kw_calloc((size_t)n + 1, sizeof(*v));
	if (!v) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t at = r->off;

		rc = kw_wasm_rd_name(r, &v[i], true, what, err);
		if (rc) {
			goto out;
		}
		if (path && strchr(v[i], ':')) {
			/* The loader joins the entries with ':' and splits again: this one would become two. */
			rc = kw_error_set(err, KW_EFORMAT, "'%s': %s entry at offset 0x%zx holds ':'", r->name,
					  what, at);
			goto out;
		}
	}
	rc = rd_done(r, what, err);
	if (rc) {
		goto out;
	}
	*out = v;
	*n_out = n;
	v = NULL;
	rc = 0;
out:
	if (v) {
		free_strv(v, n);
	}
	return rc;
}

static int rd_mem_info(struct wrd *r, struct kw_wasm_info *info, const char *what, struct kw_error *err)
{
	int rc;

	rc = kw_wasm_rd_u32(r, &info->mem_size, what, err);
	if (!rc) {
		rc = kw_wasm_rd_u32(r, &info->mem_align, what, err);
	}
	if (!rc) {
		rc = kw_wasm_rd_u32(r, &info->table_size, what, err);
	}
	if (!rc) {
		rc = kw_wasm_rd_u32(r, &info->table_align, what, err);
	}
	if (!rc) {
		info->has_mem_info = true;
	}
	return rc;
}

static int rd_export_info(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	uint32_t n, i;
	int rc;

	/* A name (at least its length byte) and flags (one byte): two bytes at least. */
	rc = rd_count(r, &n, 2, "EXPORT_INFO count", err);
	if (rc) {
		return rc;
	}
	info->dylink_exports = kw_calloc(n ? n : 1, sizeof(*info->dylink_exports));
	if (!info->dylink_exports) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		struct kw_wasm_dylink_export *e = &info->dylink_exports[i];

		rc = kw_wasm_rd_name(r, &e->name, false, "EXPORT_INFO name", err);
		if (rc) {
			return rc;
		}
		info->n_dylink_exports++;
		rc = kw_wasm_rd_u32(r, &e->flags, "EXPORT_INFO flags", err);
		if (rc) {
			return rc;
		}
	}
	return rd_done(r, "EXPORT_INFO subsection", err);
}

static int rd_import_info(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	uint32_t n, i;
	int rc;

	rc = rd_count(r, &n, 3, "IMPORT_INFO count", err);
	if (rc) {
		return rc;
	}
	info->dylink_imports = kw_calloc(n ? n : 1, sizeof(*info->dylink_imports));
	if (!info->dylink_imports) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		struct kw_wasm_dylink_import *e = &info->dylink_imports[i];

		info->n_dylink_imports++;
		rc = kw_wasm_rd_name(r, &e->module, false, "IMPORT_INFO module", err);
		if (!rc) {
			rc = kw_wasm_rd_name(r, &e->field, false, "IMPORT_INFO field", err);
		}
		if (!rc) {
			rc = kw_wasm_rd_u32(r, &e->flags, "IMPORT_INFO flags", err);
		}
		if (rc) {
			return rc;
		}
	}
	return rd_done(r, "IMPORT_INFO subsection", err);
}

/* The subsections of dylink.0: sec is the section, r positioned after its name. */
static int rd_dylink0(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	size_t cap = 0;
	bool seen[256] = { false };
	int rc = 0;

	while (r->off < r->end) {
		struct wrd sub = *r;
		size_t start = r->off;
		uint8_t type;
		uint32_t size;
		const char *tname;

		rc = kw_wasm_rd_u8(r, &type, "dylink.0 subsection type", err);
		if (!rc) {
			rc = kw_wasm_rd_u32(r, &size, "dylink.0 subsection size", err);
		}
		if (rc) {
			return rc;
		}
		if (size > r->end - r->off) {
			return kw_error_set(err, KW_EFORMAT,
					    "'%s': dylink.0 subsection %u at offset 0x%zx: %u bytes run past the section",
					    r->name, type, start, size);
		}
		tname = kw_wasm_dylink_type_str(type);
		if (seen[type]) {
			/* The loaders let the last one win silently; which one a tool edits would be a guess. */
			return kw_error_set(err, KW_EFORMAT, "'%s': duplicate dylink.0 subsection %s at offset 0x%zx",
					    r->name, tname ? tname : "(unknown)", start);
		}
		seen[type] = true;
		if (kw_grow(&info->subsections, &cap, info->n_subsections + 1, sizeof(*info->subsections))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		info->subsections[info->n_subsections].type = type;
		info->subsections[info->n_subsections].offset = start;
		info->subsections[info->n_subsections].end = r->off + size;
		info->n_subsections++;
		sub.off = r->off;
		sub.end = r->off + size;
		r->off += size;
		switch (type) {
		case KW_WASM_DYLINK_MEM_INFO:
			rc = rd_mem_info(&sub, info, "MEM_INFO subsection", err);
			if (!rc) {
				rc = rd_done(&sub, "MEM_INFO subsection", err);
			}
			break;
		case KW_WASM_DYLINK_NEEDED:
			rc = rd_name_list(&sub, &info->needed, &info->n_needed, "NEEDED", false, err);
			info->has_needed = !rc;
			break;
		case KW_WASM_DYLINK_EXPORT_INFO:
			rc = rd_export_info(&sub, info, err);
			break;
		case KW_WASM_DYLINK_IMPORT_INFO:
			rc = rd_import_info(&sub, info, err);
			break;
		case KW_WASM_DYLINK_RUNTIME_PATH:
			rc = rd_name_list(&sub, &info->runtime_path, &info->n_runtime_path, "RUNTIME_PATH", true, err);
			info->has_runtime_path = !rc;
			break;
		default:
			/* Unknown: skipped by its size, as the loaders do, and kept byte for byte by an edit. */
			break;
		}
		if (rc) {
			return rc;
		}
	}
	return 0;
}

/* The legacy `dylink` section: the four MEM_INFO values, then the needed list, no subsections. */
static int rd_dylink_legacy(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	int rc;

	rc = rd_mem_info(r, info, "dylink section", err);
	if (rc) {
		return rc;
	}
	rc = rd_name_list(r, &info->needed, &info->n_needed, "dylink needed list", false, err);
	info->has_needed = !rc;
	return rc;
}

/* Table/memory limits: flags, min, and max when flags bit 0 says so; bit 2 is memory64. */
static int rd_limits(struct wrd *r, struct kw_wasm_import *im, struct kw_error *err)
{
	uint8_t flags;
	uint32_t v32;
	int rc;

	rc = kw_wasm_rd_u8(r, &flags, "import limits", err);
	if (rc) {
		return rc;
	}
	if (flags > 7) {
		return kw_error_set(err, KW_EFORMAT, "'%s': import limits at offset 0x%zx: unknown flags 0x%x",
				    r->name, r->off - 1, flags);
	}
	im->has_max = flags & 1;
	if (flags & 4) {
		rc = rd_u64(r, &im->min, "import limits", err);
		if (!rc && im->has_max) {
			rc = rd_u64(r, &im->max, "import limits", err);
		}
		return rc;
	}
	rc = kw_wasm_rd_u32(r, &v32, "import limits", err);
	im->min = v32;
	if (!rc && im->has_max) {
		rc = kw_wasm_rd_u32(r, &v32, "import limits", err);
		im->max = v32;
	}
	return rc;
}

static int rd_imports(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	uint32_t n, i;
	int rc;

	/* Two names (a length byte each), a kind and a one-byte descriptor at least. */
	rc = rd_count(r, &n, 4, "import count", err);
	if (rc) {
		return rc;
	}
	info->imports = kw_calloc(n ? n : 1, sizeof(*info->imports));
	if (!info->imports) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		struct kw_wasm_import *im = &info->imports[i];
		uint8_t b;
		uint32_t v;

		info->n_imports++;
		rc = kw_wasm_rd_name(r, &im->module, false, "import module name", err);
		if (!rc) {
			rc = kw_wasm_rd_name(r, &im->field, false, "import field name", err);
		}
		if (!rc) {
			rc = kw_wasm_rd_u8(r, &im->kind, "import kind", err);
		}
		if (rc) {
			return rc;
		}
		switch (im->kind) {
		case 0: /* function: type index */
			rc = kw_wasm_rd_u32(r, &v, "import type index", err);
			break;
		case 1: /* table: reference type, limits */
			rc = kw_wasm_rd_u8(r, &b, "import table type", err);
			if (!rc) {
				rc = rd_limits(r, im, err);
			}
			break;
		case 2: /* memory: limits */
			rc = rd_limits(r, im, err);
			break;
		case 3: /* global: value type, mutability */
			rc = kw_wasm_rd_u8(r, &b, "import global type", err);
			if (!rc) {
				rc = kw_wasm_rd_u8(r, &b, "import global mutability", err);
			}
			break;
		case 4: /* tag: attribute, type index */
			rc = kw_wasm_rd_u8(r, &b, "import tag attribute", err);
			if (!rc) {
				rc = kw_wasm_rd_u32(r, &v, "import tag type", err);
			}
			break;
		default:
			rc = kw_error_set(err, KW_EFORMAT, "'%s': import at offset 0x%zx: unknown kind %u", r->name,
					  r->off - 1, im->kind);
			break;
		}
		if (rc) {
			return rc;
		}
	}
	return rd_done(r, "import section", err);
}

static int rd_exports(struct wrd *r, struct kw_wasm_info *info, struct kw_error *err)
{
	uint32_t n, i;
	int rc;

	rc = rd_count(r, &n, 3, "export count", err);
	if (rc) {
		return rc;
	}
	info->exports = kw_calloc(n ? n : 1, sizeof(*info->exports));
	if (!info->exports) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		struct kw_wasm_export *ex = &info->exports[i];

		info->n_exports++;
		rc = kw_wasm_rd_name(r, &ex->name, false, "export name", err);
		if (!rc) {
			rc = kw_wasm_rd_u8(r, &ex->kind, "export kind", err);
		}
		if (!rc) {
			rc = kw_wasm_rd_u32(r, &ex->index, "export index", err);
		}
		if (rc) {
			return rc;
		}
		if (ex->kind > 4) {
			return kw_error_set(err, KW_EFORMAT, "'%s': export '%s': unknown kind %u", r->name, ex->name,
					    ex->kind);
		}
	}
	return rd_done(r, "export section", err);
}

/*
 * The position of each known section in the order the core format fixes
 * (tag sits between memory and global, datacount between element and code).
 */
static int section_rank(uint8_t id)
{
	static const int rank[] = {
		[KW_WASM_SEC_TYPE] = 1, [KW_WASM_SEC_IMPORT] = 2, [KW_WASM_SEC_FUNCTION] = 3,
		[KW_WASM_SEC_TABLE] = 4, [KW_WASM_SEC_MEMORY] = 5, [KW_WASM_SEC_TAG] = 6,
		[KW_WASM_SEC_GLOBAL] = 7, [KW_WASM_SEC_EXPORT] = 8, [KW_WASM_SEC_START] = 9,
		[KW_WASM_SEC_ELEMENT] = 10, [KW_WASM_SEC_DATACOUNT] = 11, [KW_WASM_SEC_CODE] = 12,
		[KW_WASM_SEC_DATA] = 13,
	};

	return id >= 1 && id <= KW_WASM_SEC_TAG ? rank[id] : 0;
}

int kw_wasm_parse_memory(const void *buf, size_t len, const char *name, struct kw_wasm_info **out,
			 struct kw_error *err)
{
	const unsigned char *b = buf;
	struct kw_wasm_info *info = NULL;
	struct wrd r;
	size_t cap = 0;
	int last_rank = 0;
	int rc = KW_EINTERNAL;

	*out = NULL;
	if (!kw_wasm_is_wasm(buf, len)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not a wasm module (no \\0asm magic)", name);
		goto out;
	}
	if (len < WASM_HEADER_SIZE) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': wasm header truncated", name);
		goto out;
	}
	info = kw_calloc(1, sizeof(*info));
	if (!info) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	info->version = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
	if (info->version != 1) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': wasm binary version %u (only 1 is known)", name,
				  info->version);
		goto out;
	}
	r.b = b;
	r.off = WASM_HEADER_SIZE;
	r.end = len;
	r.name = name;
	while (r.off < r.end) {
		struct kw_wasm_section *s;
		struct wrd body;
		size_t start = r.off;
		uint8_t id;
		uint32_t size;
		int rank;

		rc = kw_wasm_rd_u8(&r, &id, "section id", err);
		if (!rc) {
			rc = kw_wasm_rd_u32(&r, &size, "section size", err);
		}
		if (rc) {
			goto out;
		}
		if (size > r.end - r.off) {
			rc = kw_error_set(err, KW_EFORMAT,
					  "'%s': %s section at offset 0x%zx: %u bytes run past the end of the module (%zu left)",
					  name, kw_wasm_section_str(id), start, size, r.end - r.off);
			goto out;
		}
		if (id > KW_WASM_SEC_TAG) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': unknown section id %u at offset 0x%zx", name, id,
					  start);
			goto out;
		}
		rank = section_rank(id);
		if (rank && rank <= last_rank) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': %s section at offset 0x%zx is out of order or repeated",
					  name, kw_wasm_section_str(id), start);
			goto out;
		}
		if (rank) {
			last_rank = rank;
		}
		if (kw_grow(&info->sections, &cap, info->n_sections + 1, sizeof(*info->sections))) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		s = &info->sections[info->n_sections++];
		memset(s, 0, sizeof(*s));
		s->id = id;
		s->offset = start;
		s->payload = r.off;
		s->size = size;
		body = r;
		body.end = r.off + size;
		r.off += size;

		if (id == KW_WASM_SEC_CUSTOM) {
			rc = kw_wasm_rd_name(&body, &s->name, false, "custom section name", err);
			if (rc) {
				goto out;
			}
			if (strcmp(s->name, "dylink.0") == 0 || strcmp(s->name, "dylink") == 0) {
				if (info->n_sections != 1) {
					/* Loaders look only at the first section: a later one is dead metadata. */
					rc = kw_error_set(err, KW_EFORMAT,
							  "'%s': %s section at offset 0x%zx is not the first section", name,
							  s->name, start);
					goto out;
				}
				info->dylink_end = r.off;
				if (s->name[6] == '.') {
					info->dylink = KW_WASM_DYLINK_0;
					rc = rd_dylink0(&body, info, err);
				} else {
					info->dylink = KW_WASM_DYLINK_LEGACY;
					rc = rd_dylink_legacy(&body, info, err);
				}
				if (rc) {
					goto out;
				}
			}
		} else if (id == KW_WASM_SEC_IMPORT) {
			rc = rd_imports(&body, info, err);
			if (rc) {
				goto out;
			}
		} else if (id == KW_WASM_SEC_EXPORT) {
			rc = rd_exports(&body, info, err);
			if (rc) {
				goto out;
			}
		}
	}
	*out = info;
	info = NULL;
	rc = 0;
out:
	kw_wasm_info_free(info);
	return rc;
}
