/* SPDX-License-Identifier: MIT */
/*
 * Kontain's method, for users who still have a build's object files: every
 * global the module's objects define is renamed to name_<tag>_km (and every
 * reference to it among those objects with it), so modules never collide in
 * one static link; a registration object maps the original names back for
 * the emulated dlsym. Renaming edits the string and symbol tables with
 * libelf in place of objcopy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "kwheel/km.h"
#include "internal.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct binding_filter {
	km_sym_fn fn;
	void *ud;
};

static int global_or_weak(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name)
{
	const struct binding_filter *f = ud;

	if (GELF_ST_BIND(sym->st_info) != STB_GLOBAL && GELF_ST_BIND(sym->st_info) != STB_WEAK) {
		return 0;
	}
	return f->fn(f->ud, e, syms, i, sym, name);
}

/* Calls fn on each global or weak symbol of the relocatable object at path. */
static int each_global(const char *path, bool write, km_sym_fn fn, void *ud, struct kw_error *err)
{
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC), rc = 0;
	struct binding_filter filter = { fn, ud };
	Elf *e = NULL;
	GElf_Ehdr eh;

	if (fd < 0) {
		return kw_error_set(err, KW_EIO, "cannot open '%s': %s", path, strerror(errno));
	}
	e = elf_begin(fd, write ? ELF_C_RDWR : ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh) || eh.e_type != ET_REL ||
	    eh.e_machine != EM_X86_64 || gelf_getclass(e) != ELFCLASS64) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an x86-64 relocatable object", path);
		goto out;
	}
	rc = km_each_nonlocal(e, global_or_weak, &filter);
	if (!rc && write && elf_update(e, ELF_C_WRITE) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': rewriting: %s", path, elf_errmsg(-1));
	}
out:
	if (e) {
		elf_end(e);
	}
	close(fd);
	return rc;
}

struct collect {
	struct kw_strv *defined;
	struct kw_error *err;
};

static int collect_defined(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name)
{
	struct collect *c = ud;
	unsigned type = GELF_ST_TYPE(sym->st_info);

	(void)e;
	(void)syms;
	(void)i;
	/* Hidden ones too: visibility is about dynamic export, a static link still sees them. */
	if (sym->st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE)) {
		return 0;
	}
	return kw_strv_push_unique(c->defined, name) ? kw_error_set(c->err, KW_ENOMEM, "out of memory") : 0;
}

struct rename {
	const struct kw_strv *defined; /* sorted */
	const char *tag;
	Elf_Data *strtab;
	Elf_Scn *strscn;
	struct kw_error *err;
	size_t renamed;
	char *own;      /* our copy of the string table, which libelf does not free */
};

static int rename_one(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name)
{
	struct rename *r = ud;
	const char *key = name;
	char *nn, *grown;
	size_t at;

	if (!r->defined->n || !bsearch(&key, r->defined->v, r->defined->n, sizeof(char *), cmp_str)) {
		return 0;
	}
	if (!r->strtab) {
		GElf_Shdr sh;
		Elf_Scn *ss = elf_getscn(e, 0);
		Elf_Scn *symscn = NULL;

		/* The string table the symbol table links to. */
		while ((symscn = elf_nextscn(e, symscn)) != NULL) {
			if (gelf_getshdr(symscn, &sh) && sh.sh_type == SHT_SYMTAB) {
				ss = elf_getscn(e, sh.sh_link);
				break;
			}
		}
		r->strscn = ss;
		r->strtab = ss ? elf_getdata(ss, NULL) : NULL;
		if (!r->strtab) {
			return kw_error_set(r->err, KW_EFORMAT, "no string table: %s", elf_errmsg(-1));
		}
		/* Our own copy: libelf's buffer may be the mapped file. */
		grown = kw_malloc(r->strtab->d_size ? r->strtab->d_size : 1);
		if (!grown) {
			return kw_error_set(r->err, KW_ENOMEM, "out of memory");
		}
		memcpy(grown, r->strtab->d_buf, r->strtab->d_size);
		r->strtab->d_buf = grown;
		r->own = grown;
	}
	nn = kw_asprintf("%s_%s_km", name, r->tag);
	if (!nn) {
		return kw_error_set(r->err, KW_ENOMEM, "out of memory");
	}
	at = r->strtab->d_size;
	grown = kw_realloc(r->strtab->d_buf, at + strlen(nn) + 1);
	if (!grown) {
		free(nn);
		return kw_error_set(r->err, KW_ENOMEM, "out of memory");
	}
	memcpy(grown + at, nn, strlen(nn) + 1);
	r->strtab->d_buf = grown;
	r->own = grown;
	r->strtab->d_size = at + strlen(nn) + 1;
	free(nn);
	sym->st_name = (Elf64_Word)at;
	if (!gelf_update_sym(syms, (int)i, sym)) {
		return kw_error_set(r->err, KW_EINTERNAL, "updating a symbol: %s", elf_errmsg(-1));
	}
	elf_flagdata(syms, ELF_C_SET, ELF_F_DIRTY);
	elf_flagdata(r->strtab, ELF_C_SET, ELF_F_DIRTY);
	r->renamed++;
	return 0;
}

int kw_km_convert_objects(const char *dir, const char *id, const char *outdir, kw_km_render_fn manifest,
			  struct kw_km_wheel *res, struct kw_error *err)
{
	struct kw_strv files = { 0 }, defined = { 0 }, objs = { 0 }, names = { 0 }, targets = { 0 };
	const char *base = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
	char *stem = NULL, *objdir = NULL, *text = NULL;
	struct km_dir od = { 0 };
	struct km_out o_archive = { 0 }, o_link = { 0 }, o_manifest = { 0 };
	struct kw_sha256 sha;
	unsigned char digest[32];
	char hex[13];
	struct dirent *de;
	DIR *d;
	size_t i;
	int rc = KW_ENOMEM;

	memset(res, 0, sizeof(*res));
	if (!(d = opendir(dir))) {
		return kw_error_set(err, KW_EIO, "cannot read '%s': %s", dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 2 && strcmp(de->d_name + l - 2, ".o") == 0 &&
		    kw_strv_push_own(&files, kw_asprintf("%s/%s", dir, de->d_name))) {
			closedir(d);
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	closedir(d);
	if (files.n == 0) {
		rc = kw_error_set(err, KW_ENOTFOUND, "'%s': no object files (*.o)", dir);
		goto out;
	}
	kw_strv_sort(&files);
	{
		struct collect c = { &defined, err };

		for (i = 0; i < files.n; i++) {
			if ((rc = each_global(files.v[i], false, collect_defined, &c, err))) {
				goto out;
			}
		}
	}
	kw_strv_sort(&defined);
	/* The tag names the module: its id, so the same sources built twice do not clash either. */
	kw_sha256_init(&sha);
	kw_sha256_update(&sha, id, strlen(id));
	kw_sha256_final(&sha, digest);
	kw_hex(digest, 6, hex);
	rc = KW_ENOMEM;
	stem = kw_strndup(base, strcspn(base, "."));
	objdir = stem ? kw_asprintf("%s/%s.objects.km", outdir, stem) : NULL;
	res->archive = stem ? kw_asprintf("%s/lib%s.km.a", outdir, stem) : NULL;
	res->link_file = stem ? kw_asprintf("%s/%s.km.link", outdir, stem) : NULL;
	res->manifest = stem ? kw_asprintf("%s/%s.km.json", outdir, stem) : NULL;
	if (!objdir || !res->archive || !res->link_file || !res->manifest) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if (!manifest) {
		rc = kw_error_set(err, KW_EINVAL, "no manifest renderer");
		goto out;
	}
	/* As for wheels: everything is made beside its final name and put in place at the end. */
	if ((rc = km_dir_open(&od, objdir, err))) {
		goto out;
	}
	rc = KW_ENOMEM;
	for (i = 0; i < files.n; i++) {
		const char *fb = strrchr(files.v[i], '/') + 1;
		char *oname = kw_asprintf("%03zu-%s", i, fb), *opath = oname ? kw_asprintf("%s/%s", od.tmp, oname) : NULL;
		struct rename r = { &defined, hex, NULL, NULL, err, 0, NULL };

		if (kw_strv_push_own(&names, oname) | kw_strv_push_own(&objs, opath)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
		rc = kw_copy_file(files.v[i], opath, 0644, err);
		if (!rc) {
			rc = each_global(opath, true, rename_one, &r, err);
			free(r.own);
		}
		if (rc) {
			goto out;
		}
		rc = KW_ENOMEM;
	}
	for (i = 0; i < defined.n; i++) {
		if (kw_strv_push_own(&targets, kw_asprintf("%s_%s_km", defined.v[i], hex))) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	if (kw_strv_push_own(&objs, kw_asprintf("%s/%03zu-registration.o", od.tmp, files.n)) ||
	    kw_strv_push_own(&names, kw_asprintf("%03zu-registration.o", files.n))) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if ((rc = kw_km_registration_object(id, hex, (const char *const *)defined.v, (const char *const *)targets.v,
					    defined.n, objs.v[objs.n - 1], err)) ||
	    (rc = km_out_open(&o_archive, res->archive, err)) ||
	    (rc = km_archive_write(o_archive.f, res->archive, (const char *const *)objs.v,
				   (const char *const *)names.v, objs.n, NULL, NULL, strrchr(objdir, '/') + 1, err)) ||
	    (rc = km_out_close(&o_archive, err))) {
		goto out;
	}
	rc = KW_ENOMEM;
	text = kw_asprintf("-Wl,--whole-archive\n%s\n-Wl,--no-whole-archive\n-Wl,--wrap=dlopen\n"
			   "-Wl,--wrap=dlsym\n-Wl,--wrap=dlerror\n-Wl,--wrap=dlclose\n", res->archive);
	if (!text) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	if ((rc = km_out_open(&o_link, res->link_file, err)) || (rc = km_out_write(&o_link, text, strlen(text), err))) {
		goto out;
	}
	free(text);
	text = NULL;
	{
		struct kw_km_manifest m = { NULL, res->archive, res->link_file, NULL, NULL, NULL, 0, id, hex, &defined,
					    &targets };

		if ((rc = manifest(&m, &text, err)) || (rc = km_out_open(&o_manifest, res->manifest, err)) ||
		    (rc = km_out_write(&o_manifest, text, strlen(text), err))) {
			goto out;
		}
	}
	if ((rc = km_dir_commit(&od, err)) || (rc = km_out_commit(&o_archive, err)) ||
	    (rc = km_out_commit(&o_link, err)) || (rc = km_out_commit(&o_manifest, err))) {
		goto out;
	}
	res->n_objects = files.n;
	rc = 0;
out:
	if (rc) {
		kw_km_wheel_release(res);
	}
	km_dir_discard(&od);
	km_out_discard(&o_archive);
	km_out_discard(&o_link);
	km_out_discard(&o_manifest);
	free(text);
	kw_strv_release(&files);
	kw_strv_release(&defined);
	kw_strv_release(&objs);
	kw_strv_release(&names);
	kw_strv_release(&targets);
	free(stem);
	free(objdir);
	return rc;
}
