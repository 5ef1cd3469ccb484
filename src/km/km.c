/* SPDX-License-Identifier: MIT */
/*
 * `kwheel km` for one wheel: judge, delink every object the extensions need
 * (wheel members, and with deps the external libraries a static link does
 * not provide), collect them in one archive, and write the link file and
 * the manifest beside it. And the link of a static CPython from them.
 */
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
static const char *static_flag(const char *soname)
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

static void manifest_objects_release(struct kw_km_manifest_object *mo, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(mo[i].path);
		free(mo[i].id);
		free(mo[i].object);
		kw_strv_release(&mo[i].exports);
		kw_strv_release(&mo[i].undefined);
		kw_strv_release(&mo[i].needed);
		kw_strv_release(&mo[i].warnings);
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

/* ---- the wheel for the KM payload ---- */

static int sha_chunk(void *ud, const void *data, size_t len)
{
	kw_sha256_update(ud, data, len);
	return 0;
}

/* Add a file from disk into the wheel under name, with its RECORD line. */
static int add_disk_file(struct kw_wheel_writer *ww, struct kw_record_text *r, const char *name, const char *path,
			 struct kw_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	char *h;
	int rc = kw_map_file(path, &buf, &len, err);

	if (rc) {
		return rc;
	}
	h = kw_record_digest_buf(buf, len);
	kw_unmap_file(buf, len);
	if (!h || kw_record_text_add(r, name, h, (long long)len)) {
		free(h);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	free(h);
	return kw_wheel_writer_add_file(ww, name, path, 0644, err);
}

/*
 * The same wheel for the payload's tree: Python files as they are, each
 * converted object replaced by an empty stub (the import system needs the
 * name; the emulated dlopen never reads it), the archive, link file and
 * manifest under <dist-info>/km/, and a km_<arch> platform tag.
 */
static int cmp_entry_path(const void *key, const void *e)
{
	return strcmp(key, ((const struct kw_record_entry *)e)->path);
}

/*
 * "algo=digest" of m's RECORD line when the audit found no problem at all in
 * RECORD (so that line was checked against the member's bytes), or NULL: the
 * member is then hashed again.
 */
static char *verified_hash(const struct kw_audit *a, const struct kw_wheel_member *m)
{
	const struct kw_record_entry *e;

	if (a->record.n_problems || !a->record.n_entries) {
		return NULL;
	}
	/* The audit left the entries sorted by path. */
	e = bsearch(m->name, a->record.entries, a->record.n_entries, sizeof(*e), cmp_entry_path);
	if (!e || !e->algo || !e->digest || e->size < 0 || (uint64_t)e->size != m->size) {
		return NULL;
	}
	return kw_asprintf("%s=%s", e->algo, e->digest);
}

/*
 * The link file: the archive as a whole (nothing names a module by symbol),
 * the emulated loader's wraps, then the static libraries. Built from the
 * flag list, for the file beside the archive and the one in the payload
 * wheel alike. New string (free()), NULL if out of memory.
 */
static char *link_text(const char *archive, const struct kw_strv *flags)
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

static int write_km_wheel(struct kw_wheel *w, const struct kw_audit *a, const struct kw_km_verdict *v,
			  const struct kw_km_wheel *res, const struct kw_strv *flags, const char *archive_src,
			  const char *manifest_src, const char *outdir, char **out_path, struct kw_error *err)
{
	const char *di = kw_wheel_dist_info(w), *ab = strrchr(res->archive, '/') + 1;
	const char *mb = strrchr(res->manifest, '/') + 1;
	char *plat = NULL, *tag = NULL, *record_name = kw_asprintf("%s/RECORD", di), *inner_link = NULL;
	char *wheel_name = kw_asprintf("%s/WHEEL", di), *lpath = NULL, *name = NULL;
	struct kw_wheel_writer *ww = NULL;
	struct kw_strv pys = { 0 }, abis = { 0 };
	bool tags_done = false;
	struct kw_record_text r = { 0 };
	int64_t mtime = 0;
	size_t i, k;
	int rc = KW_ENOMEM;
	const char *sde = getenv("SOURCE_DATE_EPOCH");

	*out_path = NULL;
	plat = kw_asprintf("km_%s", a->arch ? a->arch : "x86_64");
	tag = plat ? kw_asprintf("%s-%s-%s", a->name.python, a->name.abi, plat) : NULL;
	name = tag ? kw_asprintf("%s/%s-%s%s%s-%s.whl", outdir, a->name.distribution, a->name.version,
				 a->name.build ? "-" : "", a->name.build ? a->name.build : "", tag)
		   : NULL;
	if (!record_name || !wheel_name || !name) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (i = 0; i < kw_wheel_member_count(w); i++) {
		if (kw_wheel_member(w, i)->mtime > mtime) {
			mtime = kw_wheel_member(w, i)->mtime;
		}
	}
	if (sde && *sde) {
		mtime = strtoll(sde, NULL, 10);
	}
	if ((rc = kw_wheel_writer_new(name, -1, mtime, &ww, err))) {
		goto out;
	}
	rc = KW_ENOMEM;
	for (i = 0; i < kw_wheel_member_count(w); i++) {
		const struct kw_wheel_member *m = kw_wheel_member(w, i);
		bool converted = false;
		struct kw_sha256 sha;
		char *h;

		if (m->is_dir || strcmp(m->name, record_name) == 0) {
			continue;
		}
		for (k = 0; k < v->n_objects && !converted; k++) {
			converted = v->objects[k].in_wheel && !v->objects[k].executable &&
				    strcmp(v->objects[k].name, m->name) == 0;
		}
		if (converted) {
			char *empty = kw_malloc(1);

			h = kw_record_digest_buf("", 0);
			if (!empty || !h || kw_record_text_add(&r, m->name, h, 0)) {
				free(empty);
				free(h);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			free(h);
			if ((rc = kw_wheel_writer_add_buffer(ww, m->name, empty, 0, 0755, err))) {
				goto out;
			}
			rc = KW_ENOMEM;
			continue;
		}
		if (strcmp(m->name, wheel_name) == 0) {
			char *text = NULL, *nt;
			size_t len = 0, at = 0;

			if ((rc = kw_wheel_read(w, i, (unsigned char **)&text, &len, err))) {
				goto out;
			}
			rc = KW_ENOMEM;
			/* Tag lines say where the wheel installs: the payload's tree only. */
			/* One Tag line per python x abi pair of the (compressed) name, as the spec expands them. */
			if (!tags_done) {
				if (kw_strv_split(&pys, a->name.python, '.') || kw_strv_split(&abis, a->name.abi, '.')) {
					free(text);
					kw_error_set(err, rc, "out of memory");
					goto out;
				}
				tags_done = true;
			}
			{
				struct kw_buf b = { 0 };

				for (size_t pos = 0; pos < len;) {
					const char *nl = memchr(text + pos, '\n', len - pos);
					size_t ll = nl ? (size_t)(nl - (text + pos)) + 1 : len - pos;

					if (!(ll >= 4 && strncasecmp(text + pos, "Tag:", 4) == 0)) {
						kw_buf_append_n(&b, text + pos, ll);
					}
					pos += ll;
				}
				free(text);
				if (b.len && b.s[b.len - 1] != '\n') {
					kw_buf_append(&b, "\n");
				}
				for (size_t pi = 0; pi < pys.n; pi++) {
					for (size_t ai = 0; ai < abis.n; ai++) {
						kw_buf_appendf(&b, "Tag: %s-%s-%s\n", pys.v[pi], abis.v[ai], plat);
					}
				}
				at = b.len;
				nt = kw_buf_take(&b);
			}
			if (!nt) {
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			h = kw_record_digest_buf(nt, at);
			if (!h || kw_record_text_add(&r, m->name, h, (long long)at)) {
				free(h);
				free(nt);
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			free(h);
			if ((rc = kw_wheel_writer_add_buffer(ww, m->name, nt, at, 0644, err))) {
				goto out;
			}
			rc = KW_ENOMEM;
			continue;
		}
		/* The audit has just checked this member against its RECORD line: a clean RECORD's line stands. */
		h = verified_hash(a, m);
		if (!h) {
			kw_sha256_init(&sha);
			if ((rc = kw_wheel_stream(w, i, sha_chunk, &sha, err))) {
				goto out;
			}
			rc = KW_ENOMEM;
			h = kw_record_digest(&sha);
		}
		if (!h || kw_record_text_add(&r, m->name, h, (long long)m->size)) {
			free(h);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		free(h);
		if ((rc = kw_wheel_writer_copy(ww, w, i, err))) {
			goto out;
		}
		rc = KW_ENOMEM;
	}
	/* The link file inside the wheel names the archive relative to the install root. */
	lpath = kw_asprintf("%s/km/%s.km.link", di, a->name.distribution);
	{
		char *inner_archive = kw_asprintf("%s/km/%s", di, ab);

		inner_link = inner_archive ? link_text(inner_archive, flags) : NULL;
		free(inner_archive);
	}
	if (!lpath || !inner_link) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	{
		size_t n = strlen(inner_link);
		char *h;

		h = kw_record_digest_buf(inner_link, n);
		if (!h || kw_record_text_add(&r, lpath, h, (long long)n)) {
			free(h);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		free(h);
		rc = kw_wheel_writer_add_buffer(ww, lpath, inner_link, n, 0644, err);
		inner_link = NULL;
		if (rc) {
			goto out;
		}
	}
	{
		char *an = kw_asprintf("%s/km/%s", di, ab), *mn = kw_asprintf("%s/km/%s", di, mb);

		rc = (!an || !mn) ? kw_error_set(err, KW_ENOMEM, "out of memory")
				  : add_disk_file(ww, &r, an, archive_src, err);
		if (!rc) {
			rc = add_disk_file(ww, &r, mn, manifest_src, err);
		}
		free(an);
		free(mn);
		if (rc) {
			goto out;
		}
	}
	rc = KW_ENOMEM;
	if (kw_record_text_add(&r, record_name, NULL, -1)) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	rc = kw_wheel_writer_add_buffer(ww, record_name, r.buf, r.len, 0644, err);
	r.buf = NULL;
	if (!rc) {
		rc = kw_wheel_writer_commit(ww, err);
	}
	ww = NULL;
	if (!rc) {
		*out_path = name;
		name = NULL;
	}
out:
	kw_wheel_writer_abort(ww);
	kw_strv_release(&pys);
	kw_strv_release(&abis);
	free(r.buf);
	free(plat);
	free(tag);
	free(record_name);
	free(wheel_name);
	free(lpath);
	free(inner_link);
	free(name);
	return rc;
}

int kw_km_convert_wheel(struct kw_ctx *ctx, const char *path, const struct kw_km_options *opts,
			struct kw_km_wheel *res, struct kw_error *err)
{
	struct kw_audit *a = NULL;
	struct kw_wheel *w = NULL;
	struct kw_km_verdict v = { 0 };
	struct kw_strv objs = { 0 }, names = { 0 }, flags = { 0 };
	struct kw_km_manifest_object *mobjs = NULL;
	size_t mcap = 0, n_mo = 0;
	struct km_dir objdir = { 0 };
	struct km_out o_archive = { 0 }, o_link = { 0 }, o_manifest = { 0 };
	char *objdir_path = NULL, *text = NULL, *wheel = NULL;
	const char *dist;
	size_t i, k, n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = kw_audit_wheel(ctx, path, &a, err);
	if (rc) {
		return rc;
	}
	if ((rc = kw_km_judge(a, &v, err))) {
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
	 * Link order is initialisation order: libraries first, the most deeply
	 * needed first (the reverse of load order), then the modules, as ld.so
	 * runs initialisers dependencies first.
	 */
	for (k = 0; k < v.n_objects; k++) {
		size_t n_libs = 0, j, i2;
		const struct kw_km_object *o = NULL;
		struct kw_km_converted c;
		unsigned char *buf = NULL;
		size_t len = 0;
		bool mapped = false;
		const char *base;
		char *opath, *oname;
		struct kw_km_manifest_object *mo;

		for (j = 0; j < v.n_objects; j++) {
			n_libs += v.objects[j].mode == KW_KM_LIB;
		}
		if (k < n_libs) {
			/* the (k+1)-th lib-mode object counted from the end */
			for (j = v.n_objects, i2 = 0; j-- > 0;) {
				if (v.objects[j].mode == KW_KM_LIB && i2++ == k) {
					o = &v.objects[j];
					break;
				}
			}
		} else {
			for (j = 0, i2 = n_libs; j < v.n_objects; j++) {
				if (v.objects[j].mode == KW_KM_MODULE && i2++ == k) {
					o = &v.objects[j];
					break;
				}
			}
		}
		if (!o) {
			continue;
		}
		base = strrchr(o->name, '/') ? strrchr(o->name, '/') + 1 : o->name;

		if (o->executable) {
			continue;
		}
		if (o->in_wheel) {
			long mi = kw_wheel_find(w, o->name);

			if (mi < 0) {
				rc = kw_error_set(err, KW_EINTERNAL, "'%s': member '%s' vanished", a->filename, o->name);
				goto out;
			}
			rc = kw_wheel_read(w, (size_t)mi, &buf, &len, err);
		} else {
			char *rooted = kw_ctx_rooted(ctx, o->name);

			rc = rooted ? kw_map_file(rooted, &buf, &len, err) : kw_error_set(err, KW_ENOMEM, "out of memory");
			mapped = true;
			free(rooted);
		}
		if (rc) {
			goto out;
		}
		oname = kw_asprintf("%03zu-%s.o", n, base);
		opath = oname ? kw_asprintf("%s/%s", objdir.tmp, oname) : NULL;
		if (!opath) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		} else {
			rc = kw_km_delink(buf, len, o->name, o->in_wheel ? o->name : base, o->mode,
					  opts->no_wx ? KW_KM_NO_WX : 0, opath, &c, err);
		}
		if (mapped) {
			kw_unmap_file(buf, len);
		} else {
			free(buf);
		}
		if (rc) {
			/* The converter names the member; the user needs the wheel too. */
			if (rc != KW_ENOMEM) {
				kw_error_prefix(err, "'%s'", a->filename);
			}
			free(opath);
			free(oname);
			goto out;
		}
		rc = KW_ENOMEM;
		if (kw_strv_push_own(&objs, opath) | kw_strv_push_own(&names, oname)) {
			kw_km_converted_release(&c);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		n++;
		if (kw_grow(&mobjs, &mcap, n_mo + 1, sizeof(*mobjs))) {
			kw_km_converted_release(&c);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		mo = &mobjs[n_mo++];
		memset(mo, 0, sizeof(*mo));
		{
			const struct kw_elf_info *info = NULL;
			int bad = 0;

			mo->path = kw_strdup(o->name);
			mo->id = kw_strdup(o->in_wheel ? o->name : base);
			mo->object = kw_strdup(names.v[names.n - 1]);
			mo->in_wheel = o->in_wheel;
			mo->mode = o->mode;
			memcpy(mo->symbol_tag, c.tag, sizeof(mo->symbol_tag));
			mo->exports = c.exports;
			mo->undefined = c.undefined;
			memset(&c.exports, 0, sizeof(c.exports));
			memset(&c.undefined, 0, sizeof(c.undefined));
			mo->n_relocs = c.n_relocs;
			mo->n_registered = c.n_registered;
			kw_km_converted_release(&c);
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
			if (bad || !mo->path || !mo->id || !mo->object) {
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
		}
	}
	/* System libraries the objects were linked against become static flags. */
	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && k < g->n_nodes; k++) {
			const char *f = static_flag(g->nodes[k].name);

			if (f && kw_strv_push_unique(&flags, f)) {
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
		}
	}
	if ((rc = km_out_open(&o_archive, res->archive, err)) ||
	    (rc = km_archive_write(o_archive.f, res->archive, (const char *const *)objs.v,
				   (const char *const *)names.v, objs.n, err)) ||
	    (rc = km_out_close(&o_archive, err))) {
		goto out;
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
	rc = KW_ENOMEM;
	{
		struct kw_km_manifest m = { a->filename, res->archive, res->link_file, &flags, &v.warnings, mobjs, n_mo,
					    NULL, NULL, NULL, NULL };

		if ((rc = opts->manifest(&m, &text, err))) {
			goto out;
		}
	}
	if ((rc = km_out_open(&o_manifest, res->manifest, err)) ||
	    (rc = km_out_write(&o_manifest, text, strlen(text), err))) {
		goto out;
	}
	res->n_objects = n;
	res->cxx = kw_strv_find(&flags, "-lstdc++") >= 0;
	/* The payload wheel reads the archive and manifest from their temporaries; its own commit is atomic. */
	if (opts->wheel_dir && (rc = write_km_wheel(w, a, &v, res, &flags, o_archive.tmp, o_manifest.tmp,
						    opts->wheel_dir, &wheel, err))) {
		goto out;
	}
	if ((rc = km_dir_commit(&objdir, err)) || (rc = km_out_commit(&o_archive, err)) ||
	    (rc = km_out_commit(&o_link, err)) || (rc = km_out_commit(&o_manifest, err))) {
		goto out;
	}
	res->wheel = wheel;
	wheel = NULL;
	rc = 0;
out:
	if (rc) {
		kw_km_wheel_release(res);
	}
	km_dir_discard(&objdir);
	km_out_discard(&o_archive);
	km_out_discard(&o_link);
	km_out_discard(&o_manifest);
	free(objdir_path);
	free(text);
	free(wheel);
	manifest_objects_release(mobjs, n_mo);
	kw_strv_release(&objs);
	kw_strv_release(&names);
	kw_strv_release(&flags);
	kw_km_verdict_release(&v);
	kw_wheel_free(w);
	kw_audit_free(a);
	return rc;
}

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
 * The interpreter's own lib-dynload modules go in too, or the static
 * interpreter could not import the standard library's C parts (json,
 * decimal, contextvars, ...). Those needing libraries a static link does not
 * provide (ssl, sqlite3, ctypes, ...) are left out and named.
 */
static int convert_dynload(const char *dir, const char *outdir, char **link_file, struct kw_strv *skipped,
			   struct kw_error *err)
{
	struct kw_strv objs = { 0 }, names = { 0 }, files = { 0 };
	char *objdir = kw_asprintf("%s/lib-dynload.km", outdir), *archive = kw_asprintf("%s/libdynload.km.a", outdir);
	struct dirent *de;
	DIR *d = NULL;
	struct km_dir od = { 0 };
	struct km_out o_archive = { 0 }, o_link = { 0 };
	size_t i, k;
	char *text = NULL;
	int rc = KW_ENOMEM;

	*link_file = kw_asprintf("%s/lib-dynload.km.link", outdir);
	if (!objdir || !archive || !*link_file) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	/* As for wheels: made beside the final names, put in place together at the end. */
	if ((rc = km_dir_open(&od, objdir, err))) {
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
		char *oname = kw_asprintf("%03zu-%s.o", objs.n, files.v[i]), *opath = NULL;
		struct kw_elf_info *info = NULL;
		struct kw_error e2 = { 0 };
		struct kw_km_converted c;
		unsigned char *buf = NULL;
		size_t len = 0;
		bool ok = path && id && oname;

		if (ok && kw_elf_parse_file(path, &info, &e2) == 0) {
			for (k = 0; k < info->n_needed; k++) {
				ok = ok && kw_km_static_provided(info->needed[k]);
			}
			kw_elf_info_free(info);
		} else {
			ok = false;
		}
		if (ok && (opath = kw_asprintf("%s/%s", od.tmp, oname)) && kw_map_file(path, &buf, &len, &e2) == 0) {
			ok = kw_km_delink(buf, len, path, id, KW_KM_MODULE, 0, opath, &c, &e2) == 0;
			kw_unmap_file(buf, len);
			if (ok) {
				kw_km_converted_release(&c);
			}
		} else {
			ok = false;
		}
		if (ok ? kw_strv_push_own(&objs, opath) | kw_strv_push_own(&names, oname)
		       : kw_strv_push(skipped, files.v[i])) {
			free(path);
			free(id);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		if (!ok) {
			free(opath);
			free(oname);
		}
		free(path);
		free(id);
	}
	if ((rc = km_out_open(&o_archive, archive, err)) ||
	    (rc = km_archive_write(o_archive.f, archive, (const char *const *)objs.v, (const char *const *)names.v,
				   objs.n, err)) ||
	    (rc = km_out_close(&o_archive, err))) {
		goto out;
	}
	text = kw_asprintf("-Wl,--whole-archive\n%s\n-Wl,--no-whole-archive\n-lcrypt\n", archive);
	if (!text) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = km_out_open(&o_link, *link_file, err)) || (rc = km_out_write(&o_link, text, strlen(text), err)) ||
	    (rc = km_dir_commit(&od, err)) || (rc = km_out_commit(&o_archive, err)) ||
	    (rc = km_out_commit(&o_link, err))) {
		goto out;
	}
	rc = 0;
out:
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
	kw_strv_release(&objs);
	kw_strv_release(&names);
	kw_strv_release(&files);
	free(objdir);
	free(archive);
	free(text);
	return rc;
}

int kw_km_link_python(const char *out, const char *python, const char *const *link_files, size_t n,
		      struct kw_strv *left_out, struct kw_error *err)
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
	struct kw_strv argv = { 0 };
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
		char *at = kw_asprintf("@%s", link_files[i]);

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
		rc = convert_dynload(lines[3], slash ? outdir : ".", &dyn_link, left_out, err);
		free(outdir);
		if (rc) {
			goto out;
		}
		rc = KW_ENOMEM;
		p = kw_asprintf("@%s", dyn_link);
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
	rmdir(tmpd);
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
