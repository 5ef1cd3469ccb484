/* SPDX-License-Identifier: MIT */
/*
 * repair: audit, choose the policy, graft, relink, retag, repack.
 *
 * Everything is planned from the audit before the output is opened. ELF
 * members and grafted libraries that change are written to a private work
 * directory next to the output (so the final rename stays on one file
 * system), edited there with the patch module, and added to the new wheel
 * from disk; every other member is copied compressed, byte for byte. Peak
 * memory is bounded by the largest ELF member the audit parses, not by the
 * wheel. This file runs the steps in order: plan.c makes the plan,
 * relink.c the work files, write.c the output.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

void kw_repair_result_free(struct kw_repair_result *r)
{
	size_t i;

	if (!r) {
		return;
	}
	for (i = 0; i < r->n_grafts; i++) {
		free(r->grafts[i].soname);
		free(r->grafts[i].src);
		free(r->grafts[i].dest);
		free(r->grafts[i].sha256);
	}
	free(r->grafts);
	free(r->input);
	free(r->output);
	free(r->tag);
	free(r->note);
	kw_strv_release(&r->patched);
	kw_strv_release(&r->excluded);
	kw_strv_release(&r->excluded_deps);
	kw_strv_release(&r->libpython);
	kw_strv_release(&r->scripts);
	kw_strv_release(&r->twice);
	free(r);
}

/*
 * What auditwheel refuses to repair at all: ELF code in purelib (installers
 * may put it where no platform-specific code belongs), an ELF file for
 * another architecture than the file name's (retagging from the ELF would
 * hide a wrong build), and an extension built against a UCS2 Python. The
 * audit finds each; repair only words the refusal.
 */
static int refusals(const struct kw_audit *a, struct kw_error *err)
{
	size_t i;

	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].purelib) {
			return kw_error_set(err, KW_EPOLICY,
					    "'%s': invalid binary wheel: shared library %s in purelib; a wheel must be "
					    "platlib to be repaired",
					    a->filename, a->members[i].name);
		}
	}
	if (a->arch_mismatch) {
		return kw_error_set(err, KW_EPOLICY, "'%s': cannot repair: %s (tagged %s)", a->filename,
				    a->arch_mismatch, a->name.n_platforms ? a->name.platforms[0] : "?");
	}
	if (a->ucs2) {
		return kw_error_set(err, KW_EPOLICY,
				    "'%s': cannot repair: compiled against a UCS2 build of Python (PyUnicodeUCS2_*); "
				    "rebuild it against a wide-unicode Python",
				    a->filename);
	}
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool repair_same_file(const char *a, const char *b)
{
	return same_file(a, b);
}

/* --disable-isa-ext-check: the audit then does not hold an x86-64 ISA level above the baseline against a tag. */
static unsigned audit_flags(const struct kw_repair_opts *o)
{
	return o->no_isa_check ? KW_AUDIT_NO_ISA_CHECK : 0;
}

int kw_repair_wheel(struct kw_ctx *ctx, const char *path, const struct kw_repair_opts *o,
		    struct kw_repair_result **out, struct kw_error *err)
{
	struct job j;
	char *out_path = NULL, *plat = NULL;
	int64_t mtime = o->mtime;
	size_t i;
	int rc;

	*out = NULL;
	memset(&j, 0, sizeof(j));
	j.ctx = ctx;
	j.o = o;
	j.res = kw_calloc(1, sizeof(*j.res));
	if (!j.res || !(j.res->input = kw_strdup(path))) {
		rc = oom(err);
		goto out;
	}
	j.workfd = -1;
	/* With the RECORD check, as show does it: what repair vouches for, it has verified. */
	rc = kw_audit_wheel_flags(ctx, path, audit_flags(o), &j.a, err);
	if (rc) {
		goto out;
	}
	if (j.a->record.n_problems) {
		const struct kw_record_problem *p = &j.a->record.problems[0];

		rc = kw_error_set(err, KW_EHOSTILE, "'%s': RECORD does not hold for '%s' (%s%s%s): not repaired",
				  j.a->filename, p->path ? p->path : "RECORD", kw_record_problem_str(p->kind),
				  p->detail ? ": " : "", p->detail ? p->detail : "");
		goto out;
	}
	kw_wheel_sweep_stale(o->out_dir);
	if (j.a->pure && !o->allow_pure) {
		/* cibuildwheel tells a pure wheel by this refusal, as auditwheel's (exit status 1). */
		rc = kw_error_set(err, KW_EPOLICY,
				  "'%s': not a platform wheel: no ELF member (copy it with --allow-pure-python-wheel)",
				  j.a->filename);
		goto out;
	}
	if (j.a->pure) {
		out_path = kw_asprintf("%s/%s", o->out_dir, j.a->filename);
		j.res->action = KW_REPAIR_COPIED;
		j.res->note = kw_strdup("pure wheel (no ELF member, platform 'any'): nothing to repair, copied");
		j.res->tag = kw_strdup(j.a->name.platform);
		if (!out_path || !j.res->note || !j.res->tag) {
			rc = oom(err);
			goto out;
		}
		rc = same_file(path, out_path) ? 0 : repair_copy_as_is(&j, path, out_path, err);
		goto done;
	}
	/* wasm: the same audit, work files, writer and report; its own plan (wasm.c). */
	if (j.a->wasm) {
		rc = repair_wasm(&j, path, &out_path, err);
		if (rc) {
			goto out;
		}
		goto done;
	}
	if (j.a->not_elf || j.a->no_policy) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': %s", j.a->filename, j.a->not_elf ? j.a->not_elf : j.a->no_policy);
		goto out;
	}
	for (i = 0; i < j.a->n_members; i++) {
		if (j.a->members[i].error) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': member %s", j.a->filename, j.a->members[i].error);
			goto out;
		}
	}
	rc = refusals(j.a, err);
	if (rc) {
		goto out;
	}
	if (!j.a->arch || j.a->n_verdicts == 0) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': no manylinux or musllinux policy applies (architecture %s)",
				  j.a->filename, j.a->arch ? j.a->arch : "unknown");
		goto out;
	}
	j.android = j.a->family == KW_POLICY_ANDROID;
	rc = repair_plan_reach(&j, err);
	if (!rc) {
		rc = repair_choose(&j, err);
	}
	if (!rc) {
		rc = repair_plan_grafts(&j, err);
	}
	/* Android's loader honours DT_RUNPATH from API level 24 on: below it a graft would not be found. */
	if (!rc && j.android && j.graft.n > 0 && j.v->policy->major < 24) {
		rc = kw_error_set(err, KW_EPOLICY, "'%s': cannot graft %s: RUNPATH needs Android API level 24 or higher",
				  j.a->filename, j.graft.v[0]);
	}
	if (!rc) {
		rc = repair_plan_names(&j, err);
	}
	if (rc) {
		goto out;
	}
	plat = repair_joined(&j.name_plats, '.');
	j.libs_dir = kw_asprintf("%s%s", j.a->name.distribution, o->lib_sdir ? o->lib_sdir : ".libs");
	if (!plat || !j.libs_dir || !(j.res->tag = kw_strdup(plat))) {
		rc = oom(err);
		goto out;
	}
	/* Already what it would become: say so and copy, as auditwheel does. */
	if (j.n_inst == 0 && !o->strip && !j.has_libpython && strcmp(plat, j.a->name.platform) == 0) {
		out_path = kw_asprintf("%s/%s", o->out_dir, j.a->filename);
		j.res->action = KW_REPAIR_COPIED;
		j.res->note = kw_asprintf("already %s with no external library to vendor: copied", plat);
		if (!out_path || !j.res->note) {
			rc = oom(err);
			goto out;
		}
		rc = same_file(path, out_path) ? 0 : repair_copy_as_is(&j, path, out_path, err);
		goto done;
	}
	out_path = repair_new_filename(&j, plat);
	if (out_path) {
		char *full = kw_asprintf("%s/%s", o->out_dir, out_path);

		free(out_path);
		out_path = full;
	}
	if (!out_path) {
		rc = oom(err);
		goto out;
	}
	if (same_file(path, out_path)) {
		rc = kw_error_set(err, KW_EINVAL, "'%s': the output would overwrite the input", j.a->filename);
		goto out;
	}
	rc = kw_wheel_temp_dir(o->out_dir, ".kwheel-work", &j.workdir, &j.workfd, err);
	if (rc) {
		goto out;
	}
	/* A graft named like a member (or but for case) is refused by the rewrite, before anything is written. */
	rc = kw_wheel_open(ctx, path, &j.w, err);
	if (!rc && o->progress) {
		o->progress(o->progress_ud, "grafting and relinking", 0, 0);
	}
	if (!rc) {
		rc = repair_prepare_grafts(&j, err);
	}
	if (!rc) {
		rc = repair_prepare_members(&j, err);
	}
	if (rc) {
		goto out;
	}
	/* The report first: once the wheel is renamed into place nothing may fail. */
	j.res->action = KW_REPAIR_REPAIRED;
	j.res->grafts = kw_calloc(j.n_inst + 1, sizeof(*j.res->grafts));
	if (!j.res->grafts) {
		rc = oom(err);
		goto out;
	}
	/* What is vendored and also loaded from the system, under the verdict's rule, for what is really vendored. */
	for (i = 0; i < j.v->twice.n; i++) {
		const char *t = j.v->twice.v[i];
		char *so = kw_strndup(t, strcspn(t, "\t"));

		rc = so ? 0 : oom(err);
		if (!rc && kw_strv_find(&j.graft, so) >= 0 && kw_strv_push(&j.res->twice, t)) {
			rc = oom(err);
		}
		free(so);
		if (rc) {
			goto out;
		}
	}
	for (i = 0; i < j.n_inst; i++) {
		struct kw_repair_graft *g = &j.res->grafts[j.res->n_grafts++];

		g->soname = kw_strdup(j.inst[i].soname);
		g->src = kw_strdup(j.inst[i].realpath);
		g->dest = kw_asprintf("%s/%s", j.libs_dir, j.inst[i].newname);
		g->sha256 = kw_strdup(j.inst[i].sha);
		if (!g->soname || !g->src || !g->dest || !g->sha256) {
			rc = oom(err);
			goto out;
		}
	}
	rc = repair_write_wheel(&j, out_path, mtime, err);
	if (rc) {
		goto out;
	}
done:
	if (!rc) {
		j.res->output = out_path;
		out_path = NULL;
		*out = j.res;
		j.res = NULL;
	}
out:
	kw_wheel_temp_dir_remove(j.workdir, j.workfd);
	for (i = 0; i < j.n_inst; i++) {
		free(j.inst[i].soname);
		free(j.inst[i].realpath);
		free(j.inst[i].src);
		free(j.inst[i].newname);
		free(j.inst[i].work);
	}
	free(j.inst);
	for (i = 0; i < j.n_member_work; i++) {
		free(j.member_work ? j.member_work[i] : NULL);
		free(j.member_move ? j.member_move[i] : NULL);
	}
	for (i = 0; j.a && j.reach && i < j.a->n_members; i++) {
		free(j.reach[i]);
	}
	free(j.member_work);
	free(j.member_move);
	free(j.reach);
	kw_strv_release(&j.graft);
	kw_strv_release(&j.plats);
	kw_strv_release(&j.name_plats);
	kw_strv_release(&j.dropped);
	free(j.libs_dir);
	free(j.wheel_libs_dir);
	free(j.libs_entry_lib);
	free(plat);
	free(out_path);
	kw_wheel_free(j.w);
	kw_audit_free(j.a);
	kw_repair_result_free(j.res);
	return rc;
}
