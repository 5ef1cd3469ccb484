/* SPDX-License-Identifier: MIT */
/*
 * The KM converter on objects gcc builds here: a delinked module or library
 * is a relocatable object readelf reads as such, whose exports are local
 * (module) or weak (lib) as nm lists them, with the registration and
 * constructor the converter adds, and that links into a static program (the
 * linker as oracle); the relocation table is what the converter claims; the
 * archive writer gives what ar and nm read back; a cut or non-ELF input is
 * an error that leaves no output.
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/km.h"
#include "testlib.h"

static char *dir;
static struct kw_ctx *ctx; /* the library's set-up (libelf's version) is kw_ctx_new's */

static void setup(void)
{
	struct kw_error err = { 0 };

	dir = kwt_mkdtemp();
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
}

static void teardown(void)
{
	kw_ctx_free(ctx);
	ctx = NULL;
	kwt_rmtree(dir);
	free(dir);
	dir = NULL;
}

/* mod.so: an extension exporting PyInit_mod and a helper, with data relocations (a pointer table). */
static char *build_module(void)
{
	static const char src[] =
		"static int three(void) { return 3; }\n"
		"int kwhelper(int x) { return x * 2; }\n"
		"int (*const table[])(void) = { three };\n"
		"int PyInit_mod(void) { return kwhelper(table[0]()); }\n";
	char *c = kwt_fmt("%s/mod.c", dir), *so = kwt_fmt("%s/mod.so", dir), *cmd;

	ck_assert_int_eq(kwt_write_file(c, src, strlen(src)), 0);
	cmd = kwt_fmt("gcc -shared -fPIC -O1 -o '%s' '%s'", so, c);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	free(c);
	return so;
}

/* nm's type letter for name in obj, or 0 when nm does not list it. */
static char nm_type(const char *obj, const char *name)
{
	char *cmd = kwt_fmt("nm '%s' | awk '$NF == \"%s\" { print $(NF-1) }' | head -1", obj, name), *out = NULL;
	char t;

	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	t = out && *out ? out[0] : 0;
	free(out);
	free(cmd);
	return t;
}

static const struct {
	enum kw_km_mode mode;
	char helper; /* nm's letter for an export: local text in a module, weak in a lib */
} modes[] = {
	{ KW_KM_MODULE, 0 },
	{ KW_KM_LIB, 'W' },
};

START_TEST(delink_is_relocatable)
{
	struct kw_km_converted res = { 0 };
	struct kw_error err = { 0 };
	char *so = build_module(), *o = kwt_fmt("%s/mod.o", dir), *cmd, *out = NULL, *tagged;
	size_t len;
	unsigned char *buf = (unsigned char *)kwt_read_file(so, &len);
	char t;

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(kw_km_delink(buf, len, "mod.so", "pkg/mod.so", modes[_i].mode, 0, o, &res, &err) == 0, "%s",
		      err.msg);
	cmd = kwt_fmt("readelf -h '%s' | awk '/Type:/ { print $2 }'", o);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	ck_assert_msg(out && strncmp(out, "REL", 3) == 0, "readelf: type %s", out ? out : "?");
	free(out), free(cmd);
	out = NULL;
	ck_assert_int_eq((int)strlen(res.tag), 12);
	ck_assert_msg(res.n_relocs > 0, "the pointer table's relocations are translated");
	ck_assert(kw_strv_find(&res.exports, "PyInit_mod") >= 0 && kw_strv_find(&res.exports, "kwhelper") >= 0);
	t = nm_type(o, "kwhelper");
	tagged = kwt_fmt("kwhelper_%s_km", res.tag);
	if (modes[_i].mode == KW_KM_MODULE) {
		/* exports renamed and local: two modules with the same names never collide */
		ck_assert_msg(t == 0 || (t >= 'a' && t <= 'z'), "module: kwhelper is '%c' in nm", t ? t : '-');
		t = nm_type(o, tagged);
		ck_assert_msg(t >= 'a' && t <= 'z', "module: %s is local ('%c')", tagged, t ? t : '-');
	} else {
		ck_assert_msg(t == modes[_i].helper, "lib: kwhelper is '%c' in nm, want W", t ? t : '-');
	}
	/* the linker takes it: a relocatable link of it alone succeeds */
	cmd = kwt_fmt("ld -r -o '%s/linked.o' '%s'", dir, o);
	ck_assert_msg(kwt_run(cmd, NULL, &out) == 0, "ld -r: %s", out ? out : "");
	free(out), free(cmd), free(tagged);
	kw_km_converted_release(&res);
	free(buf), free(so), free(o);
}
END_TEST

START_TEST(bad_input_no_output)
{
	static const char junk[] = "not an ELF file";
	struct kw_km_converted res = { 0 };
	struct kw_error err = { 0 };
	char *so = build_module(), *o = kwt_fmt("%s/cut.o", dir);
	size_t len;
	unsigned char *buf = (unsigned char *)kwt_read_file(so, &len);

	ck_assert_int_lt(kw_km_delink((const unsigned char *)junk, sizeof(junk), "junk.so", "junk.so", KW_KM_MODULE, 0,
				      o, &res, &err), 0);
	ck_assert(access(o, F_OK) != 0);
	ck_assert_msg(strstr(err.msg, "junk.so") != NULL, "the message names the input: %s", err.msg);
	ck_assert_int_lt(kw_km_delink(buf, len / 3, "cut.so", "cut.so", KW_KM_MODULE, 0, o, &res, &err), 0);
	ck_assert_msg(access(o, F_OK) != 0, "a failed conversion leaves nothing at the output");
	free(buf), free(so), free(o);
}
END_TEST

/* The archive of two converted objects: ar lists both in order, nm -s finds their symbol index. */
START_TEST(archive_readable)
{
	struct kw_km_converted a = { 0 }, b = { 0 };
	struct kw_error err = { 0 };
	char *so = build_module(), *oa = kwt_fmt("%s/a.o", dir), *ob = kwt_fmt("%s/b.o", dir);
	char *ar = kwt_fmt("%s/libx.km.a", dir), *cmd, *out = NULL, *sym;
	const char *objs[2], *names[2] = { "a.o", "b.o" };
	size_t len, len2;
	unsigned char *buf = (unsigned char *)kwt_read_file(so, &len), *buf2;

	ck_assert_int_eq(kw_km_delink(buf, len, "mod.so", "pkg/a.so", KW_KM_MODULE, 0, oa, &a, &err), 0);
	ck_assert_int_eq(kw_km_delink(buf, len, "mod.so", "pkg/b.so", KW_KM_LIB, 0, ob, &b, &err), 0);
	objs[0] = oa;
	objs[1] = ob;
	ck_assert_msg(kw_km_write_archive(ar, objs, names, 2, NULL, &err) == 0, "%s", err.msg);
	cmd = kwt_fmt("ar t '%s' | tr '\\n' ' '", ar);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	ck_assert_msg(out && strcmp(out, "a.o b.o ") == 0, "ar t: '%s'", out ? out : "");
	free(out), free(cmd);
	out = NULL;
	cmd = kwt_fmt("nm -s '%s'", ar);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	sym = kwt_fmt("kwhelper in b.o");
	ck_assert_msg(out && strstr(out, "Archive index:") && strstr(out, sym), "nm -s lists the index");
	free(sym), free(out), free(cmd);
	out = NULL;
	/* Thin: the same index, the paths beside it, and ld links a member from it. */
	ck_assert_msg(kw_km_write_archive(ar, objs, names, 2, "", &err) == 0, "%s", err.msg);
	buf2 = (unsigned char *)kwt_read_file(ar, &len2);
	ck_assert(len2 > 8 && memcmp(buf2, "!<thin>\n", 8) == 0 && len2 < 4096);
	free(buf2);
	cmd = kwt_fmt("cd '%s' && ar t libx.km.a | tr '\n' ' ' && nm -s libx.km.a | grep -c 'kwhelper in b.o'", dir);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	ck_assert_msg(out && strcmp(out, "a.o b.o 1\n") == 0, "thin ar t, nm -s: '%s'", out ? out : "");
	free(out), free(cmd);
	out = NULL;
	cmd = kwt_fmt("cd / && ld -r -o '%s/whole.o' --whole-archive '%s' && nm '%s/whole.o' | grep -c ' kwhelper$'", dir,
		      ar, dir);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	ck_assert_msg(out && atoi(out) >= 1, "ld reads the thin archive's members from beside it: '%s'", out ? out : "");
	free(out), free(cmd);
	kw_km_converted_release(&a);
	kw_km_converted_release(&b);
	free(buf), free(so), free(oa), free(ob), free(ar);
}
END_TEST

/* What a static link of the interpreter provides, and the relocation types the converter translates. */
START_TEST(static_and_relocs)
{
	ck_assert(kw_km_static_provided("libc.so.6"));
	ck_assert(kw_km_static_provided("libm.so.6"));
	ck_assert(kw_km_static_provided("libstdc++.so.6"));
	ck_assert(!kw_km_static_provided("libz.so.1"));
	ck_assert(!kw_km_static_provided("libyaml-0.so.2"));
	ck_assert(kw_km_reloc_supported(EM_X86_64, R_X86_64_RELATIVE));
	ck_assert(kw_km_reloc_supported(EM_X86_64, R_X86_64_GLOB_DAT));
	ck_assert(kw_km_reloc_supported(EM_X86_64, R_X86_64_JUMP_SLOT));
	ck_assert(!kw_km_reloc_supported(EM_X86_64, R_X86_64_SIZE64));
	ck_assert(!kw_km_reloc_supported(EM_AARCH64, 1027 /* R_AARCH64_RELATIVE */));
}
END_TEST

static Suite *km_suite(void)
{
	Suite *s = suite_create("km");
	TCase *t = tcase_create("delink");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_loop_test(t, delink_is_relocatable, 0, sizeof(modes) / sizeof(modes[0]));
	tcase_add_test(t, bad_input_no_output);
	tcase_add_test(t, archive_readable);
	tcase_add_test(t, static_and_relocs);
	tcase_set_timeout(t, 60);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kwt_main(km_suite());
}
