/* SPDX-License-Identifier: MIT */
/*
 * kwheel patch, and the same editor under patchelf's name: run as
 * "patchelf" or "kwheel-patchelf" (a link to kwheel), it takes patchelf
 * 0.18's command line (options and files in any order, --output, exit
 * status 1 on any error, prints showing the file as it was), so scripts
 * that call patchelf by name can use it unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kw-config.h"
#include "kwheel/elf.h"
#include "kwheel/patch.h"
#include "kwheel/util.h"
#include "kwheel/wasm.h"

#include "cli.h"

static const char synopsis[] = "[options] FILE...";
static const char summary[] =
	"Edit ELF files: search path, SONAME, needed libraries, interpreter, flags, dynamic symbols.\n"
	"All edits are applied in one rewrite; files are replaced atomically.\n"
	"An option argument @FILE stands for the contents of FILE.";

enum {
	OPT_SET_RPATH = 2001, OPT_ADD_RPATH, OPT_REMOVE_RPATH, OPT_FORCE_RPATH, OPT_SHRINK_RPATH,
	OPT_ALLOWED_PREFIXES, OPT_SET_SONAME, OPT_REPLACE_NEEDED, OPT_ADD_NEEDED, OPT_REMOVE_NEEDED,
	OPT_PRINT_RPATH, OPT_PRINT_SONAME, OPT_PRINT_NEEDED, OPT_PRINT_INTERP, OPT_SET_INTERP, OPT_PAGE_SIZE,
	OPT_PRINT_OS_ABI, OPT_SET_OS_ABI, OPT_ADD_DEBUG_TAG, OPT_PRINT_EXECSTACK, OPT_SET_EXECSTACK,
	OPT_CLEAR_EXECSTACK, OPT_NO_DEFAULT_LIB, OPT_NO_SORT, OPT_CLEAR_SYMBOL_VERSION, OPT_RENAME_DYNSYMS,
	OPT_DEBUG, OPT_VERSION, OPT_FSYNC, OPT_IN_PLACE,
};

static const struct kw_opt_help helps[] = {
	{ { "set-rpath", required_argument, NULL, OPT_SET_RPATH }, "PATH", "set the search path (DT_RUNPATH, DT_RPATH with --force-rpath)" },
	{ { "add-rpath", required_argument, NULL, OPT_ADD_RPATH }, "PATH", "append entries to the search path" },
	{ { "remove-rpath", no_argument, NULL, OPT_REMOVE_RPATH }, NULL, "remove DT_RPATH and DT_RUNPATH" },
	{ { "force-rpath", no_argument, NULL, OPT_FORCE_RPATH }, NULL, "write DT_RPATH (inherited by dependencies) instead of DT_RUNPATH" },
	{ { "shrink-rpath", no_argument, NULL, OPT_SHRINK_RPATH }, NULL, "keep only search path entries that provide a needed library first" },
	{ { "allowed-rpath-prefixes", required_argument, NULL, OPT_ALLOWED_PREFIXES }, "P1:P2", "with --shrink-rpath, also drop entries not starting with one of these" },
	{ { "set-soname", required_argument, NULL, OPT_SET_SONAME }, "NAME", "set DT_SONAME (added if missing)" },
	{ { "replace-needed", required_argument, NULL, OPT_REPLACE_NEEDED }, "OLD NEW", "rename a DT_NEEDED entry and its version needs (two arguments)" },
	{ { "add-needed", required_argument, NULL, OPT_ADD_NEEDED }, "NAME", "add a DT_NEEDED entry before the others" },
	{ { "remove-needed", required_argument, NULL, OPT_REMOVE_NEEDED }, "NAME", "remove a DT_NEEDED entry and its version needs" },
	{ { "set-interpreter", required_argument, NULL, OPT_SET_INTERP }, "PATH", "set PT_INTERP, the program's dynamic loader" },
	{ { "set-os-abi", required_argument, NULL, OPT_SET_OS_ABI }, "ABI", "set EI_OSABI ('System V', 'Linux', 'FreeBSD', ...)" },
	{ { "set-execstack", no_argument, NULL, OPT_SET_EXECSTACK }, NULL, "make the stack executable (PF_X on PT_GNU_STACK)" },
	{ { "clear-execstack", no_argument, NULL, OPT_CLEAR_EXECSTACK }, NULL, "make the stack non-executable" },
	{ { "add-debug-tag", no_argument, NULL, OPT_ADD_DEBUG_TAG }, NULL, "add a DT_DEBUG entry (for debuggers) if there is none" },
	{ { "no-default-lib", no_argument, NULL, OPT_NO_DEFAULT_LIB }, NULL, "set DF_1_NODEFLIB: never search the default directories" },
	{ { "page-size", required_argument, NULL, OPT_PAGE_SIZE }, "SIZE", "align a new segment to at least SIZE bytes" },
	{ { "no-sort", no_argument, NULL, OPT_NO_SORT }, NULL, "accepted for patchelf's sake: segments are never sorted" },
	{ { "clear-symbol-version", required_argument, NULL, OPT_CLEAR_SYMBOL_VERSION }, "SYM", "make the dynamic symbol SYM unversioned (.gnu.version entry 1)" },
	{ { "rename-dynamic-symbols", required_argument, NULL, OPT_RENAME_DYNSYMS }, "FILE", "rename dynamic symbols by FILE's 'OLD NEW' lines; hash tables rebuilt" },
	{ { "print-rpath", no_argument, NULL, OPT_PRINT_RPATH }, NULL, "print DT_RUNPATH, or DT_RPATH if there is none" },
	{ { "print-soname", no_argument, NULL, OPT_PRINT_SONAME }, NULL, "print DT_SONAME" },
	{ { "print-needed", no_argument, NULL, OPT_PRINT_NEEDED }, NULL, "print DT_NEEDED entries, one a line" },
	{ { "print-interpreter", no_argument, NULL, OPT_PRINT_INTERP }, NULL, "print PT_INTERP" },
	{ { "print-os-abi", no_argument, NULL, OPT_PRINT_OS_ABI }, NULL, "print EI_OSABI" },
	{ { "print-execstack", no_argument, NULL, OPT_PRINT_EXECSTACK }, NULL, "print 'execstack: X' (executable), '-' or '?' (no PT_GNU_STACK)" },
	{ { "output", required_argument, NULL, 'o' }, "FILE", "write the result to FILE instead of in place (one input only)" },
	{ { "verbose", no_argument, NULL, 'v' }, NULL, "say how each file was changed" },
	{ { "fsync", no_argument, NULL, OPT_FSYNC }, NULL, "sync each new file before the rename (survives power loss)" },
	{ { "in-place", no_argument, NULL, OPT_IN_PLACE }, NULL, "write the changed blocks into the file itself, as patchelf does (no copy; see kwheel-patch(1))" },
	KW_CLI_RESOLVE_OPTS,
	{ { "help", no_argument, NULL, 'h' }, NULL, "show this help" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

/* Spellings only patchelf's command line has. */
static const struct kw_opt_help patchelf_only[] = {
	{ { "debug", no_argument, NULL, OPT_DEBUG }, NULL, "say how each file was changed" },
	{ { "version", no_argument, NULL, OPT_VERSION }, NULL, "show the version" },
	{ { NULL, 0, NULL, 0 }, NULL, NULL },
};

/* EI_OSABI values and the names patchelf prints and accepts for them. */
static const struct {
	uint8_t v;
	const char *name;
	const char *alias[2];
} os_abis[] = {
	{ 0, "System V", { "system-v", "sysv" } }, { 1, "HP-UX", { NULL, NULL } },
	{ 2, "NetBSD", { NULL, NULL } }, { 3, "Linux", { "gnu", NULL } },
	{ 4, "GNU Hurd", { "gnu-hurd", "hurd" } }, { 6, "Solaris", { NULL, NULL } },
	{ 7, "AIX", { NULL, NULL } }, { 8, "IRIX", { NULL, NULL } },
	{ 9, "FreeBSD", { NULL, NULL } }, { 10, "Tru64", { NULL, NULL } },
	{ 12, "OpenBSD", { NULL, NULL } }, { 13, "OpenVMS", { NULL, NULL } },
};

#define MAX_LIST 256

struct args {
	struct kw_patch_ops ops;
	const char *add_rpath[64];
	const char *add_needed[MAX_LIST];
	const char *remove_needed[MAX_LIST];
	struct kw_patch_replace replace[MAX_LIST];
	const char *clear_version[MAX_LIST];
	struct kw_patch_symbol_map renames;
	bool renames_given; /* --rename-dynamic-symbols, even with an empty map: patchelf rewrites then */
	bool shrink, print_rpath, print_soname, print_needed, print_interp, print_os_abi, print_execstack, verbose;
	bool patchelf; /* patchelf's command line: prints show the input, errors exit 1 */
	const char *prefixes;
	const char *output;
	char *owned[64]; /* contents of @FILE arguments */
	size_t n_owned;
};

static bool has_edits(const struct args *a)
{
	const struct kw_patch_ops *o = &a->ops;

	return o->set_rpath || o->n_add_rpath || o->remove_rpath || o->force_rpath || o->set_soname ||
	       o->n_replace_needed || o->n_add_needed || o->n_remove_needed || a->shrink || o->set_interp ||
	       o->set_os_abi || o->execstack || o->add_debug_tag || o->no_default_lib || o->n_clear_version ||
	       a->renames_given;
}

static bool has_prints(const struct args *a)
{
	return a->print_rpath || a->print_soname || a->print_needed || a->print_interp || a->print_os_abi ||
	       a->print_execstack;
}

/*
 * A wasm side module? The first bytes decide, as for a wheel member. Opened
 * as the ELF path opens files (never blocking on a FIFO); anything that is
 * not a readable regular file is left to the ELF path to report.
 */
static bool is_wasm_file(const char *path)
{
	unsigned char head[4];
	struct kw_error err;
	bool yes;
	int fd;

	if (kw_open_regular(path, &fd, NULL, &err)) {
		return false;
	}
	yes = read(fd, head, sizeof(head)) == (ssize_t)sizeof(head) && kw_wasm_is_wasm(head, sizeof(head));
	close(fd);
	return yes;
}

/* --print-* on a wasm module: RUNTIME_PATH entries joined with ':', NEEDED; no SONAME or interpreter. */
static int print_wasm(const char *path, const struct args *a)
{
	struct kw_wasm_info *w = NULL;
	struct kw_error err = { 0 };
	unsigned char *buf = NULL;
	size_t len = 0, i;

	if (kw_map_file(path, &buf, &len, &err) || kw_wasm_parse_memory(buf, len, path, &w, &err)) {
		kw_unmap_file(buf, len);
		return kw_cli_error(&err);
	}
	kw_unmap_file(buf, len);
	if (a->print_rpath) {
		for (i = 0; i < w->n_runtime_path; i++) {
			printf("%s%s", i ? ":" : "", w->runtime_path[i]);
		}
		printf("\n");
	}
	for (i = 0; a->print_needed && i < w->n_needed; i++) {
		printf("%s\n", w->needed[i]);
	}
	kw_wasm_info_free(w);
	return KW_EXIT_OK;
}

/* Prints in patchelf's order: interpreter, OS ABI, SONAME, search path, needed, stack. */
static int print_info(const char *path, const struct args *a)
{
	struct kw_elf_info *info = NULL;
	struct kw_patch_headers h;
	struct kw_error err = { 0 };
	size_t i;

	if (is_wasm_file(path)) {
		return print_wasm(path, a);
	}
	if (kw_elf_parse_file(path, &info, &err) ||
	    ((a->print_os_abi || a->print_execstack) && kw_patch_read_headers(path, &h, &err))) {
		kw_elf_info_free(info);
		return kw_cli_error(&err);
	}
	if (a->print_interp && info->interp) {
		printf("%s\n", info->interp);
	}
	if (a->print_os_abi) {
		const char *name = NULL;

		for (i = 0; i < sizeof(os_abis) / sizeof(os_abis[0]); i++) {
			if (os_abis[i].v == h.os_abi) {
				name = os_abis[i].name;
			}
		}
		if (name) {
			printf("%s\n", name);
		} else {
			printf("0x%02X\n", h.os_abi);
		}
	}
	if (a->print_soname && info->soname) {
		printf("%s\n", info->soname);
	}
	if (a->print_rpath) {
		const char *r = info->runpath ? info->runpath : info->rpath;

		printf("%s\n", r ? r : "");
	}
	if (a->print_needed) {
		for (i = 0; i < info->n_needed; i++) {
			printf("%s\n", info->needed[i]);
		}
	}
	if (a->print_execstack) {
		printf("execstack: %c\n", h.execstack > 0 ? 'X' : h.execstack == 0 ? '-' : '?');
	}
	kw_elf_info_free(info);
	return KW_EXIT_OK;
}

static int patch_one(struct kw_ctx *ctx, const char *path, struct args *a)
{
	struct kw_patch_ops ops = a->ops;
	struct kw_patch_result res;
	struct kw_error err = { 0 };
	char *shrunk = NULL, *prefix_copy = NULL;
	const char *prefixes[64];
	size_t n_prefixes = 0;
	int rc;

	if (is_wasm_file(path)) {
		bool changed = false;

		if (a->shrink) {
			return kw_cli_usage("patch", "--shrink-rpath is for ELF files");
		}
		rc = kw_patch_wasm_file(path, a->output, &ops, &changed, &err);
		if (rc == 0 && a->verbose) {
			fprintf(stderr, "%s: %s\n", a->output ? a->output : path, changed ? "dylink.0 rewritten" : "unchanged");
		}
		return rc ? kw_cli_error(&err) : KW_EXIT_OK;
	}

	if (a->shrink) {
		if (a->prefixes) {
			char *save = NULL, *tok;

			prefix_copy = kw_strdup(a->prefixes);
			for (tok = prefix_copy ? strtok_r(prefix_copy, ":", &save) : NULL; tok && n_prefixes < 64;
			     tok = strtok_r(NULL, ":", &save)) {
				prefixes[n_prefixes++] = tok;
			}
		}
		/* Shrinking works on the path as it will be after the other search-path edits. */
		if (ops.set_rpath || ops.n_add_rpath || ops.remove_rpath) {
			free(prefix_copy);
			return kw_cli_usage("patch", "--shrink-rpath cannot be combined with other search path edits");
		}
		if (kw_patch_shrunk_rpath(ctx, path, prefixes, n_prefixes, &shrunk, &err)) {
			free(prefix_copy);
			return kw_cli_error(&err);
		}
		ops.set_rpath = shrunk;
	}
	rc = kw_patch_file(path, a->output, &ops, &res, &err);
	if (rc == 0 && a->verbose) {
		fprintf(stderr, "%s: %s%s%s\n", a->output ? a->output : path,
			!res.changed     ? "unchanged"
			: res.extended   ? "grown, last segment extended"
			: res.grew       ? "grown by a new segment"
					 : "edited in place",
			res.moved_dynstr ? ", new .dynstr" : "", res.moved_dynamic ? ", new .dynamic" : "");
	}
	kw_patch_result_release(&res);
	free(shrunk);
	free(prefix_copy);
	return rc ? kw_cli_error(&err) : KW_EXIT_OK;
}

/*
 * An option argument "@FILE" is the contents of FILE, as in patchelf: a
 * search path or a name longer than the kernel lets one argument be. The
 * text is kept in a->owned until the command ends.
 */
static int resolve_arg(struct args *a, const char *arg, const char **out)
{
	struct kw_error err = { 0 };
	unsigned char *buf = NULL;
	struct stat st;
	size_t len = 0;
	char *s;

	*out = arg;
	if (arg[0] != '@') {
		return 0;
	}
	if (a->n_owned >= sizeof(a->owned) / sizeof(a->owned[0])) {
		fprintf(stderr, "kwheel patch: too many @FILE arguments\n");
		return KW_EXIT_USAGE;
	}
	if (stat(arg + 1, &st) < 0) {
		/* patchelf's wording, which scripts match. */
		fprintf(stderr, "%s: getting info about '%s': %s\n", a->patchelf ? "patchelf" : "kwheel patch", arg + 1,
			strerror(errno));
		return KW_EXIT_ERROR;
	}
	/* An empty file is an empty argument. */
	if (st.st_size > 0 && kw_map_file(arg + 1, &buf, &len, &err) != 0) {
		return kw_cli_error(&err);
	}
	s = kw_strndup(buf ? (const char *)buf : "", len);
	kw_unmap_file(buf, len);
	if (!s) {
		fprintf(stderr, "kwheel patch: out of memory\n");
		return KW_EXIT_ERROR;
	}
	a->owned[a->n_owned++] = s;
	*out = s;
	return 0;
}

static int parse_os_abi(const char *s, uint8_t *v)
{
	size_t i, k, n = strlen(s);

	/* Case and surrounding blanks do not matter. */
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n')) {
		n--;
	}
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	for (i = 0; i < sizeof(os_abis) / sizeof(os_abis[0]); i++) {
		if (strlen(os_abis[i].name) == n && strncasecmp(os_abis[i].name, s, n) == 0) {
			*v = os_abis[i].v;
			return 0;
		}
		for (k = 0; k < 2; k++) {
			if (os_abis[i].alias[k] && strlen(os_abis[i].alias[k]) == n &&
			    strncasecmp(os_abis[i].alias[k], s, n) == 0) {
				*v = os_abis[i].v;
				return 0;
			}
		}
	}
	return -1;
}

/* One option; arg2 is --replace-needed's second word. KW_EXIT_OK, or the exit status. */
static int take_opt(struct kw_ctx *ctx, struct args *a, int c, const char *raw, const char *arg2)
{
	struct kw_error err = { 0 };
	const char *arg = raw;
	int ro = kw_cli_resolve_opt(ctx, c, raw, &err), rc;

	if (ro < 0) {
		return kw_cli_error(&err);
	}
	if (ro > 0) {
		return KW_EXIT_OK;
	}
	/* As in patchelf, a map file's name is a name, never @FILE. */
	if (raw && c != OPT_REPLACE_NEEDED && c != OPT_ALLOWED_PREFIXES && c != OPT_PAGE_SIZE &&
	    c != OPT_RENAME_DYNSYMS) {
		rc = resolve_arg(a, raw, &arg);
		if (rc) {
			return rc;
		}
	}
	switch (c) {
	case OPT_SET_RPATH: a->ops.set_rpath = arg; break;
	case OPT_ADD_RPATH:
		if (a->ops.n_add_rpath >= 64) {
			return kw_cli_usage("patch", "too many --add-rpath");
		}
		a->add_rpath[a->ops.n_add_rpath++] = arg;
		break;
	case OPT_REMOVE_RPATH: a->ops.remove_rpath = true; break;
	case OPT_FORCE_RPATH: a->ops.force_rpath = true; break;
	case OPT_SHRINK_RPATH: a->shrink = true; break;
	case OPT_ALLOWED_PREFIXES: a->prefixes = arg; break;
	case OPT_SET_SONAME: a->ops.set_soname = arg; break;
	case OPT_REPLACE_NEEDED:
		if (!arg2 || a->ops.n_replace_needed >= MAX_LIST) {
			return kw_cli_usage("patch", "--replace-needed takes OLD and NEW");
		}
		a->replace[a->ops.n_replace_needed].from = arg;
		a->replace[a->ops.n_replace_needed].to = arg2;
		a->ops.n_replace_needed++;
		break;
	case OPT_ADD_NEEDED:
		if (a->ops.n_add_needed >= MAX_LIST) {
			return kw_cli_usage("patch", "too many --add-needed");
		}
		a->add_needed[a->ops.n_add_needed++] = arg;
		break;
	case OPT_REMOVE_NEEDED:
		if (a->ops.n_remove_needed >= MAX_LIST) {
			return kw_cli_usage("patch", "too many --remove-needed");
		}
		a->remove_needed[a->ops.n_remove_needed++] = arg;
		break;
	case OPT_SET_INTERP: a->ops.set_interp = arg; break;
	case OPT_SET_OS_ABI:
		if (parse_os_abi(arg, &a->ops.os_abi) < 0) {
			return kw_cli_usage("patch", "unrecognized OS ABI '%s'", arg);
		}
		a->ops.set_os_abi = true;
		break;
	case OPT_SET_EXECSTACK: a->ops.execstack = 1; break;
	case OPT_CLEAR_EXECSTACK: a->ops.execstack = -1; break;
	case OPT_ADD_DEBUG_TAG: a->ops.add_debug_tag = true; break;
	case OPT_NO_DEFAULT_LIB: a->ops.no_default_lib = true; break;
	case OPT_PAGE_SIZE: {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(arg, &end, 0);
		if (errno || *end || v == 0 || (v & (v - 1)) || v > (1ull << 30)) {
			return kw_cli_usage("patch", "--page-size takes a power of two, not '%s'", arg);
		}
		a->ops.page_size = v;
		break;
	}
	case OPT_NO_SORT: break;
	case OPT_CLEAR_SYMBOL_VERSION:
		if (a->ops.n_clear_version >= MAX_LIST) {
			return kw_cli_usage("patch", "too many --clear-symbol-version");
		}
		a->clear_version[a->ops.n_clear_version++] = arg;
		break;
	case OPT_RENAME_DYNSYMS:
		if (kw_patch_symbol_map_read(&a->renames, arg, &err) < 0) {
			return kw_cli_error(&err);
		}
		a->renames_given = true;
		/* The array may have moved: ops points at it again. */
		a->ops.rename_syms = a->renames.pairs;
		a->ops.n_rename_syms = a->renames.n;
		break;
	case OPT_PRINT_RPATH: a->print_rpath = true; break;
	case OPT_PRINT_SONAME: a->print_soname = true; break;
	case OPT_PRINT_NEEDED: a->print_needed = true; break;
	case OPT_PRINT_INTERP: a->print_interp = true; break;
	case OPT_PRINT_OS_ABI: a->print_os_abi = true; break;
	case OPT_PRINT_EXECSTACK: a->print_execstack = true; break;
	case 'o': a->output = arg; break;
	case 'v':
	case OPT_DEBUG: a->verbose = true; break;
	case OPT_FSYNC: a->ops.durable = true; break;
	case OPT_IN_PLACE: a->ops.in_place = true; break;
	default: return kw_cli_usage("patch", "unknown option");
	}
	return KW_EXIT_OK;
}

static int run_files(struct kw_ctx *ctx, struct args *a, char **files, int n)
{
	int i, rc = KW_EXIT_OK;

	if (a->output && n > 1) {
		return kw_cli_usage("patch", "--output takes one input file");
	}
	if (a->output && a->ops.in_place) {
		return kw_cli_usage("patch", "--in-place edits the input itself: not with --output");
	}
	if (a->prefixes && !a->shrink) {
		return kw_cli_usage("patch", "--allowed-rpath-prefixes only goes with --shrink-rpath");
	}
	if (!a->patchelf && !has_edits(a) && !has_prints(a)) {
		return kw_cli_usage("patch", "nothing to do: give an edit or a --print option");
	}
	for (i = 0; i < n; i++) {
		int r = KW_EXIT_OK;

		/* patchelf prints each value before it edits the file. */
		if (a->patchelf && has_prints(a)) {
			r = print_info(files[i], a);
		}
		if (r == KW_EXIT_OK && (has_edits(a) || a->output)) {
			r = patch_one(ctx, files[i], a);
		}
		if (r == KW_EXIT_OK && !a->patchelf && has_prints(a)) {
			r = print_info(a->output ? a->output : files[i], a);
		}
		if (r != KW_EXIT_OK) {
			rc = r;
		}
	}
	return rc;
}

static struct args *args_new(void)
{
	struct args *a = kw_calloc(1, sizeof(*a));

	if (!a) {
		fprintf(stderr, "kwheel patch: out of memory\n");
		return NULL;
	}
	a->ops.add_rpath = a->add_rpath;
	a->ops.add_needed = a->add_needed;
	a->ops.remove_needed = a->remove_needed;
	a->ops.replace_needed = a->replace;
	a->ops.clear_version = a->clear_version;
	return a;
}

static void args_free(struct args *a)
{
	size_t i;

	for (i = 0; a && i < a->n_owned; i++) {
		free(a->owned[i]);
	}
	if (a) {
		kw_patch_symbol_map_release(&a->renames);
	}
	free(a);
}

static int cmd_patch(struct kw_ctx *ctx, int argc, char **argv)
{
	struct option longopts[48];
	char shortopts[32];
	struct args *a = args_new();
	int c, rc = KW_EXIT_OK;

	if (!a) {
		return KW_EXIT_ERROR;
	}
	/* In order ('+'): --replace-needed takes the word after its argument, which permuting would move. */
	shortopts[0] = '+';
	kw_cli_opts(helps, longopts, sizeof(longopts) / sizeof(longopts[0]), shortopts + 1, sizeof(shortopts) - 1);
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const char *arg2 = NULL;

		if (c == 'h') {
			kw_cli_help(stdout, "patch", synopsis, summary, helps);
			goto out;
		}
		if (c == '?' || c == ':') {
			rc = kw_cli_bad_option("patch", c, argv);
			goto out;
		}
		/* Two arguments, like patchelf: the second is the next word. */
		if (c == OPT_REPLACE_NEEDED && optind < argc) {
			arg2 = argv[optind++];
		}
		rc = take_opt(ctx, a, c, optarg, arg2);
		if (rc != KW_EXIT_OK) {
			goto out;
		}
	}
	if (optind >= argc) {
		rc = kw_cli_usage("patch", "no file given");
		goto out;
	}
	rc = run_files(ctx, a, argv + optind, argc - optind);
out:
	args_free(a);
	return rc;
}

static void patchelf_usage(FILE *f)
{
	size_t i;

	fprintf(f, "syntax: patchelf [options] FILE...\n\n"
		   "kwheel's ELF editor with patchelf 0.18's command line; options:\n");
	for (i = 0; helps[i].opt.name; i++) {
		if (helps[i].opt.val >= OPT_SET_RPATH || helps[i].opt.val == 'o') {
			fprintf(f, "  [--%s%s%s]\n", helps[i].opt.name, helps[i].arg ? " " : "",
				helps[i].arg ? helps[i].arg : "");
		}
	}
	fprintf(f, "  [--debug]\n  [--version]\n");
}

static const struct kw_opt_help *find_long(const char *name)
{
	size_t i;

	for (i = 0; helps[i].opt.name; i++) {
		if (strcmp(helps[i].opt.name, name) == 0) {
			return &helps[i];
		}
	}
	for (i = 0; patchelf_only[i].opt.name; i++) {
		if (strcmp(patchelf_only[i].opt.name, name) == 0) {
			return &patchelf_only[i];
		}
	}
	return NULL;
}

/*
 * patchelf's command line, parsed as patchelf does: every word starting
 * with "--" is an option wherever it stands, its argument is the next word
 * (two for --replace-needed), anything else is a file.
 */
static int cmd_patchelf(struct kw_ctx *ctx, int argc, char **argv)
{
	struct args *a = args_new();
	char **files = NULL;
	int i, n = 0, rc = KW_EXIT_OK;

	if (!a) {
		return 1;
	}
	a->patchelf = true;
	files = kw_calloc((size_t)argc + 1, sizeof(*files));
	if (!files) {
		rc = KW_EXIT_ERROR;
		goto out;
	}
	for (i = 1; i < argc; i++) {
		const struct kw_opt_help *o;
		const char *arg = NULL, *arg2 = NULL;

		if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
			files[n++] = argv[i];
			continue;
		}
		o = find_long(argv[i] + 2);
		if (!o || (o->opt.val != 'o' && o->opt.val < OPT_SET_RPATH)) {
			if (strcmp(argv[i], "--help") == 0) {
				patchelf_usage(stdout);
				goto out;
			}
			fprintf(stderr, "patchelf: unknown option '%s'\n", argv[i]);
			patchelf_usage(stderr);
			rc = KW_EXIT_USAGE;
			goto out;
		}
		if (o->opt.val == OPT_VERSION) {
			printf("patchelf 0.18.0 (kwheel %s)\n", KW_VERSION);
			goto out;
		}
		if (o->opt.has_arg == required_argument) {
			if (i + 1 >= argc || (o->opt.val == OPT_REPLACE_NEEDED && i + 2 >= argc)) {
				fprintf(stderr, "patchelf: option '%s' needs an argument\n", argv[i]);
				rc = KW_EXIT_USAGE;
				goto out;
			}
			arg = argv[++i];
			if (o->opt.val == OPT_REPLACE_NEEDED) {
				arg2 = argv[++i];
			}
		}
		rc = take_opt(ctx, a, o->opt.val, arg, arg2);
		if (rc != KW_EXIT_OK) {
			goto out;
		}
	}
	if (n == 0) {
		fprintf(stderr, "patchelf: missing filename\n");
		patchelf_usage(stderr);
		rc = KW_EXIT_USAGE;
		goto out;
	}
	rc = run_files(ctx, a, files, n);
out:
	free(files);
	args_free(a);
	/* patchelf's one failure status. */
	return rc == KW_EXIT_OK ? 0 : 1;
}

const struct kw_cmd kw_cmd_patch = { "patch", cmd_patch, "edit RPATH, SONAME and needed libraries of ELF files" };
const struct kw_cmd kw_cmd_patchelf = { "patchelf", cmd_patchelf, "kwheel patch with patchelf's command line" };
