/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_SRC_REPAIR_INTERNAL_H
#define KWHEEL_SRC_REPAIR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "kwheel/audit.h"
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

/* One library to vendor (one per distinct content). */
struct inst {
	char *soname;      /* DT_NEEDED name that reached it */
	char *realpath;    /* as the resolver saw it (without ctx->root) */
	char *src;         /* rooted path to read */
	char sha[65];
	char *newname;
	char *work;        /* edited copy in the work directory */
	const struct kw_dep_node *node; /* first node that reached it (for its edges) */
	const struct kw_dep_graph *graph;
};

/* One repair in progress: the plan, then the work files, then the output. */
struct job {
	struct kw_ctx *ctx;
	const struct kw_repair_opts *o;
	struct kw_audit *a;
	struct kw_wheel *w;
	const struct kw_audit_verdict *v;
	struct kw_strv graft;      /* sonames to vendor */
	struct inst *inst;
	size_t n_inst;
	char *libs_dir;            /* "pkg.libs" */
	char *wheel_libs_dir;      /* wasm: "<Name>.libs", where Pyodide 0.22-0.27 look in the wheel */
	char *libs_entry_lib;      /* wasm: the runtime-path entry to it from a library in libs_dir */
	char *workdir;             /* private, locked (kw_wheel_temp_dir) */
	int workfd;                /* holds its lock; work files are created relative to it */
	struct kw_strv plats;      /* new platform tags, in the order auditwheel adds them */
	struct kw_strv name_plats; /* the new file name's platform tags */
	bool **reach;              /* per audit member, per graph node: still loaded once the cut libraries go */
	struct kw_strv dropped;    /* paths of libraries no member loads once the cut libraries go */
	bool has_libpython;        /* some member needs a libpython directly */
	bool android;              /* an android wheel: libpython stays, RUNPATH, the tag is kept */
	char **member_work;        /* per wheel member: edited copy path or NULL */
	char **member_move;        /* per wheel member: new name of a moved ELF program, or NULL */
	size_t n_member_work;
	struct kw_repair_result *res;
	bool wasm;                 /* a wasm wheel (wasm.c): no retagging */
};

static inline int oom(struct kw_error *err)
{
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

static inline const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* ---- plan.c ---- */

/* A libpython entry repair removes: everywhere but on Android, where the app's interpreter provides it. */
bool repair_drops_libpython(const struct job *j, const char *so);

/*
 * The target, as auditwheel picks it: "auto" is the most compatible tag that
 * grafting can reach. A requested tag must itself be reachable; unless
 * --only-plat, a more compatible reachable tag is added in front of it (the
 * wheel then carries both) and decides what is grafted.
 */
int repair_choose(struct job *j, struct kw_error *err);

/*
 * Which libraries stay in the trees: a breadth-first walk of each member's
 * graph that does not enter a cut library, so what only a cut library needs
 * is left out with it, as auditwheel's tree never holds them.
 */
int repair_plan_reach(struct job *j, struct kw_error *err);

long repair_find_inst_by_real(const struct job *j, const char *realpath);

int repair_plan_grafts(struct job *j, struct kw_error *err);

/* Is tag one the retagged wheel drops? The plain "linux_<arch>" tag and "any" give way to the policy's. */
bool repair_replaced_tag(const struct job *j, const char *tag);

/*
 * The new file name's platforms, as auditwheel forms them: the old ones
 * without the plain linux tag, then the new ones, once each, sorted.
 */
int repair_plan_names(struct job *j, struct kw_error *err);

char *repair_joined(const struct kw_strv *sv, char sep);

char *repair_new_filename(const struct job *j, const char *plat);

/* ---- relink.c ---- */

int repair_prepare_grafts(struct job *j, struct kw_error *err);

/* The command's launcher: it runs the moved program from the installed package. */
char *repair_script_launcher(const char *dest);

int repair_prepare_members(struct job *j, struct kw_error *err);

/* Is the DT_NEEDED name or resolved path excluded (--exclude globs)? */
bool repair_excluded_name(const struct job *j, const char *name);
/* The unique file name of a grafted copy: stem "-" 8 hex digits of sha, then the ".so..." suffix. */
char *repair_graft_name(const char *realpath, const char *sha);
/* A new work file for path (its base name, in the held work directory): a descriptor, or < 0 with err set. */
int repair_create_work(const struct job *j, const char *path, struct kw_error *err);
/* Do the two paths name the same file? */
bool repair_same_file(const char *a, const char *b);

/* ---- wasm.c ---- */

/*
 * Repair a wasm wheel (j->a->wasm): vendor the NEEDED closure into
 * <Name>.libs/, add RUNTIME_PATH entries, write through repair_write_wheel.
 * *out_path (new) is the output, on success and failure alike.
 */
int repair_wasm(struct job *j, const char *path, char **out_path, struct kw_error *err);

/* ---- write.c ---- */

/*
 * The new wheel through the one rewrite of wheel/: vendored libraries
 * added, edited members replaced, moved programs added with a launcher in
 * their place, WHEEL retagged, an SBOM added, RECORD regenerated from the
 * audit's verified lines (a wheel whose RECORD does not hold was refused).
 */
int repair_write_wheel(struct job *j, const char *out_path, int64_t mtime, struct kw_error *err);

/* A wheel that needs no change: the one writer, copying the archive whole. */
int repair_copy_as_is(struct job *j, const char *src, const char *out_path, struct kw_error *err);

#endif
