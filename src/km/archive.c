/* SPDX-License-Identifier: MIT */
/*
 * A GNU ar archive with a symbol index, deterministic (zero dates and ids),
 * so the linker pulls lib-mode members by the names they define and `ar t`
 * and `nm -s` read it. Beside its objects directory it is a thin archive
 * (GNU's "!<thin>": the index and the members' paths, as `ar rcT` makes
 * it), since a self-contained one would write every object a second time:
 * for a 300-library closure, 475 MB and a third of the conversion's time.
 */
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

struct member {
	const char *name;      /* what the archive stores: the member's name, or a thin archive's path to it */
	const char *object;    /* its file */
	unsigned char *data;   /* mapped only while its symbols are read */
	size_t len;
	/* its global definitions, each NUL-ended, one after another: given, or read here (own) */
	const char *syms;
	char *syms_own;
	size_t syms_len, syms_cap, n_syms;
	uint64_t hdr_off;
	char hdr_name[32];     /* the header's name field: "NAME/" or "/OFFSET" into the long names */
	struct kw_error err;   /* the member's failure, told in archive order */
};

/* What the members' tasks share (read_member, copy_member). */
struct members {
	struct member *m;
	const char *path;      /* the archive's, for messages */
	int fd;
	const struct km_index_names *known; /* or NULL */
};

int km_each_nonlocal(Elf *e, km_sym_fn fn, void *ud)
{
	Elf_Scn *scn = NULL;
	int rc = 0;

	while (!rc && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t i, n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !(data = elf_getdata(scn, NULL)) ||
		    !sh.sh_entsize) {
			continue;
		}
		n = sh.sh_size / sh.sh_entsize;
		for (i = sh.sh_info; !rc && i < n; i++) {
			GElf_Sym sym;
			const char *name;

			if (!gelf_getsym(data, (int)i, &sym) || !(name = elf_strptr(e, sh.sh_link, sym.st_name)) ||
			    !*name) {
				continue;
			}
			rc = fn(ud, e, data, i, &sym, name);
		}
	}
	return rc;
}

static int add_defined(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name)
{
	struct member *m = ud;
	size_t l = strlen(name) + 1;

	(void)e;
	(void)syms;
	(void)i;
	if (sym->st_shndx == SHN_UNDEF) {
		return 0;
	}
	if (kw_grow(&m->syms_own, &m->syms_cap, m->syms_len + l, 1)) {
		return KW_ENOMEM;
	}
	memcpy(m->syms_own + m->syms_len, name, l);
	m->syms_len += l;
	m->n_syms++;
	m->syms = m->syms_own;
	return 0;
}

static int defined_globals(struct member *m, struct kw_error *err)
{
	Elf *e = elf_memory((char *)m->data, m->len);
	int rc;

	if (!e) {
		return kw_error_set(err, KW_EFORMAT, "'%s': %s", m->name, elf_errmsg(-1));
	}
	rc = km_each_nonlocal(e, add_defined, m);
	elf_end(e);
	return rc ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
}

static void header_text(char h[61], const char *name, uint64_t size)
{
	snprintf(h, 61, "%-16s%-12s%-6s%-6s%-8s%-10llu`\n", name, "0", "0", "0", "644", (unsigned long long)size);
}

static void header(FILE *f, const char *name, uint64_t size)
{
	char h[61];

	header_text(h, name, size);
	fwrite(h, 1, 60, f);
}

/* A big-endian number of the symbol index, 4 or 8 bytes wide. */
static void be_into(unsigned char *b, uint64_t v, unsigned width)
{
	unsigned i;

	for (i = 0; i < width; i++) {
		b[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
	}
}

static void be(FILE *f, uint64_t v, unsigned width)
{
	unsigned char b[8];

	be_into(b, v, width);
	fwrite(b, 1, width, f);
}

/*
 * Each object is mapped for its symbols, then let go: the bytes are copied
 * from the file by the kernel when its turn comes, so memory is an object
 * per thread at a time, not the archive (a closure's is 500 MB).
 */
static int read_member(void *ud, size_t i)
{
	struct members *ms = ud;
	struct member *m = &ms->m[i];
	int rc;

	/* Known from the conversion that wrote the object: only its size is read. */
	if (ms->known && ms->known[i].names) {
		struct stat st;

		if (lstat(m->object, &st) != 0) {
			return kw_error_set(&m->err, KW_EIO, "cannot read '%s': %s", m->object, strerror(errno));
		}
		if (!S_ISREG(st.st_mode)) {
			return kw_error_set(&m->err, KW_EIO, "cannot read '%s': not a regular file", m->object);
		}
		m->len = (size_t)st.st_size;
		m->syms = ms->known[i].names;
		m->syms_len = ms->known[i].len;
		m->n_syms = ms->known[i].n;
		return 0;
	}
	rc = kw_map_file(m->object, &m->data, &m->len, &m->err);
	if (!rc) {
		rc = defined_globals(m, &m->err);
		kw_unmap_file(m->data, m->len);
		m->data = NULL;
	}
	return rc;
}

/* A member's header, bytes and padding, each at its offset. */
static int copy_member(void *ud, size_t i)
{
	struct members *ms = ud;
	struct member *m = &ms->m[i];
	char h[61];
	int fd, e;

	header_text(h, m->hdr_name, m->len);
	fd = open(m->object, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || kw_pwrite_all(ms->fd, h, 60, m->hdr_off) < 0 ||
	    kw_pcopy_range(fd, 0, ms->fd, m->hdr_off + 60, m->len) < 0 ||
	    ((m->len & 1) && kw_pwrite_all(ms->fd, "\n", 1, m->hdr_off + 60 + m->len) < 0)) {
		e = errno;
		if (fd >= 0) {
			close(fd);
		}
		return kw_error_set(&m->err, KW_EIO, "cannot copy '%s' into '%s': %s", m->object, ms->path,
				    strerror(e));
	}
	close(fd);
	return 0;
}

int km_archive_write(FILE *f, const char *path, const char *const *objects, const char *const *names, size_t n,
		     const struct km_index_names *known, struct kw_pool *pool, const char *thin_dir,
		     struct kw_error *err)
{
	struct member *m = kw_calloc(n ? n : 1, sizeof(*m));
	struct members ms = { m, path, fileno(f), known };
	size_t i, k, n_syms = 0, str_len = 0, long_len = 0, failed;
	uint64_t off;
	unsigned width = 4;
	bool thin = thin_dir != NULL;
	int rc = 0;

	if (!m) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		m[i].name = thin && *thin_dir ? kw_asprintf("%s/%s", thin_dir, names[i]) : names[i];
		m[i].object = objects[i];
		if (!m[i].name) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	if ((failed = kw_pool_run_until(pool, n, read_member, &ms)) < n) {
		rc = kw_error_set(err, m[failed].err.code, "%s", m[failed].err.msg);
		goto out;
	}
	for (i = 0; i < n; i++) {
		str_len += m[i].syms_len;
		n_syms += m[i].n_syms;
		/* A thin archive's paths are all long names, as ar writes them. */
		if (thin || strlen(m[i].name) > 15) {
			snprintf(m[i].hdr_name, sizeof(m[i].hdr_name), "/%zu", long_len);
			long_len += strlen(m[i].name) + 2;
		} else {
			snprintf(m[i].hdr_name, sizeof(m[i].hdr_name), "%s/", m[i].name);
		}
	}
	/*
	 * Member offsets: magic, index member, long-name member, then each
	 * member (a thin one's header alone). The index holds 32-bit offsets
	 * unless a member starts past 4 GiB; then it is GNU's /SYM64/ of
	 * 64-bit ones, as ar writes it.
	 */
	for (;;) {
		off = 8 + 60 + width + (uint64_t)width * n_syms + str_len;
		off += off & 1;
		if (long_len) {
			off += 60 + long_len + (long_len & 1);
		}
		for (i = 0; i < n; i++) {
			m[i].hdr_off = off;
			off += 60 + (thin ? 0 : m[i].len + (m[i].len & 1));
		}
		if (width == 8 || n == 0 || m[n - 1].hdr_off <= UINT32_MAX) {
			break;
		}
		width = 8;
	}
	fwrite(thin ? "!<thin>\n" : "!<arch>\n", 1, 8, f);
	header(f, width == 8 ? "/SYM64/" : "/", width + (uint64_t)width * n_syms + str_len);
	be(f, n_syms, width);
	for (i = 0; i < n; i++) {
		unsigned char b[8 * 64];

		/* The member's offset, once per symbol it defines, written 64 at a time. */
		be_into(b, m[i].hdr_off, width);
		for (k = 1; k < 64; k++) {
			memcpy(b + k * width, b, width);
		}
		for (k = 0; k < m[i].n_syms; k += 64) {
			fwrite(b, width, m[i].n_syms - k < 64 ? m[i].n_syms - k : 64, f);
		}
	}
	for (i = 0; i < n; i++) {
		if (m[i].syms_len) {
			fwrite(m[i].syms, 1, m[i].syms_len, f);
		}
	}
	if ((width + (uint64_t)width * n_syms + str_len) & 1) {
		fputc('\n', f);
	}
	if (long_len) {
		header(f, "//", long_len);
		for (i = 0; i < n; i++) {
			if (thin || strlen(m[i].name) > 15) {
				fprintf(f, "%s/\n", m[i].name);
			}
		}
		if (long_len & 1) {
			fputc('\n', f);
		}
	}
	if (thin) {
		for (i = 0; i < n; i++) {
			char h[61];

			header_text(h, m[i].hdr_name, m[i].len);
			fwrite(h, 1, 60, f);
		}
		if (fflush(f) != 0 || ferror(f)) {
			rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
		}
		goto out;
	}
	/* The head is in the file before the members are copied in beside it. */
	if (fflush(f) != 0 || ferror(f)) {
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	/*
	 * The copies are made one after another: writes to one file take its
	 * inode's lock, so a second thread would only spin on it (measured).
	 */
	if ((failed = kw_pool_run_until(NULL, n, copy_member, &ms)) < n) {
		rc = kw_error_set(err, m[failed].err.code, "%s", m[failed].err.msg);
		goto out;
	}
	/* The stream's position stays where a writer after this one expects it: the end. */
	if (fseeko(f, (off_t)off, SEEK_SET) != 0) {
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
	}
out:
	for (i = 0; i < n; i++) {
		free(m[i].syms_own);
		if (m[i].name != names[i]) {
			free((char *)m[i].name);
		}
	}
	free(m);
	return rc;
}

int kw_km_write_archive(const char *path, const char *const *objects, const char *const *names, size_t n,
			const char *thin_dir, struct kw_error *err)
{
	struct km_out o;
	int rc = km_out_open(&o, path, err);

	if (!rc) {
		rc = km_archive_write(o.f, path, objects, names, n, NULL, NULL, thin_dir, err);
	}
	if (!rc) {
		rc = km_out_commit(&o, err);
	}
	km_out_discard(&o);
	return rc;
}

/* The decimal field of an ar header, which must be digits then spaces. */
static bool ar_number(const unsigned char *p, size_t n, uint64_t *v)
{
	size_t i = 0;

	*v = 0;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (*v > (UINT64_MAX - 9) / 10) {
			return false;
		}
		*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	if (i == 0) {
		return false;
	}
	for (; i < n; i++) {
		if (p[i] != ' ') {
			return false;
		}
	}
	return true;
}

/*
 * A thin member's path, as kwheel writes them: relative to the archive's
 * directory and inside it (no "..", no empty or absolute part), so what a
 * thin archive names is never a file elsewhere.
 */
static bool thin_path_ok(const char *p)
{
	const char *c = p;

	if (!*p || *p == '/') {
		return false;
	}
	while (*c) {
		const char *e = strchr(c, '/');
		size_t l = e ? (size_t)(e - c) : strlen(c);

		if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.')) {
			return false;
		}
		c += l + (e ? 1 : 0);
		if (e && !*c) {
			return false;
		}
	}
	return true;
}

int km_archive_each(const char *path, km_member_fn fn, void *ud, struct kw_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0, pos = 8, longlen = 0;
	const char *longnames = NULL;
	char *dir = NULL;
	bool thin;
	int rc = kw_map_file(path, &buf, &len, err);

	if (rc) {
		return rc;
	}
	thin = len >= 8 && memcmp(buf, "!<thin>\n", 8) == 0;
	if (len < 8 || (!thin && memcmp(buf, "!<arch>\n", 8) != 0)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an ar archive", path);
		goto out;
	}
	if (thin) {
		/* Absolute, so the paths it gives stay right for whoever reads them from elsewhere. */
		char *copy = kw_strdup(path), *slash = copy ? strrchr(copy, '/') : NULL;

		if (slash) {
			*slash = '\0';
		}
		dir = copy ? realpath(slash ? (*copy ? copy : "/") : ".", NULL) : NULL;
		free(copy);
		if (!dir) {
			rc = errno == ENOMEM ? kw_error_set(err, KW_ENOMEM, "out of memory")
					     : kw_error_set(err, KW_EIO, "'%s': %s", path, strerror(errno));
			goto out;
		}
	}
	while (!rc && pos < len) {
		const unsigned char *h = buf + pos;
		char name[256];
		uint64_t size;
		size_t nl;
		bool index;

		if (len - pos < 60 || h[58] != '`' || h[59] != '\n' || !ar_number(h + 48, 10, &size)) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': bad member header at byte %zu", path, pos);
			goto out;
		}
		index = (h[0] == '/' && h[1] == ' ') || memcmp(h, "/SYM64/ ", 8) == 0 ||
			(h[0] == '/' && h[1] == '/' && h[2] == ' ');
		/* Only the index and the long names are inside a thin archive; its members are files beside it. */
		if ((!thin || index) && size > len - pos - 60) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': bad member header at byte %zu", path, pos);
			goto out;
		}
		pos += 60;
		if ((h[0] == '/' && h[1] == ' ') || memcmp(h, "/SYM64/ ", 8) == 0) {
			/* the symbol index: rebuilt by whoever writes the members again */
		} else if (h[0] == '/' && h[1] == '/' && h[2] == ' ') {
			longnames = (const char *)buf + pos;
			longlen = (size_t)size;
		} else {
			const char *src = (const char *)h;
			size_t max = 16;
			uint64_t lo;

			if (h[0] == '/' && ar_number(h + 1, 15, &lo)) {
				if (!longnames || lo >= longlen) {
					rc = kw_error_set(err, KW_EFORMAT, "'%s': long member name out of range", path);
					goto out;
				}
				src = longnames + lo;
				max = longlen - (size_t)lo;
			}
			for (nl = 0; nl < max && nl < sizeof(name) - 1 && src[nl] != '\n' &&
				     !(src[nl] == '/' && (thin ? nl + 1 < max && src[nl + 1] == '\n' : true));
			     nl++) {
				name[nl] = src[nl];
			}
			if (thin && (nl == max || nl == sizeof(name) - 1)) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': member path without an end", path);
				goto out;
			}
			while (nl && name[nl - 1] == ' ') {
				nl--;
			}
			name[nl] = '\0';
			if (thin) {
				char *file;

				if (!thin_path_ok(name)) {
					rc = kw_error_set(err, KW_EFORMAT, "'%s': member path '%s' leaves the archive's directory",
							  path, name);
					goto out;
				}
				if (!(file = kw_asprintf("%s/%s", dir, name))) {
					rc = kw_error_set(err, KW_ENOMEM, "out of memory");
					goto out;
				}
				rc = fn(ud, strrchr(name, '/') ? strrchr(name, '/') + 1 : name, NULL, (size_t)size, file, err);
				free(file);
				continue;
			}
			rc = fn(ud, name, buf + pos, (size_t)size, NULL, err);
		}
		pos += (size_t)size + (size & 1);
	}
out:
	free(dir);
	kw_unmap_file(buf, len);
	return rc;
}
