/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_SRC_AUDIT_INTERNAL_H
#define KWHEEL_SRC_AUDIT_INTERNAL_H

#include "kwheel/audit.h"

/* Where wheel members appear to the resolvers: $ORIGIN of a member lies below it. */
#define OVERLAY_PREFIX "/.kwheel-wheel"

/* Is this an Emscripten/Pyodide wheel (a wasm member, or a wasm platform tag)? */
bool kw_audit_is_wasm_wheel(const struct kw_audit *a);
/* Parse member m's bytes as a wasm module: m->wasm, or m->error for a bad one; KW_ENOMEM only. */
int kw_audit_wasm_member(struct kw_audit_member *m, const void *data, size_t len, struct kw_error *err);
/* Resolve every side module's NEEDED closure (a->members[].graph, a->wasm_resolver). */
int kw_audit_wasm_resolve(struct kw_ctx *ctx, struct kw_audit *a, struct kw_wheel *w, struct kw_error *err);
/* Findings, tags_ok, best_tag and the Pyodide releases, once a->libs is collected. */
int kw_audit_wasm_judge(struct kw_audit *a, struct kw_error *err);

#endif
