/* SPDX-License-Identifier: MIT */
/*
 * fuzz-patch: byte 0 picks an operation, byte 1 holds flags, then two
 * NUL-terminated strings, then an ELF image. kw_patch_image runs on a copy.
 * Bytes 0xf0 and up pick the symbol operations (rename, clear version), so
 * the saved inputs (all below) keep the operation they were found with.
 * Oracles: on error the buffer is unchanged; "not changed" means no byte
 * differs and nothing is appended; on success (for an input that parsed
 * before) buf + tail parses again, shows the requested value, and keeps
 * every field the operation did not touch: the other dynamic strings, the
 * header fields, the relocation types, every dynamic symbol (name, binding,
 * type, size, version) and the version definitions and needs, except what
 * replace-needed renames and remove-needed drops with its library.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"
#include "kwheel/kwheel.h"
#include "kwheel/patch.h"

#include "fuzz-common.h"

enum op {
	OP_SET_RPATH,
	OP_ADD_RPATH,
	OP_REMOVE_RPATH,
	OP_FORCE_RPATH,
	OP_SET_SONAME,
	OP_REPLACE_NEEDED,
	OP_ADD_NEEDED,
	OP_REMOVE_NEEDED,
	OP_COUNT, /* the operations byte 0 picks modulo this count */
	OP_RENAME_SYM,
	OP_CLEAR_VERSION,
};

#define FLAG_FORCE 0x01   /* add force_rpath to set/add */
#define FLAG_SECOND 0x02  /* add-rpath/add-needed: also the second string */

/* Harness state for the failure report only: the two views being compared and the image. */
static const struct kw_elf_info *cmp_old, *cmp_new;
static const unsigned char *cmp_img;
static size_t cmp_len;

static void dump(const char *label, const struct kw_elf_info *info)
{
	size_t i;

	if (!info) {
		return;
	}
	fprintf(stderr, "  %s: rpath '%s' runpath '%s' soname '%s' needed", label,
		info->rpath ? info->rpath : "(null)", info->runpath ? info->runpath : "(null)",
		info->soname ? info->soname : "(null)");
	for (i = 0; i < info->n_needed; i++) {
		fprintf(stderr, " '%s'", info->needed[i]);
	}
	fprintf(stderr, "\n");
}

static void fail(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz-patch: %s ('%s' vs '%s')\n", what, a ? a : "(null)", b ? b : "(null)");
	dump("before", cmp_old);
	dump("after", cmp_new);
	/* FUZZ_PATCH_DUMP=FILE keeps the patched image for readelf. */
	if (cmp_img && getenv("FUZZ_PATCH_DUMP")) {
		FILE *f = fopen(getenv("FUZZ_PATCH_DUMP"), "wb");

		if (f) {
			fwrite(cmp_img, 1, cmp_len, f);
			fclose(f);
		}
	}
	abort();
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b) {
		return a == b;
	}
	return strcmp(a, b) == 0;
}

/* NULL and "" are the same search path: no entry. */
static bool path_eq(const char *a, const char *b)
{
	return str_eq(a && *a ? a : NULL, b && *b ? b : NULL);
}

static bool has_needed(const struct kw_elf_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_needed; i++) {
		if (strcmp(info->needed[i], name) == 0) {
			return true;
		}
	}
	return false;
}

static void same_needed(const struct kw_elf_info *a, const struct kw_elf_info *b)
{
	size_t i;

	if (a->n_needed != b->n_needed) {
		fail("DT_NEEDED count changed by an unrelated operation", a->n_needed ? a->needed[0] : NULL,
		     b->n_needed ? b->needed[0] : NULL);
	}
	for (i = 0; i < a->n_needed; i++) {
		if (strcmp(a->needed[i], b->needed[i]) != 0) {
			fail("DT_NEEDED changed by an unrelated operation", a->needed[i], b->needed[i]);
		}
	}
}

static const char *effective(const struct kw_elf_info *info)
{
	return info->runpath ? info->runpath : info->rpath;
}

/* The path the patcher builds: the current one (or none), then each added entry after a ':'. */
static char *joined(const char *cur, const char *const *add, size_t n)
{
	size_t len = cur ? strlen(cur) : 0, k;
	char *s;

	for (k = 0; k < n; k++) {
		len += strlen(add[k]) + 1;
	}
	s = malloc(len + 1);
	if (!s) {
		abort();
	}
	strcpy(s, cur ? cur : "");
	for (k = 0; k < n; k++) {
		if (s[0]) {
			strcat(s, ":");
		}
		strcat(s, add[k]);
	}
	return s;
}

static bool in_list(const char *s, const char *const *v, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		if (strcmp(s, v[k]) == 0) {
			return true;
		}
	}
	return false;
}

/* Was version name v needed from a library this operation removes? */
static bool dropped_version(const struct kw_elf_info *old, const struct kw_patch_ops *ops, const char *v)
{
	size_t i, k;

	for (i = 0; i < old->n_verneed; i++) {
		if (!in_list(old->verneed[i].file, ops->remove_needed, ops->n_remove_needed)) {
			continue;
		}
		for (k = 0; k < old->verneed[i].n_versions; k++) {
			if (strcmp(old->verneed[i].versions[k], v) == 0) {
				return true;
			}
		}
	}
	return false;
}

static int cmp_sym(const void *a, const void *b)
{
	const struct kw_elf_sym *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0) {
		c = strcmp(x->version ? x->version : "", y->version ? y->version : "");
	}
	if (c == 0) {
		c = (int)x->defined - (int)y->defined;
	}
	if (c == 0) {
		c = (int)x->version_hidden - (int)y->version_hidden;
	}
	if (c == 0) {
		c = (int)(x->bind * 256 + x->type * 4 + x->visibility) - (int)(y->bind * 256 + y->type * 4 + y->visibility);
	}
	return c ? c : (x->size > y->size) - (x->size < y->size);
}

/*
 * A rename or a version cleared: the symbols, as a set (renaming may
 * reorder .dynsym for .gnu.hash), are the old ones with the renamed names
 * changed, or the cleared one unversioned; everything else about them stays.
 */
static void same_symbols_but(const struct kw_patch_ops *ops, const struct kw_elf_info *old,
			     const struct kw_elf_info *nw)
{
	struct kw_elf_sym *a = calloc(old->n_syms + 1, sizeof(*a)), *b = calloc(nw->n_syms + 1, sizeof(*b));
	char *to = strdup(ops->n_rename_syms ? ops->rename_syms[0].to : "");
	size_t i;

	if (!a || !b || !to) {
		abort();
	}
	if (old->n_syms) {
		memcpy(a, old->syms, old->n_syms * sizeof(*a));
		memcpy(b, nw->syms, nw->n_syms * sizeof(*b));
	}
	for (i = 0; i < old->n_syms; i++) {
		if (ops->n_clear_version && strcmp(a[i].name, ops->clear_version[0]) == 0) {
			a[i].version = NULL;
			a[i].version_hidden = false;
		}
		if (ops->n_rename_syms && strcmp(a[i].name, ops->rename_syms[0].from) == 0) {
			a[i].name = to;
		}
	}
	qsort(a, old->n_syms, sizeof(*a), cmp_sym);
	qsort(b, nw->n_syms, sizeof(*b), cmp_sym);
	for (i = 0; i < old->n_syms; i++) {
		if (cmp_sym(&a[i], &b[i]) != 0) {
			fail("dynamic symbol not as expected after a symbol edit", a[i].name, b[i].name);
		}
	}
	free(a);
	free(b);
	free(to);
}

/*
 * What no operation may disturb. Moving .dynstr, .dynamic or the version
 * tables must leave every name they carry readable where the loader looks.
 */
static void same_elsewhere(const struct kw_patch_ops *ops, const struct kw_elf_info *old,
			   const struct kw_elf_info *nw)
{
	const struct kw_patch_replace *r = ops->n_replace_needed ? ops->replace_needed : NULL;
	size_t i, j, k;

	if (old->elfclass != nw->elfclass || old->data != nw->data || old->machine != nw->machine ||
	    old->type != nw->type || old->e_flags != nw->e_flags || old->osabi != nw->osabi) {
		fail("ELF header changed", NULL, NULL);
	}
	if (!str_eq(old->interp, nw->interp) || old->has_tls != nw->has_tls || old->has_relr != nw->has_relr ||
	    old->textrel != nw->textrel || old->dt_flags != nw->dt_flags || old->dt_flags_1 != nw->dt_flags_1) {
		fail("interpreter, TLS or dynamic flags changed", old->interp, nw->interp);
	}
	if (old->n_reloc_types != nw->n_reloc_types ||
	    (old->n_reloc_types &&
	     memcmp(old->reloc_types, nw->reloc_types, old->n_reloc_types * sizeof(*old->reloc_types)) != 0)) {
		fail("relocation types changed", NULL, NULL);
	}
	if (old->n_verdef != nw->n_verdef) {
		fail("version definition count changed", NULL, NULL);
	}
	for (i = 0; i < old->n_verdef; i++) {
		if (strcmp(old->verdef[i], nw->verdef[i]) != 0) {
			fail("version definition changed", old->verdef[i], nw->verdef[i]);
		}
	}
	for (i = j = 0; i < old->n_verneed; i++) {
		const struct kw_elf_verneed *a = &old->verneed[i], *b;

		if (in_list(a->file, ops->remove_needed, ops->n_remove_needed)) {
			continue;
		}
		if (j == nw->n_verneed) {
			fail("version need record lost", a->file, NULL);
		}
		b = &nw->verneed[j++];
		if (!str_eq(b->file, r && strcmp(a->file, r->from) == 0 ? r->to : a->file)) {
			fail("version need file changed", a->file, b->file);
		}
		if (a->n_versions != b->n_versions) {
			fail("version need count changed", a->file, b->file);
		}
		for (k = 0; k < a->n_versions; k++) {
			if (strcmp(a->versions[k], b->versions[k]) != 0) {
				fail("needed version changed", a->versions[k], b->versions[k]);
			}
		}
	}
	if (j != nw->n_verneed) {
		fail("version need record appeared", NULL, nw->verneed[j].file);
	}
	if (old->n_syms != nw->n_syms) {
		fail("dynamic symbol count changed", NULL, NULL);
	}
	if (ops->n_rename_syms || ops->n_clear_version) {
		same_symbols_but(ops, old, nw);
		return;
	}
	for (i = 0; i < old->n_syms; i++) {
		const struct kw_elf_sym *a = &old->syms[i], *b = &nw->syms[i];

		if (!str_eq(a->name, b->name) || a->defined != b->defined || a->bind != b->bind ||
		    a->type != b->type || a->visibility != b->visibility || a->size != b->size) {
			fail("dynamic symbol changed", a->name, b->name);
		}
		/*
		 * remove-needed rebinds symbols of the dropped library's versions to the base version;
		 * when no version need or definition is left, DT_VERSYM goes and with it every hidden bit.
		 */
		if (!str_eq(a->version, b->version) || a->version_hidden != b->version_hidden) {
			bool unversioned = ops->n_remove_needed && !nw->n_verneed && !nw->n_verdef;

			if (b->version || b->version_hidden ||
			    !(a->version ? dropped_version(old, ops, a->version) : unversioned)) {
				fail("symbol version changed", a->version, b->version);
			}
		}
	}
}

static void check_result(enum op op, const struct kw_patch_ops *ops, const struct kw_elf_info *old,
			 const struct kw_elf_info *nw)
{
	bool rpath_op = op <= OP_FORCE_RPATH, needed_op = op >= OP_REPLACE_NEEDED && op <= OP_REMOVE_NEEDED;
	char *want = NULL;
	size_t k;

	if (!rpath_op) {
		if (!str_eq(old->rpath, nw->rpath) || !str_eq(old->runpath, nw->runpath)) {
			fail("search path changed by an unrelated operation", effective(old), effective(nw));
		}
	}
	if (!needed_op) {
		same_needed(old, nw);
	}
	if (op != OP_SET_SONAME && !str_eq(old->soname, nw->soname)) {
		fail("DT_SONAME changed by an unrelated operation", old->soname, nw->soname);
	}
	same_elsewhere(ops, old, nw);
	switch (op) {
	case OP_SET_RPATH:
	case OP_ADD_RPATH:
	case OP_FORCE_RPATH:
		want = joined(ops->set_rpath ? ops->set_rpath : effective(old), ops->add_rpath, ops->n_add_rpath);
		if (ops->force_rpath && *want) {
			if (!str_eq(nw->rpath, want) || nw->runpath) {
				fail("forced DT_RPATH not as requested", want, nw->rpath);
			}
		} else if (!path_eq(effective(nw), want)) {
			fail("search path not as requested", want, effective(nw));
		}
		free(want);
		break;
	case OP_REMOVE_RPATH:
		if (nw->rpath || nw->runpath) {
			fail("search path not removed", NULL, effective(nw));
		}
		break;
	case OP_SET_SONAME:
		if (*ops->set_soname && !str_eq(nw->soname, ops->set_soname)) {
			fail("DT_SONAME not as requested", ops->set_soname, nw->soname);
		}
		break;
	case OP_REPLACE_NEEDED: {
		const struct kw_patch_replace *r = ops->replace_needed;

		if (strcmp(r->from, r->to) != 0 && has_needed(nw, r->from)) {
			fail("replaced DT_NEEDED still there", r->from, r->to);
		}
		if (has_needed(old, r->from) && !has_needed(nw, r->to)) {
			fail("replacement DT_NEEDED missing", r->from, r->to);
		}
		break;
	}
	case OP_ADD_NEEDED:
		for (k = 0; k < ops->n_add_needed; k++) {
			if (!has_needed(nw, ops->add_needed[k])) {
				fail("added DT_NEEDED missing", ops->add_needed[k], NULL);
			}
		}
		break;
	case OP_REMOVE_NEEDED:
		for (k = 0; k < ops->n_remove_needed; k++) {
			if (has_needed(nw, ops->remove_needed[k])) {
				fail("removed DT_NEEDED still there", ops->remove_needed[k], NULL);
			}
		}
		break;
	case OP_RENAME_SYM:
	case OP_CLEAR_VERSION:
	case OP_COUNT:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_part parts[3];
	struct kw_patch_ops ops;
	struct kw_patch_replace rep;
	struct kw_patch_result res;
	struct kw_elf_info *old = NULL, *nw = NULL;
	struct kw_error err;
	const char *list[2];
	unsigned char *buf = NULL, *out = NULL;
	char *s1 = NULL, *s2 = NULL;
	size_t len, np, k;
	enum op op;
	uint8_t flags;
	int rc;

	if (size < 2) {
		return 0;
	}
	op = data[0] >= 0xf0 ? (data[0] & 1 ? OP_CLEAR_VERSION : OP_RENAME_SYM) : (enum op)(data[0] % OP_COUNT);
	flags = data[1];
	np = fz_split(data + 2, size - 2, 0, parts, 3);
	if (np < 3 || parts[2].len == 0) {
		return 0;
	}
	s1 = fz_strdup_part(&parts[0]);
	s2 = fz_strdup_part(&parts[1]);
	len = parts[2].len;
	buf = malloc(len);
	if (!buf) {
		abort();
	}
	memcpy(buf, parts[2].p, len);
	/* The oracle needs the input's own view; an input the parser refuses has none. */
	if (kw_elf_parse_memory(buf, len, "fuzz.so", &old, &err) < 0) {
		old = NULL;
	}

	memset(&ops, 0, sizeof(ops));
	memset(&res, 0, sizeof(res)); /* released at out: also when no edit runs */
	list[0] = s1;
	list[1] = s2;
	switch (op) {
	case OP_SET_RPATH:
		ops.set_rpath = s1;
		ops.force_rpath = flags & FLAG_FORCE;
		break;
	case OP_ADD_RPATH:
		ops.add_rpath = list;
		ops.n_add_rpath = flags & FLAG_SECOND ? 2 : 1;
		ops.force_rpath = flags & FLAG_FORCE;
		break;
	case OP_REMOVE_RPATH:
		ops.remove_rpath = true;
		break;
	case OP_FORCE_RPATH:
		ops.force_rpath = true;
		break;
	case OP_SET_SONAME:
		ops.set_soname = s1;
		break;
	case OP_REPLACE_NEEDED:
		/* An empty "from" means the input's first DT_NEEDED, so the edit usually bites. */
		rep.from = *s1 || !old || !old->n_needed ? s1 : old->needed[0];
		rep.to = s2;
		ops.replace_needed = &rep;
		ops.n_replace_needed = 1;
		break;
	case OP_ADD_NEEDED:
		ops.add_needed = list;
		ops.n_add_needed = flags & FLAG_SECOND ? 2 : 1;
		break;
	case OP_REMOVE_NEEDED:
		if (!*s1 && old && old->n_needed) {
			list[0] = old->needed[0];
		}
		ops.remove_needed = list;
		ops.n_remove_needed = flags & FLAG_SECOND ? 2 : 1;
		break;
	case OP_RENAME_SYM:
		/* An empty "from" means the input's last symbol (an export, mostly), so the edit usually bites. */
		rep.from = *s1 || !old || !old->n_syms ? s1 : old->syms[old->n_syms - 1].name;
		rep.to = *s2 ? s2 : "kw_renamed_symbol";
		if (!*rep.from || strchr(rep.from, '@') || strchr(rep.to, '@')) {
			goto out;
		}
		ops.rename_syms = &rep;
		ops.n_rename_syms = 1;
		break;
	case OP_CLEAR_VERSION:
		list[0] = *s1 || !old || !old->n_syms ? s1 : old->syms[0].name;
		ops.clear_version = list;
		ops.n_clear_version = 1;
		break;
	case OP_COUNT:
		break;
	}

	rc = kw_patch_image(buf, len, "fuzz.so", &ops, &res, &err);
	if (rc < 0) {
		if (memcmp(buf, parts[2].p, len) != 0) {
			fail("buffer modified by a failed patch", err.msg, NULL);
		}
		goto out;
	}
	if (!res.changed && (res.tail_len || memcmp(buf, parts[2].p, len) != 0)) {
		fail("result says unchanged but bytes differ", NULL, NULL);
	}
	if ((res.tail == NULL) != (res.tail_len == 0)) {
		fail("tail and tail_len disagree", NULL, NULL);
	}
	/* kw_patch_file writes only the blocks reported written: a byte changed outside them would be lost. */
	for (k = 0; k < len; k++) {
		size_t blk = k / KW_PATCH_BLOCK;

		if (((const unsigned char *)buf)[k] != ((const unsigned char *)parts[2].p)[k] &&
		    !(res.written && (res.written[blk / 8] >> (blk % 8)) & 1)) {
			fail("a changed byte lies outside the blocks reported written", NULL, NULL);
		}
	}
	if (!old) {
		goto out;
	}
	/* The file kw_patch_file would write: buf, then the tail at offset len. */
	out = malloc(len + res.tail_len);
	if (!out) {
		abort();
	}
	memcpy(out, buf, len);
	if (res.tail_len) {
		memcpy(out + len, res.tail, res.tail_len);
	}
	cmp_old = old;
	cmp_img = out;
	cmp_len = len + res.tail_len;
	if (kw_elf_parse_memory(out, len + res.tail_len, "patched.so", &nw, &err) < 0) {
		fail("patched image does not parse", err.msg, NULL);
	}
	fz_walk_elf(nw);
	cmp_new = nw;
	/*
	 * Without PT_DYNAMIC the editor writes through the .dynamic section (as
	 * patchelf does), which the decoder, reading as the loader does, never
	 * sees: that the result still parses is all there is to check.
	 */
	if (old->has_dynamic) {
		check_result(op, &ops, old, nw);
	}
	cmp_old = cmp_new = NULL;
	cmp_img = NULL;
out:
	kw_patch_result_release(&res);
	kw_elf_info_free(old);
	kw_elf_info_free(nw);
	free(out);
	free(buf);
	free(s1);
	free(s2);
	return 0;
}
