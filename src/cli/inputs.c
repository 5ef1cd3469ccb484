/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "inputs.h"

#define MAX_DIR_DEPTH 32

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int walk_dir(const char *dir, unsigned depth, struct kw_strv *out, struct kw_error *err)
{
	struct kw_strv names = { 0 };
	struct dirent *de;
	DIR *d;
	size_t i;
	int rc = 0;

	if (depth > MAX_DIR_DEPTH) {
		return kw_error_set(err, KW_ELIMIT, "'%s': directories nested too deep", dir);
	}
	d = opendir(dir);
	if (!d) {
		return kw_error_set(err, KW_EIO, "cannot open directory '%s': %s", dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (kw_strv_push(&names, de->d_name)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
	}
	/* Sorted, so output order does not depend on the filesystem. */
	kw_strv_sort(&names);
	for (i = 0; i < names.n; i++) {
		char *p = kw_asprintf("%s%s%s", dir, ends_with(dir, "/") ? "" : "/", names.v[i]);
		struct stat st;

		if (!p) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			rc = walk_dir(p, depth + 1, out, err);
			free(p);
			if (rc) {
				goto out;
			}
			continue;
		}
		if (ends_with(names.v[i], ".whl")) {
			if (kw_strv_push_take(out, p)) {
				free(p);
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
			continue;
		}
		free(p);
	}
out:
	closedir(d);
	kw_strv_release(&names);
	return rc;
}

static int read_stdin(struct kw_strv *out, struct kw_error *err)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
			line[--n] = '\0';
		}
		if (n == 0) {
			continue;
		}
		if (kw_strv_push(out, line)) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			break;
		}
	}
	free(line);
	return rc;
}

int kw_cli_collect_wheels(char **args, size_t n, struct kw_strv *out, struct kw_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		struct stat st;

		if (strcmp(args[i], "-") == 0) {
			rc = read_stdin(out, err);
		} else if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			rc = walk_dir(args[i], 0, out, err);
		} else if (ends_with(args[i], "/")) {
			/* Meant as a directory: fails as one that cannot be opened would, named whole. */
			rc = kw_error_set(err, KW_EIO, "cannot open directory '%s': %s", args[i],
					  stat(args[i], &st) == 0 ? strerror(ENOTDIR) : strerror(errno));
		} else {
			/* A missing file is reported per wheel, not here. */
			rc = kw_strv_push(out, args[i]) ? kw_error_set(err, KW_ENOMEM, "out of memory") : 0;
		}
		if (rc) {
			return rc;
		}
	}
	return 0;
}

int kw_cli_check_input(const char *path, struct kw_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		return kw_error_set(err, KW_EIO, "cannot access '%s': %s", path,
				    errno == ENOENT ? "no such file" : strerror(errno));
	}
	return 0;
}
