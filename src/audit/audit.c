/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/audit.h"
#include "kwheel/resolve.h"
#include "kwheel/wasm.h"

#include "internal.h"
#define ELF_HEAD 64
/* Members up to this size are read whole where their digest is wanted (read_one): in memory, by kw_wheel_map. */
#define SMALL_WHOLE (64 * 1024)
static_assert(SMALL_WHOLE <= KW_WHEEL_MAP_IN_MEMORY, "read_one's whole reads stay in memory");

struct overlay {
	struct kw_wheel *w;
	/* per wheel member index: the ELF member read_members parsed (info lent to the resolver), or NULL */
	const struct kw_audit_member **parsed;
};

/*
 * Serve a candidate path below OVERLAY_PREFIX from the wheel's members: the
 * parse read_members made if there is one (a member is inflated once, not
 * again for every tree that reaches it), else a fresh one.
 */
static int overlay_load(void *ud, const char *path, struct kw_elf_info **info, bool *borrowed,
			struct kw_error *err)
{
	struct overlay *ov = ud;
	unsigned char head[ELF_HEAD];
	struct kw_wheel_map map;
	size_t got = 0;
	const char *name;
	long idx;
	int rc;

	if (strncmp(path, OVERLAY_PREFIX "/", sizeof(OVERLAY_PREFIX)) != 0) {
		return KW_ENOTFOUND;
	}
	name = path + sizeof(OVERLAY_PREFIX);
	idx = kw_wheel_find(ov->w, name);
	if (idx < 0 || kw_wheel_member(ov->w, (size_t)idx)->is_dir) {
		return KW_ENOTFOUND;
	}
	if (ov->parsed && ov->parsed[idx] && ov->parsed[idx]->info) {
		/* The audit's members outlive its resolver's use of them (kw_audit_free). */
		*info = ov->parsed[idx]->info;
		*borrowed = true;
		return 0;
	}
	rc = kw_wheel_read_head(ov->w, (size_t)idx, head, sizeof(head), &got, err);
	if (rc) {
		return rc;
	}
	if (!kw_elf_is_elf(head, got)) {
		return kw_error_set(err, KW_EFORMAT, "'%s': not an ELF file", name);
	}
	rc = kw_wheel_map(ov->w, (size_t)idx, &map, NULL, err);
	if (rc) {
		return rc;
	}
	rc = kw_elf_parse_memory(map.data, map.len, name, info, err);
	kw_wheel_unmap(&map);
	return rc;
}

static bool is_loader_name(const char *soname)
{
	/* The dynamic loader itself is part of the libc, whatever the policy lists. */
	return strncmp(soname, "ld-linux", 8) == 0 || strncmp(soname, "ld64.so", 7) == 0 ||
	       strncmp(soname, "ld-musl-", 8) == 0 || strncmp(soname, "ld.so", 5) == 0;
}

static bool is_musl_libc(const char *soname)
{
	return strncmp(soname, "libc.musl-", 10) == 0 || strcmp(soname, "libc.so") == 0;
}

/* The loader's own version needs say nothing about the policy (auditwheel leaves them out too). */
static bool is_glibc_loader(const char *soname)
{
	return strncmp(soname, "ld-linux", 8) == 0 || strcmp(soname, "ld64.so.1") == 0 ||
	       strcmp(soname, "ld64.so.2") == 0;
}

static bool all_digits(const char **s)
{
	const char *p = *s;

	while (*p >= '0' && *p <= '9') {
		p++;
	}
	if (p == *s) {
		return false;
	}
	*s = p;
	return true;
}

bool kw_audit_is_libpython(const char *soname)
{
	const char *p = soname;

	/* libpythonX.Y[m].so[.N]... as auditwheel matches it (each suffix part one digit). */
	if (strncmp(p, "libpython", 9) != 0) {
		return false;
	}
	p += 9;
	if (!all_digits(&p) || *p++ != '.' || !all_digits(&p)) {
		return false;
	}
	if (*p == 'm') {
		p++;
	}
	if (strncmp(p, ".so", 3) != 0) {
		return false;
	}
	p += 3;
	while (p[0] == '.' && p[1] >= '0' && p[1] <= '9') {
		p += 2;
	}
	return *p == 0;
}

static bool policy_allows(const struct kw_policy *p, const char *soname)
{
	if (is_loader_name(soname)) {
		return true;
	}
	/* musl's libc is "libc.musl-<arch>.so.1" on disk and "libc.so" in the PEP. */
	if (p->family == KW_POLICY_MUSLLINUX && is_musl_libc(soname)) {
		return true;
	}
	return kw_policy_allows_lib(p, soname);
}

static void reasons_free(struct kw_audit_reason *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(r[i].member);
		free(r[i].lib);
		free(r[i].what);
	}
	free(r);
}

void kw_audit_free(struct kw_audit *a)
{
	size_t i;

	if (!a) {
		return;
	}
	free(a->path);
	free(a->filename);
	free(a->root);
	free(a->not_elf);
	free(a->no_policy);
	free(a->best_tag);
	free(a->sym_tag);
	kw_wheel_name_release(&a->name);
	kw_wheel_meta_release(&a->meta);
	kw_record_release(&a->record);
	kw_strv_release(&a->bad_tags);
	kw_strv_release(&a->tag_mismatches);
	kw_strv_release(&a->refusals);
	free(a->arch_mismatch);
	for (i = 0; i < a->n_drop_needed; i++) {
		free(a->drop_needed[i].member);
		free(a->drop_needed[i].soname);
	}
	free(a->drop_needed);
	kw_strv_release(&a->wasm_findings);
	free(a->pyodide);
	for (i = 0; i < a->n_members; i++) {
		kw_wasm_info_free(a->members[i].wasm);
		free(a->members[i].name);
		free(a->members[i].error);
		kw_elf_info_free(a->members[i].info);
		kw_dep_graph_free(a->members[i].graph);
	}
	free(a->members);
	for (i = 0; i < a->n_libs; i++) {
		free(a->libs[i].soname);
		free(a->libs[i].path);
		free(a->libs[i].realpath);
		kw_strv_release(&a->libs[i].needed_by);
	}
	free(a->libs);
	for (i = 0; i < a->n_symvers; i++) {
		free(a->symvers[i].lib);
		kw_strv_release(&a->symvers[i].versions);
	}
	free(a->symvers);
	for (i = 0; i < a->n_verdicts; i++) {
		free(a->verdicts[i].tag);
		reasons_free(a->verdicts[i].reasons, a->verdicts[i].n_reasons);
		kw_strv_release(&a->verdicts[i].graft);
		kw_strv_release(&a->verdicts[i].twice);
	}
	free(a->verdicts);
	kw_resolver_free(a->resolver);
	kw_wasm_resolver_free(a->wasm_resolver);
	free(a);
}

const char *kw_reason_kind_str(enum kw_reason_kind kind)
{
	switch (kind) {
	case KW_REASON_LIB: return "library";
	case KW_REASON_SYMVER: return "symbol-version";
	case KW_REASON_BLACKLIST: return "blacklisted-symbol";
	case KW_REASON_PYFPE: return "pyfpe";
	case KW_REASON_ARCH: return "architecture";
	case KW_REASON_LIBC: return "libc";
	case KW_REASON_LIBPYTHON: return "libpython";
	case KW_REASON_ISA: return "isa";
	case KW_REASON_UCS2: return "ucs2";
	case KW_REASON_PURELIB: return "purelib";
	case KW_REASON_LIBC_VERSION: return "libc-version";
	}
	return "unknown";
}

const struct kw_audit_verdict *kw_audit_verdict_for(const struct kw_audit *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n_verdicts; i++) {
		const struct kw_policy *p = a->verdicts[i].policy;
		size_t k;

		if (strcmp(a->verdicts[i].tag, name) == 0 || strcmp(p->name, name) == 0) {
			return &a->verdicts[i];
		}
		for (k = 0; k < p->n_aliases; k++) {
			size_t l = strlen(p->aliases[k]);

			/* "manylinux2014" or "manylinux2014_x86_64" */
			if (strncmp(p->aliases[k], name, l) == 0 &&
			    (name[l] == 0 || (name[l] == '_' && a->arch && strcmp(name + l + 1, a->arch) == 0))) {
				return &a->verdicts[i];
			}
		}
	}
	return NULL;
}

bool kw_audit_is_extension(const struct kw_elf_info *info, const char *name)
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	size_t stem = strcspn(base, "."), i;

	/* auditwheel's rule: the module a file name promises is the name up to its first dot. */
	if (!info || stem == 0) {
		return false;
	}
	for (i = 0; i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];
		const char *rest;

		if (!s->defined || s->bind == 0 /* STB_LOCAL */) {
			continue;
		}
		if (strncmp(s->name, "PyInit_", 7) == 0) {
			rest = s->name + 7;
		} else if (strncmp(s->name, "init", 4) == 0) {
			rest = s->name + 4; /* Python 2 */
		} else {
			continue;
		}
		if (strlen(rest) == stem && strncmp(rest, base, stem) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * One verdict as it is judged: its reasons' array capacity and an index of
 * them by content, so that the same reason met through another path is
 * found in constant time (a torch-sized wheel gives 1,500 reasons to a
 * policy, and a linear search per insert was a tenth of show); and indexes
 * of its lists of what to vendor and what would load twice (each string to
 * its index there), which were scanned per library too.
 */
struct reason_set {
	size_t cap;
	size_t *slot;          /* index + 1 into v->reasons, 0 for empty; n_slot a power of two */
	size_t n_slot;
	struct kw_strmap graft, twice;
	/* What the audit as a whole learns while judging this verdict, merged in after every verdict. */
	bool blacklisted, unsupported_isa;
};

static void reason_set_release(struct reason_set *rs)
{
	free(rs->slot);
	kw_strmap_release(&rs->graft);
	kw_strmap_release(&rs->twice);
	memset(rs, 0, sizeof(*rs));
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	/* FNV-1a, with a separator so that ("ab", "c") and ("a", "bc") differ. */
	h = kw_hash_bytes(h, s ? s : "", s ? strlen(s) : 0);
	return (h ^ 0xff) * 0x100000001b3ull;
}

static uint64_t reason_hash(enum kw_reason_kind kind, const char *member, const char *lib, const char *what)
{
	uint64_t h = (KW_FNV_BASIS ^ (uint64_t)kind) * 0x100000001b3ull;

	return hash_str(hash_str(hash_str(h, member), lib), what);
}

static bool same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Where the reason goes in rs's table: its slot, or the empty slot it would take. */
static size_t *reason_slot(const struct kw_audit_verdict *v, const struct reason_set *rs, enum kw_reason_kind kind,
			   const char *member, const char *lib, const char *what)
{
	size_t mask = rs->n_slot - 1, i = (size_t)reason_hash(kind, member, lib, what) & mask;

	for (;; i = (i + 1) & mask) {
		const struct kw_audit_reason *r;

		if (!rs->slot[i]) {
			return &rs->slot[i];
		}
		r = &v->reasons[rs->slot[i] - 1];
		if (r->kind == kind && same_str(r->member, member) && same_str(r->lib, lib) && same_str(r->what, what)) {
			return &rs->slot[i];
		}
	}
}

/* Keep the table at most half full: rebuilt twice the size from the reasons it indexes. */
static int reason_set_grow(const struct kw_audit_verdict *v, struct reason_set *rs)
{
	size_t n = rs->n_slot ? rs->n_slot * 2 : 64, i;
	struct reason_set bigger = *rs;

	bigger.slot = kw_calloc(n, sizeof(*rs->slot));
	bigger.n_slot = n;
	if (!bigger.slot) {
		return KW_ENOMEM;
	}
	for (i = 0; i < v->n_reasons; i++) {
		const struct kw_audit_reason *r = &v->reasons[i];

		*reason_slot(v, &bigger, r->kind, r->member, r->lib, r->what) = i + 1;
	}
	free(rs->slot);
	*rs = bigger;
	return 0;
}

static int add_reason(struct kw_audit_verdict *v, struct reason_set *rs, enum kw_reason_kind kind,
		      const char *member, const char *lib, const char *what)
{
	struct kw_audit_reason *r;
	size_t *slot;

	if ((v->n_reasons + 1) * 2 > rs->n_slot && reason_set_grow(v, rs)) {
		return KW_ENOMEM;
	}
	/* The same reason through two paths is one reason. */
	slot = reason_slot(v, rs, kind, member, lib, what);
	if (*slot) {
		return 0;
	}
	if (kw_grow(&v->reasons, &rs->cap, v->n_reasons + 1, sizeof(*v->reasons))) {
		return KW_ENOMEM;
	}
	r = &v->reasons[v->n_reasons];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	if ((member && !(r->member = kw_strdup(member))) || (lib && !(r->lib = kw_strdup(lib))) ||
	    (what && !(r->what = kw_strdup(what)))) {
		free(r->member);
		free(r->lib);
		free(r->what);
		return KW_ENOMEM;
	}
	*slot = ++v->n_reasons;
	return 0;
}

/*
 * One object against one policy: its blacklisted imports (which make their
 * library vendored), or, with versions, the symbol versions it requires from
 * libraries that stay on the system.
 */
/* Does the object at the root of g load file from inside the wheel? */
static bool from_wheel(const struct kw_dep_graph *g, const char *file)
{
	size_t i;

	if (!g || g->n_nodes == 0) {
		return false;
	}
	for (i = 0; i < g->nodes[0].n_deps; i++) {
		const struct kw_dep_node *n;

		if (g->nodes[0].deps[i] >= g->n_nodes) {
			continue;
		}
		n = &g->nodes[g->nodes[0].deps[i]];
		if (strcmp(n->name, file) == 0 || (n->info && n->info->soname && strcmp(n->info->soname, file) == 0)) {
			return n->in_overlay;
		}
	}
	return false;
}

#define STB_WEAK_ 2 /* STB_WEAK: this module does not include <elf.h> */
#define STT_FUNC_ 2
#define STT_NOTYPE_ 0

/* An undefined reference to fpectl's globals (CPython built --with-fpectl). */
static bool is_pyfpe(const struct kw_elf_sym *s)
{
	/* The prefix first: this runs for every import of every member. */
	return !s->defined && (s->type == STT_FUNC_ || s->type == STT_NOTYPE_) && s->name[0] == 'P' &&
	       strncmp(s->name, "PyFPE_", 6) == 0 &&
	       (strcmp(s->name, "PyFPE_jbuf") == 0 || strcmp(s->name, "PyFPE_dummy") == 0 ||
		strcmp(s->name, "PyFPE_counter") == 0);
}

/* An undefined narrow-unicode (UCS2) CPython 2 function. */
static bool is_ucs2(const struct kw_elf_sym *s)
{
	return !s->defined && s->type == STT_FUNC_ && s->name[0] == 'P' && strncmp(s->name, "PyUnicodeUCS2_", 14) == 0;
}

/*
 * x86_64: the ISA level above the baseline that the GNU property note asks
 * for ("x86_64_v3"), or NULL. A manylinux/musllinux policy promises the
 * baseline only; glibc refuses to load the object on a CPU without it.
 */
static const char *isa_level(const struct kw_elf_info *info)
{
	uint32_t bits;

	if (!info || info->machine != 62 /* EM_X86_64 */ || !info->has_x86_isa_needed) {
		return NULL;
	}
	bits = info->x86_isa_needed & ~(uint32_t)1; /* bit 0: the baseline */
	if (bits & 8) {
		return "x86_64_v4";
	}
	if (bits & 4) {
		return "x86_64_v3";
	}
	if (bits & 2) {
		return "x86_64_v2";
	}
	return NULL;
}

static int check_object(struct kw_audit *a, struct kw_audit_verdict *v, struct reason_set *rs, const char *who,
			const struct kw_elf_info *info, const struct kw_dep_graph *g, bool *sym_ok, bool versions)
{
	const struct kw_policy *p = v->policy;
	size_t *bk = NULL, n_bk = 0; /* which of the needed libraries the policy blacklists symbols of */
	size_t i, k;
	int rc;

	for (i = 0; versions && i < info->n_verneed; i++) {
		const struct kw_elf_verneed *vn = &info->verneed[i];

		/*
		 * A vendored copy answers these, whatever the system has; so does a
		 * library the wheel ships; libpython's DT_NEEDED goes in repair.
		 */
		if (kw_strmap_get(&rs->graft, vn->file) >= 0 || from_wheel(g, vn->file) ||
		    kw_audit_is_libpython(vn->file)) {
			continue;
		}
		for (k = 0; k < vn->n_versions; k++) {
			if (kw_policy_allows_version(p, a->arch, vn->versions[k])) {
				continue;
			}
			*sym_ok = false;
			rc = add_reason(v, rs, KW_REASON_SYMVER, who, vn->file, vn->versions[k]);
			if (rc) {
				return rc;
			}
		}
	}
	/*
	 * Symbols matter here only for a library the policy blacklists symbols
	 * of, or fpectl's: without either, a large C++ library's tens of
	 * thousands of imports need not be looked at, once per policy.
	 */
	for (k = 0; !versions && k < info->n_needed; k++) {
		if (!kw_policy_blacklists_lib(p, info->needed[k])) {
			continue;
		}
		if (!bk && !(bk = kw_calloc(info->n_needed, sizeof(*bk)))) {
			return KW_ENOMEM;
		}
		bk[n_bk++] = k;
	}
	rc = 0;
	for (i = 0; !versions && (n_bk || a->pyfpe) && i < info->n_syms && !rc; i++) {
		const struct kw_elf_sym *s = &info->syms[i];

		if (s->defined) {
			continue;
		}
		/*
		 * An undefined weak reference may stay unbound: the loader does not
		 * fail when no library defines it, so it is no dependency on it.
		 * A strong one is, and vendoring does not cure it: the library a
		 * repair would copy (the build machine's) need not define the
		 * symbol either, and the module would then fail to load.
		 */
		for (k = 0; s->bind != STB_WEAK_ && k < n_bk && !rc; k++) {
			if (kw_policy_blacklisted(p, info->needed[bk[k]], s->name)) {
				rs->blacklisted = true;
				rc = add_reason(v, rs, KW_REASON_BLACKLIST, who, info->needed[bk[k]], s->name);
			}
		}
		if (!rc && a->pyfpe && is_pyfpe(s)) {
			/* One reason per member, whichever of fpectl's symbols it imports. */
			rc = add_reason(v, rs, KW_REASON_PYFPE, who, NULL, "PyFPE_jbuf");
		}
	}
	free(bk);
	return rc;
}

/* How a node is named in reasons: wheel members by their path in the wheel. */
static const char *node_label(const struct kw_audit_member *m, const struct kw_dep_graph *g, size_t k)
{
	const struct kw_dep_node *n = &g->nodes[k];

	if (k == 0) {
		return m->name;
	}
	if (n->member) {
		return n->member;
	}
	return n->path ? n->path : n->name;
}

/*
 * What the allowed system library at node a of g loads that the policy
 * does not allow: candidates for v->twice ("SONAME\tLIB"), kept once
 * every member is walked only if they are vendored too.
 */
static int under_allowed(struct kw_audit_verdict *v, struct reason_set *rs, const struct kw_dep_graph *g, size_t a)
{
	size_t *stack = kw_calloc(g->n_nodes + 1, sizeof(*stack)), sp = 0, i;
	bool *seen = kw_calloc(g->n_nodes, sizeof(*seen));
	int rc = stack && seen ? 0 : KW_ENOMEM;

	if (!rc) {
		stack[sp++] = a;
		seen[a] = true;
	}
	while (!rc && sp > 0) {
		const struct kw_dep_node *n = &g->nodes[stack[--sp]];

		for (i = 0; !rc && i < n->n_deps; i++) {
			size_t d = n->deps[i];
			const struct kw_dep_node *dn;

			if (d >= g->n_nodes || seen[d]) {
				continue;
			}
			seen[d] = true;
			dn = &g->nodes[d];
			if (dn->in_overlay || !dn->info) {
				continue;
			}
			if (!policy_allows(v->policy, dn->name)) {
				char *t = kw_asprintf("%s\t%s", dn->name, g->nodes[a].name);

				rc = t ? kw_strv_push_indexed(&v->twice, &rs->twice, t) : KW_ENOMEM;
				free(t);
			}
			stack[sp++] = d;
		}
	}
	free(stack);
	free(seen);
	return rc;
}

/* Keep the candidates of v->twice whose library is vendored (in rs->graft); sorted. */
static void keep_twice(struct kw_audit_verdict *v, const struct reason_set *rs)
{
	size_t i, k = 0;

	for (i = 0; i < v->twice.n; i++) {
		char *t = v->twice.v[i];

		if (kw_strmap_get_n(&rs->graft, t, strcspn(t, "\t")) >= 0) {
			v->twice.v[k++] = t;
		} else {
			free(t);
		}
	}
	v->twice.n = k;
	kw_strv_sort(&v->twice);
}

/*
 * Walk one member's graph as repair would graft for policy p: libraries in the
 * wheel are walked through, allowed ones end the walk, the rest must be
 * vendored and their own needs walked too.
 */
static int walk_policy(struct kw_audit_verdict *v, struct reason_set *rs, const struct kw_audit_member *m)
{
	const struct kw_dep_graph *g = m->graph;
	size_t *stack = NULL, sp = 0, i;
	bool *seen = NULL;
	int rc = KW_ENOMEM;

	if (!g || g->n_nodes == 0) {
		return 0;
	}
	stack = kw_calloc(g->n_nodes + 1, sizeof(*stack));
	seen = kw_calloc(g->n_nodes, sizeof(*seen));
	if (!stack || !seen) {
		goto out;
	}
	stack[sp++] = 0;
	seen[0] = true;
	while (sp > 0) {
		size_t ni = stack[--sp];
		const struct kw_dep_node *n = &g->nodes[ni];

		for (i = 0; i < n->n_deps; i++) {
			size_t d = n->deps[i];
			const struct kw_dep_node *dn;

			if (d >= g->n_nodes || seen[d]) {
				continue;
			}
			seen[d] = true;
			dn = &g->nodes[d];
			if (!dn->in_overlay && kw_audit_is_libpython(dn->name)) {
				/* On Android the app's interpreter provides it under that name: normal there. */
				if (v->policy->family == KW_POLICY_ANDROID) {
					continue;
				}
				/* Never vendored nor walked: repair removes the DT_NEEDED entry. */
				rc = add_reason(v, rs, KW_REASON_LIBPYTHON, node_label(m, g, ni), dn->name, NULL);
				if (rc) {
					goto out;
				}
				continue;
			}
			if (!dn->in_overlay) {
				if (policy_allows(v->policy, dn->name)) {
					rc = under_allowed(v, rs, g, d);
					if (rc) {
						goto out;
					}
					continue;
				}
				rc = add_reason(v, rs, KW_REASON_LIB, node_label(m, g, ni), dn->name, NULL);
				if (rc || (rc = kw_strv_push_indexed(&v->graft, &rs->graft, dn->name))) {
					goto out;
				}
			}
			stack[sp++] = d;
		}
	}
	rc = 0;
out:
	free(stack);
	free(seen);
	return rc;
}

/*
 * A vendored library brings its own symbol versions and imports along: each
 * is checked once, as the first node of that name in the members' graphs
 * (members in order), in the order of v->graft.
 */
static int check_grafted(struct kw_audit *a, struct kw_audit_verdict *v, struct reason_set *rs, bool *sym_ok, bool isa_check)
{
	const struct kw_dep_node **first = v->graft.n ? kw_calloc(v->graft.n, sizeof(*first)) : NULL;
	size_t i, k, j;
	int rc = 0;

	if (v->graft.n && !first) {
		return KW_ENOMEM;
	}
	for (k = 0; k < a->n_members; k++) {
		const struct kw_dep_graph *g = a->members[k].graph;

		for (j = 1; g && j < g->n_nodes; j++) {
			const struct kw_dep_node *n = &g->nodes[j];
			long gi = n->in_overlay || !n->info ? -1 : kw_strmap_get(&rs->graft, n->name);

			if (gi >= 0 && !first[gi]) {
				first[gi] = n;
			}
		}
	}
	for (i = 0; !rc && i < v->graft.n; i++) {
		const struct kw_dep_node *n = first[i];

		if (!n) {
			continue;
		}
		/*
		 * Only its symbol versions: black-listed imports and fpectl are
		 * the wheel's own members' business (a system library may well
		 * import glibc's internals).
		 */
		rc = check_object(a, v, rs, n->path ? n->path : n->name, n->info, NULL, sym_ok, true);
		if (!rc && isa_check && isa_level(n->info)) {
			rs->unsupported_isa = true;
			rc = add_reason(v, rs, KW_REASON_ISA, n->path ? n->path : n->name, NULL, isa_level(n->info));
		}
	}
	free(first);
	return rc ? KW_ENOMEM : 0;
}

/* 32-bit ARM: an older ISA's code runs on a newer core, so armv6l code may sit in an armv7l wheel. */
static bool arch_fits(const char *member, const char *named)
{
	if (strcmp(member, named) == 0) {
		return true;
	}
	return strlen(member) == 6 && strlen(named) == 6 && strncmp(member, "armv", 4) == 0 &&
	       strncmp(named, "armv", 4) == 0 && member[5] == 'l' && named[5] == 'l' && member[4] <= named[4];
}

/*
 * What keeps a member from every policy whatever is vendored: an ISA level
 * above the baseline, a UCS2 build, a place under purelib, another
 * architecture than the wheel's name.
 */
static int check_member_refusals(struct kw_audit *a, struct kw_audit_verdict *v, struct reason_set *rs,
				 const struct kw_audit_member *m, bool isa_check)
{
	size_t i;

	if (isa_check && m->isa && add_reason(v, rs, KW_REASON_ISA, m->name, NULL, m->isa)) {
		return KW_ENOMEM;
	}
	if (m->purelib && add_reason(v, rs, KW_REASON_PURELIB, m->name, NULL, NULL)) {
		return KW_ENOMEM;
	}
	if (a->name_arch && m->arch && !arch_fits(m->arch, a->name_arch) &&
	    add_reason(v, rs, KW_REASON_ARCH, m->name, NULL, m->arch)) {
		return KW_ENOMEM;
	}
	for (i = 0; m->info && m->extension && i < m->info->n_syms; i++) {
		if (is_ucs2(&m->info->syms[i])) {
			return add_reason(v, rs, KW_REASON_UCS2, m->name, NULL, m->info->syms[i].name);
		}
	}
	return 0;
}

/* The newest musl policy for the arch: the one a musl wheel is taken to be built for. */
static long newest_musl(const struct kw_audit *a)
{
	long i, best = -1;

	for (i = 0; i < (long)a->n_verdicts; i++) {
		const struct kw_policy *p = a->verdicts[i].policy;

		if (p->family == KW_POLICY_MUSLLINUX &&
		    (best < 0 || p->major > a->verdicts[best].policy->major ||
		     (p->major == a->verdicts[best].policy->major && p->minor > a->verdicts[best].policy->minor))) {
			best = i;
		}
	}
	return best;
}

/*
 * The android policy for the wheel's one tag "android_<api>_<abi>": the
 * NDK's library set changes only at some API levels, so the policy with the
 * highest level not above the tag's. NULL when none fits (then *why says so).
 */
static const struct kw_policy *android_policy(const struct kw_audit *a, const struct kw_policy_set *set,
					      const char **why)
{
	const struct kw_policy *best = NULL;
	const char *t = a->name.platform + 8;
	long api = 0;
	size_t i;

	if (a->name.n_platforms != 1) {
		*why = "android wheel with more than one platform tag: it must have exactly one";
		return NULL;
	}
	for (; *t >= '0' && *t <= '9' && api < 100000; t++) {
		api = api * 10 + (*t - '0');
	}
	if (t == a->name.platform + 8 || *t != '_') {
		*why = "android platform tag without an API level (android_<level>_<abi>)";
		return NULL;
	}
	for (i = 0; i < set->n_policies; i++) {
		const struct kw_policy *p = &set->policies[i];

		if (p->family == KW_POLICY_ANDROID && p->major <= api && (!best || p->major > best->major) &&
		    (!a->arch || kw_policy_arch(p, a->arch))) {
			best = p;
		}
	}
	if (!best) {
		*why = "no android policy for the wheel's API level (the oldest is 21)";
	}
	return best;
}

/* One verdict's judging (a task of judge's batch): what it learns about the audit goes in out[i]. */
struct judged {
	int rc;
	bool blacklisted, unsupported_isa;
};

struct judging {
	struct kw_audit *a;
	long musl_top;
	bool isa_check;
	struct judged *out;
};

static void judge_task(void *ud, size_t i)
{
	struct judging *j = ud;
	struct kw_audit *a = j->a;
	struct kw_audit_verdict *v = &a->verdicts[i];
	struct reason_set rs = { 0 };
	bool sym_ok = true, isa_check = j->isa_check;
	long musl_top = j->musl_top;
	size_t k;
	int rc = 0;

	/*
	 * musl versions no symbol, so nothing in a binary shows which musl
	 * it was built against, and a newer musl's headers and libc may give
	 * it symbols and ABI (64-bit time_t on 32-bit arches since 1.2) the
	 * older one lacks. The safe claim is the newest musl kwheel knows,
	 * which is what auditwheel assumes without a musl build host; the
	 * older policies stay listed, with this reason.
	 */
	if (musl_top >= 0 && (long)i != musl_top) {
		char *ver = kw_asprintf("%d.%d", a->verdicts[musl_top].policy->major,
					a->verdicts[musl_top].policy->minor);

		rc = !ver || add_reason(v, &rs, KW_REASON_LIBC_VERSION, NULL, "musl", ver);
		free(ver);
		sym_ok = false;
	}
	for (k = 0; !rc && k < a->n_members; k++) {
		rc = check_member_refusals(a, v, &rs, &a->members[k], isa_check);
	}
	/* First what must be vendored, then what the result still requires. */
	for (k = 0; !rc && k < a->n_members; k++) {
		rc = a->members[k].info ? walk_policy(v, &rs, &a->members[k]) : 0;
	}
	for (k = 0; !rc && k < 2 * a->n_members; k++) {
		const struct kw_audit_member *m = &a->members[k % a->n_members];

		rc = m->info ? check_object(a, v, &rs, m->name, m->info, m->graph, &sym_ok, k >= a->n_members) : 0;
	}
	rc = rc ? rc : check_grafted(a, v, &rs, &sym_ok, isa_check);
	v->sym_ok = sym_ok;
	kw_strv_sort(&v->graft);
	keep_twice(v, &rs);
	j->out[i].rc = rc;
	j->out[i].blacklisted = rs.blacklisted;
	j->out[i].unsupported_isa = rs.unsupported_isa;
	reason_set_release(&rs);
}

/*
 * The verdict of each policy of the wheel's family, judged as tasks of one
 * batch on pool (they share nothing but the read-only members and graphs),
 * then merged in policy order: the same verdicts on any number of threads.
 */
static int judge(struct kw_audit *a, struct kw_pool *pool, const struct kw_policy_set *set,
		 const struct kw_policy *android, bool isa_check, struct kw_error *err)
{
	struct judging j = { 0 };
	size_t i, cap = 0;

	for (i = 0; i < set->n_policies; i++) {
		const struct kw_policy *p = &set->policies[i];

		if (p->family != a->family || p->family == KW_POLICY_LINUX || !kw_policy_arch(p, a->arch) ||
		    (android && p != android)) {
			continue;
		}
		if (kw_grow(&a->verdicts, &cap, a->n_verdicts + 1, sizeof(*a->verdicts))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		memset(&a->verdicts[a->n_verdicts], 0, sizeof(*a->verdicts));
		a->verdicts[a->n_verdicts].policy = p;
		/* An android wheel's tag names its API level and ABI, and stays as it is. */
		a->verdicts[a->n_verdicts].tag = android ? kw_strdup(a->name.platform) : kw_policy_tag(p, a->arch);
		if (!a->verdicts[a->n_verdicts].tag) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		a->n_verdicts++;
	}
	a->best = -1;
	a->sym_best = -1;
	j.a = a;
	j.musl_top = newest_musl(a);
	j.isa_check = isa_check;
	j.out = kw_calloc(a->n_verdicts ? a->n_verdicts : 1, sizeof(*j.out));
	if (!j.out) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	kw_pool_run(pool, a->n_verdicts, judge_task, &j);
	for (i = 0; i < a->n_verdicts; i++) {
		const struct kw_audit_verdict *v = &a->verdicts[i];

		if (j.out[i].rc) {
			free(j.out);
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		a->blacklisted = a->blacklisted || j.out[i].blacklisted;
		a->unsupported_isa = a->unsupported_isa || j.out[i].unsupported_isa;
		if (v->n_reasons == 0 && a->best < 0) {
			a->best = (long)i;
		}
		if (v->sym_ok && a->sym_best < 0) {
			a->sym_best = (long)i;
		}
	}
	free(j.out);
	return 0;
}

/*
 * collect_libs' indexes: each library by SONAME and real path, and each
 * (library, needer) pair already listed, under keys that cannot collide
 * whatever bytes the names hold (a length, or an index, then ':').
 */
struct lib_index {
	struct kw_strv keys;
	struct kw_strmap libs, edges;
	struct kw_buf key;      /* the key being looked up: most are there already, and need no copy */
};

/*
 * The key "NUM:AB" in x->key: built by hand, as it is once per edge of
 * every member's graph (formatting each, and copying it to look it up,
 * was a few percent of an audit of a torch-sized wheel, on one thread).
 */
static const char *make_key(struct lib_index *x, size_t num, const char *a, const char *b)
{
	char n[24];

	x->key.len = 0;
	if (x->key.s) {
		x->key.s[0] = '\0';
	}
	snprintf(n, sizeof(n), "%zu:", num);
	kw_buf_append(&x->key, n);
	kw_buf_append(&x->key, a);
	kw_buf_append(&x->key, b);
	return x->key.failed ? NULL : x->key.s;
}

/* key in m: 1 with its value in *val if it is there, else 0 once added (a copy) with value fresh; or KW_ENOMEM. */
static int index_key(struct lib_index *x, struct kw_strmap *m, const char *key, size_t fresh, size_t *val)
{
	long have;

	if (!key) {
		return KW_ENOMEM;
	}
	have = kw_strmap_get(m, key);
	if (have >= 0) {
		*val = (size_t)have;
		return 1;
	}
	if (kw_strv_push(&x->keys, key) || kw_strmap_add(m, x->keys.v[x->keys.n - 1], fresh) < 0) {
		return KW_ENOMEM;
	}
	*val = fresh;
	return 0;
}

static int add_lib(struct kw_audit *a, size_t *cap, struct lib_index *x, const struct kw_dep_node *dn, const char *by)
{
	const char *real = dn->realpath ? dn->realpath : "";
	struct kw_audit_lib *l;
	size_t i, unused;
	int rc = index_key(x, &x->libs, make_key(x, strlen(dn->name), dn->name, real), a->n_libs, &i);

	if (rc < 0) {
		return rc;
	}
	if (rc == 0) {
		if (kw_grow(&a->libs, cap, a->n_libs + 1, sizeof(*a->libs))) {
			return KW_ENOMEM;
		}
		l = &a->libs[a->n_libs];
		memset(l, 0, sizeof(*l));
		l->soname = kw_strdup(dn->name);
		l->path = dn->path ? kw_strdup(dn->path) : NULL;
		l->realpath = dn->realpath ? kw_strdup(dn->realpath) : NULL;
		a->n_libs++;
		if (!l->soname || (dn->path && !l->path) || (dn->realpath && !l->realpath)) {
			return KW_ENOMEM;
		}
	}
	rc = index_key(x, &x->edges, make_key(x, i, by, ""), 0, &unused);
	return rc < 0 ? rc : rc == 0 ? kw_strv_push(&a->libs[i].needed_by, by) : 0;
}

/* Every library outside the wheel that any member reaches, and who needs it, each in the order first met. */
static int collect_libs(struct kw_audit *a)
{
	struct lib_index x = { 0 };
	size_t cap = 0, i, k, d;
	int rc = 0;

	for (i = 0; !rc && i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 0; !rc && g && k < g->n_nodes; k++) {
			const struct kw_dep_node *n = &g->nodes[k];
			const char *by = node_label(&a->members[i], g, k);

			/* libpython goes from the wheel, and what it needs with it. */
			if (k > 0 && !n->in_overlay && kw_audit_is_libpython(n->name)) {
				continue;
			}
			for (d = 0; !rc && d < n->n_deps; d++) {
				size_t j = n->deps[d];

				if (j == 0 || j >= g->n_nodes || g->nodes[j].in_overlay) {
					continue;
				}
				rc = add_lib(a, &cap, &x, &g->nodes[j], by);
			}
		}
	}
	kw_strmap_release(&x.libs);
	kw_strmap_release(&x.edges);
	kw_strv_release(&x.keys);
	kw_buf_release(&x.key);
	return rc;
}

static int collect_symvers(struct kw_audit *a)
{
	size_t cap = 0, i, k, j, s;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;

		if (!info) {
			continue;
		}
		for (k = 0; k < info->n_verneed; k++) {
			struct kw_audit_symvers *sv = NULL;

			if (is_glibc_loader(info->verneed[k].file)) {
				continue;
			}
			for (s = 0; s < a->n_symvers; s++) {
				if (strcmp(a->symvers[s].lib, info->verneed[k].file) == 0) {
					sv = &a->symvers[s];
				}
			}
			if (!sv) {
				if (kw_grow(&a->symvers, &cap, a->n_symvers + 1, sizeof(*a->symvers))) {
					return KW_ENOMEM;
				}
				sv = &a->symvers[a->n_symvers];
				memset(sv, 0, sizeof(*sv));
				sv->lib = kw_strdup(info->verneed[k].file);
				if (!sv->lib) {
					return KW_ENOMEM;
				}
				a->n_symvers++;
			}
			for (j = 0; j < info->verneed[k].n_versions; j++) {
				if (kw_strv_push_unique(&sv->versions, info->verneed[k].versions[j])) {
					return KW_ENOMEM;
				}
			}
		}
	}
	for (s = 0; s < a->n_symvers; s++) {
		kw_strv_sort(&a->symvers[s].versions);
	}
	return 0;
}

/* glibc or musl, from what the members link against. */
static enum kw_policy_family libc_family(const struct kw_audit *a)
{
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;

		if (!info) {
			continue;
		}
		if (info->interp && strstr(info->interp, "ld-musl")) {
			return KW_POLICY_MUSLLINUX;
		}
		for (k = 0; k < info->n_needed; k++) {
			if (strncmp(info->needed[k], "libc.musl-", 10) == 0) {
				return KW_POLICY_MUSLLINUX;
			}
			if (strcmp(info->needed[k], "libc.so.6") == 0) {
				return KW_POLICY_MANYLINUX;
			}
		}
	}
	/*
	 * Nothing links a libc (static or libc-free code): the CPython extension
	 * suffix and the claimed tag are all that is left to tell.
	 */
	for (i = 0; i < a->n_members; i++) {
		if (strstr(a->members[i].name, "-linux-musl")) {
			return KW_POLICY_MUSLLINUX;
		}
	}
	for (i = 0; i < a->name.n_platforms; i++) {
		if (strncmp(a->name.platforms[i], "musllinux_", 10) == 0) {
			return KW_POLICY_MUSLLINUX;
		}
	}
	return KW_POLICY_MANYLINUX;
}

/* "<dist>.data/purelib/...": installed into purelib, where a platform wheel's code must not go. */
static bool in_purelib(const char *name)
{
	const char *slash = strchr(name, '/');

	return slash && slash - name > 5 && strncmp(slash - 5, ".data", 5) == 0 &&
	       strncmp(slash + 1, "purelib/", 8) == 0;
}

/* One wheel member's read, made on the pool: its own slot, so the result is the same on any number of threads. */
struct member_read {
	bool ran;                  /* read_one was called for it */
	bool binary;               /* an ELF or wasm member: m holds it */
	struct kw_audit_member m;
	int rc;                    /* a failure that stops the audit, in err */
	struct kw_error err;
};

struct reads {
	struct kw_wheel *w;
	unsigned char (*digests)[32];
	bool *have;
	struct member_read *r;     /* per wheel member */
	struct kw_sized *order;    /* the members by size, largest first: task t reads order[t].i */
};

/* Member i: is it ELF or wasm, and if so inflated once, hashed and parsed. */
static void read_one(struct reads *rs, size_t i);

static int read_member(void *ud, size_t t)
{
	struct reads *rs = ud;
	size_t i = rs->order[t].i;

	read_one(rs, i);
	return rs->r[i].rc;
}

/* Member i, a binary whose bytes are data (len; head: their first got): parsed into r->m. */
static void binary_member(struct reads *rs, size_t i, const unsigned char *data, size_t len,
			  const unsigned char *head, size_t got)
{
	const struct kw_wheel_member *wm = kw_wheel_member(rs->w, i);
	struct member_read *r = &rs->r[i];
	struct kw_audit_member *m = &r->m;
	struct kw_error merr = { 0 };
	int rc;

	r->binary = true;
	m->name = kw_strdup(wm->name);
	if (!m->name) {
		r->rc = kw_error_set(&r->err, KW_ENOMEM, "out of memory");
		return;
	}
	m->purelib = in_purelib(wm->name);
	if (kw_wasm_is_wasm(head, got)) {
		r->rc = kw_audit_wasm_member(m, data, len, &r->err);
		return;
	}
	rc = kw_elf_parse_memory(data, len, wm->name, &m->info, &merr);
	if (rc == KW_ENOMEM) {
		r->rc = kw_error_set(&r->err, rc, "%s", merr.msg);
		return;
	}
	if (rc) {
		/* A bad ELF member is a finding about the wheel, not a reason to stop. */
		m->error = kw_strdup(merr.msg);
		if (!m->error) {
			r->rc = kw_error_set(&r->err, KW_ENOMEM, "out of memory");
		}
		return;
	}
	m->extension = kw_audit_is_extension(m->info, m->name);
	m->arch = kw_elf_arch(m->info);
	m->isa = isa_level(m->info);
}

static void read_one(struct reads *rs, size_t i)
{
	const struct kw_wheel_member *wm = kw_wheel_member(rs->w, i);
	struct member_read *r = &rs->r[i];
	unsigned char head[ELF_HEAD];
	struct kw_wheel_map map;
	size_t got = 0;
	bool whole;

	r->ran = true;
	if (wm->is_dir) {
		return;
	}
	/*
	 * A small member whose digest RECORD wants is read whole at once (in
	 * memory, as kw_wheel_map reads small members) and hashed, then dropped
	 * unless it is a binary: a head read first (a zlib stream set up for
	 * 64 bytes) and a second inflate for RECORD would cost more than the
	 * member itself (a wheel of a thousand Python files).
	 */
	whole = rs->digests && wm->size <= SMALL_WHOLE;
	if (!whole) {
		r->rc = kw_wheel_read_head(rs->w, i, head, sizeof(head), &got, &r->err);
		/* wasm side modules are members too: an Emscripten/Pyodide wheel's binary view. */
		if (r->rc || (!kw_elf_is_elf(head, got) && !kw_wasm_is_wasm(head, got))) {
			return;
		}
	}
	/* Mapped, not read into memory (unless small): the ELF reader touches only the pages it parses. */
	r->rc = kw_wheel_map(rs->w, i, &map, rs->digests ? rs->digests[i] : NULL, &r->err);
	if (r->rc) {
		return;
	}
	if (rs->digests) {
		rs->have[i] = true;
	}
	if (whole) {
		got = map.len < sizeof(head) ? map.len : sizeof(head);
		memcpy(head, map.data, got);
	}
	if (kw_elf_is_elf(head, got) || kw_wasm_is_wasm(head, got)) {
		binary_member(rs, i, map.data, map.len, head, got);
	}
	kw_wheel_unmap(&map);
}

/*
 * The ELF and wasm members, each read on ctx's pool, the largest first:
 * one big library started last would be the tail that one thread reads
 * while the others idle. digests/have (per member index, may be NULL):
 * the sha256 of each one, from the read that parses it. The first failure
 * in wheel order is the one returned, as reading them one after another
 * would give: the pool stops starting reads after a failure, so the
 * members before it in wheel order that were not read are read then, in
 * order, up to the first that fails.
 */
static int read_members(struct kw_ctx *ctx, struct kw_audit *a, struct kw_wheel *w, unsigned char (*digests)[32],
			bool *have, struct kw_error *err)
{
	size_t n = kw_wheel_member_count(w), i, k = 0;
	struct reads rs = { w, digests, have, NULL, NULL };
	int rc = 0;

	rs.r = kw_calloc(n ? n : 1, sizeof(*rs.r));
	rs.order = kw_calloc(n ? n : 1, sizeof(*rs.order));
	if (!rs.r || !rs.order) {
		free(rs.r);
		free(rs.order);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		rs.order[i].size = kw_wheel_member(w, i)->size;
		rs.order[i].i = i;
	}
	kw_sort_largest_first(rs.order, n);
	if (kw_pool_run_until(ctx->pool, n, read_member, &rs) < n) {
		size_t first = 0;

		while (first < n && !(rs.r[first].ran && rs.r[first].rc)) {
			first++;
		}
		for (i = 0; i < first; i++) {
			if (!rs.r[i].ran) {
				read_one(&rs, i);
				if (rs.r[i].rc) {
					break;
				}
			}
		}
	}
	free(rs.order);
	for (i = 0; i < n; i++) {
		k += rs.r[i].binary;
	}
	/* Every member read goes into the audit, so kw_audit_free frees them whatever is returned. */
	a->members = kw_calloc(k ? k : 1, sizeof(*a->members));
	for (i = 0; i < n; i++) {
		if (!rc && rs.r[i].rc) {
			rc = kw_error_set(err, rs.r[i].rc, "%s", rs.r[i].err.msg);
		}
		if (rs.r[i].binary && a->members) {
			a->members[a->n_members++] = rs.r[i].m;
		} else if (rs.r[i].binary) {
			kw_wasm_info_free(rs.r[i].m.wasm);
			free(rs.r[i].m.name);
			free(rs.r[i].m.error);
			kw_elf_info_free(rs.r[i].m.info);
		}
	}
	if (!rc && !a->members) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	free(rs.r);
	return rc;
}

static bool tag_is_pure(const char *tag)
{
	return strcmp(tag, "any") == 0;
}

/* Does the audit satisfy the platform tag the wheel claims? */
static bool tag_satisfied(const struct kw_audit *a, const char *tag)
{
	const struct kw_audit_verdict *v;
	size_t i;

	if (tag_is_pure(tag)) {
		return a->n_members == 0;
	}
	if (strncmp(tag, "linux_", 6) == 0) {
		return !a->arch || strcmp(tag + 6, a->arch) == 0;
	}
	if (strncmp(tag, "manylinux", 9) != 0 && strncmp(tag, "musllinux", 9) != 0 &&
	    (strncmp(tag, "android_", 8) != 0 || a->n_verdicts == 0)) {
		return true; /* not ours to judge (android, macosx, emscripten ...) */
	}
	v = kw_audit_verdict_for(a, tag);
	if (!v) {
		return false;
	}
	/* An alias tag (manylinux2014_x86_64) names the same policy: its verdict decides. */
	for (i = 0; i < a->n_verdicts; i++) {
		if (&a->verdicts[i] == v) {
			return v->n_reasons == 0;
		}
	}
	return false;
}

static int check_tags(struct kw_audit *a)
{
	size_t i;

	a->tags_ok = true;
	for (i = 0; i < a->name.n_platforms; i++) {
		const char *t = a->name.platforms[i];

		if (!tag_satisfied(a, t)) {
			a->tags_ok = false;
			if (kw_strv_push(&a->bad_tags, t)) {
				return KW_ENOMEM;
			}
		}
	}
	return 0;
}

/*
 * The wheel spec has WHEEL list the same tag triples as the file name's
 * expansion: installers trust one and indexes the other, so a difference
 * is a wheel that says two things.
 */
static int compare_wheel_tags(struct kw_audit *a)
{
	struct kw_strv py = { 0 }, abi = { 0 }, plat = { 0 }, named = { 0 };
	size_t i, j, k;
	int rc = KW_ENOMEM;

	if (kw_strv_split(&py, a->name.python, '.') || kw_strv_split(&abi, a->name.abi, '.') ||
	    kw_strv_split(&plat, a->name.platform, '.')) {
		goto out;
	}
	for (i = 0; i < py.n; i++) {
		for (j = 0; j < abi.n; j++) {
			for (k = 0; k < plat.n; k++) {
				char *t = kw_asprintf("%s-%s-%s", py.v[i], abi.v[j], plat.v[k]);

				if (kw_strv_push_own(&named, t)) {
					goto out;
				}
			}
		}
	}
	for (i = 0; i < a->meta.n_tags; i++) {
		if (kw_strv_find(&named, a->meta.tags[i]) < 0) {
			char *m = kw_asprintf("WHEEL has Tag %s, which the file name does not", a->meta.tags[i]);

			if (kw_strv_push_own(&a->tag_mismatches, m)) {
				goto out;
			}
		}
	}
	for (i = 0; i < named.n; i++) {
		bool listed = false;

		for (j = 0; j < a->meta.n_tags && !listed; j++) {
			listed = strcmp(a->meta.tags[j], named.v[i]) == 0;
		}
		if (!listed) {
			char *m = kw_asprintf("the file name has tag %s, which WHEEL does not list", named.v[i]);

			if (kw_strv_push_own(&a->tag_mismatches, m)) {
				goto out;
			}
		}
	}
	rc = 0;
out:
	kw_strv_release(&py);
	kw_strv_release(&abi);
	kw_strv_release(&plat);
	kw_strv_release(&named);
	return rc;
}

/* The arch a platform tag names: "linux_x86_64", "manylinux2014_aarch64", "musllinux_1_2_i686". */
static const char *tag_arch(const char *tag)
{
	static const char *const known[] = { "x86_64", "i686", "aarch64", "armv7l", "armv6l", "armv5l", "ppc64le",
					     "ppc64", "s390x", "riscv64", "loongarch64", "mips64", NULL };
	const char *rest = NULL;
	size_t i;
	int skip;

	if (strncmp(tag, "linux_", 6) == 0) {
		rest = tag + 6;
	} else if (strncmp(tag, "manylinux1_", 11) == 0 || strncmp(tag, "manylinux2010_", 14) == 0 ||
		   strncmp(tag, "manylinux2014_", 14) == 0) {
		rest = strchr(tag, '_') + 1;
	} else if (strncmp(tag, "manylinux_", 10) == 0 || strncmp(tag, "musllinux_", 10) == 0) {
		/* family_MAJOR_MINOR_arch */
		rest = tag;
		for (skip = 0; rest && skip < 3; skip++) {
			rest = strchr(rest, '_');
			rest = rest ? rest + 1 : NULL;
		}
	} else if (strncmp(tag, "android_", 8) == 0) {
		/* android_API_ABI, with Android's own ABI names (PEP 738) */
		static const char *const abi[][2] = { { "arm64_v8a", "aarch64" }, { "armeabi_v7a", "armv7l" },
						      { "x86_64", "x86_64" }, { "x86", "i686" } };

		rest = strchr(tag + 8, '_');
		for (i = 0; rest && i < sizeof(abi) / sizeof(abi[0]); i++) {
			if (strcmp(rest + 1, abi[i][0]) == 0) {
				return abi[i][1];
			}
		}
		return NULL;
	}
	for (i = 0; rest && known[i]; i++) {
		if (strcmp(rest, known[i]) == 0) {
			return known[i];
		}
	}
	return NULL;
}

/* An ELF member of another architecture than the one the wheel's name gives. */
static int find_arch_mismatch(struct kw_audit *a)
{
	size_t i;

	for (i = 0; i < a->name.n_platforms && !a->name_arch; i++) {
		a->name_arch = tag_arch(a->name.platforms[i]);
	}
	for (i = 0; a->name_arch && i < a->n_members && !a->arch_mismatch; i++) {
		const struct kw_audit_member *m = &a->members[i];

		if (m->arch && !arch_fits(m->arch, a->name_arch)) {
			a->arch_mismatch = kw_asprintf("'%s' is %s code, but the wheel is named for %s", m->name,
						       m->arch, a->name_arch);
			if (!a->arch_mismatch) {
				return KW_ENOMEM;
			}
		}
	}
	return 0;
}

/* Every DT_NEEDED on libpython of a member: repair removes them, as auditwheel does. */
static int collect_drops(struct kw_audit *a)
{
	size_t i, k, cap = 0;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;

		for (k = 0; info && k < info->n_needed; k++) {
			struct kw_audit_drop *d;

			if (!kw_audit_is_libpython(info->needed[k])) {
				continue;
			}
			if (kw_grow(&a->drop_needed, &cap, a->n_drop_needed + 1, sizeof(*a->drop_needed))) {
				return KW_ENOMEM;
			}
			d = &a->drop_needed[a->n_drop_needed];
			d->member = kw_strdup(a->members[i].name);
			d->soname = kw_strdup(info->needed[k]);
			a->n_drop_needed++;
			if (!d->member || !d->soname) {
				return KW_ENOMEM;
			}
		}
	}
	return 0;
}

/* Does every verdict have a reason of this kind? (Then no policy is within repair's reach.) */
static bool every_verdict_has(const struct kw_audit *a, enum kw_reason_kind kind)
{
	size_t i, k;

	if (a->n_verdicts == 0) {
		return false;
	}
	for (i = 0; i < a->n_verdicts; i++) {
		bool found = false;

		for (k = 0; k < a->verdicts[i].n_reasons && !found; k++) {
			found = a->verdicts[i].reasons[k].kind == kind;
		}
		if (!found) {
			return false;
		}
	}
	return true;
}

/* The sentences of kw_audit.refusals, one per member and cause. */
static int collect_refusals(struct kw_audit *a)
{
	const struct kw_audit_verdict *last = a->n_verdicts ? &a->verdicts[a->n_verdicts - 1] : NULL;
	struct kw_buf b;
	size_t i, k;

	if (!last) {
		return 0;
	}
	/* Black-listed imports: named from the newest policy's verdict, when no policy escapes them. */
	if (every_verdict_has(a, KW_REASON_BLACKLIST)) {
		for (i = 0; i < last->n_reasons; i++) {
			const struct kw_audit_reason *r = &last->reasons[i];
			bool first = true;

			if (r->kind != KW_REASON_BLACKLIST) {
				continue;
			}
			/* One sentence per member and library: skip those an earlier reason began. */
			for (k = 0; k < i && first; k++) {
				const struct kw_audit_reason *q = &last->reasons[k];

				first = !(q->kind == KW_REASON_BLACKLIST && !strcmp(q->member, r->member) &&
					  !strcmp(q->lib, r->lib));
			}
			if (!first) {
				continue;
			}
			memset(&b, 0, sizeof(b));
			kw_buf_appendf(&b, "'%s' depends on black-listed symbols from %s:", r->member, r->lib);
			for (k = i; k < last->n_reasons; k++) {
				const struct kw_audit_reason *q = &last->reasons[k];

				if (q->kind == KW_REASON_BLACKLIST && !strcmp(q->member, r->member) &&
				    !strcmp(q->lib, r->lib)) {
					kw_buf_appendf(&b, " %s", q->what);
				}
			}
			kw_buf_append(&b, " (a vendored copy of the library need not define them either)");
			if (kw_strv_push_own(&a->refusals, kw_buf_take(&b))) {
				return KW_ENOMEM;
			}
		}
	}
	for (i = 0; i < last->n_reasons; i++) {
		const struct kw_audit_reason *r = &last->reasons[i];
		char *m = NULL;

		switch (r->kind) {
		case KW_REASON_ISA:
			m = kw_asprintf("'%s' needs the %s instruction set, which no policy promises "
					"(--disable-isa-ext-check to ignore)", r->member, r->what);
			break;
		case KW_REASON_UCS2:
			m = kw_asprintf("'%s' is built for a narrow-unicode (UCS2) Python 2 (imports %s), "
					"which no policy allows", r->member, r->what);
			break;
		case KW_REASON_PYFPE:
			m = kw_asprintf("'%s' uses %s (a CPython built --with-fpectl), which no policy allows",
					r->member, r->what);
			break;
		case KW_REASON_PURELIB:
			m = kw_asprintf("'%s' is an ELF file under purelib: the wheel must be platlib compliant",
					r->member);
			break;
		case KW_REASON_ARCH:
			m = kw_strdup(a->arch_mismatch ? a->arch_mismatch : "ELF members of different architectures");
			break;
		default:
			continue;
		}
		if (kw_strv_push_own(&a->refusals, m)) {
			return KW_ENOMEM;
		}
	}
	return 0;
}

const struct kw_elf_info *kw_audit_lib_info(const struct kw_audit *a, const char *soname)
{
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && k < g->n_nodes; k++) {
			if (!g->nodes[k].in_overlay && g->nodes[k].info && strcmp(g->nodes[k].name, soname) == 0) {
				return g->nodes[k].info;
			}
		}
	}
	return NULL;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int kw_audit_wheel(struct kw_ctx *ctx, const char *path, struct kw_audit **out, struct kw_error *err)
{
	return kw_audit_wheel_flags(ctx, path, 0, out, err);
}

/*
 * What the audit finds once the ELF members are parsed: the resolution of
 * every member's tree, the libraries and versions, and the verdict of each
 * policy. *r: the resolver, the caller's to free.
 */
static int assess(struct kw_ctx *ctx, struct kw_audit *a, struct kw_wheel *w, unsigned flags,
		  const struct kw_policy_set *set, struct overlay *ov, struct kw_resolver **r, struct kw_error *err)
{
	const struct kw_policy *android = NULL;
	bool all_pure = true;
	size_t i;
	int rc;

	for (i = 0; i < a->name.n_platforms; i++) {
		all_pure = all_pure && tag_is_pure(a->name.platforms[i]);
	}
	/* wasm: the same graphs and library list from the wasm resolver; Pyodide releases for policies. */
	if (kw_audit_is_wasm_wheel(a)) {
		rc = kw_audit_wasm_resolve(ctx, a, w, err);
		if (rc) {
			return rc;
		}
		if (collect_libs(a)) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		rc = kw_audit_wasm_judge(a, err);
		if (rc) {
			return rc;
		}
		return 0;
	}
	for (i = 0; i < a->n_members && !a->arch; i++) {
		a->arch = a->members[i].arch;
	}
	if (a->n_members == 0) {
		a->pure = all_pure;
		if (!all_pure) {
			a->not_elf = kw_asprintf("not an ELF platform wheel: no ELF member for platform '%s'",
						 a->name.platform);
			if (!a->not_elf) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
		if (check_tags(a)) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		return 0;
	}

	rc = kw_resolver_new(ctx, r, err);
	if (rc) {
		return rc;
	}
	ov->w = w;
	ov->parsed = kw_calloc(kw_wheel_member_count(w) ? kw_wheel_member_count(w) : 1, sizeof(*ov->parsed));
	if (!ov->parsed) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < a->n_members; i++) {
		long idx = kw_wheel_find(w, a->members[i].name);

		if (idx >= 0) {
			ov->parsed[idx] = &a->members[i];
		}
	}
	rc = kw_resolver_set_overlay(*r, OVERLAY_PREFIX, overlay_load, ov, err);
	if (rc) {
		return rc;
	}
	for (i = 0; i < a->n_members; i++) {
		struct kw_audit_member *m = &a->members[i];
		char *vpath;

		if (!m->info) {
			continue;
		}
		vpath = kw_asprintf("%s/%s", OVERLAY_PREFIX, m->name);
		if (!vpath) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		rc = kw_resolve_tree(*r, vpath, m->info, &m->graph, err);
		free(vpath);
		if (rc) {
			kw_error_prefix(err, "'%s'", a->filename);
			return rc;
		}
	}
	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;
		size_t k;

		/* As auditwheel: what the interpreter's ABI says is the extension modules' business. */
		for (k = 0; info && a->members[i].extension && k < info->n_syms; k++) {
			a->pyfpe = a->pyfpe || is_pyfpe(&info->syms[k]);
			a->ucs2 = a->ucs2 || is_ucs2(&info->syms[k]);
		}
		a->purelib_elf = a->purelib_elf || a->members[i].purelib;
		if (a->members[i].isa && !(flags & KW_AUDIT_NO_ISA_CHECK)) {
			a->unsupported_isa = true;
		}
	}
	if (collect_libs(a) || collect_symvers(a) || find_arch_mismatch(a)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	if (strncmp(a->name.platform, "android_", 8) == 0) {
		const char *why = NULL;

		a->family = KW_POLICY_ANDROID;
		android = android_policy(a, set, &why);
		if (!android && !(a->no_policy = kw_strdup(why))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	} else {
		a->family = libc_family(a);
	}
	if (a->arch && !a->no_policy) {
		rc = judge(a, ctx->pool, set, android, !(flags & KW_AUDIT_NO_ISA_CHECK), err);
		if (rc) {
			return rc;
		}
	}
	/* libpython stays needed on android: nothing to drop there. */
	if (check_tags(a) || (!a->no_policy && !android && collect_drops(a)) || collect_refusals(a)) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	return 0;
}

/* The two halves of an audit that need each other's results only at the end: run side by side. */
struct halves {
	struct kw_ctx *ctx;
	struct kw_audit *a;
	struct kw_wheel *w;
	unsigned flags;
	const struct kw_policy_set *set;
	struct overlay *ov;
	struct kw_resolver *r;
	const unsigned char (*digests)[32];
	const bool *have;
	int rc[2];
	struct kw_error err[2];
};

/*
 * Item 0 checks RECORD, hashing the members the parse did not (a batch of
 * its own); item 1 resolves and judges, which is mostly one thread's work
 * until the policies are judged: the hashing fills the other threads.
 */
static void halve(void *ud, size_t i)
{
	struct halves *h = ud;

	if (i == 0) {
		h->rc[0] = (h->flags & KW_AUDIT_NO_RECORD)
				   ? 0
				   : kw_wheel_verify_record_known(h->w, &h->a->record, h->digests, h->have, &h->err[0]);
	} else {
		h->rc[1] = assess(h->ctx, h->a, h->w, h->flags, h->set, h->ov, &h->r, &h->err[1]);
	}
}

int kw_audit_wheel_flags(struct kw_ctx *ctx, const char *path, unsigned flags, struct kw_audit **out,
			 struct kw_error *err)
{
	const struct kw_policy_set *set = NULL;
	struct kw_resolver *r = NULL;
	struct kw_wheel *w = NULL;
	struct kw_audit *a = NULL;
	struct overlay ov = { 0 };
	unsigned char (*digests)[32] = NULL;
	bool *have = NULL;
	int rc = KW_EINTERNAL;

	*out = NULL;
	rc = kw_ctx_policy(ctx, &set, err);
	if (rc) {
		goto out;
	}
	rc = kw_wheel_open(ctx, path, &w, err);
	if (rc) {
		goto out;
	}
	rc = KW_ENOMEM;
	a = kw_calloc(1, sizeof(*a));
	if (!a) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	a->best = a->sym_best = -1;
	a->path = kw_strdup(path);
	a->filename = kw_strdup(base_name(path));
	a->root = kw_strdup(ctx->root ? ctx->root : "");
	if (!a->path || !a->filename || !a->root) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	rc = kw_wheel_parse_name(a->filename, &a->name, err);
	if (rc) {
		goto out;
	}
	rc = kw_wheel_read_meta(w, &a->meta, err);
	if (rc) {
		goto out;
	}
	if (compare_wheel_tags(a)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	/* ELF members are hashed while they are read for parsing: each member is inflated once. */
	if (!(flags & KW_AUDIT_NO_RECORD)) {
		size_t nm = kw_wheel_member_count(w);

		digests = kw_calloc(nm ? nm : 1, sizeof(*digests));
		have = kw_calloc(nm ? nm : 1, sizeof(*have));
		if (!digests || !have) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	rc = read_members(ctx, a, w, digests, have, err);
	if (rc) {
		goto out;
	}
	{
		struct halves h = { ctx, a, w, flags, set, &ov, NULL, (const unsigned char (*)[32])digests, have,
				    { 0, 0 }, { { 0 }, { 0 } } };

		kw_pool_run(ctx->pool, 2, halve, &h);
		r = h.r;
		/* The RECORD's failure first, as when it was checked before the rest. */
		rc = h.rc[0] ? h.rc[0] : h.rc[1];
		if (rc) {
			*err = h.err[h.rc[0] ? 0 : 1];
			goto out;
		}
	}
	if (a->arch && !a->wasm) {
		a->best_tag = a->best >= 0 ? kw_strdup(a->verdicts[a->best].tag)
					   : kw_asprintf("linux_%s", a->arch);
		a->sym_tag = a->sym_best >= 0 ? kw_strdup(a->verdicts[a->sym_best].tag)
					      : kw_asprintf("linux_%s", a->arch);
		if (!a->best_tag || !a->sym_tag) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	a->resolver = r;
	r = NULL;
	*out = a;
	a = NULL;
	rc = 0;
out:
	free(ov.parsed);
	free(digests);
	free(have);
	kw_audit_free(a);
	kw_resolver_free(r);
	kw_wheel_free(w);
	return rc;
}
