/* SPDX-License-Identifier: MIT */
/* What `kwheel repair` says about each wheel: a text block or one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kwheel/report.h"

#include "internal.h"

/* repair's twice entries are "SONAME\tLIB", sorted: the SONAME's length, and whether two share it. */
static size_t twice_soname_len(const char *t)
{
	return strcspn(t, "\t");
}

static bool same_soname(const char *a, const char *b, size_t l)
{
	return twice_soname_len(a) == l && strncmp(a, b, l) == 0 && a[l] == '\t';
}

static json_t *str_or_null(const char *s)
{
	return s ? report_jstr(s) : json_null();
}

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new(obj, key, val) : -1;
}

static json_t *strv_json(const struct kw_strv *sv)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < sv->n; i++) {
		if (json_array_append_new(a, report_jstr(sv->v[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int kw_report_repair_json(const struct kw_repair_result *r, char **out, struct kw_error *err)
{
	const char *slash = strrchr(r->input, '/');
	json_t *o, *g;
	size_t i;
	int bad;
	char *s;

	*out = NULL;
	report_json_init();
	o = json_object();
	g = json_array();
	bad = !o || !g;
	bad |= set(o, "wheel", report_jstr(slash ? slash + 1 : r->input));
	bad |= set(o, "input", report_jstr(r->input));
	bad |= set(o, "output", str_or_null(r->output));
	bad |= set(o, "action", json_string(r->action == KW_REPAIR_COPIED ? "copied" : "repaired"));
	bad |= set(o, "tag", str_or_null(r->tag));
	bad |= set(o, "note", str_or_null(r->note));
	for (i = 0; !bad && i < r->n_grafts; i++) {
		json_t *e = json_object();

		bad |= set(e, "soname", str_or_null(r->grafts[i].soname));
		bad |= set(e, "source", str_or_null(r->grafts[i].src));
		bad |= set(e, "dest", str_or_null(r->grafts[i].dest));
		bad |= set(e, "sha256", str_or_null(r->grafts[i].sha256));
		bad |= json_array_append_new(g, e);
	}
	bad |= set(o, "grafted", g);
	bad |= set(o, "patched", strv_json(&r->patched));
	bad |= set(o, "excluded", strv_json(&r->excluded));
	bad |= set(o, "excluded_deps", strv_json(&r->excluded_deps));
	bad |= set(o, "libpython_removed", strv_json(&r->libpython));
	bad |= set(o, "scripts_moved", strv_json(&r->scripts));
	{
		json_t *tw = json_array();

		/* One entry per vendored library, with every allowed library that loads the system's copy. */
		for (i = 0; tw && i < r->twice.n;) {
			size_t l = twice_soname_len(r->twice.v[i]), k;
			char *so = kw_strndup(r->twice.v[i], l);
			json_t *e = json_object(), *by = json_array();

			bad |= !so;
			bad |= set(e, "soname", str_or_null(so));
			for (k = i; k < r->twice.n && same_soname(r->twice.v[k], r->twice.v[i], l); k++) {
				bad |= json_array_append_new(by, report_jstr(r->twice.v[k] + l + 1));
			}
			bad |= set(e, "loaded_by", by);
			bad |= json_array_append_new(tw, e);
			free(so);
			i = k > i ? k : i + 1; /* an entry without its tab is not repair's: skipped */
		}
		bad |= set(o, "loaded_twice", tw);
	}
	s = bad ? NULL : report_json_dumps(o, 0);
	json_decref(o);
	if (!s) {
		return kw_error_set(err, KW_ENOMEM, "out of memory building the report");
	}
	*out = s;
	return 0;
}

void kw_report_repair_print(FILE *f, const struct kw_repair_result *r)
{
	size_t i;

	if (r->action == KW_REPAIR_COPIED) {
		kw_report_fprintf(f, "%s: %s -> %s\n", r->input, r->note ? r->note : "copied", r->output);
		return;
	}
	kw_report_fprintf(f, "%s -> %s\n", r->input, r->output);
	for (i = 0; i < r->n_grafts; i++) {
		kw_report_fprintf(f, "  grafted %s from %s as %s\n", r->grafts[i].soname, r->grafts[i].src,
				  r->grafts[i].dest);
	}
	for (i = 0; i < r->excluded.n; i++) {
		kw_report_fprintf(f, "  left external (--exclude): %s\n", r->excluded.v[i]);
	}
	for (i = 0; i < r->excluded_deps.n; i++) {
		kw_report_fprintf(f, "  left external (needed only by excluded libraries): %s\n", r->excluded_deps.v[i]);
	}
	for (i = 0; i < r->libpython.n; i++) {
		kw_report_fprintf(f, "  removed DT_NEEDED %s (the interpreter provides libpython)\n", r->libpython.v[i]);
	}
	for (i = 0; i < r->scripts.n; i++) {
		kw_report_fprintf(f, "  moved ELF program %s, a launcher script in its place\n", r->scripts.v[i]);
	}
	for (i = 0; i < r->twice.n;) {
		const char *t = r->twice.v[i];
		size_t l = twice_soname_len(t), k, n = 0;

		for (k = i; k < r->twice.n && same_soname(r->twice.v[k], t, l); k++) {
			n++;
		}
		if (n == 0) {
			i++; /* an entry without its tab is not repair's */
			continue;
		}
		/* Piece by piece: printing allocates nothing. */
		kw_report_fprintf(f, "  warning: %.*s is vendored, but ", (int)l, t);
		for (k = i; k < i + n; k++) {
			kw_report_fprintf(f, "%s%s", k == i ? "" : k + 1 == i + n ? " and " : ", ", r->twice.v[k] + l + 1);
		}
		kw_report_fprintf(f,
				  ", which the policy leaves to the system, load%s the system's copy too: two copies "
				  "in one process (keep it external with --exclude %.*s)\n",
				  n == 1 ? "s" : "", (int)l, t);
		i += n;
	}
}
