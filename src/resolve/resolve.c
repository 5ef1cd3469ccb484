/* SPDX-License-Identifier: MIT */
/*
 * The loader's search, as glibc's _dl_map_object_deps does it: breadth first,
 * each object once, names matched against what is already loaded before any
 * search, then DT_RPATH of the requester and its loaders (unless the
 * requester has DT_RUNPATH), LD_LIBRARY_PATH, the requester's DT_RUNPATH,
 * ld.so.conf and the system directories, each with its hwcaps
 * subdirectories, skipping files that are not compatible ELF objects.
 */
#include <elf.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kwheel/util.h"

#define NBUCKETS 4096
#define MAX_NODES 4096
#define MAX_CONF_DEPTH 8

struct info_entry {
	char *realpath;
	struct kw_elf_info *info; /* NULL: not a readable ELF file */
	char *error;
	struct info_entry *next;
};

/* One probed path: whether a file is there and what it is. */
struct entry {
	char *path;
	struct info_entry *ie;   /* NULL: nothing there */
	bool overlay;
	struct entry *next;
};

struct kw_resolver {
	struct kw_ctx *ctx;
	struct kw_strv conf;
	bool conf_loaded;
	char *overlay_prefix;
	kw_resolve_overlay_fn overlay_fn;
	void *overlay_ud;
	struct entry *buckets[NBUCKETS];
	struct info_entry *ibuckets[NBUCKETS];
	char *cwd;
};

static size_t hash(const char *s)
{
	size_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	}
	return h % NBUCKETS;
}

int kw_resolver_new(struct kw_ctx *ctx, struct kw_resolver **out, struct kw_error *err)
{
	struct kw_resolver *r = kw_calloc(1, sizeof(*r));
	char buf[4096];

	*out = NULL;
	if (!r) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	r->ctx = ctx;
	r->cwd = kw_strdup(getcwd(buf, sizeof(buf)) ? buf : "/");
	if (!r->cwd) {
		free(r);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	*out = r;
	return 0;
}

void kw_resolver_free(struct kw_resolver *r)
{
	size_t i;

	if (!r) {
		return;
	}
	for (i = 0; i < NBUCKETS; i++) {
		struct entry *e = r->buckets[i], *en;
		struct info_entry *ie = r->ibuckets[i], *ien;

		for (; e; e = en) {
			en = e->next;
			free(e->path);
			free(e);
		}
		for (; ie; ie = ien) {
			ien = ie->next;
			free(ie->realpath);
			free(ie->error);
			kw_elf_info_free(ie->info);
			free(ie);
		}
	}
	kw_strv_release(&r->conf);
	free(r->overlay_prefix);
	free(r->cwd);
	free(r);
}

int kw_resolver_set_overlay(struct kw_resolver *r, const char *prefix, kw_resolve_overlay_fn fn, void *ud,
			    struct kw_error *err)
{
	char *p = kw_strdup(prefix);

	if (!p) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	kw_resolve_normalize(p);
	free(r->overlay_prefix);
	r->overlay_prefix = p;
	r->overlay_fn = fn;
	r->overlay_ud = ud;
	return 0;
}

const char *kw_found_via_str(enum kw_found_via via)
{
	switch (via) {
	case KW_VIA_NONE: return "not found";
	case KW_VIA_ROOT: return "root";
	case KW_VIA_LOADED: return "already loaded";
	case KW_VIA_PATHNAME: return "path";
	case KW_VIA_RPATH: return "rpath";
	case KW_VIA_LD_LIBRARY_PATH: return "ld_library_path";
	case KW_VIA_RUNPATH: return "runpath";
	case KW_VIA_EXTRA: return "library path";
	case KW_VIA_LDSOCONF: return "ld.so.conf";
	case KW_VIA_DEFAULT: return "default";
	}
	return "unknown";
}

/* ld.so.conf */

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t') {
		s++;
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) {
		*--e = '\0';
	}
	return s;
}

static int parse_conf(struct kw_resolver *r, const char *file, int depth)
{
	char *rooted, *line = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = 0;

	if (depth > MAX_CONF_DEPTH) {
		return 0;
	}
	rooted = kw_ctx_rooted(r->ctx, file);
	if (!rooted) {
		return KW_ENOMEM;
	}
	f = fopen(rooted, "re");
	free(rooted);
	if (!f) {
		return 0;
	}
	while (getline(&line, &cap, f) > 0) {
		char *hash_ch = strchr(line, '#'), *l, *eq;

		if (hash_ch) {
			*hash_ch = '\0';
		}
		l = trim(line);
		if (!*l) {
			continue;
		}
		if (strncmp(l, "include", 7) == 0 && (l[7] == ' ' || l[7] == '\t')) {
			char *pat = trim(l + 8), *full, *rooted_pat;
			const char *slash = strrchr(file, '/');
			glob_t g;
			size_t i, rl = strlen(r->ctx->root);

			/* Relative patterns are relative to the including file's directory. */
			full = pat[0] == '/' ? kw_strdup(pat)
					     : kw_asprintf("%.*s/%s", (int)(slash ? slash - file : 0), file, pat);
			rooted_pat = full ? kw_ctx_rooted(r->ctx, full) : NULL;
			free(full);
			if (!rooted_pat) {
				rc = KW_ENOMEM;
				break;
			}
			if (glob(rooted_pat, 0, NULL, &g) == 0) {
				for (i = 0; i < g.gl_pathc && !rc; i++) {
					rc = parse_conf(r, g.gl_pathv[i] + rl, depth + 1);
				}
				globfree(&g);
			}
			free(rooted_pat);
			continue;
		}
		if (strncmp(l, "hwcap", 5) == 0 && (l[5] == ' ' || l[5] == '\t')) {
			continue;
		}
		/* "DIR=TYPE" is an old libc5 notation; the type is ignored. */
		eq = strchr(l, '=');
		if (eq) {
			*eq = '\0';
		}
		l = trim(l);
		if (l[0] == '/' && kw_strv_push_unique(&r->conf, l)) {
			rc = KW_ENOMEM;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int load_conf(struct kw_resolver *r, struct kw_error *err)
{
	if (r->conf_loaded) {
		return 0;
	}
	r->conf_loaded = true;
	if (parse_conf(r, "/etc/ld.so.conf", 0)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return 0;
}

/* Probing and caching */

static struct info_entry *info_for(struct kw_resolver *r, const char *realpath, bool overlay,
				   const char *probe, int *rc, struct kw_error *err)
{
	size_t h = hash(realpath);
	struct info_entry *ie;
	struct kw_error perr = { 0 };
	int prc;

	for (ie = r->ibuckets[h]; ie; ie = ie->next) {
		if (strcmp(ie->realpath, realpath) == 0) {
			return ie;
		}
	}
	ie = kw_calloc(1, sizeof(*ie));
	if (!ie || !(ie->realpath = kw_strdup(realpath))) {
		free(ie);
		*rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	if (overlay) {
		prc = r->overlay_fn(r->overlay_ud, probe, &ie->info, &perr);
	} else {
		char *rooted = kw_ctx_rooted(r->ctx, realpath);

		prc = rooted ? kw_elf_parse_file(rooted, &ie->info, &perr) : KW_ENOMEM;
		free(rooted);
	}
	if (prc == KW_ENOMEM) {
		free(ie->realpath);
		free(ie);
		*rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	if (prc == KW_ENOTFOUND) {
		/* The overlay has no such member: nothing is there. */
		free(ie->realpath);
		free(ie);
		*rc = 0;
		return NULL;
	}
	if (prc) {
		ie->info = NULL;
		ie->error = kw_strdup(perr.msg);
	}
	ie->next = r->ibuckets[h];
	r->ibuckets[h] = ie;
	return ie;
}

static bool under_overlay(const struct kw_resolver *r, const char *path)
{
	size_t n;

	if (!r->overlay_prefix) {
		return false;
	}
	n = strlen(r->overlay_prefix);
	return strncmp(path, r->overlay_prefix, n) == 0 && path[n] == '/';
}

/* What is at an absolute path (without root)? NULL entry only on allocation failure. */
static struct entry *probe(struct kw_resolver *r, const char *path, struct kw_error *err)
{
	char *norm = kw_strdup(path);
	struct entry *e;
	size_t h;
	int rc = 0;

	if (!norm) {
		kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	if (under_overlay(r, path)) {
		/* Wheel members have no symlinks: lexical folding is the whole story. */
		kw_resolve_normalize(norm);
	}
	h = hash(norm);
	for (e = r->buckets[h]; e; e = e->next) {
		if (strcmp(e->path, norm) == 0) {
			free(norm);
			return e;
		}
	}
	e = kw_calloc(1, sizeof(*e));
	if (!e) {
		free(norm);
		kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	e->path = norm;
	if (under_overlay(r, norm)) {
		e->overlay = true;
		e->ie = info_for(r, norm, true, norm, &rc, err);
	} else {
		int st;
		char *real = kw_resolve_realpath(r->ctx->root, norm, &st);

		if (real) {
			char *rooted = kw_ctx_rooted(r->ctx, real);
			struct stat sb;

			if (rooted && stat(rooted, &sb) == 0 && S_ISREG(sb.st_mode)) {
				e->ie = info_for(r, real, false, norm, &rc, err);
			}
			rc = rooted ? rc : KW_ENOMEM;
			free(rooted);
			free(real);
		} else if (st == KW_ENOMEM) {
			rc = KW_ENOMEM;
		}
	}
	if (rc) {
		free(e->path);
		free(e);
		kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	e->next = r->buckets[h];
	r->buckets[h] = e;
	return e;
}

/* Graph building */

struct node_priv {
	struct kw_strv names;   /* every name it was requested as */
	size_t loader;          /* node that first needed it; SIZE_MAX for the root */
	char *origin;           /* $ORIGIN */
};

struct build {
	struct kw_resolver *r;
	struct kw_dep_graph *g;
	struct node_priv *priv;
	size_t cap;
	const struct kw_elf_info *root_info;
	const char *interp;
};

void kw_dep_graph_free(struct kw_dep_graph *g)
{
	size_t i;

	if (!g) {
		return;
	}
	for (i = 0; i < g->n_nodes; i++) {
		free(g->nodes[i].name);
		free(g->nodes[i].path);
		free(g->nodes[i].realpath);
		free(g->nodes[i].deps);
		free(g->nodes[i].error);
	}
	free(g->nodes);
	free(g);
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');

	if (!s || s == path) {
		return kw_strdup("/");
	}
	return kw_strndup(path, (size_t)(s - path));
}

static int add_node(struct build *b, const char *name, const struct entry *e, enum kw_found_via via,
		    size_t loader, size_t *idx)
{
	struct kw_dep_graph *g = b->g;
	struct kw_dep_node *n;
	size_t oldcap = b->cap;

	if (g->n_nodes >= MAX_NODES) {
		return KW_ELIMIT;
	}
	if (kw_grow(&g->nodes, &b->cap, g->n_nodes + 1, sizeof(*g->nodes))) {
		return KW_ENOMEM;
	}
	if (b->cap != oldcap) {
		struct node_priv *np = kw_realloc(b->priv, b->cap * sizeof(*np));

		if (!np) {
			return KW_ENOMEM;
		}
		b->priv = np;
	}
	n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof(*n));
	memset(&b->priv[g->n_nodes], 0, sizeof(b->priv[0]));
	b->priv[g->n_nodes].loader = loader;
	g->n_nodes++;
	n->via = via;
	n->name = kw_strdup(name);
	if (!n->name || kw_strv_push(&b->priv[g->n_nodes - 1].names, name)) {
		return KW_ENOMEM;
	}
	if (e && e->ie) {
		n->path = kw_strdup(e->path);
		n->realpath = kw_strdup(e->ie->realpath);
		n->info = e->ie->info;
		n->in_overlay = e->overlay;
		b->priv[g->n_nodes - 1].origin = dir_of(e->overlay ? e->path : e->path);
		if (!n->path || !n->realpath || !b->priv[g->n_nodes - 1].origin) {
			return KW_ENOMEM;
		}
	}
	*idx = g->n_nodes - 1;
	return 0;
}

static int add_dep(struct kw_dep_node *n, size_t idx)
{
	size_t *d = kw_realloc(n->deps, (n->n_deps + 1) * sizeof(*d));

	if (!d) {
		return KW_ENOMEM;
	}
	d[n->n_deps++] = idx;
	n->deps = d;
	return 0;
}

/* Is this already-loaded (found) object known by name? */
static long find_loaded(const struct build *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->g->n_nodes; i++) {
		const struct kw_dep_node *n = &b->g->nodes[i];

		if (!n->info) {
			continue;
		}
		if (kw_strv_find(&b->priv[i].names, name) >= 0 || (n->info->soname && strcmp(n->info->soname, name) == 0) ||
		    (n->path && strcmp(n->path, name) == 0)) {
			return (long)i;
		}
	}
	return -1;
}

static const char *const x86_64_subdirs[] = {
	"glibc-hwcaps/x86-64-v4/", "glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/",
	"tls/x86_64/x86_64/", "tls/x86_64/", "tls/", "x86_64/x86_64/", "x86_64/", "",
};
static const char *const plain_subdirs[] = { "" };

/* Try name in one directory (and its hwcaps subdirectories). */
static int try_dir(struct build *b, const char *dir, const char *name, struct entry **found,
		   struct kw_error *err)
{
	bool x86 = b->root_info->machine == EM_X86_64 && b->root_info->elfclass == ELFCLASS64;
	const char *const *subs = x86 ? x86_64_subdirs : plain_subdirs;
	size_t nsubs = x86 ? sizeof(x86_64_subdirs) / sizeof(x86_64_subdirs[0]) : 1;
	size_t i;

	for (i = 0; i < nsubs; i++) {
		char *p;
		struct entry *e;

		if (dir[0] == '/') {
			p = kw_asprintf("%s/%s%s", dir, subs[i], name);
		} else {
			/* Relative and empty entries are relative to the working directory. */
			p = kw_asprintf("%s/%s%s%s%s", b->r->cwd, dir, dir[0] ? "/" : "", subs[i], name);
		}
		if (!p) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		if (!under_overlay(b->r, p)) {
			kw_resolve_normalize(p);
		}
		e = probe(b->r, p, err);
		free(p);
		if (!e) {
			return KW_ENOMEM;
		}
		if (e->ie && e->ie->info && kw_elf_compatible(b->root_info, e->ie->info)) {
			*found = e;
			return 0;
		}
	}
	return 0;
}

/* Try every entry of a colon-separated list, expanding tokens against origin. */
static int try_list(struct build *b, const char *list, const char *origin, const struct kw_elf_info *info,
		    const char *name, struct entry **found, struct kw_error *err)
{
	struct kw_strv parts = { 0 };
	size_t i, n;
	int rc = 0;

	if (kw_strv_split(&parts, list, ':')) {
		kw_strv_release(&parts);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	n = parts.n < b->r->ctx->limits.max_path_entries ? parts.n : b->r->ctx->limits.max_path_entries;
	for (i = 0; i < n && !*found && !rc; i++) {
		char *dir = NULL;

		rc = kw_resolve_expand(parts.v[i], origin, info, &dir, err);
		if (rc == KW_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (!rc) {
			rc = try_dir(b, dir, name, found, err);
		}
		free(dir);
	}
	kw_strv_release(&parts);
	return rc;
}

static const char *default_interp(const struct kw_elf_info *info)
{
	switch (info->machine) {
	case EM_X86_64: return info->elfclass == ELFCLASS64 ? "/lib64/ld-linux-x86-64.so.2" : NULL;
	case EM_386: return "/lib/ld-linux.so.2";
	case EM_AARCH64: return "/lib/ld-linux-aarch64.so.1";
	}
	return NULL;
}

static bool has_runpath(const struct kw_dep_node *n)
{
	return n->info && n->info->runpath;
}

/* The loader's search for a name without a slash, requested by node req. */
static int search(struct build *b, size_t req, const char *name, struct entry **found,
		  enum kw_found_via *via, struct kw_error *err)
{
	const struct kw_dep_node *rn = &b->g->nodes[req];
	const struct kw_ctx *ctx = b->r->ctx;
	bool root_seen = false;
	size_t l, i;
	int rc;

	*found = NULL;
	if (!has_runpath(rn)) {
		for (l = req; l != SIZE_MAX; l = b->priv[l].loader) {
			const struct kw_dep_node *ln = &b->g->nodes[l];

			root_seen = root_seen || l == 0;
			if (ln->info && ln->info->rpath && !ln->info->runpath) {
				rc = try_list(b, ln->info->rpath, b->priv[l].origin, ln->info, name, found, err);
				if (rc || *found) {
					*via = KW_VIA_RPATH;
					return rc;
				}
			}
		}
		if (!root_seen && b->g->nodes[0].info && b->g->nodes[0].info->rpath && !has_runpath(&b->g->nodes[0])) {
			rc = try_list(b, b->g->nodes[0].info->rpath, b->priv[0].origin, b->g->nodes[0].info, name,
				      found, err);
			if (rc || *found) {
				*via = KW_VIA_RPATH;
				return rc;
			}
		}
	}
	if (ctx->ld_library_path && ctx->ld_library_path[0]) {
		char *lp = kw_strdup(ctx->ld_library_path);
		char *p;

		if (!lp) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		/* The loader splits LD_LIBRARY_PATH at ';' as well as ':'. */
		for (p = lp; *p; p++) {
			if (*p == ';') {
				*p = ':';
			}
		}
		rc = try_list(b, lp, b->priv[0].origin, b->g->nodes[0].info, name, found, err);
		free(lp);
		if (rc || *found) {
			*via = KW_VIA_LD_LIBRARY_PATH;
			return rc;
		}
	}
	if (has_runpath(rn)) {
		rc = try_list(b, rn->info->runpath, b->priv[req].origin, rn->info, name, found, err);
		if (rc || *found) {
			*via = KW_VIA_RUNPATH;
			return rc;
		}
	}
	for (i = 0; i < ctx->n_lib_paths; i++) {
		rc = try_dir(b, ctx->lib_paths[i], name, found, err);
		if (rc || *found) {
			*via = KW_VIA_EXTRA;
			return rc;
		}
	}
	if (ctx->no_default_paths || (rn->info && (rn->info->dt_flags_1 & DF_1_NODEFLIB))) {
		return 0;
	}
	rc = load_conf(b->r, err);
	for (i = 0; !rc && i < b->r->conf.n; i++) {
		rc = try_dir(b, b->r->conf.v[i], name, found, err);
		if (rc || *found) {
			*via = KW_VIA_LDSOCONF;
			return rc;
		}
	}
	if (!rc) {
		const char *trip = kw_resolve_triplet(b->root_info);
		char *dirs[4] = {
			kw_asprintf("/lib/%s", trip), kw_asprintf("/usr/lib/%s", trip),
			kw_strdup("/lib"), kw_strdup("/usr/lib"),
		};

		for (i = 0; i < 4; i++) {
			if (!dirs[i]) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
		for (i = 0; !rc && i < 4 && !*found; i++) {
			rc = try_dir(b, dirs[i], name, found, err);
			*via = KW_VIA_DEFAULT;
		}
		for (i = 0; i < 4; i++) {
			free(dirs[i]);
		}
	}
	return rc;
}

/* Where the object at node req gets DT_NEEDED name from; adds the edge. */
static int resolve_one(struct build *b, size_t req, const char *name, struct kw_error *err)
{
	struct entry *found = NULL;
	enum kw_found_via via = KW_VIA_NONE;
	long have;
	size_t idx, i;
	int rc;

	have = find_loaded(b, name);
	if (have >= 0) {
		return add_dep(&b->g->nodes[req], (size_t)have) ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
	}
	if (strchr(name, '/')) {
		char *p = NULL;

		rc = kw_resolve_expand(name, b->priv[req].origin, b->g->nodes[req].info, &p, err);
		if (rc && rc != KW_ENOTFOUND) {
			return rc;
		}
		if (p) {
			char *abs = p[0] == '/' ? p : kw_asprintf("%s/%s", b->r->cwd, p);

			if (!abs) {
				free(p);
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			found = probe(b->r, abs, err);
			if (abs != p) {
				free(abs);
			}
			free(p);
			if (!found) {
				return KW_ENOMEM;
			}
			if (!found->ie || !found->ie->info) {
				found = NULL;
			}
			via = KW_VIA_PATHNAME;
		}
	} else if (b->interp) {
		const char *base = strrchr(b->interp, '/');

		/* The dynamic loader is always loaded and answers to its file name. */
		if (strcmp(base ? base + 1 : b->interp, name) == 0) {
			found = probe(b->r, b->interp, err);
			if (!found) {
				return KW_ENOMEM;
			}
			if (!found->ie || !found->ie->info) {
				found = NULL;
			}
			via = KW_VIA_LOADED;
		}
	}
	if (!found && !strchr(name, '/')) {
		rc = search(b, req, name, &found, &via, err);
		if (rc) {
			return rc;
		}
	}
	if (found) {
		/* The same file under another name is the same object. */
		for (i = 0; i < b->g->n_nodes; i++) {
			if (b->g->nodes[i].realpath && strcmp(b->g->nodes[i].realpath, found->ie->realpath) == 0) {
				if (kw_strv_push(&b->priv[i].names, name) || add_dep(&b->g->nodes[req], i)) {
					return kw_error_set(err, KW_ENOMEM, "out of memory");
				}
				return 0;
			}
		}
	} else {
		for (i = 0; i < b->g->n_nodes; i++) {
			if (!b->g->nodes[i].path && strcmp(b->g->nodes[i].name, name) == 0) {
				return add_dep(&b->g->nodes[req], i) ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
			}
		}
		via = KW_VIA_NONE;
	}
	rc = add_node(b, name, found, via, req, &idx);
	if (rc == KW_ELIMIT) {
		return kw_error_set(err, rc, "dependency graph has more than %d objects", MAX_NODES);
	}
	if (rc || add_dep(&b->g->nodes[req], idx)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return 0;
}

int kw_resolve_tree(struct kw_resolver *r, const char *path, const struct kw_elf_info *info,
		    struct kw_dep_graph **out, struct kw_error *err)
{
	struct build b;
	struct entry *root_e = NULL;
	size_t idx, q, i;
	int rc = KW_ENOMEM;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.r = r;
	b.g = kw_calloc(1, sizeof(*b.g));
	if (!b.g) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	{
		char *abs = path[0] == '/' ? kw_strdup(path) : kw_asprintf("%s/%s", r->cwd, path);

		if (!abs) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		if (!under_overlay(r, abs)) {
			kw_resolve_normalize(abs);
		}
		if (!info) {
			root_e = probe(r, abs, err);
			if (!root_e) {
				free(abs);
				rc = KW_ENOMEM;
				goto out;
			}
			if (!root_e->ie) {
				rc = kw_error_set(err, KW_ENOTFOUND, "cannot open '%s': no such file", path);
				free(abs);
				goto out;
			}
			if (!root_e->ie->info) {
				rc = kw_error_set(err, KW_EFORMAT, "%s", root_e->ie->error ? root_e->ie->error : "not an ELF file");
				free(abs);
				goto out;
			}
			info = root_e->ie->info;
		}
		rc = add_node(&b, path, root_e, KW_VIA_ROOT, SIZE_MAX, &idx);
		if (!rc && !root_e) {
			struct kw_dep_node *n = &b.g->nodes[0];
			int st;

			n->info = info;
			n->path = kw_strdup(abs);
			n->in_overlay = under_overlay(r, abs);
			n->realpath = n->in_overlay ? kw_strdup(abs) : kw_resolve_realpath(r->ctx->root, abs, &st);
			if (!n->realpath) {
				n->realpath = kw_strdup(abs);
			}
			b.priv[0].origin = dir_of(abs);
			rc = (!n->path || !n->realpath || !b.priv[0].origin) ? KW_ENOMEM : 0;
		}
		free(abs);
		if (rc) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	b.root_info = info;
	b.interp = info->interp ? info->interp : default_interp(info);
	/* Breadth first, as the loader maps dependencies. */
	for (q = 0; q < b.g->n_nodes; q++) {
		const struct kw_elf_info *qi = b.g->nodes[q].info;

		if (!qi) {
			continue;
		}
		for (i = 0; i < qi->n_needed; i++) {
			rc = resolve_one(&b, q, qi->needed[i], err);
			if (rc) {
				goto out;
			}
		}
	}
	*out = b.g;
	b.g = NULL;
	rc = 0;
out:
	if (b.priv) {
		size_t n = b.g ? b.g->n_nodes : (*out)->n_nodes;

		for (i = 0; i < n; i++) {
			kw_strv_release(&b.priv[i].names);
			free(b.priv[i].origin);
		}
		free(b.priv);
	}
	kw_dep_graph_free(b.g);
	return rc;
}
