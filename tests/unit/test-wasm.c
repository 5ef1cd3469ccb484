/* SPDX-License-Identifier: MIT */
/*
 * The wasm reader and the dylink.0 splice (kwheel/wasm.h).
 *
 * Real modules: the corpus Shapely wheel's speedups extension, whose first
 * 42 bytes the feasibility study printed (MEM_INFO 10916/4/52/0, NEEDED
 * libgeos_c.so), and the study's byte-exact "after repair" form when a
 * RUNTIME_PATH is added; every side module of the three corpus wasm wheels
 * parses, and an edit that changes nothing gives back the same bytes.
 *
 * Crafted modules, assembled here byte by byte (padded LEBs, unknown
 * subsections, legacy `dylink`), then a table of hostile ones: truncated and
 * overlong LEBs, sizes and counts past the end, a dylink.0 that is not
 * first, duplicate subsections, bad strings. Finally every allocation of a
 * parse and of an edit fails in turn.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/wasm.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */
/* A byte builder for crafted modules */

struct bb {
	unsigned char *p;
	size_t n, cap;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	if (n) {
		memcpy(b->p + b->n, p, n);
	}
	b->n += n;
}

static void bb_u8(struct bb *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	bb_put(b, &c, 1);
}

/* v as LEB128 in exactly width bytes (width 0: minimal). */
static void bb_leb(struct bb *b, uint64_t v, unsigned width)
{
	unsigned i = 0;

	do {
		unsigned char c = v & 0x7f;

		v >>= 7;
		i++;
		if (width ? i < width : v != 0) {
			c |= 0x80;
		}
		bb_put(b, &c, 1);
	} while (width ? i < width : v != 0);
}

static void bb_str(struct bb *b, const char *s)
{
	bb_leb(b, strlen(s), 0);
	bb_put(b, s, strlen(s));
}

/* Append a section of id whose payload is body (minimal size LEB, or padded to width). */
static void bb_section(struct bb *b, unsigned id, const struct bb *body, unsigned width)
{
	bb_u8(b, id);
	bb_leb(b, body->n, width);
	bb_put(b, body->p, body->n);
}

static void bb_header(struct bb *b)
{
	bb_put(b, "\0asm\1\0\0\0", 8);
}

static void bb_free(struct bb *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* A subsection of type with a list of names. */
static void bb_sub_list(struct bb *b, unsigned type, const char *const *v, size_t n)
{
	struct bb s = { 0 };
	size_t i;

	bb_leb(&s, n, 0);
	for (i = 0; i < n; i++) {
		bb_str(&s, v[i]);
	}
	bb_u8(b, type);
	bb_leb(b, s.n, 0);
	bb_put(b, s.p, s.n);
	bb_free(&s);
}

static void bb_sub_mem(struct bb *b, uint32_t ms, uint32_t ma, uint32_t ts, uint32_t ta)
{
	struct bb s = { 0 };

	bb_leb(&s, ms, 0);
	bb_leb(&s, ma, 0);
	bb_leb(&s, ts, 0);
	bb_leb(&s, ta, 0);
	bb_u8(b, 1);
	bb_leb(b, s.n, 0);
	bb_put(b, s.p, s.n);
	bb_free(&s);
}

/*
 * A side module: dylink.0 (MEM_INFO, NEEDED, an unknown subsection 0x42),
 * then type, import (env.memory with limits, a function), export and an
 * opaque custom section. width pads the dylink.0 size LEB.
 */
static void build_side(struct bb *m, unsigned width, bool unknown)
{
	static const char *const needed[] = { "libb.so", "libc.so" };
	struct bb dl = { 0 }, body = { 0 };

	bb_header(m);
	bb_str(&dl, "dylink.0");
	bb_sub_mem(&dl, 1024, 4, 3, 0);
	bb_sub_list(&dl, 2, needed, 2);
	if (unknown) {
		bb_u8(&dl, 0x42);
		bb_leb(&dl, 3, 0);
		bb_put(&dl, "xyz", 3);
	}
	bb_section(m, 0, &dl, width);
	bb_free(&dl);
	/* type: one func type () -> () */
	bb_put(&body, "\x01\x60\x00\x00", 4);
	bb_section(m, 1, &body, 0);
	bb_free(&body);
	/* import: env.memory (limits 1 min 1, max 16), env.f (func type 0) */
	bb_leb(&body, 2, 0);
	bb_str(&body, "env");
	bb_str(&body, "memory");
	bb_put(&body, "\x02\x01\x01\x10", 4);
	bb_str(&body, "env");
	bb_str(&body, "f");
	bb_put(&body, "\x00\x00", 2);
	bb_section(m, 2, &body, 0);
	bb_free(&body);
	/* export: "a_answer" func 1 */
	bb_leb(&body, 1, 0);
	bb_str(&body, "a_answer");
	bb_put(&body, "\x00\x01", 2);
	bb_section(m, 7, &body, 0);
	bb_free(&body);
	bb_str(&body, "producers");
	bb_put(&body, "\x00", 1);
	bb_section(m, 0, &body, 0);
	bb_free(&body);
}

static struct kw_wasm_info *parse_ok(const struct bb *m)
{
	struct kw_wasm_info *info = NULL;
	struct kw_error err = { 0 };
	int rc = kw_wasm_parse_memory(m->p, m->n, "m.so", &info, &err);

	ck_assert_msg(rc == 0, "parse failed: %s", err.msg);
	ck_assert_ptr_nonnull(info);
	return info;
}

/* ------------------------------------------------------------------ */
/* The corpus */

static char *tmpdir;

static void corpus_setup(void)
{
	char *cmd;

	tmpdir = kwt_mkdtemp();
	/* Every member that starts with the wasm magic, flattened to <index>.wasm, and a list of them. */
	cmd = kwt_fmt("python3 -c '\n"
		      "import sys, zipfile, glob, os\n"
		      "out = sys.argv[1]; n = 0\n"
		      "with open(os.path.join(out, \"list\"), \"w\") as lst:\n"
		      "    for w in sorted(glob.glob(os.path.join(sys.argv[2], \"wheels/emscripten/*.whl\"))):\n"
		      "        z = zipfile.ZipFile(w)\n"
		      "        for i in z.infolist():\n"
		      "            b = z.read(i)\n"
		      "            if b[:4] == b\"\\0asm\":\n"
		      "                open(os.path.join(out, \"%%d.wasm\" %% n), \"wb\").write(b)\n"
		      "                lst.write(\"%%d %%s\\n\" %% (n, i.filename)); n += 1\n"
		      "' %s %s", tmpdir, kwt_corpus());
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
}

static void corpus_teardown(void)
{
	kwt_rmtree(tmpdir);
	free(tmpdir);
}

/* The path of the extracted member whose name ends in suffix. */
static char *corpus_member(const char *suffix)
{
	char *lpath = kwt_fmt("%s/list", tmpdir);
	char *list = kwt_read_file(lpath, NULL);
	struct strlist lines = { 0 };
	char *found = NULL;
	size_t i;

	ck_assert_ptr_nonnull(list);
	sl_lines(&lines, list);
	for (i = 0; i < lines.n; i++) {
		size_t l = strlen(lines.v[i]);

		if (l >= strlen(suffix) && strcmp(lines.v[i] + l - strlen(suffix), suffix) == 0) {
			found = kwt_fmt("%s/%d.wasm", tmpdir, atoi(lines.v[i]));
		}
	}
	sl_free(&lines);
	free(list);
	free(lpath);
	ck_assert_msg(found != NULL, "no member ending in %s", suffix);
	return found;
}

START_TEST(corpus_speedups_bytes)
{
	static const unsigned char before[] = {
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x08, 'd', 'y', 'l', 'i', 'n',
		'k', '.', '0', 0x01, 0x05, 0xa4, 0x55, 0x04, 0x34, 0x00, 0x02, 0x0e, 0x01, 0x0c, 'l', 'i',
		'b', 'g', 'e', 'o', 's', '_', 'c', '.', 's', 'o',
	};
	static const char rp[] = "$ORIGIN/../../Shapely.libs";
	const char *rpv[] = { rp };
	struct kw_wasm_edit edit = { .set_runtime_path = true, .runtime_path = rpv, .n_runtime_path = 1 };
	char *path = corpus_member("_speedups.cpython-310-wasm32-emscripten.so");
	struct kw_wasm_info *info = NULL, *again = NULL;
	struct kw_error err = { 0 };
	unsigned char *out = NULL;
	size_t len, out_len;
	char *buf = kwt_read_file(path, &len);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_gt(len, sizeof(before));
	ck_assert_mem_eq(buf, before, sizeof(before));
	ck_assert_int_eq(kw_wasm_parse_memory(buf, len, path, &info, &err), 0);
	ck_assert_int_eq(info->dylink, KW_WASM_DYLINK_0);
	ck_assert_uint_eq(info->mem_size, 10916);
	ck_assert_uint_eq(info->mem_align, 4);
	ck_assert_uint_eq(info->table_size, 52);
	ck_assert_uint_eq(info->table_align, 0);
	ck_assert_uint_eq(info->n_needed, 1);
	ck_assert_str_eq(info->needed[0], "libgeos_c.so");
	ck_assert_ptr_null(info->needed[1]);
	ck_assert(!info->has_runtime_path);
	ck_assert_uint_eq(info->dylink_end, sizeof(before));
	ck_assert_uint_eq(info->n_subsections, 2);
	ck_assert_uint_gt(info->n_imports, 0);
	ck_assert_uint_gt(info->n_exports, 0);

	/* The study's repaired form: size 0x20 -> 0x3e, 05 1c 01 1a "$ORIGIN/../../Shapely.libs" appended. */
	ck_assert_int_eq(kw_wasm_edit_dylink(buf, len, path, &edit, &out, &out_len, &err), 0);
	ck_assert_uint_eq(out_len, len + 30);
	ck_assert_mem_eq(out, before, 9);
	ck_assert_uint_eq(out[9], 0x3e);
	ck_assert_mem_eq(out + 10, before + 10, sizeof(before) - 10);
	ck_assert_mem_eq(out + sizeof(before), "\x05\x1c\x01\x1a", 4);
	ck_assert_mem_eq(out + sizeof(before) + 4, rp, 26);
	ck_assert_mem_eq(out + sizeof(before) + 30, buf + sizeof(before), len - sizeof(before));
	ck_assert_int_eq(kw_wasm_parse_memory(out, out_len, "out", &again, &err), 0);
	ck_assert_uint_eq(again->n_runtime_path, 1);
	ck_assert_str_eq(again->runtime_path[0], rp);
	ck_assert_str_eq(again->needed[0], "libgeos_c.so");
	ck_assert_uint_eq(again->n_sections, info->n_sections);
	ck_assert_uint_eq(again->n_imports, info->n_imports);
	kw_wasm_info_free(again);
	kw_wasm_info_free(info);
	free(out);
	free(buf);
	free(path);
}
END_TEST

/* Every wasm member of the three corpus wheels parses as a side module, and a null edit is the identity. */
START_TEST(corpus_all_modules)
{
	char *lpath = kwt_fmt("%s/list", tmpdir);
	char *list = kwt_read_file(lpath, NULL);
	struct strlist lines = { 0 };
	size_t i, with_needed = 0;

	ck_assert_ptr_nonnull(list);
	sl_lines(&lines, list);
	ck_assert_uint_ge(lines.n, 22);
	for (i = 0; i < lines.n; i++) {
		char *path = kwt_fmt("%s/%d.wasm", tmpdir, atoi(lines.v[i]));
		struct kw_wasm_edit edit = { .set_needed = true, .set_runtime_path = true };
		struct kw_wasm_info *info = NULL;
		struct kw_error err = { 0 };
		unsigned char *out = NULL;
		size_t len, out_len;
		char *buf = kwt_read_file(path, &len);

		ck_assert_int_eq(kw_wasm_parse_memory(buf, len, lines.v[i], &info, &err), 0);
		ck_assert_msg(info->dylink == KW_WASM_DYLINK_0, "%s: not a side module", lines.v[i]);
		ck_assert(info->has_mem_info);
		with_needed += info->n_needed > 0;
		edit.needed = (const char *const *)info->needed;
		edit.n_needed = info->n_needed;
		edit.runtime_path = (const char *const *)info->runtime_path;
		edit.n_runtime_path = info->n_runtime_path;
		ck_assert_int_eq(kw_wasm_edit_dylink(buf, len, "m", &edit, &out, &out_len, &err), 0);
		ck_assert_uint_eq(out_len, len);
		ck_assert_mem_eq(out, buf, len);
		free(out);
		kw_wasm_info_free(info);
		free(buf);
		free(path);
	}
	/* Shapely's two extension modules. */
	ck_assert_uint_eq(with_needed, 2);
	sl_free(&lines);
	free(list);
	free(lpath);
}
END_TEST

/* The GEOS side modules beside the corpus: libgeos_c.so needs libgeos.so.3.10.3. */
START_TEST(corpus_geos)
{
	char *path = kwt_fmt("%s/wheels/emscripten/libs/libgeos_c.so", kwt_corpus());
	struct kw_wasm_info *info = NULL;
	struct kw_error err = { 0 };
	size_t len;
	char *buf = kwt_read_file(path, &len);

	ck_assert_ptr_nonnull(buf);
	ck_assert(kw_wasm_is_wasm(buf, len));
	ck_assert_int_eq(kw_wasm_parse_memory(buf, len, path, &info, &err), 0);
	ck_assert_uint_eq(info->n_needed, 1);
	ck_assert_str_eq(info->needed[0], "libgeos.so.3.10.3");
	kw_wasm_info_free(info);
	free(buf);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Crafted modules */

START_TEST(crafted_fields)
{
	struct bb m = { 0 };
	struct kw_wasm_info *info;

	build_side(&m, 0, true);
	info = parse_ok(&m);
	ck_assert_int_eq(info->dylink, KW_WASM_DYLINK_0);
	ck_assert_uint_eq(info->mem_size, 1024);
	ck_assert_uint_eq(info->table_size, 3);
	ck_assert_uint_eq(info->n_needed, 2);
	ck_assert_str_eq(info->needed[1], "libc.so");
	ck_assert_uint_eq(info->n_subsections, 3);
	ck_assert_uint_eq(info->subsections[2].type, 0x42);
	ck_assert_uint_eq(info->n_sections, 5);
	ck_assert_uint_eq(info->sections[1].id, KW_WASM_SEC_TYPE);
	ck_assert_str_eq(info->sections[4].name, "producers");
	ck_assert_uint_eq(info->n_imports, 2);
	ck_assert_str_eq(info->imports[0].field, "memory");
	ck_assert_uint_eq(info->imports[0].kind, 2);
	ck_assert_uint_eq(info->imports[0].min, 1);
	ck_assert(info->imports[0].has_max);
	ck_assert_uint_eq(info->imports[0].max, 16);
	ck_assert_uint_eq(info->n_exports, 1);
	ck_assert_str_eq(info->exports[0].name, "a_answer");
	ck_assert_uint_eq(info->exports[0].index, 1);
	kw_wasm_info_free(info);
	bb_free(&m);
}
END_TEST

/* emcc -O1 writes 5-byte section sizes: read, kept by a null edit, written minimally by a real one. */
START_TEST(padded_leb)
{
	static const char *const rp[] = { "$ORIGIN" };
	struct kw_wasm_edit null_edit = { 0 };
	struct kw_wasm_edit edit = { .set_runtime_path = true, .runtime_path = rp, .n_runtime_path = 1 };
	struct bb m = { 0 }, plain = { 0 };
	struct kw_wasm_info *info, *pinfo;
	struct kw_error err = { 0 };
	unsigned char *out = NULL;
	size_t out_len;

	build_side(&m, 5, true);
	build_side(&plain, 0, true);
	ck_assert_uint_eq(m.n, plain.n + 4);
	info = parse_ok(&m);
	pinfo = parse_ok(&plain);
	ck_assert_uint_eq(info->n_needed, 2);
	ck_assert_uint_eq(info->dylink_end, pinfo->dylink_end + 4);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &null_edit, &out, &out_len, &err), 0);
	ck_assert_uint_eq(out_len, m.n);
	ck_assert_mem_eq(out, m.p, m.n);
	free(out);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &edit, &out, &out_len, &err), 0);
	/* Minimal size LEB (4 bytes shorter), the runtime path appended after the unknown subsection. */
	ck_assert_uint_eq(out_len, plain.n + 2 + 1 + 1 + 7);
	ck_assert_mem_eq(out + pinfo->dylink_end + 11, plain.p + pinfo->dylink_end, plain.n - pinfo->dylink_end);
	ck_assert_mem_eq(out + pinfo->dylink_end, "\x05\x09\x01\x07$ORIGIN", 11);
	kw_wasm_info_free(info);
	kw_wasm_info_free(pinfo);
	free(out);
	bb_free(&m);
	bb_free(&plain);
}
END_TEST

/* Replace NEEDED in place, keep order; drop it with an empty list; replace a RUNTIME_PATH. */
START_TEST(edit_needed_and_path)
{
	static const char *const nn[] = { "libb-0123abcd.so", "libc.so" };
	static const char *const rp1[] = { "$ORIGIN/../x.libs", "/usr/lib" };
	static const char *const rp2[] = { "$ORIGIN" };
	struct kw_wasm_edit e1 = { .set_needed = true, .needed = nn, .n_needed = 2,
				   .set_runtime_path = true, .runtime_path = rp1, .n_runtime_path = 2 };
	struct kw_wasm_edit e2 = { .set_runtime_path = true, .runtime_path = rp2, .n_runtime_path = 1 };
	struct kw_wasm_edit e3 = { .set_needed = true, .n_needed = 0 };
	struct bb m = { 0 }, m1 = { 0 }, m2 = { 0 }, m3 = { 0 };
	struct kw_wasm_info *i0, *i1, *i2, *i3;
	struct kw_error err = { 0 };
	unsigned char *out = NULL;
	size_t out_len;

	build_side(&m, 0, true);
	i0 = parse_ok(&m);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &e1, &out, &out_len, &err), 0);
	bb_put(&m1, out, out_len);
	free(out);
	i1 = parse_ok(&m1);
	ck_assert_str_eq(i1->needed[0], "libb-0123abcd.so");
	ck_assert_str_eq(i1->runtime_path[1], "/usr/lib");
	/* MEM_INFO, NEEDED (re-encoded in place), the unknown one, RUNTIME_PATH (appended). */
	ck_assert_uint_eq(i1->n_subsections, 4);
	ck_assert_uint_eq(i1->subsections[1].type, 2);
	ck_assert_uint_eq(i1->subsections[2].type, 0x42);
	ck_assert_uint_eq(i1->subsections[3].type, 5);
	ck_assert_mem_eq(m1.p + i1->subsections[2].offset, m.p + i0->subsections[2].offset, 5);
	ck_assert_mem_eq(m1.p + i1->dylink_end, m.p + i0->dylink_end, m.n - i0->dylink_end);

	ck_assert_int_eq(kw_wasm_edit_dylink(m1.p, m1.n, "m", &e2, &out, &out_len, &err), 0);
	bb_put(&m2, out, out_len);
	free(out);
	i2 = parse_ok(&m2);
	ck_assert_uint_eq(i2->n_runtime_path, 1);
	ck_assert_str_eq(i2->runtime_path[0], "$ORIGIN");
	ck_assert_uint_eq(i2->subsections[3].type, 5);

	ck_assert_int_eq(kw_wasm_edit_dylink(m2.p, m2.n, "m", &e3, &out, &out_len, &err), 0);
	bb_put(&m3, out, out_len);
	free(out);
	i3 = parse_ok(&m3);
	ck_assert(!i3->has_needed);
	ck_assert_uint_eq(i3->n_subsections, 3);

	kw_wasm_info_free(i0);
	kw_wasm_info_free(i1);
	kw_wasm_info_free(i2);
	kw_wasm_info_free(i3);
	bb_free(&m);
	bb_free(&m1);
	bb_free(&m2);
	bb_free(&m3);
}
END_TEST

START_TEST(edit_refusals)
{
	static const char *const colon[] = { "$ORIGIN:/x" };
	static const char *const empty[] = { "" };
	static const char *const bad[] = { "lib\xff.so" };
	static const char *const rp[] = { "$ORIGIN" };
	struct kw_wasm_edit e_colon = { .set_runtime_path = true, .runtime_path = colon, .n_runtime_path = 1 };
	struct kw_wasm_edit e_empty = { .set_needed = true, .needed = empty, .n_needed = 1 };
	struct kw_wasm_edit e_bad = { .set_needed = true, .needed = bad, .n_needed = 1 };
	struct kw_wasm_edit e_rp = { .set_runtime_path = true, .runtime_path = rp, .n_runtime_path = 1 };
	struct bb m = { 0 }, legacy = { 0 }, plain = { 0 }, dl = { 0 };
	struct kw_wasm_info *info;
	struct kw_error err = { 0 };
	unsigned char *out = NULL;
	size_t out_len;

	build_side(&m, 0, false);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &e_colon, &out, &out_len, &err), KW_EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &e_empty, &out, &out_len, &err), KW_EINVAL);
	ck_assert_int_eq(kw_wasm_edit_dylink(m.p, m.n, "m", &e_bad, &out, &out_len, &err), KW_EINVAL);

	/* Legacy `dylink`: read (fields, needed), never edited. */
	bb_header(&legacy);
	bb_str(&dl, "dylink");
	bb_put(&dl, "\x80\x08\x02\x01\x00\x01\x07libx.so", 14);
	bb_section(&legacy, 0, &dl, 0);
	info = parse_ok(&legacy);
	ck_assert_int_eq(info->dylink, KW_WASM_DYLINK_LEGACY);
	ck_assert_uint_eq(info->mem_size, 1024);
	ck_assert_str_eq(info->needed[0], "libx.so");
	kw_wasm_info_free(info);
	ck_assert_int_eq(kw_wasm_edit_dylink(legacy.p, legacy.n, "m", &e_rp, &out, &out_len, &err),
			 KW_EUNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err.msg, "legacy"));

	/* No dylink section: parses, not a side module, not edited. */
	bb_header(&plain);
	info = parse_ok(&plain);
	ck_assert_int_eq(info->dylink, KW_WASM_NOT_SIDE);
	kw_wasm_info_free(info);
	ck_assert_int_eq(kw_wasm_edit_dylink(plain.p, plain.n, "m", &e_rp, &out, &out_len, &err),
			 KW_EUNSUPPORTED);
	bb_free(&m);
	bb_free(&legacy);
	bb_free(&plain);
	bb_free(&dl);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Hostile modules */

struct hostile {
	const char *what;
	const char *bytes;   /* after the 8-byte header */
	size_t n;
	const char *msg;     /* expected in the message */
};

#define H(w, b, m) { w, b, sizeof(b) - 1, m }
static const struct hostile hostile[] = {
	H("truncated section size", "\x00\x80", "truncated LEB128"),
	H("6-byte LEB", "\x00\x80\x80\x80\x80\x80\x00", "longer than 5 bytes"),
	H("LEB above 2^32", "\x00\x80\x80\x80\x80\x10", "above 2^32-1"),
	H("section past the end", "\x00\x20\x08" "dylink.0", "run past the end of the module"),
	H("custom name past section", "\x00\x03\x08" "dy", "run past its end"),
	H("dylink.0 not first", "\x01\x01\x00" "\x00\x09\x08" "dylink.0", "not the first section"),
	H("second dylink.0", "\x00\x09\x08" "dylink.0" "\x00\x09\x08" "dylink.0", "not the first section"),
	H("duplicate subsection",
	  "\x00\x0f\x08" "dylink.0" "\x02\x01\x00" "\x02\x01\x00", "duplicate dylink.0 subsection NEEDED"),
	H("duplicate unknown subsection",
	  "\x00\x0f\x08" "dylink.0" "\x09\x01\x00" "\x09\x01\x00", "duplicate dylink.0 subsection (unknown)"),
	H("subsection past section", "\x00\x0b\x08" "dylink.0" "\x02\x05", "run past the section"),
	H("huge NEEDED count",
	  "\x00\x10\x08" "dylink.0" "\x02\x05\xff\xff\xff\xff\x0f", "cannot fit"),
	H("NEEDED string past subsection",
	  "\x00\x0f\x08" "dylink.0" "\x02\x04\x01\x09" "ab", "run past its end"),
	H("empty NEEDED name", "\x00\x0d\x08" "dylink.0" "\x02\x02\x01\x00", "is empty"),
	H("NUL in NEEDED", "\x00\x0f\x08" "dylink.0" "\x02\x04\x01\x02" "a\x00", "NUL byte"),
	H("bad UTF-8 in NEEDED", "\x00\x0f\x08" "dylink.0" "\x02\x04\x01\x02" "a\xc0", "not UTF-8"),
	H("overlong UTF-8", "\x00\x10\x08" "dylink.0" "\x02\x05\x01\x03" "\xe0\x80\xaf", "not UTF-8"),
	H("surrogate", "\x00\x10\x08" "dylink.0" "\x02\x05\x01\x03" "\xed\xa0\x80", "not UTF-8"),
	H("colon in RUNTIME_PATH", "\x00\x0f\x08" "dylink.0" "\x05\x04\x01\x02" "a:", "holds ':'"),
	H("NEEDED trailing bytes", "\x00\x0e\x08" "dylink.0" "\x02\x03\x00\x00\x00", "left over"),
	H("MEM_INFO short", "\x00\x0e\x08" "dylink.0" "\x01\x03\x00\x00\x00", "truncated LEB128"),
	H("MEM_INFO trailing", "\x00\x10\x08" "dylink.0" "\x01\x05\x00\x00\x00\x00\x00", "left over"),
	H("huge EXPORT_INFO count", "\x00\x0f\x08" "dylink.0" "\x03\x04\xff\xff\xff\x7f", "cannot fit"),
	H("unknown section id", "\x0e\x00", "unknown section id 14"),
	H("out-of-order sections", "\x02\x01\x00" "\x01\x01\x00", "out of order"),
	H("repeated section", "\x01\x01\x00" "\x01\x01\x00", "out of order or repeated"),
	H("huge import count", "\x02\x05\xff\xff\xff\xff\x0f", "cannot fit"),
	H("import unknown kind", "\x02\x06\x01\x01m\x01" "f\x07", "unknown kind 7"),
	H("import limits flags", "\x02\x07\x01\x01m\x01" "f\x02\x09", "unknown flags"),
	H("import truncated", "\x02\x05\x01\x01m\x01" "f", "runs past its end"),
	H("export unknown kind", "\x07\x05\x01\x01x\x09\x00", "unknown kind 9"),
	H("export trailing", "\x07\x06\x01\x01x\x00\x00\x00", "left over"),
	H("legacy dylink huge needed", "\x00\x0f\x06" "dylink" "\x00\x00\x00\x00\xff\xff\xff\x7f", "cannot fit"),
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

START_TEST(hostile_inputs)
{
	const struct hostile *h = &hostile[_i];
	struct kw_wasm_info *info = NULL;
	struct kw_error err = { 0 };
	struct bb m = { 0 };
	unsigned char *exact;
	int rc;

	bb_header(&m);
	bb_put(&m, h->bytes, h->n);
	/* An exact-size copy: a read one past the end is an ASan report. */
	exact = malloc(m.n);
	ck_assert_ptr_nonnull(exact);
	memcpy(exact, m.p, m.n);
	rc = kw_wasm_parse_memory(exact, m.n, "h.so", &info, &err);
	ck_assert_msg(rc == KW_EFORMAT, "%s: rc %d (%s)", h->what, rc, err.msg);
	ck_assert_ptr_null(info);
	ck_assert_msg(strstr(err.msg, h->msg) != NULL, "%s: message '%s' lacks '%s'", h->what, err.msg, h->msg);
	ck_assert_msg(strncmp(err.msg, "'h.so': ", 8) == 0, "%s: message '%s' does not name the file", h->what,
		      err.msg);
	ck_assert_ptr_null(strchr(err.msg, '\n'));
	free(exact);
	bb_free(&m);
}
END_TEST

/* Every truncation of a valid module is an error or a shorter valid module, never a crash. */
START_TEST(truncations)
{
	struct bb m = { 0 };
	size_t cut;

	build_side(&m, 5, true);
	for (cut = 0; cut < m.n; cut++) {
		struct kw_wasm_info *info = NULL;
		struct kw_error err = { 0 };
		unsigned char *exact = malloc(cut ? cut : 1);
		int rc;

		ck_assert_ptr_nonnull(exact);
		memcpy(exact, m.p, cut);
		rc = kw_wasm_parse_memory(exact, cut, "t.so", &info, &err);
		if (cut < 8) {
			ck_assert_int_eq(rc, KW_EFORMAT);
		}
		ck_assert(rc == 0 || rc == KW_EFORMAT);
		ck_assert((rc == 0) == (info != NULL));
		kw_wasm_info_free(info);
		free(exact);
	}
	bb_free(&m);
}
END_TEST

START_TEST(version_and_magic)
{
	struct kw_wasm_info *info = NULL;
	struct kw_error err = { 0 };

	ck_assert(!kw_wasm_is_wasm("\x7f" "ELF", 4));
	ck_assert(!kw_wasm_is_wasm("\0as", 3));
	ck_assert_int_eq(kw_wasm_parse_memory("\x7f" "ELF\1\0\0\0", 8, "e", &info, &err), KW_EFORMAT);
	ck_assert_int_eq(kw_wasm_parse_memory("\0asm\2\0\0\0", 8, "v", &info, &err), KW_EUNSUPPORTED);
	ck_assert_int_eq(kw_wasm_parse_memory("\0asm\1\0", 6, "s", &info, &err), KW_EFORMAT);
	ck_assert_ptr_null(info);
	ck_assert_str_eq(kw_wasm_section_str(10), "code");
	ck_assert_str_eq(kw_wasm_section_str(99), "unknown");
	ck_assert_str_eq(kw_wasm_dylink_type_str(5), "RUNTIME_PATH");
	ck_assert_ptr_null(kw_wasm_dylink_type_str(9));
}
END_TEST

/* Every allocation of a parse and of an edit fails in turn: a clean KW_ENOMEM, then success. */
START_TEST(alloc_failures)
{
	static const char *const rp[] = { "$ORIGIN/../a.libs" };
	struct kw_wasm_edit edit = { .set_runtime_path = true, .runtime_path = rp, .n_runtime_path = 1 };
	struct bb m = { 0 };
	long n;
	int rc;

	build_side(&m, 0, true);
	for (n = 1;; n++) {
		struct kw_wasm_info *info = NULL;
		struct kw_error err = { 0 };

		kw_alloc_fail_at(n);
		rc = kw_wasm_parse_memory(m.p, m.n, "m", &info, &err);
		kw_alloc_fail_at(0);
		if (rc == 0) {
			kw_wasm_info_free(info);
			break;
		}
		ck_assert_int_eq(rc, KW_ENOMEM);
		ck_assert_ptr_null(info);
	}
	ck_assert_int_gt(n, 10);
	for (n = 1;; n++) {
		struct kw_error err = { 0 };
		unsigned char *out = NULL;
		size_t out_len = 0;

		kw_alloc_fail_at(n);
		rc = kw_wasm_edit_dylink(m.p, m.n, "m", &edit, &out, &out_len, &err);
		kw_alloc_fail_at(0);
		if (rc == 0) {
			free(out);
			break;
		}
		ck_assert_int_eq(rc, KW_ENOMEM);
		ck_assert_ptr_null(out);
	}
	bb_free(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wasm");
	TCase *tc = tcase_create("corpus");
	TCase *tb = tcase_create("crafted");

	tcase_add_unchecked_fixture(tc, corpus_setup, corpus_teardown);
	tcase_add_test(tc, corpus_speedups_bytes);
	tcase_add_test(tc, corpus_all_modules);
	tcase_add_test(tc, corpus_geos);
	suite_add_tcase(s, tc);
	tcase_add_test(tb, crafted_fields);
	tcase_add_test(tb, padded_leb);
	tcase_add_test(tb, edit_needed_and_path);
	tcase_add_test(tb, edit_refusals);
	tcase_add_loop_test(tb, hostile_inputs, 0, N_HOSTILE);
	tcase_add_test(tb, truncations);
	tcase_add_test(tb, version_and_magic);
	tcase_add_test(tb, alloc_failures);
	suite_add_tcase(s, tb);
	return kwt_main(s);
}
