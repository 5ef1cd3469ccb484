/* SPDX-License-Identifier: MIT */
/*
 * repair: audit, choose the policy, graft, relink, retag, repack.
 *
 * Everything is planned from the audit before the output is opened. ELF
 * members and grafted libraries that change are written to a private work
 * directory next to the output (so the final rename stays on one file
 * system), edited there with the patch module, and added to the new wheel
 * from disk; every other member is copied compressed, byte for byte. Peak
 * memory is bounded by the largest ELF member the audit parses, not by the
 * wheel.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kwheel/audit.h"
#include "kwheel/patch.h"
#include "kwheel/repair.h"
#include "kwheel/wheel.h"

#include "internal.h"


extern char **environ;

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
};

static int oom(struct kw_error *err)
{
	return kw_error_set(err, KW_ENOMEM, "out of memory");
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

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
static bool drops_libpython(const struct job *j, const char *so)
{
	return !j->android && is_libpython(so);
}

/* A library cut from every tree: libpython (its DT_NEEDED goes) or one the user excluded. */
static bool cut_node(const struct job *j, const struct kw_dep_node *n)
{
	return drops_libpython(j, n->name) || excluded_node(j->o, n);
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
	return r->kind != KW_REASON_SYMVER && r->lib && (drops_libpython(j, r->lib) || excluded(j->o, r->lib));
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
static int choose(struct job *j, struct kw_error *err)
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
			return kw_error_set(err, KW_EPOLICY, "'%s': %s is not a %s policy for %s", a->filename, j->o->plat,
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
static int plan_reach(struct job *j, struct kw_error *err)
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

static long find_inst_by_real(const struct job *j, const char *realpath)
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

/* Aliases of one library under several real paths share content: graft once. */
static int add_inst(struct job *j, const struct kw_dep_graph *g, const struct kw_dep_node *n, size_t *cap,
		    struct kw_error *err)
{
	struct inst *in;
	char sha[65];
	char *src;
	size_t i;
	int rc;

	if (find_inst_by_real(j, n->realpath) >= 0) {
		return 0;
	}
	src = kw_ctx_rooted(j->ctx, n->realpath);
	if (!src) {
		return oom(err);
	}
	rc = sha256_file(src, sha, err);
	if (rc) {
		free(src);
		return rc;
	}
	for (i = 0; i < j->n_inst; i++) {
		if (strcmp(j->inst[i].sha, sha) == 0 && strcmp(j->inst[i].soname, n->name) == 0) {
			free(src);
			return 0;
		}
	}
	if (kw_grow(&j->inst, cap, j->n_inst + 1, sizeof(*j->inst))) {
		free(src);
		return oom(err);
	}
	in = &j->inst[j->n_inst++];
	memset(in, 0, sizeof(*in));
	in->src = src;
	memcpy(in->sha, sha, sizeof(sha));
	in->soname = kw_strdup(n->name);
	in->realpath = kw_strdup(n->realpath);
	in->newname = graft_name(n->realpath, sha);
	in->node = n;
	in->graph = g;
	if (!in->soname || !in->realpath || !in->newname) {
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

static int plan_grafts(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	size_t i, k, cap = 0;
	int rc;

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
	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (k = 1; g && k < g->n_nodes; k++) {
			const struct kw_dep_node *n = &g->nodes[k];
			const struct kw_dep_graph *ng = g;

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
				return kw_error_set(err, KW_EHOSTILE,
						    "'%s': %s needs '%s' by path, outside the wheel: kwheel does not "
						    "vendor a library named by path",
						    a->filename, needed_by(g, k, a->members[i].name), n->name);
			}
			if (!n->path || !n->realpath || !n->info) {
				n = found_through_loader(j, i, n->name, &ng);
			}
			if (n && n->in_overlay) {
				continue;
			}
			if (!n) {
				return kw_error_set(err, KW_EPOLICY,
						    "'%s': %s not found (needed by %s); give its directory with "
						    "--library-path or leave it out with --exclude",
						    a->filename, g->nodes[k].name, needed_by(g, k, a->members[i].name));
			}
			rc = add_inst(j, ng, n, &cap, err);
			if (rc) {
				return rc;
			}
		}
	}
	return 0;
}

/* The grafted copy a node of graph g stands for, or NULL. */
static const struct inst *inst_for(const struct job *j, const struct kw_dep_node *n)
{
	long i;
	size_t k;

	if (n->in_overlay || !n->realpath || kw_strv_find(&j->graft, n->name) < 0) {
		return NULL;
	}
	i = find_inst_by_real(j, n->realpath);
	if (i >= 0) {
		return &j->inst[i];
	}
	/* Deduplicated by content under another path. */
	for (k = 0; k < j->n_inst; k++) {
		if (strcmp(j->inst[k].soname, n->name) == 0) {
			return &j->inst[k];
		}
	}
	return NULL;
}

/*
 * The renames an object needs: its DT_NEEDED entries, each matched to the
 * graph node the loader would bind it to.
 */
static int edges(const struct job *j, const struct kw_dep_graph *g, const struct kw_dep_node *n,
		 struct kw_patch_replace **out, size_t *n_out, struct kw_error *err)
{
	const struct kw_elf_info *info = n->info;
	size_t k;

	*out = NULL;
	*n_out = 0;
	if (!info) {
		return 0;
	}
	*out = kw_calloc(info->n_needed + 1, sizeof(**out));
	if (!*out) {
		return oom(err);
	}
	for (k = 0; k < info->n_needed && k < n->n_deps; k++) {
		size_t d = n->deps[k];
		const struct inst *in;

		if (d >= g->n_nodes) {
			continue;
		}
		in = inst_for(j, &g->nodes[d]);
		if (in && strcmp(info->needed[k], in->newname) != 0) {
			(*out)[*n_out].from = info->needed[k];
			(*out)[*n_out].to = in->newname;
			(*n_out)++;
		}
	}
	return 0;
}

/* ---- work files ------------------------------------------------------- */

static int run_strip(const char *path, struct kw_error *err)
{
	char *argv[] = { "strip", "-s", (char *)path, NULL };
	int rc = kw_run(argv, NULL, NULL, err);

	if (rc) {
		kw_error_prefix(err, "--strip '%s'", path);
	}
	return rc;
}

struct fd_sink {
	int fd;
	int saved_errno;   /* why a write failed, for the message */
};

static int to_fd(void *ud, const void *data, size_t len)
{
	struct fd_sink *s = ud;
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(s->fd, p, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			s->saved_errno = errno;
			return KW_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A new file in the work directory, by a name of our own making, created
 * relative to the directory we hold: O_EXCL and O_NOFOLLOW, so nothing that
 * was there before (a link included) is ever written through.
 */
static int create_work(const struct job *j, const char *path, struct kw_error *err)
{
	int fd = openat(j->workfd, base_name(path), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		return kw_error_set(err, KW_EIO, "cannot create '%s': %s", path, strerror(errno));
	}
	return fd;
}

static int finish_work(struct fd_sink *s, int rc, const char *dst, struct kw_error *err)
{
	if (close(s->fd) < 0 && rc == 0) {
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", dst, strerror(errno));
	}
	if (s->saved_errno) {
		/* The stream names only the member: say where and why the write failed. */
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", dst, strerror(s->saved_errno));
	}
	return rc;
}

static int extract(const struct job *j, size_t idx, const char *dst, struct kw_error *err)
{
	struct fd_sink s = { -1, 0 };
	int rc;

	s.fd = create_work(j, dst, err);
	if (s.fd < 0) {
		return s.fd;
	}
	rc = kw_wheel_stream(j->w, idx, to_fd, &s, err);
	return finish_work(&s, rc, dst, err);
}

/* A host library copied into the work directory (for strip, which edits in place). */
static int copy_in(const struct job *j, const char *src, const char *dst, struct kw_error *err)
{
	unsigned char buf[1 << 16];
	struct fd_sink s = { -1, 0 };
	int in = open(src, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n;

	if (in < 0) {
		return kw_error_set(err, KW_EIO, "cannot read '%s': %s", src, strerror(errno));
	}
	s.fd = create_work(j, dst, err);
	if (s.fd < 0) {
		close(in);
		return s.fd;
	}
	while (!rc && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR) {
			continue;
		}
		rc = n < 0 ? kw_error_set(err, KW_EIO, "cannot read '%s': %s", src, strerror(errno))
			   : to_fd(&s, buf, (size_t)n);
	}
	close(in);
	return finish_work(&s, rc, dst, err);
}

/* "$ORIGIN/../.." from a member's directory up to the wheel root, then down to dir. */
static char *origin_path(const char *member, const char *dir)
{
	size_t depth = 0, i, len;
	const char *p;
	char *s;

	for (p = member; *p; p++) {
		depth += *p == '/';
	}
	len = strlen("$ORIGIN") + depth * 3 + 1 + strlen(dir) + 1;
	s = kw_malloc(len);
	if (!s) {
		return NULL;
	}
	strcpy(s, "$ORIGIN");
	for (i = 0; i < depth; i++) {
		strcat(s, "/..");
	}
	strcat(s, "/");
	strcat(s, dir);
	return s;
}

/* Does "$ORIGIN/rest" from member stay inside the wheel? */
static bool origin_inside(const char *member, const char *entry)
{
	const char *rest;
	long depth = 0;
	const char *p;

	if (strncmp(entry, "$ORIGIN", 7) == 0) {
		rest = entry + 7;
	} else if (strncmp(entry, "${ORIGIN}", 9) == 0) {
		rest = entry + 9;
	} else {
		return false;
	}
	for (p = member; *p; p++) {
		depth += *p == '/';
	}
	while (*rest) {
		const char *seg;
		size_t n;

		while (*rest == '/') {
			rest++;
		}
		seg = rest;
		while (*rest && *rest != '/') {
			rest++;
		}
		n = (size_t)(rest - seg);
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (--depth < 0) {
				return false;
			}
		} else if (n > 0 && !(n == 1 && seg[0] == '.')) {
			depth++;
		}
	}
	return true;
}

/* The member's new search path: its in-wheel $ORIGIN entries, then the libraries directory. */
static char *member_rpath(const struct job *j, const char *member, const struct kw_elf_info *info)
{
	const char *cur = info->runpath ? info->runpath : info->rpath;
	char *mine = origin_path(member, j->libs_dir), *out = NULL;
	struct kw_strv keep = { 0 }, parts = { 0 };
	size_t i, len = 1;

	if (!mine || (cur && kw_strv_split(&parts, cur, ':'))) {
		kw_strv_release(&parts);
		free(mine);
		return NULL;
	}
	for (i = 0; i < parts.n; i++) {
		if (origin_inside(member, parts.v[i]) && kw_strv_push_unique(&keep, parts.v[i])) {
			goto out;
		}
	}
	if (kw_strv_push_unique(&keep, mine)) {
		goto out;
	}
	for (i = 0; i < keep.n; i++) {
		len += strlen(keep.v[i]) + 1;
	}
	out = kw_calloc(1, len);
	for (i = 0; out && i < keep.n; i++) {
		if (i) {
			strcat(out, ":");
		}
		strcat(out, keep.v[i]);
	}
out:
	free(mine);
	kw_strv_release(&keep);
	kw_strv_release(&parts);
	return out;
}

static int prepare_grafts(struct job *j, struct kw_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < j->n_inst; i++) {
		struct inst *in = &j->inst[i];
		struct kw_patch_ops ops = { 0 };
		struct kw_patch_replace *rep = NULL;
		const char *src = in->src;
		size_t n_rep = 0;

		/* Work files are named by us alone: nothing from the input is ever part of a path. */
		in->work = kw_asprintf("%s/lib-%zu", j->workdir, i);
		if (!in->work) {
			return oom(err);
		}
		rc = edges(j, in->graph, in->node, &rep, &n_rep, err);
		if (rc) {
			return rc;
		}
		if (j->o->strip) {
			rc = copy_in(j, in->src, in->work, err);
			if (!rc) {
				rc = run_strip(in->work, err);
			}
			src = in->work;
		}
		ops.set_soname = in->newname;
		ops.replace_needed = rep;
		ops.n_replace_needed = n_rep;
		if (n_rep) {
			/* Its own grafted dependencies sit next to it. */
			ops.set_rpath = "$ORIGIN";
			ops.force_rpath = !j->android;
		} else {
			ops.remove_rpath = true;
		}
		if (!rc) {
			rc = kw_patch_file(src, in->work, &ops, NULL, err);
		}
		free(rep);
		if (rc) {
			kw_error_prefix(err, "grafting %s", in->realpath);
			return rc;
		}
	}
	return 0;
}

/* "<x>.data/scripts/NAME": installers put it in bin/, away from the package its RPATH points into. */
static bool is_script(const char *member)
{
	const char *a = strchr(member, '/'), *b = a ? strchr(a + 1, '/') : NULL;

	return a && b && !strchr(b + 1, '/') && b[1] && a - member > 5 && strncmp(a - 5, ".data", 5) == 0 &&
	       b - a == 8 && strncmp(a + 1, "scripts", 7) == 0;
}

/*
 * Where a script that is an ELF program goes: "<dist>.scripts/NAME" in
 * platlib. NAME ends up in the launcher's Python source, so only plain
 * file-name characters are taken.
 */
static int script_dest(const struct job *j, const char *member, char **out, struct kw_error *err)
{
	const char *name = strrchr(member, '/') + 1, *p;

	for (p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("._+-", *p)) {
			return kw_error_set(err, KW_EUNSUPPORTED, "'%s': script '%s': only letters, digits and ._+- "
					    "can name an ELF program that is moved", j->a->filename, member);
		}
	}
	*out = kw_asprintf("%s.scripts/%s", j->a->name.distribution, name);
	if (!*out) {
		return oom(err);
	}
	if (kw_wheel_find(j->w, *out) >= 0) {
		return kw_error_set(err, KW_EINVAL, "'%s': already has a member %s", j->a->filename, *out);
	}
	return 0;
}

/* The command's launcher: it runs the moved program from the installed package. */
static char *script_launcher(const char *dest)
{
	return kw_asprintf("#!python\n"
			   "# kwheel repair moved this ELF program into the package, where its RPATH\n"
			   "# reaches the vendored libraries; this launcher runs it from there.\n"
			   "import os\n"
			   "import sys\n"
			   "import sysconfig\n"
			   "\n"
			   "os.execv(os.path.join(sysconfig.get_path(\"platlib\"), \"%s\"), sys.argv)\n",
			   dest);
}

static int prepare_members(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	size_t i, k;
	int rc;

	j->n_member_work = kw_wheel_member_count(j->w);
	j->member_work = kw_calloc(j->n_member_work + 1, sizeof(*j->member_work));
	j->member_move = kw_calloc(j->n_member_work + 1, sizeof(*j->member_move));
	if (!j->member_work || !j->member_move) {
		return oom(err);
	}
	for (i = 0; i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		struct kw_patch_replace *rep = NULL;
		struct kw_patch_ops ops = { 0 };
		struct kw_strv drop = { 0 };
		const char *dest = m->name;
		size_t n_rep = 0;
		char *rpath = NULL, *work;
		long idx;

		if (!m->graph || m->graph->n_nodes == 0) {
			continue;
		}
		rc = edges(j, m->graph, &m->graph->nodes[0], &rep, &n_rep, err);
		if (rc) {
			return rc;
		}
		/* libpython: the interpreter that imports the module provides it; the entry goes. */
		for (k = 0; k < m->info->n_needed; k++) {
			if (drops_libpython(j, m->info->needed[k]) && kw_strv_push_unique(&drop, m->info->needed[k])) {
				free(rep);
				return oom(err);
			}
		}
		if (n_rep == 0 && drop.n == 0 && !j->o->strip) {
			free(rep);
			continue;
		}
		idx = kw_wheel_find(j->w, m->name);
		if (idx < 0) {
			free(rep);
			kw_strv_release(&drop);
			return kw_error_set(err, KW_EINTERNAL, "member '%s' vanished", m->name);
		}
		work = kw_asprintf("%s/member-%zu", j->workdir, i);
		if (!work) {
			free(rep);
			kw_strv_release(&drop);
			return oom(err);
		}
		j->member_work[idx] = work;
		rc = (n_rep || drop.n) && is_script(m->name) ? script_dest(j, m->name, &j->member_move[idx], err) : 0;
		dest = j->member_move[idx] ? j->member_move[idx] : m->name;
		if (!rc) {
			rc = extract(j, (size_t)idx, work, err);
		}
		if (!rc && j->o->strip) {
			rc = run_strip(work, err);
		}
		if (!rc && n_rep) {
			rpath = member_rpath(j, dest, m->info);
			if (!rpath) {
				rc = oom(err);
			}
			ops.replace_needed = rep;
			ops.n_replace_needed = n_rep;
			ops.set_rpath = rpath;
			ops.force_rpath = !j->android; /* Android's loader reads DT_RUNPATH only */
		}
		ops.remove_needed = (const char *const *)drop.v;
		ops.n_remove_needed = drop.n;
		if (!rc && (n_rep || drop.n)) {
			rc = kw_patch_file(work, NULL, &ops, NULL, err);
		}
		for (k = 0; !rc && k < drop.n; k++) {
			if (kw_strv_push_own(&j->res->libpython, kw_asprintf("%s: %s", m->name, drop.v[k]))) {
				rc = oom(err);
			}
		}
		if (!rc && j->member_move[idx] &&
		    kw_strv_push_own(&j->res->scripts, kw_asprintf("%s -> %s", m->name, dest))) {
			rc = oom(err);
		}
		free(rep);
		free(rpath);
		kw_strv_release(&drop);
		if (rc) {
			kw_error_prefix(err, "'%s'", m->name);
			return rc;
		}
		if (kw_strv_push(&j->res->patched, m->name)) {
			return oom(err);
		}
	}
	return 0;
}

/* ---- metadata --------------------------------------------------------- */

/* Is tag one the retagged wheel drops? The plain "linux_<arch>" tag and "any" give way to the policy's. */
static bool replaced_tag(const struct job *j, const char *tag)
{
	return strcmp(tag, "any") == 0 || (strncmp(tag, "linux_", 6) == 0 && strcmp(tag + 6, j->a->arch) == 0);
}

/*
 * The new file name's platforms, as auditwheel forms them: the old ones
 * without the plain linux tag, then the new ones, once each, sorted.
 */
static int plan_names(struct job *j, struct kw_error *err)
{
	const struct kw_wheel_name *n = &j->a->name;
	size_t i;

	for (i = 0; i < n->n_platforms; i++) {
		if ((j->o->no_update_tags || !replaced_tag(j, n->platforms[i])) &&
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

static char *joined(const struct kw_strv *sv, char sep)
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

static char *new_filename(const struct job *j, const char *plat)
{
	const struct kw_wheel_name *n = &j->a->name;

	if (n->build) {
		return kw_asprintf("%s-%s-%s-%s-%s-%s.whl", n->distribution, n->version, n->build, n->python, n->abi, plat);
	}
	return kw_asprintf("%s-%s-%s-%s-%s.whl", n->distribution, n->version, n->python, n->abi, plat);
}

/* The SBOM of what was vendored and from where (sbom.c), as the caller's renderer writes it. */
static int sbom(const struct job *j, const char *out_path, char **doc, struct kw_error *err)
{
	struct kw_sbom_lib *libs = kw_calloc(j->n_inst + 1, sizeof(*libs));
	char **members = kw_calloc(j->n_inst + 1, sizeof(*members));
	size_t i;
	int rc = libs && members ? 0 : oom(err);

	for (i = 0; !rc && i < j->n_inst; i++) {
		members[i] = kw_asprintf("%s/%s", j->libs_dir, j->inst[i].newname);
		if (!members[i]) {
			rc = oom(err);
			break;
		}
		libs[i].soname = j->inst[i].soname;
		libs[i].realpath = j->inst[i].realpath;
		libs[i].path = j->inst[i].node->path;
		libs[i].sha256 = j->inst[i].sha;
		libs[i].member = members[i];
	}
	if (!rc) {
		rc = kw_repair_sbom(j->ctx, &j->a->name, base_name(out_path), libs, j->n_inst, j->o->sbom, doc, err);
	}
	for (i = 0; members && i < j->n_inst; i++) {
		free(members[i]);
	}
	free(members);
	free(libs);
	return rc;
}

/* ---- writing ---------------------------------------------------------- */

static bool replaced_cb(void *ud, const char *plat)
{
	return replaced_tag(ud, plat);
}

/*
 * The new wheel through the one rewrite of wheel/: vendored libraries
 * added, edited members replaced, moved programs added with a launcher in
 * their place, WHEEL retagged, an SBOM added, RECORD regenerated from the
 * audit's verified lines (a wheel whose RECORD does not hold was refused).
 */
static int write_wheel(struct job *j, const char *out_path, int64_t mtime, struct kw_error *err)
{
	struct kw_wheel *w = j->w;
	const char *di = kw_wheel_dist_info(w);
	char *sbom_name = kw_asprintf("%s/sboms/kwheel.cdx.json", di);
	struct kw_wheel_rewrite *rw = NULL;
	struct kw_wheel_retag rt = { (const char *const *)j->plats.v, j->plats.n, replaced_cb, j };
	size_t i;
	long old_sbom;
	int rc;

	if (!sbom_name) {
		return oom(err);
	}
	rc = kw_wheel_rewrite_new(w, &j->a->record, out_path, j->o->zip_level, mtime, &rw, err);
	if (!rc && j->o->progress) {
		kw_wheel_rewrite_on_progress(rw, j->o->progress, j->o->progress_ud);
	}
	for (i = 0; !rc && i < j->n_inst; i++) {
		char *name = kw_asprintf("%s/%s", j->libs_dir, j->inst[i].newname);

		rc = name ? kw_wheel_rewrite_add_file(rw, name, j->inst[i].work, 0755, err) : oom(err);
		free(name);
	}
	for (i = 0; !rc && i < j->n_member_work; i++) {
		if (!j->member_work[i]) {
			continue;
		}
		if (j->member_move[i]) {
			/* The program moves into the package; its command becomes a launcher. */
			char *text = script_launcher(j->member_move[i]);

			rc = text ? kw_wheel_rewrite_replace_buffer(rw, i, text, strlen(text), 0755, err) : oom(err);
			if (!rc) {
				rc = kw_wheel_rewrite_add_file(rw, j->member_move[i], j->member_work[i], 0755, err);
			}
		} else {
			rc = kw_wheel_rewrite_replace_file(rw, i, j->member_work[i], 0755, err);
		}
	}
	/* A wheel repaired before: its SBOM describes the old grafts. */
	old_sbom = kw_wheel_find(w, sbom_name);
	if (!rc && old_sbom >= 0) {
		rc = kw_wheel_rewrite_drop(rw, (size_t)old_sbom, err);
	}
	if (!rc && !j->o->no_update_tags) {
		rc = kw_wheel_rewrite_retag(rw, &rt, err);
	}
	if (!rc && j->n_inst > 0 && j->o->sbom) {
		char *doc = NULL;

		rc = sbom(j, out_path, &doc, err);
		if (!rc) {
			rc = kw_wheel_rewrite_add_buffer(rw, sbom_name, doc, strlen(doc), 0644, err);
		}
	}
	if (!rc) {
		rc = kw_wheel_rewrite_commit(rw, err);
		rw = NULL;
	}
	kw_wheel_rewrite_abort(rw);
	free(sbom_name);
	return rc;
}

/* A wheel that needs no change: the one writer, copying the archive whole. */
static int copy_as_is(struct job *j, const char *src, const char *out_path, struct kw_error *err)
{
	struct kw_wheel_writer *ww = NULL;
	int rc = kw_wheel_open(j->ctx, src, &j->w, err);

	if (!rc) {
		rc = kw_wheel_writer_new(out_path, j->o->zip_level, 0, &ww, err);
	}
	if (!rc) {
		rc = kw_wheel_writer_copy_whole(ww, j->w, err);
	}
	if (!rc) {
		rc = kw_wheel_writer_commit(ww, err);
		ww = NULL;
	}
	kw_wheel_writer_abort(ww);
	return rc;
}

void kw_repair_result_free(struct kw_repair_result *r)
{
	size_t i;

	if (!r) {
		return;
	}
	for (i = 0; i < r->n_grafts; i++) {
		free(r->grafts[i].soname);
		free(r->grafts[i].src);
		free(r->grafts[i].dest);
		free(r->grafts[i].sha256);
	}
	free(r->grafts);
	free(r->input);
	free(r->output);
	free(r->tag);
	free(r->note);
	kw_strv_release(&r->patched);
	kw_strv_release(&r->excluded);
	kw_strv_release(&r->excluded_deps);
	kw_strv_release(&r->libpython);
	kw_strv_release(&r->scripts);
	free(r);
}

/*
 * What auditwheel refuses to repair at all: ELF code in purelib (installers
 * may put it where no platform-specific code belongs), an ELF file for
 * another architecture than the file name's (retagging from the ELF would
 * hide a wrong build), and an extension built against a UCS2 Python. The
 * audit finds each; repair only words the refusal.
 */
static int refusals(const struct kw_audit *a, struct kw_error *err)
{
	size_t i;

	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].purelib) {
			return kw_error_set(err, KW_EPOLICY,
					    "'%s': invalid binary wheel: shared library %s in purelib; a wheel must be "
					    "platlib to be repaired",
					    a->filename, a->members[i].name);
		}
	}
	if (a->arch_mismatch) {
		return kw_error_set(err, KW_EPOLICY, "'%s': cannot repair: %s (tagged %s)", a->filename,
				    a->arch_mismatch, a->name.n_platforms ? a->name.platforms[0] : "?");
	}
	if (a->ucs2) {
		return kw_error_set(err, KW_EPOLICY,
				    "'%s': cannot repair: compiled against a UCS2 build of Python (PyUnicodeUCS2_*); "
				    "rebuild it against a wide-unicode Python",
				    a->filename);
	}
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* --disable-isa-ext-check: the audit then does not hold an x86-64 ISA level above the baseline against a tag. */
static unsigned audit_flags(const struct kw_repair_opts *o)
{
	return o->no_isa_check ? KW_AUDIT_NO_ISA_CHECK : 0;
}

int kw_repair_wheel(struct kw_ctx *ctx, const char *path, const struct kw_repair_opts *o,
		    struct kw_repair_result **out, struct kw_error *err)
{
	struct job j;
	char *out_path = NULL, *plat = NULL;
	int64_t mtime = o->mtime;
	size_t i;
	int rc;

	*out = NULL;
	memset(&j, 0, sizeof(j));
	j.ctx = ctx;
	j.o = o;
	j.res = kw_calloc(1, sizeof(*j.res));
	if (!j.res || !(j.res->input = kw_strdup(path))) {
		rc = oom(err);
		goto out;
	}
	j.workfd = -1;
	/* With the RECORD check, as show does it: what repair vouches for, it has verified. */
	rc = kw_audit_wheel_flags(ctx, path, audit_flags(o), &j.a, err);
	if (rc) {
		goto out;
	}
	if (j.a->record.n_problems) {
		const struct kw_record_problem *p = &j.a->record.problems[0];

		rc = kw_error_set(err, KW_EHOSTILE, "'%s': RECORD does not hold for '%s' (%s%s%s): not repaired",
				  j.a->filename, p->path ? p->path : "RECORD", kw_record_problem_str(p->kind),
				  p->detail ? ": " : "", p->detail ? p->detail : "");
		goto out;
	}
	kw_wheel_sweep_stale(o->out_dir);
	if (j.a->pure && !o->allow_pure) {
		/* cibuildwheel tells a pure wheel by this refusal, as auditwheel's (exit status 1). */
		rc = kw_error_set(err, KW_EPOLICY,
				  "'%s': not a platform wheel: no ELF member (copy it with --allow-pure-python-wheel)",
				  j.a->filename);
		goto out;
	}
	if (j.a->pure) {
		out_path = kw_asprintf("%s/%s", o->out_dir, j.a->filename);
		j.res->action = KW_REPAIR_COPIED;
		j.res->note = kw_strdup("pure wheel (no ELF member, platform 'any'): nothing to repair, copied");
		j.res->tag = kw_strdup(j.a->name.platform);
		if (!out_path || !j.res->note || !j.res->tag) {
			rc = oom(err);
			goto out;
		}
		rc = same_file(path, out_path) ? 0 : copy_as_is(&j, path, out_path, err);
		goto done;
	}
	if (j.a->not_elf || j.a->no_policy) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': %s", j.a->filename, j.a->not_elf ? j.a->not_elf : j.a->no_policy);
		goto out;
	}
	for (i = 0; i < j.a->n_members; i++) {
		if (j.a->members[i].error) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': member %s", j.a->filename, j.a->members[i].error);
			goto out;
		}
	}
	rc = refusals(j.a, err);
	if (rc) {
		goto out;
	}
	if (!j.a->arch || j.a->n_verdicts == 0) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': no manylinux or musllinux policy applies (architecture %s)",
				  j.a->filename, j.a->arch ? j.a->arch : "unknown");
		goto out;
	}
	j.android = j.a->family == KW_POLICY_ANDROID;
	rc = plan_reach(&j, err);
	if (!rc) {
		rc = choose(&j, err);
	}
	if (!rc) {
		rc = plan_grafts(&j, err);
	}
	/* Android's loader honours DT_RUNPATH from API level 24 on: below it a graft would not be found. */
	if (!rc && j.android && j.graft.n > 0 && j.v->policy->major < 24) {
		rc = kw_error_set(err, KW_EPOLICY, "'%s': cannot graft %s: RUNPATH needs Android API level 24 or higher",
				  j.a->filename, j.graft.v[0]);
	}
	if (!rc) {
		rc = plan_names(&j, err);
	}
	if (rc) {
		goto out;
	}
	plat = joined(&j.name_plats, '.');
	j.libs_dir = kw_asprintf("%s%s", j.a->name.distribution, o->lib_sdir ? o->lib_sdir : ".libs");
	if (!plat || !j.libs_dir || !(j.res->tag = kw_strdup(plat))) {
		rc = oom(err);
		goto out;
	}
	/* Already what it would become: say so and copy, as auditwheel does. */
	if (j.n_inst == 0 && !o->strip && !j.has_libpython && strcmp(plat, j.a->name.platform) == 0) {
		out_path = kw_asprintf("%s/%s", o->out_dir, j.a->filename);
		j.res->action = KW_REPAIR_COPIED;
		j.res->note = kw_asprintf("already %s with no external library to vendor: copied", plat);
		if (!out_path || !j.res->note) {
			rc = oom(err);
			goto out;
		}
		rc = same_file(path, out_path) ? 0 : copy_as_is(&j, path, out_path, err);
		goto done;
	}
	out_path = new_filename(&j, plat);
	if (out_path) {
		char *full = kw_asprintf("%s/%s", o->out_dir, out_path);

		free(out_path);
		out_path = full;
	}
	if (!out_path) {
		rc = oom(err);
		goto out;
	}
	if (same_file(path, out_path)) {
		rc = kw_error_set(err, KW_EINVAL, "'%s': the output would overwrite the input", j.a->filename);
		goto out;
	}
	rc = kw_wheel_temp_dir(o->out_dir, ".kwheel-work", &j.workdir, &j.workfd, err);
	if (rc) {
		goto out;
	}
	/* A graft named like a member (or but for case) is refused by the rewrite, before anything is written. */
	rc = kw_wheel_open(ctx, path, &j.w, err);
	if (!rc && o->progress) {
		o->progress(o->progress_ud, "grafting and relinking", 0, 0);
	}
	if (!rc) {
		rc = prepare_grafts(&j, err);
	}
	if (!rc) {
		rc = prepare_members(&j, err);
	}
	if (rc) {
		goto out;
	}
	/* The report first: once the wheel is renamed into place nothing may fail. */
	j.res->action = KW_REPAIR_REPAIRED;
	j.res->grafts = kw_calloc(j.n_inst + 1, sizeof(*j.res->grafts));
	if (!j.res->grafts) {
		rc = oom(err);
		goto out;
	}
	for (i = 0; i < j.n_inst; i++) {
		struct kw_repair_graft *g = &j.res->grafts[j.res->n_grafts++];

		g->soname = kw_strdup(j.inst[i].soname);
		g->src = kw_strdup(j.inst[i].realpath);
		g->dest = kw_asprintf("%s/%s", j.libs_dir, j.inst[i].newname);
		g->sha256 = kw_strdup(j.inst[i].sha);
		if (!g->soname || !g->src || !g->dest || !g->sha256) {
			rc = oom(err);
			goto out;
		}
	}
	rc = write_wheel(&j, out_path, mtime, err);
	if (rc) {
		goto out;
	}
done:
	if (!rc) {
		j.res->output = out_path;
		out_path = NULL;
		*out = j.res;
		j.res = NULL;
	}
out:
	kw_wheel_temp_dir_remove(j.workdir, j.workfd);
	for (i = 0; i < j.n_inst; i++) {
		free(j.inst[i].soname);
		free(j.inst[i].realpath);
		free(j.inst[i].src);
		free(j.inst[i].newname);
		free(j.inst[i].work);
	}
	free(j.inst);
	for (i = 0; i < j.n_member_work; i++) {
		free(j.member_work ? j.member_work[i] : NULL);
		free(j.member_move ? j.member_move[i] : NULL);
	}
	for (i = 0; j.a && j.reach && i < j.a->n_members; i++) {
		free(j.reach[i]);
	}
	free(j.member_work);
	free(j.member_move);
	free(j.reach);
	kw_strv_release(&j.graft);
	kw_strv_release(&j.plats);
	kw_strv_release(&j.name_plats);
	kw_strv_release(&j.dropped);
	free(j.libs_dir);
	free(plat);
	free(out_path);
	kw_wheel_free(j.w);
	kw_audit_free(j.a);
	kw_repair_result_free(j.res);
	return rc;
}
