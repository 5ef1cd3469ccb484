/* SPDX-License-Identifier: MIT */
/*
 * A GNU ar archive with a symbol index, deterministic (zero dates and ids),
 * so the linker pulls lib-mode members by the names they define and `ar t`
 * and `nm -s` read it.
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
	const char *name;
	unsigned char *data;   /* mapped only while its symbols are read */
	size_t len;
	struct kw_strv syms;   /* global definitions */
	uint64_t hdr_off;
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

	(void)e;
	(void)syms;
	(void)i;
	if (sym->st_shndx == SHN_UNDEF) {
		return 0;
	}
	return kw_strv_push(&m->syms, name) ? KW_ENOMEM : 0;
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

static void header(FILE *f, const char *name, uint64_t size)
{
	char h[61];

	snprintf(h, sizeof(h), "%-16s%-12s%-6s%-6s%-8s%-10llu`\n", name, "0", "0", "0", "644",
		 (unsigned long long)size);
	fwrite(h, 1, 60, f);
}

static void be32(FILE *f, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			       (unsigned char)v };

	fwrite(b, 1, 4, f);
}

int km_archive_write(FILE *f, const char *path, const char *const *objects, const char *const *names, size_t n,
		     struct kw_error *err)
{
	struct member *m = kw_calloc(n ? n : 1, sizeof(*m));
	struct kw_strv longnames = { 0 };
	size_t i, k, n_syms = 0, str_len = 0, long_len = 0;
	uint64_t off;
	int rc = 0, fd;

	if (!m) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/*
	 * Each object is mapped for its symbols, then let go: the bytes are
	 * copied from the file by the kernel when its turn comes, so memory
	 * is one object at a time, not the archive (a closure's is 500 MB).
	 */
	for (i = 0; !rc && i < n; i++) {
		m[i].name = names[i];
		rc = kw_map_file(objects[i], &m[i].data, &m[i].len, err);
		if (!rc) {
			rc = defined_globals(&m[i], err);
			kw_unmap_file(m[i].data, m[i].len);
			m[i].data = NULL;
		}
		for (k = 0; !rc && k < m[i].syms.n; k++) {
			str_len += strlen(m[i].syms.v[k]) + 1;
			n_syms++;
		}
		if (strlen(names[i]) > 15) {
			long_len += strlen(names[i]) + 2;
		}
	}
	if (rc) {
		goto out;
	}
	/* Member offsets: magic, index member, long-name member, then each member. */
	off = 8 + 60 + 4 + 4 * (uint64_t)n_syms + str_len;
	off += off & 1;
	if (long_len) {
		off += 60 + long_len + (long_len & 1);
	}
	for (i = 0; i < n; i++) {
		m[i].hdr_off = off;
		off += 60 + m[i].len + (m[i].len & 1);
	}
	fwrite("!<arch>\n", 1, 8, f);
	header(f, "/", 4 + 4 * (uint64_t)n_syms + str_len);
	be32(f, (uint32_t)n_syms);
	for (i = 0; i < n; i++) {
		for (k = 0; k < m[i].syms.n; k++) {
			be32(f, (uint32_t)m[i].hdr_off);
		}
	}
	for (i = 0; i < n; i++) {
		for (k = 0; k < m[i].syms.n; k++) {
			fwrite(m[i].syms.v[k], 1, strlen(m[i].syms.v[k]) + 1, f);
		}
	}
	if ((4 + 4 * n_syms + str_len) & 1) {
		fputc('\n', f);
	}
	if (long_len) {
		header(f, "//", long_len);
		for (i = 0; i < n; i++) {
			if (strlen(names[i]) > 15) {
				fprintf(f, "%s/\n", names[i]);
			}
		}
		if (long_len & 1) {
			fputc('\n', f);
		}
	}
	for (i = 0, k = 0; i < n; i++) {
		char nm[32];

		if (strlen(names[i]) > 15) {
			snprintf(nm, sizeof(nm), "/%zu", k);
			k += strlen(names[i]) + 2;
		} else {
			snprintf(nm, sizeof(nm), "%s/", names[i]);
		}
		header(f, nm, m[i].len);
		if (fflush(f) != 0) {
			break;
		}
		fd = open(objects[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || kw_copy_range(fd, 0, fileno(f), m[i].len) < 0) {
			rc = kw_error_set(err, KW_EIO, "cannot copy '%s' into '%s': %s", objects[i], path, strerror(errno));
			if (fd >= 0) {
				close(fd);
			}
			goto out;
		}
		close(fd);
		/* The stream goes on where the copy left the file. */
		if (fseeko(f, 0, SEEK_END) != 0) {
			break;
		}
		if (m[i].len & 1) {
			fputc('\n', f);
		}
	}
	if (i < n || ferror(f)) {
		rc = kw_error_set(err, KW_EIO, "cannot write '%s': %s", path, strerror(errno));
	}
out:
	for (i = 0; i < n; i++) {
		kw_strv_release(&m[i].syms);
	}
	kw_strv_release(&longnames);
	free(m);
	return rc;
}

int kw_km_write_archive(const char *path, const char *const *objects, const char *const *names, size_t n,
			struct kw_error *err)
{
	struct km_out o;
	int rc = km_out_open(&o, path, err);

	if (!rc) {
		rc = km_archive_write(o.f, path, objects, names, n, err);
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

int km_archive_each(const char *path, km_member_fn fn, void *ud, struct kw_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0, pos = 8, longlen = 0;
	const char *longnames = NULL;
	int rc = kw_map_file(path, &buf, &len, err);

	if (rc) {
		return rc;
	}
	if (len < 8 || memcmp(buf, "!<arch>\n", 8) != 0) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not an ar archive", path);
		goto out;
	}
	while (!rc && pos < len) {
		const unsigned char *h = buf + pos;
		char name[256];
		uint64_t size;
		size_t nl;

		if (len - pos < 60 || h[58] != '`' || h[59] != '\n' || !ar_number(h + 48, 10, &size) ||
		    size > len - pos - 60) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': bad member header at byte %zu", path, pos);
			goto out;
		}
		pos += 60;
		if (h[0] == '/' && h[1] == ' ') {
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
			for (nl = 0; nl < max && nl < sizeof(name) - 1 && src[nl] != '/' && src[nl] != '\n'; nl++) {
				name[nl] = src[nl];
			}
			while (nl && name[nl - 1] == ' ') {
				nl--;
			}
			name[nl] = '\0';
			rc = fn(ud, name, buf + pos, (size_t)size, err);
		}
		pos += (size_t)size + (size & 1);
	}
out:
	kw_unmap_file(buf, len);
	return rc;
}
