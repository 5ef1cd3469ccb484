/* SPDX-License-Identifier: MIT */
/*
 * Can a wheel's shared objects be delinked for KM? The answer rests on what
 * the converter can translate (x86-64, the relocation types of a normal
 * -fPIC link, no text relocations) and on every dependency being either
 * converted too or provided by the static link. Warnings name what converts
 * but behaves differently without a loader.
 */
#include <elf.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/km.h"

#include "internal.h"

#ifndef R_X86_64_TLSDESC
#define R_X86_64_TLSDESC 36
#endif
#ifndef R_X86_64_IRELATIVE
#define R_X86_64_IRELATIVE 37
#endif
#ifndef STB_GNU_UNIQUE
#define STB_GNU_UNIQUE 10
#endif

/* Examples quoted in a warning before "and N more". */
#define MAX_EXAMPLES 3

bool kw_km_reloc_supported(uint16_t machine, uint32_t type)
{
	if (machine != EM_X86_64) {
		return false;
	}
	switch (type) {
	case R_X86_64_NONE:
	case R_X86_64_64:
	case R_X86_64_GLOB_DAT:
	case R_X86_64_JUMP_SLOT:
	case R_X86_64_RELATIVE:
	case R_X86_64_DTPMOD64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
	case R_X86_64_TLSDESC:
	case R_X86_64_IRELATIVE:
		return true;
	default:
		return false;
	}
}

bool kw_km_static_provided(const char *soname)
{
	/* Each has a static archive in Debian's toolchain and libc packages. */
	static const char *const provided[] = {
		"libc.so.6", "libm.so.6", "libmvec.so.1", "libdl.so.2", "librt.so.1", "libpthread.so.0",
		"libutil.so.1", "libresolv.so.2", "libanl.so.1", "libcrypt.so.1", "ld-linux-x86-64.so.2",
		"libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1", "libgomp.so.1",
		"libc.so", "libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1",
	};
	size_t i;

	for (i = 0; i < sizeof(provided) / sizeof(provided[0]); i++) {
		if (strcmp(soname, provided[i]) == 0) {
			return true;
		}
	}
	/* Loaders of other machines: the machine itself is what the verdict refuses. */
	return fnmatch("libpython3.*.so*", soname, 0) == 0 || fnmatch("ld-linux*.so.*", soname, 0) == 0;
}

static int addf(struct kw_strv *sv, const char *fmt, ...) KW_PRINTF(2, 3);

static int addf(struct kw_strv *sv, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kw_vasprintf(fmt, ap);
	va_end(ap);
	if (!s) {
		return KW_ENOMEM;
	}
	return kw_strv_push_own(sv, s);
}

/* "what (e.g. a, b, c and 4 more)" from a list of examples. */
static int add_listed(struct kw_strv *sv, const char *what, const struct kw_strv *names)
{
	char buf[512];
	size_t i, used = 0;

	if (names->n == 0) {
		return 0;
	}
	buf[0] = '\0';
	for (i = 0; i < names->n && i < MAX_EXAMPLES; i++) {
		int n = snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? ", " : "", names->v[i]);

		if (n < 0 || (size_t)n >= sizeof(buf) - used) {
			break;
		}
		used += (size_t)n;
	}
	if (names->n > i) {
		return addf(sv, "%s: %s and %zu more", what, buf, names->n - i);
	}
	return addf(sv, "%s: %s", what, buf);
}

/* The graph node that provides version ver to info (through its version needs), or NULL. */
static const struct kw_elf_info *provider_of(const struct kw_elf_info *info, const struct kw_dep_graph *g,
					     const char *ver)
{
	size_t i, k, n;

	for (i = 0; i < info->n_verneed; i++) {
		const struct kw_elf_verneed *vn = &info->verneed[i];

		for (k = 0; k < vn->n_versions; k++) {
			if (strcmp(vn->versions[k], ver) != 0) {
				continue;
			}
			for (n = 1; g && n < g->n_nodes; n++) {
				const struct kw_elf_info *li = g->nodes[n].info;

				if (li && ((li->soname && strcmp(li->soname, vn->file) == 0) ||
					   strcmp(g->nodes[n].name, vn->file) == 0)) {
					return li;
				}
			}
			return NULL;
		}
	}
	return NULL;
}

/*
 * One library's defined, versioned symbols in an open-addressing table
 * keyed by a hash of name and version: a lookup per import is a probe or
 * two, not a scan of a C++ library's hundred thousand symbols, and
 * building it neither sorts nor compares strings (a sort of libc,
 * libstdc++ and libm was a millisecond of every show).
 */
struct versym {
	uint64_t key;
	const struct kw_elf_sym *s; /* NULL: an empty slot */
};

struct verindex {
	const struct kw_elf_info *lib;
	struct versym *slots;
	size_t mask;
};

struct verindexes {
	struct verindex *v;
	size_t n, cap;
};

static uint64_t versym_key(const char *name, const char *version)
{
	return kw_hash_bytes(kw_hash_bytes(KW_FNV_BASIS, name, strlen(name) + 1), version, strlen(version));
}

static void verindexes_release(struct verindexes *vx)
{
	size_t i;

	for (i = 0; i < vx->n; i++) {
		free(vx->v[i].slots);
	}
	free(vx->v);
}

/* lib's index, built on first use. NULL when out of memory. */
static const struct verindex *verindex_of(struct verindexes *vx, const struct kw_elf_info *lib)
{
	struct verindex *x;
	size_t i, n = 0, size = 1;

	for (i = 0; i < vx->n; i++) {
		if (vx->v[i].lib == lib) {
			return &vx->v[i];
		}
	}
	if (kw_grow(&vx->v, &vx->cap, vx->n + 1, sizeof(*vx->v))) {
		return NULL;
	}
	for (i = 0; i < lib->n_syms; i++) {
		n += lib->syms[i].defined && lib->syms[i].version;
	}
	/* At most half full, so probes stay short; n is bounded by the symbols the file holds. */
	while (size < 2 * n) {
		size *= 2;
	}
	x = &vx->v[vx->n];
	x->lib = lib;
	x->mask = size - 1;
	x->slots = kw_calloc(size, sizeof(*x->slots));
	if (!x->slots) {
		return NULL;
	}
	/*
	 * In file order: equal keys share a home slot, so a later definition
	 * of the same name@version lies further along the probe than the first.
	 */
	for (i = 0; i < lib->n_syms; i++) {
		const struct kw_elf_sym *s = &lib->syms[i];

		if (s->defined && s->version) {
			uint64_t key = versym_key(s->name, s->version);
			size_t j = key & x->mask;

			while (x->slots[j].s) {
				j = (j + 1) & x->mask;
			}
			x->slots[j].key = key;
			x->slots[j].s = s;
		}
	}
	vx->n++;
	return x;
}

/*
 * The static link drops versions: an import bound to an old, non-default
 * version (memcpy@GLIBC_2.2.5) gets the current one instead. The first
 * definition of name@version in lib's symbol order decides, as a scan would.
 */
static int binds_old_version(struct verindexes *vx, const struct kw_elf_info *lib, const struct kw_elf_sym *s,
			     bool *old)
{
	const struct verindex *x = verindex_of(vx, lib);
	uint64_t key;
	size_t j;

	*old = false;
	if (!x) {
		return KW_ENOMEM;
	}
	key = versym_key(s->name, s->version);
	for (j = key & x->mask; x->slots[j].s; j = (j + 1) & x->mask) {
		const struct kw_elf_sym *d = x->slots[j].s;

		if (x->slots[j].key == key && strcmp(d->name, s->name) == 0 && strcmp(d->version, s->version) == 0) {
			*old = d->version_hidden;
			break;
		}
	}
	return 0;
}

/*
 * needed: something loads it as a library, so an interpreter segment does
 * not make it a program. vx: the verdict's indexes of the libraries that
 * provide versions, built once for all its objects (the same libc and
 * libstdc++ serve hundreds of them).
 */
static int judge_info(struct kw_km_object *o, const struct kw_elf_info *info, const struct kw_dep_graph *g,
		      bool needed, struct verindexes *vx)
{
	struct kw_strv unique = { 0 }, hidden = { 0 }, old = { 0 }, rels = { 0 };
	const struct kw_elf_info *last_lib = NULL;
	const char *last_ver = NULL;
	size_t i;
	int rc = KW_ENOMEM;

	if (info->machine != EM_X86_64) {
		if (addf(&o->reasons, "architecture %s: the converter handles x86_64 only",
			 kw_elf_arch(info) ? kw_elf_arch(info) : kw_elf_machine_str(info->machine))) {
			goto out;
		}
		rc = 0;
		goto out; /* relocation numbers mean other things on other machines */
	}
	if (info->type != ET_DYN) {
		/* Programs and objects in a wheel are not what Python loads: reported, not blocking. */
		o->executable = true;
		if (addf(&o->reasons, "not a shared object (ELF type %u), never loaded by Python", info->type)) {
			goto out;
		}
	} else if (info->interp && !needed && !kw_audit_is_extension(info, o->name)) {
		o->executable = true;
		if (addf(&o->reasons, "a program (it has an interpreter, %s), not a library", info->interp)) {
			goto out;
		}
	}
	if (info->textrel && addf(&o->reasons, "DT_TEXTREL: it relocates its own code, which the converter refuses")) {
		goto out;
	}
	for (i = 0; i < info->n_reloc_types; i++) {
		uint32_t t = info->reloc_types[i];

		if (!kw_km_reloc_supported(info->machine, t)) {
			const char *nm = kw_elf_reloc_str(info->machine, t);
			char *s = nm ? kw_strdup(nm) : kw_asprintf("type %u", t);

			if (kw_strv_push_own(&rels, s)) {
				goto out;
			}
		}
	}
	if (add_listed(&o->reasons, "relocations the converter does not translate", &rels)) {
		goto out;
	}
	for (i = 0; i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];

		if (!s->defined) {
			static const char *const dl[] = { "dlopen", "dlmopen", "dladdr", "dladdr1", "dl_iterate_phdr",
							  "dlinfo" };
			size_t k;

			/* The prefix first: this runs for every import of every library. */
			for (k = 0; s->name[0] == 'd' && s->name[1] == 'l' && k < sizeof(dl) / sizeof(dl[0]); k++) {
				if (strcmp(s->name, dl[k]) == 0 &&
				    addf(&o->warnings, "imports %s: %s", s->name,
					 k < 2 ? "only converted, registered modules can be opened; files loaded at run "
						 "time (ctypes, cffi, plugins) cannot"
					       : "not emulated for converted images (no loader keeps a list of objects)")) {
					goto out;
				}
			}
			if (s->version) {
				const struct kw_elf_info *lib;
				bool is_old = false;

				/* Imports of one version come in runs: its provider is looked up once a run. */
				if (!last_ver || strcmp(last_ver, s->version) != 0) {
					last_ver = s->version;
					last_lib = provider_of(info, g, s->version);
				}
				lib = last_lib;

				if (lib && binds_old_version(vx, lib, s, &is_old)) {
					goto out;
				}
				if (is_old && kw_strv_push_own(&old, kw_asprintf("%s@%s", s->name, s->version))) {
					goto out;
				}
			}
			continue;
		}
		/* duplicates go at the end, all at once (kw_strv_dedup) */
		if (s->bind == STB_GNU_UNIQUE && kw_strv_push(&unique, s->name)) {
			goto out;
		}
		if (s->version_hidden && s->bind != STB_LOCAL && s->version) {
			char *e = kw_asprintf("%s@%s", s->name, s->version);

			if (kw_strv_push_own(&hidden, e)) {
				goto out;
			}
		}
	}
	if (kw_strv_dedup(&unique)) {
		goto out;
	}
	if (add_listed(&o->warnings,
		       "imports old, non-default symbol versions, which a static link replaces by the current ones",
		       &old) ||
	    add_listed(&o->warnings, "exports non-default symbol versions, lost in a static link", &hidden) ||
	    add_listed(&o->warnings,
		       "exports STB_GNU_UNIQUE symbols: once converted each object keeps its own copy", &unique)) {
		goto out;
	}
	rc = 0;
out:
	kw_strv_release(&unique);
	kw_strv_release(&hidden);
	kw_strv_release(&old);
	kw_strv_release(&rels);
	return rc;
}

/*
 * The verdict's objects as they are added: the array's capacity, and names
 * to indexes, so that the lookups of every node of every member's graph
 * are not scans (torch's 1,300 members, OpenCV's 357-library closure).
 */
struct objects_ix {
	size_t cap;
	struct kw_strmap names;    /* each object's name (its own string) to its index */
	struct kw_strmap members;  /* the wheel's member names to their indexes */
};

static struct kw_km_object *new_object(struct kw_km_verdict *v, struct objects_ix *ix, const char *name)
{
	struct kw_km_object *o;

	if (kw_grow(&v->objects, &ix->cap, v->n_objects + 1, sizeof(*v->objects))) {
		return NULL;
	}
	o = &v->objects[v->n_objects];
	memset(o, 0, sizeof(*o));
	if (!(o->name = kw_strdup(name))) {
		return NULL;
	}
	if (kw_strmap_add(&ix->names, o->name, v->n_objects) < 0) {
		free(o->name);
		o->name = NULL;
		return NULL;
	}
	v->n_objects++;
	return o;
}

static long find_object(const struct objects_ix *ix, const char *name)
{
	return kw_strmap_get(&ix->names, name);
}

/*
 * A system library that imports dlopen: the plugins it loads by path
 * (absolute paths in its bytes), named in its verdict instead of the
 * generic dlopen warning, and converted with it.
 */
static int find_plugins(struct kw_km_object *o, const struct kw_elf_info *info, const char *root, const char *path)
{
	struct kw_error e2 = { 0 };
	unsigned char *buf = NULL;
	size_t len = 0, i;
	char *rooted;
	bool dl = false;
	int rc;

	for (i = 0; i < info->n_syms && !dl; i++) {
		dl = !info->syms[i].defined && info->syms[i].name[0] == 'd' && strcmp(info->syms[i].name, "dlopen") == 0;
	}
	if (!dl || !root) {
		return 0;
	}
	rooted = *root && strcmp(root, "/") != 0 ? kw_asprintf("%s%s", root, path) : kw_strdup(path);
	if (!rooted) {
		return KW_ENOMEM;
	}
	rc = kw_map_file(rooted, &buf, &len, &e2);
	free(rooted);
	if (rc) {
		return 0; /* unreadable now: the conversion says so */
	}
	rc = km_find_plugins(root, buf, len, &o->plugins);
	kw_unmap_file(buf, len);
	if (rc || !o->plugins.n) {
		return rc;
	}
	for (i = 0; i < o->warnings.n; i++) {
		if (strncmp(o->warnings.v[i], "imports dlopen:", 15) == 0) {
			free(o->warnings.v[i]);
			memmove(&o->warnings.v[i], &o->warnings.v[i + 1], (o->warnings.n - i - 1) * sizeof(char *));
			o->warnings.n--;
			break;
		}
	}
	{
		/* Every one named: a plugin missing from the interpreter is what the user must see. */
		struct kw_buf b = { 0 };

		kw_buf_append(&b, "loads plugins by path, converted with it (found in its bytes):");
		for (i = 0; i < o->plugins.n; i++) {
			kw_buf_appendf(&b, "%s %s", i ? "," : "", o->plugins.v[i]);
		}
		if (b.failed || !b.s) {
			kw_buf_release(&b);
			return KW_ENOMEM;
		}
		return kw_strv_push_own(&o->warnings, kw_buf_take(&b));
	}
}

/* Libraries to convert whose plugins are still to be looked for. */
struct scans {
	struct {
		size_t object;
		const struct kw_elf_info *info;
	} *v;
	size_t n, cap;
	struct kw_km_verdict *verdict;
	const char *root;
};

/*
 * The dependencies of one object: not found, wheel member, static link, or
 * to convert (its plugin scan noted in sc).
 */
static int walk_deps(struct kw_km_verdict *v, struct objects_ix *ix, size_t self, const struct kw_dep_graph *g,
		     struct scans *sc)
{
	size_t n;

	for (n = 1; g && n < g->n_nodes; n++) {
		const struct kw_dep_node *d = &g->nodes[n];
		struct kw_km_object *o;
		const char *key;

		if (d->in_overlay || kw_km_static_provided(d->name) ||
		    (d->info && d->info->soname && kw_km_static_provided(d->info->soname))) {
			continue;
		}
		if (!d->info) {
			if (d->error ? addf(&v->objects[self].reasons, "needs %s, which cannot be read: %s", d->name, d->error)
				     : addf(&v->objects[self].reasons, "needs %s, which is not found", d->name)) {
				return KW_ENOMEM;
			}
			continue;
		}
		key = d->realpath ? d->realpath : d->path;
		if (find_object(ix, key) >= 0) {
			continue;
		}
		if (!(o = new_object(v, ix, key)) || (d->info->soname && !(o->soname = kw_strdup(d->info->soname))) ||
		    (!o->soname && !(o->soname = kw_strdup(d->name)))) {
			return KW_ENOMEM;
		}
		o->mode = KW_KM_LIB;
		v->needs_deps = true;
		/* No graph: no version is looked up, so no index is needed. */
		if (judge_info(o, d->info, NULL, true, NULL) ||
		    kw_grow(&sc->v, &sc->cap, sc->n + 1, sizeof(*sc->v))) {
			return KW_ENOMEM;
		}
		sc->v[sc->n].object = v->n_objects - 1;
		sc->v[sc->n++].info = d->info;
	}
	return 0;
}

/*
 * The plugin scans of the libraries walk_deps added: each reads one file
 * and fills one object, so they run side by side, after every object
 * exists (the array no longer moves) and before anything else is added to
 * their warnings.
 */
static int scan_task(void *ud, size_t i)
{
	struct scans *sc = ud;
	struct kw_km_object *o = &sc->verdict->objects[sc->v[i].object];

	return find_plugins(o, sc->v[i].info, sc->root, o->name);
}

/* The object a graph node stands for: a wheel member (served by the overlay) or a library to convert; -1 if none. */
static long node_object(const struct objects_ix *ix, size_t member, const struct kw_dep_graph *g, size_t n)
{
	const struct kw_dep_node *d = &g->nodes[n];

	if (n == 0) {
		return (long)member;
	}
	if (d->in_overlay) {
		/*
		 * The overlay serves "/<prefix>/<member name>" (realpath: with
		 * "$ORIGIN/../x" folded): the name follows the first component.
		 */
		const char *p = d->realpath ? d->realpath : d->path;
		const char *rest = p && p[0] == '/' ? strchr(p + 1, '/') : NULL;

		return rest ? kw_strmap_get(&ix->members, rest + 1) : -1;
	}
	if (!d->info) {
		return -1;
	}
	return find_object(ix, d->realpath ? d->realpath : d->path);
}

/* Add the edge from -> to once (objects needing themselves aside). */
static int add_edge(struct kw_km_object *from, size_t to, size_t self)
{
	size_t i, cap;

	if (to == self) {
		return 0;
	}
	for (i = 0; i < from->n_deps; i++) {
		if (from->deps[i] == to) {
			return 0;
		}
	}
	/* kw_grow wants the capacity: the array is always kept exactly full, so it is n_deps. */
	cap = from->n_deps;
	if (kw_grow(&from->deps, &cap, from->n_deps + 1, sizeof(*from->deps))) {
		return KW_ENOMEM;
	}
	from->deps[from->n_deps++] = to;
	return 0;
}

/* Every member's graph, as edges between the verdict's objects. */
static int add_edges(struct kw_km_verdict *v, const struct kw_audit *a, const struct objects_ix *ix)
{
	size_t i, n, k;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_dep_graph *g = a->members[i].graph;

		for (n = 0; a->members[i].info && g && n < g->n_nodes; n++) {
			long from = node_object(ix, i, g, n);

			for (k = 0; from >= 0 && k < g->nodes[n].n_deps; k++) {
				size_t dn = g->nodes[n].deps[k];
				long to = dn < g->n_nodes ? node_object(ix, i, g, dn) : -1;

				if (to >= 0 && add_edge(&v->objects[from], (size_t)to, (size_t)from)) {
					return KW_ENOMEM;
				}
			}
		}
	}
	return 0;
}

int kw_km_init_order(const struct kw_km_verdict *v, size_t *order, struct kw_error *err)
{
	/* An explicit stack of (object, next dependency to visit): a 1,000-library closure must not recurse. */
	size_t *stack = kw_calloc(v->n_objects ? v->n_objects : 1, 2 * sizeof(*stack));
	unsigned char *state = kw_calloc(v->n_objects ? v->n_objects : 1, 1); /* 0 new, 1 on the walk, 2 placed */
	size_t root, sp, n = 0;
	int rc = 0;

	if (!stack || !state) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	for (root = 0; root < v->n_objects; root++) {
		if (state[root]) {
			continue;
		}
		sp = 0;
		stack[0] = root;
		stack[1] = 0;
		state[root] = 1;
		sp = 1;
		while (sp) {
			size_t o = stack[2 * (sp - 1)], *next = &stack[2 * (sp - 1) + 1];

			if (*next < v->objects[o].n_deps) {
				size_t d = v->objects[o].deps[(*next)++];

				/* Placed already, or on the walk (a cycle): nothing to wait for. */
				if (d < v->n_objects && !state[d]) {
					state[d] = 1;
					stack[2 * sp] = d;
					stack[2 * sp + 1] = 0;
					sp++;
				}
				continue;
			}
			state[o] = 2;
			order[n++] = o;
			sp--;
		}
	}
out:
	free(stack);
	free(state);
	return rc;
}

/* Does the object info define name (a default-version global)? */
static bool defines(const struct kw_elf_info *info, const char *name)
{
	size_t i;

	for (i = 0; info && i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];

		if (s->defined && s->bind != STB_LOCAL && !s->version_hidden && strcmp(s->name, name) == 0) {
			return true;
		}
	}
	return false;
}

/* One global definition of an extension module, for the lookup below. */
struct ext_export {
	const char *name;
	size_t member;
};

static int cmp_export(const void *a, const void *b)
{
	const struct ext_export *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->member > y->member) - (x->member < y->member);
}

static int cmp_export_name(const void *a, const void *b)
{
	return strcmp(((const struct ext_export *)a)->name, ((const struct ext_export *)b)->name);
}

/*
 * Extensions that export to other extensions: a package loads one with
 * RTLD_GLOBAL and the next finds its symbols with no DT_NEEDED between
 * them. Module mode would make those exports local and the link fail, so
 * such a module is converted in library mode (its PyInit_ stays its own),
 * and initialised before the modules that use it.
 */
static int global_exporters(struct kw_km_verdict *v, const struct kw_audit *a)
{
	struct ext_export *ex = NULL;
	struct kw_strv *used = NULL; /* per member: "name (by user)" */
	size_t cap = 0, n = 0, i, k, j, g;
	int rc = KW_ENOMEM;

	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;

		for (k = 0; a->members[i].extension && info && k < info->n_syms; k++) {
			const struct kw_elf_sym *s = &info->syms[k];

			if (!s->defined || s->bind == STB_LOCAL || s->version_hidden || s->shndx == SHN_ABS ||
			    strncmp(s->name, "PyInit_", 7) == 0 || (s->type != STT_FUNC && s->type != STT_OBJECT)) {
				continue;
			}
			if (kw_grow(&ex, &cap, n + 1, sizeof(*ex))) {
				goto out;
			}
			ex[n].name = s->name;
			ex[n++].member = i;
		}
	}
	rc = 0;
	if (!n) {
		goto out;
	}
	rc = KW_ENOMEM;
	qsort(ex, n, sizeof(*ex), cmp_export);
	if (!(used = kw_calloc(a->n_members, sizeof(*used)))) {
		goto out;
	}
	for (i = 0; i < a->n_members; i++) {
		const struct kw_elf_info *info = a->members[i].info;
		const struct kw_dep_graph *gr = a->members[i].graph;

		for (k = 0; a->members[i].extension && info && k < info->n_syms; k++) {
			const struct kw_elf_sym *s = &info->syms[k];
			struct ext_export key = { s->name, 0 };
			const struct ext_export *hit;
			bool found = false;

			if (s->defined || s->bind == STB_WEAK) {
				continue;
			}
			hit = bsearch(&key, ex, n, sizeof(*ex), cmp_export_name);
			/* bsearch finds any of that name: back up to the first, in member order. */
			while (hit && hit > ex && strcmp(hit[-1].name, s->name) == 0) {
				hit--;
			}
			if (!hit) {
				continue;
			}
			/* What it needs provides the name: the loader would bind there. */
			for (g = 1; gr && g < gr->n_nodes && !found; g++) {
				found = defines(gr->nodes[g].info, s->name);
			}
			for (; !found && hit < ex + n && strcmp(hit->name, s->name) == 0; hit++) {
				char *e;

				if (hit->member == i) {
					continue;
				}
				v->objects[hit->member].mode = KW_KM_LIB;
				if (add_edge(&v->objects[i], hit->member, i)) {
					goto out;
				}
				e = kw_asprintf("%s (by %s)", s->name, a->members[i].name);
				if (!e || kw_strv_push_own(&used[hit->member], e)) {
					goto out;
				}
				break; /* the first module loaded with it wins, as in the loader's global scope */
			}
		}
	}
	for (j = 0; j < a->n_members; j++) {
		if (used[j].n && add_listed(&v->objects[j].warnings,
					    "exports to other extension modules, which import it with no DT_NEEDED "
					    "(it is loaded RTLD_GLOBAL): converted in library mode",
					    &used[j])) {
			goto out;
		}
	}
	rc = 0;
out:
	for (j = 0; used && j < a->n_members; j++) {
		kw_strv_release(&used[j]);
	}
	free(used);
	free(ex);
	return rc;
}

/* Which members of the wheel another member loads as a library (loaded[i]), in one pass over the graphs. */
static void loaded_by_another(const struct kw_audit *a, const struct objects_ix *ix, bool *loaded)
{
	size_t k, n;

	for (k = 0; k < a->n_members; k++) {
		const struct kw_dep_graph *g = a->members[k].graph;

		for (n = 1; g && n < g->n_nodes; n++) {
			long i = g->nodes[n].member ? kw_strmap_get(&ix->members, g->nodes[n].member) : -1;

			if (i >= 0 && (size_t)i != k) {
				loaded[i] = true;
			}
		}
	}
}

int kw_km_judge(struct kw_pool *pool, const struct kw_audit *a, struct kw_km_verdict *out, struct kw_error *err)
{
	struct kw_km_verdict v;
	struct verindexes vx = { 0 };
	struct objects_ix ix = { 0 };
	struct scans sc = { NULL, 0, 0, &v, a->root };
	bool *loaded = NULL;
	size_t i;
	int rc = KW_ENOMEM;

	memset(&v, 0, sizeof(v));
	memset(out, 0, sizeof(*out));
	if (a->not_elf && addf(&v.reasons, "%s", a->not_elf)) {
		goto out;
	}
	if (a->n_members && strncmp(a->name.python, "cp", 2) != 0 && strncmp(a->name.abi, "cp", 2) != 0 &&
	    strncmp(a->name.abi, "abi3", 4) != 0 &&
	    addf(&v.reasons, "built for %s/%s: the static interpreter is CPython", a->name.python, a->name.abi)) {
		goto out;
	}
	/* Member names are unique in a wheel (the reader refuses twins); the first is kept if not. */
	for (i = 0; i < a->n_members; i++) {
		if (kw_strmap_add(&ix.members, a->members[i].name, i) < 0) {
			goto out;
		}
	}
	if (!(loaded = kw_calloc(a->n_members ? a->n_members : 1, sizeof(*loaded)))) {
		goto out;
	}
	loaded_by_another(a, &ix, loaded);
	for (i = 0; i < a->n_members; i++) {
		const struct kw_audit_member *m = &a->members[i];
		struct kw_km_object *o = new_object(&v, &ix, m->name);

		if (!o) {
			goto out;
		}
		o->in_wheel = true;
		if (!m->info) {
			o->mode = KW_KM_LIB;
			if (addf(&o->reasons, "unreadable: %s", m->error ? m->error : "not a valid ELF object")) {
				goto out;
			}
			continue;
		}
		o->mode = m->extension ? KW_KM_MODULE : KW_KM_LIB;
		if ((m->info->soname && !(o->soname = kw_strdup(m->info->soname))) ||
		    judge_info(o, m->info, m->graph, loaded[i], &vx)) {
			goto out;
		}
	}
	/* Dependencies after every member: the objects array may move while they are added. */
	for (i = 0; i < a->n_members; i++) {
		if (a->members[i].info && (rc = walk_deps(&v, &ix, i, a->members[i].graph, &sc)) != 0) {
			goto out;
		}
		rc = KW_ENOMEM;
	}
	if (kw_pool_run_until(pool, sc.n, scan_task, &sc) < sc.n) {
		goto out;
	}
	if (add_edges(&v, a, &ix) || global_exporters(&v, a)) {
		goto out;
	}
	if (a->family == KW_POLICY_MUSLLINUX &&
	    addf(&v.warnings, "built against musl: link it into a musl static interpreter (KM's own), not glibc's")) {
		goto out;
	}
	v.convertible = v.reasons.n == 0;
	for (i = 0; i < v.n_objects; i++) {
		struct kw_km_object *o = &v.objects[i];
		size_t k;

		o->convertible = o->reasons.n == 0;
		for (k = 0; k < o->reasons.n; k++) {
			/* A program in the wheel is not loaded by Python: it cannot run, but does not block. */
			if (addf(o->executable ? &v.warnings : &v.reasons, "%s: %s", o->name, o->reasons.v[k])) {
				goto out;
			}
		}
		if (!o->convertible && !o->executable) {
			v.convertible = false;
		}
	}
	*out = v;
	memset(&v, 0, sizeof(v));
	rc = 0;
out:
	verindexes_release(&vx);
	free(sc.v);
	kw_strmap_release(&ix.names);
	kw_strmap_release(&ix.members);
	free(loaded);
	kw_km_verdict_release(&v);
	return rc ? kw_error_set(err, rc, "out of memory") : 0;
}

void kw_km_verdict_release(struct kw_km_verdict *v)
{
	size_t i;

	if (!v) {
		return;
	}
	for (i = 0; i < v->n_objects; i++) {
		free(v->objects[i].name);
		free(v->objects[i].soname);
		kw_strv_release(&v->objects[i].reasons);
		kw_strv_release(&v->objects[i].warnings);
		kw_strv_release(&v->objects[i].plugins);
		free(v->objects[i].deps);
	}
	free(v->objects);
	kw_strv_release(&v->reasons);
	kw_strv_release(&v->warnings);
	memset(v, 0, sizeof(*v));
}
