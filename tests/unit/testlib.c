/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

const char *kwt_source_root(void) { return env_or("KW_SOURCE_ROOT", "."); }
const char *kwt_build_root(void) { return env_or("KW_BUILD_ROOT", "."); }
const char *kwt_corpus(void) { return env_or("KW_CORPUS", "build/corpus"); }
const char *kwt_kwheel(void) { return env_or("KWHEEL", "kwheel"); }

char *kwt_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	return s;
}

char *kwt_mkdtemp(void)
{
	char *t = kwt_fmt("%s/kwheel-test-XXXXXX", env_or("TMPDIR", "/tmp"));

	ck_assert_ptr_nonnull(mkdtemp(t));
	return t;
}

void kwt_rmtree(const char *dir)
{
	char *cmd;

	if (!dir || strlen(dir) < 8) {
		return;
	}
	cmd = kwt_fmt("rm -rf '%s'", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", dir);
	}
	free(cmd);
}

static char *slurp_fd(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

int kwt_run(const char *cmd, char **out, char **err)
{
	char *ofile = kwt_fmt("%s/kwt-out-XXXXXX", env_or("TMPDIR", "/tmp"));
	char *efile = kwt_fmt("%s/kwt-err-XXXXXX", env_or("TMPDIR", "/tmp"));
	int ofd = mkstemp(ofile), efd = mkstemp(efile);
	char *full;
	int st;

	ck_assert_int_ge(ofd, 0);
	ck_assert_int_ge(efd, 0);
	full = kwt_fmt("(%s) >'%s' 2>'%s' </dev/null", cmd, ofile, efile);
	st = system(full);
	free(full);
	if (out) {
		lseek(ofd, 0, SEEK_SET);
		*out = slurp_fd(ofd);
	}
	if (err) {
		lseek(efd, 0, SEEK_SET);
		*err = slurp_fd(efd);
	}
	close(ofd);
	close(efd);
	unlink(ofile);
	unlink(efile);
	free(ofile);
	free(efile);
	if (st == -1 || !WIFEXITED(st)) {
		return -1;
	}
	return WEXITSTATUS(st);
}

char *kwt_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	char *buf;
	struct stat sb;

	if (fd < 0) {
		return NULL;
	}
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return NULL;
	}
	buf = slurp_fd(fd);
	close(fd);
	if (len) {
		*len = (size_t)sb.st_size;
	}
	return buf;
}

int kwt_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (!f) {
		return -1;
	}
	if (len && fwrite(buf, 1, len, f) != len) {
		rc = -1;
	}
	if (fclose(f) != 0) {
		rc = -1;
	}
	return rc;
}

int kwt_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void sl_add(struct strlist *l, const char *s)
{
	if (l->n + 1 >= l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		ck_assert_ptr_nonnull(l->v);
	}
	l->v[l->n] = strdup(s);
	ck_assert_ptr_nonnull(l->v[l->n]);
	l->n++;
	l->v[l->n] = NULL;
}

void sl_lines(struct strlist *l, const char *text)
{
	char *copy = strdup(text), *line, *save = NULL;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		sl_add(l, line);
	}
	free(copy);
}

void sl_free(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i]);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void sl_sort(struct strlist *l)
{
	if (l->n) {
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	}
}

void kwt_cc_shared(const char *dir, const char *src, const char *out, const char *args)
{
	char *c = kwt_fmt("%s/src.c", dir), *cmd;

	ck_assert_int_eq(kwt_write_file(c, src, strlen(src)), 0);
	cmd = kwt_fmt("gcc -shared -fPIC -o '%s' '%s' %s", out, c, args ? args : "");
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	free(c);
}

char *kwt_make_wheel(const char *dir, const char *name)
{
	static const char script[] =
		"import base64,hashlib,os,sys,zipfile\n"
		"tree, out = sys.argv[1], sys.argv[2]\n"
		"dist, ver = os.path.basename(out).split('-')[:2]\n"
		"di = f'{dist}-{ver}.dist-info'\n"
		"files = {}\n"
		"for d, _, fs in sorted(os.walk(tree)):\n"
		"    for f in sorted(fs):\n"
		"        p = os.path.join(d, f)\n"
		"        files[os.path.relpath(p, tree)] = open(p, 'rb').read()\n"
		"files[di + '/METADATA'] = f'Metadata-Version: 2.1\\nName: {dist}\\nVersion: {ver}\\n'.encode()\n"
		"tag = os.path.basename(out)[:-4].split('-')[-3:]\n"
		"files[di + '/WHEEL'] = ('Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\nTag: ' + '-'.join(tag) + "
		"'\\n').encode()\n"
		"dig = lambda b: 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()\n"
		"rec = ''.join(f'{n},{dig(b)},{len(b)}\\n' for n, b in files.items()) + di + '/RECORD,,\\n'\n"
		"files[di + '/RECORD'] = rec.encode()\n"
		"with zipfile.ZipFile(out, 'w') as z:\n"
		"    for n, b in files.items():\n"
		"        z.writestr(n, b)\n";
	char *py = kwt_fmt("%s/mkwheel.py", dir), *out = kwt_fmt("%s/%s", dir, name), *cmd;

	ck_assert_int_eq(kwt_write_file(py, script, strlen(script)), 0);
	cmd = kwt_fmt("python3 '%s' '%s/tree' '%s'", py, dir, out);
	ck_assert_int_eq(kwt_run(cmd, NULL, NULL), 0);
	free(cmd);
	free(py);
	return out;
}
