/* SPDX-License-Identifier: MIT */
/*
 * The wasm loader's search (Emscripten's libdylink.js findLibraryFS and
 * replaceORIGIN, since 4.0.8), over the same dependency-graph type as the
 * ELF resolver, so audit, report and repair read one shape. It is smaller
 * than ELF's: no RPATH inheritance, no ld.so.conf, no default directories,
 * no token but a leading $ORIGIN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/resolve.h"
#include "kwheel/util.h"

#include "internal.h"

struct wasm_entry {
	char *path;                /* normalised path, overlay or host (without ctx->root) */
	struct kw_wasm_info *info; /* NULL: not a side module */
	char *error;               /* why it was passed over, or NULL */
};

struct kw_wasm_resolver {
	struct kw_ctx *ctx;
	char *prefix;              /* overlay prefix, no trailing slash */
	kw_resolve_wasm_fn fn;
	void *ud;
	char *cwd;                 /* for relative search directories */
	struct wasm_entry *cache;
	size_t n_cache, cap_cache;
	uint64_t lookups;
	struct kw_strv dirs;       /* the user's directories, in search order */
	size_t n_env_dirs;         /* how many of them come from ctx->ld_library_path */
	char *libs_dir;            /* overlay <Name>.libs searched last, or NULL */
};

int kw_wasm_resolver_new(struct kw_ctx *ctx, const char *prefix, kw_resolve_wasm_fn fn, void *ud,
			 struct kw_wasm_resolver **out, struct kw_error *err)
{
	struct kw_wasm_resolver *r = NULL;
	char buf[4096];
	size_t i;
	int rc = KW_ENOMEM;

	*out = NULL;
	r = kw_calloc(1, sizeof(*r));
	if (!r) {
		goto fail;
	}
	r->ctx = ctx;
	r->fn = fn;
	r->ud = ud;
	r->prefix = kw_strdup(prefix);
	r->cwd = kw_strdup(getcwd(buf, sizeof(buf)) ? buf : "/");
	if (!r->prefix || !r->cwd) {
		goto fail;
	}
	if (ctx->ld_library_path && kw_strv_split(&r->dirs, ctx->ld_library_path, ':')) {
		goto fail;
	}
	r->n_env_dirs = r->dirs.n;
	for (i = 0; i < ctx->n_lib_paths; i++) {
		if (kw_strv_push(&r->dirs, ctx->lib_paths[i])) {
			goto fail;
		}
	}
	*out = r;
	return 0;
fail:
	kw_wasm_resolver_free(r);
	return kw_error_set(err, rc, "out of memory");
}

void kw_wasm_resolver_free(struct kw_wasm_resolver *r)
{
	size_t i;

	if (!r) {
		return;
	}
	for (i = 0; i < r->n_cache; i++) {
		free(r->cache[i].path);
		kw_wasm_info_free(r->cache[i].info);
		free(r->cache[i].error);
	}
	free(r->cache);
	kw_strv_release(&r->dirs);
	free(r->libs_dir);
	free(r->prefix);
	free(r->cwd);
	free(r);
}

int kw_wasm_resolver_set_libs_dir(struct kw_wasm_resolver *r, const char *dir, struct kw_error *err)
{
	char *d = kw_strdup(dir);

	if (!d) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	free(r->libs_dir);
	r->libs_dir = d;
	return 0;
}

static bool under_prefix(const struct kw_wasm_resolver *r, const char *path)
{
	size_t n = strlen(r->prefix);

	return strncmp(path, r->prefix, n) == 0 && path[n] == '/';
}

/* Read a host file as a wasm module; a file that is missing or not a side module is no hit. */
static int load_host(struct kw_wasm_resolver *r, const char *path, struct wasm_entry *e, struct kw_error *err)
{
	struct kw_error lerr = { 0 };
	unsigned char *buf = NULL;
	size_t len = 0;
	char *full;
	int rc;

	full = kw_ctx_rooted(r->ctx, path);
	if (!full) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	rc = kw_map_file(full, &buf, &len, &lerr);
	free(full);
	if (rc == KW_ENOMEM) {
		return kw_error_set(err, rc, "%s", lerr.msg);
	}
	if (rc) {
		return rc == KW_ENOTFOUND ? KW_ENOTFOUND : 0; /* unreadable: passed over, said in e->error below */
	}
	if (!kw_wasm_is_wasm(buf, len)) {
		e->error = kw_asprintf("'%s': not a wasm module", path);
		rc = e->error ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
	} else {
		rc = kw_wasm_parse_memory(buf, len, path, &e->info, &lerr);
		if (rc == KW_ENOMEM) {
			rc = kw_error_set(err, rc, "%s", lerr.msg);
		} else if (rc) {
			e->error = kw_strdup(lerr.msg);
			rc = e->error ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	kw_unmap_file(buf, len);
	return rc;
}

/*
 * The cache entry for a normalised candidate path (taken): *e NULL when
 * nothing is there. Each path is looked up once per resolver.
 */
static int lookup(struct kw_wasm_resolver *r, char *path, struct wasm_entry **e, struct kw_error *err)
{
	struct wasm_entry ne = { 0 };
	size_t i;
	int rc;

	*e = NULL;
	for (i = 0; i < r->n_cache; i++) {
		if (strcmp(r->cache[i].path, path) == 0) {
			free(path);
			*e = &r->cache[i];
			return 0;
		}
	}
	if (r->lookups >= r->ctx->limits.max_lookups) {
		free(path);
		return kw_error_set(err, KW_ELIMIT, "more than %llu library lookups",
				    (unsigned long long)r->ctx->limits.max_lookups);
	}
	r->lookups++;
	if (under_prefix(r, path)) {
		struct kw_error lerr = { 0 };

		rc = r->fn(r->ud, path, &ne.info, &lerr);
		if (rc == KW_ENOMEM) {
			free(path);
			return kw_error_set(err, rc, "%s", lerr.msg);
		}
		if (rc && rc != KW_ENOTFOUND) {
			ne.error = kw_strdup(lerr.msg);
			if (!ne.error) {
				free(path);
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
	} else {
		rc = load_host(r, path, &ne, err);
		if (rc && rc != KW_ENOTFOUND) {
			free(path);
			return rc;
		}
	}
	if (rc == KW_ENOTFOUND) {
		free(path);
		return 0;
	}
	if (kw_grow(&r->cache, &r->cap_cache, r->n_cache + 1, sizeof(*r->cache))) {
		free(path);
		kw_wasm_info_free(ne.info);
		free(ne.error);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	ne.path = path;
	r->cache[r->n_cache] = ne;
	*e = &r->cache[r->n_cache++];
	return 0;
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');

	return s == path ? kw_strdup("/") : kw_strndup(path, s ? (size_t)(s - path) : 0);
}

/* dir/name, made absolute and normalised (overlay paths too: the loader's FS folds ".." lexically). */
static char *candidate(const struct kw_wasm_resolver *r, const char *dir, const char *name)
{
	char *p = dir[0] == '/' ? kw_asprintf("%s/%s", dir, name) : kw_asprintf("%s/%s/%s", r->cwd, dir, name);

	if (p) {
		kw_resolve_normalize(p);
	}
	return p;
}

struct wbuild {
	struct kw_wasm_resolver *r;
	struct kw_dep_graph *g;
	size_t cap;
	size_t *depth;           /* per node */
	size_t depth_cap;
};

static int add_node(struct wbuild *b, const char *name, const char *path, const struct kw_wasm_info *info,
		    enum kw_found_via via, size_t depth, size_t *idx, struct kw_error *err)
{
	struct kw_dep_node *n;

	if (kw_grow(&b->g->nodes, &b->cap, b->g->n_nodes + 1, sizeof(*b->g->nodes)) ||
	    kw_grow(&b->depth, &b->depth_cap, b->g->n_nodes + 1, sizeof(*b->depth))) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	n = &b->g->nodes[b->g->n_nodes];
	memset(n, 0, sizeof(*n));
	n->name = kw_strdup(name);
	n->path = path ? kw_strdup(path) : NULL;
	n->realpath = path ? kw_strdup(path) : NULL;
	b->g->n_nodes++;
	if (!n->name || (path && (!n->path || !n->realpath))) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	n->wasm = info;
	n->via = via;
	n->in_overlay = path && under_prefix(b->r, path);
	n->member = n->in_overlay ? n->path + strlen(b->r->prefix) + 1 : NULL;
	b->depth[b->g->n_nodes - 1] = depth;
	*idx = b->g->n_nodes - 1;
	return 0;
}

/* Find name for node req: its runtime path, the user's directories, then the <Name>.libs/ fallback. */
static int search(struct wbuild *b, size_t req, const char *name, struct wasm_entry **hit,
		  enum kw_found_via *via, char **why, struct kw_error *err)
{
	struct kw_wasm_resolver *r = b->r;
	const struct kw_wasm_info *info = b->g->nodes[req].wasm;
	char *origin = NULL;
	size_t i, n_rp = info ? info->n_runtime_path : 0;
	int rc = 0;

	*hit = NULL;
	if (n_rp > r->ctx->limits.max_path_entries) {
		n_rp = r->ctx->limits.max_path_entries;
	}
	origin = dir_of(b->g->nodes[req].path);
	if (!origin) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n_rp && !*hit; i++) {
		const char *ent = info->runtime_path[i];
		struct wasm_entry *e;
		char *dir, *p;

		/* Only a leading $ORIGIN is replaced, as replaceORIGIN does; ${ORIGIN} stays literal. */
		dir = strncmp(ent, "$ORIGIN", 7) == 0 ? kw_asprintf("%s%s", origin, ent + 7) : kw_strdup(ent);
		p = dir ? candidate(r, dir, name) : NULL;
		free(dir);
		if (!p) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			break;
		}
		if (!under_prefix(r, p)) {
			/* The browser's filesystem, not the host's: nothing to look at here. */
			free(p);
			continue;
		}
		rc = lookup(r, p, &e, err);
		if (rc) {
			break;
		}
		if (e && e->info && e->info->dylink != KW_WASM_NOT_SIDE) {
			*hit = e;
			*via = KW_VIA_RUNPATH;
		} else if (e && !*why) {
			*why = kw_strdup(e->error ? e->error : "not a side module");
		}
	}
	for (i = 0; !rc && i < r->dirs.n && !*hit; i++) {
		struct wasm_entry *e;
		char *p;

		if (!r->dirs.v[i][0]) {
			continue;
		}
		p = candidate(r, r->dirs.v[i], name);
		if (!p) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			break;
		}
		rc = lookup(r, p, &e, err);
		if (rc) {
			break;
		}
		if (e && e->info && e->info->dylink != KW_WASM_NOT_SIDE) {
			*hit = e;
			*via = i < r->n_env_dirs ? KW_VIA_LD_LIBRARY_PATH : KW_VIA_EXTRA;
		} else if (e && !*why) {
			*why = kw_strdup(e->error ? e->error : "not a side module");
		}
	}
	if (!rc && !*hit && r->libs_dir) {
		struct wasm_entry *e;
		char *p = candidate(r, r->libs_dir, name);

		rc = p ? lookup(r, p, &e, err) : kw_error_set(err, KW_ENOMEM, "out of memory");
		if (!rc && e && e->info && e->info->dylink != KW_WASM_NOT_SIDE) {
			*hit = e;
			*via = KW_VIA_LIBS_DIR;
		}
	}
	free(origin);
	return rc;
}

int kw_resolve_wasm_tree(struct kw_wasm_resolver *r, const char *path, const struct kw_wasm_info *info,
			 struct kw_dep_graph **out, struct kw_error *err)
{
	struct wbuild b = { .r = r };
	size_t q, k, idx;
	char *norm = NULL;
	int rc = KW_EINTERNAL;

	*out = NULL;
	b.g = kw_calloc(1, sizeof(*b.g));
	norm = kw_strdup(path);
	if (!b.g || !norm) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	kw_resolve_normalize(norm);
	rc = add_node(&b, path, norm, info, KW_VIA_ROOT, 0, &idx, err);
	if (rc) {
		goto out;
	}
	for (q = 0; q < b.g->n_nodes; q++) {
		const struct kw_wasm_info *qi = b.g->nodes[q].wasm;

		if (!qi || b.depth[q] >= r->ctx->limits.max_depth) {
			continue;
		}
		for (k = 0; k < qi->n_needed; k++) {
			const char *name = qi->needed[k];
			struct wasm_entry *hit = NULL;
			enum kw_found_via via = KW_VIA_NONE;
			char *why = NULL;
			size_t j, found = SIZE_MAX;

			if (strchr(name, '/')) {
				why = kw_strdup("a NEEDED name with '/' is not searched by the loader");
			} else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
				why = kw_strdup("not a file name");
			} else {
				rc = search(&b, q, name, &hit, &via, &why, err);
				if (rc) {
					free(why);
					goto out;
				}
			}
			/* Each library once: by path when found, by name when not. */
			for (j = 0; j < b.g->n_nodes && found == SIZE_MAX; j++) {
				const struct kw_dep_node *n = &b.g->nodes[j];

				if (hit ? (n->path && strcmp(n->path, hit->path) == 0)
					: (!n->path && strcmp(n->name, name) == 0)) {
					found = j;
				}
			}
			if (found == SIZE_MAX) {
				rc = add_node(&b, name, hit ? hit->path : NULL, hit ? hit->info : NULL, via, b.depth[q] + 1,
					      &found, err);
				if (!rc && !hit && why) {
					b.g->nodes[found].error = why;
					why = NULL;
				}
			}
			free(why);
			if (rc) {
				goto out;
			}
			{
				struct kw_dep_node *qn = &b.g->nodes[q];
				size_t *nd = kw_realloc(qn->deps, (qn->n_deps + 1) * sizeof(*nd));

				if (!nd) {
					rc = kw_error_set(err, KW_ENOMEM, "out of memory");
					goto out;
				}
				qn->deps = nd;
				qn->deps[qn->n_deps++] = found;
			}
		}
	}
	rc = 0;
out:
	free(norm);
	free(b.depth);
	if (rc) {
		kw_dep_graph_free(b.g);
	} else {
		*out = b.g;
	}
	return rc;
}
