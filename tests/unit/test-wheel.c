/* SPDX-License-Identifier: MIT */
/*
 * The wheel reader: file names, WHEEL, RECORD, and every wheel of the corpus
 * opened and verified, with Python's zipfile + hashlib as the oracle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"
#include "kwheel/wheel.h"
#include "testlib.h"

START_TEST(names)
{
	struct kw_wheel_name n;
	struct kw_error err;

	ck_assert_int_eq(kw_wheel_parse_name("dist/numpy-1.24.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
					     &n, &err), 0);
	ck_assert_str_eq(n.distribution, "numpy");
	ck_assert_str_eq(n.version, "1.24.2");
	ck_assert_ptr_null(n.build);
	ck_assert_str_eq(n.python, "cp311");
	ck_assert_uint_eq(n.n_platforms, 2);
	ck_assert_str_eq(n.platforms[1], "manylinux2014_x86_64");
	kw_wheel_name_release(&n);

	ck_assert_int_eq(kw_wheel_parse_name("plumbum-1.6.8-1-py2.py3-none-any.whl", &n, &err), 0);
	ck_assert_str_eq(n.build, "1");
	ck_assert_str_eq(n.python, "py2.py3");
	ck_assert_str_eq(n.platform, "any");
	kw_wheel_name_release(&n);
}
END_TEST

START_TEST(bad_names)
{
	static const char *const bad[] = {
		"numpy.whl", "numpy-1.0.whl", "a-1-b-c.whl", "a-1-py3-none-any.zip", "-1-py3-none-any.whl",
		"a--py3-none-any.whl", "a-1-py3-none-.whl", "a-1-2-3-py3-none-any.whl",
	};
	struct kw_wheel_name n;
	struct kw_error err = { 0 };

	ck_assert_int_ne(kw_wheel_parse_name(bad[_i], &n, &err), 0);
	ck_assert_msg(err.msg[0] != 0, "%s: no message", bad[_i]);
}
END_TEST

START_TEST(wheel_metadata)
{
	static const char ok[] = "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.40)\nRoot-Is-Purelib: false\n"
				 "Tag: cp311-cp311-linux_x86_64\nTag: cp311-abi3-linux_x86_64\nBuild: 2\n";
	struct kw_wheel_meta m;
	struct kw_error err;

	ck_assert_int_eq(kw_wheel_parse_meta(ok, strlen(ok), &m, &err), 0);
	ck_assert_str_eq(m.wheel_version, "1.0");
	ck_assert(!m.root_is_purelib);
	ck_assert_uint_eq(m.n_tags, 2);
	ck_assert_str_eq(m.tags[1], "cp311-abi3-linux_x86_64");
	ck_assert_str_eq(m.build, "2");
	kw_wheel_meta_release(&m);
	ck_assert_int_ne(kw_wheel_parse_meta("Root-Is-Purelib: true\n", 22, &m, &err), 0);
	ck_assert_int_ne(kw_wheel_parse_meta("Wheel-Version: 1.0\nno colon here\n", 33, &m, &err), 0);
}
END_TEST

START_TEST(record_csv)
{
	static const char text[] = "pkg/a.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
				   "\"pkg/with,comma.py\",sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
				   "\"pkg/q\"\"uote.py\",,\n"
				   "pkg-1.0.dist-info/RECORD,,\n";
	struct kw_record rec = { 0 };
	struct kw_error err;

	ck_assert_int_eq(kw_record_parse(text, strlen(text), &rec, &err), 0);
	ck_assert_uint_eq(rec.n_entries, 4);
	ck_assert_str_eq(rec.entries[1].path, "pkg/with,comma.py");
	ck_assert_str_eq(rec.entries[2].path, "pkg/q\"uote.py");
	ck_assert_str_eq(rec.entries[0].algo, "sha256");
	ck_assert_int_eq(rec.entries[0].size, 0);
	ck_assert_int_eq(rec.entries[3].size, -1);
	kw_record_release(&rec);
}
END_TEST

/* Python's view of a wheel: problems in RECORD, counted the same way kwheel reports them. */
static const char oracle[] =
	"import base64, csv, hashlib, io, sys, zipfile\n"
	"z = zipfile.ZipFile(sys.argv[1]); names = [i.filename for i in z.infolist() if not i.is_dir()]\n"
	"rec = [n for n in names if n.endswith('.dist-info/RECORD') and n.count('/') == 1]\n"
	"lines = list(csv.reader(io.StringIO(z.read(rec[0]).decode()))) if rec else []\n"
	"listed = {}; problems = 0\n"
	"for l in lines:\n"
	"    if len(l) != 3: problems += 1; continue\n"
	"    listed[l[0]] = l\n"
	"for n in names:\n"
	"    if n not in listed:\n"
	"        problems += 1; continue\n"
	"    p, h, s = listed[n]\n"
	"    if n == rec[0] or not h: continue\n"
	"    d = base64.urlsafe_b64encode(hashlib.new(h.split('=')[0], z.read(n)).digest()).rstrip(b'=').decode()\n"
	"    if d != h.split('=', 1)[1]: problems += 1\n"
	"    elif s and int(s) != z.getinfo(n).file_size: problems += 1\n"
	"problems += sum(1 for p in listed if p not in names)\n"
	"print(problems)\n";

START_TEST(corpus_records_match_python)
{
	char *cmd = kwt_fmt("find %s/wheels -name '*.whl' | sort", kwt_corpus()), *out = NULL, *save = NULL, *line;
	struct kw_ctx *ctx;
	struct kw_error err;
	char *dir = kwt_mkdtemp(), *script = kwt_fmt("%s/oracle.py", dir);
	size_t n = 0;

	ck_assert_int_eq(kwt_write_file(script, oracle, strlen(oracle)), 0);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct kw_wheel *w = NULL;
		struct kw_record rec = { 0 };
		char *pc = kwt_fmt("/usr/bin/python3 '%s' '%s'", script, line), *po = NULL;

		ck_assert_msg(kw_wheel_open(ctx, line, &w, &err) == 0, "%s: %s", line, err.msg);
		ck_assert_msg(kw_wheel_verify_record(w, &rec, &err) == 0, "%s: %s", line, err.msg);
		ck_assert_int_eq(kwt_run(pc, &po, NULL), 0);
		ck_assert_msg((size_t)atol(po) == rec.n_problems, "%s: kwheel finds %zu RECORD problems, Python %ld", line,
			      rec.n_problems, atol(po));
		kw_record_release(&rec);
		kw_wheel_free(w);
		free(pc);
		free(po);
		n++;
	}
	ck_assert_uint_ge(n, 30);
	kw_ctx_free(ctx);
	kwt_rmtree(dir);
	free(dir);
	free(script);
	free(out);
	free(cmd);
}
END_TEST

struct hasher {
	struct kw_sha256 s;
	size_t n;
};

static int hash_cb(void *ud, const void *d, size_t len)
{
	struct hasher *h = ud;

	kw_sha256_update(&h->s, d, len);
	h->n += len;
	return 0;
}

START_TEST(read_and_stream_agree_with_python)
{
	char *wheel = kwt_fmt("%s/wheels/debian/lxml-4.9.2-cp311-cp311-linux_x86_64.whl", kwt_corpus());
	struct kw_ctx *ctx;
	struct kw_wheel *w = NULL;
	struct kw_error err;
	size_t i, checked = 0;

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(kw_wheel_open(ctx, wheel, &w, &err), 0);
	for (i = 0; i < kw_wheel_member_count(w) && checked < 12; i += 3) {
		const struct kw_wheel_member *m = kw_wheel_member(w, i);
		unsigned char *buf = NULL, d1[32], d2[32];
		char h1[65], h2[65], *cmd, *py = NULL;
		struct hasher h;
		size_t len = 0;

		if (m->is_dir) {
			continue;
		}
		ck_assert_int_eq(kw_wheel_read(w, i, &buf, &len, &err), 0);
		ck_assert_uint_eq(len, m->size);
		kw_sha256_init(&h.s);
		kw_sha256_update(&h.s, buf, len);
		kw_sha256_final(&h.s, d1);
		free(buf);
		kw_sha256_init(&h.s);
		h.n = 0;
		ck_assert_int_eq(kw_wheel_stream(w, i, hash_cb, &h, &err), 0);
		kw_sha256_final(&h.s, d2);
		kw_hex(d1, 32, h1);
		kw_hex(d2, 32, h2);
		ck_assert_str_eq(h1, h2);
		cmd = kwt_fmt("/usr/bin/python3 -c \"import hashlib,sys,zipfile; "
			      "print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])).hexdigest())\" '%s' '%s'",
			      wheel, m->name);
		ck_assert_int_eq(kwt_run(cmd, &py, NULL), 0);
		py[64] = 0;
		ck_assert_msg(strcmp(h1, py) == 0, "%s: %s vs python %s", m->name, h1, py);
		free(cmd);
		free(py);
		checked++;
	}
	ck_assert_uint_ge(checked, 5);
	kw_wheel_free(w);
	kw_ctx_free(ctx);
	free(wheel);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wheel");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, names);
	tcase_add_loop_test(tc, bad_names, 0, 8);
	tcase_add_test(tc, wheel_metadata);
	tcase_add_test(tc, record_csv);
	tcase_add_test(tc, corpus_records_match_python);
	tcase_add_test(tc, read_and_stream_agree_with_python);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
