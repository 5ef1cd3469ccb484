/* SPDX-License-Identifier: MIT */
/*
 * The editor's plan of one rewrite, shared by its parts: dynamic.c (the
 * entries and the operations on them), verneed.c (version needs),
 * strings.c (where each string goes), layout.c (growing and writing) and
 * patch.c (the order of the steps).
 */
#ifndef KWHEEL_PATCH_INTERNAL_H
#define KWHEEL_PATCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "kwheel/patch.h"

#ifndef DT_MIPS_RLD_MAP_REL
#define DT_MIPS_RLD_MAP_REL 0x70000035
#endif

/* Spare DT_NULL entries left in a rebuilt .dynamic so the next edit fits in place. */
#define DYN_SLACK 8
/*
 * Most zero padding written between the end of the input and the new
 * segment. Real layouts need at most a few alignment units; a forged
 * p_align or p_vaddr must not make us allocate (and write) gigabytes.
 */
#define MAX_TAIL_PAD (UINT64_C(64) << 20)

struct ent {
	int64_t tag;
	uint64_t val;
	const char *str; /* string-valued tags: the string */
	bool changed;    /* str differs from what val points at */
	uint64_t old;    /* string-valued: the old offset (if it had one) */
	bool had_old;
};

/* One verneed record whose vn_file must name a new string. */
struct vn_edit {
	uint64_t field_off; /* file offset of vn_file */
	const char *str;
	uint64_t val;
};

struct plan {
	struct img im;
	const struct kw_patch_ops *ops;
	struct ent *e;
	size_t n, cap;
	char *rpath_buf;
	struct vn_edit *vn;
	size_t n_vn;
	/* verneed compaction for removed libraries */
	bool vn_rewrite;
	unsigned char *vn_bytes; /* new contents of the verneed area */
	uint64_t vn_off, vn_area;
	uint64_t vn_count;
	uint16_t *dropped_ndx;   /* version indexes that no longer exist */
	bool drop_versioning;    /* .gnu.version and .gnu.version_r become plain data */
	size_t n_dropped;
	/* strings */
	char *append;            /* bytes appended to .dynstr */
	size_t n_append, cap_append;
	struct slot {
		uint64_t off, len;
		int64_t tag; /* the entry whose old string it was */
		bool used;
		bool hit;        /* a reference starts inside it */
		bool has_before; /* and the nearest reference before it: */
		uint64_t before;
	} *slots;
	size_t n_slots;
	struct slot_write {
		uint64_t off, len;
		const char *str;
	} *sw;
	size_t n_sw;
	struct sym_plan *sym;    /* symbols.c: renames and version clears; NULL if none */
};

struct plan_vn_replace_ctx {
	const char *from, *to;
	struct kw_error *err;
};

/* dynamic.c */
bool plan_is_str_tag(int64_t tag);
int plan_oom(struct kw_error *err);
void plan_ent_remove(struct plan *p, size_t at);
int plan_load_entries(struct plan *p, struct kw_error *err);
/* The last entry with tag: a repeated tag's last one is what the loader uses. */
long plan_find_tag(const struct plan *p, int64_t tag);
int plan_apply_ops(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err);

/* verneed.c */
bool plan_name_in(const char *s, const char *const *v, size_t n);
/* True if [off, off+len) shares a byte with the dynamic table, which a rewrite writes in place. */
bool plan_overlaps_dynamic(const struct img *im, uint64_t off, uint64_t len);
/*
 * Walk DT_VERNEED. For each record, call back with its offset and file name.
 * Bounded by DT_VERNEEDNUM and by the file, so a looping chain ends.
 */
int plan_each_verneed(struct plan *p, int (*fn)(struct plan *, uint64_t off, const char *file, void *), void *ud,
		      struct kw_error *err);
/* plan_each_verneed's callback for a replace-needed: ud is a struct plan_vn_replace_ctx. */
int plan_vn_replace_cb(struct plan *p, uint64_t off, const char *file, void *ud);
int plan_verneed_removal(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err);

/* strings.c */
int plan_place_strings(struct plan *p, struct kw_error *err);
/* Note that off will still point into .dynstr after the edit (so no string there is overwritten). */
int plan_add_ref(struct plan *p, uint64_t off, struct kw_error *err);
/* Append s (and its NUL) to the new .dynstr; *off is its offset there. */
int plan_append_string(struct plan *p, const char *s, uint64_t *off, struct kw_error *err);
/* Overwrite the old search paths nothing points at any more with 'X' in strdst (the .dynstr written). */
void plan_taint_old_paths(const struct plan *p, unsigned char *strdst);

/* symbols.c */
/* Match the symbols to rename and to unversion, and plan the hash tables; nothing is written. */
int plan_symbols(struct plan *p, const struct kw_patch_ops *ops, struct kw_error *err);
/* Place the new symbol names (called by plan_place_strings before any old string is reused). */
int plan_place_symbol_names(struct plan *p, struct kw_error *err);
/* Write what plan_symbols planned, into the image; cannot fail. True if it wrote anything. */
bool plan_write_symbols(struct plan *p);
void plan_symbols_release(struct plan *p);

/* layout.c */
int plan_build(struct plan *p, struct kw_patch_result *res, struct kw_error *err);

#endif
