/* SPDX-License-Identifier: MIT */
/*
 * repair for wasm (Emscripten/Pyodide) wheels. The audit gave the same
 * library list an ELF wheel gets; here the external NEEDED closure is
 * vendored into <Name>.libs/ (Pyodide 0.22-0.27 look exactly there), each
 * member that needs a vendored library gets RUNTIME_PATH
 * $ORIGIN/<relative path to Name.libs> (what Pyodide >= 0.28 follows), and
 * each vendored library that needs another gets $ORIGIN, since runtime
 * paths are not inherited. Only the dylink.0 section of a module changes;
 * the rest is copied byte for byte. Library names are kept unless
 * hash_names is set: Pyodide <= 0.27 and ctypes-by-name loaders look for
 * the original names. The platform tag stays: wasm wheels have no
 * policy ladder to climb. The output goes through the same work files,
 * rewrite, SBOM and report as an ELF repair.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/wasm.h"

#include "internal.h"

/* The grafted copy a wasm NEEDED name stands for, or NULL. */
static const struct inst *inst_by_soname(const struct job *j, const char *name)
{
	size_t i;

	for (i = 0; i < j->n_inst; i++) {
		if (strcmp(j->inst[i].soname, name) == 0) {
			return &j->inst[i];
		}
	}
	return NULL;
}

/* Write buf to a new work file named name (ours); its path in *out. */
static int write_work(struct job *j, const char *name, const unsigned char *buf, size_t len, char **out,
		      struct kw_error *err)
{
	char *path = kw_asprintf("%s/%s", j->workdir, name);
	int fd, rc = 0;

	if (!path) {
		return oom(err);
	}
	fd = repair_create_work(j, path, err);
	if (fd < 0) {
		free(path);
		return fd;
	}
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0 && !rc) {
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
	}
	if (rc) {
		free(path);
		return rc;
	}
	*out = path;
	return 0;
}

/*
 * Does NEEDED entry k of node in g name a library only Pyodide 0.22-0.27's
 * <Name>.libs/ search finds? Exact for a graph's root (its own NEEDED are
 * searched first); for a deeper node the first module that reached the
 * library decided how it was found.
 */
static bool libs_dir_hit(const struct kw_dep_graph *g, const struct kw_dep_node *node, size_t k)
{
	return g && node && k < node->n_deps && node->deps[k] < g->n_nodes &&
	       g->nodes[node->deps[k]].via == KW_VIA_LIBS_DIR;
}

/*
 * The edit of one module (node of g, or NULL): NEEDED entries naming
 * vendored libraries renamed (hash_names); entry appended to RUNTIME_PATH
 * when it needs a vendored library, libs_entry when it needs a library of
 * the wheel that only the <Name>.libs/ convention finds, each unless listed.
 * *changed false: nothing to do.
 */
static int plan_edit(const struct job *j, const struct kw_wasm_info *w, const struct kw_dep_graph *g,
		     const struct kw_dep_node *node, const char *entry, const char *libs_entry, const char ***needed,
		     const char ***rpath, struct kw_wasm_edit *e, bool *changed, struct kw_error *err)
{
	bool needs = false, needs_libs = false, listed = false, listed_libs = false;
	size_t k;

	*changed = false;
	memset(e, 0, sizeof(*e));
	*needed = kw_calloc(w->n_needed + 1, sizeof(**needed));
	*rpath = kw_calloc(w->n_runtime_path + 3, sizeof(**rpath));
	if (!*needed || !*rpath) {
		return oom(err);
	}
	for (k = 0; k < w->n_needed; k++) {
		const struct inst *in = inst_by_soname(j, w->needed[k]);

		(*needed)[k] = in ? in->newname : w->needed[k];
		needs = needs || in;
		needs_libs = needs_libs || (!in && libs_dir_hit(g, node, k));
		*changed = *changed || (in && strcmp(in->newname, w->needed[k]) != 0);
	}
	for (k = 0; k < w->n_runtime_path; k++) {
		(*rpath)[k] = w->runtime_path[k];
		listed = listed || strcmp(w->runtime_path[k], entry) == 0;
		listed_libs = listed_libs || strcmp(w->runtime_path[k], libs_entry) == 0;
	}
	e->set_needed = true;
	e->needed = *needed;
	e->n_needed = w->n_needed;
	e->set_runtime_path = true;
	e->runtime_path = *rpath;
	e->n_runtime_path = w->n_runtime_path;
	if (needs && !listed) {
		(*rpath)[e->n_runtime_path++] = entry;
		listed_libs = listed_libs || strcmp(entry, libs_entry) == 0;
		*changed = true;
	}
	if (needs_libs && !listed_libs) {
		(*rpath)[e->n_runtime_path++] = libs_entry;
		*changed = true;
	}
	return 0;
}

/* Edit bytes as plan_edit says; new buffer in *out (free()), NULL when nothing changes. */
static int edit_module(const struct job *j, const char *label, const unsigned char *buf, size_t len,
		       const struct kw_wasm_info *w, const struct kw_dep_graph *g, const struct kw_dep_node *node,
		       const char *entry, const char *libs_entry, unsigned char **out, size_t *out_len,
		       struct kw_error *err)
{
	const char **needed = NULL, **rpath = NULL;
	struct kw_wasm_edit e;
	bool changed;
	int rc;

	*out = NULL;
	rc = plan_edit(j, w, g, node, entry, libs_entry, &needed, &rpath, &e, &changed, err);
	if (!rc && changed) {
		rc = kw_wasm_edit_dylink(buf, len, label, &e, out, out_len, err);
	}
	free(needed);
	free(rpath);
	return rc;
}

/* Does the vendored library in (parsed as w) need another vendored one, or one of the wheel's <Name>.libs/? */
static bool needs_grafted(const struct job *j, const struct kw_wasm_info *w, const struct inst *self)
{
	size_t k;

	for (k = 0; w && k < w->n_needed; k++) {
		const struct inst *in = inst_by_soname(j, w->needed[k]);

		if ((in && in != self) || (!in && libs_dir_hit(self->graph, self->node, k))) {
			return true;
		}
	}
	return false;
}

/* Does a member need a library of the wheel that only the <Name>.libs/ convention finds? */
static bool members_need_libs_dir(const struct job *j)
{
	const struct kw_audit *a = j->a;
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;
		const struct kw_wasm_info *w = a->members[i].wasm;

		for (k = 0; g && g->n_nodes && w && w->dylink == KW_WASM_DYLINK_0 && k < w->n_needed; k++) {
			if (!inst_by_soname(j, w->needed[k]) && libs_dir_hit(g, &g->nodes[0], k)) {
				return true;
			}
		}
	}
	return false;
}

/* The node of any member's graph that a vendored library is, for its edges and the SBOM. */
static const struct kw_dep_node *lib_node(const struct kw_audit *a, const char *realpath,
					  const struct kw_dep_graph **graph)
{
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 0; g && k < g->n_nodes; k++) {
			if (!g->nodes[k].in_overlay && g->nodes[k].realpath && strcmp(g->nodes[k].realpath, realpath) == 0) {
				*graph = g;
				return &g->nodes[k];
			}
		}
	}
	return NULL;
}

/* Vendored libraries in load order: each after the vendored libraries it needs (a cycle: as found). */
static int order_insts(struct job *j, struct kw_error *err)
{
	struct inst *sorted = kw_calloc(j->n_inst + 1, sizeof(*sorted));
	bool *done = kw_calloc(j->n_inst + 1, sizeof(*done));
	size_t n = 0, i, k;
	int rc = sorted && done ? 0 : oom(err);

	while (!rc && n < j->n_inst) {
		size_t before = n;

		for (i = 0; i < j->n_inst; i++) {
			const struct kw_wasm_info *w = j->inst[i].node ? j->inst[i].node->wasm : NULL;
			bool ready = true;

			for (k = 0; !done[i] && w && k < w->n_needed; k++) {
				const struct inst *in = inst_by_soname(j, w->needed[k]);

				ready = ready && (!in || in == &j->inst[i] || done[in - j->inst]);
			}
			if (!done[i] && ready) {
				done[i] = true;
				sorted[n++] = j->inst[i];
			}
		}
		for (i = 0; n == before && i < j->n_inst; i++) {
			if (!done[i]) {
				done[i] = true;
				sorted[n++] = j->inst[i];
				break;
			}
		}
	}
	if (!rc && j->n_inst) {
		memcpy(j->inst, sorted, j->n_inst * sizeof(*sorted));
	}
	free(sorted);
	free(done);
	return rc;
}

/* "$ORIGIN/../../Shapely.libs" for a member in shapely/speedups/; "$ORIGIN/Shapely.libs" at the top. */
static char *origin_entry(const char *member, const char *libs_dir)
{
	struct kw_buf b = { 0 };
	const char *p;

	kw_buf_append(&b, "$ORIGIN/");
	for (p = strchr(member, '/'); p; p = strchr(p + 1, '/')) {
		kw_buf_append(&b, "../");
	}
	kw_buf_append(&b, libs_dir);
	return kw_buf_take(&b);
}

static bool excluded_node(const struct job *j, const struct kw_dep_node *n)
{
	return !n->in_overlay && (repair_excluded_name(j, n->name) || (n->realpath && repair_excluded_name(j, n->realpath)));
}

/*
 * What stays needed once --exclude leaves libraries out: every external
 * library some member reaches without passing through an excluded one
 * (by real path, or by name when not found). The excluded ones go to
 * res->excluded, what only they need to res->excluded_deps.
 */
static int plan_reach(struct job *j, struct kw_strv *keep, struct kw_error *err)
{
	const struct kw_audit *a = j->a;
	size_t i, k, d;
	bool *seen = NULL;
	size_t *queue = NULL;
	int rc = 0;

	for (i = 0; !rc && i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;
		size_t head = 0, tail = 0;

		if (!g || !g->n_nodes) {
			continue;
		}
		free(seen);
		free(queue);
		seen = kw_calloc(g->n_nodes, sizeof(*seen));
		queue = kw_calloc(g->n_nodes, sizeof(*queue));
		if (!seen || !queue) {
			rc = oom(err);
			break;
		}
		seen[0] = true;
		queue[tail++] = 0;
		while (!rc && head < tail) {
			const struct kw_dep_node *n = &g->nodes[queue[head++]];

			for (d = 0; !rc && d < n->n_deps; d++) {
				size_t t = n->deps[d];
				const struct kw_dep_node *dn;

				if (t >= g->n_nodes || seen[t]) {
					continue;
				}
				seen[t] = true;
				dn = &g->nodes[t];
				if (excluded_node(j, dn)) {
					rc = kw_strv_push_unique(&j->res->excluded, dn->name) ? oom(err) : 0;
					continue;
				}
				if (!dn->in_overlay) {
					rc = kw_strv_push_unique(keep, dn->realpath ? dn->realpath : dn->name) ? oom(err) : 0;
				}
				queue[tail++] = t;
			}
		}
	}
	for (i = 0; !rc && i < a->n_libs; i++) {
		const struct kw_audit_lib *l = &a->libs[i];

		k = (size_t)kw_strv_find(keep, l->realpath ? l->realpath : l->soname);
		if (k == (size_t)-1 && kw_strv_find(&j->res->excluded, l->soname) < 0 &&
		    kw_strv_push_unique(&j->res->excluded_deps, l->soname)) {
			rc = oom(err);
		}
	}
	free(seen);
	free(queue);
	return rc;
}

static int plan_libs(struct job *j, struct kw_error *err)
{
	const struct kw_audit *a = j->a;
	struct kw_strv keep = { 0 };
	size_t i, cap = 0;
	int rc;

	rc = plan_reach(j, &keep, err);
	for (i = 0; !rc && i < a->n_libs; i++) {
		const struct kw_audit_lib *l = &a->libs[i];
		const struct kw_dep_graph *g = NULL;
		const struct kw_dep_node *n;
		unsigned char *buf = NULL, d[32];
		size_t len = 0;
		struct kw_sha256 s;
		struct inst *in;

		if (kw_strv_find(&keep, l->realpath ? l->realpath : l->soname) < 0) {
			continue;
		}
		if (!l->path || !l->realpath) {
			rc = kw_error_set(err, KW_EPOLICY,
					  "'%s': cannot repair: %s, needed by %s, was not found (give its directory "
					  "with --library-path or --ldpaths)",
					  a->filename, l->soname, l->needed_by.n ? l->needed_by.v[0] : "?");
			break;
		}
		if (inst_by_soname(j, l->soname)) {
			continue;
		}
		n = lib_node(a, l->realpath, &g);
		if (kw_grow(&j->inst, &cap, j->n_inst + 1, sizeof(*j->inst))) {
			rc = oom(err);
			break;
		}
		in = &j->inst[j->n_inst++];
		memset(in, 0, sizeof(*in));
		in->soname = kw_strdup(l->soname);
		in->realpath = kw_strdup(l->realpath);
		in->src = kw_ctx_rooted(j->ctx, l->realpath);
		in->node = n;
		in->graph = g;
		if (!in->soname || !in->realpath || !in->src || kw_strv_push(&j->graft, l->soname)) {
			rc = oom(err);
			break;
		}
		rc = kw_map_file(in->src, &buf, &len, err);
		if (rc) {
			break;
		}
		kw_sha256_init(&s);
		kw_sha256_update(&s, buf, len);
		kw_sha256_final(&s, d);
		kw_hex(d, 32, in->sha);
		kw_unmap_file(buf, len);
		in->newname = j->o->hash_names ? repair_graft_name(l->realpath, in->sha) : kw_strdup(l->soname);
		if (!in->newname) {
			rc = oom(err);
		}
	}
	kw_strv_release(&keep);
	return rc ? rc : order_insts(j, err);
}

/* The vendored libraries' work files: each one edited when it needs another vendored one. */
static int prepare_libs(struct job *j, struct kw_error *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < j->n_inst; i++) {
		struct inst *in = &j->inst[i];
		const struct kw_wasm_info *w = in->node ? in->node->wasm : NULL;
		unsigned char *buf = NULL, *edited = NULL;
		size_t len = 0, elen = 0;
		char name[32];

		rc = kw_map_file(in->src, &buf, &len, err);
		if (rc) {
			break;
		}
		if (w && needs_grafted(j, w, in)) {
			rc = edit_module(j, in->realpath, buf, len, w, in->graph, in->node, "$ORIGIN", j->libs_entry_lib,
					 &edited, &elen, err);
		}
		snprintf(name, sizeof(name), "lib-%zu", i);
		if (!rc) {
			rc = write_work(j, name, edited ? edited : buf, edited ? elen : len, &in->work, err);
		}
		free(edited);
		kw_unmap_file(buf, len);
	}
	return rc;
}

/* The members that need a vendored library: RUNTIME_PATH to <Name>.libs (and renamed NEEDED). */
static int prepare_members(struct job *j, struct kw_error *err)
{
	const struct kw_audit *a = j->a;
	size_t i, n = kw_wheel_member_count(j->w);
	int rc = 0;

	j->n_member_work = n;
	j->member_work = kw_calloc(n + 1, sizeof(*j->member_work));
	j->member_move = kw_calloc(n + 1, sizeof(*j->member_move));
	if (!j->member_work || !j->member_move) {
		return oom(err);
	}
	for (i = 0; !rc && i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		struct kw_wheel_map map = { 0 };
		unsigned char *edited = NULL;
		size_t elen = 0;
		char *entry = NULL, *libs_entry = NULL, name[32];
		long idx;

		if (!m->wasm || m->wasm->dylink != KW_WASM_DYLINK_0) {
			continue;
		}
		idx = kw_wheel_find(j->w, m->name);
		if (idx < 0) {
			return kw_error_set(err, KW_EINTERNAL, "'%s': member '%s' vanished", a->filename, m->name);
		}
		entry = origin_entry(m->name, j->libs_dir);
		libs_entry = origin_entry(m->name, j->wheel_libs_dir);
		rc = entry && libs_entry ? kw_wheel_map(j->w, (size_t)idx, &map, NULL, err) : oom(err);
		if (!rc) {
			rc = edit_module(j, m->name, map.data, map.len, m->wasm, m->graph,
					 m->graph && m->graph->n_nodes ? &m->graph->nodes[0] : NULL, entry, libs_entry,
					 &edited, &elen, err);
		}
		kw_wheel_unmap(&map);
		free(entry);
		free(libs_entry);
		if (!rc && edited) {
			snprintf(name, sizeof(name), "member-%zu", i);
			rc = write_work(j, name, edited, elen, &j->member_work[idx], err);
			if (!rc && kw_strv_push(&j->res->patched, m->name)) {
				rc = oom(err);
			}
		}
		free(edited);
	}
	return rc;
}

int repair_wasm(struct job *j, const char *path, char **out_path, struct kw_error *err)
{
	const struct kw_audit *a = j->a;
	size_t i;
	int rc;

	*out_path = NULL;
	j->wasm = true;
	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].error) {
			return kw_error_set(err, KW_EFORMAT, "'%s': member %s", a->filename, a->members[i].error);
		}
	}
	if (a->wasm_findings.n) {
		return kw_error_set(err, KW_EPOLICY, "'%s': cannot repair: %s", a->filename, a->wasm_findings.v[0]);
	}
	if (j->o->strip) {
		/* wasm-strip drops every custom section, dylink.0 too: no loader would take the result. */
		return kw_error_set(err, KW_EUNSUPPORTED, "'%s': --strip is not supported for wasm wheels",
				    a->filename);
	}
	j->libs_dir = kw_asprintf("%s%s", a->name.distribution, j->o->lib_sdir ? j->o->lib_sdir : ".libs");
	/* Where the audit's <Name>.libs/ fallback looked, as seen from a library vendored into libs_dir. */
	j->wheel_libs_dir = kw_asprintf("%s.libs", a->name.distribution);
	j->libs_entry_lib = j->wheel_libs_dir && j->libs_dir && strcmp(j->wheel_libs_dir, j->libs_dir) == 0
				    ? kw_strdup("$ORIGIN")
				    : kw_asprintf("$ORIGIN/../%s", j->wheel_libs_dir ? j->wheel_libs_dir : "");
	j->res->tag = kw_strdup(a->name.platform);
	*out_path = kw_asprintf("%s/%s", j->o->out_dir, a->filename);
	if (!j->libs_dir || !j->wheel_libs_dir || !j->libs_entry_lib || !j->res->tag || !*out_path) {
		return oom(err);
	}
	rc = plan_libs(j, err);
	if (rc) {
		return rc;
	}
	if (j->n_inst == 0 && !members_need_libs_dir(j)) {
		j->res->action = KW_REPAIR_COPIED;
		j->res->note = kw_strdup("no external library to vendor: copied");
		if (!j->res->note) {
			return oom(err);
		}
		return repair_same_file(path, *out_path) ? 0 : repair_copy_as_is(j, path, *out_path, err);
	}
	if (repair_same_file(path, *out_path)) {
		return kw_error_set(err, KW_EINVAL, "'%s': the output would overwrite the input", a->filename);
	}
	rc = kw_wheel_temp_dir(j->o->out_dir, ".kwheel-work", &j->workdir, &j->workfd, err);
	if (!rc) {
		rc = kw_wheel_open(j->ctx, path, &j->w, err);
	}
	if (!rc) {
		rc = prepare_libs(j, err);
	}
	if (!rc) {
		rc = prepare_members(j, err);
	}
	if (rc) {
		return rc;
	}
	j->res->action = KW_REPAIR_REPAIRED;
	j->res->grafts = kw_calloc(j->n_inst + 1, sizeof(*j->res->grafts));
	if (!j->res->grafts) {
		return oom(err);
	}
	for (i = 0; i < j->n_inst; i++) {
		struct kw_repair_graft *g = &j->res->grafts[j->res->n_grafts++];

		g->soname = kw_strdup(j->inst[i].soname);
		g->src = kw_strdup(j->inst[i].realpath);
		g->dest = kw_asprintf("%s/%s", j->libs_dir, j->inst[i].newname);
		g->sha256 = kw_strdup(j->inst[i].sha);
		if (!g->soname || !g->src || !g->dest || !g->sha256) {
			return oom(err);
		}
	}
	return repair_write_wheel(j, *out_path, j->o->mtime, err);
}
