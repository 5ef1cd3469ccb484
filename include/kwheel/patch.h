/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_PATCH_H
#define KWHEEL_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

struct kw_patch_replace {
	const char *from;
	const char *to;
};

/*
 * Edits to apply to one ELF object, all in one rewrite. NULL / 0 leaves a
 * field alone. The order of application is: remove-needed, replace-needed,
 * add-needed, soname, then the search path (remove, set, add), then the
 * flags and the headers (interpreter, OS ABI, stack), then the dynamic
 * symbols (versions cleared, then renames; both match the old names).
 */
struct kw_patch_ops {
	const char *set_rpath;       /* new DT_RUNPATH (or DT_RPATH, see below) */
	const char *const *add_rpath;/* entries appended to the path */
	size_t n_add_rpath;
	bool remove_rpath;           /* drop DT_RPATH and DT_RUNPATH */
	/*
	 * Write DT_RPATH. Without it the search path is written as
	 * DT_RUNPATH, converting a DT_RPATH, as patchelf does.
	 */
	bool force_rpath;
	const char *set_soname;
	const struct kw_patch_replace *replace_needed;
	size_t n_replace_needed;
	const char *const *add_needed;   /* inserted before the first DT_NEEDED */
	size_t n_add_needed;
	const char *const *remove_needed;
	size_t n_remove_needed;
	const char *set_interp;      /* new PT_INTERP path (the file must have one) */
	bool set_os_abi;             /* write os_abi to EI_OSABI */
	uint8_t os_abi;
	int execstack;               /* > 0: PT_GNU_STACK gets PF_X, < 0: loses it, 0: left alone */
	bool add_debug_tag;          /* add a DT_DEBUG entry if there is none */
	bool no_default_lib;         /* set DF_1_NODEFLIB: no default directories for this object's needs */
	/* Alignment (power of two) of a new segment, at least; 0: the file's own largest p_align. */
	uint64_t page_size;
	/*
	 * Dynamic symbols to rename, imports and exports, every version of a
	 * name (from: the name without version; each from at most once). The
	 * hash tables are rebuilt; .gnu.hash may reorder .dynsym, with
	 * .gnu.version and the relocations following.
	 */
	const struct kw_patch_replace *rename_syms;
	size_t n_rename_syms;
	/* Dynamic symbols whose .gnu.version entry becomes 1 (VER_NDX_GLOBAL): unversioned. */
	const char *const *clear_version;
	size_t n_clear_version;

	/*
	 * kw_patch_file: fsync the new file before renaming it into place, so
	 * that it survives a power loss too. Without it the rename alone still
	 * guarantees that a failed or killed edit leaves the old file (what
	 * patchelf, which rewrites in place unsynced, does not); the sync
	 * is most of the cost of an edit on a busy disk.
	 */
	bool durable;
	/*
	 * kw_patch_file: the output is a scratch file, deleted once its bytes
	 * are copied elsewhere (repair's work directory): never synced; it is
	 * still renamed into place, never left half-written.
	 */
	bool scratch;
	/*
	 * kw_patch_file, when the output is the input: write the blocks the
	 * edit changed into the file itself instead of replacing it, as
	 * patchelf does. The file keeps its inode (hard links see the edit),
	 * owner, mode and extended attributes, and nothing is copied: an edit
	 * costs its own few blocks. The price is patchelf's: a process that has
	 * the file mapped sees its bytes change, and a crash or an I/O error
	 * between the writes can leave a mix of old and new blocks. A failure
	 * before the first write (a refused edit, a full disk when the file
	 * grows) leaves it as it was.
	 */
	bool in_place;
};

/*
 * A rename map for kw_patch_ops.rename_syms, read as patchelf's
 * --rename-dynamic-symbols reads its file: one pair a line, OLD NEW
 * separated by blanks (more words are ignored), names without a version
 * ('@'). Blank lines are skipped. A zeroed struct is empty.
 */
struct kw_patch_symbol_map {
	struct kw_patch_replace *pairs; /* n pairs, pointing into texts */
	size_t n, cap;
	char **texts;
	size_t n_texts;
};

/*
 * Add the pairs of the map file at path to m. On error (unreadable file,
 * a line with one name, a version, a name renamed twice across all files
 * read) m is unchanged.
 */
int kw_patch_symbol_map_read(struct kw_patch_symbol_map *m, const char *path, struct kw_error *err);
void kw_patch_symbol_map_release(struct kw_patch_symbol_map *m);

/* What a rewrite did, for reports and tests. */
struct kw_patch_result {
	bool changed;          /* any byte differs */
	bool grew;             /* bytes were appended, in a new PT_LOAD or the last one grown */
	bool extended;         /* grew by growing the last PT_LOAD (no new program header) */
	bool moved_dynamic;    /* .dynamic was rebuilt in the new segment */
	bool moved_dynstr;     /* .dynstr was rebuilt in the new segment */
	size_t in_place;       /* strings written over their old bytes */
	/*
	 * Bytes to append to the input at offset tail_at (== input length):
	 * padding then the new segment. NULL when nothing is appended.
	 */
	unsigned char *tail;
	size_t tail_len;
	/*
	 * The blocks of the image the rewrite wrote: bit i of written[i / 8]
	 * (low bit first) covers bytes [i * KW_PATCH_BLOCK, (i + 1) *
	 * KW_PATCH_BLOCK); every byte outside them is as it was. NULL if the
	 * call failed.
	 */
	unsigned char *written;
};

/* The granule of kw_patch_result.written, the usual page size. */
#define KW_PATCH_BLOCK 4096

/*
 * Apply ops to the ELF image in buf (len bytes, writable). Changed bytes are
 * written into buf itself; anything that must grow comes back in res->tail,
 * to be written after buf. On error buf is unchanged (edits are planned and
 * checked before the first byte is written). name is for messages.
 */
int kw_patch_image(unsigned char *buf, size_t len, const char *name, const struct kw_patch_ops *ops,
		   struct kw_patch_result *res, struct kw_error *err);
void kw_patch_result_release(struct kw_patch_result *res);

/*
 * Patch a file. out NULL means in place. Either way the result is written
 * to a temporary file next to the destination and renamed over it, so a
 * crash leaves the old file or the new one, never a mix. The input is mapped
 * copy-on-write and read only where the edit looks (headers, dynamic
 * section, string and version tables): only the blocks the edit wrote and
 * the tail pass through this process, the rest of the file is copied by the
 * kernel (kw_copy_range), so memory does not grow with the file.
 */
int kw_patch_file(const char *in, const char *out, const struct kw_patch_ops *ops,
		  struct kw_patch_result *res, struct kw_error *err);

/* The header fields patchelf's --print-os-abi and --print-execstack show. */
struct kw_patch_headers {
	uint8_t os_abi; /* EI_OSABI */
	int execstack;  /* 1: PT_GNU_STACK has PF_X, 0: it has not, -1: there is none */
};

/* Read them from the ELF file at path into *h (written only on success). */
int kw_patch_read_headers(const char *path, struct kw_patch_headers *h, struct kw_error *err);

/*
 * The RPATH/RUNPATH of path with only the entries that hold one of its
 * DT_NEEDED libraries (a compatible ELF file) that no earlier entry holds. $ORIGIN is expanded against
 * the file's directory; entries that do not start with one of prefixes (if
 * any are given) are dropped too. Result in *out (free()).
 */
int kw_patch_shrunk_rpath(struct kw_ctx *ctx, const char *path, const char *const *prefixes,
			  size_t n_prefixes, char **out, struct kw_error *err);

/*
 * The same edits on a wasm side module (in starts with the wasm magic):
 * the search path is dylink.0's RUNTIME_PATH (set/add/remove; entries
 * split at ':'), the needed libraries its NEEDED (replace/add/remove).
 * SONAME and force-rpath have no wasm meaning: KW_EUNSUPPORTED. Only
 * dylink.0 changes; written like kw_patch_file. *changed: a byte differs.
 */
int kw_patch_wasm_file(const char *in, const char *out, const struct kw_patch_ops *ops, bool *changed,
		       struct kw_error *err);

#endif
