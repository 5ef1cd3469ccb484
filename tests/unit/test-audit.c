/* SPDX-License-Identifier: MIT */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/audit.h"
#include "kwheel/elf.h"
#include "kwheel/km.h"
#include "testlib.h"

/* One dynamic symbol, defined and global unless said otherwise. */
static struct kw_elf_info *info_with(const char *sym, unsigned char bind, bool defined)
{
	static struct kw_elf_sym s;
	static struct kw_elf_info info;

	memset(&s, 0, sizeof(s));
	memset(&info, 0, sizeof(info));
	s.name = (char *)sym;
	s.bind = bind;
	s.defined = defined;
	info.syms = &s;
	info.n_syms = 1;
	return &info;
}

/* auditwheel's rule: PyInit_<stem> or init<stem>, stem = file name up to its first dot. */
static const struct {
	const char *name, *sym;
	unsigned char bind;
	bool defined, want;
} ext_cases[] = {
	{ "pkg/foo.cpython-311-x86_64-linux-gnu.so", "PyInit_foo", STB_GLOBAL, true, true },
	{ "foo.abi3.so", "PyInit_foo", STB_WEAK, true, true },
	{ "pkg/_foo.so", "init_foo", STB_GLOBAL, true, true },
	{ "pkg/libncursesw.so.6", "initscr", STB_GLOBAL, true, false },
	{ "pkg/bar.cpython-311-x86_64-linux-gnu.so", "PyInit_foo", STB_GLOBAL, true, false },
	{ "pkg/foo.cpython-311-x86_64-linux-gnu.so", "PyInit_foobar", STB_GLOBAL, true, false },
	{ "pkg/foo.cpython-311-x86_64-linux-gnu.so", "PyInit_foo", STB_LOCAL, true, false },
	{ "pkg/foo.cpython-311-x86_64-linux-gnu.so", "PyInit_foo", STB_GLOBAL, false, false },
	{ "pkg/.so", "PyInit_", STB_GLOBAL, true, false },
	{ "pkg/foo", "PyInit_foo", STB_GLOBAL, true, true },
};

START_TEST(extension_rule)
{
	const struct kw_elf_info *info =
		info_with(ext_cases[_i].sym, ext_cases[_i].bind, ext_cases[_i].defined);

	ck_assert_msg(kw_audit_is_extension(info, ext_cases[_i].name) == ext_cases[_i].want, "%s exporting %s",
		      ext_cases[_i].name, ext_cases[_i].sym);
}
END_TEST

static const struct kw_audit_member *member(const struct kw_audit *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n_members; i++) {
		if (strcmp(a->members[i].name, name) == 0) {
			return &a->members[i];
		}
	}
	ck_abort_msg("no member %s", name);
	return NULL;
}

/* The audit and KM's judge agree: PyInit_foo in foo.*.so is a module, ncurses' initscr is a library. */
START_TEST(extension_audit_and_km_agree)
{
	char *dir = kwt_mkdtemp(), *cmd = kwt_fmt("mkdir -p '%s/tree/pkg'", dir), *whl, *p;
	struct kw_ctx *ctx = NULL;
	struct kw_audit *a = NULL;
	struct kw_km_verdict v;
	struct kw_error err = { 0 };
	size_t i, seen = 0;

	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	p = kwt_fmt("%s/tree/pkg/foo.cpython-311-x86_64-linux-gnu.so", dir);
	kwt_cc_shared(dir, "void *PyInit_foo(void) { return 0; }\n", p, NULL);
	free(p);
	p = kwt_fmt("%s/tree/pkg/libcurses.so", dir);
	kwt_cc_shared(dir, "int initscr(void) { return 1; }\n", p, NULL);
	free(p);
	whl = kwt_make_wheel(dir, "foo-1.0-cp311-cp311-linux_x86_64.whl");
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_msg(kw_audit_wheel(ctx, whl, &a, &err) == 0, "%s", err.msg);
	ck_assert(member(a, "pkg/foo.cpython-311-x86_64-linux-gnu.so")->extension);
	ck_assert(!member(a, "pkg/libcurses.so")->extension);
	ck_assert_int_eq(kw_km_judge(NULL, a, &v, &err), 0);
	for (i = 0; i < v.n_objects; i++) {
		if (strcmp(v.objects[i].name, "pkg/foo.cpython-311-x86_64-linux-gnu.so") == 0) {
			ck_assert_int_eq(v.objects[i].mode, KW_KM_MODULE);
			seen++;
		} else if (strcmp(v.objects[i].name, "pkg/libcurses.so") == 0) {
			ck_assert_int_eq(v.objects[i].mode, KW_KM_LIB);
			seen++;
		}
	}
	ck_assert_uint_eq(seen, 2);
	kw_km_verdict_release(&v);
	kw_audit_free(a);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(whl);
	free(dir);
}
END_TEST

/*
 * Dependency nodes name the wheel member they are: the one the loader
 * finds, not another with the same base name elsewhere in the wheel.
 */
START_TEST(nodes_know_their_member)
{
	char *dir = kwt_mkdtemp(), *cmd = kwt_fmt("mkdir -p '%s/tree/pkg' '%s/tree/other'", dir, dir), *whl, *p, *c;
	struct kw_ctx *ctx = NULL;
	struct kw_audit *a = NULL;
	struct kw_error err = { 0 };
	const struct kw_audit_member *m;
	size_t k, found = 0;

	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	p = kwt_fmt("%s/tree/pkg/libbar.so", dir);
	kwt_cc_shared(dir, "int bar(void) { return 2; }\n", p, NULL);
	free(p);
	p = kwt_fmt("%s/tree/other/libbar.so", dir);
	kwt_cc_shared(dir, "int other(void) { return 3; }\n", p, NULL);
	free(p);
	c = kwt_fmt("%s/foo.c", dir);
	{
		static const char src[] = "int bar(void);\nint PyInit_foo(void) { return bar(); }\n";

		ck_assert_int_eq(kwt_write_file(c, src, strlen(src)), 0);
	}
	cmd = kwt_fmt("gcc -shared -fPIC -o '%s/tree/pkg/foo.cpython-311-x86_64-linux-gnu.so' '%s' -L'%s/tree/pkg' "
		      "-l:libbar.so -Wl,-rpath,'$ORIGIN'", dir, c, dir);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	free(c);
	whl = kwt_make_wheel(dir, "foo-1.0-cp311-cp311-linux_x86_64.whl");
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_msg(kw_audit_wheel(ctx, whl, &a, &err) == 0, "%s", err.msg);
	m = member(a, "pkg/foo.cpython-311-x86_64-linux-gnu.so");
	ck_assert_ptr_nonnull(m->graph);
	ck_assert_str_eq(m->graph->nodes[0].member, "pkg/foo.cpython-311-x86_64-linux-gnu.so");
	for (k = 1; k < m->graph->n_nodes; k++) {
		const struct kw_dep_node *n = &m->graph->nodes[k];

		if (strcmp(n->name, "libbar.so") == 0) {
			ck_assert(n->in_overlay);
			ck_assert_str_eq(n->member, "pkg/libbar.so");
			found++;
		} else {
			/* The C library and the loader come from the system: no member. */
			ck_assert(!n->in_overlay);
			ck_assert_ptr_null(n->member);
		}
	}
	ck_assert_uint_eq(found, 1);
	kw_audit_free(a);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(whl);
	free(dir);
}
END_TEST

/*
 * A wheel without ELF members that claims a platform tag: every allocation
 * failing in turn ends in KW_ENOMEM or in the clean run's verdict, never in
 * a "success" that lost the bad tags.
 */
START_TEST(no_elf_wheel_under_failing_allocations)
{
	char *dir = kwt_mkdtemp(), *cmd = kwt_fmt("mkdir -p '%s/tree/pkg'", dir), *whl, *p;
	struct kw_ctx *ctx = NULL;
	struct kw_audit *a = NULL;
	struct kw_error err = { 0 };
	size_t clean_bad;
	long n;

	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	p = kwt_fmt("%s/tree/pkg/__init__.py", dir);
	ck_assert_int_eq(kwt_write_file(p, "x = 1\n", 6), 0);
	free(p);
	whl = kwt_make_wheel(dir, "foo-1.0-py3-none-manylinux1_x86_64.whl");
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_msg(kw_audit_wheel(ctx, whl, &a, &err) == 0, "%s", err.msg);
	ck_assert(!a->tags_ok);
	clean_bad = a->bad_tags.n;
	ck_assert_uint_eq(clean_bad, 1);
	kw_audit_free(a);
	for (n = 1;; n++) {
		long used;
		int rc;

		kw_alloc_fail_at(n);
		rc = kw_audit_wheel(ctx, whl, &a, &err);
		used = kw_alloc_fail_at(0);
		if (rc == 0) {
			ck_assert_msg(a->bad_tags.n == clean_bad && !a->tags_ok && a->not_elf,
				      "allocation %ld failing: a success without the clean run's verdict", n);
			kw_audit_free(a);
			/* A run that reached the end without a failed allocation: none is left to fail. */
			if (used < n) {
				break;
			}
			continue;
		}
		/* Some readers report a failed allocation inside libzip as an I/O error: still an error. */
		ck_assert_msg(rc < 0, "allocation %ld failing: rc %d", n, rc);
		ck_assert_ptr_null(a);
	}
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(whl);
	free(dir);
}
END_TEST

/*
 * Which DT_NEEDED names are libpython (removed by repair, never vendored):
 * each name against the pattern auditwheel matches with, run by Python's re
 * (its unescaped '.' before "so" is read as the literal dot it means, so no
 * name here puts another character there).
 */
static const char *const libpython_names[] = {
	"libpython3.11.so.1.0", "libpython3.11.so", "libpython2.7.so.1.0", "libpython3.6m.so.1.0",
	"libpython3.13t.so.1.0", "libpython3.so", "libpython3.11.so.1.10", "libpython3.11.a",
	"libpython.so", "libpython3.11.so.1.0.bak", "libpythonX.Y.so", "libpython3.11mm.so",
	"xlibpython3.11.so", "libpython3.11.so.", "libpython311.so",
};

START_TEST(libpython_names_as_auditwheel)
{
	const char *name = libpython_names[_i];
	char *cmd = kwt_fmt("/usr/bin/python3 -c 'import re, sys; "
			    "sys.exit(0 if re.match(r\"^libpython\\d+\\.\\d+m?.so(\\.\\d)*$\", sys.argv[1]) else 1)' '%s'",
			    name);
	int want = kwt_run(cmd, NULL, NULL);

	ck_assert_msg(want == 0 || want == 1, "python3 failed on '%s'", name);
	ck_assert_msg(kw_audit_is_libpython(name) == (want == 0), "'%s': kwheel %d, auditwheel's pattern %d", name,
		      kw_audit_is_libpython(name), want == 0);
	free(cmd);
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("extension");

	tcase_add_loop_test(tc, extension_rule, 0, sizeof(ext_cases) / sizeof(ext_cases[0]));
	tcase_add_test(tc, extension_audit_and_km_agree);
	tcase_add_test(tc, nodes_know_their_member);
	tcase_add_loop_test(tc, libpython_names_as_auditwheel, 0,
			    sizeof(libpython_names) / sizeof(libpython_names[0]));
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("alloc");
	tcase_add_test(tc, no_elf_wheel_under_failing_allocations);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return kwt_main(audit_suite());
}
