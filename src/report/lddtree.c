/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include <jansson.h>

#include "kwheel/report.h"

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *needed_json(const struct kw_dep_graph *g, const struct kw_dep_node *n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n->n_deps; i++) {
		if (n->deps[i] >= g->n_nodes || json_array_append_new(arr, json_string(g->nodes[n->deps[i]].name))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int kw_report_lddtree_json(const struct kw_dep_graph *g, char **out, struct kw_error *err)
{
	json_t *o = json_object(), *libs = json_array();
	const struct kw_dep_node *root = &g->nodes[0];
	size_t i;
	int bad = !o || !libs || g->n_nodes == 0;
	char *s;

	*out = NULL;
	if (!bad) {
		bad |= set(o, "path", str_or_null(root->path));
		bad |= set(o, "realpath", str_or_null(root->realpath));
		bad |= set(o, "interpreter", str_or_null(root->info ? root->info->interp : NULL));
		bad |= set(o, "needed", needed_json(g, root));
	}
	for (i = 1; !bad && i < g->n_nodes; i++) {
		const struct kw_dep_node *n = &g->nodes[i];
		json_t *l = json_object();

		bad |= set(l, "name", json_string(n->name));
		bad |= set(l, "path", str_or_null(n->path));
		bad |= set(l, "realpath", str_or_null(n->realpath));
		bad |= set(l, "via", json_string(kw_found_via_str(n->via)));
		bad |= set(l, "needed", needed_json(g, n));
		bad |= json_array_append_new(libs, l);
	}
	bad |= set(o, "libs", libs);
	s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	*out = s;
	return 0;
}
