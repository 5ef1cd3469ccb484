/* SPDX-License-Identifier: MIT */
/*
 * The ELF reader against binutils' readelf: every ELF object inside the
 * auditwheel corpus wheels (all the testsimple architectures, 32/64-bit,
 * both byte orders) and a sample of the system's libraries. Then forged
 * copies of a real object: each must be an error with a message.
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "testlib.h"

static char *tmpdir;
static char **files;
static size_t n_files;

static void add_file(const char *p)
{
	files = realloc(files, (n_files + 1) * sizeof(*files));
	ck_assert_ptr_nonnull(files);
	files[n_files++] = strdup(p);
}

static void collect(void)
{
	char *cmd, *out = NULL, *line, *save = NULL;

	tmpdir = kwt_mkdtemp();
	/* Every ELF member of the auditwheel corpus wheels, extracted by unzip; then 25 system libraries. */
	cmd = kwt_fmt("cd %s && for w in $(find %s/wheels/auditwheel -name '*.whl' | sort); do "
		      "d=$(basename $w .whl); mkdir -p $d; unzip -q -o $w -d $d 2>/dev/null; done; "
		      "find . -type f | sort | while read f; do "
		      "  if [ \"$(head -c4 \"$f\" | od -An -tx1 | tr -d ' ')\" = 7f454c46 ]; then echo \"$PWD/${f#./}\"; fi; "
		      "done; ls /usr/lib/x86_64-linux-gnu/*.so.* | head -400 | awk 'NR %% 16 == 1'",
		      tmpdir, kwt_corpus());
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		add_file(line);
	}
	free(out);
	free(cmd);
}

static char *readelf(const char *opts, const char *path)
{
	char *cmd = kwt_fmt("readelf -W %s '%s' 2>/dev/null", opts, path), *out = NULL;

	kwt_run(cmd, &out, NULL);
	free(cmd);
	return out ? out : strdup("");
}

/* The value in brackets after "(TAG)" on each matching line of readelf -d, in order. */
static size_t dyn_values(const char *d, const char *tag, char vals[][512], size_t max)
{
	char *pat = kwt_fmt("(%s)", tag);
	const char *p = d;
	size_t n = 0;

	while ((p = strstr(p, pat)) != NULL && n < max) {
		const char *lb = strchr(p, '['), *nl = strchr(p, '\n');

		if (lb && (!nl || lb < nl)) {
			const char *rb = strchr(lb, ']');

			snprintf(vals[n++], 512, "%.*s", (int)(rb - lb - 1), lb + 1);
		}
		p += strlen(pat);
	}
	free(pat);
	return n;
}

START_TEST(matches_readelf)
{
	size_t i, checked = 0, arches = 0;
	const char *seen_arch[32];

	collect();
	ck_assert_uint_ge(n_files, 40);
	for (i = 0; i < n_files; i++) {
		struct kw_elf_info *info = NULL;
		struct kw_error err;
		char *h = readelf("-h", files[i]), *d = readelf("-d", files[i]), *v = readelf("-V", files[i]);
		char vals[64][512];
		size_t n, k;
		int rc = kw_elf_parse_file(files[i], &info, &err);
		const char *arch;

		if (strstr(h, "REL (Relocatable file)")) {
			free(h), free(d), free(v);
			if (rc == 0) {
				kw_elf_info_free(info);
			}
			continue;
		}
		ck_assert_msg(rc == 0, "%s: %s", files[i], err.msg);
		checked++;
		/* class, byte order, type */
		ck_assert_msg(strstr(h, info->elfclass == ELFCLASS64 ? "ELF64" : "ELF32"), "%s: class", files[i]);
		ck_assert_msg(strstr(h, info->data == ELFDATA2LSB ? "little endian" : "big endian"), "%s: data", files[i]);
		ck_assert_msg(strstr(h, info->type == ET_DYN ? "DYN (" : "EXEC (") != NULL, "%s: type", files[i]);
		/* DT_NEEDED in order, SONAME, RPATH, RUNPATH */
		n = dyn_values(d, "NEEDED", vals, 64);
		ck_assert_msg(n == info->n_needed, "%s: %zu DT_NEEDED, readelf %zu", files[i], info->n_needed, n);
		for (k = 0; k < n; k++) {
			ck_assert_str_eq(vals[k], info->needed[k]);
		}
		n = dyn_values(d, "SONAME", vals, 1);
		ck_assert_msg((n == 1) == (info->soname != NULL) && (!n || strcmp(vals[0], info->soname) == 0), "%s: soname",
			      files[i]);
		n = dyn_values(d, "RPATH", vals, 1);
		ck_assert_msg((n == 1) == (info->rpath != NULL) && (!n || strcmp(vals[0], info->rpath) == 0), "%s: rpath",
			      files[i]);
		n = dyn_values(d, "RUNPATH", vals, 1);
		ck_assert_msg((n == 1) == (info->runpath != NULL) && (!n || strcmp(vals[0], info->runpath) == 0),
			      "%s: runpath", files[i]);
		/* every version need: "File: X" followed by "Name: V" lines */
		for (k = 0; k < info->n_verneed; k++) {
			char *file = kwt_fmt("File: %s ", info->verneed[k].file);
			const char *at = strstr(v, file);
			size_t q;

			ck_assert_msg(at != NULL, "%s: verneed %s not in readelf -V", files[i], info->verneed[k].file);
			for (q = 0; q < info->verneed[k].n_versions; q++) {
				char *name = kwt_fmt("Name: %s ", info->verneed[k].versions[q]);

				ck_assert_msg(strstr(at, name) != NULL, "%s: %s of %s", files[i], name, info->verneed[k].file);
				free(name);
			}
			free(file);
		}
		/* architecture names across the corpus */
		arch = kw_elf_arch(info);
		if (arch) {
			bool dup = false;

			for (k = 0; k < arches; k++) {
				dup |= strcmp(seen_arch[k], arch) == 0;
			}
			if (!dup && arches < 32) {
				seen_arch[arches++] = arch;
			}
			/* The testsimple wheels are named for their arch: linux_<arch>. */
			if (strstr(files[i], "/testsimple-") && strstr(files[i], "linux_")) {
				const char *tag = strstr(files[i], "linux_") + 6;
				size_t tl = strcspn(tag, "/");

				ck_assert_msg(strlen(arch) == tl && strncmp(arch, tag, tl) == 0, "%s: arch %s", files[i], arch);
			}
		}
		free(h), free(d), free(v);
		kw_elf_info_free(info);
	}
	ck_assert_uint_ge(checked, 40);
	ck_assert_uint_ge(arches, 6); /* x86_64, i686, aarch64, armv7l, ppc64le, s390x, ... */
	for (i = 0; i < n_files; i++) {
		free(files[i]);
	}
	free(files);
	kwt_rmtree(tmpdir);
	free(tmpdir);
}
END_TEST

/* Dynamic relocation types, by name, against readelf -r. */
START_TEST(reloc_types_match_readelf)
{
	const char *path = "/usr/lib/x86_64-linux-gnu/libz.so.1";
	struct kw_elf_info *info = NULL;
	struct kw_error err;
	char *r = readelf("-r", path);
	size_t k;

	ck_assert_int_eq(kw_elf_parse_file(path, &info, &err), 0);
	ck_assert_uint_gt(info->n_reloc_types, 0);
	for (k = 0; k < info->n_reloc_types; k++) {
		const char *name = kw_elf_reloc_str(info->machine, info->reloc_types[k]);

		ck_assert_ptr_nonnull(name);
		ck_assert_msg(strstr(r, name) != NULL, "%s not in readelf -r", name);
	}
	free(r);
	kw_elf_info_free(info);
}
END_TEST

static unsigned char *sample;
static size_t sample_len;

static void load_sample(void)
{
	sample = (unsigned char *)kwt_read_file("/usr/lib/x86_64-linux-gnu/libz.so.1", &sample_len);
	ck_assert_ptr_nonnull(sample);
}

static void expect_error(const unsigned char *buf, size_t len, const char *what)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	int rc = kw_elf_parse_memory(buf, len, what, &info, &err);

	ck_assert_msg(rc < 0, "%s: accepted", what);
	ck_assert_ptr_null(info);
	ck_assert_msg(err.msg[0] != 0, "%s: no message", what);
}

START_TEST(truncations_are_errors)
{
	static const size_t cuts[] = { 0, 3, 16, 52, 63, 64, 100, 500, 4096 };
	size_t i;

	load_sample();
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "cut at %zu", cuts[i]);
		expect_error(sample, cuts[i], what);
	}
	free(sample);
}
END_TEST

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Offset of the dynamic entry with tag in the sample, via its PT_DYNAMIC. */
static size_t dyn_entry(const unsigned char *b, int64_t tag)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)b;
	size_t i, k;

	for (i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(b + eh->e_phoff + i * sizeof(Elf64_Phdr));

		if (ph->p_type != PT_DYNAMIC) {
			continue;
		}
		for (k = 0; k < ph->p_filesz / 16; k++) {
			if ((int64_t)get64(b + ph->p_offset + 16 * k) == tag) {
				return ph->p_offset + 16 * k;
			}
		}
	}
	return 0;
}

START_TEST(forgeries_are_errors)
{
	unsigned char *b;
	size_t off;

	load_sample();
	b = malloc(sample_len);
	ck_assert_ptr_nonnull(b);

	memcpy(b, sample, sample_len);
	put64(b + 0x20, sample_len + 64); /* e_phoff past the end */
	expect_error(b, sample_len, "e_phoff past the end");

	memcpy(b, sample, sample_len);
	b[0x38] = 0xfe, b[0x39] = 0xff; /* e_phnum 65534 */
	expect_error(b, sample_len, "e_phnum 65534");

	memcpy(b, sample, sample_len);
	b[0x36] = 40; /* e_phentsize */
	expect_error(b, sample_len, "wrong e_phentsize");

	memcpy(b, sample, sample_len);
	off = dyn_entry(b, DT_STRTAB);
	ck_assert_uint_gt(off, 0);
	put64(b + off + 8, 0x7fff00000000ull);
	expect_error(b, sample_len, "DT_STRTAB outside every segment");

	memcpy(b, sample, sample_len);
	off = dyn_entry(b, DT_STRSZ);
	put64(b + off + 8, 0x7fffffffffffull);
	expect_error(b, sample_len, "DT_STRSZ huge");

	memcpy(b, sample, sample_len);
	off = dyn_entry(b, DT_NEEDED);
	ck_assert_uint_gt(off, 0);
	put64(b + off + 8, 0x7fffffff);
	expect_error(b, sample_len, "DT_NEEDED past the string table");

	memcpy(b, sample, sample_len);
	off = dyn_entry(b, DT_VERNEEDNUM);
	if (off) {
		put64(b + off + 8, 100000); /* more records than the file could hold */
		expect_error(b, sample_len, "DT_VERNEEDNUM absurd");
	}

	memcpy(b, sample, sample_len);
	b[4] = 7; /* EI_CLASS */
	expect_error(b, sample_len, "unknown class");

	free(b);
	free(sample);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("elf");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, matches_readelf);
	tcase_add_test(tc, reloc_types_match_readelf);
	tcase_add_test(tc, truncations_are_errors);
	tcase_add_test(tc, forgeries_are_errors);
	suite_add_tcase(s, tc);
	return kwt_main(s);
}
