/* SPDX-License-Identifier: MIT */
/* Path handling for the resolver: dynamic string tokens, normalisation, symlinks under a root. */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

const char *kw_resolve_triplet(const struct kw_elf_info *info)
{
	if (!info) {
		return "x86_64-linux-gnu";
	}
	switch (info->machine) {
	case EM_X86_64: return info->elfclass == ELFCLASS64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32";
	case EM_386: return "i386-linux-gnu";
	case EM_AARCH64: return "aarch64-linux-gnu";
	case EM_ARM: return (info->e_flags & 0x400) ? "arm-linux-gnueabihf" : "arm-linux-gnueabi";
	case EM_PPC64: return info->data == ELFDATA2LSB ? "powerpc64le-linux-gnu" : "powerpc64-linux-gnu";
	case EM_S390: return "s390x-linux-gnu";
	case EM_RISCV: return "riscv64-linux-gnu";
	case EM_MIPS: return info->data == ELFDATA2LSB ? "mips64el-linux-gnuabi64" : "mips64-linux-gnuabi64";
	case 258: return "loongarch64-linux-gnu";
	}
	return "unknown-linux-gnu";
}

static const char *platform_token(const struct kw_elf_info *info)
{
	const char *a = info ? kw_elf_arch(info) : "x86_64";

	return a ? a : "unknown";
}

/* Length of a token at s ("ORIGIN" or "{ORIGIN}"), 0 if it is not that token. */
static size_t token_len(const char *s, const char *name)
{
	size_t n = strlen(name);

	if (s[0] == '{') {
		return strncmp(s + 1, name, n) == 0 && s[n + 1] == '}' ? n + 2 : 0;
	}
	if (strncmp(s, name, n) != 0) {
		return 0;
	}
	/* "$ORIGINAL" is not "$ORIGIN" followed by "AL". */
	return (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
	       (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ? 0 : n;
}

int kw_resolve_expand(const char *entry, const char *origin, const struct kw_elf_info *info, char **out,
		      struct kw_error *err)
{
	size_t cap = strlen(entry) + 1, len = 0;
	char libdir[64];
	char *buf;
	const char *p;

	*out = NULL;
	for (p = entry; *p; p++) {
		if (*p == '$') {
			cap += PATH_MAX;
		}
	}
	buf = kw_malloc(cap);
	if (!buf) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (p = entry; *p;) {
		const char *rep = NULL;
		size_t tl = 0;

		if (*p == '$') {
			if ((tl = token_len(p + 1, "ORIGIN")) != 0) {
				rep = origin ? origin : "";
			} else if ((tl = token_len(p + 1, "LIB")) != 0) {
				/* $LIB and $PLATFORM as Debian's glibc of that architecture expands them. */
				snprintf(libdir, sizeof(libdir), "lib/%s", kw_resolve_triplet(info));
				rep = libdir;
			} else if ((tl = token_len(p + 1, "PLATFORM")) != 0) {
				rep = platform_token(info);
			}
		}
		if (rep) {
			size_t rl = strlen(rep);

			if (rl > cap - len - 1 - strlen(p + 1 + tl)) {
				free(buf);
				return kw_error_set(err, KW_ELIMIT, "path entry '%s' expands too long", entry);
			}
			memcpy(buf + len, rep, rl);
			len += rl;
			p += 1 + tl;
			continue;
		}
		/* Unknown "$NAME" stays as it is written, as the loader leaves it. */
		buf[len++] = *p++;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* Fold "." and ".." and repeated slashes of an absolute path, in place. */
void kw_resolve_normalize(char *path)
{
	char *out = path, *p = path;

	while (*p) {
		while (*p == '/') {
			p++;
		}
		if (!*p) {
			break;
		}
		if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
			p += 1;
			continue;
		}
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
			p += 2;
			while (out > path && *--out != '/') {
			}
			continue;
		}
		*out++ = '/';
		while (*p && *p != '/') {
			*out++ = *p++;
		}
	}
	if (out == path) {
		*out++ = '/';
	}
	*out = '\0';
}

/*
 * Resolve symlinks of abspath as if root were "/": absolute link targets are
 * taken under root, ".." never climbs above it. Returns a new path without
 * the root prefix, or NULL with *status set (KW_ENOTFOUND, KW_ELIMIT, KW_ENOMEM).
 */
char *kw_resolve_realpath(const char *root, const char *abspath, int *status)
{
	char *todo = NULL, *done = NULL, *link = NULL, *full = NULL;
	size_t cap = PATH_MAX * 2;
	int links = 0;
	char *result = NULL;

	*status = KW_ENOMEM;
	todo = kw_malloc(cap);
	done = kw_malloc(cap);
	link = kw_malloc(PATH_MAX);
	full = kw_malloc(cap + strlen(root) + 2);
	if (!todo || !done || !link || !full) {
		goto out;
	}
	if (strlen(abspath) >= cap) {
		*status = KW_ELIMIT;
		goto out;
	}
	strcpy(todo, abspath);
	done[0] = '\0';
	/* todo holds what is left to walk; done the resolved prefix (no trailing slash). */
	while (todo[0]) {
		char *p = todo, *comp;
		size_t clen, dlen;
		struct stat st;
		ssize_t n;

		while (*p == '/') {
			p++;
		}
		if (!*p) {
			break;
		}
		comp = p;
		while (*p && *p != '/') {
			p++;
		}
		clen = (size_t)(p - comp);
		if (clen == 1 && comp[0] == '.') {
			memmove(todo, p, strlen(p) + 1);
			continue;
		}
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			char *s = strrchr(done, '/');

			if (s) {
				*s = '\0';
			}
			memmove(todo, p, strlen(p) + 1);
			continue;
		}
		dlen = strlen(done);
		if (dlen + 1 + clen >= cap) {
			*status = KW_ELIMIT;
			goto out;
		}
		done[dlen] = '/';
		memcpy(done + dlen + 1, comp, clen);
		done[dlen + 1 + clen] = '\0';
		memmove(todo, p, strlen(p) + 1);
		strcpy(full, root);
		strcat(full, done);
		if (lstat(full, &st) != 0) {
			*status = KW_ENOTFOUND;
			goto out;
		}
		if (!S_ISLNK(st.st_mode)) {
			continue;
		}
		if (++links > 40) {
			*status = KW_ELIMIT;
			goto out;
		}
		n = readlink(full, link, PATH_MAX - 1);
		if (n < 0) {
			*status = KW_ENOTFOUND;
			goto out;
		}
		link[n] = '\0';
		if ((size_t)n + strlen(todo) + 2 >= cap) {
			*status = KW_ELIMIT;
			goto out;
		}
		/* The target replaces the component: rest of the walk goes after it. */
		memmove(todo + n + 1, todo, strlen(todo) + 1);
		memcpy(todo, link, (size_t)n);
		todo[n] = '/';
		if (link[0] == '/') {
			done[0] = '\0';
		} else {
			*strrchr(done, '/') = '\0';
		}
	}
	result = kw_strdup(done[0] ? done : "/");
	*status = result ? 0 : KW_ENOMEM;
out:
	free(todo);
	free(done);
	free(link);
	free(full);
	return result;
}
