/* SPDX-License-Identifier: MIT */
/*
 * repair's work files: the grafted libraries and changed ELF members
 * written to the private work directory (created relative to it, never
 * through a link) and edited there with the patch module, each pointed at
 * the grafted copies of what it needs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/patch.h"

#include "internal.h"

/* The grafted copy a node of graph g stands for, or NULL. */
static const struct inst *inst_for(const struct job *j, const struct kw_dep_node *n)
{
	long i;
	size_t k;

	if (n->in_overlay || !n->realpath || kw_strv_find(&j->graft, n->name) < 0) {
		return NULL;
	}
	i = repair_find_inst_by_real(j, n->realpath);
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

/* One piece of work file preparation, made on the pool: its failure, in its own slot. */
struct prep {
	struct job *j;
	struct kw_error *errs;      /* per item */
	struct kw_strv *drops;      /* prepare_members: per audit member, the libpython entries removed */
	bool *patched;              /* prepare_members: per audit member, a work file was made */
};

/* Graft i: copied (stripped) into the work directory and relinked to the other grafts. */
static int prepare_graft(void *ud, size_t i)
{
	struct prep *pp = ud;
	struct job *j = pp->j;
	struct kw_error *err = &pp->errs[i];
	struct inst *in = &j->inst[i];
	struct kw_patch_ops ops = { 0 };
	struct kw_patch_replace *rep = NULL;
	const char *src = in->src;
	size_t n_rep = 0;
	int rc;

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
	ops.scratch = true; /* in the work directory, copied into the wheel, then deleted */
	if (!rc) {
		rc = kw_patch_file(src, in->work, &ops, NULL, err);
	}
	free(rep);
	if (rc) {
		kw_error_prefix(err, "grafting %s", in->realpath);
	}
	return rc;
}

/* Run fn over n items on the pool; the first failure in order is the one returned, as one after another. */
static int prepare_all(struct prep *pp, size_t n, int (*fn)(void *ud, size_t i), struct kw_error *err)
{
	size_t failed;

	pp->errs = kw_calloc(n ? n : 1, sizeof(*pp->errs));
	if (!pp->errs) {
		return oom(err);
	}
	failed = kw_pool_run_until(pp->j->ctx->pool, n, fn, pp);
	if (failed < n) {
		int code = pp->errs[failed].code ? pp->errs[failed].code : KW_EINTERNAL;

		return kw_error_set(err, code, "%s", pp->errs[failed].msg);
	}
	return 0;
}

int repair_prepare_grafts(struct job *j, struct kw_error *err)
{
	struct prep pp = { j, NULL, NULL, NULL };
	size_t i;
	int rc;

	/* Work files are named by us alone: nothing from the input is ever part of a path. */
	for (i = 0; i < j->n_inst; i++) {
		j->inst[i].work = kw_asprintf("%s/lib-%zu", j->workdir, i);
		if (!j->inst[i].work) {
			return oom(err);
		}
	}
	/* Each graft is its own file: all of them at once on the pool, each relinked to the others' new names. */
	rc = prepare_all(&pp, j->n_inst, prepare_graft, err);
	free(pp.errs);
	return rc;
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
char *repair_script_launcher(const char *dest)
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

/* Audit member i: if it needs an edit, extracted into the work directory and relinked to the grafts. */
static int prepare_member(void *ud, size_t i)
{
	struct prep *pp = ud;
	struct job *j = pp->j;
	struct kw_error *err = &pp->errs[i];
	const struct kw_audit_member *m = &j->a->members[i];
	struct kw_patch_replace *rep = NULL;
	struct kw_patch_ops ops = { 0 };
	struct kw_strv *drop = &pp->drops[i];
	const char *dest = m->name;
	size_t n_rep = 0, k;
	char *rpath = NULL, *work;
	long idx;
	int rc;

	if (!m->graph || m->graph->n_nodes == 0) {
		return 0;
	}
	rc = edges(j, m->graph, &m->graph->nodes[0], &rep, &n_rep, err);
	if (rc) {
		return rc;
	}
	/* libpython: the interpreter that imports the module provides it; the entry goes. */
	for (k = 0; k < m->info->n_needed; k++) {
		if (repair_drops_libpython(j, m->info->needed[k]) && kw_strv_push_unique(drop, m->info->needed[k])) {
			free(rep);
			return oom(err);
		}
	}
	if (n_rep == 0 && drop->n == 0 && !j->o->strip) {
		free(rep);
		return 0;
	}
	idx = kw_wheel_find(j->w, m->name);
	if (idx < 0) {
		free(rep);
		return kw_error_set(err, KW_EINTERNAL, "member '%s' vanished", m->name);
	}
	work = kw_asprintf("%s/member-%zu", j->workdir, i);
	if (!work) {
		free(rep);
		return oom(err);
	}
	/* Slots of this member's own wheel index: no other item writes them. */
	j->member_work[idx] = work;
	rc = (n_rep || drop->n) && is_script(m->name) ? script_dest(j, m->name, &j->member_move[idx], err) : 0;
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
	ops.remove_needed = (const char *const *)drop->v;
	ops.n_remove_needed = drop->n;
	ops.scratch = true;
	if (!rc && (n_rep || drop->n)) {
		rc = kw_patch_file(work, NULL, &ops, NULL, err);
	}
	free(rep);
	free(rpath);
	if (rc) {
		kw_error_prefix(err, "'%s'", m->name);
		return rc;
	}
	pp->patched[i] = true;
	return 0;
}

int repair_prepare_members(struct job *j, struct kw_error *err)
{
	struct kw_audit *a = j->a;
	struct prep pp = { j, NULL, NULL, NULL };
	size_t i, k;
	int rc;

	j->n_member_work = kw_wheel_member_count(j->w);
	j->member_work = kw_calloc(j->n_member_work + 1, sizeof(*j->member_work));
	j->member_move = kw_calloc(j->n_member_work + 1, sizeof(*j->member_move));
	pp.drops = kw_calloc(a->n_members + 1, sizeof(*pp.drops));
	pp.patched = kw_calloc(a->n_members + 1, sizeof(*pp.patched));
	rc = j->member_work && j->member_move && pp.drops && pp.patched ? 0 : oom(err);
	/* Every member is its own work file: all at once on the pool; the report's lists in member order after. */
	if (!rc) {
		rc = prepare_all(&pp, a->n_members, prepare_member, err);
	}
	for (i = 0; !rc && i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		long idx;

		if (!pp.patched[i]) {
			continue;
		}
		idx = kw_wheel_find(j->w, m->name);
		for (k = 0; !rc && k < pp.drops[i].n; k++) {
			if (kw_strv_push_own(&j->res->libpython, kw_asprintf("%s: %s", m->name, pp.drops[i].v[k]))) {
				rc = oom(err);
			}
		}
		if (!rc && j->member_move[idx] &&
		    kw_strv_push_own(&j->res->scripts, kw_asprintf("%s -> %s", m->name, j->member_move[idx]))) {
			rc = oom(err);
		}
		if (!rc && kw_strv_push(&j->res->patched, m->name)) {
			rc = oom(err);
		}
	}
	for (i = 0; pp.drops && i < a->n_members; i++) {
		kw_strv_release(&pp.drops[i]);
	}
	free(pp.drops);
	free(pp.patched);
	free(pp.errs);
	return rc;
}

int repair_create_work(const struct job *j, const char *path, struct kw_error *err)
{
	return create_work(j, path, err);
}
