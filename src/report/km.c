/* SPDX-License-Identifier: MIT */
/* The manifest `kwheel km` writes beside each archive (OUTDIR/<name>.km.json). */
#include <stdbool.h>
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

/* The manifest's indentation, and the depth of an object's members: {"objects": [{...}]}. */
#define MANIFEST_INDENT 1
#define OBJECT_DEPTH 2

int kw_report_km_manifest_object(const struct kw_km_manifest_object *mo, char **out, struct kw_error *err)
{
	struct kw_buf b = { 0 };
	json_t *o;

	*out = NULL;
	report_json_init();
	o = object_json(mo);
	if (o) {
		report_json_dump_into(&b, o, MANIFEST_INDENT, OBJECT_DEPTH);
		json_decref(o);
	}
	if (!o || b.failed || !(*out = kw_buf_take(&b))) {
		kw_buf_release(&b);
		return kw_error_set(err, KW_ENOMEM, "out of memory building the manifest");
	}
	return 0;
}

/* One "key": value of the wheel manifest's top level, value dumped at depth 1 (NULL: a failure). */
static void top_key(struct kw_buf *b, bool first, const char *key, json_t *val)
{
	if (!val) {
		b->failed = true;
		return;
	}
	kw_buf_append(b, first ? "" : ",");
	report_json_newline(b, MANIFEST_INDENT, 1);
	kw_buf_appendf(b, "\"%s\": ", key);
	report_json_dump_into(b, val, MANIFEST_INDENT, 1);
	json_decref(val);
}

/*
 * A wheel's manifest, put together from its pieces as the dump of one
 * document would write it (keys in sorted order), so an object rendered
 * beforehand (mo->json, on the thread that converted it) is copied in.
 */
static char *wheel_manifest(const struct kw_km_manifest *m)
{
	struct kw_buf b = { 0 };
	size_t i;

	kw_buf_append(&b, "{");
	top_key(&b, true, "archive", report_jstr(m->archive));
	top_key(&b, false, "link_file", report_jstr(m->link_file));
	kw_buf_append(&b, ",");
	report_json_newline(&b, MANIFEST_INDENT, 1);
	kw_buf_append(&b, "\"objects\": [");
	for (i = 0; i < m->n_objects; i++) {
		const struct kw_km_manifest_object *mo = &m->objects[i];

		kw_buf_append(&b, i ? "," : "");
		report_json_newline(&b, MANIFEST_INDENT, OBJECT_DEPTH);
		if (mo->json) {
			kw_buf_append(&b, mo->json);
		} else {
			json_t *o = object_json(mo);

			if (!o) {
				b.failed = true;
				break;
			}
			report_json_dump_into(&b, o, MANIFEST_INDENT, OBJECT_DEPTH);
			json_decref(o);
		}
	}
	if (m->n_objects) {
		report_json_newline(&b, MANIFEST_INDENT, 1);
	}
	kw_buf_append(&b, "]");
	top_key(&b, false, "static_libs", strv_json(m->static_libs));
	top_key(&b, false, "warnings", strv_json(m->warnings));
	top_key(&b, false, "wheel", report_jstr(m->wheel));
	/* A text file: it ends with a newline. */
	kw_buf_append(&b, "\n}\n");
	if (b.failed) {
		kw_buf_release(&b);
		return NULL;
	}
	return kw_buf_take(&b);
}

int kw_report_km_manifest(const struct kw_km_manifest *m, char **out, struct kw_error *err)
{
	json_t *o, *ren;
	size_t i;
	int bad;
	char *s;

	*out = NULL;
	report_json_init();
	if (!m->id) {
		if (!(s = wheel_manifest(m))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory building the manifest");
		}
		*out = s;
		return 0;
	}
	o = json_object();
	ren = json_object();
	bad = !o;
	bad |= set(o, "archive", report_jstr(m->archive));
	bad |= set(o, "id", report_jstr(m->id));
	bad |= set(o, "mode", json_string("objects"));
	bad |= set(o, "symbol_tag", report_jstr(m->symbol_tag));
	for (i = 0; ren && m->renamed && i < m->renamed->n && i < m->renamed_to->n; i++) {
		bad |= json_object_set_new_nocheck(ren, m->renamed->v[i], report_jstr(m->renamed_to->v[i]));
	}
	bad |= set(o, "renamed", ren);
	s = bad ? NULL : report_json_dumps(o, MANIFEST_INDENT);
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
