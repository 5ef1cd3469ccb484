/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_RESOLVE_H
#define KWHEEL_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "kwheel/elf.h"
#include "kwheel/kwheel.h"
#include "kwheel/wasm.h"

/* How a dependency was found, in the loader's search order. */
enum kw_found_via {
	KW_VIA_NONE = 0,       /* not found */
	KW_VIA_ROOT,           /* the object the tree starts from */
	KW_VIA_LOADED,         /* already loaded under that name or SONAME */
	KW_VIA_PATHNAME,       /* DT_NEEDED with a '/' */
	KW_VIA_RPATH,
	KW_VIA_LD_LIBRARY_PATH,
	KW_VIA_RUNPATH,
	KW_VIA_EXTRA,          /* ctx->lib_paths */
	KW_VIA_LDSOCONF,
	KW_VIA_DEFAULT,        /* the architecture's trusted directories */
	KW_VIA_LIBS_DIR,       /* wasm: only Pyodide 0.22-0.27's <Name>.libs/ search finds it */
};

/* One object in a dependency graph. */
struct kw_dep_node {
	char *name;        /* DT_NEEDED string that first led here (root: its path) */
	char *path;        /* path as the loader opened it (without ctx->root), or NULL */
	char *realpath;    /* path with symlinks and ".." resolved (without ctx->root), or NULL */
	const struct kw_elf_info *info; /* borrowed from the resolver's cache; NULL if not found */
	enum kw_found_via via;
	bool in_overlay;   /* served by the overlay (a wheel member) */
	const char *member; /* that member's name (inside path, after the overlay prefix), or NULL */
	size_t *deps;      /* graph indexes of this object's DT_NEEDED, in order */
	size_t n_deps;
	char *error;       /* why it could not be read (a candidate was corrupt), or NULL */
	const struct kw_wasm_info *wasm; /* wasm graphs: borrowed from the wasm resolver; NULL if not found */
};

/*
 * A dependency graph in the loader's breadth-first load order; node 0 is the
 * root. Each object appears once, as the loader would load it once.
 */
struct kw_dep_graph {
	struct kw_dep_node *nodes;
	size_t n_nodes;
};

/*
 * Load a candidate path from the overlay. Return 0 and a new info (the
 * resolver takes it), KW_ENOTFOUND if there is no such member, or another
 * status with err set if the member exists but is unreadable. A caller that
 * parsed the member already sets *borrowed (false on entry): the resolver
 * then uses that info without taking it, and it must outlive the resolver.
 */
typedef int (*kw_resolve_overlay_fn)(void *ud, const char *path, struct kw_elf_info **info, bool *borrowed,
				     struct kw_error *err);

struct kw_resolver;

/*
 * New resolver for ctx (borrowed; must outlive it). It reads ld.so.conf
 * (with includes, each file once) under ctx->root once, reads each
 * directory it searches once, probes each directory entry once and caches
 * every parsed ELF by real path, so many trees over the same system
 * libraries cost one parse each. Its (directory, name) lookups over all its
 * trees are bounded by ctx->limits.max_lookups: use one resolver per wheel
 * or file.
 */
int kw_resolver_new(struct kw_ctx *ctx, struct kw_resolver **out, struct kw_error *err);
void kw_resolver_free(struct kw_resolver *r);
/*
 * Paths under prefix (an absolute directory, e.g. where a wheel would be
 * unpacked) are looked up through fn instead of the filesystem. Lexical
 * normalisation applies there ('.' and '..' folded); a path that leaves the
 * prefix through '..' falls back to the filesystem as the loader would.
 */
int kw_resolver_set_overlay(struct kw_resolver *r, const char *prefix, kw_resolve_overlay_fn fn,
			    void *ud, struct kw_error *err);

/*
 * Resolve the dependency tree of the object at path (a filesystem path under
 * ctx->root, or an overlay path). If info is not NULL it is used for the root
 * instead of reading path (borrowed). New graph in *out (kw_dep_graph_free).
 * Libraries not found are nodes with path NULL, not errors. KW_ELIMIT once
 * the resolver has made ctx->limits.max_lookups lookups; KW_EFORMAT if path
 * is not a regular file.
 */
int kw_resolve_tree(struct kw_resolver *r, const char *path, const struct kw_elf_info *info,
		    struct kw_dep_graph **out, struct kw_error *err);
void kw_dep_graph_free(struct kw_dep_graph *g);
const char *kw_found_via_str(enum kw_found_via via);

/*
 * Expand $ORIGIN/${ORIGIN}, $LIB/${LIB}, $PLATFORM/${PLATFORM} in one path
 * list entry as the loader does for an object of class elfclass and machine
 * whose directory is origin. New string in *out; KW_ENOTFOUND if the entry
 * must be dropped (unknown token).
 */
int kw_resolve_expand(const char *entry, const char *origin, const struct kw_elf_info *info,
		      char **out, struct kw_error *err);

/*
 * wasm side modules (Emscripten >= 4.0.8 loader semantics, tool-conventions
 * DynamicLinking.md): a NEEDED name without '/' is looked for in the
 * RUNTIME_PATH of the module that needs it (DT_RUNPATH: not inherited; an
 * entry starting with $ORIGIN has it replaced by the module's directory;
 * ${ORIGIN} is not expanded), then in the directories the user gave
 * (ctx->ld_library_path, i.e. --library-path, then ctx->lib_paths, i.e.
 * --ldpaths), never in a system directory: a host's library directories
 * hold no wasm. Runtime-path entries that leave the overlay name the
 * browser's filesystem and are not searched; a NEEDED name with '/' is not
 * searched, as the loader does not. A candidate that is not a wasm side
 * module is passed over.
 */
struct kw_wasm_resolver;

/* Load the wasm module at an overlay path: 0 and a new info (taken), KW_ENOTFOUND, or an error. */
typedef int (*kw_resolve_wasm_fn)(void *ud, const char *path, struct kw_wasm_info **info,
				  struct kw_error *err);

/*
 * New wasm resolver for ctx (borrowed). Paths under prefix are served by fn
 * (wheel members); it caches every parsed module by path, owning it, so
 * graphs borrow node->wasm until kw_wasm_resolver_free. Its lookups are
 * bounded by ctx->limits.max_lookups, chains by ctx->limits.max_depth.
 */
int kw_wasm_resolver_new(struct kw_ctx *ctx, const char *prefix, kw_resolve_wasm_fn fn, void *ud,
			 struct kw_wasm_resolver **out, struct kw_error *err);
void kw_wasm_resolver_free(struct kw_wasm_resolver *r);
/*
 * An overlay directory searched last (dir without trailing slash, copied):
 * Pyodide 0.22-0.27 load a wheel's libraries from <Name>.libs/ whatever the
 * modules' runtime paths say, so a wheel grafted for them without
 * RUNTIME_PATH works there and nowhere later. A library found only there is
 * KW_VIA_LIBS_DIR, which repair turns into a runtime path.
 */
int kw_wasm_resolver_set_libs_dir(struct kw_wasm_resolver *r, const char *dir, struct kw_error *err);
/*
 * The dependency graph of the side module at path (an overlay path) whose
 * parsed view is info (borrowed, must outlive the graph), breadth first,
 * each library once by its normalised path. Names not found are nodes with
 * path NULL (node->error may say why a candidate was passed over). New
 * graph in *out (kw_dep_graph_free); KW_ELIMIT past the lookup budget.
 */
int kw_resolve_wasm_tree(struct kw_wasm_resolver *r, const char *path, const struct kw_wasm_info *info,
			 struct kw_dep_graph **out, struct kw_error *err);

#endif
