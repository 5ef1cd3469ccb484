/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_REPAIR_H
#define KWHEEL_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"
#include "kwheel/util.h"
#include "kwheel/wheel.h"

/*
 * A repaired wheel's SBOM as repair finds it (where each vendored library
 * came from); turning it into a document is presentation, done by the
 * renderer the caller gives (kw_report_sbom: CycloneDX). All borrowed for
 * the renderer's call.
 */
struct kw_sbom_component {
	const char *ref;          /* unique in the document */
	const char *name;
	const char *version;      /* or NULL */
	const char *purl;         /* or NULL */
	const char *sha256;       /* hex digest of a library no package owns, else NULL */
	const char *source_path;  /* where such a library came from, else NULL */
	const char *wheel_path;   /* its member in the wheel, else NULL */
};

struct kw_sbom {
	const char *tool;                       /* "kwheel" */
	const char *tool_version;
	struct kw_sbom_component wheel;         /* the repaired wheel, which depends on each library */
	const struct kw_sbom_component *libs;
	size_t n_libs;
};

/* Renders an SBOM: a new string (free()) in *out. */
typedef int (*kw_sbom_render_fn)(const struct kw_sbom *s, char **out, struct kw_error *err);

struct kw_repair_opts {
	const char *out_dir;         /* where the repaired wheel goes (must exist) */
	const char *plat;            /* requested platform tag or policy name; NULL or "auto": the best */
	bool only_plat;              /* tag with plat alone, not also with a more compatible reachable tag */
	const char *lib_sdir;        /* suffix of the libraries directory: "<dist><lib_sdir>/"; NULL: ".libs" */
	/* left external, with what only they need: globs on the DT_NEEDED name or the resolved path */
	const char *const *exclude;
	size_t n_exclude;
	bool strip;                  /* strip symbols from grafted libraries and ELF members */
	int zip_level;               /* deflate level for new members: 0 stores, 1-9, < 0 default (6) */
	int64_t mtime;               /* time stamp of new members; < 0: newest member of the input */
	bool no_update_tags;         /* keep the file name and WHEEL's Tag lines as they are */
	bool allow_pure;             /* copy a pure wheel instead of refusing it */
	bool no_isa_check;           /* an ISA level above the architecture's baseline does not block a tag */
	bool hash_names;             /* wasm: graft as <stem>-<sha256:8>.so... and rewrite NEEDED (ELF always does) */
	/* renders <dist-info>/sboms/kwheel.cdx.json of a wheel that vendors libraries; NULL: none */
	kw_sbom_render_fn sbom;
	kw_progress_fn progress;     /* told of each step of a repair, or NULL */
	void *progress_ud;
};

struct kw_repair_graft {
	char *soname;     /* the DT_NEEDED name it replaced */
	char *src;        /* where it was found (real path, outside any --root) */
	char *dest;       /* member path in the new wheel */
	char *sha256;     /* of the source file, hex */
};

enum kw_repair_action {
	KW_REPAIR_REPAIRED = 0, /* a new wheel was written */
	KW_REPAIR_COPIED,       /* nothing to change: the wheel was copied as it is */
};

struct kw_repair_result {
	char *input;
	char *output;              /* path of the wheel written */
	char *tag;                 /* platform tags of the output, compressed ("a.b") */
	enum kw_repair_action action;
	char *note;                /* why it was copied, or NULL */
	struct kw_repair_graft *grafts;
	size_t n_grafts;
	struct kw_strv patched;    /* wheel members whose ELF was edited */
	struct kw_strv excluded;   /* external libraries left out on request */
	struct kw_strv excluded_deps; /* left out too: only excluded libraries need them */
	struct kw_strv libpython;  /* "member: soname" for every libpython DT_NEEDED removed */
	struct kw_strv scripts;    /* "<x>.data/scripts/NAME -> <dist>.scripts/NAME" for ELF programs moved */
	/* "SONAME\tLIB": vendored, but LIB, left to the system, loads the system's copy too (the verdict's twice) */
	struct kw_strv twice;
};

/*
 * Repair one wheel: audit it, pick the target policy, vendor every external
 * library the policy does not allow into <dist><lib_sdir>/ under a unique
 * name (SONAME stem + 8 hex digits of its sha256), point the ELF members at
 * them, retag, rewrite RECORD, add an SBOM, and write the new wheel to
 * out_dir atomically. Unchanged members are copied without recompression.
 * The input is never modified. New result in *out (kw_repair_result_free).
 */
int kw_repair_wheel(struct kw_ctx *ctx, const char *path, const struct kw_repair_opts *opts,
		    struct kw_repair_result **out, struct kw_error *err);
void kw_repair_result_free(struct kw_repair_result *r);

#endif
