/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_REPORT_H
#define KWHEEL_REPORT_H

#include "kwheel/audit.h"
#include "kwheel/kwheel.h"

/* Version of the `kwheel show --json` object (man/kwheel-show.schema.json). */
#define KW_REPORT_SHOW_VERSION 1

/*
 * One wheel's audit as a JSON object on one line (no newline), keys sorted.
 * New string in *out (free()).
 */
int kw_report_show_json(const struct kw_audit *a, char **out, struct kw_error *err);
/* The JSON line for a wheel that could not be audited. New string in *out. */
int kw_report_error_json(const char *path, const struct kw_error *what, char **out,
			 struct kw_error *err);
/* The human report of one audit. New string in *out. verbose adds every member's tree. */
int kw_report_show_text(const struct kw_audit *a, bool verbose, char **out, struct kw_error *err);

/*
 * A dependency graph as one JSON line: {"path", "interpreter", "needed",
 * "libs": [{"name", "path", "realpath", "via", "needed": [names]}]} in load
 * order. New string in *out.
 */
int kw_report_lddtree_json(const struct kw_dep_graph *g, char **out, struct kw_error *err);

#endif
