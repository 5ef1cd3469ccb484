/* SPDX-License-Identifier: MIT */
/*
 * The parts of `kwheel show` only a wasm wheel has: each side module's
 * memory and table needs and RUNTIME_PATH, and which Pyodide releases can
 * load the repaired wheel. Everything else (RECORD, tags, members, the
 * library list, external_libs) is show.c's, for ELF and wasm alike.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/audit.h"
#include "kwheel/report.h"
#include "kwheel/util.h"

#include "internal.h"

static const char *dylink_str(enum kw_wasm_dylink_kind k)
{
	return k == KW_WASM_DYLINK_0 ? "dylink.0" : k == KW_WASM_DYLINK_LEGACY ? "dylink" : NULL;
}

static void print_deps(struct kw_buf *f, const struct kw_dep_graph *g, size_t from, size_t depth, bool verbose)
{
	size_t d;

	for (d = 0; g && d < g->nodes[from].n_deps; d++) {
		const struct kw_dep_node *n = &g->nodes[g->nodes[from].deps[d]];

		if (!n->path) {
			kw_report_appendf(f, "%*s%s => not found%s%s\n", (int)(6 + 2 * depth), "", n->name,
					  n->error ? ": " : "", n->error ? n->error : "");
			continue;
		}
		kw_report_appendf(f, "%*s%s => ", (int)(6 + 2 * depth), "", n->name);
		kw_report_appendf(f, "%s (%s)\n", n->member ? n->member : n->path,
				  !n->member ? "library path"
				  : n->via == KW_VIA_LIBS_DIR ? "in the wheel, found only by Pyodide 0.22-0.27's .libs/ "
								"search: repair adds a runtime path"
							      : "in the wheel, by its runtime path");
		/* The whole tree only on request; a cycle or a shared library stops at the depth limit of 8. */
		if (verbose && depth < 8 && g->nodes[from].deps[d] != from) {
			print_deps(f, g, g->nodes[from].deps[d], depth + 1, verbose);
		}
	}
}

/* Every side module with its memory, runtime path and NEEDED tree. */
static void print_modules(struct kw_buf *f, const struct kw_audit *a)
{
	size_t i, k;

	kw_report_appendf(f, "  side modules: %zu\n", a->n_members);
	for (i = 0; i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		const struct kw_wasm_info *w = m->wasm;

		if (m->error) {
			kw_report_appendf(f, "    %s: unreadable: %s\n", m->name, m->error);
			continue;
		}
		if (!w) {
			kw_report_appendf(f, "    %s: ELF, not wasm\n", m->name);
			continue;
		}
		kw_report_appendf(f, "    %s%s\n", m->name, m->extension ? " (extension)" : "");
		if (w->dylink == KW_WASM_NOT_SIDE) {
			kw_report_appendf(f, "      not a side module (no dylink.0 section first)\n");
			continue;
		}
		if (w->has_mem_info) {
			kw_report_appendf(f, "      memory: %u bytes (align 2^%u), table: %u entries (align 2^%u)\n",
					  w->mem_size, w->mem_align, w->table_size, w->table_align);
		}
		kw_report_appendf(f, "      runtime path:");
		for (k = 0; k < w->n_runtime_path; k++) {
			kw_report_appendf(f, "%s%s", k ? ":" : " ", w->runtime_path[k]);
		}
		kw_report_appendf(f, "%s\n", w->n_runtime_path ? "" : " none");
		print_deps(f, m->graph, 0, 0, true);
	}
}

/*
 * The libraries of the wheel that only the <Name>.libs/ fallback finds, once
 * each: the short text's one line about a wheel grafted for Pyodide 0.22-0.27.
 */
static void print_libs_dir_hits(struct kw_buf *f, const struct kw_audit *a)
{
	struct kw_strv seen = { 0 };
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 0; g && k < g->n_nodes; k++) {
			const char *m = g->nodes[k].member;

			if (g->nodes[k].via != KW_VIA_LIBS_DIR || !m || kw_strv_find(&seen, m) >= 0) {
				continue;
			}
			if (kw_strv_push(&seen, m)) {
				f->failed = true;
				break;
			}
		}
	}
	for (i = 0; i < seen.n; i++) {
		if (i == 0) {
			kw_report_appendf(f, "  found only by Pyodide 0.22-0.27's .libs/ search (repair adds a runtime path): ");
		}
		kw_report_appendf(f, "%s%s", i ? ", " : "", seen.v[i]);
	}
	if (seen.n) {
		kw_report_appendf(f, "\n");
	}
	kw_strv_release(&seen);
}

void report_wasm_text(struct kw_buf *f, const struct kw_audit *a, bool verbose)
{
	size_t i;

	kw_report_appendf(f, "  platform: %s, wasm32 (Emscripten/Pyodide)\n", a->name.platform);
	if (a->tags_ok) {
		kw_report_appendf(f, "  consistent with: %s\n", a->best_tag ? a->best_tag : a->name.platform);
	}
	for (i = 0; i < a->wasm_findings.n; i++) {
		kw_report_appendf(f, "  not consistent: %s\n", a->wasm_findings.v[i]);
	}
	for (i = 0; i < a->tag_mismatches.n; i++) {
		kw_report_appendf(f, "  WHEEL and the file name do not match: %s\n", a->tag_mismatches.v[i]);
	}
	if (!verbose) {
		print_libs_dir_hits(f, a);
	} else {
		print_modules(f, a);
	}
	if (a->n_libs) {
		kw_report_appendf(f, "  libraries from outside the wheel (repair vendors them into %s.libs/):\n",
				  a->name.distribution);
		for (i = 0; i < a->n_libs; i++) {
			kw_report_appendf(f, "    %s => %s\n", a->libs[i].soname,
					  a->libs[i].path ? a->libs[i].path : "not found");
		}
	}
	kw_report_appendf(f, "  Pyodide releases for its Python, once repaired:\n");
	if (!a->n_pyodide) {
		kw_report_appendf(f, "    none known for '%s'\n", a->name.python);
	}
	for (i = 0; i < a->n_pyodide; i++) {
		const struct kw_audit_pyodide *p = &a->pyodide[i];
		const struct kw_pyodide_release *r = p->release;

		kw_report_appendf(f, "    %s (Python %s, Emscripten %s%s): ", r->series, r->python, r->emscripten,
				  p->same_abi ? ", this tag" : ", another ABI: loading is luck");
		switch (r->libs) {
		case KW_PYODIDE_LIBS_NONE:
			kw_report_appendf(f, "no, it loads a wheel's modules locally");
			break;
		case KW_PYODIDE_LIBS_DIR:
			kw_report_appendf(f, "yes, installed with loadPackage (%s.libs/)", a->name.distribution);
			break;
		case KW_PYODIDE_LIBS_RUNTIME_PATH:
			kw_report_appendf(f, "yes, by RUNTIME_PATH%s",
					  r->duplicates ? " (a library reached from two directories loads twice)" : "");
			break;
		}
		kw_report_appendf(f, "%s%s%s\n", r->measured ? "; measured with " : "",
				  r->measured ? r->measured : "", r->measured ? "" : "; from the loader's source");
	}
}

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

static json_t *strv_json(char *const *v, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, report_jstr(v[i]))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Each section: its kind, the payload's offset and size, a custom section's name. */
static json_t *sections_json(const struct kw_wasm_info *w)
{
	json_t *arr = json_array();
	size_t i;
	int bad = !arr;

	for (i = 0; !bad && i < w->n_sections; i++) {
		const struct kw_wasm_section *sec = &w->sections[i];
		json_t *e = json_object();

		bad |= !e;
		bad |= set(e, "kind", json_string(kw_wasm_section_str(sec->id)));
		bad |= set(e, "start", json_integer((json_int_t)sec->payload));
		bad |= set(e, "size", json_integer((json_int_t)sec->size));
		bad |= set(e, "name", sec->name ? report_jstr(sec->name) : json_null());
		bad |= json_array_append_new(arr, e);
	}
	if (bad) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

int report_wasm_member_json(json_t *o, const struct kw_audit_member *m)
{
	const struct kw_wasm_info *w = m->wasm;
	struct kw_buf rp = { 0 };
	json_t *wj;
	char *s;
	size_t k;
	int bad = 0;

	if (!w) {
		return 0;
	}
	/* The ELF keys that mean the same: RUNTIME_PATH is DT_RUNPATH, joined as the loader joins it. */
	for (k = 0; k < w->n_runtime_path; k++) {
		kw_buf_appendf(&rp, "%s%s", k ? ":" : "", w->runtime_path[k]);
	}
	s = kw_buf_take(&rp);
	if (!s) {
		return -1;
	}
	bad |= set(o, "needed", strv_json(w->needed, w->n_needed));
	bad |= set(o, "runpath", w->has_runtime_path ? report_jstr(s) : json_null());
	bad |= set(o, "rpath", json_null());
	bad |= set(o, "soname", json_null());
	free(s);
	wj = json_object();
	bad |= !wj;
	bad |= set(wj, "dylink", dylink_str(w->dylink) ? json_string(dylink_str(w->dylink)) : json_null());
	bad |= set(wj, "runtime_path", strv_json(w->runtime_path, w->n_runtime_path));
	bad |= set(wj, "memory_size", w->has_mem_info ? json_integer(w->mem_size) : json_null());
	bad |= set(wj, "memory_align", w->has_mem_info ? json_integer(w->mem_align) : json_null());
	bad |= set(wj, "table_size", w->has_mem_info ? json_integer(w->table_size) : json_null());
	bad |= set(wj, "table_align", w->has_mem_info ? json_integer(w->table_align) : json_null());
	bad |= set(wj, "imports", json_integer((json_int_t)w->n_imports));
	bad |= set(wj, "exports", json_integer((json_int_t)w->n_exports));
	bad |= set(wj, "sections", sections_json(w));
	bad |= set(o, "wasm", wj);
	return bad ? -1 : 0;
}

json_t *report_wasm_json(const struct kw_audit *a)
{
	json_t *o = json_object();
	json_t *arr = json_array();
	size_t i;
	int bad = !o || !arr;

	for (i = 0; !bad && i < a->n_pyodide; i++) {
		const struct kw_audit_pyodide *p = &a->pyodide[i];
		const struct kw_pyodide_release *r = p->release;
		json_t *e = json_object();

		bad |= !e;
		bad |= set(e, "release", json_string(r->series));
		bad |= set(e, "python", json_string(r->python));
		bad |= set(e, "emscripten", json_string(r->emscripten));
		bad |= set(e, "platform", r->platform ? json_string(r->platform) : json_null());
		bad |= set(e, "loads", json_boolean(p->loads));
		bad |= set(e, "install", json_string(kw_pyodide_libs_str(r->libs)));
		bad |= set(e, "same_abi", json_boolean(p->same_abi));
		bad |= set(e, "duplicate_instances", json_boolean(r->duplicates));
		bad |= set(e, "measured", r->measured ? json_string(r->measured) : json_null());
		bad |= json_array_append_new(arr, e);
	}
	bad |= set(o, "pyodide", arr);
	bad |= set(o, "findings", strv_json(a->wasm_findings.v, a->wasm_findings.n));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
