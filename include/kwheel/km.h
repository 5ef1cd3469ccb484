/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_KM_H
#define KWHEEL_KM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/audit.h"
#include "kwheel/kwheel.h"
#include "kwheel/util.h"
#include "kwheel/wheel.h"

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
	bool executable;         /* a program (or not ET_DYN), not a library: not converted, not a blocker */
	enum kw_km_mode mode;
	bool convertible;
	struct kw_strv reasons;  /* why it cannot be converted, one sentence each */
	struct kw_strv warnings; /* what may behave differently once converted */
	size_t *deps;            /* indexes (in the verdict's objects) of the objects it needs, DT_NEEDED order */
	size_t n_deps;
	struct kw_strv plugins;  /* a system library: the plugins it loads by path (OpenSSL's providers), converted with it */
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
 * libgcc_s, libpython are provided). The system libraries' plugin scans
 * (each reads a library) run on pool (NULL: in order, on this thread).
 * Returns 0 and fills *out (kw_km_verdict_release), or KW_ENOMEM.
 */
int kw_km_judge(struct kw_pool *pool, const struct kw_audit *a, struct kw_km_verdict *out, struct kw_error *err);
void kw_km_verdict_release(struct kw_km_verdict *v);

/*
 * The order in which the objects of v are initialised, as ld.so would:
 * every object after all the objects it needs (a depth-first post-order over
 * the dependency edges, objects and their needs visited in verdict order, so
 * the same verdict always gives the same order; a cycle is broken where the
 * walk meets it). order gets v->n_objects indexes. KW_ENOMEM only.
 */
int kw_km_init_order(const struct kw_km_verdict *v, size_t *order, struct kw_error *err);

/* What one conversion produced. */
struct kw_km_converted {
	char tag[13];            /* 12 hex digits: the object's symbol suffix */
	struct kw_strv exports;  /* names exported by the shared object */
	struct kw_strv undefined;/* names the object needs from the static link */
	struct kw_strv warnings;
	/*
	 * The object's defined global symbols, each name NUL-ended, one after
	 * another in its symbol table's order (n_defined of them, defined_len
	 * bytes): its entries in an archive's index, known as it is written.
	 */
	char *defined;
	size_t defined_len, n_defined;
	size_t n_relocs;         /* dynamic relocations translated */
	size_t n_registered;     /* symbols in the registration table */
	size_t n_ifuncs;         /* IFUNC slots its constructor fills */
	size_t n_protected;      /* segments its constructor makes read-only again */
	uint64_t image_size;
	bool has_tls;
	bool eh_frame;           /* its constructor registers .eh_frame */
};

/*
 * Delink one x86-64 shared object (buf, len; name for messages) into the
 * relocatable object out_path. id is the wheel-relative path it registers
 * under. Module mode makes its exports local (found through registration
 * only); lib mode keeps them as weak globals. Returns 0 and fills *res
 * (kw_km_converted_release); on error nothing is left at out_path.
 */
#define KW_KM_NO_WX 1u  /* leave the image writable and executable (no mprotect from the constructor) */
int kw_km_delink(const unsigned char *buf, size_t len, const char *name, const char *id, enum kw_km_mode mode,
		 unsigned flags, const char *out_path, struct kw_km_converted *res, struct kw_error *err);
/*
 * The same, told which names the static link's runtime defines (runtime:
 * sorted, or NULL): a lib-mode export of one of them, or of the unwinder's
 * (_Unwind_*, __register_frame*, __deregister_frame*), is made local, so the
 * runtime's definition is the program's and the object keeps its own for
 * itself (a warning in res says which).
 */
int kw_km_delink_with(const unsigned char *buf, size_t len, const char *name, const char *id, enum kw_km_mode mode,
		      unsigned flags, const struct kw_strv *runtime, const char *out_path, struct kw_km_converted *res,
		      struct kw_error *err);
void kw_km_converted_release(struct kw_km_converted *c);

/*
 * Write a GNU ar archive of the objects with a symbol index. thin_dir NULL:
 * the objects' bytes are in it, stored as names[i]. Otherwise it is a thin
 * archive (GNU's "!<thin>"): only the index and each member's path,
 * "thin_dir/names[i]" (names[i] when thin_dir is empty), which the linker
 * reads relative to the archive's directory.
 */
int kw_km_write_archive(const char *path, const char *const *objects, const char *const *names, size_t n,
			const char *thin_dir, struct kw_error *err);

/* One converted object as the manifest lists it. */
struct kw_km_manifest_object {
	char *path;              /* wheel member name, or the external library's path */
	char *id;                /* what it registers under */
	char *object;            /* its member name in the archive */
	bool in_wheel;
	enum kw_km_mode mode;
	char symbol_tag[13];
	struct kw_strv exports, undefined, needed, warnings;
	size_t n_relocs, n_registered;
	char *reused_from;       /* the wheel whose conversion of the same object was reused, or NULL */
	char *json;              /* the object already rendered (kw_km_render_object_fn), or NULL: the fields above */
};

/*
 * What a manifest says (all borrowed for the call of the renderer). Wheel
 * mode: wheel, static_libs, warnings and objects are set; objects mode
 * (kw_km_convert_objects): id, symbol_tag and renamed/renamed_to.
 */
struct kw_km_manifest {
	const char *wheel;       /* the input wheel's file name, or NULL in objects mode */
	const char *archive;
	const char *link_file;
	const struct kw_strv *static_libs;
	const struct kw_strv *warnings;
	const struct kw_km_manifest_object *objects;
	size_t n_objects;
	const char *id;          /* objects mode: the extension's installed path */
	const char *symbol_tag;  /* objects mode */
	const struct kw_strv *renamed;    /* objects mode: each global the objects define ... */
	const struct kw_strv *renamed_to; /* ... and the name it now has */
};

/*
 * Renders a manifest as the text of OUTDIR/<name>.km.json: a new string in
 * *out. km writes files; presentation lives in report/, which passes
 * kw_report_km_manifest here (km sits below report and cannot call it).
 */
typedef int (*kw_km_render_fn)(const struct kw_km_manifest *m, char **out, struct kw_error *err);
/*
 * Renders one object as the manifest holds it (a new string in *out), for
 * its json: so each object is rendered on the thread that converted it,
 * and its lists freed there, not all at the end on one thread.
 */
typedef int (*kw_km_render_object_fn)(const struct kw_km_manifest_object *mo, char **out, struct kw_error *err);

/*
 * Conversions shared by the wheels of one run (kw_km_options.cache, and
 * kw_km_link_python's lib-dynload set): an object one conversion delinked
 * is not delinked again for the next wheel that needs it (a library several
 * wheels need, by content); its object is hard-linked (or copied) from the
 * earlier wheel's directory. The key is all the object depends on (the
 * shared object's SHA-256, mode, flags, registration id, the runtime names),
 * so the reused object is byte for byte what a conversion would write.
 * kw_km_cache_new puts a new, empty cache in *out (kw_km_cache_free; 0 or
 * KW_ENOMEM); kw_km_cache_counts how many objects it saw delinked and
 * how many reused.
 */
struct kw_km_cache;
int kw_km_cache_new(struct kw_km_cache **out, struct kw_error *err);
void kw_km_cache_free(struct kw_km_cache *c);
void kw_km_cache_counts(const struct kw_km_cache *c, size_t *converted, size_t *reused);

struct kw_km_options {
	const char *outdir;      /* where the archive, link file, manifest and objects go */
	bool deps;               /* convert libraries from outside the wheel too */
	const char *wheel_dir;   /* where the wheel for the KM payload goes, or NULL for none */
	bool no_wx;              /* keep converted images writable and executable */
	kw_km_render_fn manifest;/* renders the manifest (required; called on any of ctx's pool's threads) */
	kw_km_render_object_fn manifest_object; /* renders one of its objects beforehand (on any thread), or NULL */
	struct kw_km_cache *cache; /* borrowed: conversions shared with the other wheels of the run, or NULL */
	/*
	 * Told of the conversion in bytes delinked ("converting"), then
	 * "writing"; or NULL. Called from whichever of ctx's pool's threads
	 * finished an object, one call at a time.
	 */
	kw_progress_fn progress;
	void *progress_ud;
};

/* What converting one wheel wrote (paths owned). */
struct kw_km_wheel {
	char *archive;           /* OUTDIR/lib<dist>.km.a */
	char *link_file;         /* OUTDIR/<dist>.km.link: linker arguments, one a line (gcc @file) */
	char *manifest;          /* OUTDIR/<dist>.km.json */
	char *wheel;             /* the repacked wheel (km_<arch> tag), or NULL */
	size_t n_objects;
	size_t n_reused;         /* of them, objects reused from an earlier wheel's conversion (opts->cache) */
	bool cxx;                /* needs libstdc++ */
};

/*
 * Convert a wheel: audit it, refuse it (KW_EPOLICY, the first reason named)
 * if its verdict says no, delink each object into OUTDIR/<dist>-<ver>.km/,
 * and write the archive, the link file and the manifest.
 */
int kw_km_convert_wheel(struct kw_ctx *ctx, const char *path, const struct kw_km_options *opts,
			struct kw_km_wheel *res, struct kw_error *err);
void kw_km_wheel_release(struct kw_km_wheel *r);

/*
 * Link a static, non-PIE CPython at out from python's libpython3.X.a, the
 * kwheel runtime (emulated dlopen, TLS helpers) and the link files of
 * converted wheels, each library linked once however many archives hold
 * it. The interpreter's own lib-dynload modules are converted and built in
 * too (into OUT's directory), with the libraries they need and the plugins
 * those load by path, resolved on the host; those whose libraries are
 * missing or do not convert go to left_out (and plugins that cannot, by
 * path). Runs python (for its configuration) and gcc. cache (borrowed, or
 * NULL): the libraries the wheels' conversions delinked already are reused
 * for lib-dynload's.
 */
int kw_km_link_python(const char *out, const char *python, const char *const *link_files, size_t n,
		      struct kw_km_cache *cache, struct kw_strv *left_out, struct kw_error *err);

/*
 * Kontain's method for a build's object files: rename every global the
 * objects in dir define to name_<tag>_km (references among them too), add
 * a registration object for id, and write the archive, link file and
 * manifest into outdir (named after id's module).
 */
int kw_km_convert_objects(const char *dir, const char *id, const char *outdir, kw_km_render_fn manifest,
			  struct kw_km_wheel *res, struct kw_error *err);
/* The registration object alone: names[i] is found at the symbol targets[i]. */
int kw_km_registration_object(const char *id, const char *tag, const char *const *names,
			      const char *const *targets, size_t n, const char *out_path, struct kw_error *err);

/* Is soname provided by a static link of the interpreter (libc.a, libstdc++.a, libpython.a, ...)? */
bool kw_km_static_provided(const char *soname);
/* Can the converter translate this dynamic relocation type (x86-64 only)? */
bool kw_km_reloc_supported(uint16_t machine, uint32_t type);

#endif
