/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_SRC_REPAIR_INTERNAL_H
#define KWHEEL_SRC_REPAIR_INTERNAL_H

#include <stddef.h>

#include "kwheel/kwheel.h"
#include "kwheel/repair.h"
#include "kwheel/wheel.h"

/* One vendored library, as the SBOM describes it. Every field is borrowed. */
struct kw_sbom_lib {
	const char *soname;    /* the DT_NEEDED name it answers */
	const char *realpath;  /* where it came from (without ctx->root) */
	const char *path;      /* the path the loader opened (without ctx->root), or NULL */
	const char *sha256;    /* hex digest of the source file */
	const char *member;    /* its path in the new wheel */
};

/*
 * The SBOM of a repaired wheel, in auditwheel's terms: the wheel (purl
 * pkg:pypi/NAME@VERSION?file_name=OUT), then each vendored
 * library as the distribution package that installed it, looked up in
 * dpkg's database under ctx->root (var/lib/dpkg/info/<pkg>.list and
 * var/lib/dpkg/status, the distribution's ID from etc/os-release); a library
 * no package owns is described by its SONAME and digest. render turns
 * that into the document (a new string in *out).
 */
int kw_repair_sbom(struct kw_ctx *ctx, const struct kw_wheel_name *name, const char *out_name,
		   const struct kw_sbom_lib *libs, size_t n_libs, kw_sbom_render_fn render, char **out,
		   struct kw_error *err);

#endif
