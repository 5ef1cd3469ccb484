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
#include "kwheel/wasm.h"
#include "kwheel/wheel.h"

/* Why a wheel does not satisfy a policy. */
enum kw_reason_kind {
	KW_REASON_LIB = 0,       /* needs a library outside the wheel the policy does not allow */
	KW_REASON_SYMVER,        /* needs a symbol version newer than the policy allows */
	KW_REASON_BLACKLIST,     /* imports a symbol the policy forbids (not a weak reference);
				    vendoring does not cure it: the library would still not define it */
	KW_REASON_PYFPE,         /* uses PyFPE_jbuf */
	KW_REASON_ARCH,          /* the policy does not exist for the wheel's architecture */
	KW_REASON_LIBC,          /* built against the other libc family */
	/*
	 * Added for parity with auditwheel. None of these is cured by vendoring
	 * libraries: repair must not offer a policy whose verdict has one,
	 * except KW_REASON_LIBPYTHON, which repair cures by removing the
	 * DT_NEEDED entries listed in kw_audit.drop_needed.
	 */
	KW_REASON_LIBPYTHON,     /* member (lib) needs libpython: removed by repair, never vendored */
	KW_REASON_ISA,           /* member needs an x86-64 ISA level above the baseline (what: "x86_64_v3") */
	KW_REASON_UCS2,          /* member imports PyUnicodeUCS2_* (narrow-unicode CPython 2) */
	KW_REASON_PURELIB,       /* member is an ELF file under <dist>.data/purelib/ */
	KW_REASON_LIBC_VERSION,  /* musl: the wheel cannot show it runs on this older musl */
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
	struct kw_strv graft;           /* external libraries to vendor for this policy (sonames); never a
					   libpython (KW_REASON_LIBPYTHON) */
	/*
	 * "SONAME\tLIB": SONAME is in graft, but LIB, a system library this
	 * policy allows, needs it too (directly or through others). The
	 * loader then maps the system's copy for LIB and the vendored one for
	 * the wheel: two instances of one library, which breaks libraries
	 * with process-wide state (libGLdispatch under libGL). Sorted.
	 */
	struct kw_strv twice;
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
	/* Added for parity with auditwheel: */
	const char *isa;       /* x86_64 only: "x86_64_v2", "x86_64_v3", "x86_64_v4" from the GNU
				  property note, or NULL (baseline, no note, other arch); static */
	bool purelib;          /* lies under <dist>.data/purelib/ */
	struct kw_wasm_info *wasm; /* a wasm member: its view (info is then NULL), or NULL */
};

/* A DT_NEEDED entry repair must remove rather than satisfy (libpython3.11.so.1.0). */
struct kw_audit_drop {
	char *member;          /* wheel member whose DT_NEEDED it is */
	char *soname;          /* the entry */
};

/* Can a Pyodide release load the wheel once repaired? One per release of the wheel's Python. */
struct kw_audit_pyodide {
	const struct kw_pyodide_release *release; /* static */
	bool loads;            /* wheel-local libraries work there (how: release->libs) */
	bool same_abi;         /* the wheel's platform tag is the release's own: otherwise loading is luck */
};

/* The audit of one wheel. */
struct kw_audit {
	char *path;
	char *filename;        /* basename of path */
	char *root;            /* ctx->root the graphs were resolved under ("" for "/"): their paths lie below it */
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

	/*
	 * Added for parity with auditwheel. repair reads these; show reports them.
	 *
	 * refusals: why no policy can be reached by repair, whatever is vendored,
	 * as sentences naming the members ("'m.so' depends on black-listed
	 * symbols: zcalloc, zcfree from libz.so.1"). Empty: repair may go on
	 * (to the policies whose verdicts have no KW_REASON_BLACKLIST, _ISA,
	 * _UCS2, _PURELIB, _ARCH, _PYFPE or _LIBC_VERSION reason). Set for a
	 * black-listed import every policy forbids, an unsupported ISA level
	 * (unless KW_AUDIT_NO_ISA_CHECK), a UCS2 build, PyFPE_jbuf, an ELF file
	 * under purelib, an ELF member of another architecture.
	 */
	struct kw_strv refusals;
	bool blacklisted;      /* some member imports a black-listed symbol (weak references do not count) */
	bool unsupported_isa;  /* some member needs an ISA level above the arch's baseline (and the check is on) */
	bool purelib_elf;      /* some ELF member lies under <dist>.data/purelib/ */
	char *arch_mismatch;   /* "member 'x.so' is aarch64, the wheel is named for x86_64", or NULL */
	const char *name_arch; /* the arch the file name's platform tags give, static, or NULL */
	struct kw_audit_drop *drop_needed; /* libpython DT_NEEDED entries repair removes (auditwheel does) */
	size_t n_drop_needed;

	/*
	 * wasm (Emscripten/Pyodide) wheels: members are side modules
	 * (kw_audit_member.wasm), graphs come from the wasm resolver, libs
	 * are the NEEDED closure outside the wheel, and there are no
	 * verdicts: best_tag is the claimed platform tag when it is
	 * consistent (wasm_findings empty), and pyodide says which releases
	 * can load the repaired result.
	 */
	bool wasm;
	struct kw_strv wasm_findings;  /* why the platform tag or a member is not consistent, as sentences */
	struct kw_audit_pyodide *pyodide;
	size_t n_pyodide;
	struct kw_wasm_resolver *wasm_resolver; /* owns the wasm infos the graphs borrow */
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
/* Do not judge x86-64 ISA levels (auditwheel's --disable-isa-ext-check). */
#define KW_AUDIT_NO_ISA_CHECK 2u
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
/*
 * The parsed ELF of an external library the audit reached (by DT_NEEDED
 * name, as in kw_audit_verdict.graft), or NULL. Borrowed from the audit.
 */
const struct kw_elf_info *kw_audit_lib_info(const struct kw_audit *a, const char *soname);
/* Is soname a libpython ("libpython3.11.so.1.0", "libpython2.7.so", "libpython3.6m.so")? */
bool kw_audit_is_libpython(const char *soname);
/* The verdict for a policy name/alias/tag, or NULL. Borrowed. */
const struct kw_audit_verdict *kw_audit_verdict_for(const struct kw_audit *a, const char *name);

#endif
