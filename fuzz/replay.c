/* SPDX-License-Identifier: MIT */
/*
 * Runs a harness over files without libFuzzer, so the normal (and the
 * sanitizer) build replays the saved crashes and the seed corpus as tests.
 * Arguments are files or directories (their files, not recursively).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-common.h"

static int one(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long len = 0;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		return 1;
	}
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		return 1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int i, n = 0, bad = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) != 0) {
			continue; /* a corpus directory that does not exist yet */
		}
		if (!S_ISDIR(st.st_mode)) {
			bad |= one(argv[i]);
			n++;
			continue;
		}
		if (!(d = opendir(argv[i]))) {
			return 1;
		}
		while ((de = readdir(d)) != NULL) {
			char p[4096];

			if (de->d_name[0] == '.' || strstr(de->d_name, ".md")) {
				continue;
			}
			snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
			bad |= one(p);
			n++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", n);
	return bad;
}
