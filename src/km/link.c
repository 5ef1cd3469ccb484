/* SPDX-License-Identifier: MIT */
/* The link of a static CPython from converted wheels, with its own lib-dynload modules converted too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/km.h"

#include "internal.h"

extern const unsigned char kw_km_runtime[];
extern const size_t kw_km_runtime_len;

/* Run argv (kw_run); its stdout, when out is not NULL, as a new string in *out. */
static int run(char *const *argv, char **out, struct kw_error *err)
{
	struct kw_buf b = { 0 };
	int rc = kw_run(argv, out ? &b : NULL, NULL, err);

	if (!rc && out) {
		*out = kw_buf_take(&b);
		if (!*out) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	kw_buf_release(&b);
	return rc;
}

/* A whole file written at a temporary and renamed into place. */
static int write_text(const char *path, const void *data, size_t len, struct kw_error *err)
{
	struct km_out o;
	int rc = km_out_open(&o, path, err);

	if (!rc) {
		rc = km_out_write(&o, data, len, err);
	}
	if (!rc) {
		rc = km_out_commit(&o, err);
	}
	km_out_discard(&o);
	return rc;
}

/*
 * One object of the interpreter's lib-dynload set: a module, or a library
 * one of them needs that a static link does not provide (libffi for
 * _ctypes, OpenSSL for _ssl and _hashlib, ...), converted as --deps
 * converts a wheel's.
 */
struct dyn_obj {
	char *path;            /* the file (a library: its real path) */
	char *id;              /* lib-dynload/<file> for modules, the file name for libraries */
	bool lib;
	bool plugin;           /* a module some library loads by path */
	char *soname;          /* a library: its DT_SONAME, or the DT_NEEDED name that found it */
	size_t *libs;          /* a module: its libraries (indexes), dependencies first */
	size_t n_libs;
	int state;             /* 0 not converted, 1 converted, 2 failed */
};

struct dyn_plan {
	struct dyn_obj *v;
	size_t n, cap;
	struct kw_strv runtime, runtime_done;
	struct kw_strv flags;  /* static libraries the libraries need (-lresolv for libkrb5, ...) */
	struct kw_km_cache *cache; /* borrowed: the wheels' conversions, or NULL */
};

static void dyn_plan_release(struct dyn_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->v[i].path);
		free(p->v[i].id);
		free(p->v[i].soname);
		free(p->v[i].libs);
	}
	free(p->v);
	kw_strv_release(&p->runtime);
	kw_strv_release(&p->runtime_done);
	kw_strv_release(&p->flags);
	memset(p, 0, sizeof(*p));
}

static struct dyn_obj *dyn_add(struct dyn_plan *p, const char *path, const char *id, bool lib)
{
	struct dyn_obj *o;

	if (kw_grow(&p->v, &p->cap, p->n + 1, sizeof(*p->v))) {
		return NULL;
	}
	o = &p->v[p->n];
	memset(o, 0, sizeof(*o));
	o->lib = lib;
	if (!(o->path = kw_strdup(path)) || !(o->id = kw_strdup(id))) {
		free(o->path);
		free(o->id);
		return NULL;
	}
	p->n++;
	return o;
}

static bool node_provided(const struct kw_dep_node *d)
{
	return kw_km_static_provided(d->name) || (d->info && d->info->soname && kw_km_static_provided(d->info->soname));
}

/* Post-order over g from node k: the libraries of a module, each after what it needs, into *libs. */
static int dyn_walk(struct dyn_plan *p, const struct kw_dep_graph *g, size_t k, unsigned char *seen, size_t **libs,
		    size_t *n_libs, size_t *cap)
{
	const struct kw_dep_node *d = &g->nodes[k];
	const char *key, *base;
	size_t i;
	long at = -1;
	int rc;

	seen[k] = 1;
	for (i = 0; i < d->n_deps; i++) {
		size_t c = d->deps[i];

		if (c < g->n_nodes && !seen[c] && !node_provided(&g->nodes[c]) &&
		    (rc = dyn_walk(p, g, c, seen, libs, n_libs, cap))) {
			return rc;
		}
	}
	if (k == 0) {
		return 0;
	}
	key = d->realpath ? d->realpath : d->path;
	for (i = 0; i < p->n; i++) {
		if (p->v[i].lib && strcmp(p->v[i].path, key) == 0) {
			at = (long)i;
		}
	}
	if (at < 0) {
		base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
		if (!dyn_add(p, key, base, true) ||
		    !(p->v[p->n - 1].soname = kw_strdup(d->info && d->info->soname ? d->info->soname : d->name))) {
			return KW_ENOMEM;
		}
		at = (long)p->n - 1;
	}
	if (kw_grow(libs, cap, *n_libs + 1, sizeof(**libs))) {
		return KW_ENOMEM;
	}
	(*libs)[(*n_libs)++] = (size_t)at;
	return 0;
}

/*
 * Plan the module at path: alone if a static link provides all it needs,
 * else with its libraries resolved as the loader would. false (nothing
 * planned) if one of them cannot be found or read.
 */
static int dyn_plan_module(struct dyn_plan *p, struct kw_resolver *r, const char *path, const char *id,
			   bool *ok, struct kw_error *err)
{
	struct kw_elf_info *info = NULL;
	struct kw_dep_graph *g = NULL;
	struct kw_error e2 = { 0 };
	unsigned char *seen = NULL;
	size_t *libs = NULL, n_libs = 0, cap = 0, k;
	bool all_static = true;
	struct dyn_obj *o;
	int rc = 0;

	*ok = false;
	if (kw_elf_parse_file(path, &info, &e2) != 0) {
		return 0;
	}
	for (k = 0; k < info->n_needed; k++) {
		all_static = all_static && kw_km_static_provided(info->needed[k]);
	}
	if (!all_static) {
		if (kw_resolve_tree(r, path, info, &g, &e2) != 0) {
				goto out;
		}
		for (k = 1; k < g->n_nodes; k++) {
			if (!g->nodes[k].info && !node_provided(&g->nodes[k])) {
				goto out; /* a library it needs is not there: left out */
			}
		}
		if (!(seen = kw_calloc(g->n_nodes, 1)) || (rc = dyn_walk(p, g, 0, seen, &libs, &n_libs, &cap)) ||
		    (rc = km_runtime_add(g, &p->runtime, &p->runtime_done))) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		for (k = 1; k < g->n_nodes; k++) {
			const char *f = km_static_flag(g->nodes[k].name);

			if (f && kw_strv_push_unique(&p->flags, f)) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
		}
	}
	if (!(o = dyn_add(p, path, id, false))) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	o->libs = libs;
	o->n_libs = n_libs;
	libs = NULL;
	*ok = true;
out:
	free(libs);
	free(seen);
	kw_dep_graph_free(g);
	kw_elf_info_free(info);
	return rc;
}

/* Does info import name (a non-weak undefined symbol)? */
static bool imports(const struct kw_elf_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_syms; i++) {
		if (!info->syms[i].defined && strcmp(info->syms[i].name, name) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * Plugins the planned libraries load by path (OpenSSL's providers and
 * engines): converted like modules (their exports stay their own, found
 * by the emulated dlsym), registered under their path, each after the
 * libraries it needs; one whose libraries are not in the plan is left out
 * and named.
 */
static int dyn_plan_plugins(struct dyn_plan *p, struct kw_strv *skipped, struct kw_error *err)
{
	struct kw_strv plugins = { 0 };
	size_t i, k, j, n_planned = p->n;
	int rc = 0;

	for (i = 0; !rc && i < n_planned; i++) {
		struct kw_elf_info *info = NULL;
		struct kw_error e2 = { 0 };
		unsigned char *buf = NULL;
		size_t len = 0;

		if (!p->v[i].lib || kw_elf_parse_file(p->v[i].path, &info, &e2) != 0) {
			continue;
		}
		if (imports(info, "dlopen") && kw_map_file(p->v[i].path, &buf, &len, &e2) == 0) {
			rc = km_find_plugins("", buf, len, &plugins);
			kw_unmap_file(buf, len);
		}
		kw_elf_info_free(info);
	}
	for (k = 0; !rc && k < plugins.n; k++) {
		struct kw_elf_info *info = NULL;
		struct kw_error e2 = { 0 };
		size_t *libs = NULL, n_libs = 0, cap = 0;
		bool ok = true;
		struct dyn_obj *o;

		if (kw_elf_parse_file(plugins.v[k], &info, &e2) != 0) {
			continue;
		}
		for (i = 0; ok && i < info->n_needed; i++) {
			bool have = kw_km_static_provided(info->needed[i]);

			for (j = 0; !have && j < n_planned; j++) {
				if (p->v[j].lib && p->v[j].soname && strcmp(p->v[j].soname, info->needed[i]) == 0) {
					have = true;
					if (kw_grow(&libs, &cap, n_libs + 1, sizeof(*libs))) {
						rc = KW_ENOMEM;
						break;
					}
					libs[n_libs++] = j;
				}
			}
			ok = have;
		}
		kw_elf_info_free(info);
		if (!rc && !ok) {
			rc = kw_strv_push(skipped, plugins.v[k]);
		} else if (!rc) {
			if (!(o = dyn_add(p, plugins.v[k], plugins.v[k] + 1, false))) {
				rc = KW_ENOMEM;
			} else {
				o->libs = libs;
				o->n_libs = n_libs;
				o->plugin = true;
				libs = NULL;
			}
		}
		free(libs);
	}
	kw_strv_release(&plugins);
	return rc ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
}

/* Convert one planned object into dir; false if the converter refuses it. */
static int dyn_convert(struct dyn_plan *p, struct dyn_obj *o, const char *dir, struct kw_strv *objs,
		       struct kw_strv *names, struct kw_error *err)
{
	struct kw_error e2 = { 0 };
	struct kw_km_converted c;
	unsigned char *buf = NULL;
	size_t len = 0;
	const char *base = strrchr(o->path, '/') ? strrchr(o->path, '/') + 1 : o->path;
	char *oname = kw_asprintf("%03zu-%s.o", objs->n, base), *opath = NULL, *ln = NULL, *lp = NULL;
	const char *from = NULL;
	unsigned char key[32];
	char tag[13];
	int rc = KW_ENOMEM;

	o->state = 2;
	if (!oname || !(opath = kw_asprintf("%s/%s", dir, oname))) {
		goto nomem;
	}
	if (kw_map_file(o->path, &buf, &len, &e2) != 0) {
		rc = 0;
		goto out;
	}
	if (o->lib || o->plugin) {
		/* Named with its tag, as a wheel's libraries are, so a wheel's copy and this one link once. */
		km_symbol_tag(buf, len, tag);
		ln = kw_asprintf("%03zu-%s" KM_LIB_TAG_SEP "%s.o", objs->n, base, tag);
		lp = ln ? kw_asprintf("%s/%s", dir, ln) : NULL;
		if (!lp) {
			kw_unmap_file(buf, len);
			goto nomem;
		}
		free(opath);
		free(oname);
		opath = lp;
		oname = ln;
		lp = ln = NULL;
	}
	rc = km_convert(p->cache, buf, len, o->lib || o->plugin ? tag : NULL, o->path, o->id,
			o->lib ? KW_KM_LIB : KW_KM_MODULE, 0, &p->runtime, opath, &c, key, &from, &e2);
	kw_unmap_file(buf, len);
	if (rc == KW_ENOMEM) {
		goto nomem;
	}
	if (rc) {
		rc = 0; /* the converter refuses it: left out, and named */
		goto out;
	}
	if (km_cache_pend(p->cache, key, &c, oname)) {
		kw_km_converted_release(&c);
		goto nomem;
	}
	kw_km_converted_release(&c);
	if (kw_strv_push_own(objs, opath)) {
		opath = NULL;
		goto nomem;
	}
	opath = NULL;
	if (kw_strv_push_own(names, oname)) {
		oname = NULL;
		goto nomem;
	}
	oname = NULL;
	o->state = 1;
	rc = 0;
	goto out;
nomem:
	rc = kw_error_set(err, KW_ENOMEM, "out of memory");
out:
	free(oname);
	free(opath);
	free(ln);
	free(lp);
	return rc;
}

/*
 * The interpreter's own lib-dynload modules go in too, or the static
 * interpreter could not import the standard library's C parts (json,
 * decimal, ssl, sqlite3, ctypes, ...). The libraries a module needs that a
 * static link does not provide are converted with it, as --deps converts a
 * wheel's, and put before it; a module whose libraries cannot all be found
 * and converted is left out and named.
 */
static int convert_dynload(const char *dir, const char *outdir, struct kw_km_cache *cache, char **link_file,
			   struct kw_strv *skipped, struct kw_error *err)
{
	struct kw_strv objs = { 0 }, names = { 0 }, files = { 0 };
	char *objdir = kw_asprintf("%s/lib-dynload.km", outdir), *archive = kw_asprintf("%s/libdynload.km.a", outdir);
	struct dirent *de;
	DIR *d = NULL;
	struct km_dir od = { 0 };
	struct km_out o_archive = { 0 }, o_link = { 0 };
	struct kw_ctx *ctx = NULL;
	struct kw_resolver *r = NULL;
	struct dyn_plan plan = { 0 };
	size_t i, k;
	char *text = NULL;
	int rc = KW_ENOMEM;

	*link_file = kw_asprintf("%s/lib-dynload.km.link", outdir);
	if (!objdir || !archive || !*link_file) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	/* As for wheels: made beside the final names, put in place together at the end. */
	if ((rc = km_dir_open(&od, objdir, err)) || (rc = kw_ctx_new(&ctx, err)) ||
	    (rc = kw_resolver_new(ctx, &r, err))) {
		goto out;
	}
	rc = KW_ENOMEM;
	if (!(d = opendir(dir))) {
		rc = kw_error_set(err, KW_EIO, "cannot read '%s': %s", dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 3 && strcmp(de->d_name + l - 3, ".so") == 0 && kw_strv_push(&files, de->d_name)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	kw_strv_sort(&files);
	for (i = 0; i < files.n; i++) {
		char *path = kw_asprintf("%s/%s", dir, files.v[i]), *id = kw_asprintf("lib-dynload/%s", files.v[i]);
		bool ok = false;

		rc = path && id ? dyn_plan_module(&plan, r, path, id, &ok, err)
				: kw_error_set(err, KW_ENOMEM, "out of memory");
		free(path);
		free(id);
		if (rc) {
			goto out;
		}
		if (!ok && kw_strv_push(skipped, files.v[i])) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	if ((rc = dyn_plan_plugins(&plan, skipped, err))) {
		goto out;
	}
	km_sort_unique(&plan.runtime);
	plan.cache = cache;
	/* Each module after its libraries, each library converted once. */
	for (i = 0; i < plan.n; i++) {
		struct dyn_obj *m = &plan.v[i];
		bool ok = true;

		if (m->lib) {
			continue;
		}
		for (k = 0; k < m->n_libs && ok; k++) {
			struct dyn_obj *l = &plan.v[m->libs[k]];

			if (l->state == 0 && (rc = dyn_convert(&plan, l, od.tmp, &objs, &names, err))) {
				goto out;
			}
			ok = l->state == 1;
		}
		if (ok && (rc = dyn_convert(&plan, m, od.tmp, &objs, &names, err))) {
			goto out;
		}
		if ((!ok || m->state != 1) && kw_strv_push(skipped, strrchr(m->id, '/') + 1)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	kw_strv_sort(skipped);
	if ((rc = km_out_open(&o_archive, archive, err)) ||
	    (rc = km_archive_write(o_archive.f, archive, (const char *const *)objs.v, (const char *const *)names.v,
				   objs.n, NULL, NULL, strrchr(objdir, '/') + 1, err)) ||
	    (rc = km_out_close(&o_archive, err))) {
		goto out;
	}
	if (kw_strv_push_unique(&plan.flags, "-lcrypt")) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	text = link_text(archive, &plan.flags);
	if (!text) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = km_out_open(&o_link, *link_file, err)) || (rc = km_out_write(&o_link, text, strlen(text), err)) ||
	    (rc = km_dir_commit(&od, err)) || (rc = km_out_commit(&o_archive, err)) ||
	    (rc = km_out_commit(&o_link, err))) {
		goto out;
	}
	(void)km_cache_commit(cache, objdir, "lib-dynload");
	rc = 0;
out:
	if (rc) {
		km_cache_drop(cache);
	}
	km_dir_discard(&od);
	km_out_discard(&o_archive);
	km_out_discard(&o_link);
	if (d) {
		closedir(d);
	}
	if (rc) {
		free(*link_file);
		*link_file = NULL;
	}
	dyn_plan_release(&plan);
	kw_resolver_free(r);
	kw_ctx_free(ctx);
	kw_strv_release(&objs);
	kw_strv_release(&names);
	kw_strv_release(&files);
	free(objdir);
	free(archive);
	free(text);
	return rc;
}

/* A file in the link's own temporary directory: no rename, no sync, removed after the link. */
static int write_scratch(const char *path, const void *data, size_t len, struct kw_error *err)
{
	FILE *f = fopen(path, "wbx");
	int bad;

	if (!f) {
		return kw_error_set(err, KW_EIO, "cannot create '%s': %s", path, strerror(errno));
	}
	bad = fwrite(data, 1, len, f) != len;
	bad |= fclose(f) != 0;
	return bad ? kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno)) : 0;
}

/* The symbol tag in a library member's name ("...@0123456789ab.o"), or false for a module's. */
static bool lib_tag(const char *name, char tag[13])
{
	const char *at = strrchr(name, KM_LIB_TAG_SEP[0]);
	size_t i;

	if (!at || strlen(at) != 1 + 12 + 2 || strcmp(at + 13, ".o") != 0) {
		return false;
	}
	for (i = 0; i < 12; i++) {
		char c = at[1 + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
		tag[i] = c;
	}
	tag[12] = '\0';
	return true;
}

/*
 * One copy of each library in the link: the libraries of the wheels'
 * archives, by symbol tag (the digest of the .so they came from), in the
 * order the link files name them; a later archive's copy is dropped.
 */
struct dedup {
	struct kw_strv *seen;   /* tags linked so far */
	struct kw_strv *tmp;    /* files made in dir, removed after the link */
	const char *dir;
	bool write;             /* second pass: write the members kept */
	bool thin;              /* the archive is thin: the copy names the same files */
	size_t dropped;
	struct kw_strv paths, names; /* the members kept (second pass) */
};

static int dedup_member(void *ud, const char *name, const unsigned char *data, size_t len, const char *file,
			struct kw_error *err)
{
	struct dedup *d = ud;
	char tag[13];
	bool lib = lib_tag(name, tag);
	char *p;

	if (lib && kw_strv_find(d->seen, tag) >= 0) {
		d->dropped++;
		return 0;
	}
	if (!d->write) {
		return 0;
	}
	if (lib && kw_strv_push(d->seen, tag)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (file) {
		/* A thin archive's copy is thin too, naming the kept members where they are (absolute paths). */
		d->thin = true;
		return kw_strv_push(&d->paths, file) || kw_strv_push(&d->names, file)
			       ? kw_error_set(err, KW_ENOMEM, "out of memory")
			       : 0;
	}
	p = kw_asprintf("%s/m%zu-%s", d->dir, d->tmp->n, name);
	if (!p || kw_strv_push(d->tmp, p) || kw_strv_push(&d->names, name)) {
		free(p);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (kw_strv_push_own(&d->paths, p)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return write_scratch(p, data, len, err);
}

/* Record the library tags of an archive nothing is dropped from. */
static int dedup_note(void *ud, const char *name, const unsigned char *data, size_t len, const char *file,
		      struct kw_error *err)
{
	struct dedup *d = ud;
	char tag[13];

	(void)data;
	(void)len;
	(void)file;
	if (lib_tag(name, tag) && kw_strv_push(d->seen, tag)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return 0;
}

/*
 * The link file to pass for link_file: itself, or (when one of its archives
 * holds a library an earlier archive already brought) a copy in dir naming
 * a copy of that archive without it. *use is a new string.
 */
static int dedup_link_file(const char *link_file, const char *dir, struct kw_strv *seen, struct kw_strv *tmp,
			   char **use, struct kw_error *err)
{
	unsigned char *text = NULL;
	size_t len = 0, pos;
	struct kw_buf out = { 0 };
	bool changed = false;
	int rc;

	*use = NULL;
	if (access(link_file, R_OK) != 0) {
		/* gcc reads it (and says what is wrong): nothing to share from a file kwheel cannot read. */
		*use = kw_strdup(link_file);
		return *use ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if ((rc = kw_map_file(link_file, &text, &len, err))) {
		return rc;
	}
	for (pos = 0; !rc && pos < len;) {
		const char *l = (const char *)text + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		char *line = kw_strndup(l, n);
		struct stat st;

		pos += n + (nl ? 1 : 0);
		if (!line) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			break;
		}
		if (n > 5 && line[0] != '-' && strcmp(line + n - 5, ".km.a") == 0 && stat(line, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			struct dedup d = { seen, tmp, dir, false, false, 0, { 0 }, { 0 } };

			rc = km_archive_each(line, dedup_member, &d, err);
			if (!rc && d.dropped) {
				char *copy = kw_asprintf("%s/a%zu-%s", dir, tmp->n, strrchr(line, '/') ? strrchr(line, '/') + 1 : line);

				d.write = true;
				d.dropped = 0;
				rc = copy ? km_archive_each(line, dedup_member, &d, err) : KW_ENOMEM;
				if (!rc && (rc = kw_strv_push(tmp, copy)) == 0) {
					rc = kw_km_write_archive(copy, (const char *const *)d.paths.v,
								 (const char *const *)d.names.v, d.paths.n,
								 d.thin ? "" : NULL, err);
				} else if (rc == KW_ENOMEM) {
					kw_error_set(err, rc, "out of memory");
				}
				if (!rc) {
					kw_buf_appendf(&out, "%s\n", copy);
					changed = true;
				}
				free(copy);
			} else if (!rc) {
				rc = km_archive_each(line, dedup_note, &d, err);
				kw_buf_appendf(&out, "%s\n", line);
			}
			kw_strv_release(&d.paths);
			kw_strv_release(&d.names);
		} else {
			kw_buf_appendf(&out, "%s\n", line);
		}
		free(line);
	}
	kw_unmap_file(text, len);
	if (!rc && changed) {
		char *p = kw_asprintf("%s/l%zu.link", dir, tmp->n);

		if (!p || out.failed || kw_strv_push(tmp, p)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		} else {
			rc = write_scratch(p, out.s, out.len, err);
		}
		*use = p;
	} else if (!rc) {
		*use = kw_strdup(link_file);
		if (!*use) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	if (rc) {
		free(*use);
		*use = NULL;
	}
	kw_buf_release(&out);
	return rc;
}

int kw_km_link_python(const char *out, const char *python, const char *const *link_files, size_t n,
		      struct kw_km_cache *cache, struct kw_strv *left_out, struct kw_error *err)
{
	static const char query[] =
		"import sysconfig as s\n"
		"print(s.get_config_var('LIBPL') + '/' + s.get_config_var('LIBRARY'))\n"
		"print(s.get_path('include'))\n"
		"print(' '.join(s.get_config_var(k) or '' for k in ('MODLIBS', 'LIBS', 'SYSLIBS')))\n"
		"print(s.get_config_var('DESTSHARED') or '')\n";
	static const char main_c[] =
		"#include <Python.h>\n"
		"int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n";
	char tmpd[] = "/tmp/kwheel-link-XXXXXX";
	char *cfg = NULL, *lines[4] = { NULL, NULL, NULL, NULL }, *save = NULL, *p, *dyn_link = NULL;
	struct kw_strv argv = { 0 }, seen = { 0 }, tmp_files = { 0 };
	char *rt = NULL, *mainc = NULL, *rto = NULL, *maino = NULL, *inc = NULL;
	size_t i;
	int rc;

	if (!mkdtemp(tmpd)) {
		return kw_error_set(err, KW_EIO, "cannot create a temporary directory: %s", strerror(errno));
	}
	{
		char *const q[] = { (char *)python, (char *)"-c", (char *)query, NULL };

		rc = run(q, &cfg, err);
		if (rc) {
			kw_error_prefix(err, "asking %s for its static library", python);
			goto out;
		}
	}
	for (i = 0, p = strtok_r(cfg, "\n", &save); p && i < 4; p = strtok_r(NULL, "\n", &save)) {
		lines[i++] = p;
	}
	if (i < 2 || access(lines[0], R_OK) != 0) {
		rc = kw_error_set(err, KW_ENOTFOUND, "%s has no static library (%s): install its -dev package", python,
				  i ? lines[0] : "unknown");
		goto out;
	}
	rc = KW_ENOMEM;
	rt = kw_asprintf("%s/kwrt.c", tmpd);
	mainc = kw_asprintf("%s/main.c", tmpd);
	rto = kw_asprintf("%s/kwrt.o", tmpd);
	maino = kw_asprintf("%s/main.o", tmpd);
	inc = kw_asprintf("-I%s", lines[1]);
	if (!rt || !mainc || !rto || !maino || !inc) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if ((rc = write_text(rt, kw_km_runtime, kw_km_runtime_len, err)) ||
	    (rc = write_text(mainc, main_c, sizeof(main_c) - 1, err))) {
		goto out;
	}
	{
		char *const c1[] = { (char *)"gcc", (char *)"-O2", (char *)"-c", rt, (char *)"-o", rto, NULL };
		char *const c2[] = { (char *)"gcc", (char *)"-O2", inc, (char *)"-c", mainc, (char *)"-o", maino, NULL };

		if ((rc = run(c1, NULL, err)) || (rc = run(c2, NULL, err))) {
			goto out;
		}
	}
	rc = KW_ENOMEM;
	if (kw_strv_push(&argv, "gcc") || kw_strv_push(&argv, "-static") || kw_strv_push(&argv, "-no-pie") ||
	    kw_strv_push(&argv, "-o") || kw_strv_push(&argv, out) || kw_strv_push(&argv, maino) ||
	    kw_strv_push(&argv, rto)) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char *use = NULL, *at;

		if ((rc = dedup_link_file(link_files[i], tmpd, &seen, &tmp_files, &use, err))) {
			goto out;
		}
		rc = KW_ENOMEM;
		at = kw_asprintf("@%s", use);
		free(use);
		if (kw_strv_push_own(&argv, at)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	if (lines[3] && *lines[3]) {
		char *outdir = kw_strdup(out), *slash;

		if (!outdir) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		slash = strrchr(outdir, '/');
		if (slash) {
			*slash = '\0';
		}
		rc = convert_dynload(lines[3], slash ? outdir : ".", cache, &dyn_link, left_out, err);
		free(outdir);
		if (rc) {
			goto out;
		}
		/* After the wheels' link files: a library a wheel brought already (libffi, libz) links once. */
		{
			char *use = NULL;

			if ((rc = dedup_link_file(dyn_link, tmpd, &seen, &tmp_files, &use, err))) {
				goto out;
			}
			p = kw_asprintf("@%s", use);
			free(use);
		}
		rc = KW_ENOMEM;
		if (kw_strv_push_own(&argv, p)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	if (kw_strv_push(&argv, lines[0])) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (p = lines[2] ? strtok_r(lines[2], " \t", &save) : NULL; p; p = strtok_r(NULL, " \t", &save)) {
		if (kw_strv_push(&argv, p)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	/* After the archives, so their references to libc's and libstdc++'s helpers resolve. */
	if (kw_strv_push(&argv, "-lstdc++") || kw_strv_push(&argv, "-lm") || kw_strv_push(&argv, "-lpthread") ||
	    kw_strv_push(&argv, "-Wl,--no-warn-rwx-segments") || kw_strv_push(&argv, "-Wl,--wrap=dlopen") ||
	    kw_strv_push(&argv, "-Wl,--wrap=dlsym") || kw_strv_push(&argv, "-Wl,--wrap=dlerror") ||
	    kw_strv_push(&argv, "-Wl,--wrap=dlclose")) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	{
		char **av = kw_calloc(argv.n + 1, sizeof(*av));

		if (!av) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		memcpy(av, argv.v, argv.n * sizeof(*av));
		rc = run(av, NULL, err);
		free(av);
		if (rc) {
			kw_error_prefix(err, "linking '%s'", out);
		}
	}
out:
	if (rt) {
		unlink(rt);
	}
	if (mainc) {
		unlink(mainc);
	}
	if (rto) {
		unlink(rto);
	}
	if (maino) {
		unlink(maino);
	}
	for (i = 0; i < tmp_files.n; i++) {
		unlink(tmp_files.v[i]);
	}
	rmdir(tmpd);
	kw_strv_release(&seen);
	kw_strv_release(&tmp_files);
	kw_strv_release(&argv);
	free(dyn_link);
	free(cfg);
	free(rt);
	free(mainc);
	free(rto);
	free(maino);
	free(inc);
	return rc;
}
