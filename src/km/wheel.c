/* SPDX-License-Identifier: MIT */
/* The payload wheel of `kwheel km`: the input wheel with converted members stubbed and the KM outputs added. */
#include <stdlib.h>
#include <string.h>

#include "kwheel/km.h"

#include "internal.h"

/* ---- the wheel for the KM payload ---- */

/*
 * The same wheel for the payload's tree, through the one rewrite of wheel/:
 * Python files as they are, each converted object replaced by an empty
 * stub (the import system needs the name; the emulated dlopen never reads
 * it), the archive, link file and manifest under <dist-info>/km/, and a
 * km_<arch> platform tag in place of every other (the payload installs in
 * KM only). RECORD lines are reused only when the audit found RECORD
 * without any problem.
 */
int write_km_wheel(struct kw_wheel *w, const struct kw_audit *a, const struct kw_km_verdict *v,
		   const struct kw_km_wheel *res, const struct kw_strv *flags, const char *archive_src,
		   const char *manifest_src, const char *outdir, char **out_path, struct kw_error *err)
{
	const char *di = kw_wheel_dist_info(w), *ab = strrchr(res->archive, '/') + 1;
	const char *mb = strrchr(res->manifest, '/') + 1, *sde = getenv("SOURCE_DATE_EPOCH");
	char *plat = kw_asprintf("km_%s", a->arch ? a->arch : "x86_64"), *name = NULL;
	char *lpath = kw_asprintf("%s/km/%s.km.link", di, a->name.distribution);
	char *apath = kw_asprintf("%s/km/%s", di, ab), *mpath = kw_asprintf("%s/km/%s", di, mb);
	char *inner_link = apath ? link_text(apath, flags) : NULL;
	const char *plats[1] = { plat };
	struct kw_wheel_retag rt = { plats, 1, NULL, NULL };
	struct kw_wheel_rewrite *rw = NULL;
	int64_t mtime = sde && *sde ? strtoll(sde, NULL, 10) : -1;
	size_t k;
	int rc = 0;

	*out_path = NULL;
	name = plat ? kw_asprintf("%s/%s-%s%s%s-%s-%s-%s.whl", outdir, a->name.distribution, a->name.version,
				  a->name.build ? "-" : "", a->name.build ? a->name.build : "", a->name.python,
				  a->name.abi, plat)
		    : NULL;
	if (!name || !lpath || !apath || !mpath || !inner_link) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	rc = kw_wheel_rewrite_new(w, a->record.n_problems ? NULL : &a->record, name, -1, mtime, &rw, err);
	for (k = 0; !rc && k < v->n_objects; k++) {
		long i = v->objects[k].in_wheel && !v->objects[k].executable ? kw_wheel_find(w, v->objects[k].name) : -1;

		if (i >= 0) {
			rc = kw_wheel_rewrite_replace_buffer(rw, (size_t)i, NULL, 0, 0755, err);
		}
	}
	if (!rc) {
		rc = kw_wheel_rewrite_retag(rw, &rt, err);
	}
	if (!rc) {
		/* The link file inside the wheel names the archive relative to the install root. */
		rc = kw_wheel_rewrite_add_buffer(rw, lpath, inner_link, strlen(inner_link), 0644, err);
		inner_link = NULL;
	}
	if (!rc) {
		rc = kw_wheel_rewrite_add_file(rw, apath, archive_src, 0644, err);
	}
	if (!rc) {
		rc = kw_wheel_rewrite_add_file(rw, mpath, manifest_src, 0644, err);
	}
	if (!rc) {
		rc = kw_wheel_rewrite_commit(rw, err);
		rw = NULL;
	}
	if (!rc) {
		*out_path = name;
		name = NULL;
	}
out:
	kw_wheel_rewrite_abort(rw);
	free(plat);
	free(name);
	free(lpath);
	free(apath);
	free(mpath);
	free(inner_link);
	return rc;
}
