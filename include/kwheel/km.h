/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_KM_H
#define KWHEEL_KM_H

#include <stdbool.h>
#include <stddef.h>

#include "kwheel/audit.h"
#include "kwheel/kwheel.h"
#include "kwheel/util.h"

/*
 * KM runs statically linked payloads: no loader, so each shared object must
 * become a relocatable object ("delinking") linked into a static interpreter.
 * This module judges, from an audit, whether that conversion can work.
 */

enum kw_km_mode {
	KW_KM_MODULE = 0, /* a Python extension: exports made local, found through registration */
	KW_KM_LIB,        /* a library the extensions need: exports stay global (weak) */
};

/* One object the conversion would take: a wheel member or an external library. */
struct kw_km_object {
	char *name;              /* wheel member name, or the external library's path */
	char *soname;            /* DT_SONAME or the DT_NEEDED name that led to it, or NULL */
	bool in_wheel;
	bool executable;         /* a program, not a library: not converted, not a blocker */
	enum kw_km_mode mode;
	bool convertible;
	struct kw_strv reasons;  /* why it cannot be converted, one sentence each */
	struct kw_strv warnings; /* what may behave differently once converted */
};

struct kw_km_verdict {
	bool convertible;        /* every object the extensions need converts or is linked statically */
	bool needs_deps;         /* some needed libraries live outside the wheel (km --deps converts them) */
	struct kw_km_object *objects; /* wheel members first (wheel order), then external libraries (load order) */
	size_t n_objects;
	struct kw_strv reasons;  /* wheel level: "<object>: <reason>", or why nothing applies */
	struct kw_strv warnings; /* wheel level, same form */
};

/*
 * Judge every ELF member of an audited wheel and every external library its
 * extensions reach that a static link does not provide (libc, libstdc++,
 * libgcc_s, libpython are provided). Returns 0 and fills *out
 * (kw_km_verdict_release), or KW_ENOMEM.
 */
int kw_km_judge(const struct kw_audit *a, struct kw_km_verdict *out, struct kw_error *err);
void kw_km_verdict_release(struct kw_km_verdict *v);

/* Is soname provided by a static link of the interpreter (libc.a, libstdc++.a, libpython.a, ...)? */
bool kw_km_static_provided(const char *soname);
/* Can the converter translate this dynamic relocation type (x86-64 only)? */
bool kw_km_reloc_supported(uint16_t machine, uint32_t type);

#endif
