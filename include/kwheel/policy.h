/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_POLICY_H
#define KWHEEL_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "kwheel/kwheel.h"
#include "kwheel/util.h"

enum kw_policy_family {
	KW_POLICY_LINUX = 0,     /* plain linux_<arch>: anything goes */
	KW_POLICY_MANYLINUX = 1,
	KW_POLICY_MUSLLINUX = 2,
	KW_POLICY_ANDROID = 3,   /* android_<api>: version [api, 0]; the wheel keeps its own tag */
};

/* Highest allowed version for one symbol-version prefix on one arch. */
struct kw_policy_symver {
	char *prefix;      /* "GLIBC", "GLIBCXX", "CXXABI", "GCC", ... */
	char *max;         /* "2.17"; NULL means no version of that prefix is allowed */
};

struct kw_policy_arch {
	char *arch;                     /* "x86_64" */
	struct kw_policy_symver *symvers;
	size_t n_symvers;
	char **named;                   /* non-numeric versions also provided ("CXXABI_TM_1") */
	size_t n_named;
};

struct kw_policy_blacklist {
	char *lib;          /* "libc.so.6" */
	char **symbols;     /* NULL-terminated */
	size_t n_symbols;
	/* symbols indexed: a C++ library imports tens of thousands, each looked up once per policy */
	struct kw_strmap index;
};

/* One platform policy: manylinux_2_17, musllinux_1_2, linux. */
struct kw_policy {
	char *name;                 /* "manylinux_2_17" (without the _<arch> suffix) */
	char **aliases;             /* "manylinux2014"; NULL-terminated */
	size_t n_aliases;
	enum kw_policy_family family;
	int major, minor;           /* glibc or musl version; 0.0 for linux */
	char **libs;                /* sonames a wheel may assume, NULL-terminated */
	size_t n_libs;
	struct kw_policy_arch *arches; /* arches the policy exists for */
	size_t n_arches;
	struct kw_policy_blacklist *blacklist;
	size_t n_blacklist;
};

/* All policies, most compatible (oldest) first within a family. */
struct kw_policy_set {
	struct kw_policy *policies;
	size_t n_policies;
};

/* Load the policy data built into kwheel (data/policy.json). New set in *out. */
int kw_policy_set_load_default(struct kw_policy_set **out, struct kw_error *err);
/* Load from JSON text in kwheel's own format (see data/policy.json). */
int kw_policy_set_load_json(const char *text, size_t len, struct kw_policy_set **out,
			    struct kw_error *err);
void kw_policy_set_free(struct kw_policy_set *set);
/* ctx->policy, loading the default on first use. Borrowed. */
int kw_ctx_policy(struct kw_ctx *ctx, const struct kw_policy_set **out, struct kw_error *err);

/* By name or alias ("manylinux2014" or "manylinux_2_17"), arch suffix allowed
 * ("manylinux_2_17_x86_64"). Borrowed, or NULL. */
const struct kw_policy *kw_policy_find(const struct kw_policy_set *set, const char *name);
/* Policy data for an arch, or NULL if the policy does not exist for it. Borrowed. */
const struct kw_policy_arch *kw_policy_arch(const struct kw_policy *p, const char *arch);
/* Is soname on the policy's list of assumed libraries? */
bool kw_policy_allows_lib(const struct kw_policy *p, const char *soname);
/*
 * Is a version requirement like "GLIBC_2.17" allowed on arch? The prefix is
 * what comes before the first '_'. Versions whose prefix the policy does not
 * govern (a library's own, e.g. "OPENSSL_3.0.0") are allowed; a governed
 * prefix with a number above the maximum is not; a governed prefix with a
 * name ("GLIBC_ABI_DT_RELR", "CXXABI_TM_1", "GLIBC_PRIVATE") only if the
 * policy's toolchain provides that name on arch.
 */
bool kw_policy_allows_version(const struct kw_policy *p, const char *arch, const char *version);
/* Does the policy blacklist any symbol of lib? (Most libraries: no, and no symbol need be looked up.) */
bool kw_policy_blacklists_lib(const struct kw_policy *p, const char *lib);
/* Is symbol (imported from lib) blacklisted by the policy? */
bool kw_policy_blacklisted(const struct kw_policy *p, const char *lib, const char *symbol);
/* The platform tag for the policy and arch: "manylinux_2_17_x86_64". New string. */
char *kw_policy_tag(const struct kw_policy *p, const char *arch);
/* Compare dotted numeric versions "2.17" vs "2.5": <0, 0, >0. Non-numeric parts compare last. */
int kw_version_cmp(const char *a, const char *b);

/*
 * Pyodide releases, for wasm wheels (there is no manylinux-like contract:
 * what a release can load is the whole policy). The facts come from runs of
 * each measured release under Node and from each loader's source.
 */
enum kw_pyodide_libs {
	KW_PYODIDE_LIBS_NONE = 0,      /* loads wheel modules locally: libraries inside a wheel cannot work */
	KW_PYODIDE_LIBS_DIR,           /* finds libraries in <Name>.libs/ when the wheel is installed with
					  loadPackage (preloaded, dependencies first); RUNTIME_PATH ignored */
	KW_PYODIDE_LIBS_RUNTIME_PATH,  /* the Emscripten >= 4.0.8 loader: RUNTIME_PATH, any install */
};

struct kw_pyodide_release {
	const char *series;      /* "0.22" */
	const char *python;      /* "3.10" */
	const char *emscripten;  /* "3.1.27" */
	const char *platform;    /* the platform tag of its own wheels, or NULL when not recorded */
	enum kw_pyodide_libs libs;
	bool duplicates;         /* a library reached by two path spellings is instantiated twice */
	const char *measured;    /* the release run under Node ("0.22.1"), or NULL: from the source */
};

/* The known releases, oldest first (static). */
const struct kw_pyodide_release *kw_policy_pyodide_releases(size_t *n);
/* "never", "loadPackage", "any install". */
const char *kw_pyodide_libs_str(enum kw_pyodide_libs libs);

#endif
