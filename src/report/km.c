/* SPDX-License-Identifier: MIT */
/* The manifest `kwheel km` writes beside each archive (OUTDIR/<name>.km.json). */
#include <stdlib.h>

#include <jansson.h>

#include "kwheel/km.h"
#include "kwheel/report.h"

#include "internal.h"

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

static json_t *strv_json(const struct kw_strv *sv)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && sv && i < sv->n; i++) {
		if (json_array_append_new(a, report_jstr(sv->v[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *object_json(const struct kw_km_manifest_object *mo)
{
	json_t *o = json_object();
	int bad = !o;

	bad |= set(o, "path", report_jstr(mo->path));
	bad |= set(o, "in_wheel", json_boolean(mo->in_wheel));
	bad |= set(o, "id", report_jstr(mo->id));
	bad |= set(o, "mode", json_string(mo->mode == KW_KM_MODULE ? "module" : "lib"));
	bad |= set(o, "object", report_jstr(mo->object));
	bad |= set(o, "symbol_tag", report_jstr(mo->symbol_tag));
	bad |= set(o, "exports", strv_json(&mo->exports));
	bad |= set(o, "undefined", strv_json(&mo->undefined));
	bad |= set(o, "needed", strv_json(&mo->needed));
	bad |= set(o, "warnings", strv_json(&mo->warnings));
	bad |= set(o, "relocations", json_integer((json_int_t)mo->n_relocs));
	bad |= set(o, "registered", json_integer((json_int_t)mo->n_registered));
	bad |= set(o, "reused_from", mo->reused_from ? report_jstr(mo->reused_from) : json_null());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int kw_report_km_manifest(const struct kw_km_manifest *m, char **out, struct kw_error *err)
{
	json_t *o;
	size_t i;
	int bad;
	char *s;

	*out = NULL;
	report_json_init();
	o = json_object();
	bad = !o;
	bad |= set(o, "archive", report_jstr(m->archive));
	if (m->id) {
		json_t *ren = json_object();

		bad |= set(o, "id", report_jstr(m->id));
		bad |= set(o, "mode", json_string("objects"));
		bad |= set(o, "symbol_tag", report_jstr(m->symbol_tag));
		for (i = 0; ren && m->renamed && i < m->renamed->n && i < m->renamed_to->n; i++) {
			bad |= json_object_set_new_nocheck(ren, m->renamed->v[i], report_jstr(m->renamed_to->v[i]));
		}
		bad |= set(o, "renamed", ren);
	} else {
		json_t *objs = json_array();

		bad |= set(o, "wheel", report_jstr(m->wheel));
		bad |= set(o, "link_file", report_jstr(m->link_file));
		bad |= set(o, "static_libs", strv_json(m->static_libs));
		bad |= set(o, "warnings", strv_json(m->warnings));
		for (i = 0; objs && i < m->n_objects; i++) {
			bad |= json_array_append_new(objs, object_json(&m->objects[i]));
		}
		bad |= set(o, "objects", objs);
	}
	s = bad ? NULL : report_json_dumps(o, 1);
	json_decref(o);
	if (s) {
		struct kw_buf b = { 0 };

		/* A text file: it ends with a newline. */
		kw_buf_append(&b, s);
		kw_buf_append(&b, "\n");
		free(s);
		s = kw_buf_take(&b);
	}
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the manifest");
	}
	*out = s;
	return 0;
}
