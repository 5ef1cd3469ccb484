/* SPDX-License-Identifier: MIT */
/*
 * The ELF editor on objects gcc builds here, with readelf as the oracle:
 * each edit of kw_patch_ops (search path as RUNPATH or RPATH, SONAME,
 * DT_NEEDED replaced, added, removed) gives the dynamic section readelf
 * reads back, growing or not; every byte the edit changes lies in a block
 * it reports written (the file writer copies the others from the input
 * unread), and the file written is the edited image and its tail; an input
 * that is not ELF, or a cut one, is an error that leaves the file and the
 * buffer as they were.
 */
#include <stdlib.h>
#include <string.h>

#include "kwheel/patch.h"
#include "testlib.h"

static char *dir;

/*
 * A shared object needing libkwa.so.1 and libkwb.so.2 (stubs gcc builds
 * too), SONAME libkwt.so.1, exporting kwt and n_more functions more (which
 * spread .dynsym, .dynstr and the version tables over many blocks).
 */
static char *build_n(const char *extra, size_t n_more)
{
	char *src = kwt_fmt("%s/t.c", dir), *so = kwt_fmt("%s/libkwt.so.1", dir), *cmd;
	char *text = kwt_fmt("int kwt(void) { return 1; }\n"), *more;
	size_t i;

	for (i = 0; i < n_more; i++) {
		more = kwt_fmt("%sint kwt_exported_function_%zu(void) { return %zu; }\n", text, i, i);
		free(text);
		text = more;
	}
	ck_assert_int_eq(kwt_write_file(src, text, strlen(text)), 0);
	free(text);
	cmd = kwt_fmt("cd '%s' && gcc -shared -fPIC -Wl,-soname,libkwa.so.1 -o libkwa.so.1 -x c /dev/null && "
		      "gcc -shared -fPIC -Wl,-soname,libkwb.so.2 -o libkwb.so.2 -x c /dev/null && "
		      "gcc -shared -fPIC -Wl,--no-as-needed -Wl,-soname,libkwt.so.1 %s -o '%s' t.c ./libkwa.so.1 ./libkwb.so.2",
		      dir, extra, so);
	ck_assert_msg(kwt_run(cmd, NULL, NULL) == 0, "gcc: %s", cmd);
	free(cmd);
	free(src);
	return so;
}

static char *build(const char *extra)
{
	return build_n(extra, 0);
}

/* readelf's reading of one dynamic tag ("NEEDED", "RUNPATH", ...): the values in order, joined by spaces. */
static char *readelf_dyn(const char *so, const char *tag)
{
	char *cmd = kwt_fmt("readelf -dW '%s' | sed -n 's/.*(%s) *[^[]*\\[\\(.*\\)\\]$/\\1/p' | tr '\\n' ' ' | "
			    "sed 's/ $//'", so, tag);
	char *out = NULL;

	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	free(cmd);
	return out;
}

static void setup(void)
{
	dir = kwt_mkdtemp();
}

static void teardown(void)
{
	kwt_rmtree(dir);
	free(dir);
	dir = NULL;
}

static const char *const long_path[] = { "$ORIGIN/../a/much/longer/search/path/than/the/string/table/had/room/for" };
static const char *const add_needed[] = { "libkwnew-with-a-long-name.so.9" };
static const char *const remove_b[] = { "libkwb.so.2" };
static const struct kw_patch_replace replace_a[] = { { "libkwa.so.1", "libkwa-0123456789abcdef.so.1" } };

/* One edit per row, and what readelf must read back afterwards. */
static const struct {
	const char *what, *gcc;
	struct kw_patch_ops ops;
	const char *needed, *runpath, *rpath, *soname;
} cases[] = {
	{ "set RUNPATH on a file with none", "", { .set_rpath = "$ORIGIN/lib" },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "$ORIGIN/lib", "", "libkwt.so.1" },
	{ "set RPATH (force)", "", { .set_rpath = "/opt/x", .force_rpath = true },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "", "/opt/x", "libkwt.so.1" },
	{ "a RUNPATH keeps its tag", "-Wl,--enable-new-dtags -Wl,-rpath,/old", { .set_rpath = "/new" },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "/new", "", "libkwt.so.1" },
	/* As patchelf: a new search path is DT_RUNPATH unless forced, even where DT_RPATH was. */
	{ "an RPATH becomes RUNPATH", "-Wl,--disable-new-dtags -Wl,-rpath,/old", { .set_rpath = "/new" },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "/new", "", "libkwt.so.1" },
	{ "an RPATH kept with force", "-Wl,--disable-new-dtags -Wl,-rpath,/old", { .set_rpath = "/new", .force_rpath = true },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "", "/new", "libkwt.so.1" },
	{ "append to the path, growing", "-Wl,--enable-new-dtags -Wl,-rpath,/old",
	  { .add_rpath = long_path, .n_add_rpath = 1 }, "libkwa.so.1 libkwb.so.2 libc.so.6",
	  "/old:$ORIGIN/../a/much/longer/search/path/than/the/string/table/had/room/for", "", "libkwt.so.1" },
	{ "remove the path", "-Wl,--enable-new-dtags -Wl,-rpath,/old", { .remove_rpath = true },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "", "", "libkwt.so.1" },
	{ "a longer SONAME", "", { .set_soname = "libkwt-renamed-to-something-longer.so.1" },
	  "libkwa.so.1 libkwb.so.2 libc.so.6", "", "", "libkwt-renamed-to-something-longer.so.1" },
	{ "replace a DT_NEEDED", "", { .replace_needed = replace_a, .n_replace_needed = 1 },
	  "libkwa-0123456789abcdef.so.1 libkwb.so.2 libc.so.6", "", "", "libkwt.so.1" },
	{ "add a DT_NEEDED first, remove another", "",
	  { .add_needed = add_needed, .n_add_needed = 1, .remove_needed = remove_b, .n_remove_needed = 1 },
	  "libkwnew-with-a-long-name.so.9 libkwa.so.1 libc.so.6", "", "", "libkwt.so.1" },
	{ "header edits: OS ABI, stack, DT_DEBUG", "", { .set_os_abi = true, .os_abi = 3, .execstack = 1,
	  .add_debug_tag = true }, "libkwa.so.1 libkwb.so.2 libc.so.6", "", "", "libkwt.so.1" },
};

/*
 * The same edit on the bytes in memory: whatever differs from the input is
 * in a block res.written names, and the file kw_patch_file wrote (from those
 * blocks, kernel copies of the others and the tail) is that image.
 */
static void check_written_blocks(const char *what, const char *so, const struct kw_patch_ops *ops, const char *out)
{
	struct kw_patch_result res = { 0 };
	struct kw_error err = { 0 };
	size_t len, olen, i, n_written = 0;
	unsigned char *orig = (unsigned char *)kwt_read_file(so, &len), *img = malloc(len), *file;

	ck_assert_msg(kw_patch_file(so, out, ops, NULL, &err) == 0, "%s: %s", what, err.msg);
	file = (unsigned char *)kwt_read_file(out, &olen);
	ck_assert(orig && img && file);
	memcpy(img, orig, len);
	ck_assert_msg(kw_patch_image(img, len, so, ops, &res, &err) == 0, "%s: %s", what, err.msg);
	ck_assert_ptr_nonnull(res.written);
	for (i = 0; i < len; i++) {
		bool w = res.written[i / KW_PATCH_BLOCK / 8] >> (i / KW_PATCH_BLOCK % 8) & 1;

		ck_assert_msg(w || img[i] == orig[i], "%s: byte %zu changed in a block not reported written", what, i);
		n_written += w && i % KW_PATCH_BLOCK == 0;
	}
	ck_assert_msg(n_written > 0 && n_written < (len + KW_PATCH_BLOCK - 1) / KW_PATCH_BLOCK,
		      "%s: %zu of %zu blocks written", what, n_written, (len + KW_PATCH_BLOCK - 1) / KW_PATCH_BLOCK);
	ck_assert_msg(olen == len + res.tail_len && memcmp(file, img, len) == 0 &&
		      (res.tail_len == 0 || memcmp(file + len, res.tail, res.tail_len) == 0),
		      "%s: the file written is not the edited image", what);
	kw_patch_result_release(&res);
	free(orig), free(img), free(file);
}

START_TEST(edit_matches_readelf)
{
	struct kw_patch_result res = { 0 };
	struct kw_error err = { 0 };
	char *so = build(cases[_i].gcc), *out = kwt_fmt("%s/out.so", dir);
	char *needed, *runpath, *rpath, *soname;

	ck_assert_msg(kw_patch_file(so, out, &cases[_i].ops, &res, &err) == 0, "%s: %s", cases[_i].what, err.msg);
	ck_assert_msg(res.changed, "%s: nothing changed", cases[_i].what);
	needed = readelf_dyn(out, "NEEDED");
	runpath = readelf_dyn(out, "RUNPATH");
	rpath = readelf_dyn(out, "RPATH");
	soname = readelf_dyn(out, "SONAME");
	ck_assert_msg(strcmp(needed, cases[_i].needed) == 0, "%s: NEEDED '%s'", cases[_i].what, needed);
	ck_assert_msg(strcmp(runpath, cases[_i].runpath) == 0, "%s: RUNPATH '%s'", cases[_i].what, runpath);
	ck_assert_msg(strcmp(rpath, cases[_i].rpath) == 0, "%s: RPATH '%s'", cases[_i].what, rpath);
	ck_assert_msg(strcmp(soname, cases[_i].soname) == 0, "%s: SONAME '%s'", cases[_i].what, soname);
	check_written_blocks(cases[_i].what, so, &cases[_i].ops, out);
	kw_patch_result_release(&res);
	free(needed), free(runpath), free(rpath), free(soname);
	free(so), free(out);
}
END_TEST

/* The same edits of a library whose tables span many blocks: each block the edit changes is reported. */
START_TEST(written_blocks_spread)
{
	char *so = build_n(cases[_i].gcc, 1500), *out = kwt_fmt("%s/out.so", dir);

	check_written_blocks(cases[_i].what, so, &cases[_i].ops, out);
	free(so), free(out);
}
END_TEST

/* The input is left as it was (out NULL is in place: it must still be the old bytes on error). */
START_TEST(bad_input_untouched)
{
	static const char junk[] = "\x7f" "ELF but not really an ELF file at all";
	struct kw_patch_ops ops = { .set_rpath = "/x" };
	struct kw_patch_result res = { 0 };
	struct kw_error err = { 0 };
	char *p = kwt_fmt("%s/junk.so", dir), *back;
	size_t len;

	ck_assert_int_eq(kwt_write_file(p, junk, sizeof(junk)), 0);
	ck_assert_int_lt(kw_patch_file(p, NULL, &ops, &res, &err), 0);
	ck_assert_msg(strstr(err.msg, "junk.so") != NULL, "the message names the file: %s", err.msg);
	back = kwt_read_file(p, &len);
	ck_assert(back && len == sizeof(junk) && memcmp(back, junk, len) == 0);
	free(back);
	free(p);
}
END_TEST

/* A cut image is refused before any byte of the buffer is written. */
START_TEST(cut_image_buffer_unchanged)
{
	struct kw_patch_ops ops = { .set_soname = "libkwt-other.so.1" };
	struct kw_patch_result res = { 0 };
	struct kw_error err = { 0 };
	char *so = build("");
	size_t len, cut;
	unsigned char *img = (unsigned char *)kwt_read_file(so, &len), *copy;

	ck_assert_ptr_nonnull(img);
	for (cut = 64; cut < len; cut += len / 7) {
		copy = malloc(cut);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, img, cut);
		if (kw_patch_image(copy, cut, "cut.so", &ops, &res, &err) != 0) {
			ck_assert_msg(memcmp(copy, img, cut) == 0, "a refused edit changed the buffer (cut at %zu)", cut);
		}
		kw_patch_result_release(&res);
		memset(&res, 0, sizeof(res));
		free(copy);
	}
	free(img);
	free(so);
}
END_TEST

/* Rename maps: pairs read as patchelf reads them; a bad file leaves the map as it was. */
START_TEST(symbol_map_read)
{
	struct kw_patch_symbol_map m = { 0 };
	struct kw_error err = { 0 };
	char *good = kwt_fmt("%s/good.map", dir), *bad = kwt_fmt("%s/bad.map", dir), *dup = kwt_fmt("%s/dup.map", dir);
	static const char g[] = "\n  foo\tbar extra words\r\n\nbaz qux\n";
	static const char b[] = "one two\nlonely\n";
	static const char d[] = "other x\nbaz y\n";

	ck_assert_int_eq(kwt_write_file(good, g, sizeof(g) - 1), 0);
	ck_assert_int_eq(kwt_write_file(bad, b, sizeof(b) - 1), 0);
	ck_assert_int_eq(kwt_write_file(dup, d, sizeof(d) - 1), 0);
	ck_assert_int_eq(kw_patch_symbol_map_read(&m, good, &err), 0);
	ck_assert_uint_eq(m.n, 2);
	ck_assert_str_eq(m.pairs[0].from, "foo");
	ck_assert_str_eq(m.pairs[0].to, "bar");
	ck_assert_str_eq(m.pairs[1].from, "baz");
	ck_assert_str_eq(m.pairs[1].to, "qux");
	ck_assert_int_eq(kw_patch_symbol_map_read(&m, bad, &err), KW_EFORMAT);
	ck_assert_msg(strstr(err.msg, "line 2") != NULL, "%s", err.msg);
	ck_assert_uint_eq(m.n, 2);
	/* A name renamed in an earlier file too. */
	ck_assert_int_eq(kw_patch_symbol_map_read(&m, dup, &err), KW_EFORMAT);
	ck_assert_msg(strstr(err.msg, "'baz'") != NULL, "%s", err.msg);
	ck_assert_uint_eq(m.n, 2);
	kw_patch_symbol_map_release(&m);
	ck_assert_uint_eq(m.n, 0);
	free(good);
	free(bad);
	free(dup);
}
END_TEST

/*
 * A rename on damaged images (a byte set to 0xff here and there, hash
 * tables and relocations included): refused with the buffer untouched, or
 * done.
 */
START_TEST(rename_damaged_buffer_unchanged)
{
	static const struct kw_patch_replace ren[] = { { "kwt", "kwt_with_a_new_name" } };
	struct kw_patch_ops ops = { .rename_syms = ren, .n_rename_syms = 1 };
	struct kw_patch_result res = { 0 };
	struct kw_error err = { 0 };
	char *so = build("");
	size_t len, at, refused = 0;
	unsigned char *img = (unsigned char *)kwt_read_file(so, &len), *copy;

	ck_assert_ptr_nonnull(img);
	copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, img, len);
	ck_assert_int_eq(kw_patch_image(copy, len, "t.so", &ops, &res, &err), 0);
	ck_assert(res.changed);
	kw_patch_result_release(&res);
	for (at = 64; at < len; at += 7) {
		memcpy(copy, img, len);
		copy[at] = 0xff;
		{
			unsigned char *before = malloc(len);

			ck_assert_ptr_nonnull(before);
			memcpy(before, copy, len);
			if (kw_patch_image(copy, len, "t.so", &ops, &res, &err) != 0) {
				refused++;
				ck_assert_msg(memcmp(copy, before, len) == 0, "a refused rename changed the buffer (byte %zu)",
					      at);
			}
			free(before);
		}
		kw_patch_result_release(&res);
		memset(&res, 0, sizeof(res));
	}
	ck_assert_uint_gt(refused, 0);
	free(copy);
	free(img);
	free(so);
}
END_TEST

static Suite *patch_suite(void)
{
	Suite *s = suite_create("patch");
	TCase *t = tcase_create("edits");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_loop_test(t, edit_matches_readelf, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_loop_test(t, written_blocks_spread, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(t, bad_input_untouched);
	tcase_add_test(t, cut_image_buffer_unchanged);
	tcase_add_test(t, symbol_map_read);
	tcase_add_test(t, rename_damaged_buffer_unchanged);
	tcase_set_timeout(t, 60);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kwt_main(patch_suite());
}
