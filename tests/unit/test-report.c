/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/audit.h"
#include "kwheel/report.h"
#include "testlib.h"

/* Text escaping: what may reach a terminal or split a line, and what may not be mistaken for an escape. */
static const struct {
	const char *in, *want;
} esc_cases[] = {
	{ "libfoo.so.1", "libfoo.so.1" },
	{ "", "" },
	{ "a\nb", "a\\nb" },
	{ "tab\there\r", "tab\\there\\r" },
	{ "clear\x1b[2J", "clear\\x1b[2J" },
	{ "del\x7f", "del\\x7f" },
	{ "csi\xc2\x9b" "2J", "csi\\xc2\\x9b2J" },
	{ "back\\slash", "back\\\\slash" },
	{ "not utf8 \xff\xfe", "not utf8 \\xff\\xfe" },
	{ "truncated \xe2\x82", "truncated \\xe2\\x82" },
	{ "overlong \xc0\xaf", "overlong \\xc0\\xaf" },
	{ "surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d \xc2\xa0", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d \xc2\xa0" },
};

START_TEST(escape_text)
{
	char *s = kw_report_escape(esc_cases[_i].in);

	ck_assert_str_eq(s, esc_cases[_i].want);
	free(s);
}
END_TEST

START_TEST(appendf_escapes_arguments_only)
{
	struct kw_buf b = { 0 };
	char *s;

	kw_report_appendf(&b, "%s => %s%s (%zu, %d, %u, %lld, %c, %%, %-6s|%5s|%.4s|%*s|%-*.*s|%03d)\n", "lib\nforged",
			  "/p\x1b", "", (size_t)7, -3, 4u, -5LL, 'x', "ab", "a\n", "abc\n", 4, "z", 3, 1, "yy", 7);
	s = kw_buf_take(&b);
	/* Widths count the escaped text; a precision cuts the input's bytes before escaping. */
	ck_assert_str_eq(s, "lib\\nforged => /p\\x1b (7, -3, 4, -5, x, %, ab    |  a\\n|abc\\n|   z|y  |007)\n");
	free(s);
}
END_TEST

/* JSON: every byte string is one valid line; bytes that are not UTF-8 as \uDCNN, controls as \u00NN. */
START_TEST(json_any_bytes)
{
	struct kw_error what = { KW_EFORMAT, "bad name 'a\nb\x1b\xc2\x85' in \xff\xfe" }, err = { 0 };
	char *s = NULL;

	ck_assert_int_eq(kw_report_error_json("/w/\xffx-1.whl", &what, &s, &err), 0);
	ck_assert_str_eq(s, "{\"error\":\"bad name 'a\\nb\\u001B\\u0085' in \\uDCFF\\uDCFE\",\"error_kind\":"
			    "\"malformed input\",\"path\":\"/w/\\uDCFFx-1.whl\",\"version\":1,\"wheel\":"
			    "\"\\uDCFFx-1.whl\"}");
	free(s);
}
END_TEST

static struct kw_repair_result *repair_result(void)
{
	static struct kw_repair_graft g = { "libz.so.1", "/usr/lib/libz.so.1.2", "p.libs/libz-0123abcd.so.1", "ab" };
	static struct kw_repair_result r;

	memset(&r, 0, sizeof(r));
	r.input = "in/p-1-cp3-cp3-linux_x86_64.whl";
	r.output = "out/p-1-cp3-cp3-manylinux_2_17_x86_64.whl";
	r.tag = "manylinux_2_17_x86_64";
	r.grafts = &g;
	r.n_grafts = 1;
	return &r;
}

START_TEST(repair_text_and_json)
{
	struct kw_repair_result *r = repair_result();
	struct kw_error err = { 0 };
	char *s = NULL;

	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(kw_strv_push(&r->excluded, "libGL\n.so"), 0);
	ck_assert_int_eq(kw_strv_push(&r->twice, "libz.so.1\tlibGL.so.1"), 0);
	ck_assert_int_eq(kw_strv_push(&r->twice, "libz.so.1\tlibX11.so.6"), 0);
	/* Printed with every allocation failing: the text needs none. */
	kw_alloc_fail_at(1);
	kw_report_repair_print(f, r);
	kw_alloc_fail_at(0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_str_eq(s, "in/p-1-cp3-cp3-linux_x86_64.whl -> out/p-1-cp3-cp3-manylinux_2_17_x86_64.whl\n"
			    "  grafted libz.so.1 from /usr/lib/libz.so.1.2 as p.libs/libz-0123abcd.so.1\n"
			    "  left external (--exclude): libGL\\n.so\n"
			    "  warning: libz.so.1 is vendored, but libGL.so.1 and libX11.so.6, which the policy leaves to "
			    "the system, load the system's copy too: two copies in one process (keep it external with "
			    "--exclude libz.so.1)\n");
	free(s);
	s = NULL;
	ck_assert_int_eq(kw_report_repair_json(r, &s, &err), 0);
	ck_assert_str_eq(s, "{\"action\":\"repaired\",\"excluded\":[\"libGL\\n.so\"],\"excluded_deps\":[],\"grafted\":[{\"dest\":"
			    "\"p.libs/libz-0123abcd.so.1\",\"sha256\":\"ab\",\"soname\":\"libz.so.1\",\"source\":"
			    "\"/usr/lib/libz.so.1.2\"}],\"input\":\"in/p-1-cp3-cp3-linux_x86_64.whl\",\"libpython_removed\":[],"
			    "\"loaded_twice\":[{\"loaded_by\":[\"libGL.so.1\",\"libX11.so.6\"],\"soname\":\"libz.so.1\"}],\"note\":null,"
			    "\"output\":\"out/p-1-cp3-cp3-manylinux_2_17_x86_64.whl\",\"patched\":[],\"scripts_moved\":[],\"tag\":"
			    "\"manylinux_2_17_x86_64\",\"wheel\":\"p-1-cp3-cp3-linux_x86_64.whl\"}");
	free(s);
	kw_strv_release(&r->excluded);
	kw_strv_release(&r->twice);
}
END_TEST

/*
 * The show report of a wheel with blacklisted imports (an object set per
 * library) under every allocation failing in turn: jansson allocates
 * through kw_malloc, so the failures reach it; each run is a clean
 * KW_ENOMEM or the clean run's exact text (under ASan: no use after free).
 */
START_TEST(show_json_under_failing_allocations)
{
	char *whl = kwt_fmt("%s/wheels/auditwheel/testzlib-0.0.1-cp310-cp310-linux_x86_64.whl", kwt_corpus());
	struct kw_ctx *ctx = NULL;
	struct kw_audit *a = NULL;
	struct kw_km_verdict km = { 0 };
	struct kw_error err = { 0 };
	char *clean[2] = { NULL, NULL };
	long n;
	int k;

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_msg(kw_audit_wheel(ctx, whl, &a, &err) == 0, "%s", err.msg);
	ck_assert_msg(kw_km_judge(NULL, a, &km, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(kw_report_show_json(a, &km, &clean[0], &err), 0);
	ck_assert_int_eq(kw_report_show_text(a, &km, true, &clean[1], &err), 0);
	ck_assert_ptr_nonnull(strstr(clean[0], "\"blacklisted_symbols\":{\"libz.so.1\":["));
	for (k = 0; k < 2; k++) {
		for (n = 1;; n++) {
			char *s = NULL;
			long used;
			int rc;

			kw_alloc_fail_at(n);
			rc = k ? kw_report_show_text(a, &km, true, &s, &err) : kw_report_show_json(a, &km, &s, &err);
			used = kw_alloc_fail_at(0);
			if (rc == 0) {
				ck_assert_msg(strcmp(s, clean[k]) == 0, "allocation %ld failing: a different report", n);
				free(s);
				if (used < n) {
					break;
				}
				continue;
			}
			ck_assert_int_eq(rc, KW_ENOMEM);
			ck_assert_ptr_null(s);
		}
		ck_assert_int_gt(n, k ? 5 : 50);
	}
	free(clean[0]);
	free(clean[1]);
	kw_km_verdict_release(&km);
	kw_audit_free(a);
	kw_ctx_free(ctx);
	free(whl);
}
END_TEST

/* A jansson allocator that fails exactly one call, the fail_nth: later ones succeed again. */
static long jansson_calls, jansson_fail_nth;

static void *one_failure_malloc(size_t n)
{
	return ++jansson_calls == jansson_fail_nth ? NULL : malloc(n);
}

/*
 * Each of jansson's allocations failing alone (the rest succeed, which the
 * process-wide injection of kw_malloc cannot do): every run ends in
 * KW_ENOMEM or in the clean report. A failed set must not leave its value
 * in use: jansson may release it (Debian's 2.14 leaks it instead), and
 * the blacklist list was appended to after its set had failed, which ASan
 * reports with such a jansson.
 */
START_TEST(show_json_one_jansson_failure_at_a_time)
{
	char *whl = kwt_fmt("%s/wheels/auditwheel/testzlib-0.0.1-cp310-cp310-linux_x86_64.whl", kwt_corpus());
	struct kw_ctx *ctx = NULL;
	struct kw_audit *a = NULL;
	struct kw_km_verdict km = { 0 };
	struct kw_error err = { 0 };
	char *clean = NULL;
	long n, total;

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_msg(kw_audit_wheel(ctx, whl, &a, &err) == 0, "%s", err.msg);
	ck_assert_msg(kw_km_judge(NULL, a, &km, &err) == 0, "%s", err.msg);
	/* The first report call installs kwheel's allocator; this test's replaces it afterwards. */
	ck_assert_int_eq(kw_report_show_json(a, &km, &clean, &err), 0);
	json_set_alloc_funcs(one_failure_malloc, free);
	jansson_calls = 0;
	jansson_fail_nth = 0;
	free(clean);
	ck_assert_int_eq(kw_report_show_json(a, &km, &clean, &err), 0);
	total = jansson_calls;
	ck_assert_int_gt(total, 100);
	for (n = 1; n <= total; n++) {
		char *s = NULL;
		int rc;

		jansson_calls = 0;
		jansson_fail_nth = n;
		rc = kw_report_show_json(a, &km, &s, &err);
		if (rc == 0) {
			ck_assert_msg(strcmp(s, clean) == 0, "jansson allocation %ld failing: a different report", n);
			free(s);
		} else {
			ck_assert_int_eq(rc, KW_ENOMEM);
			ck_assert_ptr_null(s);
		}
	}
	json_set_alloc_funcs(malloc, free);
	free(clean);
	kw_km_verdict_release(&km);
	kw_audit_free(a);
	kw_ctx_free(ctx);
	free(whl);
}
END_TEST

static Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("escape");

	tcase_add_loop_test(tc, escape_text, 0, sizeof(esc_cases) / sizeof(esc_cases[0]));
	tcase_add_test(tc, appendf_escapes_arguments_only);
	tcase_add_test(tc, json_any_bytes);
	tcase_add_test(tc, repair_text_and_json);
	suite_add_tcase(s, tc);
	tc = tcase_create("alloc");
	tcase_add_test(tc, show_json_under_failing_allocations);
	tcase_add_test(tc, show_json_one_jansson_failure_at_a_time);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return kwt_main(report_suite());
}
