/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_REPORT_H
#define KWHEEL_REPORT_H

#include <stdarg.h>
#include <stdio.h>

#include "kwheel/audit.h"
#include "kwheel/kwheel.h"
#include "kwheel/km.h"
#include "kwheel/repair.h"
#include "kwheel/util.h"

/* Version of the `kwheel show --json` object (man/kwheel-show.schema.json). */
#define KW_REPORT_SHOW_VERSION 1

/*
 * One wheel's audit as a JSON object on one line (no newline), keys sorted.
 * km: its KM verdict (kw_km_judge), NULL for none (a WebAssembly wheel's
 * "km" is null whatever km is). New string in *out (free()).
 */
int kw_report_show_json(const struct kw_audit *a, const struct kw_km_verdict *km, char **out, struct kw_error *err);
/* The JSON line for a wheel that could not be audited. New string in *out. */
int kw_report_error_json(const char *path, const struct kw_error *what, char **out,
			 struct kw_error *err);

/*
 * What identifies a show --json line across runs and machines: the wheel's
 * bytes and the kwheel that judged them. Borrowed strings; NULL is written
 * as null.
 */
struct kw_report_key {
	const char *sha256;         /* lower-case hex sha256 of the wheel file, or NULL (unreadable) */
	const char *kwheel_version; /* the version of the kwheel writing the line */
};
/* kw_report_show_json and kw_report_error_json with the "sha256" and "kwheel_version" keys added. */
int kw_report_show_json_keyed(const struct kw_audit *a, const struct kw_km_verdict *km,
			      const struct kw_report_key *key, char **out, struct kw_error *err);
int kw_report_error_json_keyed(const char *path, const struct kw_error *what, const struct kw_report_key *key,
			       char **out, struct kw_error *err);
/*
 * The key of one line a keyed show --json wrote: 0 and new strings in
 * *sha256 and *kwheel_version (free()) when the line is a whole JSON object
 * holding both as strings; KW_EFORMAT (a line cut short by a killed run, or
 * one without the keys), or KW_ENOMEM, otherwise.
 */
int kw_report_show_json_read_key(const char *line, char **sha256, char **kwheel_version, struct kw_error *err);
/*
 * The human report of one audit, with its KM verdict km (none printed if
 * NULL). New string in *out. verbose adds every member's tree.
 */
int kw_report_show_text(const struct kw_audit *a, const struct kw_km_verdict *km, bool verbose, char **out,
			struct kw_error *err);

/*
 * A dependency graph as one JSON line: {"path", "interpreter", "needed",
 * "libs": [{"name", "path", "realpath", "via", "needed": [names]}]} in load
 * order. New string in *out.
 */
int kw_report_lddtree_json(const struct kw_dep_graph *g, char **out, struct kw_error *err);

/*
 * What repair did to one wheel, as one JSON line {"wheel", "input",
 * "output", "action", "tag", "note", "grafted": [{"soname", "source",
 * "dest", "sha256"}], "patched", "excluded"} (no newline). New string in
 * *out.
 */
int kw_report_repair_json(const struct kw_repair_result *r, char **out, struct kw_error *err);
/*
 * The same as text, names escaped: "INPUT -> OUTPUT" and a line per grafted
 * and excluded library, written straight to f. Nothing is allocated, so the
 * report of a repair that succeeded (its wheel already in place) cannot
 * fail for want of memory.
 */
void kw_report_repair_print(FILE *f, const struct kw_repair_result *r);

/*
 * km's manifest as indented JSON with sorted keys and a final newline: for
 * a wheel {"wheel", "archive", "link_file", "static_libs", "warnings",
 * "objects": [{"path", "id", "in_wheel", "mode", "object", "symbol_tag",
 * "exports", "undefined", "needed", "warnings", "relocations",
 * "registered"}]}, for --objects {"id", "mode": "objects", "symbol_tag",
 * "archive", "renamed": {name: new name}}. A kw_km_render_fn. New string
 * in *out.
 */
int kw_report_km_manifest(const struct kw_km_manifest *m, char **out, struct kw_error *err);
/* One object of that manifest, as it stands there (its json): a kw_km_render_object_fn. */
int kw_report_km_manifest_object(const struct kw_km_manifest_object *mo, char **out, struct kw_error *err);

/*
 * A repaired wheel's SBOM as CycloneDX 1.4 JSON, in auditwheel's form: the
 * wheel as metadata.component and first component, each library after it,
 * one dependency entry per component. A kw_sbom_render_fn.
 */
int kw_report_sbom(const struct kw_sbom *s, char **out, struct kw_error *err);

/*
 * The dependency tree as text: "PATH (interpreter => X)", then one
 * "NAME => PATH" line per library, indented by depth, a library already
 * shown marked "(already listed)" unless KW_REPORT_LDDTREE_ALL; with
 * KW_REPORT_LDDTREE_LIST only the resolved paths, one a line. Every name
 * escaped (kw_report_escape_append). New string in *out.
 */
#define KW_REPORT_LDDTREE_ALL 1u
#define KW_REPORT_LDDTREE_LIST 2u
int kw_report_lddtree_text(const struct kw_dep_graph *g, const char *path, unsigned flags, char **out,
			   struct kw_error *err);

/* "kwheel: MESSAGE" for stderr, the message escaped; new string (free()), NULL if out of memory. */
char *kw_report_error_line(const struct kw_error *e);

/*
 * Text that no input can forge: s appended to b with control characters
 * (C0, DEL, C1), bytes that are not UTF-8 and the backslash escaped, as
 * \n, \t, \r, \\ and \xNN (a C1 character as its two bytes,
 * \xc2\x9b). The one escaping of every text line kwheel prints.
 */
void kw_report_escape_append(struct kw_buf *b, const char *s);
/* The same as a new string (free()), NULL if out of memory. */
char *kw_report_escape(const char *s);
/* The same written to f as it goes: nothing is allocated. */
void kw_report_escape_fputs(const char *s, FILE *f);
/*
 * kw_buf_appendf for report text: every %s argument is escaped as
 * kw_report_escape_append does, the format itself is not. Conversions: %s,
 * %c, %d/%i/%u/%x/%X with h, l, ll, z or j, flags, a width and a precision
 * (either may be *); %%. A width of %s counts the escaped text, a precision
 * the input's bytes.
 */
void kw_report_appendf(struct kw_buf *b, const char *fmt, ...) KW_PRINTF(2, 3);
void kw_report_vappendf(struct kw_buf *b, const char *fmt, va_list ap) KW_PRINTF(2, 0);
/* The same written to f as it goes: nothing is allocated, so it cannot fail for want of memory. */
void kw_report_fprintf(FILE *f, const char *fmt, ...) KW_PRINTF(2, 3);

#endif
