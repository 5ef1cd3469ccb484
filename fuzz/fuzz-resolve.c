/* SPDX-License-Identifier: MIT */
/*
 * fuzz-resolve: byte 0 holds flags, the rest splits at NUL into an rpath
 * entry, an origin and an ELF image. kw_resolve_expand runs on the entry
 * (with the parsed ELF or NULL) and on every entry of the ELF's own
 * RPATH/RUNPATH; its output must stay within what the tokens can add. With
 * flag 0x02 the ELF is also the root of kw_resolve_tree under a root
 * directory that does not exist, with an overlay that serves the same image,
 * and the graph must stay within its DT_NEEDED count.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "kwheel/kwheel.h"
#include "kwheel/resolve.h"

#include "fuzz-common.h"

#define OVERLAY "/w"
#define ROOT_PATH OVERLAY "/pkg/root.so"
#define MAX_SERVED_NEEDED 16

static struct kw_ctx *ctx;

struct overlay {
	const uint8_t *elf;
	size_t len;
};

static void cleanup(void)
{
	kw_ctx_free(ctx);
	ctx = NULL;
}

static void setup(void)
{
	struct kw_error err;

	if (kw_ctx_new(&ctx, &err) < 0 ||
	    kw_ctx_set_root(ctx, "/nonexistent/kwheel-fuzz-root", &err) < 0) {
		fprintf(stderr, "fuzz-resolve: %s\n", err.msg);
		abort();
	}
	/* Every lookup misses fast: nothing of the real system leaks into the result. */
	ctx->no_default_paths = true;
	atexit(cleanup);
}

static size_t count_dollars(const char *s)
{
	size_t n = 0;

	for (; *s; s++) {
		n += *s == '$';
	}
	return n;
}

static void check_expand(const char *entry, const char *origin, const struct kw_elf_info *info)
{
	struct kw_error err;
	char *out = (char *)1;
	size_t olen = origin ? strlen(origin) : 0;
	/* $LIB is "lib/<triplet>" and $PLATFORM an arch name: both far below 256 bytes. */
	size_t per = olen > 256 ? olen : 256;
	int rc = kw_resolve_expand(entry, origin, info, &out, &err);

	if (rc < 0) {
		if (out) {
			abort();
		}
		return;
	}
	if (!out || strlen(out) > strlen(entry) + count_dollars(entry) * per) {
		abort();
	}
	/* Without a '$' there is nothing to expand. */
	if (!strchr(entry, '$') && strcmp(out, entry) != 0) {
		abort();
	}
	free(out);
}

/* Expand every ':'-separated entry of a search path, as the resolver would. */
static void expand_list(const char *list, const char *origin, const struct kw_elf_info *info)
{
	char *copy, *p, *colon;

	if (!list) {
		return;
	}
	copy = strdup(list);
	if (!copy) {
		abort();
	}
	for (p = copy;; p = colon + 1) {
		colon = strchr(p, ':');
		if (colon) {
			*colon = '\0';
		}
		check_expand(p, origin, info);
		if (!colon) {
			break;
		}
	}
	free(copy);
}

static int serve(void *ud, const char *path, struct kw_elf_info **info, bool *borrowed, struct kw_error *err)
{
	const struct overlay *ov = ud;

	(void)path;
	return kw_elf_parse_memory(ov->elf, ov->len, path, info, err);
}

static void check_tree(const struct kw_elf_info *info, const uint8_t *elf, size_t len)
{
	struct overlay ov = { elf, len };
	struct kw_resolver *r = NULL;
	struct kw_dep_graph *g = NULL;
	struct kw_error err;
	size_t i, k;

	if (info->n_needed > MAX_SERVED_NEEDED) {
		return;
	}
	if (kw_resolver_new(ctx, &r, &err) < 0) {
		return;
	}
	if (kw_resolver_set_overlay(r, OVERLAY, serve, &ov, &err) < 0) {
		goto out;
	}
	if (kw_resolve_tree(r, ROOT_PATH, info, &g, &err) < 0) {
		goto out;
	}
	/* Each object loads once and every object has the same DT_NEEDED list. */
	if (!g || g->n_nodes < 1 || g->n_nodes > 1 + info->n_needed) {
		abort();
	}
	for (i = 0; i < g->n_nodes; i++) {
		const struct kw_dep_node *n = &g->nodes[i];

		if (n->name) {
			fz_touch(n->name, strlen(n->name));
		}
		if (n->path) {
			fz_touch(n->path, strlen(n->path));
		}
		if (n->realpath) {
			fz_touch(n->realpath, strlen(n->realpath));
		}
		if (n->error) {
			fz_touch(n->error, strlen(n->error));
		}
		if (n->info) {
			fz_walk_elf(n->info);
		}
		fz_touch(kw_found_via_str(n->via), 1);
		for (k = 0; k < n->n_deps; k++) {
			if (n->deps[k] >= g->n_nodes) {
				abort();
			}
		}
	}
out:
	kw_dep_graph_free(g);
	kw_resolver_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_part parts[3];
	struct kw_elf_info *info = NULL;
	struct kw_error err;
	char *entry, *origin;
	uint8_t flags, *elf = NULL;
	size_t np;

	if (size < 1) {
		return 0;
	}
	if (!ctx) {
		setup();
	}
	flags = data[0];
	np = fz_split(data + 1, size - 1, 0, parts, 3);
	entry = fz_strdup_part(&parts[0]);
	origin = np > 1 ? fz_strdup_part(&parts[1]) : NULL;
	if (np > 2 && parts[2].len > 0) {
		elf = malloc(parts[2].len);
		if (!elf) {
			abort();
		}
		memcpy(elf, parts[2].p, parts[2].len);
		if (kw_elf_parse_memory(elf, parts[2].len, "fuzz.so", &info, &err) < 0) {
			info = NULL;
		}
	}
	check_expand(entry, origin, info);
	/* Flag 0x01: the NULL-info defaults too (x86_64). */
	if (flags & 0x01) {
		check_expand(entry, origin, NULL);
	}
	if (info) {
		expand_list(info->rpath, origin ? origin : OVERLAY "/pkg", info);
		expand_list(info->runpath, origin ? origin : OVERLAY "/pkg", info);
		if (flags & 0x02) {
			check_tree(info, elf, parts[2].len);
		}
	}
	kw_elf_info_free(info);
	free(elf);
	free(entry);
	free(origin);
	return 0;
}
