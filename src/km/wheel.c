/* SPDX-License-Identifier: MIT */
/* The payload wheel of `kwheel km`: the input wheel with converted members stubbed and the KM outputs added. */
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


int write_km_wheel(struct kw_wheel *w, const struct kw_audit *a, const struct kw_km_verdict *v,
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
