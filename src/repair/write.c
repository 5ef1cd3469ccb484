/* SPDX-License-Identifier: MIT */
/* repair's output: the new wheel as a plan for the one rewrite of wheel/, or the input copied whole. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The SBOM of what was vendored and from where (sbom.c), as the caller's renderer writes it. */
static int sbom(const struct job *j, const char *out_path, char **doc, struct kw_error *err)
{
	struct kw_sbom_lib *libs = kw_calloc(j->n_inst + 1, sizeof(*libs));
	char **members = kw_calloc(j->n_inst + 1, sizeof(*members));
	size_t i;
	int rc = libs && members ? 0 : oom(err);

	for (i = 0; !rc && i < j->n_inst; i++) {
		members[i] = kw_asprintf("%s/%s", j->libs_dir, j->inst[i].newname);
		if (!members[i]) {
			rc = oom(err);
			break;
		}
		libs[i].soname = j->inst[i].soname;
		libs[i].realpath = j->inst[i].realpath;
		libs[i].path = j->inst[i].node->path;
		libs[i].sha256 = j->inst[i].sha;
		libs[i].member = members[i];
	}
	if (!rc) {
		rc = kw_repair_sbom(j->ctx, &j->a->name, base_name(out_path), libs, j->n_inst, j->o->sbom, doc, err);
	}
	for (i = 0; members && i < j->n_inst; i++) {
		free(members[i]);
	}
	free(members);
	free(libs);
	return rc;
}

/* ---- writing ---------------------------------------------------------- */

static bool replaced_cb(void *ud, const char *plat)
{
	return repair_replaced_tag(ud, plat);
}

/*
 * The new wheel through the one rewrite of wheel/: vendored libraries
 * added, edited members replaced, moved programs added with a launcher in
 * their place, WHEEL retagged, an SBOM added, RECORD regenerated from the
 * audit's verified lines (a wheel whose RECORD does not hold was refused).
 */
int repair_write_wheel(struct job *j, const char *out_path, int64_t mtime, struct kw_error *err)
{
	struct kw_wheel *w = j->w;
	const char *di = kw_wheel_dist_info(w);
	char *sbom_name = kw_asprintf("%s/sboms/kwheel.cdx.json", di);
	struct kw_wheel_rewrite *rw = NULL;
	struct kw_wheel_retag rt = { (const char *const *)j->plats.v, j->plats.n, replaced_cb, j };
	size_t i;
	long old_sbom;
	int rc;

	if (!sbom_name) {
		return oom(err);
	}
	rc = kw_wheel_rewrite_new(w, &j->a->record, out_path, j->o->zip_level, mtime, &rw, err);
	/* Pyodide's loadPackage loads the .so members in archive order: the grafted libraries first. */
	if (!rc && j->wasm) {
		kw_wheel_rewrite_additions_first(rw);
	}
	if (!rc && j->o->progress) {
		kw_wheel_rewrite_on_progress(rw, j->o->progress, j->o->progress_ud);
	}
	/* Every file given is a work file, deleted with the work directory anyway. */
	if (!rc) {
		kw_wheel_rewrite_consume_files(rw);
	}
	for (i = 0; !rc && i < j->n_inst; i++) {
		char *name = kw_asprintf("%s/%s", j->libs_dir, j->inst[i].newname);

		rc = name ? kw_wheel_rewrite_add_file(rw, name, j->inst[i].work, 0755, err) : oom(err);
		free(name);
	}
	for (i = 0; !rc && i < j->n_member_work; i++) {
		if (!j->member_work[i]) {
			continue;
		}
		if (j->member_move[i]) {
			/* The program moves into the package; its command becomes a launcher. */
			char *text = repair_script_launcher(j->member_move[i]);

			rc = text ? kw_wheel_rewrite_replace_buffer(rw, i, text, strlen(text), 0755, err) : oom(err);
			if (!rc) {
				rc = kw_wheel_rewrite_add_file(rw, j->member_move[i], j->member_work[i], 0755, err);
			}
		} else {
			rc = kw_wheel_rewrite_replace_file(rw, i, j->member_work[i], 0755, err);
		}
	}
	/* A wheel repaired before: its SBOM describes the old grafts. */
	old_sbom = kw_wheel_find(w, sbom_name);
	if (!rc && old_sbom >= 0) {
		rc = kw_wheel_rewrite_drop(rw, (size_t)old_sbom, err);
	}
	if (!rc && !j->o->no_update_tags && !j->wasm) {
		rc = kw_wheel_rewrite_retag(rw, &rt, err);
	}
	if (!rc && j->n_inst > 0 && j->o->sbom) {
		char *doc = NULL;

		rc = sbom(j, out_path, &doc, err);
		if (!rc) {
			rc = kw_wheel_rewrite_add_buffer(rw, sbom_name, doc, strlen(doc), 0644, err);
		}
	}
	if (!rc) {
		rc = kw_wheel_rewrite_commit(rw, err);
		rw = NULL;
	}
	kw_wheel_rewrite_abort(rw);
	free(sbom_name);
	return rc;
}

/* A wheel that needs no change: the one writer, copying the archive whole. */
int repair_copy_as_is(struct job *j, const char *src, const char *out_path, struct kw_error *err)
{
	struct kw_wheel_writer *ww = NULL;
	int rc = kw_wheel_open(j->ctx, src, &j->w, err);

	if (!rc) {
		rc = kw_wheel_writer_new(out_path, j->o->zip_level, 0, &ww, err);
	}
	if (!rc) {
		rc = kw_wheel_writer_copy_whole(ww, j->w, err);
	}
	if (!rc) {
		rc = kw_wheel_writer_commit(ww, err);
		ww = NULL;
	}
	kw_wheel_writer_abort(ww);
	return rc;
}
