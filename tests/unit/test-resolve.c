/* SPDX-License-Identifier: MIT */
/*
 * The resolver under a fixture root built here with gcc: symbolic links
 * (relative, absolute under the root, directory aliases, loops, dangling)
 * followed through its caches as the kernel would follow them, FIFOs passed
 * by, and the lookup limit counted exactly.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/resolve.h"
#include "kwheel/util.h"
#include "testlib.h"

static char *root;

/* Build the root: /top.so needs libx.so.1, libloop.so.1, libdangle.so.1, libfifo.so.1; RPATH below. */
static void make_root(const char *rpath)
{
	char *cmd;

	root = kwt_mkdtemp();
	cmd = kwt_fmt("set -e; cd '%s'; mkdir -p usr/real usr/lib fifo other; ln -s usr/lib lib; "
		      "echo 'int x(void) { return 1; }' > x.c; "
		      "gcc -shared -fPIC -nostdlib -Wl,-soname,libx.so.1 -o usr/real/libx.so.1.0.0 x.c; "
		      "gcc -shared -fPIC -nostdlib -Wl,-soname,libfifo.so.1 -o other/libfifo.so.1 x.c; "
		      "ln -s ../real/libx.so.1.0.0 usr/lib/libx.so.1.0; ln -s libx.so.1.0 usr/lib/libx.so.1; "
		      "ln -s libloop2.so.1 usr/lib/libloop.so.1; ln -s libloop.so.1 usr/lib/libloop2.so.1; "
		      "ln -s /nowhere/libd.so usr/lib/libdangle.so.1; mkfifo fifo/libfifo.so.1; "
		      "gcc -shared -fPIC -nostdlib -o top.so x.c -Wl,--disable-new-dtags -Wl,-rpath,'%s' "
		      "-Wl,--no-as-needed -Lusr/real -l:libx.so.1.0.0; "
		      "rm x.c",
		      root, rpath);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	/* The extra needed entries, through the editor (they are missing at link time). */
	cmd = kwt_fmt("'%s' patch --replace-needed libx.so.1.0.0 libx.so.1 --add-needed libfifo.so.1 "
		      "--add-needed libdangle.so.1 --add-needed libloop.so.1 '%s/top.so'",
		      kwt_kwheel(), root);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
}

static void drop_root(void)
{
	kwt_rmtree(root);
	free(root);
	root = NULL;
}

static const struct kw_dep_node *dep(const struct kw_dep_graph *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->n_nodes; i++) {
		if (strcmp(g->nodes[i].name, name) == 0) {
			return &g->nodes[i];
		}
	}
	ck_abort_msg("no node %s", name);
	return NULL;
}

static int resolve(uint64_t max_lookups, struct kw_dep_graph **g, struct kw_error *err)
{
	struct kw_ctx *ctx = NULL;
	struct kw_resolver *r = NULL;
	int rc;

	ck_assert_int_eq(kw_ctx_new(&ctx, err), 0);
	ck_assert_int_eq(kw_ctx_set_root(ctx, root, err), 0);
	ctx->no_default_paths = true;
	ctx->limits.max_lookups = max_lookups;
	ck_assert_int_eq(kw_resolver_new(ctx, &r, err), 0);
	rc = kw_resolve_tree(r, "/top.so", NULL, g, err);
	kw_resolver_free(r);
	kw_ctx_free(ctx);
	return rc;
}

START_TEST(links_under_root)
{
	struct kw_dep_graph *g = NULL;
	struct kw_error err = { 0 };
	const struct kw_dep_node *n;

	/* A missing dir, a FIFO's dir, /lib (-> usr/lib, relative), a ".." that climbs back, the FIFO's replacement. */
	make_root("/nonexistent:/fifo:/lib:/usr/real/../lib:/other");
	ck_assert_msg(resolve(1000, &g, &err) == 0, "%s", err.msg);
	n = dep(g, "libx.so.1");
	ck_assert_str_eq(n->path, "/lib/libx.so.1");
	ck_assert_str_eq(n->realpath, "/usr/real/libx.so.1.0.0");
	ck_assert_int_eq(n->via, KW_VIA_RPATH);
	ck_assert_ptr_null(dep(g, "libloop.so.1")->path);   /* a loop: ELOOP for the loader */
	ck_assert_ptr_null(dep(g, "libdangle.so.1")->path); /* dangling */
	n = dep(g, "libfifo.so.1");                          /* the FIFO is passed by */
	ck_assert_str_eq(n->path, "/other/libfifo.so.1");
	kw_dep_graph_free(g);
	drop_root();
}
END_TEST

/*
 * Every (directory, name) pair tried counts once: 4 names not found at
 * once (libx.so.1 only in the third entry) over a 3-entry RPATH.
 */
START_TEST(lookup_limit_exact)
{
	struct kw_dep_graph *g = NULL;
	struct kw_error err = { 0 };
	/* libfifo: 3 lookups (passes the FIFO in /fifo), libdangle 3, libloop 3, libx 3 (found in /lib, third). */
	const uint64_t need = 12;

	make_root("/fifo:/nonexistent:/lib");
	ck_assert_int_eq(resolve(need - 1, &g, &err), KW_ELIMIT);
	ck_assert_ptr_null(g);
	ck_assert_ptr_nonnull(strstr(err.msg, "library lookups"));
	ck_assert_ptr_nonnull(strstr(err.msg, "'/top.so'"));
	ck_assert_msg(resolve(need, &g, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(dep(g, "libx.so.1")->path, "/lib/libx.so.1");
	kw_dep_graph_free(g);
	drop_root();
}
END_TEST

START_TEST(root_not_regular)
{
	struct kw_ctx *ctx = NULL;
	struct kw_resolver *r = NULL;
	struct kw_dep_graph *g = NULL;
	struct kw_error err = { 0 };

	make_root("/lib");
	ck_assert_int_eq(kw_ctx_new(&ctx, &err), 0);
	ck_assert_int_eq(kw_ctx_set_root(ctx, root, &err), 0);
	ck_assert_int_eq(kw_resolver_new(ctx, &r, &err), 0);
	ck_assert_int_eq(kw_resolve_tree(r, "/fifo/libfifo.so.1", NULL, &g, &err), KW_EFORMAT);
	ck_assert_str_eq(err.msg, "'/fifo/libfifo.so.1': not a regular file");
	ck_assert_int_eq(kw_resolve_tree(r, "/usr", NULL, &g, &err), KW_EFORMAT);
	ck_assert_int_eq(kw_resolve_tree(r, "/nonexistent.so", NULL, &g, &err), KW_ENOTFOUND);
	ck_assert_msg(kw_resolve_tree(r, "/lib/libx.so.1", NULL, &g, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(g->nodes[0].realpath, "/usr/real/libx.so.1.0.0");
	kw_dep_graph_free(g);
	kw_resolver_free(r);
	kw_ctx_free(ctx);
	drop_root();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("root");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, links_under_root);
	tcase_add_test(tc, lookup_limit_exact);
	tcase_add_test(tc, root_not_regular);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
