/* SPDX-License-Identifier: MIT */
/*
 * Plugins a library loads by path at run time (OpenSSL's providers and
 * engines, from the MODULESDIR and ENGINESDIR compiled into libcrypto): no
 * DT_NEEDED names them, so the dependency walk never finds them. The
 * library's own bytes do: an absolute path string naming a directory of
 * shared objects, or a shared object. Only system libraries are asked (a
 * wheel does not choose host files to convert), and only paths without
 * "." or ".." components.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kwheel/elf-decode.h"
#include "kwheel/elf.h"
#include "kwheel/km.h"

#include "internal.h"

/* Plugins per library at most: a directory of hundreds of .so files is not a plugin directory. */
#define MAX_PLUGINS 32

/* An absolute path with no empty, "." or ".." component, of reasonable length and plain bytes. */
static bool plain_path(const char *s, size_t n)
{
	size_t i, start = 1;

	if (n < 2 || n > 255 || s[0] != '/') {
		return false;
	}
	for (i = 1; i <= n; i++) {
		if (i == n || s[i] == '/') {
			size_t cl = i - start;

			if (cl == 0 || (cl == 1 && s[start] == '.') || (cl == 2 && s[start] == '.' && s[start + 1] == '.')) {
				return false;
			}
			start = i + 1;
			continue;
		}
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

static bool ends_with_so(const char *s)
{
	size_t n = strlen(s);

	return n > 3 && strcmp(s + n - 3, ".so") == 0;
}

/* Is the file at rooted a shared object (ELF ET_DYN), by its header? */
static bool is_shared_object(const char *rooted)
{
	unsigned char h[18];
	FILE *f = fopen(rooted, "rb");
	size_t got;

	if (!f) {
		return false;
	}
	got = fread(h, 1, sizeof(h), f);
	fclose(f);
	return got == sizeof(h) && memcmp(h, "\177ELF", 4) == 0 && h[16] == 3 /* ET_DYN, little-endian */ && h[17] == 0;
}

/* path (absolute) under root ("" or "/" for the real root): a new string. */
static char *rooted_path(const char *root, const char *path)
{
	return root && *root && strcmp(root, "/") != 0 ? kw_asprintf("%s%s", root, path) : kw_strdup(path);
}

/* Add path (unrooted) if it is a regular shared-object file under root and not there yet. */
static int add_plugin(const char *root, const char *path, struct kw_strv *out)
{
	char *rooted = rooted_path(root, path);
	struct stat st;
	int rc = 0;

	if (!rooted) {
		return KW_ENOMEM;
	}
	if (lstat(rooted, &st) == 0 && S_ISREG(st.st_mode) && is_shared_object(rooted) &&
	    kw_strv_find(out, path) < 0) {
		rc = kw_strv_push(out, path);
	}
	free(rooted);
	return rc;
}

/* The plugins named by the strings that start in [pos, end) of buf; *found counts them. */
static int scan(const char *root, const unsigned char *buf, size_t len, size_t pos, size_t end, size_t *found,
		struct kw_strv *out)
{
	int rc = 0;

	/*
	 * The candidates are the NUL-terminated strings that start with '/':
	 * look for the slashes, which are rare in code and data, rather than
	 * cut the file at every NUL, which are most of a library's bytes.
	 */
	while (!rc && pos < end && *found < MAX_PLUGINS) {
		const char *s = memchr(buf + pos, '/', end - pos), *nul;
		size_t at, n;
		char *path, *rooted;
		struct stat st;

		if (!s) {
			break;
		}
		at = (size_t)((const unsigned char *)s - buf);
		pos = at + 1;
		if (at > 0 && buf[at - 1] != '\0') {
			continue;
		}
		/* plain_path takes 255 bytes at most: no need to look further for the end. */
		nul = memchr(s, '\0', len - at < 257 ? len - at : 257);
		n = nul ? (size_t)(nul - s) : 0;
		if (!nul || !plain_path(s, n)) {
			continue;
		}
		pos = at + n + 1;
		if (!(path = kw_strndup(s, n)) || !(rooted = rooted_path(root, path))) {
			free(path);
			return KW_ENOMEM;
		}
		if (lstat(rooted, &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *d = opendir(rooted);
			struct dirent *de;
			struct kw_strv names = { 0 };
			size_t i;

			while (!rc && d && (de = readdir(d)) != NULL) {
				if (ends_with_so(de->d_name)) {
					rc = kw_strv_push(&names, de->d_name);
				}
			}
			if (d) {
				closedir(d);
			}
			kw_strv_sort(&names);
			for (i = 0; !rc && i < names.n && names.n <= MAX_PLUGINS; i++) {
				char *p = kw_asprintf("%s/%s", path, names.v[i]);
				size_t before = out->n;

				rc = p ? add_plugin(root, p, out) : KW_ENOMEM;
				*found += out->n - before;
				free(p);
			}
			kw_strv_release(&names);
		} else if (ends_with_so(path)) {
			size_t before = out->n;

			rc = add_plugin(root, path, out);
			*found += out->n - before;
		}
		free(rooted);
		free(path);
	}
	return rc;
}

/*
 * A path compiled in is data, read-only (.rodata) or, for a char array,
 * writable (.data). Once the linker keeps code apart (binutils' -z
 * separate-code, the default on x86_64 since 2.31) .rodata has a loaded
 * segment of its own, neither executable nor writable, and no data lies in
 * an executable one: then only the loaded segments without PF_X are looked
 * at, a fraction of a large C++ library. A file laid out the older way
 * (.rodata inside the executable segment: no read-only one), or whose
 * headers do not read, is looked at whole.
 */
int km_find_plugins(const char *root, const unsigned char *buf, size_t len, struct kw_strv *out)
{
	struct kw_elf_raw r;
	struct kw_elf_ehdr eh;
	struct kw_elf_phdr ph;
	size_t found = 0, i;
	bool separate = false;
	int rc = 0;

	if (kw_elf_raw_init(&r, buf, len) != KW_ELF_IDENT_OK || !kw_elf_get_ehdr(&r, &eh)) {
		return scan(root, buf, len, 0, len, &found, out);
	}
	for (i = 0; i < eh.phnum && !separate; i++) {
		if (!kw_elf_get_phdr(&r, eh.phoff + i * (uint64_t)kw_elf_phent_size(&r), &ph)) {
			break;
		}
		separate = ph.type == 1 /* PT_LOAD */ && !(ph.flags & 3 /* PF_X | PF_W */) && ph.filesz > 0;
	}
	if (!separate) {
		return scan(root, buf, len, 0, len, &found, out);
	}
	for (i = 0; !rc && i < eh.phnum; i++) {
		if (!kw_elf_get_phdr(&r, eh.phoff + i * (uint64_t)kw_elf_phent_size(&r), &ph)) {
			break;
		}
		if (ph.type == 1 /* PT_LOAD */ && !(ph.flags & 1 /* PF_X */) && kw_elf_in_file(&r, ph.offset, ph.filesz)) {
			rc = scan(root, buf, len, (size_t)ph.offset, (size_t)(ph.offset + ph.filesz), &found, out);
		}
	}
	return rc;
}
