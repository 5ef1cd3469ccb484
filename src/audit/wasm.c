/* SPDX-License-Identifier: MIT */
/*
 * The audit of an Emscripten/Pyodide wheel. Its members are WebAssembly side
 * modules; their NEEDED closure is resolved by the wasm resolver into the
 * same graphs an ELF wheel gets, so audit.c's library collection and the
 * reports read both alike. What a manylinux policy is to ELF, the table of
 * Pyodide releases is here: there is no symbol-version contract, only which
 * loaders can find libraries inside a wheel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/audit.h"
#include "kwheel/policy.h"
#include "kwheel/resolve.h"
#include "kwheel/util.h"
#include "kwheel/wasm.h"

#include "internal.h"

/* The digits-and-underscores tail of a tag after prefix, ending in "_wasm32": "emscripten_3_1_14_wasm32". */
static bool tag_shape(const char *tag, const char *prefix, int fields)
{
	size_t n = strlen(prefix);
	const char *p;
	int got = 0;

	if (strncmp(tag, prefix, n) != 0) {
		return false;
	}
	p = tag + n;
	while (*p >= '0' && *p <= '9') {
		while (*p >= '0' && *p <= '9') {
			p++;
		}
		got++;
		if (*p != '_') {
			return false;
		}
		p++;
	}
	return got == fields && strcmp(p, "wasm32") == 0;
}

static bool is_wasm_tag(const char *tag)
{
	return tag_shape(tag, "emscripten_", 3) || tag_shape(tag, "pyodide_", 2);
}

bool kw_audit_is_wasm_wheel(const struct kw_audit *a)
{
	size_t i;

	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].wasm) {
			return true;
		}
	}
	for (i = 0; i < a->name.n_platforms; i++) {
		if (strncmp(a->name.platforms[i], "emscripten_", 11) == 0 ||
		    strncmp(a->name.platforms[i], "pyodide_", 8) == 0) {
			return true;
		}
	}
	return false;
}

int kw_audit_wasm_member(struct kw_audit_member *m, const void *data, size_t len, struct kw_error *err)
{
	struct kw_error merr = { 0 };
	int rc;

	rc = kw_wasm_parse_memory(data, len, m->name, &m->wasm, &merr);
	if (rc == KW_ENOMEM) {
		return kw_error_set(err, rc, "%s", merr.msg);
	}
	if (rc) {
		/* A bad module is a finding about the wheel, not a reason to stop. */
		m->error = kw_strdup(merr.msg);
		return m->error ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	m->arch = "wasm32";
	/* An extension module exports PyInit_<stem>, as on ELF. */
	{
		const char *base = strrchr(m->name, '/');
		size_t stem, i;

		base = base ? base + 1 : m->name;
		stem = strcspn(base, ".");
		for (i = 0; i < m->wasm->n_exports; i++) {
			const char *e = m->wasm->exports[i].name;

			if (strncmp(e, "PyInit_", 7) == 0 && strlen(e + 7) == stem && strncmp(e + 7, base, stem) == 0) {
				m->extension = true;
			}
		}
	}
	return 0;
}

/* Serve an overlay path from the wheel: a member with the wasm magic, parsed. */
static int overlay_wasm(void *ud, const char *path, struct kw_wasm_info **info, struct kw_error *err)
{
	struct kw_wheel *w = ud;
	unsigned char head[8];
	struct kw_wheel_map map;
	size_t got = 0;
	const char *name;
	long idx;
	int rc;

	if (strncmp(path, OVERLAY_PREFIX "/", sizeof(OVERLAY_PREFIX)) != 0) {
		return KW_ENOTFOUND;
	}
	name = path + sizeof(OVERLAY_PREFIX);
	idx = kw_wheel_find(w, name);
	if (idx < 0 || kw_wheel_member(w, (size_t)idx)->is_dir) {
		return KW_ENOTFOUND;
	}
	rc = kw_wheel_read_head(w, (size_t)idx, head, sizeof(head), &got, err);
	if (rc) {
		return rc;
	}
	if (!kw_wasm_is_wasm(head, got)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': not a wasm module", name);
	}
	rc = kw_wheel_map(w, (size_t)idx, &map, NULL, err);
	if (rc) {
		return rc;
	}
	rc = kw_wasm_parse_memory(map.data, map.len, name, info, err);
	kw_wheel_unmap(&map);
	return rc;
}

int kw_audit_wasm_resolve(struct kw_ctx *ctx, struct kw_audit *a, struct kw_wheel *w, struct kw_error *err)
{
	size_t i;
	int rc;

	a->wasm = true;
	rc = kw_wasm_resolver_new(ctx, OVERLAY_PREFIX, overlay_wasm, w, &a->wasm_resolver, err);
	if (rc) {
		return rc;
	}
	/*
	 * Pyodide 0.22-0.26 name the directory after the file name's first
	 * field as it is, not the normalised project name; the field never
	 * holds '/', so the directory stays inside the overlay.
	 */
	{
		char *libs = kw_asprintf("%s/%s.libs", OVERLAY_PREFIX, a->name.distribution);

		rc = libs ? kw_wasm_resolver_set_libs_dir(a->wasm_resolver, libs, err)
			  : kw_error_set(err, KW_ENOMEM, "out of memory");
		free(libs);
		if (rc) {
			return rc;
		}
	}
	for (i = 0; i < a->n_members; i++) {
		struct kw_audit_member *m = &a->members[i];
		char *vpath;

		if (!m->wasm || m->wasm->dylink == KW_WASM_NOT_SIDE) {
			continue;
		}
		vpath = kw_asprintf("%s/%s", OVERLAY_PREFIX, m->name);
		if (!vpath) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		rc = kw_resolve_wasm_tree(a->wasm_resolver, vpath, m->wasm, &m->graph, err);
		free(vpath);
		if (rc) {
			kw_error_prefix(err, "'%s'", a->filename);
			return rc;
		}
	}
	return 0;
}

/* "3.10" from "cp310", NULL for any other Python tag (py3, pp39, ...); new string. */
static char *cpython_version(const char *tag, size_t n)
{
	if (n < 4 || strncmp(tag, "cp3", 3) != 0) {
		return NULL;
	}
	for (size_t i = 3; i < n; i++) {
		if (tag[i] < '0' || tag[i] > '9') {
			return NULL;
		}
	}
	return kw_asprintf("3.%.*s", (int)(n - 3), tag + 3);
}

/* Does a release's Python satisfy the wheel's python tags ("cp310", "cp310.cp311", "py3")? */
static int python_fits(const struct kw_audit *a, const char *python, bool *fits)
{
	const char *p = a->name.python;

	*fits = false;
	while (*p) {
		size_t n = strcspn(p, ".");
		char *v;

		if ((n == 3 && strncmp(p, "py3", 3) == 0) || (n == 2 && strncmp(p, "py", 2) == 0)) {
			*fits = true;
		}
		v = cpython_version(p, n);
		if (v && strcmp(v, python) == 0) {
			*fits = true;
		}
		free(v);
		p += n;
		if (*p == '.') {
			p++;
		}
	}
	return 0;
}

static int finding(struct kw_audit *a, char *s)
{
	return kw_strv_push_own(&a->wasm_findings, s) ? KW_ENOMEM : 0;
}

/* The CPython version an extension's suffix names (".cpython-310-wasm32-emscripten.so"), or NULL. */
static char *suffix_python(const char *name)
{
	const char *p = strstr(name, ".cpython-3");
	size_t n;

	if (!p) {
		return NULL;
	}
	p += strlen(".cpython-3");
	n = strspn(p, "0123456789");
	if (n == 0 || strncmp(p + n, "-wasm32-emscripten.", 19) != 0) {
		return NULL;
	}
	return kw_asprintf("3.%.*s", (int)n, p);
}

static bool so_name(const char *name)
{
	const char *p = strstr(name, ".so");

	while (p) {
		const char *q = p + 3;

		while (*q == '.' && q[1] >= '0' && q[1] <= '9') {
			q++;
			while (*q >= '0' && *q <= '9') {
				q++;
			}
		}
		if (!*q) {
			return true;
		}
		p = strstr(p + 1, ".so");
	}
	return false;
}

int kw_audit_wasm_judge(struct kw_audit *a, struct kw_error *err)
{
	const struct kw_pyodide_release *rel;
	size_t n_rel, i, k;
	int rc = 0;

	for (i = 0; !rc && i < a->name.n_platforms; i++) {
		if (!is_wasm_tag(a->name.platforms[i])) {
			rc = finding(a, kw_asprintf("platform tag '%s' is not an Emscripten or Pyodide one",
						    a->name.platforms[i]));
			rc = rc ? rc : (kw_strv_push(&a->bad_tags, a->name.platforms[i]) ? KW_ENOMEM : 0);
		}
	}
	for (i = 0; !rc && i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		char *py;

		if (m->info) {
			rc = finding(a, kw_asprintf("'%s' is an ELF file in a wasm wheel", m->name));
			continue;
		}
		if (m->error) {
			rc = finding(a, kw_asprintf("a member is not a valid wasm module: %s", m->error));
			continue;
		}
		if (!m->wasm) {
			continue;
		}
		if (m->wasm->dylink == KW_WASM_NOT_SIDE && so_name(m->name)) {
			rc = finding(a, kw_asprintf("'%s' has no dylink.0 section first: no loader takes it as a "
						    "side module", m->name));
		} else if (m->wasm->dylink == KW_WASM_DYLINK_LEGACY) {
			rc = finding(a, kw_asprintf("'%s' has the legacy 'dylink' section (Emscripten before 2.0.30): "
						    "Emscripten 4.0.5 and later cannot load it, and it cannot hold a "
						    "runtime path", m->name));
		}
		py = rc ? NULL : suffix_python(m->name);
		if (py) {
			bool fits = false;

			python_fits(a, py, &fits);
			if (!fits) {
				rc = finding(a, kw_asprintf("'%s' is built for CPython %s, the wheel is tagged '%s'",
							    m->name, py, a->name.python));
			}
			free(py);
		}
	}
	if (rc) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	a->tags_ok = a->wasm_findings.n == 0;
	a->arch = "wasm32";
	/* What the ELF-only paths (repair's ELF relinking, KM) read: no ELF member to work on. */
	a->not_elf = kw_strdup("not an ELF platform wheel: its members are wasm side modules");
	if (!a->not_elf) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (a->tags_ok) {
		a->best_tag = kw_strdup(a->name.platform);
		if (!a->best_tag) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	rel = kw_policy_pyodide_releases(&n_rel);
	a->pyodide = kw_calloc(n_rel, sizeof(*a->pyodide));
	if (!a->pyodide) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n_rel; i++) {
		struct kw_audit_pyodide *p = &a->pyodide[a->n_pyodide];
		bool fits = false;

		python_fits(a, rel[i].python, &fits);
		if (!fits) {
			continue;
		}
		p->release = &rel[i];
		p->loads = rel[i].libs != KW_PYODIDE_LIBS_NONE;
		for (k = 0; rel[i].platform && k < a->name.n_platforms; k++) {
			p->same_abi = p->same_abi || strcmp(a->name.platforms[k], rel[i].platform) == 0;
		}
		a->n_pyodide++;
	}
	return 0;
}
