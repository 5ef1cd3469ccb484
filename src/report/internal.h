/* SPDX-License-Identifier: MIT */
/* What the report module's files share and nothing outside it needs. */
#ifndef KWHEEL_REPORT_INTERNAL_H
#define KWHEEL_REPORT_INTERNAL_H

#include <stdbool.h>

#include <jansson.h>

/* Make jansson allocate through kw_malloc (once per process); every public report function calls it first. */
void report_json_init(void);
/* A JSON string of s's bytes as they are, UTF-8 or not (the dump escapes). New reference, NULL on failure. */
json_t *report_jstr(const char *s);
/*
 * One line of compact JSON with sorted keys, as json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS) writes it, except that no string can break it: bytes that
 * are not UTF-8 become \uDCNN (Python's surrogateescape: json.loads then
 * .encode("utf-8", "surrogateescape") gives the bytes back), and DEL and the
 * C1 controls are escaped as \u007F..\u009F like the C0 ones. indent > 0
 * spreads it over lines as JSON_INDENT(indent) does. New string (free()),
 * NULL if out of memory.
 */
char *report_json_dumps(const json_t *j, int indent);
struct kw_buf;
/*
 * The same dump appended to b as the value found at depth inside a larger
 * document (its lines indented for that depth), for documents assembled
 * from pieces rendered apart; report_json_newline is the newline and
 * indentation the dump puts before an element at depth. b->failed says
 * whether memory ran out.
 */
void report_json_dump_into(struct kw_buf *b, const json_t *j, int indent, int depth);
void report_json_newline(struct kw_buf *b, int indent, int depth);

struct kw_audit;
struct kw_audit_member;
struct kw_buf;
/* The text report of a wasm wheel, after the RECORD line (report/wasm.c). */
void report_wasm_text(struct kw_buf *f, const struct kw_audit *a, bool verbose);
/* A wasm member's keys added to its members[] object (needed, runpath, wasm); 0 or -1. */
int report_wasm_member_json(json_t *o, const struct kw_audit_member *m);
/* The "wasm" object of show --json: findings and Pyodide releases. New reference, NULL on failure. */
json_t *report_wasm_json(const struct kw_audit *a);

#endif
