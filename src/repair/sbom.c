/* SPDX-License-Identifier: MIT */
/*
 * The SBOM of a repaired wheel: which distribution package each vendored
 * library came from, found the way `dpkg -S` and `dpkg -s` find it, but by
 * reading dpkg's database under ctx->root instead of running dpkg (which
 * knows only the host's).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kw-config.h"

#include "kwheel/util.h"

#include "internal.h"

#define MAX_CANDIDATES 4

/* The package that installed a library, or all NULL. */
struct owner {
	char *package;   /* "libffi8" (the ":amd64" of a multi-arch package dropped, as dpkg -S prints it) */
	char *version;   /* "3.4.4-1" */
};

/*
 * Each *.list file of var/lib/dpkg/info names the files one package
 * installed, one absolute path a line: one pass over them all answers every
 * library at once, each line looked up in a map of the libraries' candidate
 * paths (a scan of them per line was a second of a 272-library repair).
 */
static void find_owners(struct kw_ctx *ctx, char *const (*cand)[MAX_CANDIDATES], size_t n_libs, struct owner *own,
			bool *oom)
{
	char *dir = kw_ctx_rooted(ctx, "/var/lib/dpkg/info");
	struct kw_strv names = { 0 };
	struct kw_strmap paths = { 0 };
	struct dirent *e;
	DIR *d;
	size_t i, k;

	/* The first library of a path answers for it, as the scan in order did. */
	for (i = 0; !*oom && i < n_libs; i++) {
		for (k = 0; k < MAX_CANDIDATES && cand[i][k]; k++) {
			*oom = *oom || kw_strmap_add(&paths, cand[i][k], i) < 0;
		}
	}
	d = dir && !*oom ? opendir(dir) : NULL;
	while (d && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l > 5 && strcmp(e->d_name + l - 5, ".list") == 0 && kw_strv_push(&names, e->d_name)) {
			*oom = true;
			break;
		}
	}
	if (d) {
		closedir(d);
	}
	*oom = *oom || !dir;
	/* Sorted: when two packages list one path, the answer does not depend on the directory order. */
	kw_strv_sort(&names);
	for (i = 0; !*oom && i < names.n; i++) {
		char *path = kw_asprintf("%s/%s", dir, names.v[i]);
		unsigned char *buf = NULL;
		size_t len = 0, off = 0;
		struct kw_error err = { 0 };

		*oom = !path;
		if (!path || kw_map_file(path, &buf, &len, &err)) {
			free(path);
			continue;
		}
		while (off < len) {
			const char *line = (const char *)buf + off;
			const char *nl = memchr(line, '\n', len - off);
			size_t n = nl ? (size_t)(nl - line) : len - off;
			long hit = kw_strmap_get_n(&paths, line, n);

			off += n + (nl ? 1 : 0);
			if (hit >= 0 && !own[hit].package) {
				size_t pl = strlen(names.v[i]) - 5;
				const char *colon = memchr(names.v[i], ':', pl);

				own[hit].package = kw_strndup(names.v[i], colon ? (size_t)(colon - names.v[i]) : pl);
				*oom = *oom || !own[hit].package;
			}
		}
		kw_unmap_file(buf, len);
		free(path);
	}
	kw_strv_release(&names);
	kw_strmap_release(&paths);
	free(dir);
}

static const char *find_bytes(const char *h, size_t hl, const char *n, size_t nl)
{
	size_t i;

	for (i = 0; nl <= hl && i <= hl - nl; i++) {
		if (memcmp(h + i, n, nl) == 0) {
			return h + i;
		}
	}
	return NULL;
}

/* The value of "Field: value" in the paragraph [p, end), as a new string, or NULL. */
static char *field(const char *p, const char *end, const char *name, bool *oom)
{
	size_t nl = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (n > nl + 1 && memcmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (v < p + n && (*v == ' ' || *v == '\t')) {
				v++;
			}
			char *s = kw_strndup(v, (size_t)(p + n - v));

			*oom = *oom || !s;
			return s;
		}
		p += n + 1;
	}
	return NULL;
}

/* Versions from var/lib/dpkg/status: the installed paragraph of each package, as `dpkg -s` shows it. */
static void find_versions(struct kw_ctx *ctx, struct owner *own, size_t n_libs, bool *oom)
{
	char *path = kw_ctx_rooted(ctx, "/var/lib/dpkg/status");
	unsigned char *buf = NULL;
	size_t len = 0, off = 0, i;
	struct kw_error err = { 0 };

	*oom = *oom || !path;
	if (!path || kw_map_file(path, &buf, &len, &err)) {
		free(path);
		return;
	}
	while (off < len && !*oom) {
		const char *para = (const char *)buf + off, *end;
		const char *blank = find_bytes(para, len - off, "\n\n", 2);
		char *pkg, *status, *ver;

		/* A paragraph ends at an empty line. */
		end = blank ? blank + 1 : (const char *)buf + len;
		off = blank ? (size_t)(blank - (const char *)buf) + 2 : len;
		pkg = field(para, end, "Package", oom);
		status = field(para, end, "Status", oom);
		ver = field(para, end, "Version", oom);
		for (i = 0; pkg && ver && status && strstr(status, " installed") && i < n_libs; i++) {
			if (own[i].package && !own[i].version && strcmp(own[i].package, pkg) == 0) {
				own[i].version = kw_strdup(ver);
				*oom = *oom || !own[i].version;
			}
		}
		free(pkg);
		free(status);
		free(ver);
	}
	kw_unmap_file(buf, len);
	free(path);
}

/* The distribution's ID from etc/os-release ("debian"; ID=debian or ID="debian"), or NULL. */
static char *distro_id(struct kw_ctx *ctx, bool *oom)
{
	char *path = kw_ctx_rooted(ctx, "/etc/os-release"), *id = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, off = 0;
	struct kw_error err = { 0 };

	*oom = *oom || !path;
	if (!path || kw_map_file(path, &buf, &len, &err)) {
		free(path);
		return NULL;
	}
	while (off < len && !id) {
		const char *line = (const char *)buf + off, *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;

		off += n + 1;
		if (n > 3 && strncmp(line, "ID=", 3) == 0) {
			bool quoted = n > 5 && line[3] == '"' && line[n - 1] == '"';

			id = quoted ? kw_strndup(line + 4, n - 5) : kw_strndup(line + 3, n - 3);
			*oom = *oom || !id;
		}
	}
	kw_unmap_file(buf, len);
	free(path);
	if (id && !*id) {
		free(id);
		id = NULL;
	}
	return id;
}

/* Percent-encoding of everything but letters, digits and "-._~", as purl components want. */
static void quote(struct kw_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
			kw_buf_append_n(b, s, 1);
		} else {
			kw_buf_appendf(b, "%%%02X", c);
		}
	}
}

/* Where a merged-/usr system may list a file: "/usr/lib/x" is also "/lib/x", and the other way round. */
static char *usrmerge_alias(const char *p)
{
	if (!p) {
		return NULL;
	}
	if (strncmp(p, "/usr/lib/", 9) == 0) {
		return kw_strdup(p + 4);
	}
	if (strncmp(p, "/lib/", 5) == 0) {
		return kw_asprintf("/usr%s", p);
	}
	return NULL;
}

int kw_repair_sbom(struct kw_ctx *ctx, const struct kw_wheel_name *name, const char *out_name,
		   const struct kw_sbom_lib *libs, size_t n_libs, kw_sbom_render_fn render, char **out,
		   struct kw_error *err)
{
	char *(*cand)[MAX_CANDIDATES] = kw_calloc(n_libs + 1, sizeof(*cand));
	struct owner *own = kw_calloc(n_libs + 1, sizeof(*own));
	struct kw_sbom_component *comps = kw_calloc(n_libs + 1, sizeof(*comps));
	char **owned = kw_calloc(2 * n_libs + 1, sizeof(*owned)); /* refs and purls made here */
	struct kw_buf b = { 0 };
	bool oom = false;
	char *distro = distro_id(ctx, &oom), *purl = NULL;
	size_t i, n_owned = 0;
	int rc = KW_ENOMEM;

	*out = NULL;
	if (!cand || !own || !comps || !owned) {
		goto out;
	}
	for (i = 0; i < n_libs; i++) {
		cand[i][0] = kw_strdup(libs[i].realpath);
		cand[i][1] = libs[i].path && strcmp(libs[i].path, libs[i].realpath) ? kw_strdup(libs[i].path) : NULL;
		cand[i][2] = usrmerge_alias(libs[i].realpath);
		cand[i][3] = cand[i][1] ? usrmerge_alias(libs[i].path) : NULL;
		/* Each alias is NULL only when there is none or the allocation failed. */
		if (!cand[i][0] || (libs[i].path && strcmp(libs[i].path, libs[i].realpath) && !cand[i][1]) ||
		    (!cand[i][2] && (!strncmp(libs[i].realpath, "/lib/", 5) || !strncmp(libs[i].realpath, "/usr/lib/", 9))) ||
		    (cand[i][1] && !cand[i][3] && (!strncmp(cand[i][1], "/lib/", 5) || !strncmp(cand[i][1], "/usr/lib/", 9)))) {
			goto out;
		}
	}
	find_owners(ctx, (char *const (*)[MAX_CANDIDATES])cand, n_libs, own, &oom);
	if (!oom) {
		find_versions(ctx, own, n_libs, &oom);
	}
	/* A lookup cut short would describe a library wrongly: no SBOM rather than a wrong one. */
	if (oom) {
		goto out;
	}
	kw_buf_append(&b, "pkg:pypi/");
	quote(&b, name->distribution);
	kw_buf_append(&b, "@");
	quote(&b, name->version);
	kw_buf_append(&b, "?file_name=");
	quote(&b, out_name);
	purl = kw_buf_take(&b);
	if (!purl) {
		goto out;
	}
	for (i = 0; i < n_libs; i++) {
		const struct kw_sbom_lib *l = &libs[i];
		struct kw_sbom_component *c = &comps[i];

		if (own[i].package && own[i].version && distro) {
			struct kw_sha256 h;
			unsigned char dig[32];
			char hex[65], *lpurl;

			kw_buf_append(&b, "pkg:deb/");
			quote(&b, distro);
			kw_buf_append(&b, "/");
			quote(&b, own[i].package);
			kw_buf_append(&b, "@");
			quote(&b, own[i].version);
			lpurl = owned[n_owned++] = kw_buf_take(&b);
			/* One component per file, as auditwheel: the package's purl and a digest of the path. */
			kw_sha256_init(&h);
			kw_sha256_update(&h, l->realpath, strlen(l->realpath));
			kw_sha256_final(&h, dig);
			kw_hex(dig, 32, hex);
			c->ref = owned[n_owned++] = lpurl ? kw_asprintf("%s#%s", lpurl, hex) : NULL;
			c->name = own[i].package;
			c->version = own[i].version;
			c->purl = lpurl;
		} else {
			/* No package owns it (built by hand, another root): the file itself, by digest. */
			c->ref = l->member;
			c->name = l->soname;
			c->sha256 = l->sha256;
			c->source_path = l->realpath;
			c->wheel_path = l->member;
		}
		if (!c->ref) {
			goto out;
		}
	}
	{
		struct kw_sbom doc = {
			.tool = "kwheel",
			.tool_version = KW_VERSION,
			.wheel = { .ref = purl, .name = name->distribution, .version = name->version, .purl = purl },
			.libs = comps,
			.n_libs = n_libs,
		};

		rc = render(&doc, out, err);
	}
out:
	if (rc == KW_ENOMEM && !*out) {
		kw_error_set(err, rc, "out of memory describing the vendored libraries");
	}
	for (i = 0; cand && i < n_libs; i++) {
		size_t k;

		for (k = 0; k < MAX_CANDIDATES; k++) {
			free(cand[i][k]);
		}
	}
	for (i = 0; own && i < n_libs; i++) {
		free(own[i].package);
		free(own[i].version);
	}
	for (i = 0; i < n_owned; i++) {
		free(owned[i]);
	}
	free(owned);
	free(comps);
	free(cand);
	free(own);
	free(distro);
	free(purl);
	kw_buf_release(&b);
	return rc;
}
