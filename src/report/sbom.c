/* SPDX-License-Identifier: MIT */
/*
 * The CycloneDX document a repaired wheel carries at <dist-info>/sboms/kwheel.cdx.json.
 * jansson's *_new calls take their value even when they fail (an invalid
 * container or key): building goes on and fails once, at the end.
 */
#include <stdlib.h>

#include <jansson.h>

#include "kwheel/repair.h"
#include "kwheel/report.h"

#include "internal.h"

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

/*
 * A library component. One with a package is that package (its purl); one
 * no package owns is the file itself: its digest, where it came from and
 * where it lies in the wheel.
 */
static json_t *component(const struct kw_sbom_component *c)
{
	json_t *o = json_object();
	int bad = !o;

	bad |= set(o, "type", json_string("library"));
	bad |= set(o, "bom-ref", report_jstr(c->ref));
	bad |= set(o, "name", report_jstr(c->name));
	if (c->version) {
		bad |= set(o, "version", report_jstr(c->version));
	}
	if (c->purl) {
		bad |= set(o, "purl", report_jstr(c->purl));
	}
	if (c->sha256) {
		json_t *hashes = json_array(), *h = json_object();

		bad |= set(h, "alg", json_string("SHA-256"));
		bad |= set(h, "content", report_jstr(c->sha256));
		bad |= json_array_append_new(hashes, h);
		bad |= set(o, "hashes", hashes);
	}
	if (c->source_path || c->wheel_path) {
		json_t *props = json_array();
		const char *names[2] = { "kwheel:source_path", "kwheel:wheel_path" };
		const char *values[2] = { c->source_path, c->wheel_path };
		int k;

		for (k = 0; k < 2; k++) {
			json_t *p = values[k] ? json_object() : NULL;

			if (!values[k]) {
				continue;
			}
			bad |= set(p, "name", json_string(names[k]));
			bad |= set(p, "value", report_jstr(values[k]));
			bad |= json_array_append_new(props, p);
		}
		bad |= set(o, "properties", props);
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int kw_report_sbom(const struct kw_sbom *s, char **out, struct kw_error *err)
{
	json_t *doc, *comps, *deps, *dep_on, *meta, *tools, *tool, *d0;
	size_t i;
	int bad;

	*out = NULL;
	report_json_init();
	doc = json_object();
	comps = json_array();
	deps = json_array();
	dep_on = json_array();
	meta = json_object();
	tools = json_array();
	tool = json_object();
	d0 = json_object();
	bad = !doc || !comps || !deps || !dep_on || !meta || !tools || !tool || !d0;
	bad |= json_array_append_new(comps, component(&s->wheel));
	for (i = 0; i < s->n_libs; i++) {
		json_t *d = json_object();

		bad |= json_array_append_new(comps, component(&s->libs[i]));
		bad |= json_array_append_new(dep_on, report_jstr(s->libs[i].ref));
		bad |= set(d, "ref", report_jstr(s->libs[i].ref));
		bad |= json_array_append_new(deps, d);
	}
	bad |= set(d0, "ref", report_jstr(s->wheel.ref));
	bad |= set(d0, "dependsOn", dep_on);
	bad |= json_array_insert_new(deps, 0, d0);
	bad |= set(tool, "name", report_jstr(s->tool));
	bad |= set(tool, "version", report_jstr(s->tool_version));
	bad |= json_array_append_new(tools, tool);
	bad |= set(meta, "component", component(&s->wheel));
	bad |= set(meta, "tools", tools);
	bad |= set(doc, "bomFormat", json_string("CycloneDX"));
	bad |= set(doc, "specVersion", json_string("1.4"));
	bad |= set(doc, "version", json_integer(1));
	bad |= set(doc, "metadata", meta);
	bad |= set(doc, "components", comps);
	bad |= set(doc, "dependencies", deps);
	*out = bad ? NULL : report_json_dumps(doc, 2);
	json_decref(doc);
	if (!*out) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the SBOM");
	}
	return 0;
}
