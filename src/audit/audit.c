/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/audit.h"

/* Where wheel members appear to the resolver: $ORIGIN of a member lies below it. */
#define OVERLAY_PREFIX "/.kwheel-wheel"
#define ELF_HEAD 64

struct overlay {
	struct kw_wheel *w;
};

/* Serve a candidate path below OVERLAY_PREFIX from the wheel's members. */
static int overlay_load(void *ud, const char *path, struct kw_elf_info **info, struct kw_error *err)
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
	free(a->not_elf);
	free(a->no_policy);
	free(a->best_tag);
	free(a->sym_tag);
	kw_wheel_name_release(&a->name);
	kw_wheel_meta_release(&a->meta);
	kw_record_release(&a->record);
	kw_strv_release(&a->bad_tags);
	kw_strv_release(&a->tag_mismatches);
	for (i = 0; i < a->n_members; i++) {
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
	}
	free(a->verdicts);
	kw_resolver_free(a->resolver);
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

static int add_reason(struct kw_audit_verdict *v, size_t *cap, enum kw_reason_kind kind,
		      const char *member, const char *lib, const char *what)
{
	struct kw_audit_reason *r;
	size_t i;

	/* The same reason through two paths is one reason. */
	for (i = 0; i < v->n_reasons; i++) {
		r = &v->reasons[i];
		if (r->kind == kind && !strcmp(r->member ? r->member : "", member ? member : "") &&
		    !strcmp(r->lib ? r->lib : "", lib ? lib : "") &&
		    !strcmp(r->what ? r->what : "", what ? what : "")) {
			return 0;
		}
	}
	if (kw_grow(&v->reasons, cap, v->n_reasons + 1, sizeof(*v->reasons))) {
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
	v->n_reasons++;
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

static int check_object(struct kw_audit *a, struct kw_audit_verdict *v, size_t *cap, const char *who,
			const struct kw_elf_info *info, const struct kw_dep_graph *g, bool *sym_ok, bool versions)
{
	const struct kw_policy *p = v->policy;
	size_t i, k;
	int rc;

	for (i = 0; versions && i < info->n_verneed; i++) {
		const struct kw_elf_verneed *vn = &info->verneed[i];

		/* A vendored copy answers these, whatever the system has; so does a library the wheel ships. */
		if (kw_strv_find(&v->graft, vn->file) >= 0 || from_wheel(g, vn->file)) {
			continue;
		}
		for (k = 0; k < vn->n_versions; k++) {
			if (kw_policy_allows_version(p, a->arch, vn->versions[k])) {
				continue;
			}
			*sym_ok = false;
			rc = add_reason(v, cap, KW_REASON_SYMVER, who, vn->file, vn->versions[k]);
			if (rc) {
				return rc;
			}
		}
	}
	for (i = 0; !versions && i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];

		if (s->defined) {
			continue;
		}
		for (k = 0; k < info->n_needed; k++) {
			if (kw_policy_blacklisted(p, info->needed[k], s->name)) {
				rc = add_reason(v, cap, KW_REASON_BLACKLIST, who, info->needed[k], s->name);
				/* A vendored copy is the one that import binds to, so grafting cures it. */
				if (rc || (rc = kw_strv_push_unique(&v->graft, info->needed[k]))) {
					return rc;
				}
			}
		}
		if (a->pyfpe && strcmp(s->name, "PyFPE_jbuf") == 0) {
			rc = add_reason(v, cap, KW_REASON_PYFPE, who, NULL, s->name);
			if (rc) {
				return rc;
			}
		}
	}
	return 0;
}

/* How a node is named in reasons: wheel members by their path in the wheel. */
static const char *node_label(const struct kw_audit_member *m, const struct kw_dep_graph *g, size_t k)
{
	const struct kw_dep_node *n = &g->nodes[k];

	if (k == 0) {
		return m->name;
	}
	if (n->in_overlay && n->path && strncmp(n->path, OVERLAY_PREFIX "/", sizeof(OVERLAY_PREFIX)) == 0) {
		return n->path + sizeof(OVERLAY_PREFIX);
	}
	return n->path ? n->path : n->name;
}

/*
 * Walk one member's graph as repair would graft for policy p: libraries in the
 * wheel are walked through, allowed ones end the walk, the rest must be
 * vendored and their own needs walked too.
 */
static int walk_policy(struct kw_audit_verdict *v, size_t *cap, const struct kw_audit_member *m)
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
			if (!dn->in_overlay) {
				if (policy_allows(v->policy, dn->name)) {
					continue;
				}
				rc = add_reason(v, cap, KW_REASON_LIB, node_label(m, g, ni), dn->name, NULL);
				if (rc || (rc = kw_strv_push_unique(&v->graft, dn->name))) {
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

/* A vendored library brings its own symbol versions and imports along. */
static int check_grafted(struct kw_audit *a, struct kw_audit_verdict *v, size_t *cap, bool *sym_ok)
{
	size_t i, k, j;

	for (i = 0; i < v->graft.n; i++) {
		for (k = 0; k < a->n_members; k++) {
			const struct kw_dep_graph *g = a->members[k].graph;
			bool done = false;

			for (j = 1; g && j < g->n_nodes && !done; j++) {
				const struct kw_dep_node *n = &g->nodes[j];

				if (n->in_overlay || !n->info || strcmp(n->name, v->graft.v[i]) != 0) {
					continue;
				}
				if (check_object(a, v, cap, n->path ? n->path : n->name, n->info, NULL, sym_ok, false) ||
				    check_object(a, v, cap, n->path ? n->path : n->name, n->info, NULL, sym_ok, true)) {
					return KW_ENOMEM;
				}
				done = true;
			}
			if (done) {
				break;
			}
		}
	}
	return 0;
}

static int judge(struct kw_audit *a, const struct kw_policy_set *set, struct kw_error *err)
{
	size_t i, k, cap = 0;

	for (i = 0; i < set->n_policies; i++) {
		const struct kw_policy *p = &set->policies[i];

		if (p->family != a->family || p->family == KW_POLICY_LINUX || !kw_policy_arch(p, a->arch)) {
			continue;
		}
		if (kw_grow(&a->verdicts, &cap, a->n_verdicts + 1, sizeof(*a->verdicts))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		memset(&a->verdicts[a->n_verdicts], 0, sizeof(*a->verdicts));
		a->verdicts[a->n_verdicts].policy = p;
		a->verdicts[a->n_verdicts].tag = kw_policy_tag(p, a->arch);
		if (!a->verdicts[a->n_verdicts].tag) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		a->n_verdicts++;
	}
	a->best = -1;
	a->sym_best = -1;
	for (i = 0; i < a->n_verdicts; i++) {
		struct kw_audit_verdict *v = &a->verdicts[i];
		size_t rcap = 0;
		bool sym_ok = true;

		/* First what must be vendored, then what the result still requires. */
		for (k = 0; k < a->n_members; k++) {
			if (a->members[k].info && walk_policy(v, &rcap, &a->members[k])) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
		for (k = 0; k < 2 * a->n_members; k++) {
			const struct kw_audit_member *m = &a->members[k % a->n_members];

			if (m->info && check_object(a, v, &rcap, m->name, m->info, m->graph, &sym_ok, k >= a->n_members)) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
		}
		if (check_grafted(a, v, &rcap, &sym_ok)) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		v->sym_ok = sym_ok;
		kw_strv_sort(&v->graft);
		if (v->n_reasons == 0 && a->best < 0) {
			a->best = (long)i;
		}
		if (sym_ok && a->sym_best < 0) {
			a->sym_best = (long)i;
		}
	}
	return 0;
}

static int add_lib(struct kw_audit *a, size_t *cap, const struct kw_dep_node *dn, const char *by)
{
	struct kw_audit_lib *l = NULL;
	size_t i;

	for (i = 0; i < a->n_libs; i++) {
		if (strcmp(a->libs[i].soname, dn->name) == 0 &&
		    !strcmp(a->libs[i].realpath ? a->libs[i].realpath : "",
			    dn->realpath ? dn->realpath : "")) {
			l = &a->libs[i];
			break;
		}
	}
	if (!l) {
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
	return kw_strv_push_unique(&l->needed_by, by);
}

/* Every library outside the wheel that any member reaches, and who needs it. */
static int collect_libs(struct kw_audit *a)
{
	size_t cap = 0, i, k, d;
	int rc;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		if (!g) {
			continue;
		}
		for (k = 0; k < g->n_nodes; k++) {
			const struct kw_dep_node *n = &g->nodes[k];
			const char *by = node_label(&a->members[i], g, k);

			for (d = 0; d < n->n_deps; d++) {
				size_t j = n->deps[d];

				if (j == 0 || j >= g->n_nodes || g->nodes[j].in_overlay) {
					continue;
				}
				rc = add_lib(a, &cap, &g->nodes[j], by);
				if (rc) {
					return rc;
				}
			}
		}
	}
	return 0;
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

/* digests/have (per member index, may be NULL): the sha256 of each ELF member, from the read that parses it. */
static int read_members(struct kw_audit *a, struct kw_wheel *w, unsigned char (*digests)[32], bool *have,
			struct kw_error *err)
{
	size_t n = kw_wheel_member_count(w), i, cap = 0;
	int rc;

	for (i = 0; i < n; i++) {
		const struct kw_wheel_member *wm = kw_wheel_member(w, i);
		unsigned char head[ELF_HEAD];
		struct kw_wheel_map map;
		struct kw_audit_member *m;
		struct kw_error merr = { 0 };
		size_t got = 0;

		if (wm->is_dir) {
			continue;
		}
		rc = kw_wheel_read_head(w, i, head, sizeof(head), &got, err);
		if (rc) {
			return rc;
		}
		if (!kw_elf_is_elf(head, got)) {
			continue;
		}
		if (kw_grow(&a->members, &cap, a->n_members + 1, sizeof(*a->members))) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		m = &a->members[a->n_members];
		memset(m, 0, sizeof(*m));
		m->name = kw_strdup(wm->name);
		if (!m->name) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		a->n_members++;
		/* Mapped, not read into memory: the ELF reader touches only the pages it parses. */
		rc = kw_wheel_map(w, i, &map, digests ? digests[i] : NULL, err);
		if (rc) {
			return rc;
		}
		if (digests) {
			have[i] = true;
		}
		rc = kw_elf_parse_memory(map.data, map.len, wm->name, &m->info, &merr);
		kw_wheel_unmap(&map);
		if (rc == KW_ENOMEM) {
			return kw_error_set(err, rc, "%s", merr.msg);
		}
		if (rc) {
			/* A bad ELF member is a finding about the wheel, not a reason to stop. */
			m->error = kw_strdup(merr.msg);
			if (!m->error) {
				return kw_error_set(err, KW_ENOMEM, "out of memory");
			}
			continue;
		}
		m->extension = kw_audit_is_extension(m->info, m->name);
		m->arch = kw_elf_arch(m->info);
	}
	return 0;
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
	if (strncmp(tag, "manylinux", 9) != 0 && strncmp(tag, "musllinux", 9) != 0) {
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

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int kw_audit_wheel(struct kw_ctx *ctx, const char *path, struct kw_audit **out, struct kw_error *err)
{
	return kw_audit_wheel_flags(ctx, path, 0, out, err);
}

int kw_audit_wheel_flags(struct kw_ctx *ctx, const char *path, unsigned flags, struct kw_audit **out,
			 struct kw_error *err)
{
	const struct kw_policy_set *set = NULL;
	struct kw_resolver *r = NULL;
	struct kw_wheel *w = NULL;
	struct kw_audit *a = NULL;
	struct overlay ov;
	unsigned char (*digests)[32] = NULL;
	bool *have = NULL;
	size_t i;
	bool all_pure = true;
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
	if (!a->path || !a->filename) {
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
	rc = read_members(a, w, digests, have, err);
	if (rc) {
		goto out;
	}
	rc = (flags & KW_AUDIT_NO_RECORD) ? 0
					  : kw_wheel_verify_record_known(w, &a->record, (const unsigned char (*)[32])digests,
									 have, err);
	if (rc) {
		goto out;
	}
	for (i = 0; i < a->name.n_platforms; i++) {
		all_pure = all_pure && tag_is_pure(a->name.platforms[i]);
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
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
		}
		if (check_tags(a)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		goto done;
	}

	rc = kw_resolver_new(ctx, &r, err);
	if (rc) {
		goto out;
	}
	ov.w = w;
	rc = kw_resolver_set_overlay(r, OVERLAY_PREFIX, overlay_load, &ov, err);
	if (rc) {
		goto out;
	}
	for (i = 0; i < a->n_members; i++) {
		struct kw_audit_member *m = &a->members[i];
		char *vpath;

		if (!m->info) {
			continue;
		}
		vpath = kw_asprintf("%s/%s", OVERLAY_PREFIX, m->name);
		if (!vpath) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		rc = kw_resolve_tree(r, vpath, m->info, &m->graph, err);
		free(vpath);
		if (rc) {
			kw_error_prefix(err, "'%s'", a->filename);
			goto out;
		}
	}
	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;
		size_t k;

		for (k = 0; info && k < info->n_syms; k++) {
			if (info->syms[k].defined) {
				continue;
			}
			if (strcmp(info->syms[k].name, "PyFPE_jbuf") == 0) {
				a->pyfpe = true;
			}
			if (strncmp(info->syms[k].name, "PyUnicodeUCS2_", 14) == 0) {
				a->ucs2 = true;
			}
		}
	}
	if (collect_libs(a) || collect_symvers(a)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (strncmp(a->name.platform, "android_", 8) == 0) {
		a->family = KW_POLICY_LINUX;
		a->no_policy = kw_strdup("android wheel: manylinux and musllinux policies do not apply");
		if (!a->no_policy) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	} else {
		a->family = libc_family(a);
		if (a->arch) {
			rc = judge(a, set, err);
			if (rc) {
				goto out;
			}
		}
	}
	if (check_tags(a)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
done:
	if (a->arch) {
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
	free(digests);
	free(have);
	kw_audit_free(a);
	kw_resolver_free(r);
	kw_wheel_free(w);
	return rc;
}
