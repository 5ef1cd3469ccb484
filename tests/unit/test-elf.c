/* SPDX-License-Identifier: MIT */
/*
 * The ELF reader against binutils' readelf (multi-arch): every ELF object
 * inside the auditwheel corpus wheels (all the testsimple architectures,
 * 32/64-bit, both byte orders), the corpus fixture objects and about 30 of
 * the system's libraries. Compared field by field: class, byte order,
 * machine, type, OS/ABI, DT_NEEDED (in order), SONAME, RPATH, RUNPATH,
 * DT_FLAGS, DT_FLAGS_1, DT_RELR, version needs (file -> versions), version
 * definitions, the set of dynamic relocation type names and the dynamic
 * symbols (defined / undefined, with and without versions).
 *
 * Then hostile copies of real objects (x86-64 LE, ELF32 ARM LE, s390x BE):
 * truncations and forged headers, counts, offsets and string indexes; each
 * must be an error with a message, never a crash (the suite runs under ASan
 * too). Finally a small hand-built object with a SysV hash table checks the
 * symbol count on every word size (s390x uses 64-bit hash words).
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "kwheel/patch.h"
#include "testlib.h"

#ifndef EM_LOONGARCH
#define EM_LOONGARCH 258
#endif
#ifndef DT_RELR
#define DT_RELR 36
#endif

/* ------------------------------------------------------------------ */
/* String lists */

/* Sort and drop duplicates: a set. */
static void sl_set(struct strlist *l)
{
	size_t i, k = 0;

	sl_sort(l);
	for (i = 0; i < l->n; i++) {
		if (k && strcmp(l->v[k - 1], l->v[i]) == 0) {
			free(l->v[i]);
			continue;
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
	if (l->v) {
		l->v[k] = NULL;
	}
}

/* A short description of how two sorted lists differ, or NULL if equal (free()). */
static char *sl_diff(const struct strlist *a, const struct strlist *b)
{
	size_t i = 0, k = 0, shown = 0;
	char *msg = NULL;

	if (a->n == b->n) {
		for (i = 0; i < a->n && strcmp(a->v[i], b->v[i]) == 0; i++) {
		}
		if (i == a->n) {
			return NULL;
		}
	}
	msg = kwt_fmt("kwheel %zu, readelf %zu;", a->n, b->n);
	i = 0;
	while ((i < a->n || k < b->n) && shown < 6) {
		int c = i >= a->n ? 1 : k >= b->n ? -1 : strcmp(a->v[i], b->v[k]);
		char *m;

		if (c == 0) {
			i++, k++;
			continue;
		}
		m = c < 0 ? kwt_fmt("%s only kwheel '%s'", msg, a->v[i++]) : kwt_fmt("%s only readelf '%s'", msg, b->v[k++]);
		free(msg);
		msg = m;
		shown++;
	}
	return msg;
}

/* ------------------------------------------------------------------ */
/* readelf */

static char *readelf(const char *opts, const char *path)
{
	char *cmd = kwt_fmt("readelf -W %s '%s' 2>/dev/null", opts, path), *out = NULL;

	kwt_run(cmd, &out, NULL);
	free(cmd);
	return out ? out : strdup("");
}

/* Trimmed value after "key" on the line where it occurs in readelf -h output (free()), or NULL. */
static char *header_field(const char *h, const char *key)
{
	const char *p = strstr(h, key), *e;

	if (!p) {
		return NULL;
	}
	p += strlen(key);
	while (*p == ' ' || *p == '\t') {
		p++;
	}
	e = strchr(p, '\n');
	if (!e) {
		e = p + strlen(p);
	}
	while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
		e--;
	}
	return kwt_fmt("%.*s", (int)(e - p), p);
}

static const struct {
	const char *readelf;
	unsigned machine;
} machines[] = {
	{ "Advanced Micro Devices X86-64", EM_X86_64 },
	{ "Intel 80386", EM_386 },
	{ "AArch64", EM_AARCH64 },
	{ "ARM", EM_ARM },
	{ "PowerPC64", EM_PPC64 },
	{ "PowerPC", EM_PPC },
	{ "IBM S/390", EM_S390 },
	{ "RISC-V", EM_RISCV },
	{ "MIPS R3000", EM_MIPS },
	{ "LoongArch", EM_LOONGARCH },
	{ "Sparc v9", EM_SPARCV9 },
};

/* The rest of each line of readelf -d whose tag is "(TAG)", in order. */
static void dyn_lines(const char *d, const char *tag, struct strlist *out)
{
	char *pat = kwt_fmt("(%s)", tag);
	const char *p = d;

	while ((p = strstr(p, pat)) != NULL) {
		const char *v = p + strlen(pat), *nl = strchr(v, '\n');
		size_t n = nl ? (size_t)(nl - v) : strlen(v);
		char *s;

		while (n && (*v == ' ')) {
			v++, n--;
		}
		while (n && v[n - 1] == ' ') {
			n--;
		}
		s = kwt_fmt("%.*s", (int)n, v);
		sl_add(out, s);
		free(s);
		p = v;
	}
	free(pat);
}

/* "Shared library: [libc.so.6]" -> "libc.so.6" */
static char *bracketed(const char *s)
{
	const char *lb = strchr(s, '['), *rb = strrchr(s, ']');

	ck_assert_msg(lb && rb && rb > lb, "no [value] in '%s'", s);
	return kwt_fmt("%.*s", (int)(rb - lb - 1), lb + 1);
}

static const char *const df_names[] = { "ORIGIN", "SYMBOLIC", "TEXTREL", "BIND_NOW", "STATIC_TLS" };
static const char *const df1_names[] = {
	"NOW",        "GLOBAL",     "GROUP",     "NODELETE",  "LOADFLTR",  "INITFIRST", "NOOPEN",   "ORIGIN",
	"DIRECT",     "TRANS",      "INTERPOSE", "NODEFLIB",  "NODUMP",    "CONFALT",   "ENDFILTEE", "DISPRELDNE",
	"DISPRELPND", "NODIRECT",   "IGNMULDEF", "NOKSYMS",   "NOHDR",     "EDITED",    "NORELOC",  "SYMINTPOSE",
	"GLOBAUDIT",  "SINGLETON",  "STUB",      "PIE",       "KMOD",      "WEAKFILTER", "NOCOMMON",
};

/* readelf's flag words back to bits; unknown words fail the test. */
static uint64_t flag_bits(const char *file, const char *s, const char *const *names, size_t n_names)
{
	char *copy = strdup(s), *tok, *save = NULL;
	uint64_t bits = 0;

	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		size_t i;
		bool found = false;

		if (strcmp(tok, "Flags:") == 0) {
			continue;
		}
		if (strncmp(tok, "0x", 2) == 0) {
			bits |= strtoull(tok, NULL, 16);
			continue;
		}
		for (i = 0; i < n_names; i++) {
			if (strcmp(tok, names[i]) == 0) {
				bits |= 1ull << i;
				found = true;
			}
		}
		ck_assert_msg(found, "%s: unknown readelf flag word '%s'", file, tok);
	}
	free(copy);
	return bits;
}

/* Version needs from readelf -V: "file:version" pairs and the file order. */
static void readelf_verneed(const char *v, struct strlist *pairs, struct strlist *files)
{
	const char *p = strstr(v, "Version needs section");
	char file[512] = "";

	if (!p) {
		return;
	}
	p = strchr(p, '\n');
	while (p && *++p && *p != '\n') {
		const char *nl = strchr(p, '\n'), *f = strstr(p, "File: "), *n = strstr(p, "Name: ");
		char buf[512];

		if (f && (!nl || f < nl)) {
			sscanf(f + 6, "%511s", file);
			sl_add(files, file);
		} else if (n && (!nl || n < nl)) {
			char *pair;

			sscanf(n + 6, "%511s", buf);
			pair = kwt_fmt("%s:%s", file, buf);
			sl_add(pairs, pair);
			free(pair);
		}
		p = nl;
	}
}

/* Version definitions from readelf -V, in order, without the BASE one. */
static void readelf_verdef(const char *v, struct strlist *defs)
{
	const char *p = strstr(v, "Version definition section");

	if (!p) {
		return;
	}
	p = strchr(p, '\n');
	while (p && *++p && *p != '\n') {
		const char *nl = strchr(p, '\n'), *rev = strstr(p, "Rev: "), *n = strstr(p, "Name: "),
			   *base = strstr(p, "Flags: BASE");
		char buf[512];

		if (rev && n && (!nl || n < nl) && !(base && (!nl || base < nl))) {
			sscanf(n + 6, "%511s", buf);
			sl_add(defs, buf);
		}
		p = nl;
	}
}

/*
 * Relocations from readelf -r, RELR sections left out: "number name" for the
 * first type of each entry, the number decoded from the Info column as the
 * machine defines r_info (MIPS64 packs three types in the low bytes).
 */
static void readelf_relocs(const char *r, bool is64, uint16_t machine, struct strlist *types)
{
	char *copy = strdup(r), *line, *save = NULL;
	bool relr = false;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char off[64], info[64], type[128], *e;
		uint64_t rinfo, num;

		if (strncmp(line, "Relocation section '", 20) == 0) {
			relr = strstr(line, "relr") != NULL;
			continue;
		}
		if (relr || sscanf(line, "%63s %63s %127s", off, info, type) != 3) {
			continue;
		}
		if (strspn(off, "0123456789abcdef") != strlen(off) || strspn(info, "0123456789abcdef") != strlen(info)) {
			continue;
		}
		rinfo = strtoull(info, NULL, 16);
		num = !is64 || machine == EM_MIPS ? (rinfo & 0xff) : (rinfo & 0xffffffff);
		e = kwt_fmt("%llu %s", (unsigned long long)num, strncmp(type, "R_", 2) == 0 ? type : "(unnamed)");
		sl_add(types, e);
		free(e);
	}
	free(copy);
}

/* glibc's elf.h and binutils spell a few relocation names differently. */
static const char *reloc_alias(const char *name)
{
	static const char *const pairs[][2] = {
		{ "R_386_JMP_SLOT", "R_386_JUMP_SLOT" },
	};
	size_t i;

	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if (strcmp(name, pairs[i][0]) == 0) {
			return pairs[i][1];
		}
	}
	return name;
}

/*
 * Dynamic symbols from readelf --dyn-syms, index 0 and section symbols left
 * out: "D name" / "U name" in names, and with versions in versioned
 * ("D name@@V" default, "D name@V" hidden, "U name@V").
 */
static void readelf_syms(const char *s, struct strlist *names, struct strlist *versioned)
{
	char *copy = strdup(s), *line, *save = NULL;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *tok[16], *p = line;
		size_t len[16], n = 0, k = 6;
		char *at, *e;

		/* Num: Value Size Type Bind Vis [<localentry>: 8] Ndx Name [(n)] */
		while (n < 16) {
			p += strspn(p, " ");
			if (!*p) {
				break;
			}
			tok[n] = p;
			len[n] = strcspn(p, " ");
			p += len[n++];
		}
		if (n < 7 || tok[0][len[0] - 1] != ':' || strspn(tok[0], "0123456789") != len[0] - 1) {
			continue;
		}
		if (strncmp(tok[0], "0:", 2) == 0 || (len[3] == 7 && strncmp(tok[3], "SECTION", 7) == 0)) {
			continue;
		}
		if (tok[k][0] == '[') {
			while (k < n && tok[k][len[k] - 1] != ']') {
				k++;
			}
			k++;
		}
		if (k >= n) {
			continue;
		}
		e = kwt_fmt("%c %.*s", len[k] == 3 && strncmp(tok[k], "UND", 3) == 0 ? 'U' : 'D',
			    k + 1 < n ? (int)len[k + 1] : 0, k + 1 < n ? tok[k + 1] : "");
		sl_add(versioned, e);
		at = strchr(e, '@');
		if (at) {
			*at = '\0';
		}
		sl_add(names, e);
		free(e);
	}
	free(copy);
}

static void kwheel_syms(const struct kw_elf_info *info, struct strlist *names, struct strlist *versioned)
{
	size_t i;

	for (i = 0; i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];
		char *e;

		if (s->type == STT_SECTION) {
			continue;
		}
		e = kwt_fmt("%c %s", s->defined ? 'D' : 'U', s->name);
		sl_add(names, e);
		free(e);
		if (!s->version || (s->defined && strcmp(s->name, s->version) == 0)) {
			/* readelf prints a version's own definition symbol (GLIBC_2.2.5, ABS) bare */
			e = kwt_fmt("%c %s", s->defined ? 'D' : 'U', s->name);
		} else if (s->defined) {
			e = kwt_fmt("D %s%s%s", s->name, s->version_hidden ? "@" : "@@", s->version);
		} else {
			e = kwt_fmt("U %s@%s", s->name, s->version);
		}
		sl_add(versioned, e);
		free(e);
	}
}

/* ------------------------------------------------------------------ */
/* The objects compared */

static char *tmpdir;
static struct strlist files;

static void collect(void)
{
	char *cmd, *out = NULL, *line, *save = NULL;

	tmpdir = kwt_mkdtemp();
	/*
	 * Every ELF member of every auditwheel corpus wheel, extracted with
	 * unzip into a directory named for the wheel; the corpus fixture objects;
	 * then every ELF shared library of the corpus sysroot and of the fixture
	 * sysroot the build makes: inputs the suite controls, the same whatever
	 * this machine has installed.
	 */
	cmd = kwt_fmt("cd '%s' && is_elf() { [ \"$(head -c4 \"$1\" | od -An -tx1 | tr -d ' \\n')\" = 7f454c46 ]; }; "
		      "for w in $(find '%s/wheels/auditwheel' -name '*.whl' | sort); do "
		      "  d=$(basename \"$w\" .whl); mkdir -p \"$d\" && unzip -q -o \"$w\" -d \"$d\" || exit 1; done; "
		      "find . -type f | sort | while read -r f; do if is_elf \"$f\"; then echo \"$PWD/${f#./}\"; fi; done; "
		      "find '%s/wheels/auditwheel' -type f ! -name '*.whl' | sort | while read -r f; do if is_elf \"$f\"; then echo \"$f\"; fi; done; "
		      "find '%s/sysroot' '%s/fixtures/sysroot/root' -type f -name '*.so*' | sort | "
		      "  while read -r f; do if is_elf \"$f\"; then echo \"$f\"; fi; done",
		      tmpdir, kwt_corpus(), kwt_corpus(), kwt_corpus(), kwt_build_root());
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		sl_add(&files, line);
	}
	free(out);
	free(cmd);
}

static void release_files(void)
{
	sl_free(&files);
	kwt_rmtree(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

/* Mismatches found by the readelf comparison, all reported at the end. */
static struct strlist problems;
/* Relocation types kw_elf_reloc_str has no name for (a gap, reported, not a failure). */
static struct strlist unnamed_relocs;
#define CHECK(cond, ...)                                 \
	do {                                             \
		if (!(cond)) {                           \
			char *m_ = kwt_fmt(__VA_ARGS__); \
			sl_add(&problems, m_);           \
			free(m_);                        \
		}                                        \
	} while (0)

/* Compare one object with readelf; returns true if it was a loadable object. */
static bool compare_one(const char *file, size_t *n_needed, size_t *n_syms, size_t *n_relocs, size_t *n_vers)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	char *h = readelf("-h", file), *d = readelf("-d", file), *v = readelf("-V", file), *r = readelf("-r", file),
	     *s = readelf("--dyn-syms", file), *f, *diff;
	struct strlist l = { 0 }, a = { 0 }, b = { 0 }, a2 = { 0 }, b2 = { 0 };
	int rc = kw_elf_parse_file(file, &info, &err);
	size_t i, k;
	bool found;

	f = header_field(h, "Type:");
	CHECK(f != NULL, "%s: readelf -h has no Type", file);
	if (strncmp(f, "REL ", 4) == 0 || strncmp(f, "CORE", 4) == 0) {
		/* Not loadable: only say it is not a crash. */
		CHECK(rc == 0 || err.msg[0], "%s: error without a message", file);
		kw_elf_info_free(info);
		free(f), free(h), free(d), free(v), free(r), free(s);
		return false;
	}
	CHECK(rc == 0, "%s: %s", file, err.msg);
	if (rc) {
		free(f), free(h), free(d), free(v), free(r), free(s);
		return true;
	}

	/* header */
	CHECK(info->type == (strncmp(f, "DYN ", 4) == 0 ? ET_DYN : strncmp(f, "EXEC ", 5) == 0 ? ET_EXEC : 0xffff),
		      "%s: type %u, readelf '%s'", file, info->type, f);
	free(f);
	f = header_field(h, "Class:");
	CHECK(f && strcmp(f, info->elfclass == ELFCLASS64 ? "ELF64" : "ELF32") == 0, "%s: class %d, readelf %s",
		      file, info->elfclass, f);
	free(f);
	f = header_field(h, "Data:");
	CHECK(f && strstr(f, info->data == ELFDATA2LSB ? "little endian" : "big endian"), "%s: data %d, readelf %s",
		      file, info->data, f);
	free(f);
	f = header_field(h, "Machine:");
	found = false;
	for (i = 0; f && i < sizeof(machines) / sizeof(machines[0]); i++) {
		if (strcmp(f, machines[i].readelf) == 0) {
			CHECK(info->machine == machines[i].machine, "%s: machine %u, readelf %s", file, info->machine,
				      f);
			found = true;
		}
	}
	CHECK(found, "%s: readelf machine '%s' not in the test's table (kwheel %u)", file, f, info->machine);
	free(f);
	f = header_field(h, "OS/ABI:");
	if (f && strcmp(f, "UNIX - System V") == 0) {
		CHECK(info->osabi == ELFOSABI_SYSV, "%s: osabi %u, readelf %s", file, info->osabi, f);
	} else if (f && strcmp(f, "UNIX - GNU") == 0) {
		CHECK(info->osabi == ELFOSABI_GNU, "%s: osabi %u, readelf %s", file, info->osabi, f);
	}
	free(f);

	/* dynamic section */
	CHECK(info->has_dynamic == (strstr(d, "There is no dynamic section") == NULL), "%s: has_dynamic", file);
	dyn_lines(d, "NEEDED", &l);
	CHECK(l.n == info->n_needed, "%s: %zu DT_NEEDED, readelf %zu", file, info->n_needed, l.n);
	for (i = 0; i < l.n && i < info->n_needed; i++) {
		char *want = bracketed(l.v[i]);

		CHECK(strcmp(want, info->needed[i]) == 0, "%s: DT_NEEDED[%zu] %s, readelf %s", file, i,
			      info->needed[i], want);
		free(want);
	}
	CHECK(!info->needed || !info->needed[info->n_needed], "%s: needed not NULL-terminated", file);
	*n_needed += l.n;
	sl_free(&l);
	{
		static const char *const tags[] = { "SONAME", "RPATH", "RUNPATH" };
		const char *mine[] = { info->soname, info->rpath, info->runpath };

		for (k = 0; k < 3; k++) {
			char *want = NULL;

			dyn_lines(d, tags[k], &l);
			CHECK(l.n <= 1, "%s: %zu DT_%s", file, l.n, tags[k]);
			if (l.n) {
				want = bracketed(l.v[0]);
			}
			CHECK((want == NULL) == (mine[k] == NULL) && (!want || strcmp(want, mine[k]) == 0),
				      "%s: DT_%s '%s', readelf '%s'", file, tags[k], mine[k] ? mine[k] : "(none)",
				      want ? want : "(none)");
			free(want);
			sl_free(&l);
		}
	}
	dyn_lines(d, "FLAGS_1", &l);
	CHECK(l.n <= 1, "%s: %zu DT_FLAGS_1", file, l.n);
	CHECK(info->dt_flags_1 == (l.n ? flag_bits(file, l.v[0], df1_names, 31) : 0),
		      "%s: DT_FLAGS_1 %#llx, readelf '%s'", file, (unsigned long long)info->dt_flags_1, l.n ? l.v[0] : "");
	sl_free(&l);
	dyn_lines(d, "FLAGS", &l);
	CHECK(l.n <= 1, "%s: %zu DT_FLAGS", file, l.n);
	CHECK(info->dt_flags == (l.n ? flag_bits(file, l.v[0], df_names, 5) : 0), "%s: DT_FLAGS %#llx, readelf '%s'",
		      file, (unsigned long long)info->dt_flags, l.n ? l.v[0] : "");
	sl_free(&l);
	dyn_lines(d, "TEXTREL", &l);
	if (l.n) {
		CHECK(info->textrel, "%s: DT_TEXTREL not seen", file);
	}
	sl_free(&l);
	dyn_lines(d, "RELR", &l);
	CHECK(info->has_relr == (l.n > 0), "%s: has_relr %d, readelf %zu DT_RELR", file, info->has_relr, l.n);
	sl_free(&l);

	/* version needs: same files in the same order, same file:version pairs */
	readelf_verneed(v, &a, &l);
	CHECK(l.n == info->n_verneed, "%s: %zu verneed files, readelf %zu", file, info->n_verneed, l.n);
	for (i = 0; i < l.n && i < info->n_verneed; i++) {
		CHECK(strcmp(l.v[i], info->verneed[i].file) == 0, "%s: verneed[%zu] %s, readelf %s", file, i,
			      info->verneed[i].file, l.v[i]);
		for (k = 0; k < info->verneed[i].n_versions; k++) {
			char *pair = kwt_fmt("%s:%s", info->verneed[i].file, info->verneed[i].versions[k]);

			sl_add(&b, pair);
			free(pair);
		}
		CHECK(info->verneed[i].versions[info->verneed[i].n_versions] == NULL, "%s: versions not NULL-terminated", file);
	}
	sl_sort(&a);
	sl_sort(&b);
	diff = sl_diff(&b, &a);
	CHECK(diff == NULL, "%s: version needs differ: %s", file, diff);
	free(diff);
	*n_vers += a.n;
	sl_free(&l), sl_free(&a), sl_free(&b);

	/* version definitions, in order */
	readelf_verdef(v, &l);
	CHECK(l.n == info->n_verdef, "%s: %zu verdefs, readelf %zu", file, info->n_verdef, l.n);
	for (i = 0; i < l.n && i < info->n_verdef; i++) {
		CHECK(strcmp(l.v[i], info->verdef[i]) == 0, "%s: verdef[%zu] %s, readelf %s", file, i, info->verdef[i],
			      l.v[i]);
	}
	*n_vers += l.n;
	sl_free(&l);

	/* relocation types: the set of numbers, then kwheel's name for each against readelf's */
	readelf_relocs(r, info->elfclass == ELFCLASS64, info->machine, &l);
	sl_set(&l);
	for (i = 0; i < l.n; i++) {
		char *num = kwt_fmt("%.*s", (int)strcspn(l.v[i], " "), l.v[i]);

		sl_add(&a, num);
		free(num);
	}
	sl_set(&a);
	for (i = 0; i < info->n_reloc_types; i++) {
		const char *name = kw_elf_reloc_str(info->machine, info->reloc_types[i]);
		char *num = kwt_fmt("%u", info->reloc_types[i]);

		sl_add(&b, num);
		free(num);
		if (i) {
			CHECK(info->reloc_types[i - 1] < info->reloc_types[i], "%s: reloc_types not sorted", file);
		}
		for (k = 0; k < l.n; k++) {
			const char *rname = l.v[k] + strcspn(l.v[k], " ") + 1;

			if (strtoul(l.v[k], NULL, 10) != info->reloc_types[i]) {
				continue;
			}
			if (name) {
				CHECK(strcmp(reloc_alias(name), rname) == 0, "%s: relocation type %u is %s to kwheel, %s to readelf",
				      file, info->reloc_types[i], name, rname);
			} else {
				char *note = kwt_fmt("machine %u type %u (%s)", info->machine, info->reloc_types[i], rname);

				sl_add(&unnamed_relocs, note);
				free(note);
			}
		}
	}
	sl_set(&b);
	diff = sl_diff(&b, &a);
	CHECK(diff == NULL, "%s (machine %u): dynamic relocation type numbers differ: %s", file, info->machine, diff);
	free(diff);
	*n_relocs += a.n;
	sl_free(&a), sl_free(&b), sl_free(&l);

	/* dynamic symbols: names (defined/undefined), then with versions */
	readelf_syms(s, &a, &a2);
	kwheel_syms(info, &b, &b2);
	sl_sort(&a), sl_sort(&b), sl_sort(&a2), sl_sort(&b2);
	diff = sl_diff(&b, &a);
	CHECK(diff == NULL, "%s: dynamic symbols differ: %s", file, diff);
	free(diff);
	diff = sl_diff(&b2, &a2);
	CHECK(diff == NULL, "%s: dynamic symbol versions differ: %s", file, diff);
	free(diff);
	*n_syms += a.n;
	sl_free(&a), sl_free(&b), sl_free(&a2), sl_free(&b2);

	/* lookups agree with the list */
	for (i = 0; i < info->n_syms; i++) {
		const struct kw_elf_sym *fs = kw_elf_find_sym(info, info->syms[i].name);

		CHECK(fs && strcmp(fs->name, info->syms[i].name) == 0, "%s: find_sym %s", file, info->syms[i].name);
	}
	ck_assert_ptr_null(kw_elf_find_sym(info, "kwheel_test_no_such_symbol"));
	ck_assert_ptr_nonnull(kw_elf_machine_str(info->machine));

	kw_elf_info_free(info);
	free(h), free(d), free(v), free(r), free(s);
	return true;
}

/*
 * The editor's check (kw_elf_check_memory) must pass and fail exactly the
 * files the full parse does, with the same message and symbol count: it is
 * the same walk with the copies left out. rc and err are the full parse's.
 */
static void check_agrees(const unsigned char *b, size_t len, const char *what, int rc, const struct kw_error *err,
			 const struct kw_elf_info *info)
{
	struct kw_error cerr = { 0 };
	uint64_t n = 12345;
	int crc = kw_elf_check_memory(b, len, what, &n, &cerr);

	ck_assert_msg(crc == rc, "%s: check %d (%s), parse %d (%s)", what, crc, cerr.msg, rc, err->msg);
	if (rc) {
		ck_assert_msg(strcmp(cerr.msg, err->msg) == 0, "%s: check says '%s', parse '%s'", what, cerr.msg,
			      err->msg);
		ck_assert_uint_eq(n, 12345);
	} else {
		ck_assert_uint_eq(n, info->n_syms);
	}
}

START_TEST(matches_readelf)
{
	size_t i, checked = 0, corpus = 0, system = 0, n_needed = 0, n_syms = 0, n_relocs = 0, n_vers = 0;
	struct strlist machines_seen = { 0 };

	collect();
	for (i = 0; i < files.n; i++) {
		if (compare_one(files.v[i], &n_needed, &n_syms, &n_relocs, &n_vers)) {
			struct kw_elf_info *info = NULL;
			struct kw_error err;
			char *m;

			checked++;
			if (strstr(files.v[i], "/sysroot/")) {
				system++;
			} else {
				corpus++;
			}
			ck_assert_int_eq(kw_elf_parse_file(files.v[i], &info, &err), 0);
			{
				size_t len;
				char *buf = kwt_read_file(files.v[i], &len);

				ck_assert_ptr_nonnull(buf);
				check_agrees((const unsigned char *)buf, len, files.v[i], 0, &err, info);
				free(buf);
			}
			m = kwt_fmt("%u/%d/%d", info->machine, info->elfclass, info->data);
			sl_add(&machines_seen, m);
			free(m);
			kw_elf_info_free(info);
		}
	}
	sl_set(&machines_seen);
	release_files();
	fprintf(stderr, "# elf: %zu objects compared with readelf (%zu corpus, %zu sysroot), %zu machine/class/order kinds, "
			"%zu DT_NEEDED, %zu symbols, %zu relocation types, %zu versions\n",
		checked, corpus, system, machines_seen.n, n_needed, n_syms, n_relocs, n_vers);
	sl_set(&unnamed_relocs);
	for (i = 0; i < unnamed_relocs.n; i++) {
		fprintf(stderr, "# note: kw_elf_reloc_str has no name for %s\n", unnamed_relocs.v[i]);
	}
	sl_free(&unnamed_relocs);
	for (i = 0; i < problems.n; i++) {
		fprintf(stderr, "# MISMATCH %s\n", problems.v[i]);
	}
	ck_assert_msg(problems.n == 0, "%zu mismatches with readelf (all printed on stderr), first: %s", problems.n,
		      problems.v ? problems.v[0] : "");
	ck_assert_uint_ge(corpus, 24);
	ck_assert_uint_ge(system, 25);
	ck_assert_uint_ge(machines_seen.n, 8); /* x86-64, i386, AArch64, ARM, PPC64 LE, S/390 BE, RISC-V, MIPS64 */
	sl_free(&machines_seen);
}
END_TEST

/* kw_elf_arch against the arch in the platform tag of the wheel the object came from. */
START_TEST(arch_matches_platform_tag)
{
	char *cmd = kwt_fmt("find '%s/wheels/auditwheel' -name '*.whl' | sort", kwt_corpus()), *out = NULL, *line,
	     *save = NULL;
	char *dir = kwt_mkdtemp();
	size_t n = 0;

	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *base = strrchr(line, '/') + 1, *plat = strrchr(base, '-') + 1;
		char arch[64], *c2, *o2 = NULL, *l2, *s2 = NULL;

		if (strncmp(plat, "linux_", 6) == 0) {
			snprintf(arch, sizeof(arch), "%.*s", (int)(strlen(plat) - 6 - 4), plat + 6);
		} else if (strncmp(plat, "manylinux2014_", 14) == 0) {
			snprintf(arch, sizeof(arch), "%.*s", (int)(strlen(plat) - 14 - 4), plat + 14);
		} else {
			continue;
		}
		c2 = kwt_fmt("rm -rf '%s/x' && mkdir '%s/x' && unzip -q -o '%s' -d '%s/x' && "
			     "find '%s/x' -type f | sort | while read -r f; do "
			     "if [ \"$(head -c4 \"$f\" | od -An -tx1 | tr -d ' \\n')\" = 7f454c46 ]; then echo \"$f\"; fi; done",
			     dir, dir, line, dir, dir);
		ck_assert_int_eq(kwt_run(c2, &o2, NULL), 0);
		for (l2 = strtok_r(o2, "\n", &s2); l2; l2 = strtok_r(NULL, "\n", &s2)) {
			struct kw_elf_info *info = NULL;
			struct kw_error err;
			const char *got;

			ck_assert_msg(kw_elf_parse_file(l2, &info, &err) == 0, "%s: %s", l2, err.msg);
			got = kw_elf_arch(info);
			ck_assert_msg(got && strcmp(got, arch) == 0, "%s in %s: kw_elf_arch %s, tag says %s", l2, base,
				      got ? got : "(null)", arch);
			kw_elf_info_free(info);
			n++;
		}
		free(o2);
		free(c2);
	}
	ck_assert_uint_ge(n, 20); /* 18 testsimple + cffi, fpewheel, snappy, testzlib, mscl */
	kwt_rmtree(dir);
	free(dir);
	free(out);
	free(cmd);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Hostile copies */

struct img {
	unsigned char *b;
	size_t len;
	bool is64, msb;
};

static uint64_t get(const struct img *m, size_t off, int size)
{
	uint64_t v = 0;
	int i;

	ck_assert_uint_le(off + (size_t)size, m->len);
	for (i = 0; i < size; i++) {
		unsigned byte = m->b[off + (size_t)(m->msb ? i : size - 1 - i)];

		v = v << 8 | byte;
	}
	return v;
}

static void put(struct img *m, size_t off, int size, uint64_t v)
{
	int i;

	ck_assert_uint_le(off + (size_t)size, m->len);
	for (i = 0; i < size; i++) {
		m->b[off + (size_t)(m->msb ? size - 1 - i : i)] = (unsigned char)(v >> (8 * i));
	}
}

static int word(const struct img *m) { return m->is64 ? 8 : 4; }
static size_t e_phoff_at(const struct img *m) { return m->is64 ? 0x20 : 0x1c; }
static size_t e_shoff_at(const struct img *m) { return m->is64 ? 0x28 : 0x20; }
static size_t e_phentsize_at(const struct img *m) { return m->is64 ? 0x36 : 0x2a; }
static size_t e_phnum_at(const struct img *m) { return m->is64 ? 0x38 : 0x2c; }

/* Field offsets inside a program header. */
static size_t ph_offset(const struct img *m) { return m->is64 ? 8 : 4; }
static size_t ph_vaddr(const struct img *m) { return m->is64 ? 16 : 8; }
static size_t ph_filesz(const struct img *m) { return m->is64 ? 32 : 16; }

/* File offset of the first program header of that type, or 0. */
static size_t phdr(const struct img *m, uint32_t type)
{
	size_t off = get(m, e_phoff_at(m), word(m)), ent = get(m, e_phentsize_at(m), 2), n = get(m, e_phnum_at(m), 2), i;

	for (i = 0; i < n; i++) {
		if (get(m, off + i * ent, 4) == type) {
			return off + i * ent;
		}
	}
	return 0;
}

/* File offset of the dynamic entry with that tag, or 0. */
static size_t dyn_entry(const struct img *m, int64_t tag)
{
	size_t ph = phdr(m, PT_DYNAMIC), off, size, i, ent = m->is64 ? 16 : 8;

	ck_assert_uint_ne(ph, 0);
	off = get(m, ph + ph_offset(m), word(m));
	size = get(m, ph + ph_filesz(m), word(m));
	for (i = 0; i + ent <= size; i += ent) {
		uint64_t t = get(m, off + i, word(m));

		if (!m->is64) {
			t = (uint64_t)(int64_t)(int32_t)t;
		}
		if ((int64_t)t == tag) {
			return off + i;
		}
		if (t == DT_NULL) {
			break;
		}
	}
	return 0;
}

static uint64_t dyn_val(const struct img *m, int64_t tag)
{
	size_t e = dyn_entry(m, tag);

	ck_assert_msg(e != 0, "no dynamic tag %lld", (long long)tag);
	return get(m, e + (size_t)word(m), word(m));
}

static void set_dyn(struct img *m, int64_t tag, uint64_t v)
{
	size_t e = dyn_entry(m, tag);

	ck_assert_msg(e != 0, "no dynamic tag %lld", (long long)tag);
	put(m, e + (size_t)word(m), word(m), v);
}

/* File offset of a virtual address inside a PT_LOAD. */
static size_t v2off(const struct img *m, uint64_t vaddr)
{
	size_t phoff = get(m, e_phoff_at(m), word(m)), ent = get(m, e_phentsize_at(m), 2), n = get(m, e_phnum_at(m), 2), i;

	for (i = 0; i < n; i++) {
		size_t p = phoff + i * ent;
		uint64_t va = get(m, p + ph_vaddr(m), word(m)), fs = get(m, p + ph_filesz(m), word(m));

		if (get(m, p, 4) == PT_LOAD && vaddr >= va && vaddr < va + fs) {
			return get(m, p + ph_offset(m), word(m)) + (vaddr - va);
		}
	}
	ck_abort_msg("vaddr %#llx not in any PT_LOAD", (unsigned long long)vaddr);
	return 0;
}

/* End of the furthest PT_LOAD file image. */
static size_t loads_end(const struct img *m)
{
	size_t phoff = get(m, e_phoff_at(m), word(m)), ent = get(m, e_phentsize_at(m), 2), n = get(m, e_phnum_at(m), 2), i,
	       end = 0;

	for (i = 0; i < n; i++) {
		size_t p = phoff + i * ent;

		if (get(m, p, 4) == PT_LOAD) {
			size_t e = get(m, p + ph_offset(m), word(m)) + get(m, p + ph_filesz(m), word(m));

			end = e > end ? e : end;
		}
	}
	return end;
}

/* Turn the DT_INIT entry into a DT_NEEDED with string index idx (objects without DT_NEEDED). */
static void forge_needed(struct img *m, uint64_t idx)
{
	size_t e = dyn_entry(m, DT_INIT);

	ck_assert_uint_ne(e, 0);
	put(m, e, word(m), DT_NEEDED);
	put(m, e + (size_t)word(m), word(m), idx);
}

static struct img orig;

static void load(const char *path)
{
	orig.b = (unsigned char *)kwt_read_file(path, &orig.len);
	ck_assert_msg(orig.b != NULL, "cannot read %s", path);
	ck_assert(kw_elf_is_elf(orig.b, orig.len));
	orig.is64 = orig.b[EI_CLASS] == ELFCLASS64;
	orig.msb = orig.b[EI_DATA] == ELFDATA2MSB;
}

/* A fresh writable copy of the loaded object (malloc'd exactly, so ASan sees overreads). */
static struct img copy(void)
{
	struct img m = orig;

	m.b = malloc(orig.len);
	ck_assert_ptr_nonnull(m.b);
	memcpy(m.b, orig.b, orig.len);
	return m;
}

static void expect_error_len(const struct img *m, size_t len, const char *what)
{
	struct kw_elf_info *info = (struct kw_elf_info *)&info; /* must be reset to NULL */
	struct kw_error err = { 0 };
	unsigned char *exact = malloc(len ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(exact);
	memcpy(exact, m->b, len);
	rc = kw_elf_parse_memory(exact, len, what, &info, &err);
	check_agrees(exact, len, what, rc, &err, rc == 0 ? info : NULL);
	if (rc == 0) {
		kw_elf_info_free(info);
	}
	free(exact);
	if (getenv("KWT_VERBOSE")) {
		fprintf(stderr, "# %s -> %d %s\n", what, rc, err.msg);
	}
	ck_assert_msg(rc < 0, "%s: accepted", what);
	ck_assert_msg(info == NULL, "%s: *out not NULL on error", what);
	ck_assert_msg(err.msg[0] != 0, "%s: no message", what);
	ck_assert_msg(err.code == rc, "%s: err.code %d, returned %d", what, err.code, rc);
}

static void expect_error(struct img *m, const char *what)
{
	expect_error_len(m, m->len, what);
	free(m->b);
	m->b = NULL;
}

static void expect_ok(struct img *m, const char *what)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	int rc = kw_elf_parse_memory(m->b, m->len, what, &info, &err);

	ck_assert_msg(rc == 0, "%s: %s", what, err.msg);
	check_agrees(m->b, m->len, what, rc, &err, info);
	kw_elf_info_free(info);
	free(m->b);
	m->b = NULL;
}

static void truncations(const char *label)
{
	size_t phoff = get(&orig, e_phoff_at(&orig), word(&orig)), phsz = get(&orig, e_phentsize_at(&orig), 2) *
									 get(&orig, e_phnum_at(&orig), 2);
	size_t dyn = phdr(&orig, PT_DYNAMIC), dyn_off = get(&orig, dyn + ph_offset(&orig), word(&orig));
	size_t dyn_sz = get(&orig, dyn + ph_filesz(&orig), word(&orig));
	size_t str_off = v2off(&orig, dyn_val(&orig, DT_STRTAB)), str_sz = dyn_val(&orig, DT_STRSZ);
	size_t cuts[] = {
		0, 1, 4, EI_NIDENT, EI_NIDENT + 8, /* inside e_ident and the header */
		phoff + phsz / 2, phoff + phsz - 1, /* inside the program headers */
		str_off + str_sz / 2,               /* inside .dynstr */
		dyn_off + dyn_sz / 2,               /* inside the dynamic segment */
		dyn_off + dyn_sz - 1,
	};
	size_t i;

	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char *what = kwt_fmt("%s truncated at %zu of %zu", label, cuts[i], orig.len);

		ck_assert_uint_lt(cuts[i], orig.len);
		expect_error_len(&orig, cuts[i], what);
		free(what);
	}
}

/*
 * The x86-64 bases for forgeries, both made from Debian's libz of the corpus
 * sysroot (not the system's, which differs from machine to machine): a copy
 * patchelf has given a search path too long for the old .dynstr, so the
 * string table and a new PT_LOAD sit at the end of the file, as an ELF
 * patcher leaves them, and the untouched file, laid out as the linker wrote it.
 */
static void load_base(int which)
{
	char *p = kwt_fmt("%s/sysroot/lib/x86_64-linux-gnu/libz.so.1.2.13", kwt_corpus());

	if (which == 0) {
		char *dir = kwt_mkdtemp(), *copy = kwt_fmt("%s/libz.so.1", dir);
		char *cmd = kwt_fmt("cp '%s' '%s' && chmod u+w '%s' && patchelf --set-rpath "
				    "/opt/a/search/path/far/too/long/for/the/string/table/as/it/was '%s'",
				    p, copy, copy, copy);

		ck_assert_msg(kwt_run(cmd, NULL, NULL) == 0, "patchelf cannot patch a copy of %s", p);
		load(copy);
		kwt_rmtree(dir);
		free(cmd);
		free(copy);
		free(dir);
	} else {
		load(p);
	}
	free(p);
	ck_assert(orig.is64 && !orig.msb);
}

START_TEST(truncated_x86_64)
{
	load_base(_i);
	truncations(_i ? "Debian libz" : "patched libz");
	free(orig.b);
}
END_TEST

/*
 * Cut inside the last PT_LOAD's file image, after the dynamic segment: the
 * loader would map pages past the end of the file. Every segment the object
 * declares must be in the file.
 */
START_TEST(truncated_inside_last_load)
{
	size_t dyn, dyn_end, end;

	load_base(1);
	dyn = phdr(&orig, PT_DYNAMIC);
	dyn_end = get(&orig, dyn + ph_offset(&orig), 8) + get(&orig, dyn + ph_filesz(&orig), 8);
	end = loads_end(&orig);
	ck_assert_uint_lt(dyn_end, end);
	expect_error_len(&orig, end - 1, "libz cut one byte before the end of its last PT_LOAD");
	expect_error_len(&orig, dyn_end + (end - dyn_end) / 2, "libz cut between its dynamic segment and the end of its last PT_LOAD");
	free(orig.b);
}
END_TEST

START_TEST(truncated_elf32_and_big_endian)
{
	static const char *const which[] = {
		"glibc/testsimple-0.0.1-cp313-cp313-linux_armv7l.whl",   /* ELF32 LSB */
		"glibc/testsimple-0.0.1-cp313-cp313-linux_i686.whl",     /* ELF32 LSB */
		"glibc/testsimple-0.0.1-cp313-cp313-linux_s390x.whl",    /* ELF64 MSB */
		"musllinux_1_2/testsimple-0.0.1-cp312-cp312-linux_s390x.whl",
		"glibc/testsimple-0.0.1-cp313-cp313-linux_mips64.whl",   /* ELF64 LSB, MIPS r_info */
	};
	char *dir = kwt_mkdtemp(), *cmd, *out = NULL;

	cmd = kwt_fmt("cd '%s' && unzip -q -o '%s/wheels/auditwheel/%s' && ls *.so", dir, kwt_corpus(), which[_i]);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	out[strcspn(out, "\n")] = '\0';
	free(cmd);
	cmd = kwt_fmt("%s/%s", dir, out);
	load(cmd);
	truncations(which[_i]);

	/* forged copies, written in the object's own byte order */
	{
		struct img m;

		m = copy();
		put(&m, e_phoff_at(&m), word(&m), m.len + 16);
		expect_error(&m, "e_phoff past the end");
		m = copy();
		put(&m, e_phnum_at(&m), 2, 0xffff);
		expect_error(&m, "e_phnum 65535");
		m = copy();
		put(&m, phdr(&m, PT_DYNAMIC) + ph_offset(&m), word(&m), m.len + 8);
		expect_error(&m, "PT_DYNAMIC past the end");
		m = copy();
		set_dyn(&m, DT_STRSZ, m.is64 ? 0x7fffffffffffull : 0x7fffffff);
		expect_error(&m, "DT_STRSZ huge");
		m = copy();
		forge_needed(&m, dyn_val(&m, DT_STRSZ));
		expect_error(&m, "DT_NEEDED index = DT_STRSZ");
		m = copy();
		set_dyn(&m, DT_STRTAB, m.is64 ? 0x7fff00000000ull : 0x7fff0000);
		expect_error(&m, "DT_STRTAB outside every PT_LOAD");
	}
	free(orig.b);
	kwt_rmtree(dir);
	free(dir);
	free(cmd);
	free(out);
}
END_TEST

START_TEST(forged_headers)
{
	struct img m;
	size_t sh0;

	load_base(_i);

	m = copy();
	put(&m, e_phoff_at(&m), 8, m.len + 64);
	expect_error(&m, "e_phoff past the end");
	m = copy();
	put(&m, e_phoff_at(&m), 8, UINT64_MAX - 16);
	expect_error(&m, "e_phoff wraps");
	m = copy();
	put(&m, e_phoff_at(&m), 8, m.len - 56);
	expect_error(&m, "program headers run past the end");
	m = copy();
	put(&m, e_phentsize_at(&m), 2, 40);
	expect_error(&m, "e_phentsize 40");

	/* e_phnum 65535 is PN_XNUM: the count is in section 0's sh_info */
	sh0 = get(&orig, e_shoff_at(&orig), 8);
	m = copy();
	put(&m, e_phnum_at(&m), 2, 0xffff);
	ck_assert_uint_eq(get(&m, sh0 + 0x2c, 4), 0);
	expect_error(&m, "e_phnum 65535, sh_info 0");
	m = copy();
	put(&m, e_phnum_at(&m), 2, 0xffff);
	put(&m, sh0 + 0x2c, 4, 0xffffffffu);
	expect_error(&m, "e_phnum 65535, sh_info 0xffffffff");
	m = copy();
	put(&m, sh0 + 0x2c, 4, get(&m, e_phnum_at(&m), 2));
	put(&m, e_phnum_at(&m), 2, 0xffff);
	expect_ok(&m, "e_phnum PN_XNUM with the real count in sh_info");
	m = copy();
	put(&m, e_phnum_at(&m), 2, 0xfffe);
	expect_error(&m, "e_phnum 65534");

	m = copy();
	m.b[EI_CLASS] = 7;
	expect_error(&m, "EI_CLASS 7");
	m = copy();
	m.b[EI_DATA] = 9;
	expect_error(&m, "EI_DATA 9");
	m = copy();
	m.b[1] = 'F';
	expect_error(&m, "bad magic");
	m = copy();
	put(&m, e_phnum_at(&m), 2, 0);
	expect_error(&m, "no program headers in a shared object");

	/*
	 * A PT_LOAD whose end wraps around the address space: the loader cannot
	 * map it and the editor refuses it, so the reader must too. Ending at the
	 * very last address is still a (useless but) valid segment.
	 */
	{
		size_t phoff = get(&orig, e_phoff_at(&orig), 8), ld = 0, k;
		uint64_t va = 0;
		struct kw_patch_ops ops = { 0 };
		struct kw_patch_result res = { 0 };
		struct kw_error perr = { 0 };

		/* The last PT_LOAD: its vaddr is not 0, so UINT64_MAX - va + 1 does not wrap to 0 itself. */
		for (k = 0; k < get(&orig, e_phnum_at(&orig), 2); k++) {
			if (get(&orig, phoff + k * 56, 4) == PT_LOAD) {
				ld = phoff + k * 56;
			}
		}
		va = get(&orig, ld + ph_vaddr(&orig), 8);
		ck_assert_uint_ne(va, 0);

		m = copy();
		put(&m, ld + 40, 8, UINT64_MAX - va + 1);
		expect_error(&m, "PT_LOAD p_memsz wraps by one byte");
		m = copy();
		put(&m, ld + 40, 8, UINT64_MAX);
		ck_assert_int_lt(kw_patch_image(m.b, m.len, "wrap", &ops, &res, &perr), 0);
		ck_assert_ptr_nonnull(strstr(perr.msg, "wraps"));
		kw_patch_result_release(&res);
		expect_error(&m, "PT_LOAD p_memsz UINT64_MAX");
		m = copy();
		put(&m, ld + ph_vaddr(&m), 8, UINT64_MAX - 0xfff);
		put(&m, ld + 40, 8, 0x2000);
		expect_error(&m, "PT_LOAD at the top of the address space, running past it");
		m = copy();
		put(&m, ld + 40, 8, UINT64_MAX - va);
		expect_ok(&m, "PT_LOAD ending at the last address");
	}

	/* PT_INTERP with no bytes */
	m = copy();
	put(&m, phdr(&m, PT_GNU_STACK), 4, PT_INTERP);
	expect_error(&m, "empty PT_INTERP");
	free(orig.b);
}
END_TEST

START_TEST(forged_dynamic)
{
	struct img m;
	size_t dyn;

	load_base(_i);
	dyn = phdr(&orig, PT_DYNAMIC);

	m = copy();
	put(&m, dyn + ph_offset(&m), 8, m.len + 8);
	expect_error(&m, "PT_DYNAMIC offset past the end");
	m = copy();
	put(&m, dyn + ph_offset(&m), 8, m.len - 8);
	expect_error(&m, "PT_DYNAMIC runs past the end");
	m = copy();
	put(&m, dyn + ph_filesz(&m), 8, UINT64_MAX);
	expect_error(&m, "PT_DYNAMIC size huge");

	m = copy();
	set_dyn(&m, DT_STRTAB, 0x7fff00000000ull);
	expect_error(&m, "DT_STRTAB outside every PT_LOAD");
	m = copy();
	set_dyn(&m, DT_STRTAB, UINT64_MAX - 2);
	expect_error(&m, "DT_STRTAB at the top of the address space");
	m = copy();
	set_dyn(&m, DT_STRSZ, 0x7fffffffffffull);
	expect_error(&m, "DT_STRSZ huge");
	m = copy();
	set_dyn(&m, DT_STRSZ, UINT64_MAX);
	expect_error(&m, "DT_STRSZ all ones");
	m = copy();
	set_dyn(&m, DT_NEEDED, dyn_val(&m, DT_STRSZ));
	expect_error(&m, "DT_NEEDED index = DT_STRSZ");
	m = copy();
	set_dyn(&m, DT_NEEDED, 0x7fffffff);
	expect_error(&m, "DT_NEEDED index huge");
	m = copy();
	/* the last byte of the table made non-NUL: the last string is unterminated */
	m.b[v2off(&m, dyn_val(&m, DT_STRTAB)) + dyn_val(&m, DT_STRSZ) - 1] = 'x';
	set_dyn(&m, DT_SONAME, dyn_val(&m, DT_STRSZ) - 1);
	expect_error(&m, "DT_SONAME at an unterminated string");
	m = copy();
	set_dyn(&m, DT_SONAME, UINT64_MAX);
	expect_error(&m, "DT_SONAME index all ones");
	m = copy();
	put(&m, dyn_entry(&m, DT_STRTAB), 8, DT_NULL + 0x6fffffff); /* DT_STRTAB gone (unknown tag) */
	expect_error(&m, "strings but no DT_STRTAB");

	m = copy();
	set_dyn(&m, DT_SYMENT, 7);
	expect_error(&m, "DT_SYMENT 7");
	m = copy();
	set_dyn(&m, DT_SYMTAB, 0x7fff00000000ull);
	expect_error(&m, "DT_SYMTAB outside every PT_LOAD (hash table counts symbols)");
	m = copy();
	set_dyn(&m, DT_RELASZ, 0x7fffffffffffull);
	expect_error(&m, "DT_RELASZ huge");
	m = copy();
	set_dyn(&m, DT_JMPREL, 0x7fff00000000ull);
	expect_error(&m, "DT_JMPREL outside every PT_LOAD");
	m = copy();
	set_dyn(&m, DT_PLTRELSZ, UINT64_MAX);
	expect_error(&m, "DT_PLTRELSZ all ones");
	m = copy();
	{
		size_t gh = v2off(&m, dyn_val(&m, DT_GNU_HASH));

		put(&m, gh, 4, 0x40000000); /* nbuckets */
		expect_error(&m, "DT_GNU_HASH nbuckets huge");
		m = copy();
		put(&m, gh + 8, 4, 0x40000000); /* bloom size */
		expect_error(&m, "DT_GNU_HASH bloom size huge");
		m = copy();
		put(&m, gh + 16 + 8 * get(&m, gh + 8, 4), 4, 0x7fffffff); /* first bucket */
		expect_error(&m, "DT_GNU_HASH bucket past the symbol table");
	}
	free(orig.b);
}
END_TEST

START_TEST(forged_versions)
{
	struct img m;
	size_t vn, aux, vd;

	load_base(_i);
	ck_assert_uint_ge(dyn_val(&orig, DT_VERNEEDNUM), 1);
	vn = v2off(&orig, dyn_val(&orig, DT_VERNEED));
	aux = vn + get(&orig, vn + 8, 4);
	vd = v2off(&orig, dyn_val(&orig, DT_VERDEF));

	m = copy();
	set_dyn(&m, DT_VERNEEDNUM, 100000);
	expect_error(&m, "DT_VERNEEDNUM 100000");
	m = copy();
	set_dyn(&m, DT_VERNEED, 0x7fff00000000ull);
	expect_error(&m, "DT_VERNEED outside every PT_LOAD");
	/*
	 * vn_next is relative and 0 ends the chain, so a record cannot name
	 * itself; 0xfffffff0 is -16 in the 32-bit arithmetic of a naive walker,
	 * a loop back to the record before, and must be refused.
	 */
	m = copy();
	put(&m, vn + 12, 4, 0xfffffff0u);
	set_dyn(&m, DT_VERNEEDNUM, 4000);
	expect_error(&m, "verneed vn_next loops back");
	m = copy();
	put(&m, aux + 12, 4, 0xfffffff0u);
	put(&m, vn + 2, 2, 0xffff); /* vn_cnt */
	expect_error(&m, "vernaux vna_next loops back");
	m = copy();
	put(&m, vn + 8, 4, 0x7fffffff); /* vn_aux */
	expect_error(&m, "vn_aux past the end");
	m = copy();
	put(&m, vn + 4, 4, 0x7fffffff); /* vn_file */
	expect_error(&m, "vn_file past the string table");
	m = copy();
	put(&m, aux + 8, 4, 0x7fffffff); /* vna_name */
	expect_error(&m, "vna_name past the string table");
	/* A chain that ends early (vn_next 0) while DT_VERNEEDNUM says more: the loader stops there too. */
	m = copy();
	set_dyn(&m, DT_VERNEEDNUM, 4000);
	{
		struct kw_elf_info *info = NULL;
		struct kw_error err = { 0 };
		int rc = kw_elf_parse_memory(m.b, m.len, "early end", &info, &err);

		ck_assert_msg(rc == 0 || err.msg[0], "no message");
		check_agrees(m.b, m.len, "early end", rc, &err, info);
		kw_elf_info_free(info);
		free(m.b);
	}

	m = copy();
	set_dyn(&m, DT_VERDEFNUM, 100000);
	expect_error(&m, "DT_VERDEFNUM 100000");
	m = copy();
	put(&m, vd + 16, 4, 0xffffffecu); /* vd_next */
	set_dyn(&m, DT_VERDEFNUM, 4000);
	expect_error(&m, "verdef vd_next loops back");
	m = copy();
	put(&m, vd + 12, 4, 0x7fffffff); /* vd_aux */
	expect_error(&m, "vd_aux past the end");
	free(orig.b);
}
END_TEST

/* Random byte damage to small real objects: any answer, but never a crash and never an error without a message. */
START_TEST(random_damage_never_crashes)
{
	static const char *const which[] = {
		"glibc/testsimple-0.0.1-cp313-cp313-linux_x86_64.whl",
		"glibc/testsimple-0.0.1-cp313-cp313-linux_armv7l.whl",
		"glibc/testsimple-0.0.1-cp313-cp313-linux_s390x.whl",
		"glibc/testsimple-0.0.1-cp313-cp313-linux_mips64.whl",
	};
	char *dir = kwt_mkdtemp(), *cmd, *out = NULL, *path;
	uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)_i;
	size_t round, errors = 0, hdr_end;

	cmd = kwt_fmt("cd '%s' && unzip -q -o '%s/wheels/auditwheel/%s' && ls *.so", dir, kwt_corpus(), which[_i]);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	out[strcspn(out, "\n")] = '\0';
	path = kwt_fmt("%s/%s", dir, out);
	load(path);
	/* damage the part the reader looks at: headers, dynamic data, tables */
	hdr_end = orig.len < 0x1000 ? orig.len : 0x1000;
	for (round = 0; round < 1500; round++) {
		struct img m = copy();
		struct kw_elf_info *info = NULL;
		struct kw_error err = { 0 };
		int flips = 1 + (int)(round % 8), k, rc;

		for (k = 0; k < flips; k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			if (k % 2 == 0) {
				size_t dyn = phdr(&orig, PT_DYNAMIC);
				size_t at = dyn ? get(&orig, dyn + ph_offset(&orig), word(&orig)) : 0;
				size_t sz = dyn ? get(&orig, dyn + ph_filesz(&orig), word(&orig)) : 0;

				if (sz && (seed >> 40) % 2 && at + sz <= m.len) {
					m.b[at + (seed >> 8) % sz] ^= (unsigned char)(1u << (seed >> 60) % 8);
					continue;
				}
			}
			m.b[(seed >> 8) % hdr_end] = (unsigned char)(seed >> 32);
		}
		rc = kw_elf_parse_memory(m.b, m.len, "damaged", &info, &err);
		check_agrees(m.b, m.len, "damaged", rc, &err, info);
		if (rc) {
			ck_assert_msg(err.msg[0] != 0, "round %zu: error %d without a message", round, rc);
			ck_assert_ptr_null(info);
			errors++;
		} else {
			(void)kw_elf_arch(info);
			kw_elf_info_free(info);
		}
		free(m.b);
	}
	ck_assert_uint_gt(errors, 0);
	free(orig.b);
	kwt_rmtree(dir);
	free(dir);
	free(path);
	free(cmd);
	free(out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A hand-built object with DT_HASH, in every class and byte order */

struct builder {
	unsigned char b[4096];
	struct img m;
};

/*
 * Layout (file offset = vaddr): ehdr, 2 phdrs (PT_LOAD over the whole file,
 * PT_DYNAMIC), .dynstr at 0x200, .dynsym at 0x300, .hash at 0x600, .dynamic at
 * 0x800. Symbols: null, "alpha" (defined), "beta" (undefined), "gamma"
 * (defined). hash_word: 4, or 8 for s390x/alpha.
 */
static void build(struct builder *bd, bool is64, bool msb, uint16_t machine, int hash_word)
{
	static const char strtab[] = "\0libc.so.6\0alpha\0beta\0gamma\0libtest.so.1";
	struct img *m = &bd->m;
	size_t ph, dyn = 0x800, sym = 0x300, hash = 0x600, i, syment = is64 ? 24 : 16, dent = is64 ? 16 : 8;
	const uint32_t names[] = { 0, 11, 17, 22 };
	const bool defined[] = { false, true, false, true };

	memset(bd->b, 0, sizeof(bd->b));
	m->b = bd->b;
	m->len = sizeof(bd->b);
	m->is64 = is64;
	m->msb = msb;
	memcpy(m->b, ELFMAG, SELFMAG);
	m->b[EI_CLASS] = is64 ? ELFCLASS64 : ELFCLASS32;
	m->b[EI_DATA] = msb ? ELFDATA2MSB : ELFDATA2LSB;
	m->b[EI_VERSION] = EV_CURRENT;
	put(m, 16, 2, ET_DYN);
	put(m, 18, 2, machine);
	put(m, 20, 4, EV_CURRENT);
	ph = is64 ? 64 : 52;
	put(m, e_phoff_at(m), word(m), ph);
	put(m, is64 ? 52 : 40, 2, is64 ? 64 : 52); /* e_ehsize */
	put(m, e_phentsize_at(m), 2, is64 ? 56 : 32);
	put(m, e_phnum_at(m), 2, 2);
	/* PT_LOAD */
	put(m, ph, 4, PT_LOAD);
	put(m, ph + ph_filesz(m), word(m), m->len);
	put(m, ph + ph_filesz(m) + (size_t)word(m), word(m), m->len);
	/* PT_DYNAMIC */
	ph += is64 ? 56 : 32;
	put(m, ph, 4, PT_DYNAMIC);
	put(m, ph + ph_offset(m), word(m), dyn);
	put(m, ph + ph_vaddr(m), word(m), dyn);
	put(m, ph + ph_filesz(m), word(m), 10 * dent);
	memcpy(m->b + 0x200, strtab, sizeof(strtab));
	for (i = 1; i < 4; i++) {
		size_t s = sym + i * syment;

		put(m, s, 4, names[i]);
		if (is64) {
			m->b[s + 4] = STB_GLOBAL << 4 | STT_FUNC;
			put(m, s + 6, 2, defined[i] ? 1 : SHN_UNDEF);
			put(m, s + 8, 8, defined[i] ? 0x100 : 0);
		} else {
			put(m, s + 4, 4, defined[i] ? 0x100 : 0);
			m->b[s + 12] = STB_GLOBAL << 4 | STT_FUNC;
			put(m, s + 14, 2, defined[i] ? 1 : SHN_UNDEF);
		}
	}
	/* SysV hash: nbucket 1, nchain 4, bucket[0] = 3, chain 3 -> 2 -> 1 -> 0 */
	put(m, hash, hash_word, 1);
	put(m, hash + (size_t)hash_word, hash_word, 4);
	put(m, hash + 2 * (size_t)hash_word, hash_word, 3);
	put(m, hash + 3 * (size_t)hash_word, hash_word, 0);
	put(m, hash + 4 * (size_t)hash_word, hash_word, 0);
	put(m, hash + 5 * (size_t)hash_word, hash_word, 1);
	put(m, hash + 6 * (size_t)hash_word, hash_word, 2);
	{
		const uint64_t dt[][2] = {
			{ DT_NEEDED, 1 }, { DT_SONAME, 28 }, { DT_STRTAB, 0x200 }, { DT_STRSZ, sizeof(strtab) },
			{ DT_SYMTAB, 0x300 }, { DT_SYMENT, is64 ? 24 : 16 }, { DT_HASH, 0x600 }, { DT_NULL, 0 },
		};

		for (i = 0; i < sizeof(dt) / sizeof(dt[0]); i++) {
			put(m, dyn + i * dent, word(m), dt[i][0]);
			put(m, dyn + i * dent + (size_t)word(m), word(m), dt[i][1]);
		}
	}
}

START_TEST(sysv_hash_symbol_count)
{
	static const struct {
		bool is64, msb;
		uint16_t machine;
		int hash_word;
		const char *what;
	} kinds[] = {
		{ true, false, EM_X86_64, 4, "x86-64" },
		{ false, false, EM_386, 4, "i386" },
		{ false, true, EM_PPC, 4, "ppc32 big-endian" },
		{ true, true, EM_PPC64, 4, "ppc64 big-endian" },
		{ false, true, EM_MIPS, 4, "mips32 big-endian" },
		{ true, true, EM_S390, 8, "s390x (64-bit hash words)" },
	};
	struct builder bd;
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	char *dir = kwt_mkdtemp(), *path = kwt_fmt("%s/obj.so", dir), *cmd, *out = NULL;
	int rc;

	build(&bd, kinds[_i].is64, kinds[_i].msb, kinds[_i].machine, kinds[_i].hash_word);
	/* readelf -D reads the same object through its dynamic segment (and 8-byte hash words on s390x) */
	ck_assert_int_eq(kwt_write_file(path, bd.b, sizeof(bd.b)), 0);
	cmd = kwt_fmt("readelf -W -D -s '%s' | grep -cE ' (alpha|beta|gamma)$'", path);
	kwt_run(cmd, &out, NULL);
	ck_assert_msg(out && atoi(out) == 3, "%s: readelf -D sees %s symbols", kinds[_i].what, out);

	kwt_rmtree(dir);
	/* the same object cut short (this is the ELF32 big-endian truncation case: ppc32, mips32) */
	{
		size_t dyn_end = 0x800 + 10 * (kinds[_i].is64 ? 16 : 8);
		const size_t cuts[] = { 0, 10, 30, 60, 100, 0x205, 0x650, 0x810, dyn_end - 1 };
		size_t c;

		for (c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			char *what = kwt_fmt("%s cut at %zu", kinds[_i].what, cuts[c]);

			expect_error_len(&bd.m, cuts[c], what);
			free(what);
		}
	}
	rc = kw_elf_parse_memory(bd.b, sizeof(bd.b), kinds[_i].what, &info, &err);
	ck_assert_msg(rc == 0, "%s: %s", kinds[_i].what, err.msg);
	check_agrees(bd.b, sizeof(bd.b), kinds[_i].what, rc, &err, info);
	ck_assert_uint_eq(info->n_needed, 1);
	ck_assert_str_eq(info->needed[0], "libc.so.6");
	ck_assert_str_eq(info->soname, "libtest.so.1");
	ck_assert_msg(info->n_syms == 3, "%s: %zu dynamic symbols, the hash table says 3 (nchain 4)", kinds[_i].what,
		      info->n_syms);
	ck_assert_str_eq(info->syms[0].name, "alpha");
	ck_assert(info->syms[0].defined);
	ck_assert_str_eq(info->syms[1].name, "beta");
	ck_assert(!info->syms[1].defined);
	ck_assert_str_eq(info->syms[2].name, "gamma");
	kw_elf_info_free(info);
	free(dir);
	free(path);
	free(cmd);
	free(out);
}
END_TEST

/*
 * Objects whose DT_GNU_HASH hashes nothing, built here: GNU ld writes one
 * unused bucket and symoffset 1 however many undefined symbols the
 * relocations name (libopenmpi's Fortran stubs are such files). The reader
 * must list exactly the dynamic symbols readelf lists from .dynsym, each
 * relocation's symbol included.
 */
static const struct {
	const char *what, *src, *flags;
} empty_hash_objs[] = {
	{ "exports nothing (hidden)", "int f(void) { return 1; }", "-fvisibility=hidden" },
	{ "only undefined symbols", "#include <stdio.h>\nextern int g;\n"
	  "__attribute__((visibility(\"hidden\"))) int f(void) { puts(\"x\"); return g; }", "" },
	{ "no symbols at all", "int f(void) { return 1; }", "-fvisibility=hidden -nostdlib" },
	{ "no symbols, DT_HASH too", "int f(void) { return 1; }", "-fvisibility=hidden -nostdlib -Wl,--hash-style=both" },
};

START_TEST(empty_gnu_hash)
{
	char *dir = kwt_mkdtemp(), *src = kwt_fmt("%s/x.c", dir), *so = kwt_fmt("%s/x.so", dir), *cmd, *out = NULL;
	size_t nn = 0, ns = 0, nr = 0, nv = 0, i;
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	long want;

	ck_assert_int_eq(kwt_write_file(src, empty_hash_objs[_i].src, strlen(empty_hash_objs[_i].src)), 0);
	cmd = kwt_fmt("gcc -shared -fPIC -Wl,--hash-style=gnu %s -o '%s' '%s' 2>&1", empty_hash_objs[_i].flags, so, src);
	ck_assert_msg(kwt_run(cmd, &out, NULL) == 0, "%s: %s", cmd, out);
	free(cmd);
	free(out);
	/* The case is what it claims: one bucket, empty, and symoffset 1. */
	cmd = kwt_fmt("readelf -W -S '%s' | sed -n 's/.*\\.gnu\\.hash *GNU_HASH *[0-9a-f]* \\([0-9a-f]*\\) .*/\\1/p' | "
		      "{ read off && od -An -tu4 -j $((0x$off)) -N 8 '%s'; }; "
		      "od -An -tu4 -j $((0x$(readelf -W -S '%s' | sed -n 's/.*\\.gnu\\.hash *GNU_HASH *[0-9a-f]* "
		      "\\([0-9a-f]*\\) .*/\\1/p') + 24)) -N 4 '%s'", so, so, so, so);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	{
		unsigned long nb = 0, symoff = 0, bucket = 99;

		ck_assert_int_eq(sscanf(out, "%lu %lu %lu", &nb, &symoff, &bucket), 3);
		ck_assert_msg(nb == 1 && symoff == 1 && bucket == 0, "%s: .gnu.hash %lu buckets, symoffset %lu, bucket %lu",
			      empty_hash_objs[_i].what, nb, symoff, bucket);
	}
	free(cmd);
	free(out);
	cmd = kwt_fmt("readelf -W --dyn-syms '%s' | grep -c '^ *[0-9]*:'", so);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	want = strtol(out, NULL, 10) - 1;
	free(cmd);
	free(out);
	ck_assert_int_eq(kw_elf_parse_file(so, &info, &err), 0);
	ck_assert_msg((long)info->n_syms == (want < 0 ? 0 : want), "%s: %zu symbols, readelf %ld", empty_hash_objs[_i].what,
		      info->n_syms, want);
	kw_elf_info_free(info);
	ck_assert(compare_one(so, &nn, &ns, &nr, &nv));
	for (i = 0; i < problems.n; i++) {
		fprintf(stderr, "# MISMATCH %s\n", problems.v[i]);
	}
	ck_assert_msg(problems.n == 0, "%s: %s", empty_hash_objs[_i].what, problems.n ? problems.v[0] : "");
	sl_free(&problems);
	kwt_rmtree(dir);
	free(dir);
	free(src);
	free(so);
}
END_TEST

START_TEST(misc_api)
{
	struct kw_elf_info *info = NULL;
	struct kw_error err = { 0 };
	char *libz;

	ck_assert(!kw_elf_is_elf("\x7f" "EL", 3));
	ck_assert(kw_elf_is_elf("\x7f" "ELF", 4));
	ck_assert_int_lt(kw_elf_parse_file("/nonexistent/kwheel/x.so", &info, &err), 0);
	ck_assert_ptr_null(info);
	ck_assert(err.msg[0]);
	ck_assert_int_lt(kw_elf_parse_file("/etc", &info, &err), 0);
	ck_assert_int_lt(kw_elf_parse_file("/etc/hostname", &info, &err), 0);
	ck_assert_str_eq(kw_elf_reloc_str(EM_X86_64, R_X86_64_RELATIVE), "R_X86_64_RELATIVE");
	ck_assert_str_eq(kw_elf_reloc_str(EM_AARCH64, R_AARCH64_JUMP_SLOT), "R_AARCH64_JUMP_SLOT");
	ck_assert_str_eq(kw_elf_reloc_str(EM_386, R_386_GLOB_DAT), "R_386_GLOB_DAT");
	ck_assert_ptr_nonnull(kw_elf_machine_str(0xfff0));
	/* the same object read twice is compatible with itself */
	libz = kwt_fmt("%s/sysroot/lib/x86_64-linux-gnu/libz.so.1.2.13", kwt_corpus());
	ck_assert_int_eq(kw_elf_parse_file(libz, &info, &err), 0);
	ck_assert(kw_elf_compatible(info, info));
	ck_assert_str_eq(kw_elf_arch(info), "x86_64");
	kw_elf_info_free(info);
	free(libz);
}
END_TEST

/*
 * GNU_PROPERTY_X86_ISA_1_NEEDED, as the linker writes it for -z x86-64-vN,
 * against readelf's reading of the same note; once through PT_GNU_PROPERTY
 * and once from the section alone (the segment's type overwritten).
 * (-z x86-64-baseline is left out: binutils 2.40's ld aborts on it.)
 */
static const struct {
	const char *flag;    /* linker option, or NULL: none (no ISA property written) */
	const char *readelf; /* what readelf -n prints after "x86 ISA needed: " */
	uint32_t bits;
} isa_levels[] = {
	{ "-Wl,-z,x86-64-v2", "x86-64-v2", 2 },
	{ "-Wl,-z,x86-64-v3", "x86-64-v3", 4 },
	{ "-Wl,-z,x86-64-v4", "x86-64-v4", 8 },
	{ NULL, NULL, 0 },
};

START_TEST(x86_isa_needed)
{
	char *dir = kwt_mkdtemp();
	char *so = kwt_fmt("%s/isa.so", dir), *c = kwt_fmt("%s/isa.c", dir), *cmd, *out = NULL;
	const char *src = "int f(int x) { return x + 1; }\n";
	struct kw_elf_info *info = NULL;
	struct kw_error err;
	unsigned char *buf;
	size_t len, i;
	int pass;

	ck_assert_int_eq(kwt_write_file(c, src, strlen(src)), 0);
	cmd = kwt_fmt("cc -shared -fPIC %s '%s' -o '%s' && readelf -nW '%s'",
		      isa_levels[_i].flag ? isa_levels[_i].flag : "", c, so, so);
	ck_assert_int_eq(kwt_run(cmd, &out, NULL), 0);
	/* The oracle: readelf names the level, or prints no ISA line at all. */
	if (isa_levels[_i].readelf) {
		char *want = kwt_fmt("x86 ISA needed: %s", isa_levels[_i].readelf);

		ck_assert_msg(strstr(out, want), "readelf does not show '%s':\n%s", want, out);
		free(want);
	} else {
		ck_assert_ptr_null(strstr(out, "x86 ISA needed"));
	}
	buf = (unsigned char *)kwt_read_file(so, &len);
	ck_assert_ptr_nonnull(buf);
	for (pass = 0; pass < 2; pass++) {
		const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;

		ck_assert_int_eq(kw_elf_parse_memory(buf, len, "isa.so", &info, &err), 0);
		ck_assert_int_eq(info->has_x86_isa_needed, isa_levels[_i].readelf != NULL);
		ck_assert_uint_eq(info->x86_isa_needed, isa_levels[_i].bits);
		kw_elf_info_free(info);
		info = NULL;
		/* Second pass: no PT_GNU_PROPERTY, the .note.gnu.property section must do. */
		for (i = 0; i < eh->e_phnum; i++) {
			Elf64_Phdr *ph = (Elf64_Phdr *)(buf + eh->e_phoff) + i;

			if (ph->p_type == 0x6474e553) {
				ph->p_type = PT_NULL;
			}
		}
	}
	free(buf);
	free(out);
	free(cmd);
	free(so);
	free(c);
	kwt_rmtree(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("elf");
	TCase *tc = tcase_create("readelf");
	TCase *th = tcase_create("hostile");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, matches_readelf);
	tcase_add_test(tc, arch_matches_platform_tag);
	tcase_add_loop_test(tc, x86_isa_needed, 0, 4);
	suite_add_tcase(s, tc);

	tcase_set_timeout(th, 300);
	tcase_add_loop_test(th, truncated_x86_64, 0, 2);
	tcase_add_test(th, truncated_inside_last_load);
	tcase_add_loop_test(th, truncated_elf32_and_big_endian, 0, 5);
	tcase_add_loop_test(th, forged_headers, 0, 2);
	tcase_add_loop_test(th, forged_dynamic, 0, 2);
	tcase_add_loop_test(th, forged_versions, 0, 2);
	tcase_add_loop_test(th, random_damage_never_crashes, 0, 4);
	tcase_add_loop_test(th, sysv_hash_symbol_count, 0, 6);
	tcase_add_loop_test(th, empty_gnu_hash, 0, sizeof(empty_hash_objs) / sizeof(empty_hash_objs[0]));
	tcase_add_test(th, misc_api);
	suite_add_tcase(s, th);
	return kwt_main(s);
}
