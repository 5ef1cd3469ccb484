/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_TESTLIB_H
#define KWHEEL_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>

#include <check.h>

#include "kwheel/kwheel.h"

/* Directories handed in by meson (KW_SOURCE_ROOT, KW_BUILD_ROOT, KW_CORPUS). */
const char *kwt_source_root(void);
const char *kwt_build_root(void);
const char *kwt_corpus(void);
/* The kwheel binary under test. */
const char *kwt_kwheel(void);
/* printf into a new string (free()); aborts the test on failure. */
char *kwt_fmt(const char *fmt, ...) KW_PRINTF(1, 2);
/* A new empty directory under $TMPDIR, removed by kwt_rmtree. */
char *kwt_mkdtemp(void);
void kwt_rmtree(const char *dir);
/* Run a shell command; capture stdout and stderr (new strings, may be NULL). Returns exit code. */
int kwt_run(const char *cmd, char **out, char **err);
/* Read a whole file (new buffer, NUL-terminated); NULL if unreadable. */
char *kwt_read_file(const char *path, size_t *len);
/* Write buf to path; returns 0 on success. */
int kwt_write_file(const char *path, const void *buf, size_t len);
/* A growable, NULL-terminated list of owned strings; zero-initialised is empty. Failures abort the test. */
struct strlist {
	char **v;
	size_t n, cap;
};
void sl_add(struct strlist *l, const char *s);
/* Each line of text (empty lines skipped). */
void sl_lines(struct strlist *l, const char *text);
void sl_sort(struct strlist *l);
void sl_free(struct strlist *l);

/* Compile C source src into a shared object at out with extra gcc args (may be NULL); fails the test if gcc does. */
void kwt_cc_shared(const char *dir, const char *src, const char *out, const char *args);
/*
 * A wheel dir/NAME of the files under dir/tree (their relative paths as
 * member names), with METADATA, WHEEL (tagged from NAME) and a RECORD,
 * written by Python's zipfile. New path (free()).
 */
char *kwt_make_wheel(const char *dir, const char *name);

/* Run a suite with the TAP-friendly settings used by every unit test. */
int kwt_main(Suite *s);

#endif
