/* SPDX-License-Identifier: MIT */
/*
 * kw_repair_wheel through the library API, on wheels built here with gcc
 * and Python's zipfile: what a caller of libkwheel gets (the result, the
 * renderer contract, what is left on disk), with readelf and Python's
 * zipfile + hashlib as the oracles of the wheel written.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kwheel/repair.h"
#include "kwheel/report.h"
#include "kwheel/wheel.h"
#include "testlib.h"

/* A wheel whose extension pkg/ext.*.so needs libkwdep.so.1, built in dir/lib. */
static char *dep_wheel(const char *dir)
{
	char *cmd = kwt_fmt("mkdir -p '%s/tree/pkg' '%s/lib'", dir, dir), *lib, *ext, *args, *whl;

	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	lib = kwt_fmt("%s/lib/libkwdep.so.1", dir);
	kwt_cc_shared(dir, "int kwdep(void) { return 41; }\n", lib, "-Wl,-soname,libkwdep.so.1");
	ext = kwt_fmt("%s/tree/pkg/ext.cpython-311-x86_64-linux-gnu.so", dir);
	args = kwt_fmt("-L'%s/lib' -l:libkwdep.so.1", dir);
	kwt_cc_shared(dir, "int kwdep(void);\nint PyInit_ext(void) { return kwdep() + 1; }\n", ext, args);
	cmd = kwt_fmt("touch '%s/tree/pkg/__init__.py'", dir);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	whl = kwt_make_wheel(dir, "pkg-1.0-cp311-cp311-linux_x86_64.whl");
	free(cmd);
	free(args);
	free(ext);
	free(lib);
	return whl;
}

static struct kw_ctx *ctx_with_lib(const char *dir)
{
	struct kw_ctx *ctx = NULL;
	struct kw_error err = { 0 };
	char *lib = kwt_fmt("%s/lib", dir);

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(kw_ctx_add_lib_path(ctx, lib, &err), 0);
	free(lib);
	return ctx;
}

/* Entries of dir but "." and "..". */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	}
	closedir(d);
	return n;
}

/* Python's view of a wheel: every RECORD line checked, and the listed names. */
static char *python_view(const char *dir, const char *whl)
{
	static const char script[] =
		"import base64, csv, hashlib, io, sys, zipfile\n"
		"z = zipfile.ZipFile(sys.argv[1])\n"
		"rec = [n for n in z.namelist() if n.endswith('.dist-info/RECORD')][0]\n"
		"bad = 0\n"
		"for row in csv.reader(io.StringIO(z.read(rec).decode())):\n"
		"    if row[0] == rec: continue\n"
		"    d = z.read(row[0]); a, h = row[1].split('=')\n"
		"    bad += h != base64.urlsafe_b64encode(hashlib.new(a, d).digest()).rstrip(b'=').decode()\n"
		"    bad += int(row[2]) != len(d)\n"
		"print('bad', bad)\n"
		"for n in sorted(z.namelist()): print(n)\n";
	char *py = kwt_fmt("%s/view.py", dir), *cmd = kwt_fmt("python3 '%s' '%s'", py, whl), *out = NULL;

	ck_assert_int_eq(kwt_write_file(py, script, strlen(script)), 0);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	free(cmd);
	free(py);
	return out;
}

START_TEST(grafts_and_relinks)
{
	char *dir = kwt_mkdtemp(), *whl = dep_wheel(dir), *out = kwt_fmt("%s/out", dir), *view, *cmd, *d = NULL;
	struct kw_ctx *ctx = ctx_with_lib(dir);
	struct kw_repair_opts o = { 0 };
	struct kw_repair_result *r = NULL;
	struct kw_error err = { 0 };

	ck_assert_int_eq(mkdir(out, 0755), 0);
	o.out_dir = out;
	o.zip_level = -1;
	o.mtime = -1;
	o.sbom = kw_report_sbom;
	ck_assert_msg(kw_repair_wheel(ctx, whl, &o, &r, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(r->action, KW_REPAIR_REPAIRED);
	ck_assert_uint_eq(r->n_grafts, 1);
	ck_assert_str_eq(r->grafts[0].soname, "libkwdep.so.1");
	/* Named after the library's own name and its content's hash. */
	ck_assert_int_eq(strncmp(r->grafts[0].dest, "pkg.libs/libkwdep-", 18), 0);
	ck_assert_int_eq(strncmp(r->grafts[0].dest + 18, r->grafts[0].sha256, 8), 0);
	ck_assert_str_eq(r->grafts[0].dest + 26, ".so.1");
	ck_assert_ptr_nonnull(strstr(r->output, "manylinux"));
	view = python_view(dir, r->output);
	ck_assert_msg(strncmp(view, "bad 0\n", 6) == 0, "%s", view);
	ck_assert_ptr_nonnull(strstr(view, "\npkg-1.0.dist-info/sboms/kwheel.cdx.json\n"));
	ck_assert_ptr_nonnull(strstr(view, r->grafts[0].dest));
	free(view);
	/* readelf: the extension needs the grafted name and finds it through $ORIGIN. */
	cmd = kwt_fmt("cd '%s' && python3 -c \"import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('x')\" '%s' && "
		      "readelf -dW x/pkg/ext.cpython-311-x86_64-linux-gnu.so", dir, r->output);
	ck_assert_int_eq(kwt_run(cmd, &d, NULL), 0);
	ck_assert_ptr_nonnull(strstr(d, r->grafts[0].dest + strlen("pkg.libs/")));
	ck_assert_ptr_nonnull(strstr(d, "$ORIGIN/../pkg.libs"));
	ck_assert_ptr_null(strstr(d, "[libkwdep.so.1]"));
	free(d);
	free(cmd);
	kw_repair_result_free(r);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(out);
	free(whl);
	free(dir);
}
END_TEST

/* No renderer, no SBOM: a library caller that wants none gets none. */
START_TEST(sbom_only_with_a_renderer)
{
	char *dir = kwt_mkdtemp(), *whl = dep_wheel(dir), *out = kwt_fmt("%s/out", dir), *view;
	struct kw_ctx *ctx = ctx_with_lib(dir);
	struct kw_repair_opts o = { 0 };
	struct kw_repair_result *r = NULL;
	struct kw_error err = { 0 };

	ck_assert_int_eq(mkdir(out, 0755), 0);
	o.out_dir = out;
	o.zip_level = -1;
	o.mtime = -1;
	ck_assert_msg(kw_repair_wheel(ctx, whl, &o, &r, &err) == 0, "%s", err.msg);
	view = python_view(dir, r->output);
	ck_assert_msg(strncmp(view, "bad 0\n", 6) == 0, "%s", view);
	ck_assert_ptr_null(strstr(view, "sboms/"));
	free(view);
	kw_repair_result_free(r);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(out);
	free(whl);
	free(dir);
}
END_TEST

/* A library that cannot be found: an error naming it, and nothing left in the output directory. */
START_TEST(failure_leaves_nothing)
{
	char *dir = kwt_mkdtemp(), *whl = dep_wheel(dir), *out = kwt_fmt("%s/out", dir);
	struct kw_ctx *ctx = NULL;
	struct kw_repair_opts o = { 0 };
	struct kw_repair_result *r = NULL;
	struct kw_error err = { 0 };

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(mkdir(out, 0755), 0);
	o.out_dir = out;
	o.zip_level = -1;
	o.mtime = -1;
	o.sbom = kw_report_sbom;
	ck_assert_int_ne(kw_repair_wheel(ctx, whl, &o, &r, &err), 0);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(err.msg, "libkwdep.so.1") != NULL, "%s", err.msg);
	ck_assert_int_eq(entries(out), 0);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(out);
	free(whl);
	free(dir);
}
END_TEST

/* A pure wheel: refused unless allowed, then copied as it is (Python's zipfile wrote it 0600: made 0644). */
START_TEST(pure_wheel)
{
	char *dir = kwt_mkdtemp(), *cmd = kwt_fmt("mkdir -p '%s/tree/pure' '%s/out'", dir, dir), *whl, *out, *a, *b;
	struct kw_ctx *ctx = NULL;
	struct kw_repair_opts o = { 0 };
	struct kw_repair_result *r = NULL;
	struct kw_error err = { 0 };
	size_t la, lb;

	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	cmd = kwt_fmt("echo 'x = 1' > '%s/tree/pure/__init__.py'", dir);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	whl = kwt_make_wheel(dir, "pure-1.0-py3-none-any.whl");
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	out = kwt_fmt("%s/out", dir);
	o.out_dir = out;
	o.zip_level = -1;
	o.mtime = -1;
	ck_assert_int_eq(kw_repair_wheel(ctx, whl, &o, &r, &err), KW_EPOLICY);
	ck_assert_int_eq(entries(out), 0);
	o.allow_pure = true;
	ck_assert_msg(kw_repair_wheel(ctx, whl, &o, &r, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(r->action, KW_REPAIR_COPIED);
	/* The archive byte for byte but for the modes made sane: the same length, the same members. */
	a = kwt_read_file(whl, &la);
	b = kwt_read_file(r->output, &lb);
	ck_assert_uint_eq(la, lb);
	free(a);
	free(b);
	a = python_view(dir, whl);
	b = python_view(dir, r->output);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	kw_repair_result_free(r);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(cmd);
	free(out);
	free(whl);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("repair");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, grafts_and_relinks);
	tcase_add_test(tc, sbom_only_with_a_renderer);
	tcase_add_test(tc, failure_leaves_nothing);
	tcase_add_test(tc, pure_wheel);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
