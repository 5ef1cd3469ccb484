/* SPDX-License-Identifier: MIT */
/*
 * repair's plan, made from the audit before anything is written: which
 * policy the wheel is repaired to, which libraries are vendored under which
 * names, and the new file name's tags.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static bool excluded(const struct kw_repair_opts *o, const char *soname)
{
	size_t i;

	for (i = 0; i < o->n_exclude; i++) {
		if (kw_glob_match(o->exclude[i], soname)) {
			return true;
		}
	}
	return false;
}

/* --exclude matches the DT_NEEDED name, or the path a system library resolved to (a directory glob). */
static bool excluded_node(const struct kw_repair_opts *o, const struct kw_dep_node *n)
{
	return excluded(o, n->name) || (!n->in_overlay && n->realpath && excluded(o, n->realpath));
}

/*
 * "libpython3.11.so.1.0", "libpython2.7m.so": the names auditwheel treats as
 * libpython. The interpreter provides those symbols itself; a wheel must not
 * link one.
 */
static bool is_libpython(const char *so)
{
	/* The audit's rule, so repair removes exactly the entries show lists for removal. */
	return kw_audit_is_libpython(so);
}

/* A libpython entry repair removes: everywhere but on Android, where the app's interpreter provides it. */
bool repair_drops_libpython(const struct job *j, const char *so)
{
	return !j->android && is_libpython(so);
}

/* A library cut from every tree: libpython (its DT_NEEDED goes) or one the user excluded. */
static bool cut_node(const struct job *j, const struct kw_dep_node *n)
{
	return repair_drops_libpython(j, n->name) || excluded_node(j->o, n);
}

/* SHA-256 of a whole file, left in s, and its size. */
static int hash_file(const char *path, struct kw_sha256 *s, uint64_t *size, struct kw_error *err)
{
	unsigned char buf[1 << 16];
	ssize_t n;
	int fd, rc;

	*size = 0;
	/* A library found on a search path may have become a FIFO since: refuse it, do not block. */
	rc = kw_open_regular(path, &fd, NULL, err);
	if (rc) {
		return rc;
	}
	kw_sha256_init(s);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			int e = errno;

			close(fd);
			return kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(e));
		}
		kw_sha256_update(s, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	close(fd);
	return 0;
}

static int sha256_file(const char *path, char hex[65], struct kw_error *err)
{
	struct kw_sha256 s;
	unsigned char d[32];
	uint64_t size;
	int rc = hash_file(path, &s, &size, err);

	if (rc) {
		return rc;
	}
	kw_sha256_final(&s, d);
	kw_hex(d, 32, hex);
	return 0;
}

/* ---- choosing the policy ---------------------------------------------- */

static long verdict_index(const struct kw_audit *a, const struct kw_audit_verdict *v)
{
	return v ? (long)(v - a->verdicts) : -1;
}

/*
 * A reason that comes from a library cut from the trees (or only reached
 * through one) no longer holds: auditwheel does not look at what it leaves out.
 */
static bool reason_dropped(const struct job *j, const struct kw_audit_reason *r)
{
	if (r->member && kw_strv_find(&j->dropped, r->member) >= 0) {
		return true;
	}
	/* A symbol version's library is the one providing it (libc), not one left out. */
	return r->kind != KW_REASON_SYMVER && r->lib && (repair_drops_libpython(j, r->lib) || excluded(j->o, r->lib));
}

/*
 * Grafting cures a missing library and nothing else: symbol versions,
 * PyFPE_jbuf, the policy's architecture or libc, and black-listed imports
 * (the vendored copy is the library the import was forbidden from, so the
 * module would bind to a copy that may not define it: auditwheel refuses
 * these too) all block, as does any kind the audit may add. A reason about
 * libpython is cured by removing the entry (reason_dropped).
 */
static bool blocking(const struct job *j, const struct kw_audit_verdict *v, const struct kw_audit_reason **why)
{
	size_t i;

	for (i = 0; i < v->n_reasons; i++) {
		if (v->reasons[i].kind != KW_REASON_LIB && !reason_dropped(j, &v->reasons[i])) {
			*why = &v->reasons[i];
			return true;
		}
	}
	return false;
}

static int too_new(const struct job *j, const struct kw_audit_verdict *v, const char *tag, struct kw_error *err)
{
	const struct kw_audit *a = j->a;
	struct kw_buf b = { 0 };
	size_t i, shown = 0, total = 0;
	bool black = false;
	char *msg;
	int rc;

	for (i = 0; i < v->n_reasons; i++) {
		black = black || (v->reasons[i].kind == KW_REASON_BLACKLIST && !reason_dropped(j, &v->reasons[i]));
	}
	for (i = 0; i < v->n_reasons; i++) {
		const struct kw_audit_reason *r = &v->reasons[i];

		/* Black-listed symbols are the whole story when there are any: name only those. */
		if (r->kind == KW_REASON_LIB || (black && r->kind != KW_REASON_BLACKLIST) || reason_dropped(j, r)) {
			continue;
		}
		total++;
		if (shown == 3) {
			continue;
		}
		if (r->kind == KW_REASON_SYMVER) {
			kw_buf_appendf(&b, "%s%s needs %s from %s", shown ? "; " : "", r->member ? r->member : "?",
				       r->what ? r->what : "?", r->lib ? r->lib : "?");
		} else if (r->kind == KW_REASON_BLACKLIST) {
			kw_buf_appendf(&b, "%s%s imports %s from %s", shown ? "; " : "", r->member ? r->member : "?",
				       r->what ? r->what : "?", r->lib ? r->lib : "?");
		} else if (r->kind == KW_REASON_ISA) {
			kw_buf_appendf(&b, "%s%s needs the %s instruction set (--disable-isa-ext-check to ignore)",
				       shown ? "; " : "", r->member ? r->member : "?", r->what ? r->what : "?");
		} else {
			kw_buf_appendf(&b, "%s%s: %s%s%s", shown ? "; " : "", r->member ? r->member : "wheel",
				       kw_reason_kind_str(r->kind), r->what ? " " : "", r->what ? r->what : "");
		}
		shown++;
	}
	msg = kw_buf_take(&b);
	if (!msg) {
		return oom(err);
	}
	if (black) {
		rc = kw_error_set(err, KW_EPOLICY, "'%s': cannot repair to %s: it depends on black-listed symbols: %s%s",
				  a->filename, tag, msg, total > shown ? "; ..." : "");
	} else {
		rc = kw_error_set(err, KW_EPOLICY, "'%s': cannot reach %s: %s%s (best reachable: %s)", a->filename, tag,
				  msg, total > shown ? "; ..." : "", a->sym_tag ? a->sym_tag : "none");
	}
	free(msg);
	return rc;
}

/* A policy's tag and its aliases' ("manylinux_2_17_x86_64", "manylinux2014_x86_64"), once each. */
static int push_tags(struct kw_strv *sv, const struct kw_audit_verdict *v, const char *arch, struct kw_error *err)
{
	const struct kw_policy *p = v->policy;
	struct kw_policy alias = *p;
	size_t i;

	/* An android verdict carries the wheel's own tag (API level, ABI), which stays. */
	if (p->family == KW_POLICY_ANDROID) {
		return kw_strv_push_unique(sv, v->tag) ? oom(err) : 0;
	}

	for (i = 0; i <= p->n_aliases; i++) {
		char *t;

		alias.name = i ? p->aliases[i - 1] : p->name;
		t = kw_policy_tag(&alias, arch);
		if (!t || kw_strv_push_unique(sv, t)) {
			free(t);
			return oom(err);
		}
		free(t);
	}
	return 0;
}

static bool is_auto(const char *plat)
{
	return !plat || strcmp(plat, "auto") == 0;
}

/*
 * The target, as auditwheel picks it: "auto" is the most compatible tag that
 * grafting can reach. A requested tag must itself be reachable; unless
 * --only-plat, a more compatible reachable tag is added in front of it (the
 * wheel then carries both) and decides what is grafted.
 */
int repair_choose(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	const struct kw_audit_reason *why = NULL;
	long best = -1, i;
	int rc;

	for (i = 0; i < (long)a->n_verdicts; i++) {
		if (!blocking(j, &a->verdicts[i], &why)) {
			best = i;
			break;
		}
	}
	if (!is_auto(j->o->plat)) {
		const struct kw_audit_verdict *req = kw_audit_verdict_for(a, j->o->plat);
		long ri = verdict_index(a, req);

		if (!req) {
			return kw_error_set(err, KW_EREQUEST, "'%s': %s is not a %s policy for %s", a->filename, j->o->plat,
					    a->family == KW_POLICY_MUSLLINUX ? "musllinux" : "manylinux",
					    a->arch ? a->arch : "this architecture");
		}
		if (blocking(j, req, &why)) {
			return too_new(j, req, j->o->plat, err);
		}
		j->v = req;
		if (!j->o->only_plat && best >= 0 && best < ri) {
			j->v = &a->verdicts[best];
			rc = push_tags(&j->plats, j->v, a->arch, err);
			if (rc) {
				return rc;
			}
		}
		return push_tags(&j->plats, req, a->arch, err);
	}
	if (best < 0) {
		const struct kw_audit_verdict *last = &a->verdicts[a->n_verdicts - 1];

		return too_new(j, last, last->tag, err);
	}
	j->v = &a->verdicts[best];
	return push_tags(&j->plats, j->v, a->arch, err);
}

/*
 * Which libraries stay in the trees: a breadth-first walk of each member's
 * graph that does not enter a cut library, so what only a cut library needs
 * is left out with it, as auditwheel's tree never holds them.
 */
int repair_plan_reach(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	struct kw_strv reached = { 0 };
	size_t *queue = NULL, i, k;
	int rc = 0;

	j->reach = kw_calloc(a->n_members + 1, sizeof(*j->reach));
	if (!j->reach) {
		return oom(err);
	}
	for (i = 0; i < a->n_members && !rc; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;
		size_t head = 0, tail = 0;

		if (!g || g->n_nodes == 0) {
			continue;
		}
		j->reach[i] = kw_calloc(g->n_nodes, sizeof(**j->reach));
		queue = kw_calloc(g->n_nodes, sizeof(*queue));
		if (!j->reach[i] || !queue) {
			rc = oom(err);
			break;
		}
		j->reach[i][0] = true;
		queue[tail++] = 0;
		while (head < tail && !rc) {
			size_t ni = queue[head++];
			const struct kw_dep_node *n = &g->nodes[ni];

			for (k = 0; k < n->n_deps && !rc; k++) {
				size_t d = n->deps[k];

				if (d >= g->n_nodes || j->reach[i][d]) {
					continue;
				}
				if (cut_node(j, &g->nodes[d])) {
					if (ni == 0 && is_libpython(g->nodes[d].name)) {
						j->has_libpython = true;
					}
					if (!is_libpython(g->nodes[d].name) && excluded_node(j->o, &g->nodes[d]) &&
					    kw_strv_push_unique(&j->res->excluded, g->nodes[d].name)) {
						rc = oom(err);
					}
					continue;
				}
				j->reach[i][d] = true;
				queue[tail++] = d;
			}
		}
		free(queue);
		queue = NULL;
		for (k = 1; !rc && k < g->n_nodes; k++) {
			if (j->reach[i][k] && g->nodes[k].path && kw_strv_push_unique(&reached, g->nodes[k].path)) {
				rc = oom(err);
			}
		}
	}
	for (i = 0; i < a->n_members && !rc; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && j->reach[i] && k < g->n_nodes && !rc; k++) {
			const char *path = g->nodes[k].path;

			if (!j->reach[i][k] && path && kw_strv_find(&reached, path) < 0 &&
			    kw_strv_push_unique(&j->dropped, path)) {
				rc = oom(err);
			}
		}
	}
	kw_strv_release(&reached);
	return rc;
}

/* ---- what to graft ---------------------------------------------------- */

long repair_find_inst_by_real(const struct job *j, const char *realpath)
{
	size_t i;

	for (i = 0; i < j->n_inst; i++) {
		if (strcmp(j->inst[i].realpath, realpath) == 0) {
			return (long)i;
		}
	}
	return -1;
}

/* Longest stem and suffix a grafted name keeps: with the hash it stays far below NAME_MAX. */
#define GRAFT_PART_MAX 160

/* Append p[0..n) with every byte outside [A-Za-z0-9._+-] (and a leading '.') as '_'. */
static void append_plain(struct kw_buf *b, const char *p, size_t n, bool first)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '_' || c == '+' || c == '-';

		kw_buf_append_n(b, ok && !(first && i == 0 && c == '.') ? &c : "_", 1);
	}
}

/*
 * The file name of a grafted copy: the library's own file name (never the
 * DT_NEEDED string, which the wheel chose), stem "-" 8 hex digits of its
 * sha256, then the ".so..." suffix if it has one. Built from a safe set of
 * bytes only, so it is one plain, visible, ASCII path component: no '/', no
 * "..", no control character, nothing a reader refuses as a member name.
 */
static char *graft_name(const char *realpath, const char *sha)
{
	const char *b = base_name(realpath), *so = strstr(b, ".so");
	size_t stem = so ? (size_t)(so - b) : strlen(b), tail = so ? strlen(so) : 0;
	struct kw_buf out = { 0 };

	append_plain(&out, b, stem < GRAFT_PART_MAX ? stem : GRAFT_PART_MAX, true);
	kw_buf_appendf(&out, "-%.8s", sha);
	if (so) {
		append_plain(&out, so, tail < GRAFT_PART_MAX ? tail : GRAFT_PART_MAX, false);
	}
	return kw_buf_take(&out);
}

/* Aliases of one library under several real paths share content: graft once. sha is its digest. */
static int add_inst(struct job *j, const struct kw_dep_graph *g, const struct kw_dep_node *n, const char *sha,
		    size_t *cap, struct kw_error *err)
{
	struct inst *in;
	size_t i;

	if (repair_find_inst_by_real(j, n->realpath) >= 0) {
		return 0;
	}
	for (i = 0; i < j->n_inst; i++) {
		if (strcmp(j->inst[i].sha, sha) == 0 && strcmp(j->inst[i].soname, n->name) == 0) {
			return 0;
		}
	}
	if (kw_grow(&j->inst, cap, j->n_inst + 1, sizeof(*j->inst))) {
		return oom(err);
	}
	in = &j->inst[j->n_inst++];
	memset(in, 0, sizeof(*in));
	in->src = kw_ctx_rooted(j->ctx, n->realpath);
	memcpy(in->sha, sha, sizeof(in->sha));
	in->soname = kw_strdup(n->name);
	in->realpath = kw_strdup(n->realpath);
	in->newname = graft_name(n->realpath, sha);
	in->node = n;
	in->graph = g;
	if (!in->src || !in->soname || !in->realpath || !in->newname) {
		return oom(err);
	}
	for (i = 0; i + 1 < j->n_inst; i++) {
		/* Names that differ only in case collide on extraction too. */
		if (strcasecmp(j->inst[i].newname, in->newname) == 0) {
			return kw_error_set(err, KW_EUNSUPPORTED,
					    "'%s': two libraries would be grafted as '%s' and '%s'", j->a->filename,
					    j->inst[i].newname, in->newname);
		}
	}
	return 0;
}

/* A library the plan reaches, in the order it reaches them, and the file it reads for its digest. */
struct reached {
	const struct kw_dep_node *node;
	const struct kw_dep_graph *graph;
	size_t file;               /* index in the plan's files */
};

/* One file to hash: every library's digest is taken on the pool, a failure in its own slot. */
struct digest {
	char *src;                 /* rooted path */
	char sha[65];
	struct kw_error err;
};

static int digest_task(void *ud, size_t i)
{
	struct digest *d = &((struct digest *)ud)[i];

	return sha256_file(d->src, d->sha, &d->err);
}

/*
 * The libraries reached, each file hashed once, all on the pool (a closure
 * can be 500 MB, too much to read on one core), then taken in the order
 * they were reached, so the plan and its first failure are what one pass
 * in that order gives.
 */
static int add_reached(struct job *j, const struct reached *r, size_t n_r, struct digest *d, size_t n_d,
		       struct kw_error *err)
{
	size_t i, cap = 0, failed = kw_pool_run_until(j->ctx->pool, n_d, digest_task, d);
	int rc = 0;

	for (i = 0; i < n_r && !rc; i++) {
		/* A failure to read is reported where the pass in order would have met it. */
		if (r[i].file == failed) {
			return kw_error_set(err, d[failed].err.code ? d[failed].err.code : KW_EIO, "%s", d[failed].err.msg);
		}
		rc = add_inst(j, r[i].graph, r[i].node, d[r[i].file].sha, &cap, err);
	}
	return rc;
}

/* Who needs node k of member's graph g, for a message: the member or a library. */
static const char *needed_by(const struct kw_dep_graph *g, size_t k, const char *member)
{
	const char *by = member;
	size_t p, q;

	for (p = 0; p < g->n_nodes; p++) {
		for (q = 0; q < g->nodes[p].n_deps; q++) {
			if (g->nodes[p].deps[q] == k) {
				by = p == 0 ? member : g->nodes[p].name;
			}
		}
	}
	return by;
}

/*
 * A library a member could not find in its own tree may still be found when
 * that member is loaded by another member, whose DT_RPATH the loader then
 * also searches (inherited DT_RPATH): the tree of the member that loads it
 * answers, as auditwheel's fix-up of such trees does.
 */
static const struct kw_dep_node *found_through_loader(const struct job *j, size_t mi, const char *name,
						      const struct kw_dep_graph **in)
{
	const struct kw_audit *a = j->a;
	size_t i, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;
		bool loads = false;

		for (k = 1; i != mi && g && k < g->n_nodes && !loads; k++) {
			const char *m = g->nodes[k].member;

			loads = m && j->reach[i][k] && strcmp(m, a->members[mi].name) == 0;
		}
		for (k = 1; loads && k < g->n_nodes; k++) {
			const struct kw_dep_node *n = &g->nodes[k];

			if (j->reach[i][k] && strcmp(n->name, name) == 0 && n->path && n->realpath &&
			    (n->in_overlay || n->info)) {
				*in = g;
				return n;
			}
		}
	}
	return NULL;
}

int repair_plan_grafts(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	struct kw_strv missing = { 0 }; /* "soname (needed by x)", each soname once */
	struct kw_strv missing_names = { 0 };
	struct kw_buf list = { 0 };
	struct kw_strmap files = { 0 }; /* realpath to its index in d */
	struct reached *r = NULL;
	struct digest *d = NULL;
	size_t i, k, n_r = 0, cap_r = 0, n_d = 0, cap_d = 0;
	char *names = NULL;
	int rc = 0, refused = 0;

	/* Vendored: what the chosen policy does not allow, among the libraries still in the trees. */
	for (i = 0; i < j->v->graft.n; i++) {
		const char *so = j->v->graft.v[i];
		bool kept = false, cut = false;
		size_t m;

		for (m = 0; m < a->n_members; m++) {
			const struct kw_dep_graph *g = a->members[m].graph;

			for (k = 1; g && j->reach[m] && k < g->n_nodes; k++) {
				if (!g->nodes[k].in_overlay && strcmp(g->nodes[k].name, so) == 0) {
					kept = kept || j->reach[m][k];
					cut = cut || cut_node(j, &g->nodes[k]);
				}
			}
		}
		if (kept && kw_strv_push(&j->graft, so)) {
			return oom(err);
		}
		if (!kept && !cut && j->o->n_exclude && kw_strv_push_unique(&j->res->excluded_deps, so)) {
			return oom(err);
		}
		/* Matched by --exclude but reached only through another excluded library: still say so. */
		if (!kept && cut && !is_libpython(so) && kw_strv_push_unique(&j->res->excluded, so)) {
			return oom(err);
		}
	}
	for (i = 0; i < a->n_members && !refused; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && k < g->n_nodes && !refused; k++) {
			const struct kw_dep_node *n = &g->nodes[k];
			const struct kw_dep_graph *ng = g;
			long f;

			if (n->in_overlay || !j->reach[i][k] || kw_strv_find(&j->graft, n->name) < 0) {
				continue;
			}
			if (strchr(n->name, '/')) {
				/*
				 * The loader opens such an entry as a path (relative ones from
				 * its working directory): vendoring it would copy a host file
				 * the wheel picked, and only a library inside the wheel may be
				 * named so.
				 */
				/* Reported after the libraries reached before it: a pass in order meets those first. */
				refused = kw_error_set(err, KW_EHOSTILE,
						       "'%s': %s needs '%s' by path, outside the wheel: kwheel does not "
						       "vendor a library named by path",
						       a->filename, needed_by(g, k, a->members[i].name), n->name);
				break;
			}
			if (!n->path || !n->realpath || !n->info) {
				n = found_through_loader(j, i, n->name, &ng);
			}
			if (n && n->in_overlay) {
				continue;
			}
			if (!n) {
				/* Every missing library is named at once: one run tells the user all they must supply. */
				if (kw_strv_find(&missing_names, g->nodes[k].name) < 0 &&
				    (kw_strv_push(&missing_names, g->nodes[k].name) ||
				     kw_strv_push_own(&missing, kw_asprintf("%s (needed by %s)", g->nodes[k].name,
									     needed_by(g, k, a->members[i].name))))) {
					rc = oom(err);
					goto out;
				}
				continue;
			}
			f = kw_strmap_get(&files, n->realpath);
			if (f < 0) {
				f = (long)n_d;
				if (kw_grow(&d, &cap_d, n_d + 1, sizeof(*d)) || kw_strmap_add(&files, n->realpath, n_d) < 0) {
					rc = oom(err);
					goto out;
				}
				memset(&d[n_d], 0, sizeof(*d));
				if (!(d[n_d++].src = kw_ctx_rooted(j->ctx, n->realpath))) {
					rc = oom(err);
					goto out;
				}
			}
			if (kw_grow(&r, &cap_r, n_r + 1, sizeof(*r))) {
				rc = oom(err);
				goto out;
			}
			r[n_r++] = (struct reached){ n, ng, (size_t)f };
		}
	}
	rc = add_reached(j, r, n_r, d, n_d, err);
	if (!rc) {
		rc = refused;
	}
	if (!rc && missing.n) {
		for (i = 0; i < missing.n; i++) {
			kw_buf_appendf(&list, "%s%s", i ? ", " : "", missing.v[i]);
		}
		names = kw_buf_take(&list);
		rc = names ? kw_error_set(err, KW_EPOLICY,
					  "'%s': %s not found: %s; give %s with --library-path or leave %s out with "
					  "--exclude",
					  a->filename, missing.n > 1 ? "libraries" : "library", names,
					  missing.n > 1 ? "their directories" : "its directory",
					  missing.n > 1 ? "them" : "it")
			   : oom(err);
	}
out:
	for (i = 0; i < n_d; i++) {
		free(d[i].src);
	}
	free(d);
	free(r);
	kw_strmap_release(&files);
	free(names);
	kw_buf_release(&list);
	kw_strv_release(&missing);
	kw_strv_release(&missing_names);
	return rc;
}



/* ---- metadata --------------------------------------------------------- */

/* Is tag one the retagged wheel drops? The plain "linux_<arch>" tag and "any" give way to the policy's. */
bool repair_replaced_tag(const struct job *j, const char *tag)
{
	return strcmp(tag, "any") == 0 || (strncmp(tag, "linux_", 6) == 0 && strcmp(tag + 6, j->a->arch) == 0);
}

/*
 * The new file name's platforms, as auditwheel forms them: the old ones
 * without the plain linux tag, then the new ones, once each, sorted.
 */
int repair_plan_names(struct job *j, struct kw_error *err)
{
	const struct kw_wheel_name *n = &j->a->name;
	size_t i;

	for (i = 0; i < n->n_platforms; i++) {
		if ((j->o->no_update_tags || !repair_replaced_tag(j, n->platforms[i])) &&
		    kw_strv_push_unique(&j->name_plats, n->platforms[i])) {
			return oom(err);
		}
	}
	for (i = 0; !j->o->no_update_tags && i < j->plats.n; i++) {
		if (kw_strv_push_unique(&j->name_plats, j->plats.v[i])) {
			return oom(err);
		}
	}
	if (!j->o->no_update_tags) {
		kw_strv_sort(&j->name_plats);
	}
	return 0;
}

char *repair_joined(const struct kw_strv *sv, char sep)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < sv->n; i++) {
		len += strlen(sv->v[i]) + 1;
	}
	s = kw_calloc(1, len);
	for (i = 0; s && i < sv->n; i++) {
		size_t l = strlen(s);

		if (i) {
			s[l++] = sep;
		}
		strcpy(s + l, sv->v[i]);
	}
	return s;
}

char *repair_new_filename(const struct job *j, const char *plat)
{
	const struct kw_wheel_name *n = &j->a->name;

	if (n->build) {
		return kw_asprintf("%s-%s-%s-%s-%s-%s.whl", n->distribution, n->version, n->build, n->python, n->abi, plat);
	}
	return kw_asprintf("%s-%s-%s-%s-%s.whl", n->distribution, n->version, n->python, n->abi, plat);
}

bool repair_excluded_name(const struct job *j, const char *name)
{
	return excluded(j->o, name);
}

char *repair_graft_name(const char *realpath, const char *sha)
{
	return graft_name(realpath, sha);
}
