/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/km.h"
#include "kwheel/report.h"

#include "internal.h"

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* jansson setters steal; a NULL value means an allocation already failed. */
static int set(json_t *obj, const char *key, json_t *val)
{
	if (!val) {
		return -1;
	}
	return json_object_set_new(obj, key, val);
}

static json_t *str_or_null(const char *s)
{
	return s ? report_jstr(s) : json_null();
}

/* An object member whose key comes from the input: any bytes (the dump escapes them). */
static int set_key(json_t *obj, const char *key, json_t *val)
{
	if (!val) {
		return -1;
	}
	return json_object_set_new_nocheck(obj, key, val);
}

static json_t *strv_json(char *const *v, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	if (!arr) {
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (json_array_append_new(arr, report_jstr(v[i]))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Where a library to vendor really is (symlinks followed), as auditwheel's external_libs says. */
static const char *lib_realpath(const struct kw_audit *a, const char *soname)
{
	size_t i;

	for (i = 0; i < a->n_libs; i++) {
		if (strcmp(a->libs[i].soname, soname) == 0) {
			return a->libs[i].realpath ? a->libs[i].realpath : a->libs[i].path;
		}
	}
	return NULL;
}

/*
 * What must go for a policy, as auditwheel's libs_to_eliminate: the
 * libraries to vendor, and the libpython entries repair removes. Sorted.
 */
static int eliminate(const struct kw_audit_verdict *v, struct kw_strv *out)
{
	size_t i;

	for (i = 0; i < v->graft.n; i++) {
		if (kw_strv_push_unique(out, v->graft.v[i])) {
			return -1;
		}
	}
	for (i = 0; i < v->n_reasons; i++) {
		if (v->reasons[i].kind == KW_REASON_LIBPYTHON && kw_strv_push_unique(out, v->reasons[i].lib)) {
			return -1;
		}
	}
	kw_strv_sort(out);
	return 0;
}

/* The newest (least compatible) policy's verdict: auditwheel's external_libs are what it needs vendored. */
static const struct kw_audit_verdict *newest(const struct kw_audit *a)
{
	return a->n_verdicts ? &a->verdicts[a->n_verdicts - 1] : NULL;
}

/*
 * auditwheel's versioned_symbols: the versions the wheel's members need,
 * and those the libraries vendored for the newest policy bring along (the
 * loader's own left out: they say nothing about a policy).
 */
static json_t *symvers_json(const struct kw_audit *a)
{
	const struct kw_audit_verdict *v = newest(a);
	struct kw_strv libs = { 0 }, *vers = NULL;
	json_t *o = json_object();
	size_t i, k, j;
	int bad = !o;

	for (i = 0; !bad && i < a->n_symvers; i++) {
		bad |= kw_strv_push_unique(&libs, a->symvers[i].lib) != 0;
	}
	for (i = 0; !bad && v && i < v->graft.n; i++) {
		const struct kw_elf_info *info = kw_audit_lib_info(a, v->graft.v[i]);

		for (k = 0; info && !bad && k < info->n_verneed; k++) {
			const char *f = info->verneed[k].file;

			if (strncmp(f, "ld-linux", 8) != 0 && strcmp(f, "ld64.so.1") != 0 && strcmp(f, "ld64.so.2") != 0) {
				bad |= kw_strv_push_unique(&libs, f) != 0;
			}
		}
	}
	vers = bad ? NULL : kw_calloc(libs.n ? libs.n : 1, sizeof(*vers));
	bad |= !vers;
	for (i = 0; !bad && i < a->n_symvers; i++) {
		long at = kw_strv_find(&libs, a->symvers[i].lib);

		for (k = 0; !bad && k < a->symvers[i].versions.n; k++) {
			bad |= kw_strv_push_unique(&vers[at], a->symvers[i].versions.v[k]) != 0;
		}
	}
	for (i = 0; !bad && v && i < v->graft.n; i++) {
		const struct kw_elf_info *info = kw_audit_lib_info(a, v->graft.v[i]);

		for (k = 0; info && !bad && k < info->n_verneed; k++) {
			long at = kw_strv_find(&libs, info->verneed[k].file);

			for (j = 0; at >= 0 && !bad && j < info->verneed[k].n_versions; j++) {
				bad |= kw_strv_push_unique(&vers[at], info->verneed[k].versions[j]) != 0;
			}
		}
	}
	for (i = 0; !bad && i < libs.n; i++) {
		kw_strv_sort(&vers[i]);
		bad |= set_key(o, libs.v[i], strv_json(vers[i].v, vers[i].n));
	}
	for (i = 0; vers && i < libs.n; i++) {
		kw_strv_release(&vers[i]);
	}
	free(vers);
	kw_strv_release(&libs);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *drops_json(const struct kw_audit *a)
{
	json_t *arr = json_array();
	size_t i;
	int bad = !arr;

	for (i = 0; !bad && i < a->n_drop_needed; i++) {
		json_t *e = json_object();

		bad |= set(e, "member", report_jstr(a->drop_needed[i].member));
		bad |= set(e, "soname", report_jstr(a->drop_needed[i].soname));
		bad |= json_array_append_new(arr, e);
	}
	if (bad) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *members_json(const struct kw_audit *a)
{
	json_t *arr = json_array();
	size_t i;
	int bad = 0;

	for (i = 0; arr && i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		json_t *o = json_object();

		bad |= set(o, "name", report_jstr(m->name));
		bad |= set(o, "error", str_or_null(m->error));
		bad |= set(o, "extension", json_boolean(m->extension));
		bad |= set(o, "arch", str_or_null(m->arch));
		if (m->info) {
			bad |= set(o, "needed", strv_json(m->info->needed, m->info->n_needed));
			bad |= set(o, "soname", str_or_null(m->info->soname));
			bad |= set(o, "rpath", str_or_null(m->info->rpath));
			bad |= set(o, "runpath", str_or_null(m->info->runpath));
			bad |= set(o, "isa", str_or_null(m->isa));
		}
		bad |= set(o, "purelib", json_boolean(m->purelib));
		bad |= report_wasm_member_json(o, m);
		bad |= json_array_append_new(arr, o);
	}
	if (bad) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *libraries_json(const struct kw_audit *a)
{
	json_t *arr = json_array();
	size_t i;
	int bad = 0;

	for (i = 0; arr && i < a->n_libs; i++) {
		const struct kw_audit_lib *l = &a->libs[i];
		json_t *o = json_object();

		bad |= set(o, "soname", report_jstr(l->soname));
		bad |= set(o, "path", str_or_null(l->path));
		bad |= set(o, "realpath", str_or_null(l->realpath));
		bad |= set(o, "needed_by", strv_json(l->needed_by.v, l->needed_by.n));
		bad |= json_array_append_new(arr, o);
	}
	if (bad) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static const char *km_mode_str(enum kw_km_mode m)
{
	return m == KW_KM_MODULE ? "module" : "lib";
}

/* The KM verdict: can the wheel's objects be delinked into a static interpreter? */
static json_t *km_json(const struct kw_km_verdict *v)
{
	json_t *o, *objs;
	size_t i;
	int bad;

	o = json_object();
	objs = json_array();
	bad = !o || !objs;
	bad |= set(o, "convertible", json_boolean(v->convertible));
	bad |= set(o, "needs_deps", json_boolean(v->needs_deps));
	bad |= set(o, "reasons", strv_json(v->reasons.v, v->reasons.n));
	bad |= set(o, "warnings", strv_json(v->warnings.v, v->warnings.n));
	for (i = 0; !bad && i < v->n_objects; i++) {
		const struct kw_km_object *ko = &v->objects[i];
		json_t *e = json_object();

		bad |= set(e, "name", report_jstr(ko->name));
		bad |= set(e, "soname", str_or_null(ko->soname));
		bad |= set(e, "in_wheel", json_boolean(ko->in_wheel));
		bad |= set(e, "mode", json_string(km_mode_str(ko->mode)));
		bad |= set(e, "executable", json_boolean(ko->executable));
		bad |= set(e, "convertible", json_boolean(ko->convertible));
		bad |= set(e, "reasons", strv_json(ko->reasons.v, ko->reasons.n));
		bad |= set(e, "warnings", strv_json(ko->warnings.v, ko->warnings.n));
		bad |= json_array_append_new(objs, e);
	}
	bad |= set(o, "objects", objs);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The KM verdict and why; warnings in full with verbose, else counted.
 * Nothing without a verdict (a WebAssembly wheel has none).
 */
static int print_km(struct kw_buf *f, const struct kw_km_verdict *v, bool verbose)
{
	size_t i, k, deps = 0, n_warn;

	if (!v) {
		return 0;
	}
	for (i = 0; i < v->n_objects; i++) {
		deps += !v->objects[i].in_wheel;
	}
	if (v->convertible && deps) {
		kw_report_appendf(f, "  KM: convertible, with %zu external librar%s converted too (km --deps)\n", deps,
			deps == 1 ? "y" : "ies");
	} else {
		kw_report_appendf(f, "  KM: %s\n", v->convertible ? "convertible" : "not convertible");
	}
	for (i = 0; i < v->reasons.n; i++) {
		kw_report_appendf(f, "    %s\n", v->reasons.v[i]);
	}
	n_warn = v->warnings.n;
	for (i = 0; i < v->n_objects; i++) {
		n_warn += v->objects[i].warnings.n;
	}
	if (!verbose && n_warn) {
		kw_report_appendf(f, "    %zu warning%s (-v shows them)\n", n_warn, n_warn == 1 ? "" : "s");
	}
	for (i = 0; verbose && i < v->warnings.n; i++) {
		kw_report_appendf(f, "    warning: %s\n", v->warnings.v[i]);
	}
	for (i = 0; verbose && i < v->n_objects; i++) {
		for (k = 0; k < v->objects[i].warnings.n; k++) {
			kw_report_appendf(f, "    warning: %s: %s\n", v->objects[i].name, v->objects[i].warnings.v[k]);
		}
	}
	return 0;
}

/* What stands between the wheel and one better policy. */
static json_t *upgrade_json(const struct kw_audit_verdict *v)
{
	json_t *o = json_object();
	json_t *syms = json_array();
	json_t *black = json_object();
	json_t *other = json_array();
	size_t i;
	int bad = !o || !syms || !black || !other;

	for (i = 0; !bad && i < v->n_reasons; i++) {
		const struct kw_audit_reason *r = &v->reasons[i];
		json_t *e;

		switch (r->kind) {
		case KW_REASON_LIB:
		case KW_REASON_LIBPYTHON:
			break;
		case KW_REASON_SYMVER:
			e = json_object();
			bad |= set(e, "member", str_or_null(r->member));
			bad |= set(e, "lib", str_or_null(r->lib));
			bad |= set(e, "version", str_or_null(r->what));
			bad |= json_array_append_new(syms, e);
			break;
		case KW_REASON_BLACKLIST: {
			json_t *list = json_object_get(black, r->lib);

			/* A failed set frees the new list: it must not be appended to then. */
			if (!list && (!(list = json_array()) || set_key(black, r->lib, list))) {
				bad = 1;
				break;
			}
			bad |= json_array_append_new(list, report_jstr(r->what));
			break;
		}
		default: {
			/* Each kind once: the members are in the text report. */
			size_t j;
			bool seen = false;

			for (j = 0; j < json_array_size(other) && !seen; j++) {
				seen = strcmp(json_string_value(json_array_get(other, j)), kw_reason_kind_str(r->kind)) == 0;
			}
			if (!seen) {
				bad |= json_array_append_new(other, json_string(kw_reason_kind_str(r->kind)));
			}
			break;
		}
		}
	}
	{
		struct kw_strv gone = { 0 };

		bad |= eliminate(v, &gone) != 0;
		bad |= set(o, "libs_to_eliminate", strv_json(gone.v, gone.n));
		kw_strv_release(&gone);
	}
	bad |= set(o, "symbol_versions", syms);
	bad |= set(o, "blacklisted_symbols", black);
	bad |= set(o, "other", other);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *record_json(const struct kw_record *rec)
{
	json_t *o = json_object();
	json_t *arr = json_array();
	size_t i;
	int bad = !o || !arr;

	for (i = 0; !bad && i < rec->n_problems; i++) {
		json_t *p = json_object();

		bad |= set(p, "kind", json_string(kw_record_problem_str(rec->problems[i].kind)));
		bad |= set(p, "path", str_or_null(rec->problems[i].path));
		bad |= set(p, "detail", str_or_null(rec->problems[i].detail));
		bad |= json_array_append_new(arr, p);
	}
	bad |= set(o, "ok", json_boolean(rec->n_problems == 0));
	bad |= set(o, "problems", arr);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *family_str(const struct kw_audit *a)
{
	if (!a->arch || a->no_policy || a->wasm) {
		return NULL;
	}
	return a->family == KW_POLICY_MUSLLINUX ? "musl" : a->family == KW_POLICY_ANDROID ? "bionic" : "glibc";
}

static json_t *audit_json(const struct kw_audit *a, const struct kw_km_verdict *km)
{
	json_t *o = json_object();
	json_t *name = json_object();
	json_t *ext = json_object();
	json_t *vs = json_object();
	json_t *up = json_object();
	size_t i, k;
	int bad = !o || !name || !ext || !vs || !up;
	const struct kw_audit_verdict *target = newest(a);
	size_t n_better = a->best >= 0 ? (size_t)a->best : a->n_verdicts;

	bad |= set(o, "version", json_integer(KW_REPORT_SHOW_VERSION));
	bad |= set(o, "wheel", report_jstr(a->filename));
	bad |= set(o, "path", report_jstr(a->path));
	bad |= set(o, "pure", json_boolean(a->pure));
	bad |= set(name, "distribution", report_jstr(a->name.distribution));
	bad |= set(name, "version", report_jstr(a->name.version));
	bad |= set(name, "build", str_or_null(a->name.build));
	bad |= set(name, "python", report_jstr(a->name.python));
	bad |= set(name, "abi", report_jstr(a->name.abi));
	bad |= set(name, "platforms", strv_json(a->name.platforms, a->name.n_platforms));
	bad |= set(o, "name", name);
	bad |= set(o, "wheel_tags", strv_json(a->meta.tags, a->meta.n_tags));
	bad |= set(o, "arch", str_or_null(a->arch));
	bad |= set(o, "libc", str_or_null(family_str(a)));
	bad |= set(o, "overall_tag", str_or_null(a->best_tag));
	bad |= set(o, "sym_tag", str_or_null(a->sym_tag));
	bad |= set(o, "tags_ok", json_boolean(a->tags_ok));
	bad |= set(o, "tag_mismatches", strv_json(a->tag_mismatches.v, a->tag_mismatches.n));
	bad |= set(o, "bad_tags", strv_json(a->bad_tags.v, a->bad_tags.n));
	bad |= set(o, "pyfpe", json_boolean(a->pyfpe));
	bad |= set(o, "ucs2", json_boolean(a->ucs2));
	bad |= set(o, "unsupported_isa", json_boolean(a->unsupported_isa));
	bad |= set(o, "refusals", strv_json(a->refusals.v, a->refusals.n));
	bad |= set(o, "drop_needed", drops_json(a));
	bad |= set(o, "note", str_or_null(a->not_elf ? a->not_elf : a->no_policy));
	bad |= set(o, "members", members_json(a));
	bad |= set(o, "libraries", libraries_json(a));
	/*
	 * As auditwheel: what the newest policy still needs vendored (or, for
	 * libpython, removed), each where it really lies; without a policy,
	 * every library from outside the wheel.
	 */
	if (target) {
		struct kw_strv gone = { 0 };

		bad |= eliminate(target, &gone) != 0;
		for (i = 0; i < gone.n; i++) {
			bad |= set_key(ext, gone.v[i],
				   str_or_null(kw_audit_is_libpython(gone.v[i]) ? NULL : lib_realpath(a, gone.v[i])));
		}
		kw_strv_release(&gone);
	} else {
		for (i = 0; i < a->n_libs; i++) {
			bad |= set_key(ext, a->libs[i].soname,
				   str_or_null(a->libs[i].realpath ? a->libs[i].realpath : a->libs[i].path));
		}
	}
	bad |= set(o, "external_libs", ext);
	json_decref(vs);
	bad |= set(o, "versioned_symbols", symvers_json(a));
	for (k = 0; k < n_better && k < a->n_verdicts; k++) {
		bad |= set_key(up, a->verdicts[k].tag, upgrade_json(&a->verdicts[k]));
	}
	bad |= set(o, "policy_upgrades", up);
	bad |= set(o, "record", record_json(&a->record));
	bad |= set(o, "km", a->wasm || !km ? json_null() : km_json(km));
	bad |= set(o, "wasm", a->wasm ? report_wasm_json(a) : json_null());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The run-independent key of a line, when one is asked for. Returns nonzero when out of memory. */
static int set_key_fields(json_t *o, const struct kw_report_key *key)
{
	if (!key) {
		return 0;
	}
	return set(o, "sha256", str_or_null(key->sha256)) |
	       set(o, "kwheel_version", str_or_null(key->kwheel_version));
}

int kw_report_show_json(const struct kw_audit *a, const struct kw_km_verdict *km, char **out, struct kw_error *err)
{
	return kw_report_show_json_keyed(a, km, NULL, out, err);
}

int kw_report_show_json_keyed(const struct kw_audit *a, const struct kw_km_verdict *km,
			      const struct kw_report_key *key, char **out, struct kw_error *err)
{
	json_t *o;
	char *s;

	*out = NULL;
	report_json_init();
	o = audit_json(a, km);
	if (o && set_key_fields(o, key)) {
		json_decref(o);
		o = NULL;
	}
	if (!o) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	s = report_json_dumps(o, 0);
	json_decref(o);
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	*out = s;
	return 0;
}

int kw_report_error_json(const char *path, const struct kw_error *what, char **out,
			 struct kw_error *err)
{
	return kw_report_error_json_keyed(path, what, NULL, out, err);
}

int kw_report_show_json_read_key(const char *line, char **sha256, char **kwheel_version, struct kw_error *err)
{
	json_error_t jerr;
	json_t *o, *h, *v;
	int rc = KW_EFORMAT;

	*sha256 = *kwheel_version = NULL;
	report_json_init();
	o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	h = json_is_object(o) ? json_object_get(o, "sha256") : NULL;
	v = json_is_object(o) ? json_object_get(o, "kwheel_version") : NULL;
	if (json_is_string(h) && json_is_string(v)) {
		*sha256 = kw_strdup(json_string_value(h));
		*kwheel_version = kw_strdup(json_string_value(v));
		rc = *sha256 && *kwheel_version ? 0 : KW_ENOMEM;
		if (rc) {
			free(*sha256);
			free(*kwheel_version);
			*sha256 = *kwheel_version = NULL;
		}
	}
	json_decref(o);
	if (rc == KW_ENOMEM) {
		return kw_error_set(err, rc, "out of memory");
	}
	return rc ? kw_error_set(err, rc, "not a keyed report line") : 0;
}

int kw_report_error_json_keyed(const char *path, const struct kw_error *what, const struct kw_report_key *key,
			       char **out, struct kw_error *err)
{
	json_t *o;
	int bad;
	char *s;

	*out = NULL;
	report_json_init();
	o = json_object();
	bad = !o;
	bad |= o ? set_key_fields(o, key) : 0;
	bad |= set(o, "version", json_integer(KW_REPORT_SHOW_VERSION));
	bad |= set(o, "wheel", report_jstr(base_name(path)));
	bad |= set(o, "path", report_jstr(path));
	bad |= set(o, "error", report_jstr(what->msg[0] ? what->msg : kw_status_str(what->code)));
	bad |= set(o, "error_kind", json_string(kw_status_str(what->code)));
	s = bad ? NULL : report_json_dumps(o, 0);
	json_decref(o);
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	*out = s;
	return 0;
}

static void print_reasons(struct kw_buf *f, const struct kw_audit_verdict *v)
{
	size_t i;

	for (i = 0; i < v->n_reasons; i++) {
		const struct kw_audit_reason *r = &v->reasons[i];

		switch (r->kind) {
		case KW_REASON_LIB:
			kw_report_appendf(f, "      - %s needs %s, which the policy does not allow\n", r->member, r->lib);
			break;
		case KW_REASON_SYMVER:
			kw_report_appendf(f, "      - %s needs %s from %s\n", r->member, r->what, r->lib);
			break;
		case KW_REASON_BLACKLIST:
			kw_report_appendf(f, "      - %s imports %s from %s, which the policy forbids\n", r->member,
				r->what, r->lib);
			break;
		case KW_REASON_PYFPE:
			kw_report_appendf(f, "      - %s uses PyFPE_jbuf (built with --with-fpectl)\n", r->member);
			break;
		case KW_REASON_LIBPYTHON:
			kw_report_appendf(f, "      - %s needs %s: repair removes the entry (the interpreter provides it)\n",
				r->member, r->lib);
			break;
		case KW_REASON_ISA:
			kw_report_appendf(f, "      - %s needs the %s instruction set\n", r->member, r->what);
			break;
		case KW_REASON_UCS2:
			kw_report_appendf(f, "      - %s imports %s (narrow-unicode Python 2)\n", r->member, r->what);
			break;
		case KW_REASON_PURELIB:
			kw_report_appendf(f, "      - %s is an ELF file under purelib\n", r->member);
			break;
		case KW_REASON_ARCH:
			kw_report_appendf(f, "      - %s is %s code\n", r->member ? r->member : "a member", r->what ? r->what : "other");
			break;
		case KW_REASON_LIBC_VERSION:
			kw_report_appendf(f, "      - musl records no versions: the wheel is taken to need musl %s, the newest known\n",
				r->what);
			break;
		default:
			kw_report_appendf(f, "      - %s\n", kw_reason_kind_str(r->kind));
			break;
		}
	}
}

static void print_tree(struct kw_buf *f, const struct kw_audit_member *m)
{
	const struct kw_dep_graph *g = m->graph;
	size_t i;

	/* Node 0 is the member itself; the rest in the loader's load order. */
	for (i = 1; g && i < g->n_nodes; i++) {
		const struct kw_dep_node *n = &g->nodes[i];

		kw_report_appendf(f, "      %s => %s%s\n", n->name, n->in_overlay ? "in the wheel: " : "",
			n->path ? n->path : "not found");
	}
}

/* Members named in one line of the short report before "and N more". */
#define SHORT_NAMES 3
/* Lines of one list (libraries to vendor, blocking versions) in the short report before "and N more". */
#define SHORT_LINES 12

/*
 * The symbol versions that keep the wheel from the next more compatible
 * policy than the one its symbol versions allow, one line per library and
 * version with the files that need it.
 */
static void print_blocking_symvers(struct kw_buf *f, const struct kw_audit *a)
{
	const struct kw_audit_verdict *p = NULL;
	size_t i, k, shown, more, lines = 0, n_over = 0;
	bool header = false, over = false;

	if (a->sym_best > 0) {
		p = &a->verdicts[a->sym_best - 1];
	} else if (a->sym_best < 0 && a->n_verdicts) {
		p = &a->verdicts[a->n_verdicts - 1];
	}
	for (i = 0; p && i < p->n_reasons; i++) {
		const struct kw_audit_reason *r = &p->reasons[i];
		bool seen = false;

		if (r->kind != KW_REASON_SYMVER || !r->lib || !r->what) {
			continue;
		}
		for (k = 0; k < i && !seen; k++) {
			const struct kw_audit_reason *q = &p->reasons[k];

			seen = q->kind == KW_REASON_SYMVER && q->lib && q->what && strcmp(q->lib, r->lib) == 0 &&
			       strcmp(q->what, r->what) == 0;
		}
		if (seen) {
			continue;
		}
		if (!header) {
			kw_report_appendf(f, "  too new for %s:\n", p->tag);
			header = true;
		}
		if (lines++ == SHORT_LINES) {
			over = true;
		}
		if (over) {
			n_over++;
			continue;
		}
		kw_report_appendf(f, "    %s %s:", r->lib, r->what);
		shown = more = 0;
		for (k = i; k < p->n_reasons; k++) {
			const struct kw_audit_reason *q = &p->reasons[k];

			if (q->kind != KW_REASON_SYMVER || !q->lib || !q->what || strcmp(q->lib, r->lib) != 0 ||
			    strcmp(q->what, r->what) != 0) {
				continue;
			}
			if (shown < SHORT_NAMES) {
				kw_report_appendf(f, "%s %s", shown ? "," : "", q->member ? q->member : "?");
				shown++;
			} else {
				more++;
			}
		}
		if (more) {
			kw_report_appendf(f, " and %zu more", more);
		}
		kw_report_appendf(f, "\n");
	}
	if (n_over) {
		kw_report_appendf(f, "    and %zu more (-v lists them)\n", n_over);
	}
}

/*
 * The default text: what auditwheel's show says, in its order (the tag, the
 * libraries repair would vendor, the symbol versions that keep a more
 * compatible tag out of reach), then whatever is wrong with the wheel; -v
 * gives the full report.
 */
static void print_short(struct kw_buf *f, const struct kw_audit *a)
{
	const struct kw_audit_verdict *target = a->sym_best >= 0 ? &a->verdicts[a->sym_best] : NULL;
	size_t i, k, n_graft = 0, n_missing = 0;

	kw_report_appendf(f, "  consistent with: %s\n", a->best_tag ? a->best_tag : "nothing");
	if (a->no_policy) {
		kw_report_appendf(f, "  %s\n", a->no_policy);
	}
	for (i = 0; target && i < a->n_libs; i++) {
		n_graft += kw_strv_find(&target->graft, a->libs[i].soname) >= 0;
	}
	if (a->sym_tag && a->best_tag && strcmp(a->sym_tag, a->best_tag) != 0) {
		if (a->refusals.n) {
			kw_report_appendf(f, "  symbol versions allow: %s, but no repair reaches it:\n", a->sym_tag);
		} else if (n_graft) {
			kw_report_appendf(f, "  repair reaches: %s, vendoring %zu librar%s:\n", a->sym_tag, n_graft,
				n_graft == 1 ? "y" : "ies");
		} else {
			kw_report_appendf(f, "  repair reaches: %s\n", a->sym_tag);
		}
	}
	for (i = 0; i < a->refusals.n; i++) {
		kw_report_appendf(f, "    %s\n", a->refusals.v[i]);
	}
	for (i = 0, k = 0; !a->refusals.n && target && i < a->n_libs; i++) {
		const struct kw_audit_lib *l = &a->libs[i];

		if (kw_strv_find(&target->graft, l->soname) >= 0 && k++ < SHORT_LINES) {
			kw_report_appendf(f, "    %s => %s\n", l->soname, l->path ? l->path : "not found");
		}
	}
	if (!a->refusals.n && n_graft > SHORT_LINES) {
		kw_report_appendf(f, "    and %zu more (-v lists them)\n", n_graft - SHORT_LINES);
	}
	print_blocking_symvers(f, a);
	/* What is wrong with the wheel as it is. */
	if (!a->tags_ok) {
		kw_report_appendf(f, "  the wheel claims tags it does not satisfy:");
		for (i = 0; i < a->bad_tags.n; i++) {
			kw_report_appendf(f, " %s", a->bad_tags.v[i]);
		}
		kw_report_appendf(f, "\n");
	}
	for (i = 0; i < a->tag_mismatches.n; i++) {
		kw_report_appendf(f, "  WHEEL and the file name do not match: %s\n", a->tag_mismatches.v[i]);
	}
	for (i = 0; i < a->n_libs; i++) {
		n_missing += !a->libs[i].path && !kw_audit_is_libpython(a->libs[i].soname);
	}
	if (n_missing) {
		kw_report_appendf(f, "  not found (%zu):", n_missing);
		for (i = 0, k = 0; i < a->n_libs; i++) {
			if (!a->libs[i].path && !kw_audit_is_libpython(a->libs[i].soname)) {
				kw_report_appendf(f, "%s %s", k++ ? "," : "", a->libs[i].soname);
			}
		}
		kw_report_appendf(f, "\n");
	}
	for (i = 0; i < a->n_drop_needed; i++) {
		kw_report_appendf(f, "  %s needs %s: linking libpython is forbidden, repair removes the entry\n",
			a->drop_needed[i].member, a->drop_needed[i].soname);
	}
	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].error) {
			kw_report_appendf(f, "  %s: unreadable: %s\n", a->members[i].name, a->members[i].error);
		}
	}
}

int kw_report_show_text(const struct kw_audit *a, const struct kw_km_verdict *km, bool verbose, char **out,
			struct kw_error *err)
{
	struct kw_buf text = { 0 }, *f = &text;
	size_t i, k;
	const struct kw_audit_verdict *target = a->sym_best >= 0 ? &a->verdicts[a->sym_best] : NULL;

	*out = NULL;
	if (!verbose) {
		kw_report_appendf(f, "%s\n", a->filename);
		if (a->record.n_problems) {
			kw_report_appendf(f, "  RECORD: %zu problem%s (-v lists them)\n", a->record.n_problems,
				a->record.n_problems == 1 ? "" : "s");
		}
		if (a->pure) {
			kw_report_appendf(f, "  pure: no ELF member; the wheel is platform-independent\n");
		} else if (a->wasm) {
			report_wasm_text(f, a, false);
		} else if (a->not_elf) {
			kw_report_appendf(f, "  %s\n", a->not_elf);
		} else {
			print_short(f, a);
			if (print_km(f, km, false)) {
				kw_buf_release(&text);
				return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
			}
		}
		goto done;
	}
	kw_report_appendf(f, "%s\n", a->filename);
	kw_report_appendf(f, "  file name tags: %s-%s-%s\n", a->name.python, a->name.abi, a->name.platform);
	if (a->meta.n_tags) {
		kw_report_appendf(f, "  WHEEL tags:     ");
		for (i = 0; i < a->meta.n_tags; i++) {
			kw_report_appendf(f, "%s%s", i ? ", " : "", a->meta.tags[i]);
		}
		kw_report_appendf(f, "\n");
	}
	if (a->record.n_problems) {
		kw_report_appendf(f, "  RECORD: %zu problem%s\n", a->record.n_problems,
			a->record.n_problems == 1 ? "" : "s");
		for (i = 0; i < a->record.n_problems; i++) {
			kw_report_appendf(f, "    - %s: %s%s%s\n", kw_record_problem_str(a->record.problems[i].kind),
				a->record.problems[i].path ? a->record.problems[i].path : "",
				a->record.problems[i].detail ? ": " : "",
				a->record.problems[i].detail ? a->record.problems[i].detail : "");
		}
	} else {
		kw_report_appendf(f, "  RECORD: every member listed with the right hash and size\n");
	}
	if (a->pure) {
		kw_report_appendf(f, "  pure: no ELF member; the wheel is platform-independent\n");
		goto done;
	}
	if (a->wasm) {
		report_wasm_text(f, a, verbose);
		goto done;
	}
	if (a->not_elf) {
		kw_report_appendf(f, "  %s\n", a->not_elf);
		goto done;
	}
	kw_report_appendf(f, "  architecture: %s (%s)\n", a->arch ? a->arch : "unknown",
		a->no_policy ? "no policy" : family_str(a));
	if (a->no_policy) {
		kw_report_appendf(f, "  %s\n", a->no_policy);
	}
	kw_report_appendf(f, "  consistent with: %s\n", a->best_tag ? a->best_tag : "nothing");
	if (a->sym_tag && a->best_tag && strcmp(a->sym_tag, a->best_tag) != 0) {
		kw_report_appendf(f, "  symbol versions allow: %s (%s)\n", a->sym_tag,
			a->refusals.n ? "symbol versions alone: no repair reaches it, see below"
				      : "after vendoring the libraries below");
	}
	for (i = 0; i < a->tag_mismatches.n; i++) {
		kw_report_appendf(f, "  WHEEL and the file name do not match: %s\n", a->tag_mismatches.v[i]);
	}
	for (i = 0; i < a->refusals.n; i++) {
		kw_report_appendf(f, "  cannot be repaired: %s\n", a->refusals.v[i]);
	}
	for (i = 0; i < a->n_drop_needed; i++) {
		kw_report_appendf(f, "  %s needs %s: linking libpython is forbidden, repair removes the entry\n",
			a->drop_needed[i].member, a->drop_needed[i].soname);
	}
	if (!a->tags_ok) {
		kw_report_appendf(f, "  the wheel claims tags it does not satisfy:");
		for (i = 0; i < a->bad_tags.n; i++) {
			kw_report_appendf(f, " %s", a->bad_tags.v[i]);
		}
		kw_report_appendf(f, "\n");
	}
	kw_report_appendf(f, "  ELF members: %zu\n", a->n_members);
	for (i = 0; i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];

		if (m->error) {
			kw_report_appendf(f, "    %s: unreadable: %s\n", m->name, m->error);
			continue;
		}
		kw_report_appendf(f, "    %s%s\n", m->name, m->extension ? " (extension)" : "");
		if (verbose) {
			print_tree(f, m);
		}
	}
	if (a->n_symvers) {
		kw_report_appendf(f, "  versioned symbols required:\n");
		for (i = 0; i < a->n_symvers; i++) {
			kw_report_appendf(f, "    %s:", a->symvers[i].lib);
			for (k = 0; k < a->symvers[i].versions.n; k++) {
				kw_report_appendf(f, " %s", a->symvers[i].versions.v[k]);
			}
			kw_report_appendf(f, "\n");
		}
	}
	if (a->n_libs) {
		kw_report_appendf(f, "  libraries from outside the wheel:\n");
		for (i = 0; i < a->n_libs; i++) {
			const struct kw_audit_lib *l = &a->libs[i];
			bool graft = target && kw_strv_find(&target->graft, l->soname) >= 0;

			kw_report_appendf(f, "    %s => %s%s\n", l->soname, l->path ? l->path : "not found",
				graft ? "  [must be vendored]" : "");
		}
	}
	if (a->best != 0 && a->n_verdicts) {
		size_t n_better = a->best >= 0 ? (size_t)a->best : a->n_verdicts;

		kw_report_appendf(f, "  why not a more compatible tag:\n");
		for (i = 0; i < n_better; i++) {
			kw_report_appendf(f, "    %s:\n", a->verdicts[i].tag);
			print_reasons(f, &a->verdicts[i]);
		}
	}
	if (print_km(f, km, true)) {
		kw_buf_release(&text);
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
done:
	*out = kw_buf_take(&text);
	if (!*out) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	return 0;
}
