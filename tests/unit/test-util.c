/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/util.h"
#include "testlib.h"

/* FIPS 180-2 examples and an input crossing several blocks. */
static const struct {
	const char *in;
	const char *hex;
} sha_cases[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
};

START_TEST(sha256_vectors)
{
	struct kw_sha256 s;
	unsigned char d[32];
	char hex[65];

	kw_sha256_init(&s);
	kw_sha256_update(&s, sha_cases[_i].in, strlen(sha_cases[_i].in));
	kw_sha256_final(&s, d);
	kw_hex(d, 32, hex);
	ck_assert_str_eq(hex, sha_cases[_i].hex);
}
END_TEST

START_TEST(sha256_incremental_matches_oneshot)
{
	unsigned char buf[1000], a[32], b[32];
	struct kw_sha256 s;
	size_t i;

	for (i = 0; i < sizeof(buf); i++) {
		buf[i] = (unsigned char)(i * 7 + 3);
	}
	kw_sha256_init(&s);
	kw_sha256_update(&s, buf, sizeof(buf));
	kw_sha256_final(&s, a);
	kw_sha256_init(&s);
	for (i = 0; i < sizeof(buf); i += 13) {
		kw_sha256_update(&s, buf + i, i + 13 <= sizeof(buf) ? 13 : sizeof(buf) - i);
	}
	kw_sha256_final(&s, b);
	ck_assert_mem_eq(a, b, 32);
}
END_TEST

/* FIPS 180-2 SHA-512 and SHA-384 examples: one block, and two (the 112-byte message). */
static const struct {
	const char *in;
	bool sha384;
	const char *hex;
} sha512_cases[] = {
	{ "abc", false,
	  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
	{ "abc", true,
	  "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  false,
	  "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
	  "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  true,
	  "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039" },
};

START_TEST(sha512_vectors)
{
	struct kw_sha512 s;
	unsigned char d[64];
	char hex[129];
	size_t n, i, len = strlen(sha512_cases[_i].in);

	/* fed in 7-byte pieces, so a block is completed across calls */
	kw_sha512_init(&s, sha512_cases[_i].sha384);
	for (i = 0; i < len; i += 7) {
		kw_sha512_update(&s, sha512_cases[_i].in + i, len - i < 7 ? len - i : 7);
	}
	n = kw_sha512_final(&s, d);
	ck_assert_uint_eq(n, sha512_cases[_i].sha384 ? 48 : 64);
	kw_hex(d, n, hex);
	ck_assert_str_eq(hex, sha512_cases[_i].hex);
}
END_TEST

START_TEST(b64url_forms)
{
	char out[16];

	kw_b64url_nopad((const unsigned char *)"\xfb\xff", 2, out);
	ck_assert_str_eq(out, "-_8");
	kw_b64url_nopad((const unsigned char *)"abc", 3, out);
	ck_assert_str_eq(out, "YWJj");
	kw_b64url_nopad((const unsigned char *)"a", 1, out);
	ck_assert_str_eq(out, "YQ");
}
END_TEST

/* The first of each string stays where it was, as kw_strv_push_unique one by one would leave it. */
/*
 * The index agrees with the list it indexes: push_indexed leaves the list
 * push_unique would, every string maps to its place, a prefix is looked up
 * by its length alone, and a failed allocation leaves list and map as they
 * were.
 */
START_TEST(strmap_indexes_a_list)
{
	struct kw_strv sv = { 0 }, one = { 0 };
	struct kw_strmap m = { 0 };
	size_t i;
	long k;
	int rc;

	ck_assert_int_eq(kw_strmap_get(&m, "x"), -1);
	/* push_unique, the oracle, scans: a few thousand names keep it quick under the sanitizers */
	for (i = 0; i < 3000; i++) {
		char s[16];

		snprintf(s, sizeof(s), "lib%zu.so", (i * 7919) % 1009);
		ck_assert_int_eq(kw_strv_push_indexed(&sv, &m, s), 0);
		ck_assert_int_eq(kw_strv_push_unique(&one, s), 0);
	}
	ck_assert_uint_eq(sv.n, 1009);
	ck_assert_uint_eq(m.n, 1009);
	for (i = 0; i < sv.n; i++) {
		ck_assert_str_eq(sv.v[i], one.v[i]);
		ck_assert_int_eq(kw_strmap_get(&m, sv.v[i]), (long)i);
	}
	ck_assert_int_eq(kw_strmap_get(&m, "lib1009.so"), -1);
	ck_assert_int_eq(kw_strmap_get(&m, ""), -1);
	ck_assert_int_eq(kw_strmap_get_n(&m, "lib0.so\tlibc.so.6", 7), kw_strmap_get(&m, "lib0.so"));
	ck_assert_int_eq(kw_strmap_get_n(&m, "lib0.so", 6), -1);
	/* the first value stays */
	ck_assert_int_eq(kw_strmap_add(&m, sv.v[5], 99), 0);
	ck_assert_int_eq(kw_strmap_get(&m, sv.v[5]), 5);
	kw_strmap_release(&m);
	kw_strv_release(&sv);
	kw_strv_release(&one);
	/* the ninth string grows a map of eight: each allocation of the push failed in turn */
	for (k = 1; k < 6; k++) {
		for (i = 0; i < 8; i++) {
			char s[8];

			snprintf(s, sizeof(s), "s%zu", i);
			ck_assert_int_eq(kw_strv_push_indexed(&sv, &m, s), 0);
		}
		kw_alloc_fail_at(k);
		rc = kw_strv_push_indexed(&sv, &m, "new.so");
		kw_alloc_fail_at(0);
		if (rc == 0) {
			ck_assert_uint_eq(sv.n, 9);
			ck_assert_int_eq(kw_strmap_get(&m, "new.so"), 8);
		} else {
			ck_assert_int_eq(rc, KW_ENOMEM);
			ck_assert_uint_eq(sv.n, 8);
			ck_assert_ptr_null(sv.v[8]);
			ck_assert_int_eq(kw_strmap_get(&m, "new.so"), -1);
		}
		for (i = 0; i < 8; i++) {
			ck_assert_int_eq(kw_strmap_get(&m, sv.v[i]), (long)i);
		}
		kw_strmap_release(&m);
		kw_strv_release(&sv);
	}
}
END_TEST

START_TEST(strv_dedup_keeps_first_in_order)
{
	static const char *const in[] = { "b", "a", "b", "c", "a", "a", "d", "c", "b" };
	struct kw_strv sv = { 0 }, one = { 0 };
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		ck_assert_int_eq(kw_strv_push(&sv, in[i]), 0);
		ck_assert_int_eq(kw_strv_push_unique(&one, in[i]), 0);
	}
	ck_assert_int_eq(kw_strv_dedup(&sv), 0);
	ck_assert_uint_eq(sv.n, 4);
	ck_assert_uint_eq(sv.n, one.n);
	for (i = 0; i < sv.n; i++) {
		ck_assert_str_eq(sv.v[i], one.v[i]);
	}
	ck_assert_ptr_null(sv.v[sv.n]);
	kw_strv_release(&sv);
	kw_strv_release(&one);
	/* a large list: the sort, not a scan per element */
	for (i = 0; i < 200000; i++) {
		char s[16];

		snprintf(s, sizeof(s), "s%zu", (i * 7919) % 50000);
		ck_assert_int_eq(kw_strv_push(&sv, s), 0);
	}
	ck_assert_int_eq(kw_strv_dedup(&sv), 0);
	ck_assert_uint_eq(sv.n, 50000);
	ck_assert_str_eq(sv.v[0], "s0");
	ck_assert_str_eq(sv.v[1], "s7919");
	kw_strv_release(&sv);
	ck_assert_int_eq(kw_strv_dedup(&sv), 0);
}
END_TEST

START_TEST(strv_split_keeps_empty_fields)
{
	struct kw_strv sv = { 0 };

	ck_assert_int_eq(kw_strv_split(&sv, "a::b:", ':'), 0);
	ck_assert_uint_eq(sv.n, 4);
	ck_assert_str_eq(sv.v[0], "a");
	ck_assert_str_eq(sv.v[1], "");
	ck_assert_str_eq(sv.v[2], "b");
	ck_assert_str_eq(sv.v[3], "");
	ck_assert_ptr_null(sv.v[4]);
	kw_strv_release(&sv);
}
END_TEST

START_TEST(alloc_fault_injection)
{
	char *a, *b;

	kw_alloc_fail_at(2);
	a = kw_strdup("x");
	b = kw_strdup("y");
	kw_alloc_fail_at(0);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(b);
	free(a);
}
END_TEST

START_TEST(ctx_root_is_normalised)
{
	struct kw_ctx *ctx;
	struct kw_error err;
	char *p;

	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(kw_ctx_set_root(ctx, "/srv/root//", &err), 0);
	p = kw_ctx_rooted(ctx, "/usr/lib");
	ck_assert_str_eq(p, "/srv/root/usr/lib");
	free(p);
	ck_assert_int_eq(kw_ctx_set_root(ctx, "/", &err), 0);
	p = kw_ctx_rooted(ctx, "/usr/lib");
	ck_assert_str_eq(p, "/usr/lib");
	free(p);
	kw_ctx_free(ctx);
}
END_TEST

START_TEST(file_copy_and_map)
{
	char *dir = kwt_mkdtemp(), *a = kwt_fmt("%s/a", dir), *b = kwt_fmt("%s/b", dir), *e = kwt_fmt("%s/empty", dir);
	char *big = malloc(200000), *got;
	unsigned char *m;
	struct kw_error err;
	struct stat st;
	size_t i, len;

	for (i = 0; i < 200000; i++) {
		big[i] = (char)(i * 7 + i / 251);
	}
	ck_assert_int_eq(kwt_write_file(a, big, 200000), 0);
	umask(022);
	/* More than one read buffer, the mode asked for, the bytes unchanged. */
	ck_assert_int_eq(kw_copy_file(a, b, 0750, &err), 0);
	ck_assert_int_eq(stat(b, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0750);
	got = kwt_read_file(b, &len);
	ck_assert_uint_eq(len, 200000);
	ck_assert_mem_eq(got, big, 200000);
	free(got);
	ck_assert_int_eq(kw_map_file(b, &m, &len, &err), 0);
	ck_assert_uint_eq(len, 200000);
	ck_assert_mem_eq(m, big, 200000);
	m[0] ^= 1; /* private: the file keeps its byte */
	kw_unmap_file(m, len);
	got = kwt_read_file(b, &len);
	ck_assert_int_eq(got[0], big[0]);
	free(got);
	/* Errors name the file. */
	ck_assert_int_ne(kw_copy_file(e, b, 0644, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
	ck_assert_int_eq(kwt_write_file(e, "", 0), 0);
	ck_assert_int_ne(kw_map_file(e, &m, &len, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, e));
	ck_assert_int_ne(kw_map_file(dir, &m, &len, &err), 0);
	got = kwt_fmt("%s/no/such/dir", dir);
	ck_assert_int_ne(kw_copy_file(a, got, 0644, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "no/such/dir"));
	free(got);
	/* Never over what is there: neither a file nor a link planted at dst (the victim keeps its bytes). */
	ck_assert_int_ne(kw_copy_file(a, b, 0644, &err), 0);
	{
		char *victim = kwt_fmt("%s/victim", dir), *link = kwt_fmt("%s/link", dir);

		ck_assert_int_eq(kwt_write_file(victim, "keep", 4), 0);
		ck_assert_int_eq(symlink(victim, link), 0);
		ck_assert_int_ne(kw_copy_file(a, link, 0644, &err), 0);
		got = kwt_read_file(victim, &len);
		ck_assert_uint_eq(len, 4);
		ck_assert_mem_eq(got, "keep", 4);
		free(got);
		free(victim);
		free(link);
	}
	free(big);
	free(a);
	free(b);
	free(e);
	kwt_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(buf_grows_and_fails_sticky)
{
	struct kw_buf b = { 0 };
	char *s;
	size_t i;

	s = kw_buf_take(&b);
	ck_assert_str_eq(s, "");
	free(s);
	/* Far past any initial capacity, with formatted pieces of every length. */
	for (i = 0; i < 1000; i++) {
		kw_buf_appendf(&b, "%zu:%s;", i, i % 7 ? "x" : "a longer piece of text");
	}
	kw_buf_append(&b, "end");
	ck_assert(!b.failed);
	ck_assert_uint_eq(b.len, strlen(b.s));
	ck_assert_ptr_nonnull(strstr(b.s, ";999:x;end"));
	ck_assert(strncmp(b.s, "0:a longer piece of text;1:x;", 29) == 0);
	s = kw_buf_take(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(b.s);
	free(s);
	/* One failed allocation: later appends do nothing, take says NULL, nothing leaks. */
	kw_buf_append(&b, "before");
	kw_alloc_fail_at(1);
	kw_buf_appendf(&b, "%0300d", 1);
	kw_alloc_fail_at(0);
	ck_assert(b.failed);
	kw_buf_append(&b, "after");
	ck_assert_ptr_null(kw_buf_take(&b));
	ck_assert(!b.failed);
}
END_TEST

/* kw_run: output captured, exit status and signal said exactly, the first error line of a long log. */
START_TEST(run_reports_how_it_ended)
{
	char *ok[] = { "sh", "-c", "echo out; echo err >&2", NULL };
	char *fail[] = { "sh", "-c", "exit 7", NULL };
	char *killed[] = { "sh", "-c", "kill -9 $$", NULL };
	char *missing[] = { "kwheel-no-such-program", NULL };
	char *noisy[] = { "sh", "-c",
			  "i=0; while [ $i -lt 2000 ]; do echo 'note: -Werror is only a word here' >&2; i=$((i+1)); done; "
			  "echo 'x.o: undefined reference to f' >&2; exit 1",
			  NULL };
	struct kw_buf out = { 0 }, err_text = { 0 };
	struct kw_error err = { 0 };

	ck_assert_int_eq(kw_run(ok, &out, &err_text, &err), 0);
	ck_assert_str_eq(out.s, "out\n");
	ck_assert_str_eq(err_text.s, "err\n");
	ck_assert_int_eq(kw_run(fail, NULL, NULL, &err), KW_EIO);
	ck_assert_str_eq(err.msg, "sh failed (exit status 7)");
	ck_assert_int_eq(kw_run(killed, NULL, NULL, &err), KW_EIO);
	ck_assert_str_eq(err.msg, "sh killed by signal 9 (Killed)");
	ck_assert_int_eq(kw_run(missing, NULL, NULL, &err), KW_EIO);
	/* posix_spawn reports the failed exec; under valgrind the child exits 127 instead. */
	ck_assert_msg(strcmp(err.msg, "cannot run kwheel-no-such-program: No such file or directory") == 0 ||
			      strcmp(err.msg, "kwheel-no-such-program failed (exit status 127)") == 0,
		      "%s", err.msg);
	ck_assert_int_eq(kw_run(noisy, NULL, NULL, &err), KW_EIO);
	ck_assert_str_eq(err.msg, "sh failed (exit status 1): x.o: undefined reference to f");
	kw_buf_release(&out);
	kw_buf_release(&err_text);
}
END_TEST

/* The pool: every item once, nested batches on the same threads, the lowest failure reported. */
struct pool_items {
	struct kw_pool *pool;
	pthread_mutex_t lock;
	unsigned runs[64][16];   /* [outer][inner] calls */
	pthread_t who[64];
	bool many_threads;
	size_t fail_at;          /* run_until: items at or past this fail */
};

static void pool_inner(void *ud, size_t i);

struct pool_outer_item {
	struct pool_items *p;
	size_t outer;
};

static void pool_outer(void *ud, size_t i)
{
	struct pool_items *p = ud;
	struct pool_outer_item o = { p, i };

	kw_pool_run(p->pool, 16, pool_inner, &o);
}

static void pool_inner(void *ud, size_t i)
{
	struct pool_outer_item *o = ud;
	struct pool_items *p = o->p;

	pthread_mutex_lock(&p->lock);
	p->runs[o->outer][i]++;
	if (!p->who[o->outer]) {
		p->who[o->outer] = pthread_self();
	} else if (!pthread_equal(p->who[o->outer], pthread_self())) {
		p->many_threads = true;
	}
	pthread_mutex_unlock(&p->lock);
	/* Long enough that the other threads take items of this batch too. */
	usleep(200);
}

static int pool_fails(void *ud, size_t i)
{
	struct pool_items *p = ud;

	usleep(100);
	return i >= p->fail_at ? -1 : 0;
}

START_TEST(pool_runs_each_item_once_nested)
{
	static struct pool_items p;
	struct kw_error err = { 0 };
	size_t o, i;
	unsigned threads;

	for (threads = 1; threads <= 4; threads *= 2) {
		memset(&p, 0, sizeof(p));
		pthread_mutex_init(&p.lock, NULL);
		ck_assert_int_eq(kw_pool_new(threads, &p.pool, &err), 0);
		ck_assert_uint_eq(kw_pool_threads(p.pool), threads);
		/* One outer item whose inner batch is all the work, as one big wheel among small ones. */
		kw_pool_run(p.pool, 64, pool_outer, &p);
		for (o = 0; o < 64; o++) {
			for (i = 0; i < 16; i++) {
				ck_assert_uint_eq(p.runs[o][i], 1);
			}
		}
		/* With more than one thread, some wheel's members ran on more than one of them. */
		ck_assert(p.many_threads == (threads > 1));
		for (i = 0; i <= 40; i += 20) {
			p.fail_at = i;
			ck_assert_uint_eq(kw_pool_run_until(p.pool, 40, pool_fails, &p), i);
		}
		ck_assert_uint_eq(kw_pool_run_until(p.pool, 0, pool_fails, &p), 0);
		kw_pool_free(p.pool);
		pthread_mutex_destroy(&p.lock);
	}
	kw_pool_free(NULL);
	ck_assert_uint_eq(kw_pool_threads(NULL), 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, sha256_vectors, 0, sizeof(sha_cases) / sizeof(sha_cases[0]));
	tcase_add_test(tc, sha256_incremental_matches_oneshot);
	tcase_add_loop_test(tc, sha512_vectors, 0, sizeof(sha512_cases) / sizeof(sha512_cases[0]));
	tcase_add_test(tc, b64url_forms);
	tcase_add_test(tc, strv_split_keeps_empty_fields);
	tcase_add_test(tc, strv_dedup_keeps_first_in_order);
	tcase_add_test(tc, strmap_indexes_a_list);
	tcase_add_test(tc, alloc_fault_injection);
	tcase_add_test(tc, ctx_root_is_normalised);
	tcase_add_test(tc, file_copy_and_map);
	tcase_add_test(tc, buf_grows_and_fails_sticky);
	tcase_add_test(tc, run_reports_how_it_ended);
	tcase_add_test(tc, pool_runs_each_item_once_nested);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
