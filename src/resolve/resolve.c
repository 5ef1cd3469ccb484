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
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kwheel/util.h"

#define MAX_NODES 4096
#define MAX_CONF_DEPTH 8
#define MAX_CONF_FILES 1024
#define MAX_LINK_HOPS 40

/*
 * A string-keyed hash table of nodes embedded in the cached structs; it
 * doubles as it fills, so a hostile search path costs a constant per probe.
 */
struct hnode {
	char *key;
	struct hnode *next;
};

struct htab {
	struct hnode **b;
	size_t nb, n;
};

static struct hnode *htab_find(const struct htab *t, const char *key)
{
	struct hnode *n;

	if (!t->nb) {
		return NULL;
	}
	for (n = t->b[(size_t)kw_hash_str(key) & (t->nb - 1)]; n; n = n->next) {
		if (strcmp(n->key, key) == 0) {
			return n;
		}
	}
	return NULL;
}

/* Insert n (its key not present yet); on failure the caller still owns it. */
static int htab_add(struct htab *t, struct hnode *n)
{
	if (t->n >= t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 16, i;
		struct hnode **b;

		if (nb > SIZE_MAX / sizeof(*b) || !(b = kw_calloc(nb, sizeof(*b)))) {
			return KW_ENOMEM;
		}
		for (i = 0; i < t->nb; i++) {
			struct hnode *x = t->b[i], *xn;

			for (; x; x = xn) {
				size_t h = (size_t)kw_hash_str(x->key) & (nb - 1);

				xn = x->next;
				x->next = b[h];
				b[h] = x;
			}
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	{
		size_t h = (size_t)kw_hash_str(n->key) & (t->nb - 1);

		n->next = t->b[h];
		t->b[h] = n;
		t->n++;
	}
	return 0;
}

/* Free every node with fn, then the table. */
static void htab_release(struct htab *t, void (*fn)(struct hnode *))
{
	size_t i;

	for (i = 0; i < t->nb; i++) {
		struct hnode *x = t->b[i], *xn;

		for (; x; x = xn) {
			xn = x->next;
			fn(x);
		}
	}
	free(t->b);
	memset(t, 0, sizeof(*t));
}

/* One parsed object, by real path (without root). */
struct info_entry {
	struct hnode h;           /* key: the real path */
	struct kw_elf_info *info; /* NULL: not a readable ELF file */
	char *error;
	bool borrowed;            /* info is the overlay's, not ours to free */
};

/*
 * A name in a directory, probed once: what it is after symbolic links
 * (type and real path), and for a regular file its parse.
 */
struct dname {
	struct hnode h;         /* key: the file name */
	bool probed;
	mode_t type;            /* S_IFREG, S_IFDIR, ...; 0: nothing (missing, dangling, a loop) */
	const char *real;       /* real path without root while type is not 0 (owned by this entry or its target) */
	char *own;              /* what real points to when this entry owns it */
	bool parsed;
	struct info_entry *ie;  /* regular files, once asked for; NULL: not a readable file */
};

/*
 * A directory by real path, read once: a name that is not listed is not
 * there, without a system call. A directory that cannot be listed (search
 * but no read permission) is probed name by name, each name once.
 */
struct listing {
	struct hnode h;      /* key: real path without root */
	bool listed;
	struct htab names;   /* struct dname */
};

/* A directory as a path names it (not necessarily resolved); its real directory and hwcaps subdirectories. */
struct dir {
	struct hnode h;          /* key: the path */
	struct listing *l;       /* NULL: it is not a directory */
	struct dir *subs[9];     /* x86_64_subdirs[i] below it, once looked at */
};

struct kw_resolver {
	struct kw_ctx *ctx;
	struct kw_strv conf;
	bool conf_loaded;
	char *overlay_prefix;
	kw_resolve_overlay_fn overlay_fn;
	void *overlay_ud;
	struct htab infos;     /* struct info_entry */
	struct htab listings;  /* struct listing */
	struct htab dirs;      /* struct dir */
	uint64_t lookups;      /* (directory, name) lookups so far, against ctx->limits.max_lookups */
	char *cwd;
	/*
	 * While prefetch looks ahead: a parse the search needs is not made but
	 * its path put in wanted (the search then stops with DEFERRED), so the
	 * parses a node's names need can be made side by side on the pool.
	 */
	bool deferring;
	struct kw_strv wanted;
};

/* A search stopped at a parse prefetch makes later (not an enum kw_status: never leaves this file). */
#define DEFERRED 1

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

static void free_info(struct hnode *n)
{
	struct info_entry *ie = (struct info_entry *)n;

	free(ie->h.key);
	free(ie->error);
	if (!ie->borrowed) {
		kw_elf_info_free(ie->info);
	}
	free(ie);
}

static void free_dname(struct hnode *n)
{
	free(((struct dname *)n)->own);
	free(n->key);
	free(n);
}

static void free_listing(struct hnode *n)
{
	struct listing *l = (struct listing *)n;

	htab_release(&l->names, free_dname);
	free(l->h.key);
	free(l);
}

static void free_dir(struct hnode *n)
{
	free(n->key);
	free(n);
}

void kw_resolver_free(struct kw_resolver *r)
{
	if (!r) {
		return;
	}
	htab_release(&r->dirs, free_dir);
	htab_release(&r->listings, free_listing);
	htab_release(&r->infos, free_info);
	kw_strv_release(&r->conf);
	kw_strv_release(&r->wanted);
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
	case KW_VIA_LIBS_DIR: return "libs dir";
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

/*
 * Read one configuration file and what it includes. Each file is read once,
 * by real path under the root (seen): files that include each other would
 * otherwise be read once per path through the include graph, exponentially
 * many times; reading one again could only repeat directories already kept.
 */
static int parse_conf(struct kw_resolver *r, const char *file, int depth, struct kw_strv *seen)
{
	char *rooted = NULL, *real = NULL, *line = NULL;
	size_t cap = 0;
	FILE *f = NULL;
	int rc = 0, st;

	if (depth > MAX_CONF_DEPTH || seen->n >= MAX_CONF_FILES) {
		return 0;
	}
	real = kw_resolve_realpath(r->ctx->root, file, &st);
	if (!real) {
		return st == KW_ENOMEM ? KW_ENOMEM : 0;
	}
	if (kw_strv_find(seen, real) >= 0) {
		free(real);
		return 0;
	}
	if (kw_strv_push_take(seen, real)) {
		free(real);
		return KW_ENOMEM;
	}
	rooted = kw_ctx_rooted(r->ctx, real);
	if (!rooted) {
		return KW_ENOMEM;
	}
	{
		/* Not fopen: a FIFO or a device under the root must not block the search. */
		struct kw_error scratch;
		int fd;

		if (kw_open_regular(rooted, &fd, NULL, &scratch) == 0 && !(f = fdopen(fd, "r"))) {
			close(fd);
		}
	}
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
					rc = parse_conf(r, g.gl_pathv[i] + rl, depth + 1, seen);
				}
				globfree(&g);
			}
			free(rooted_pat);
			if (rc) {
				break;
			}
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
	struct kw_strv seen = { 0 };
	int rc;

	if (r->conf_loaded) {
		return 0;
	}
	r->conf_loaded = true;
	rc = parse_conf(r, "/etc/ld.so.conf", 0, &seen);
	kw_strv_release(&seen);
	if (rc) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return 0;
}

/* Probing and caching */

/*
 * Cache the result of parsing realpath (prc, info, perr; borrowed: the
 * overlay's info): the entry, or NULL with *rc set (then info is freed).
 */
static struct info_entry *cache_info(struct kw_resolver *r, const char *realpath, int prc, struct kw_elf_info *info,
				     bool borrowed, const struct kw_error *perr, int *rc, struct kw_error *err)
{
	struct info_entry *ie = kw_calloc(1, sizeof(*ie));

	if (!ie || !(ie->h.key = kw_strdup(realpath)) ||
	    (prc && !(ie->error = kw_strdup(perr->msg[0] ? perr->msg : "unreadable"))) || prc == KW_ENOMEM) {
		if (!borrowed) {
			kw_elf_info_free(info);
		}
		if (ie) {
			free(ie->h.key);
			free(ie->error);
		}
		free(ie);
		*rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	ie->info = prc ? NULL : info;
	ie->borrowed = borrowed;
	if (prc && !borrowed) {
		kw_elf_info_free(info);
	}
	if (htab_add(&r->infos, &ie->h)) {
		free_info(&ie->h);
		*rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		return NULL;
	}
	return ie;
}

/* A file of the file system parsed: what kw_elf_parse_file says of realpath under the root. */
static int parse_real(const struct kw_resolver *r, const char *realpath, struct kw_elf_info **info,
		      struct kw_error *perr)
{
	char *rooted = kw_ctx_rooted(r->ctx, realpath);
	int prc = rooted ? kw_elf_parse_file(rooted, info, perr) : KW_ENOMEM;

	free(rooted);
	return prc;
}

/*
 * The cached parse of the object at realpath; NULL with *rc 0 if the
 * overlay has no such member. While deferring, a file not parsed yet is
 * put in wanted instead, and *rc is DEFERRED.
 */
static struct info_entry *info_for(struct kw_resolver *r, const char *realpath, bool overlay, int *rc,
				   struct kw_error *err)
{
	struct info_entry *ie = (struct info_entry *)htab_find(&r->infos, realpath);
	struct kw_error perr = { 0 };
	struct kw_elf_info *info = NULL;
	bool borrowed = false;
	int prc;

	*rc = 0;
	if (ie) {
		return ie;
	}
	if (overlay) {
		prc = r->overlay_fn(r->overlay_ud, realpath, &info, &borrowed, &perr);
	} else if (r->deferring) {
		*rc = kw_strv_push_unique(&r->wanted, realpath) ? kw_error_set(err, KW_ENOMEM, "out of memory") : DEFERRED;
		return NULL;
	} else {
		prc = parse_real(r, realpath, &info, &perr);
	}
	if (prc == KW_ENOTFOUND && overlay) {
		/* The overlay has no such member: nothing is there (not cached: asking is cheap). */
		return NULL;
	}
	return cache_info(r, realpath, prc, info, borrowed, &perr, rc, err);
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

/* The wheel member an overlay node is: its path after "<prefix>/" (borrowed from n->path), or NULL. */
static const char *overlay_member(const struct kw_resolver *r, const struct kw_dep_node *n)
{
	return n->in_overlay && n->path && under_overlay(r, n->path) ? n->path + strlen(r->overlay_prefix) + 1 : NULL;
}

/*
 * Path walks recurse once per component and per symbolic link; a hostile
 * root cannot make them deeper than this (the kernel gives up sooner).
 */
#define MAX_WALK_DEPTH 512

static int dir_get(struct kw_resolver *r, const char *path, int depth, struct dir **out, struct kw_error *err);
static int resolve_path(struct kw_resolver *r, const char *path, int depth, mode_t *type, const char **real,
			struct kw_error *err);

static bool special_name(const char *name)
{
	return !name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static char *join(const char *dir, const char *name)
{
	return strcmp(dir, "/") == 0 ? kw_asprintf("/%s", name) : kw_asprintf("%s/%s", dir, name);
}

/*
 * What name in directory l is, symbolic links followed through the same
 * caches: *type 0 if nothing is there. Every name is probed once (one
 * lstat, one readlink for a link); a name not in a complete listing costs
 * nothing. *real is borrowed from the resolver's caches.
 */
static int resolve_name(struct kw_resolver *r, struct listing *l, const char *name, int depth, mode_t *type,
			const char **real, struct kw_error *err)
{
	struct dname *dn = (struct dname *)htab_find(&l->names, name);
	char *full = NULL, *rooted = NULL, *target = NULL;
	struct stat st;
	int rc = 0;

	*type = 0;
	*real = NULL;
	if (special_name(name) || (!dn && l->listed)) {
		return 0;
	}
	if (dn && dn->probed) {
		*type = dn->type;
		*real = dn->real;
		return 0;
	}
	if (depth > MAX_WALK_DEPTH) {
		/* The loader's open would fail (ELOOP): nothing there. Not cached: a shorter walk may reach it. */
		return 0;
	}
	if (!dn) {
		dn = kw_calloc(1, sizeof(*dn));
		if (!dn || !(dn->h.key = kw_strdup(name)) || htab_add(&l->names, &dn->h)) {
			if (dn) {
				free(dn->h.key);
			}
			free(dn);
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	full = join(l->h.key, name);
	rooted = full ? kw_ctx_rooted(r->ctx, full) : NULL;
	if (!rooted) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (lstat(rooted, &st) != 0) {
		goto done;
	}
	if (S_ISLNK(st.st_mode)) {
		char link[PATH_MAX];
		ssize_t n = readlink(rooted, link, sizeof(link) - 1);

		if (n <= 0) {
			goto done;
		}
		link[n] = '\0';
		/* Marked first: a link that leads back to itself finds "nothing" instead of recursing. */
		dn->probed = true;
		if (!strchr(link, '/')) {
			/* The common case, libfoo.so.1 -> libfoo.so.1.2.3: the same directory. */
			rc = resolve_name(r, l, link, depth + 1, &dn->type, &dn->real, err);
		} else {
			/* An absolute target lies under the root, a relative one below this directory. */
			target = link[0] == '/' ? kw_strdup(link) : join(l->h.key, link);
			rc = target ? resolve_path(r, target, depth + 1, &dn->type, &dn->real, err)
				    : kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		if (rc) {
			dn->probed = false;
			goto out;
		}
		goto done;
	}
	dn->type = st.st_mode & S_IFMT;
	dn->own = full;
	dn->real = full;
	full = NULL;
done:
	dn->probed = true;
	*type = dn->type;
	*real = dn->real;
out:
	free(full);
	free(rooted);
	free(target);
	return rc;
}

/* The object named name in l: a regular file's cached parse, or NULL. */
static int lookup_name(struct kw_resolver *r, struct listing *l, const char *name, struct info_entry **ie,
		       struct kw_error *err)
{
	struct dname *dn;
	const char *real;
	mode_t type;
	int rc;

	*ie = NULL;
	rc = resolve_name(r, l, name, 0, &type, &real, err);
	if (rc || type != S_IFREG) {
		return rc;
	}
	dn = (struct dname *)htab_find(&l->names, name);
	if (!dn->parsed) {
		dn->ie = info_for(r, real, false, &rc, err);
		if (rc) {
			return rc;
		}
		dn->parsed = true;
	}
	*ie = dn->ie;
	return 0;
}

/* The listing of a real directory (without root), read once. */
static int listing_get(struct kw_resolver *r, const char *real, struct listing **out, struct kw_error *err)
{
	struct listing *l = (struct listing *)htab_find(&r->listings, real);
	char *rooted;
	DIR *d;

	if (l) {
		*out = l;
		return 0;
	}
	l = kw_calloc(1, sizeof(*l));
	rooted = kw_ctx_rooted(r->ctx, real);
	if (!l || !rooted || !(l->h.key = kw_strdup(real))) {
		goto nomem;
	}
	d = opendir(rooted);
	if (d) {
		struct dirent *de;

		for (;;) {
			struct dname *dn;

			/* Only readdir's own errno tells an error from the end. */
			errno = 0;
			de = readdir(d);
			if (!de) {
				break;
			}
			if (special_name(de->d_name) || htab_find(&l->names, de->d_name)) {
				continue;
			}
			dn = kw_calloc(1, sizeof(*dn));
			if (!dn || !(dn->h.key = kw_strdup(de->d_name)) || htab_add(&l->names, &dn->h)) {
				if (dn) {
					free(dn->h.key);
				}
				free(dn);
				closedir(d);
				goto nomem;
			}
		}
		/* A listing cut short says nothing about the names it did not reach: probe them. */
		l->listed = errno == 0;
		closedir(d);
	} else {
		/* Gone since it was found: nothing below it. Unreadable: probe each name. */
		l->listed = errno == ENOENT || errno == ENOTDIR;
	}
	free(rooted);
	if (htab_add(&r->listings, &l->h)) {
		free_listing(&l->h);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	*out = l;
	return 0;
nomem:
	free(rooted);
	if (l) {
		free_listing(&l->h);
	}
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

/*
 * The directory an absolute path (without root) names, or d->l NULL if it
 * names none: resolved component by component through the parent's
 * listing, so every directory entry on the way is probed once for all paths.
 */
static int dir_get(struct kw_resolver *r, const char *path, int depth, struct dir **out, struct kw_error *err)
{
	struct dir *d = (struct dir *)htab_find(&r->dirs, path);
	const char *slash = strrchr(path, '/'), *base;
	char *parent = NULL;
	int rc = 0;

	if (d) {
		*out = d;
		return 0;
	}
	d = kw_calloc(1, sizeof(*d));
	if (!d || !(d->h.key = kw_strdup(path))) {
		free(d);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	base = slash ? slash + 1 : path;
	if (strcmp(path, "/") == 0) {
		rc = listing_get(r, "/", &d->l, err);
	} else if (slash && depth <= MAX_WALK_DEPTH && strlen(path) < PATH_MAX) {
		struct dir *pd;

		parent = slash == path ? kw_strdup("/") : kw_strndup(path, (size_t)(slash - path));
		rc = parent ? dir_get(r, parent, depth + 1, &pd, err) : kw_error_set(err, KW_ENOMEM, "out of memory");
		if (!rc && pd->l) {
			if (!base[0] || strcmp(base, ".") == 0) {
				d->l = pd->l;
			} else if (strcmp(base, "..") == 0) {
				char *up = kw_strdup(pd->l->h.key), *s;

				if (!up) {
					rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				} else {
					/* The parent's real path is resolved: ".." is lexical on it, and stops at "/". */
					s = strrchr(up, '/');
					if (s == up) {
						up[1] = '\0';
					} else if (s) {
						*s = '\0';
					}
					rc = listing_get(r, up, &d->l, err);
					free(up);
				}
			} else {
				const char *real;
				mode_t type;

				rc = resolve_name(r, pd->l, base, depth, &type, &real, err);
				if (!rc && type == S_IFDIR) {
					rc = listing_get(r, real, &d->l, err);
				}
			}
		}
	}
	free(parent);
	if (rc || htab_add(&r->dirs, &d->h)) {
		free_dir(&d->h);
		return rc ? rc : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	*out = d;
	return 0;
}

/* What an absolute path (without root) is, as resolve_name says it. */
static int resolve_path(struct kw_resolver *r, const char *path, int depth, mode_t *type, const char **real,
			struct kw_error *err)
{
	const char *slash = strrchr(path, '/');
	char *parent;
	struct dir *d;
	int rc;

	*type = 0;
	*real = NULL;
	if (!slash) {
		return 0;
	}
	if (special_name(slash + 1)) {
		/* "dir/..", "dir/.", "dir/": a directory or nothing. */
		rc = dir_get(r, path, depth + 1, &d, err);
		if (!rc && d->l) {
			*type = S_IFDIR;
			*real = d->l->h.key;
		}
		return rc;
	}
	parent = slash == path ? kw_strdup("/") : kw_strndup(path, (size_t)(slash - path));
	if (!parent) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	rc = dir_get(r, parent, depth + 1, &d, err);
	free(parent);
	if (rc || !d->l) {
		return rc;
	}
	return resolve_name(r, d->l, slash + 1, depth, type, real, err);
}

/* What is at an absolute filesystem path (without root): the object there, or NULL. */
static int probe_fs(struct kw_resolver *r, const char *path, struct info_entry **ie, struct kw_error *err)
{
	const char *slash = strrchr(path, '/');
	const char *real;
	mode_t type;
	int rc;

	*ie = NULL;
	if (slash && !special_name(slash + 1)) {
		char *parent = slash == path ? kw_strdup("/") : kw_strndup(path, (size_t)(slash - path));
		struct dir *d;

		if (!parent) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		rc = dir_get(r, parent, 0, &d, err);
		free(parent);
		/* Through lookup_name, so the parse is remembered with the name. */
		return rc || !d->l ? rc : lookup_name(r, d->l, slash + 1, ie, err);
	}
	rc = resolve_path(r, path, 0, &type, &real, err);
	if (rc || type != S_IFREG) {
		return rc;
	}
	*ie = info_for(r, real, false, &rc, err);
	return rc;
}

/*
 * What is at an absolute path (without root): *ie is the object there, or
 * NULL if nothing usable is; *overlay says the overlay served it.
 */
static int probe(struct kw_resolver *r, const char *path, struct info_entry **ie, bool *overlay,
		 struct kw_error *err)
{
	char *norm;
	int rc = 0;

	*ie = NULL;
	*overlay = false;
	if (!under_overlay(r, path)) {
		return probe_fs(r, path, ie, err);
	}
	/* Wheel members have no symlinks: lexical folding is the whole story. */
	norm = kw_strdup(path);
	if (!norm) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	kw_resolve_normalize(norm);
	if (under_overlay(r, norm)) {
		*overlay = true;
		*ie = info_for(r, norm, true, &rc, err);
	} else {
		rc = probe_fs(r, norm, ie, err);
	}
	free(norm);
	return rc;
}

/* One more (directory, name) lookup, or the clear error that there were too many. */
static int count_lookup(struct kw_resolver *r, const char *root_path, struct kw_error *err)
{
	if (++r->lookups > r->ctx->limits.max_lookups) {
		return kw_error_set(err, KW_ELIMIT,
				    "'%s': more than %llu library lookups (needed libraries times search path entries)",
				    root_path, (unsigned long long)r->ctx->limits.max_lookups);
	}
	return 0;
}

/* Graph building */

/* A candidate the search settled on. */
struct hit {
	char *path;             /* as the loader opened it (owned); NULL: nothing found */
	struct info_entry *ie;
	bool overlay;
};

struct node_priv {
	struct kw_strv names;   /* every name it was requested as */
	size_t loader;          /* node that first needed it; SIZE_MAX for the root */
	char *origin;           /* $ORIGIN */
	struct kw_strv rpath;   /* DT_RPATH and DT_RUNPATH, expanded once: absolute, normalised */
	struct kw_strv runpath;
	bool rpath_done, runpath_done;
};

struct build {
	struct kw_resolver *r;
	struct kw_dep_graph *g;
	struct node_priv *priv;
	size_t cap;
	const struct kw_elf_info *root_info;
	const char *interp;
	const char *root_path;     /* for the error when lookups run out */
	struct kw_strv ld_path;    /* LD_LIBRARY_PATH expanded against the root */
	bool ld_path_done;
	/*
	 * Every name a found node answers to (the names it was asked by, its
	 * soname, its path) to the first node that answers to it: the lookup
	 * of each DT_NEEDED of each node, which was a scan of the nodes.
	 */
	struct kw_strmap loaded;
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

/* Node i is found: find_loaded answers with it for the name it was asked by, its soname and its path. */
static int know_node(struct build *b, size_t i)
{
	const struct kw_dep_node *n = &b->g->nodes[i];

	if (kw_strmap_add(&b->loaded, b->priv[i].names.v[0], i) < 0 ||
	    (n->info->soname && kw_strmap_add(&b->loaded, n->info->soname, i) < 0) ||
	    kw_strmap_add(&b->loaded, n->path, i) < 0) {
		return KW_ENOMEM;
	}
	return 0;
}

static int add_node(struct build *b, const char *name, const struct hit *h, enum kw_found_via via,
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
	if (h && h->ie) {
		n->path = kw_strdup(h->path);
		n->realpath = kw_strdup(h->ie->h.key);
		n->info = h->ie->info;
		n->in_overlay = h->overlay;
		b->priv[g->n_nodes - 1].origin = dir_of(h->path);
		if (!n->path || !n->realpath || !b->priv[g->n_nodes - 1].origin) {
			return KW_ENOMEM;
		}
		n->member = overlay_member(b->r, n);
		if (know_node(b, g->n_nodes - 1)) {
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

/*
 * Is this already-loaded (found) object known by name? The first node that
 * is, as a scan would find: a node's keys are added when it is made, in
 * node order, and a name added later (resolve_one) is one no node had.
 */
static long find_loaded(const struct build *b, const char *name)
{
	return kw_strmap_get(&b->loaded, name);
}

static const char *const x86_64_subdirs[] = {
	"glibc-hwcaps/x86-64-v4/", "glibc-hwcaps/x86-64-v3/", "glibc-hwcaps/x86-64-v2/",
	"tls/x86_64/x86_64/", "tls/x86_64/", "tls/", "x86_64/x86_64/", "x86_64/", "",
};
static const char *const plain_subdirs[] = { "" };

/* dir as an absolute, lexically normalised path: relative and empty entries are relative to the working directory. */
static char *abs_dir(const struct build *b, const char *dir)
{
	char *p = dir[0] == '/' ? kw_strdup(dir) : kw_asprintf("%s/%s", b->r->cwd, dir);

	if (p && !under_overlay(b->r, p)) {
		kw_resolve_normalize(p);
	}
	return p;
}

/* Does the candidate do? Sets found (taking path) if so, frees path otherwise. */
static void take_if_compatible(struct build *b, char *path, struct info_entry *ie, bool overlay, struct hit *found)
{
	if (ie && ie->info && kw_elf_compatible(b->root_info, ie->info)) {
		found->path = path;
		found->ie = ie;
		found->overlay = overlay;
		return;
	}
	free(path);
}

/*
 * Try name in one directory (absolute, normalised) and its hwcaps
 * subdirectories. Outside the overlay no path is built unless the name is
 * listed there: the directory and its subdirectories are looked up once.
 */
static int try_dir(struct build *b, const char *dir, const char *name, struct hit *found, struct kw_error *err)
{
	bool x86 = b->root_info->machine == EM_X86_64 && b->root_info->elfclass == ELFCLASS64;
	const char *const *subs = x86 ? x86_64_subdirs : plain_subdirs;
	size_t nsubs = x86 ? sizeof(x86_64_subdirs) / sizeof(x86_64_subdirs[0]) : 1;
	struct kw_resolver *r = b->r;
	const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
	struct dir *d = NULL;
	size_t i;
	int rc;

	rc = count_lookup(r, b->root_path, err);
	if (rc) {
		return rc;
	}
	if (special_name(name)) {
		return 0;
	}
	if (!r->overlay_prefix || !(under_overlay(r, dir) || strcmp(dir, r->overlay_prefix) == 0)) {
		rc = dir_get(r, dir, 0, &d, err);
		if (rc || !d->l) {
			/* Nothing below a directory that is not there. */
			return rc;
		}
	}
	for (i = 0; i < nsubs && !found->path; i++) {
		struct info_entry *ie = NULL;
		bool overlay = false;
		char *p;

		if (d) {
			struct dir *sd = d;

			if (subs[i][0]) {
				if (!d->subs[i]) {
					char *sp = kw_asprintf("%s%s%.*s", dir, sep, (int)strlen(subs[i]) - 1, subs[i]);

					rc = sp ? dir_get(r, sp, 0, &d->subs[i], err) : kw_error_set(err, KW_ENOMEM, "out of memory");
					free(sp);
					if (rc) {
						return rc;
					}
				}
				sd = d->subs[i];
			}
			if (!sd->l) {
				continue;
			}
			rc = lookup_name(r, sd->l, name, &ie, err);
			if (rc) {
				return rc;
			}
			if (!ie) {
				continue;
			}
		}
		p = kw_asprintf("%s%s%s%s", dir, sep, subs[i], name);
		if (!p) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		if (!d) {
			rc = probe(r, p, &ie, &overlay, err);
			if (rc) {
				free(p);
				return rc;
			}
		}
		take_if_compatible(b, p, ie, overlay, found);
	}
	return 0;
}

/* Split and expand a colon-separated list once, against origin, into absolute normalised directories. */
static int expand_list(struct build *b, const char *list, const char *origin, const struct kw_elf_info *info,
		       struct kw_strv *out, struct kw_error *err)
{
	struct kw_strv parts = { 0 };
	size_t i, n;
	int rc = 0;

	if (kw_strv_split(&parts, list, ':')) {
		kw_strv_release(&parts);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	n = parts.n < b->r->ctx->limits.max_path_entries ? parts.n : b->r->ctx->limits.max_path_entries;
	for (i = 0; i < n && !rc; i++) {
		char *dir = NULL;

		rc = kw_resolve_expand(parts.v[i], origin, info, &dir, err);
		if (rc == KW_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (!rc) {
			char *a = abs_dir(b, dir);

			rc = kw_strv_push_own(out, a) ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
		}
		free(dir);
	}
	kw_strv_release(&parts);
	return rc;
}

static int try_dirs(struct build *b, const struct kw_strv *dirs, const char *name, struct hit *found,
		    struct kw_error *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < dirs->n && !found->path && !rc; i++) {
		rc = try_dir(b, dirs->v[i], name, found, err);
	}
	return rc;
}

/* A node's DT_RPATH or DT_RUNPATH as directories, expanded the first time it is searched. */
static int node_list(struct build *b, size_t l, bool runpath, const struct kw_strv **out, struct kw_error *err)
{
	struct node_priv *p = &b->priv[l];
	const struct kw_elf_info *info = b->g->nodes[l].info;
	bool *done = runpath ? &p->runpath_done : &p->rpath_done;
	struct kw_strv *sv = runpath ? &p->runpath : &p->rpath;
	int rc = 0;

	if (!*done) {
		rc = expand_list(b, runpath ? info->runpath : info->rpath, p->origin, info, sv, err);
		if (rc) {
			return rc;
		}
		*done = true;
	}
	*out = sv;
	return 0;
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

/* Try each directory given one by one (not expanded: ld.so.conf, --library-path dirs, defaults). */
static int try_plain(struct build *b, const char *dir, const char *name, struct hit *found, struct kw_error *err)
{
	char *a = abs_dir(b, dir);
	int rc;

	if (!a) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	rc = try_dir(b, a, name, found, err);
	free(a);
	return rc;
}

/* The loader's search for a name without a slash, requested by node req. */
static int search(struct build *b, size_t req, const char *name, struct hit *found, enum kw_found_via *via,
		  struct kw_error *err)
{
	const struct kw_dep_node *rn = &b->g->nodes[req];
	const struct kw_ctx *ctx = b->r->ctx;
	const struct kw_strv *dirs;
	bool root_seen = false;
	size_t l, i;
	int rc;

	if (!has_runpath(rn)) {
		for (l = req; l != SIZE_MAX; l = b->priv[l].loader) {
			const struct kw_dep_node *ln = &b->g->nodes[l];

			root_seen = root_seen || l == 0;
			if (ln->info && ln->info->rpath && !ln->info->runpath) {
				rc = node_list(b, l, false, &dirs, err);
				rc = rc ? rc : try_dirs(b, dirs, name, found, err);
				if (rc || found->path) {
					*via = KW_VIA_RPATH;
					return rc;
				}
			}
		}
		if (!root_seen && b->g->nodes[0].info && b->g->nodes[0].info->rpath && !has_runpath(&b->g->nodes[0])) {
			rc = node_list(b, 0, false, &dirs, err);
			rc = rc ? rc : try_dirs(b, dirs, name, found, err);
			if (rc || found->path) {
				*via = KW_VIA_RPATH;
				return rc;
			}
		}
	}
	if (ctx->ld_library_path && ctx->ld_library_path[0]) {
		if (!b->ld_path_done) {
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
			rc = expand_list(b, lp, b->priv[0].origin, b->g->nodes[0].info, &b->ld_path, err);
			free(lp);
			if (rc) {
				return rc;
			}
			b->ld_path_done = true;
		}
		rc = try_dirs(b, &b->ld_path, name, found, err);
		if (rc || found->path) {
			*via = KW_VIA_LD_LIBRARY_PATH;
			return rc;
		}
	}
	if (has_runpath(rn)) {
		rc = node_list(b, req, true, &dirs, err);
		rc = rc ? rc : try_dirs(b, dirs, name, found, err);
		if (rc || found->path) {
			*via = KW_VIA_RUNPATH;
			return rc;
		}
	}
	for (i = 0; i < ctx->n_lib_paths; i++) {
		rc = try_plain(b, ctx->lib_paths[i], name, found, err);
		if (rc || found->path) {
			*via = KW_VIA_EXTRA;
			return rc;
		}
	}
	if (ctx->no_default_paths || (rn->info && (rn->info->dt_flags_1 & DF_1_NODEFLIB))) {
		return 0;
	}
	rc = load_conf(b->r, err);
	for (i = 0; !rc && i < b->r->conf.n; i++) {
		rc = try_plain(b, b->r->conf.v[i], name, found, err);
		if (rc || found->path) {
			*via = KW_VIA_LDSOCONF;
			return rc;
		}
	}
	if (!rc) {
		const char *trip = kw_resolve_triplet(b->root_info);
		char *dirs4[4] = {
			kw_asprintf("/lib/%s", trip), kw_asprintf("/usr/lib/%s", trip),
			kw_strdup("/lib"), kw_strdup("/usr/lib"),
		};

		for (i = 0; i < 4; i++) {
			if (!dirs4[i]) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
		for (i = 0; !rc && i < 4 && !found->path; i++) {
			rc = try_plain(b, dirs4[i], name, found, err);
			*via = KW_VIA_DEFAULT;
		}
		for (i = 0; i < 4; i++) {
			free(dirs4[i]);
		}
	}
	return rc;
}

/* found = what is at path, if it is a readable ELF object (path is taken). */
static int probe_hit(struct build *b, char *path, struct hit *found, struct kw_error *err)
{
	struct info_entry *ie = NULL;
	bool overlay = false;
	int rc = count_lookup(b->r, b->root_path, err);

	rc = rc ? rc : probe(b->r, path, &ie, &overlay, err);
	if (rc || !ie || !ie->info) {
		free(path);
		return rc;
	}
	found->path = path;
	found->ie = ie;
	found->overlay = overlay;
	return 0;
}

/* The parses prefetch makes on the pool, each into its own slot. */
struct parse_job {
	const struct kw_resolver *r;
	struct kw_elf_info **info;
	int *prc;
	struct kw_error *perr;
};

static void parse_one(void *ud, size_t i)
{
	struct parse_job *j = ud;

	j->prc[i] = parse_real(j->r, j->r->wanted.v[i], &j->info[i], &j->perr[i]);
}

/* Parse every path in r->wanted side by side and cache the results in its order; wanted is emptied. */
static int parse_wanted(struct kw_resolver *r, struct kw_error *err)
{
	size_t n = r->wanted.n, i;
	struct parse_job j = { r, kw_calloc(n, sizeof(*j.info)), kw_calloc(n, sizeof(*j.prc)),
			       kw_calloc(n, sizeof(*j.perr)) };
	int rc = 0;

	if (!j.info || !j.prc || !j.perr) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
	} else {
		kw_pool_run(r->ctx->pool, n, parse_one, &j);
		for (i = 0; i < n; i++) {
			if (rc) {
				kw_elf_info_free(j.info[i]);
			} else {
				(void)cache_info(r, r->wanted.v[i], j.prc[i], j.info[i], false, &j.perr[i], &rc, err);
			}
		}
	}
	kw_strv_release(&r->wanted);
	free(j.info);
	free(j.prc);
	free(j.perr);
	return rc;
}

/*
 * Before the names of nodes q0..q1-1 (one level of the breadth-first walk)
 * are resolved one by one: the files their searches will parse, parsed side
 * by side. Each name's search runs as resolve_one will run it, but stops
 * where it needs a parse not yet cached; those are made on the pool and the
 * searches run again, until none stops (a candidate that is not a
 * compatible object sends its search on to the next) or a few rounds have
 * passed. Only caches change (parses and directory listings: those the
 * searches will make, and a few they may not, where a name is found loaded
 * by the time its node's turn comes), and the count of lookups is put back,
 * so what resolve_one then finds is what it finds without this, only
 * sooner. A whole level at a time, not a node: past the first level most
 * nodes add a library or two, too few to fill the pool alone.
 */
static int prefetch(struct build *b, size_t q0, size_t q1, struct kw_error *err)
{
	struct kw_resolver *r = b->r;
	uint64_t lookups = r->lookups;
	size_t i, q, round;
	int rc = 0;

	if (!r->ctx->pool || kw_pool_threads(r->ctx->pool) < 2) {
		return 0;
	}
	for (round = 0; round < 4 && !rc; round++) {
		bool stopped = false;

		r->deferring = true;
		for (q = q0; q < q1 && !rc; q++) {
			const struct kw_elf_info *qi = b->g->nodes[q].info;

			for (i = 0; qi && i < qi->n_needed && !rc; i++) {
				const char *name = qi->needed[i];
				struct hit found = { NULL, NULL, false };
				enum kw_found_via via = KW_VIA_NONE;
				struct kw_error serr = { 0 };
				int src;

				/* Names with a slash and the loader's own are probed, not searched: resolve_one's. */
				if (find_loaded(b, name) >= 0 || strchr(name, '/') ||
				    (b->interp && strcmp(strrchr(b->interp, '/') ? strrchr(b->interp, '/') + 1 : b->interp,
							 name) == 0)) {
					continue;
				}
				src = search(b, q, name, &found, &via, &serr);
				free(found.path);
				stopped = stopped || src == DEFERRED;
				/* A real failure is resolve_one's to report; out of memory is everyone's. */
				if (src == KW_ENOMEM) {
					rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				}
			}
		}
		r->deferring = false;
		r->lookups = lookups;
		if (!rc && r->wanted.n >= 2) {
			rc = parse_wanted(r, err);
		} else {
			/* One parse gains nothing from the pool: resolve_one makes it. */
			kw_strv_release(&r->wanted);
			break;
		}
		if (!stopped) {
			break;
		}
	}
	return rc;
}

/* Where the object at node req gets DT_NEEDED name from; adds the edge. */
static int resolve_one(struct build *b, size_t req, const char *name, struct kw_error *err)
{
	struct hit found = { NULL, NULL, false };
	enum kw_found_via via = KW_VIA_NONE;
	long have;
	size_t idx, i;
	int rc = 0;

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
		rc = 0;
		if (p) {
			char *abs = p[0] == '/' ? p : kw_asprintf("%s/%s", b->r->cwd, p);

			if (abs != p) {
				free(p);
			}
			if (!abs) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			rc = probe_hit(b, abs, &found, err);
			via = KW_VIA_PATHNAME;
		}
	} else if (b->interp) {
		const char *base = strrchr(b->interp, '/');

		/* The dynamic loader is always loaded and answers to its file name. */
		if (strcmp(base ? base + 1 : b->interp, name) == 0) {
			char *ip = kw_strdup(b->interp);

			rc = ip ? probe_hit(b, ip, &found, err) : kw_error_set(err, KW_ENOMEM, "out of memory");
			via = KW_VIA_LOADED;
		}
	}
	if (!rc && !found.path && !strchr(name, '/')) {
		rc = search(b, req, name, &found, &via, err);
	}
	if (rc) {
		goto out;
	}
	if (found.path) {
		/* The same file under another name is the same object. */
		for (i = 0; i < b->g->n_nodes; i++) {
			if (b->g->nodes[i].realpath && strcmp(b->g->nodes[i].realpath, found.ie->h.key) == 0) {
				if (kw_strv_push(&b->priv[i].names, name) ||
				    kw_strmap_add(&b->loaded, b->priv[i].names.v[b->priv[i].names.n - 1], i) < 0 ||
				    add_dep(&b->g->nodes[req], i)) {
					rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				}
				goto out;
			}
		}
	} else {
		for (i = 0; i < b->g->n_nodes; i++) {
			if (!b->g->nodes[i].path && strcmp(b->g->nodes[i].name, name) == 0) {
				rc = add_dep(&b->g->nodes[req], i) ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
				goto out;
			}
		}
		via = KW_VIA_NONE;
	}
	rc = add_node(b, name, found.path ? &found : NULL, via, req, &idx);
	if (rc == KW_ELIMIT) {
		rc = kw_error_set(err, rc, "dependency graph has more than %d objects", MAX_NODES);
		goto out;
	}
	if (rc || add_dep(&b->g->nodes[req], idx)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(found.path);
	return rc;
}

/* The error for a root path that holds no object: not there, or not a regular file. */
static int root_error(struct kw_resolver *r, const char *path, const char *abs, struct kw_error *err)
{
	int st;
	char *real = kw_resolve_realpath(r->ctx->root, abs, &st), *rooted = real ? kw_ctx_rooted(r->ctx, real) : NULL;
	struct stat sb;
	bool odd = rooted && stat(rooted, &sb) == 0 && !S_ISREG(sb.st_mode);

	free(real);
	free(rooted);
	if (odd) {
		return kw_error_set(err, KW_EFORMAT, "'%s': not a regular file", path);
	}
	return kw_error_set(err, KW_ENOTFOUND, "cannot open '%s': no such file", path);
}

int kw_resolve_tree(struct kw_resolver *r, const char *path, const struct kw_elf_info *info,
		    struct kw_dep_graph **out, struct kw_error *err)
{
	struct build b;
	struct hit root_h = { NULL, NULL, false };
	char *abs = NULL;
	size_t idx, q, i, level_end;
	int rc = KW_ENOMEM;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.r = r;
	b.root_path = path;
	b.g = kw_calloc(1, sizeof(*b.g));
	abs = path[0] == '/' ? kw_strdup(path) : kw_asprintf("%s/%s", r->cwd, path);
	if (!b.g || !abs) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (!under_overlay(r, abs)) {
		kw_resolve_normalize(abs);
	}
	if (!info) {
		rc = probe(r, abs, &root_h.ie, &root_h.overlay, err);
		if (rc) {
			goto out;
		}
		if (!root_h.ie) {
			rc = root_error(r, path, abs, err);
			goto out;
		}
		if (!root_h.ie->info) {
			rc = kw_error_set(err, KW_EFORMAT, "%s", root_h.ie->error ? root_h.ie->error : "not an ELF file");
			goto out;
		}
		root_h.path = abs;
		info = root_h.ie->info;
	}
	rc = add_node(&b, path, root_h.path ? &root_h : NULL, KW_VIA_ROOT, SIZE_MAX, &idx);
	if (!rc && !root_h.path) {
		struct kw_dep_node *n = &b.g->nodes[0];
		int st;

		n->info = info;
		n->path = kw_strdup(abs);
		n->in_overlay = under_overlay(r, abs);
		n->realpath = n->in_overlay ? kw_strdup(abs) : kw_resolve_realpath(r->ctx->root, abs, &st);
		if (!n->realpath) {
			n->realpath = kw_strdup(abs);
		}
		n->member = overlay_member(r, n);
		b.priv[0].origin = dir_of(abs);
		rc = (!n->path || !n->realpath || !b.priv[0].origin || know_node(&b, 0)) ? KW_ENOMEM : 0;
	}
	if (rc) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	b.root_info = info;
	b.interp = info->interp ? info->interp : default_interp(info);
	/* Breadth first, as the loader maps dependencies; each level's parses prefetched together. */
	for (q = 0, level_end = 0; q < b.g->n_nodes; q++) {
		const struct kw_elf_info *qi = b.g->nodes[q].info;

		if (q == level_end) {
			level_end = b.g->n_nodes;
			rc = prefetch(&b, q, level_end, err);
			if (rc) {
				goto out;
			}
		}
		if (!qi) {
			continue;
		}
		for (i = 0; !rc && i < qi->n_needed; i++) {
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
			kw_strv_release(&b.priv[i].rpath);
			kw_strv_release(&b.priv[i].runpath);
			free(b.priv[i].origin);
		}
		free(b.priv);
	}
	kw_strv_release(&b.ld_path);
	kw_strmap_release(&b.loaded);
	kw_dep_graph_free(b.g);
	free(abs);
	return rc;
}
