/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_AUDIT_H
#define KWHEEL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "kwheel/elf.h"
#include "kwheel/kwheel.h"
#include "kwheel/policy.h"
#include "kwheel/resolve.h"
#include "kwheel/util.h"
#include "kwheel/wheel.h"

/* Why a wheel does not satisfy a policy. */
enum kw_reason_kind {
	KW_REASON_LIB = 0,       /* needs a library outside the wheel the policy does not allow */
	KW_REASON_SYMVER,        /* needs a symbol version newer than the policy allows */
	KW_REASON_BLACKLIST,     /* imports a symbol the policy forbids */
	KW_REASON_PYFPE,         /* uses PyFPE_jbuf */
	KW_REASON_ARCH,          /* the policy does not exist for the wheel's architecture */
	KW_REASON_LIBC,          /* built against the other libc family */
};

struct kw_audit_reason {
	enum kw_reason_kind kind;
	char *member;  /* wheel member (or external library path) the reason comes from, or NULL */
	char *lib;     /* library concerned (soname), or NULL */
	char *what;    /* version ("GLIBC_2.28") or symbol name, or NULL */
};

/* One policy and what keeps the wheel from it (n_reasons == 0: satisfied). */
struct kw_audit_verdict {
	const struct kw_policy *policy; /* borrowed from the ctx's policy set */
	char *tag;                      /* "manylinux_2_17_x86_64" */
	struct kw_audit_reason *reasons;
	size_t n_reasons;
	bool sym_ok;                    /* symbol versions alone satisfy it */
	struct kw_strv graft;           /* external libraries to vendor for this policy (sonames) */
};

/* An external library the wheel's ELF members need. */
struct kw_audit_lib {
	char *soname;          /* the DT_NEEDED name */
	char *path;            /* where it resolved, or NULL when not found */
	char *realpath;        /* symlinks followed, or NULL */
	struct kw_strv needed_by; /* wheel members and external libraries that need it */
};

struct kw_audit_symvers {
	char *lib;             /* "libc.so.6" */
	struct kw_strv versions; /* sorted, unique */
};

struct kw_audit_member {
	char *name;            /* path inside the wheel */
	struct kw_elf_info *info; /* NULL when error is set */
	char *error;           /* why it could not be read as ELF, or NULL */
	bool extension;        /* kw_audit_is_extension */
	const char *arch;      /* platform-tag arch, borrowed static string, or NULL */
	struct kw_dep_graph *graph; /* its dependency tree */
};

/* The audit of one wheel. */
struct kw_audit {
	char *path;
	char *filename;        /* basename of path */
	struct kw_wheel_name name;
	struct kw_wheel_meta meta;
	bool pure;             /* no ELF member and a pure tag */
	char *not_elf;         /* set for platform wheels with no ELF (e.g. emscripten): the reason */
	char *no_policy;       /* set when no manylinux/musllinux policy applies (android): why */
	const char *arch;      /* the members' common arch, borrowed static string, or NULL */
	enum kw_policy_family family; /* MANYLINUX (glibc), MUSLLINUX or LINUX (unknown libc) */
	struct kw_audit_member *members;
	size_t n_members;
	struct kw_audit_lib *libs;  /* every external library reached, load order */
	size_t n_libs;
	struct kw_audit_symvers *symvers; /* versions the wheel's own ELF members require, per lib */
	size_t n_symvers;
	struct kw_audit_verdict *verdicts; /* every policy of the family for arch, most compatible first */
	size_t n_verdicts;
	long best;             /* index in verdicts of the most compatible satisfied one, -1: plain linux */
	long sym_best;         /* same, counting symbol versions only */
	char *best_tag;        /* "manylinux_2_17_x86_64" or "linux_x86_64" */
	char *sym_tag;
	bool pyfpe;
	bool ucs2;
	struct kw_record record;  /* RECORD check */
	bool tags_ok;          /* every platform tag the wheel claims is satisfied */
	struct kw_resolver *resolver; /* owns the ELF infos the graphs borrow */
	struct kw_strv bad_tags;  /* claimed platform tags the wheel does not satisfy */
	struct kw_strv tag_mismatches; /* where WHEEL's Tag lines and the file name disagree, as sentences */
};

/*
 * Audit the wheel at path: read and check it, find every ELF member by
 * content, resolve each one's dependencies as the loader would (members of
 * the wheel through an overlay, the rest under ctx->root), and judge every
 * policy of the wheel's libc family for its architecture. Returns 0 and a
 * new audit in *out (kw_audit_free); a wheel that cannot be read is an error
 * with err set. ctx->policy is loaded on first use.
 */
int kw_audit_wheel(struct kw_ctx *ctx, const char *path, struct kw_audit **out,
		   struct kw_error *err);
/* Skip the RECORD check (repair rewrites RECORD and must not inflate every member). */
#define KW_AUDIT_NO_RECORD 1u
int kw_audit_wheel_flags(struct kw_ctx *ctx, const char *path, unsigned flags, struct kw_audit **out,
			 struct kw_error *err);
void kw_audit_free(struct kw_audit *a);
const char *kw_reason_kind_str(enum kw_reason_kind kind);
/*
 * Is the ELF object at name (a wheel member path, or any path) a CPython
 * extension module? auditwheel's rule: it exports PyInit_<stem> (or
 * init<stem>, Python 2), stem being the file name up to its first dot, so a
 * library exporting ncurses' initscr is not one. The one definition audit
 * and km share.
 */
bool kw_audit_is_extension(const struct kw_elf_info *info, const char *name);
/* The verdict for a policy name/alias/tag, or NULL. Borrowed. */
const struct kw_audit_verdict *kw_audit_verdict_for(const struct kw_audit *a, const char *name);

#endif
