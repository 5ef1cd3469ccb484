/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include <jansson.h>

#include "kwheel/report.h"

#include "internal.h"

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

static json_t *str_or_null(const char *s)
{
	return s ? report_jstr(s) : json_null();
}

static json_t *needed_json(const struct kw_dep_graph *g, const struct kw_dep_node *n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n->n_deps; i++) {
		if (n->deps[i] >= g->n_nodes || json_array_append_new(arr, report_jstr(g->nodes[n->deps[i]].name))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int kw_report_lddtree_json(const struct kw_dep_graph *g, char **out, struct kw_error *err)
{
	json_t *o, *libs;
	const struct kw_dep_node *root = &g->nodes[0];
	size_t i;
	int bad;
	char *s;

	*out = NULL;
	report_json_init();
	o = json_object();
	libs = json_array();
	bad = !o || !libs || g->n_nodes == 0;
	if (!bad) {
		bad |= set(o, "path", str_or_null(root->path));
		bad |= set(o, "realpath", str_or_null(root->realpath));
		bad |= set(o, "interpreter", str_or_null(root->info ? root->info->interp : NULL));
		bad |= set(o, "needed", needed_json(g, root));
	}
	for (i = 1; !bad && i < g->n_nodes; i++) {
		const struct kw_dep_node *n = &g->nodes[i];
		json_t *l = json_object();

		bad |= set(l, "name", report_jstr(n->name));
		bad |= set(l, "path", str_or_null(n->path));
		bad |= set(l, "realpath", str_or_null(n->realpath));
		bad |= set(l, "via", json_string(kw_found_via_str(n->via)));
		bad |= set(l, "needed", needed_json(g, n));
		bad |= json_array_append_new(libs, l);
	}
	bad |= set(o, "libs", libs);
	s = bad ? NULL : report_json_dumps(o, 0);
	json_decref(o);
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	*out = s;
	return 0;
}

static void tree_node(struct kw_buf *b, const struct kw_dep_graph *g, size_t i, unsigned depth, bool all,
		      bool *shown)
{
	const struct kw_dep_node *n = &g->nodes[i];
	size_t k;

	for (k = 0; k < n->n_deps; k++) {
		const struct kw_dep_node *d;
		bool again;

		if (n->deps[k] >= g->n_nodes) {
			continue;
		}
		d = &g->nodes[n->deps[k]];
		again = shown[n->deps[k]];
		for (unsigned d4 = 0; d4 < depth * 4; d4++) {
			kw_buf_append(b, " ");
		}
		kw_report_appendf(b, "%s => %s%s\n", d->name, d->path ? d->path : "not found",
				  again && !all ? " (already listed)" : "");
		if (again && !all) {
			continue;
		}
		shown[n->deps[k]] = true;
		/* --all can revisit; the depth bound keeps a DT_NEEDED cycle finite. */
		if (depth < 64) {
			tree_node(b, g, n->deps[k], depth + 1, all, shown);
		}
	}
}

int kw_report_lddtree_text(const struct kw_dep_graph *g, const char *path, unsigned flags, char **out,
			   struct kw_error *err)
{
	struct kw_buf b = { 0 };
	bool *shown = NULL;
	size_t k;

	*out = NULL;
	if (flags & KW_REPORT_LDDTREE_LIST) {
		for (k = 1; k < g->n_nodes; k++) {
			kw_report_appendf(&b, "%s\n", g->nodes[k].path ? g->nodes[k].path : g->nodes[k].name);
		}
	} else if (g->n_nodes) {
		const char *interp = g->nodes[0].info ? g->nodes[0].info->interp : NULL;

		kw_report_appendf(&b, "%s", path);
		if (interp) {
			kw_report_appendf(&b, " (interpreter => %s)", interp);
		}
		kw_buf_append(&b, "\n");
		shown = kw_calloc(g->n_nodes, sizeof(*shown));
		if (!shown) {
			kw_buf_release(&b);
			return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
		}
		shown[0] = true;
		tree_node(&b, g, 0, 1, (flags & KW_REPORT_LDDTREE_ALL) != 0, shown);
		free(shown);
	}
	*out = kw_buf_take(&b);
	if (!*out) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	return 0;
}
