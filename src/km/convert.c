/* SPDX-License-Identifier: MIT */
/*
 * `kwheel km` for one wheel: judge, delink every object the extensions need
 * (wheel members, and with deps the external libraries a static link does
 * not provide), collect them in one archive, and write the link file and
 * the manifest beside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/km.h"

#include "internal.h"

void kw_km_wheel_release(struct kw_km_wheel *r)
{
	if (!r) {
		return;
	}
	free(r->archive);
	free(r->link_file);
	free(r->manifest);
	free(r->wheel);
	memset(r, 0, sizeof(*r));
}

/* Static libraries the static link needs for what the objects import from the system. */
const char *km_static_flag(const char *soname)
{
	static const struct { const char *soname, *flag; } map[] = {
		{ "libstdc++.so.6", "-lstdc++" }, { "libm.so.6", "-lm" },         { "libmvec.so.1", "-lmvec" },
		{ "libgomp.so.1", "-lgomp" },     { "libatomic.so.1", "-latomic" }, { "libcrypt.so.1", "-lcrypt" },
		{ "libresolv.so.2", "-lresolv" }, { "librt.so.1", "-lrt" },       { "libutil.so.1", "-lutil" },
		{ "libdl.so.2", "-ldl" },         { "libpthread.so.0", "-lpthread" }, { "libanl.so.1", "-lanl" },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(map[i].soname, soname) == 0) {
			return map[i].flag;
		}
	}
	return NULL;
}

/* Is this system library part of the runtime a static link brings: the C library or the unwinder's? */
static bool runtime_library(const char *soname)
{
	static const char *const libs[] = {
		"libc.so.6",       "libm.so.6",    "libmvec.so.1",   "libpthread.so.0", "libdl.so.2",
		"librt.so.1",      "libutil.so.1", "libresolv.so.2", "libanl.so.1",     "libcrypt.so.1",
		"libgcc_s.so.1",   "libc.so",      "libc.musl-x86_64.so.1",
	};
	size_t i;

	for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		if (strcmp(soname, libs[i]) == 0) {
			return true;
		}
	}
	return false;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int km_runtime_add(const struct kw_dep_graph *g, struct kw_strv *names, struct kw_strv *done)
{
	size_t k, j;
	int rc = 0;

	for (k = 1; !rc && g && k < g->n_nodes; k++) {
		const struct kw_dep_node *n = &g->nodes[k];
		const struct kw_elf_info *info = n->info;
		const char *key = n->realpath ? n->realpath : n->path ? n->path : n->name;

		if (n->in_overlay || !info || !runtime_library(info->soname ? info->soname : n->name) ||
		    kw_strv_find(done, key) >= 0) {
			continue;
		}
		rc = kw_strv_push(done, key);
		for (j = 0; !rc && j < info->n_syms; j++) {
			const struct kw_elf_sym *s = &info->syms[j];

			if (s->defined && s->bind != 0 /* STB_LOCAL */ && !s->version_hidden && s->name[0]) {
				rc = kw_strv_push(names, s->name);
			}
		}
	}
	return rc ? KW_ENOMEM : 0;
}

void km_sort_unique(struct kw_strv *sv)
{
	size_t j, w;

	if (!sv->n) {
		return;
	}
	qsort(sv->v, sv->n, sizeof(*sv->v), cmp_strp);
	for (j = 1, w = 1; j < sv->n; j++) {
		if (strcmp(sv->v[j], sv->v[w - 1]) == 0) {
			free(sv->v[j]);
		} else {
			sv->v[w++] = sv->v[j];
		}
	}
	sv->n = w;
}

/* The runtime's names for a whole wheel: km_runtime_add over every member's graph. */
static int runtime_names(const struct kw_audit *a, struct kw_strv *out)
{
	struct kw_strv done = { 0 };
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < a->n_members; i++) {
		rc = km_runtime_add(a->members[i].graph, out, &done);
	}
	kw_strv_release(&done);
	if (!rc) {
		km_sort_unique(out);
	}
	return rc;
}

static void manifest_object_clear(struct kw_km_manifest_object *mo)
{
	free(mo->path);
	free(mo->id);
	free(mo->object);
	free(mo->reused_from);
	kw_strv_release(&mo->exports);
	kw_strv_release(&mo->undefined);
	kw_strv_release(&mo->needed);
	kw_strv_release(&mo->warnings);
	free(mo->json);
	memset(mo, 0, sizeof(*mo));
}

static void manifest_objects_release(struct kw_km_manifest_object *mo, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		manifest_object_clear(&mo[i]);
	}
	free(mo);
}

/* Why the wheel cannot go in: the first blocker and how many more. */
static int refuse(const struct kw_audit *a, const struct kw_km_verdict *v, struct kw_error *err)
{
	if (v->reasons.n > 1) {
		return kw_error_set(err, KW_EPOLICY, "'%s': cannot be converted for KM: %s (and %zu more; see kwheel show)",
				    a->filename, v->reasons.v[0], v->reasons.n - 1);
	}
	return kw_error_set(err, KW_EPOLICY, "'%s': cannot be converted for KM: %s", a->filename,
			    v->reasons.n ? v->reasons.v[0] : "no reason given");
}


/*
 * The link file: the archive as a whole (nothing names a module by symbol),
 * the emulated loader's wraps, then the static libraries. Built from the
 * flag list, for the file beside the archive and the one in the payload
 * wheel alike. New string (free()), NULL if out of memory.
 */
char *link_text(const char *archive, const struct kw_strv *flags)
{
	struct kw_buf b = { 0 };
	size_t i;

	kw_buf_appendf(&b, "-Wl,--whole-archive\n%s\n-Wl,--no-whole-archive\n", archive);
	kw_buf_append(&b, "-Wl,--wrap=dlopen\n-Wl,--wrap=dlsym\n-Wl,--wrap=dlerror\n-Wl,--wrap=dlclose\n");
	kw_buf_append(&b, "-Wl,--no-warn-rwx-segments\n");
	for (i = 0; i < flags->n; i++) {
		kw_buf_appendf(&b, "%s\n", flags->v[i]);
	}
	return kw_buf_take(&b);
}


/*
 * Name a library's object "NNN-base<sep>tag.o" in dir, the member name that
 * lets the static link keep one copy of a library however many archives
 * hold it, before it is written (a rename after would take the directory's
 * lock once more per object). *opath and *oname are replaced (the old
 * ones freed).
 */
static int tagged_name(const char *dir, size_t n, const char *base, const char *tag, char **opath, char **oname,
		       struct kw_error *err)
{
	char *ln = kw_asprintf("%03zu-%s" KM_LIB_TAG_SEP "%s.o", n, base, tag);
	char *lp = ln ? kw_asprintf("%s/%s", dir, ln) : NULL;

	if (!lp) {
		free(ln);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	free(*opath);
	free(*oname);
	*opath = lp;
	*oname = ln;
	return 0;
}

/*
 * What an object costs to delink, for the progress line and the run's
 * order: its bytes (member mi of w when in the wheel; 0 if a library cannot
 * be stat()ed).
 */
static uint64_t object_bytes(struct kw_ctx *ctx, const struct kw_wheel *w, const struct kw_km_object *o, long mi)
{
	uint64_t size = 0;

	if (o->in_wheel) {
		size = mi < 0 ? 0 : kw_wheel_member(w, (size_t)mi)->size;
	} else {
		char *rooted = kw_ctx_rooted(ctx, o->name);
		struct stat st;

		if (rooted && stat(rooted, &st) == 0 && st.st_size > 0) {
			size = (uint64_t)st.st_size;
		}
		free(rooted);
	}
	return size;
}

/*
 * One object of a wheel's conversion: its slot, filled by convert_item on
 * any of the pool's threads; everything that depends on the order of the
 * objects (names, cache, manifest) is done afterwards, in order.
 */
struct conv_item {
	const struct kw_km_object *o;
	const char *base;      /* its file name: o's name after the last slash */
	long member;           /* in the wheel: its member index (-1 if it has gone) */
	size_t n;              /* its number in the archive */
	uint64_t size;         /* the bytes to delink (0 if a library cannot be stat()ed) */
	char *opath, *oname;
	struct kw_km_converted c;
	unsigned char key[32];
	const char *from;      /* the wheel its object was reused from, or NULL */
	char *json;            /* its manifest entry, rendered on the thread that converted it, or NULL */
	bool done;             /* c holds a conversion */
	int rc;
	struct kw_error err;
};

/*
 * The manifest's entry for a converted item. borrow: exports and
 * undefined are it->c's own (the caller clears them from mo before
 * releasing it); otherwise they are moved out of it->c into mo.
 */
static int fill_manifest_object(const struct kw_audit *a, struct conv_item *it, struct kw_km_manifest_object *mo,
				bool borrow)
{
	const struct kw_km_object *o = it->o;
	const struct kw_elf_info *info = NULL;
	size_t j;
	int bad = 0;

	memset(mo, 0, sizeof(*mo));
	mo->path = kw_strdup(o->name);
	mo->id = kw_strdup(o->in_wheel ? o->name : it->base);
	mo->object = kw_strdup(it->oname);
	mo->in_wheel = o->in_wheel;
	mo->mode = o->mode;
	if (it->from) {
		mo->reused_from = kw_strdup(it->from);
		bad |= !mo->reused_from;
	}
	memcpy(mo->symbol_tag, it->c.tag, sizeof(mo->symbol_tag));
	mo->exports = it->c.exports;
	mo->undefined = it->c.undefined;
	if (!borrow) {
		memset(&it->c.exports, 0, sizeof(it->c.exports));
		memset(&it->c.undefined, 0, sizeof(it->c.undefined));
	}
	mo->n_relocs = it->c.n_relocs;
	mo->n_registered = it->c.n_registered;
	for (j = 0; o->in_wheel && j < a->n_members; j++) {
		if (strcmp(a->members[j].name, o->name) == 0) {
			info = a->members[j].info;
		}
	}
	for (j = 0; info && j < info->n_needed; j++) {
		bad |= kw_strv_push(&mo->needed, info->needed[j]);
	}
	for (j = 0; j < o->warnings.n; j++) {
		bad |= kw_strv_push(&mo->warnings, o->warnings.v[j]);
	}
	for (j = 0; j < it->c.warnings.n; j++) {
		bad |= kw_strv_push(&mo->warnings, it->c.warnings.v[j]);
	}
	return bad || !mo->path || !mo->id || !mo->object ? KW_ENOMEM : 0;
}

struct conv_run {
	struct kw_ctx *ctx;
	const struct kw_audit *a;
	struct kw_wheel *w;
	const struct kw_km_options *opts;
	const struct kw_strv *runtime;
	const char *dir;       /* the objects directory being made */
	struct conv_item *items;
	struct kw_sized *by_size; /* the run's order: largest first, so no big library is left for last */
	pthread_mutex_t lock;  /* the progress line */
	uint64_t done, total;
};

static void convert_item(void *ud, size_t i)
{
	struct conv_run *r = ud;
	struct conv_item *it = &r->items[r->by_size[i].i];
	const struct kw_km_object *o = it->o;
	const char *base = it->base;
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	if (o->in_wheel) {
		rc = it->member < 0 ? kw_error_set(&it->err, KW_EINTERNAL, "member '%s' vanished", o->name)
				    : kw_wheel_read(r->w, (size_t)it->member, &buf, &len, &it->err);
	} else {
		char *rooted = kw_ctx_rooted(r->ctx, o->name);

		rc = rooted ? kw_map_file(rooted, &buf, &len, &it->err)
			    : kw_error_set(&it->err, KW_ENOMEM, "out of memory");
		free(rooted);
	}
	if (!rc) {
		char tag[13];

		/*
		 * A library's member name carries its symbol tag (the .so's
		 * digest): the static link keeps one copy of each library
		 * however many wheels' archives hold it.
		 */
		if (o->mode == KW_KM_LIB) {
			km_symbol_tag(buf, len, tag);
			rc = tagged_name(r->dir, it->n, base, tag, &it->opath, &it->oname, &it->err);
		}
		if (!rc) {
			rc = km_convert(r->opts->cache, buf, len, o->mode == KW_KM_LIB ? tag : NULL, o->name,
					o->in_wheel ? o->name : base, o->mode, r->opts->no_wx ? KW_KM_NO_WX : 0,
					r->runtime, it->opath, &it->c, it->key, &it->from, &it->err);
		}
		it->done = rc == 0;
		if (o->in_wheel) {
			free(buf);
		} else {
			kw_unmap_file(buf, len);
		}
	}
	/*
	 * The manifest entry is rendered here, while the lists are fresh, and
	 * they are freed here unless the run's cache still has to copy them:
	 * at the end, on one thread, a closure's took a tenth of the run.
	 */
	if (!rc && r->opts->manifest_object) {
		struct kw_km_manifest_object mo;

		rc = fill_manifest_object(r->a, it, &mo, true);
		if (!rc) {
			rc = r->opts->manifest_object(&mo, &it->json, &it->err);
		} else {
			kw_error_set(&it->err, rc, "out of memory");
		}
		memset(&mo.exports, 0, sizeof(mo.exports));
		memset(&mo.undefined, 0, sizeof(mo.undefined));
		manifest_object_clear(&mo);
		if (!rc && !r->opts->cache) {
			kw_strv_release(&it->c.exports);
			kw_strv_release(&it->c.undefined);
		}
	}
	it->rc = rc;
	if (r->opts->progress) {
		pthread_mutex_lock(&r->lock);
		r->done += it->size;
		r->opts->progress(r->opts->progress_ud, "converting", r->done < r->total ? r->done : r->total,
				  r->total);
		pthread_mutex_unlock(&r->lock);
	}
}

static void conv_items_release(struct conv_item *items, size_t n)
{
	size_t i;

	for (i = 0; items && i < n; i++) {
		free(items[i].opath);
		free(items[i].oname);
		free(items[i].json);
		if (items[i].done) {
			kw_km_converted_release(&items[i].c);
		}
	}
	free(items);
}

/* The last two pieces of a wheel's outputs, independent of each other: on two threads where there are two. */
struct finish {
	struct kw_pool *pool;
	const struct kw_km_options *opts;
	FILE *archive_f;
	const char *archive;
	const char *thin_dir;  /* the objects directory's name, which the thin archive's paths start with */
	const struct kw_strv *objs, *names;
	const struct km_index_names *known; /* each object's index entries, from its conversion */
	const struct kw_km_manifest *m;
	char *text;            /* the manifest */
	/* what only the manifest needed: released once it is made (taken) */
	struct kw_km_manifest_object *mobjs;
	size_t n_mo;
	struct conv_item *items;
	size_t n_items;
	int rc[2];
	struct kw_error err[2];
};

static void finish_task(void *ud, size_t i)
{
	struct finish *f = ud;

	if (i == 0) {
		f->rc[0] = km_archive_write(f->archive_f, f->archive, (const char *const *)f->objs->v,
					    (const char *const *)f->names->v, f->objs->n, f->known, f->pool, f->thin_dir,
					    &f->err[0]);
	} else {
		f->rc[1] = f->opts->manifest(f->m, &f->text, &f->err[1]);
		/*
		 * What is left of the objects' lists (those a run's cache kept:
		 * a closure's hundreds of thousands of names) is freed here,
		 * while the archive is written, not on one thread after it.
		 */
		manifest_objects_release(f->mobjs, f->n_mo);
		conv_items_release(f->items, f->n_items);
	}
}

/*
 * The object's index entries move from its conversion to known[*n], beside
 * the object in the archive's list: the archive (both, with a payload
 * wheel) takes them from there instead of reading every object back.
 */
static int take_index(struct km_index_names **known, size_t *cap, size_t *n, struct kw_km_converted *c)
{
	if (kw_grow(known, cap, *n + 1, sizeof(**known))) {
		return KW_ENOMEM;
	}
	(*known)[(*n)++] = (struct km_index_names){ c->defined, c->defined_len, c->n_defined };
	c->defined = NULL;
	return 0;
}

int kw_km_convert_wheel(struct kw_ctx *ctx, const char *path, const struct kw_km_options *opts,
			struct kw_km_wheel *res, struct kw_error *err)
{
	struct km_index_names *known = NULL;
	size_t kcap = 0, n_known = 0;
	struct kw_audit *a = NULL;
	struct kw_wheel *w = NULL;
	struct kw_km_verdict v = { 0 };
	struct kw_strv objs = { 0 }, names = { 0 }, flags = { 0 }, runtime = { 0 }, plugins_done = { 0 };
	struct kw_km_manifest_object *mobjs = NULL;
	size_t mcap = 0, n_mo = 0;
	struct km_dir objdir = { 0 };
	struct km_out o_archive = { 0 }, o_link = { 0 }, o_manifest = { 0 }, o_full = { 0 };
	char *objdir_path = NULL, *text = NULL, *wheel = NULL;
	const char *dist;
	size_t i, k, n = 0, *order = NULL, n_items = 0;
	struct conv_item *items = NULL;
	struct conv_run run = { .lock = PTHREAD_MUTEX_INITIALIZER };
	int rc;

	memset(res, 0, sizeof(*res));
	rc = kw_audit_wheel(ctx, path, &a, err);
	if (rc) {
		return rc;
	}
	if ((rc = kw_km_judge(ctx->pool, a, &v, err))) {
		goto out;
	}
	if (!v.convertible) {
		rc = refuse(a, &v, err);
		goto out;
	}
	if (v.n_objects == 0) {
		/* A pure wheel installs as it is: no archive, no payload wheel. */
		rc = 0;
		goto out;
	}
	if (v.needs_deps && !opts->deps) {
		for (i = 0; i < v.n_objects && v.objects[i].in_wheel; i++) {
		}
		rc = kw_error_set(err, KW_EPOLICY,
				  "'%s': needs %s (and every library from outside the wheel): convert them too with --deps",
				  a->filename, i < v.n_objects ? v.objects[i].name : "libraries");
		goto out;
	}
	rc = kw_wheel_open(ctx, path, &w, err);
	if (rc) {
		goto out;
	}
	rc = KW_ENOMEM;
	dist = a->name.distribution;
	objdir_path = kw_asprintf("%s/%s-%s.km", opts->outdir, dist, a->name.version);
	res->archive = kw_asprintf("%s/lib%s.km.a", opts->outdir, dist);
	res->link_file = kw_asprintf("%s/%s.km.link", opts->outdir, dist);
	res->manifest = kw_asprintf("%s/%s.km.json", opts->outdir, dist);
	if (!opts->manifest) {
		rc = kw_error_set(err, KW_EINVAL, "no manifest renderer");
		goto out;
	}
	if (!objdir_path || !res->archive || !res->link_file || !res->manifest) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	/* Every output is made beside its final name and put in place at the end, all or nothing. */
	if ((rc = km_dir_open(&objdir, objdir_path, err))) {
		goto out;
	}
	rc = KW_ENOMEM;
	/*
	 * Archive order is initialisation order (the static runtime runs
	 * .init_array in link order): every object after what it needs, as
	 * ld.so initialises.
	 */
	order = kw_calloc(v.n_objects, sizeof(*order));
	if (!order) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if ((rc = kw_km_init_order(&v, order, err))) {
		goto out;
	}
	if (runtime_names(a, &runtime)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	items = kw_calloc(v.n_objects, sizeof(*items));
	run.by_size = kw_calloc(v.n_objects, sizeof(*run.by_size));
	if (!items || !run.by_size) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (k = 0; k < v.n_objects; k++) {
		const struct kw_km_object *o = &v.objects[order[k]];
		const char *base = strrchr(o->name, '/') ? strrchr(o->name, '/') + 1 : o->name;
		struct conv_item *it = &items[n_items];

		if (o->executable) {
			continue;
		}
		it->o = o;
		it->base = base;
		it->member = o->in_wheel ? kw_wheel_find(w, o->name) : -1;
		it->n = n_items;
		it->size = object_bytes(ctx, w, o, it->member);
		it->oname = kw_asprintf("%03zu-%s.o", it->n, base);
		it->opath = it->oname ? kw_asprintf("%s/%s", objdir.tmp, it->oname) : NULL;
		if (!it->opath) {
			n_items++;
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		run.by_size[n_items] = (struct kw_sized){ it->size, n_items };
		run.total += it->size;
		n_items++;
	}
	/* Each object is delinked on its own (a thread each); the first failure in archive order is the one told. */
	kw_sort_largest_first(run.by_size, n_items);
	run.ctx = ctx;
	run.a = a;
	run.w = w;
	run.opts = opts;
	run.runtime = &runtime;
	run.dir = objdir.tmp;
	run.items = items;
	if (opts->progress) {
		opts->progress(opts->progress_ud, "converting", 0, run.total);
	}
	kw_pool_run(ctx->pool, n_items, convert_item, &run);
	for (k = 0; k < n_items; k++) {
		if (items[k].rc) {
			rc = kw_error_set(err, items[k].rc, "%s", items[k].err.msg);
			/* The converter names the member; the user needs the wheel too. */
			if (rc != KW_ENOMEM) {
				kw_error_prefix(err, "'%s'", a->filename);
			}
			goto out;
		}
	}
	for (k = 0; k < n_items; k++) {
		struct conv_item *it = &items[k];
		struct kw_km_manifest_object *mo;

		if (km_cache_pend(opts->cache, it->key, &it->c, it->oname) || kw_strv_push(&objs, it->opath) ||
		    take_index(&known, &kcap, &n_known, &it->c) || kw_strv_push(&names, it->oname) ||
		    kw_grow(&mobjs, &mcap, n_mo + 1, sizeof(*mobjs))) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		n++;
		mo = &mobjs[n_mo++];
		res->n_reused += it->from != NULL;
		if (it->json) {
			memset(mo, 0, sizeof(*mo));
			mo->json = it->json;
			it->json = NULL;
		} else if (fill_manifest_object(a, it, mo, false)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}

	/*
	 * The plugins the converted system libraries load by path, after
	 * everything: like modules (their exports their own, for the emulated
	 * dlsym), registered under their path. One needing a library that is
	 * neither converted here nor provided is left out, with a warning.
	 */
	for (k = 0; k < v.n_objects; k++) {
		const struct kw_km_object *o = &v.objects[k];

		for (i = 0; i < o->plugins.n; i++) {
			const char *pp = o->plugins.v[i];
			const char *pbase = strrchr(pp, '/') + 1;
			char *rooted = kw_ctx_rooted(ctx, pp), *oname = NULL, *opath = NULL;
			struct kw_elf_info *pinfo = NULL;
			struct kw_error e2 = { 0 };
			struct kw_km_converted c;
			struct kw_km_manifest_object *mo;
			unsigned char *buf = NULL;
			size_t len = 0, j, l;
			const char *missing = NULL, *from = NULL;
			unsigned char key[32];

			if (kw_strv_find(&plugins_done, pp) >= 0) {
				free(rooted);
				continue; /* another library of the wheel loads it too: converted once */
			}
			if (!rooted || kw_strv_push(&plugins_done, pp)) {
				free(rooted);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			if (kw_elf_parse_file(rooted, &pinfo, &e2) != 0) {
				free(rooted);
				continue;
			}
			for (j = 0; j < pinfo->n_needed && !missing; j++) {
				bool have = kw_km_static_provided(pinfo->needed[j]);

				for (l = 0; !have && l < v.n_objects; l++) {
					have = !v.objects[l].executable && v.objects[l].soname &&
					       strcmp(v.objects[l].soname, pinfo->needed[j]) == 0;
				}
				missing = have ? NULL : pinfo->needed[j];
			}
			if (missing) {
				char *wm = kw_asprintf("%s: plugin of %s, needs %s, which is not converted: left out", pp,
						       o->name, missing);

				kw_elf_info_free(pinfo);
				free(rooted);
				if (kw_strv_push_own(&v.warnings, wm)) {
					kw_error_set(err, rc, "out of memory");
					goto out;
				}
				continue;
			}
			kw_elf_info_free(pinfo);
			oname = kw_asprintf("%03zu-%s.o", n, pbase);
			opath = oname ? kw_asprintf("%s/%s", objdir.tmp, oname) : NULL;
			if (!opath) {
				free(rooted);
				free(oname);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			rc = kw_map_file(rooted, &buf, &len, err);
			free(rooted);
			if (!rc) {
				/* Tagged as libraries are: lib-dynload's copy of the same plugin links once. */
				char tag[13];

				km_symbol_tag(buf, len, tag);
				rc = tagged_name(objdir.tmp, n, pbase, tag, &opath, &oname, err);
				if (!rc) {
					rc = km_convert(opts->cache, buf, len, tag, pp, pp + 1, KW_KM_MODULE,
							opts->no_wx ? KW_KM_NO_WX : 0, &runtime, opath, &c, key, &from,
							err);
				}
				kw_unmap_file(buf, len);
			}
			if (rc) {
				if (rc != KW_ENOMEM) {
					kw_error_prefix(err, "'%s'", a->filename);
				}
				free(opath);
				free(oname);
				goto out;
			}
			rc = KW_ENOMEM;
			if (km_cache_pend(opts->cache, key, &c, oname)) {
				kw_km_converted_release(&c);
				free(opath);
				free(oname);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			/* Both pushes run: each takes its string, pushed or not. */
			if (kw_strv_push_own(&objs, opath) | kw_strv_push_own(&names, oname) ||
			    take_index(&known, &kcap, &n_known, &c) || kw_grow(&mobjs, &mcap, n_mo + 1, sizeof(*mobjs))) {
				kw_km_converted_release(&c);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			n++;
			mo = &mobjs[n_mo++];
			memset(mo, 0, sizeof(*mo));
			mo->path = kw_strdup(pp);
			mo->id = kw_strdup(pp + 1);
			mo->object = kw_strdup(names.v[names.n - 1]);
			mo->mode = KW_KM_MODULE;
			if (from) {
				mo->reused_from = kw_strdup(from);
				res->n_reused++;
			}
			memcpy(mo->symbol_tag, c.tag, sizeof(mo->symbol_tag));
			mo->exports = c.exports;
			mo->undefined = c.undefined;
			memset(&c.exports, 0, sizeof(c.exports));
			memset(&c.undefined, 0, sizeof(c.undefined));
			mo->n_relocs = c.n_relocs;
			mo->n_registered = c.n_registered;
			kw_km_converted_release(&c);
			{
				char *wm = kw_asprintf("a plugin %s loads by path: converted with it", o->name);

				if (!mo->path || !mo->id || !mo->object || (from && !mo->reused_from) ||
				    kw_strv_push_own(&mo->warnings, wm)) {
					kw_error_set(err, rc, "out of memory");
					goto out;
				}
			}
		}
	}
	/* System libraries the objects were linked against become static flags. */
	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && k < g->n_nodes; k++) {
			const char *f = km_static_flag(g->nodes[k].name);

			if (f && kw_strv_push_unique(&flags, f)) {
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
		}
	}
	if (opts->progress) {
		opts->progress(opts->progress_ud, "writing", 0, 0);
	}
	rc = KW_ENOMEM;
	text = link_text(res->archive, &flags);
	if (!text) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if ((rc = km_out_open(&o_link, res->link_file, err)) || (rc = km_out_write(&o_link, text, strlen(text), err))) {
		goto out;
	}
	free(text);
	text = NULL;
	if ((rc = km_out_open(&o_archive, res->archive, err))) {
		goto out;
	}
	{
		struct kw_km_manifest m = { a->filename, res->archive, res->link_file, &flags, &v.warnings, mobjs, n_mo,
					    NULL, NULL, NULL, NULL };
		struct finish fin = { .pool = ctx->pool, .opts = opts, .archive_f = o_archive.f, .archive = res->archive,
				      .thin_dir = strrchr(objdir_path, '/') + 1, .objs = &objs, .names = &names,
				      .known = known, .m = &m,
				      .mobjs = mobjs, .n_mo = n_mo,
				      .items = items, .n_items = n_items };

		/* The archive (its index from the conversions) and the manifest (joined from its entries) side by side. */
		kw_pool_run(ctx->pool, 2, finish_task, &fin);
		mobjs = NULL;
		n_mo = 0;
		items = NULL;
		n_items = 0;
		text = fin.text;
		for (i = 0; i < 2 && !fin.rc[i]; i++) {
		}
		if (i < 2) {
			rc = kw_error_set(err, fin.rc[i], "%s", fin.err[i].msg);
			goto out;
		}
	}
	if ((rc = km_out_close(&o_archive, err))) {
		goto out;
	}
	if ((rc = km_out_open(&o_manifest, res->manifest, err)) ||
	    (rc = km_out_write(&o_manifest, text, strlen(text), err))) {
		goto out;
	}
	res->n_objects = n;
	res->cxx = kw_strv_find(&flags, "-lstdc++") >= 0;
	/*
	 * The payload wheel installs without the objects directory, so its
	 * archive holds the objects: made in a temporary beside the thin one,
	 * the manifest read from its own; the wheel's commit is atomic.
	 */
	if (opts->wheel_dir &&
	    ((rc = km_out_open(&o_full, res->archive, err)) ||
	     (rc = km_archive_write(o_full.f, res->archive, (const char *const *)objs.v, (const char *const *)names.v,
				    objs.n, known, ctx->pool, NULL, err)) ||
	     (rc = km_out_close(&o_full, err)) ||
	     (rc = write_km_wheel(w, a, &v, res, &flags, o_full.tmp, o_manifest.tmp, opts->wheel_dir, &wheel, err)))) {
		goto out;
	}
	km_out_discard(&o_full);
	if ((rc = km_dir_commit(&objdir, err)) || (rc = km_out_commit(&o_archive, err)) ||
	    (rc = km_out_commit(&o_link, err)) || (rc = km_out_commit(&o_manifest, err))) {
		goto out;
	}
	res->wheel = wheel;
	wheel = NULL;
	/* The wheel is in place; were this out of memory, later wheels would only convert again. */
	(void)km_cache_commit(opts->cache, objdir_path, a->filename);
	rc = 0;
out:
	if (rc) {
		km_cache_drop(opts->cache);
		kw_km_wheel_release(res);
	}
	km_dir_discard(&objdir);
	km_out_discard(&o_archive);
	km_out_discard(&o_link);
	km_out_discard(&o_manifest);
	km_out_discard(&o_full);
	free(objdir_path);
	free(order);
	conv_items_release(items, n_items);
	free(run.by_size);
	free(text);
	free(wheel);
	manifest_objects_release(mobjs, n_mo);
	kw_strv_release(&objs);
	kw_strv_release(&names);
	kw_strv_release(&flags);
	kw_strv_release(&runtime);
	kw_strv_release(&plugins_done);
	for (i = 0; i < n_known; i++) {
		free((char *)known[i].names);
	}
	free(known);
	kw_km_verdict_release(&v);
	kw_wheel_free(w);
	kw_audit_free(a);
	return rc;
}
