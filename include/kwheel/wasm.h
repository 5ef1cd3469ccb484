/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_WASM_H
#define KWHEEL_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

/*
 * WebAssembly side modules (Emscripten, Pyodide): the read-only view and the
 * one edit a repair needs. A side module's `dylink.0` custom section, which
 * must be the module's first section, plays the part of ELF's dynamic
 * section: its NEEDED subsection lists the libraries it needs (DT_NEEDED)
 * and its RUNTIME_PATH subsection the directories searched for them
 * (DT_RUNPATH, `$ORIGIN` being the module's directory). The layout is
 * WebAssembly/tool-conventions' DynamicLinking.md.
 */

/* Section ids of the core format (custom = 0). */
enum kw_wasm_section_id {
	KW_WASM_SEC_CUSTOM = 0,
	KW_WASM_SEC_TYPE = 1,
	KW_WASM_SEC_IMPORT = 2,
	KW_WASM_SEC_FUNCTION = 3,
	KW_WASM_SEC_TABLE = 4,
	KW_WASM_SEC_MEMORY = 5,
	KW_WASM_SEC_GLOBAL = 6,
	KW_WASM_SEC_EXPORT = 7,
	KW_WASM_SEC_START = 8,
	KW_WASM_SEC_ELEMENT = 9,
	KW_WASM_SEC_CODE = 10,
	KW_WASM_SEC_DATA = 11,
	KW_WASM_SEC_DATACOUNT = 12,
	KW_WASM_SEC_TAG = 13,
};

/* dylink.0 subsection types. */
enum kw_wasm_dylink_type {
	KW_WASM_DYLINK_MEM_INFO = 1,
	KW_WASM_DYLINK_NEEDED = 2,
	KW_WASM_DYLINK_EXPORT_INFO = 3,
	KW_WASM_DYLINK_IMPORT_INFO = 4,
	KW_WASM_DYLINK_RUNTIME_PATH = 5,
};

/* What kind of dynamic-linking metadata the module has. */
enum kw_wasm_dylink_kind {
	KW_WASM_NOT_SIDE = 0,    /* no dylink section first: not a side module, no loader takes it */
	KW_WASM_DYLINK_LEGACY,   /* the pre-2021 `dylink` section: flat fields, cannot hold a runtime path */
	KW_WASM_DYLINK_0,        /* `dylink.0` with subsections */
};

/* One section of the module, as found. Offsets are from the start of the module. */
struct kw_wasm_section {
	uint8_t id;          /* enum kw_wasm_section_id */
	size_t offset;       /* of the id byte */
	size_t payload;      /* of the payload (after the size) */
	size_t size;         /* payload bytes */
	char *name;          /* custom sections: the name; otherwise NULL */
};

/* One dylink.0 subsection: its raw byte range, so unknown ones are kept as they are. */
struct kw_wasm_subsection {
	uint8_t type;        /* enum kw_wasm_dylink_type, or any other value (unknown, kept) */
	size_t offset;       /* of the type byte, from the start of the module */
	size_t end;          /* one past its last byte */
};

struct kw_wasm_dylink_export {
	char *name;
	uint32_t flags;      /* 0x100: TLS */
};

struct kw_wasm_dylink_import {
	char *module;
	char *field;
	uint32_t flags;      /* binding mask 3; 1: weak */
};

/* An entry of the import section. */
struct kw_wasm_import {
	char *module;
	char *field;
	uint8_t kind;        /* 0 function, 1 table, 2 memory, 3 global, 4 tag */
	uint64_t min;        /* table/memory: limits (entries, 64 KiB pages) */
	uint64_t max;
	bool has_max;
};

/* An entry of the export section. */
struct kw_wasm_export {
	char *name;
	uint8_t kind;        /* 0 function, 1 table, 2 memory, 3 global, 4 tag */
	uint32_t index;
};

/* What kwheel knows about one wasm module. All strings are owned copies. */
struct kw_wasm_info {
	uint32_t version;                   /* the header's version (1) */
	struct kw_wasm_section *sections;   /* in file order */
	size_t n_sections;
	enum kw_wasm_dylink_kind dylink;
	size_t dylink_end;                  /* one past the dylink section (the first one), or 0 */
	struct kw_wasm_subsection *subsections; /* dylink.0 subsections, in file order */
	size_t n_subsections;
	bool has_mem_info;
	uint32_t mem_size;                  /* bytes of linear memory the module needs */
	uint32_t mem_align;                 /* log2 */
	uint32_t table_size;                /* table entries */
	uint32_t table_align;               /* log2 */
	bool has_needed;                    /* a NEEDED subsection is present (perhaps empty) */
	char **needed;                      /* NULL-terminated, in file order */
	size_t n_needed;
	bool has_runtime_path;              /* a RUNTIME_PATH subsection is present */
	char **runtime_path;                /* NULL-terminated, one directory per entry */
	size_t n_runtime_path;
	struct kw_wasm_dylink_export *dylink_exports; /* EXPORT_INFO */
	size_t n_dylink_exports;
	struct kw_wasm_dylink_import *dylink_imports; /* IMPORT_INFO */
	size_t n_dylink_imports;
	struct kw_wasm_import *imports;     /* the import section */
	size_t n_imports;
	struct kw_wasm_export *exports;     /* the export section */
	size_t n_exports;
};

/* True if buf starts with the wasm magic ("\0asm"). */
bool kw_wasm_is_wasm(const void *buf, size_t len);

/*
 * Parse a wasm module in memory. name is used only in messages. The buffer
 * is borrowed for the call only. The header, every section's bounds, the
 * dylink section and its subsections, and the import and export sections
 * are checked: a LEB128 longer than 5 bytes or above UINT32_MAX, a size or
 * count past the end, a string that is not UTF-8 or holds a NUL, an empty
 * library name, a `dylink.0` that is not the first section, a duplicate
 * subsection, a runtime-path entry holding ':' (the loader splits on it) is
 * KW_EFORMAT with a message naming the offset, never a crash or an
 * allocation bigger than the input justifies. Code and data are not read.
 * A module without dylink section parses (dylink == KW_WASM_NOT_SIDE).
 * Returns 0 and a new info (kw_wasm_info_free) in *out.
 */
int kw_wasm_parse_memory(const void *buf, size_t len, const char *name, struct kw_wasm_info **out,
			 struct kw_error *err);
void kw_wasm_info_free(struct kw_wasm_info *info);

/* "type", "import", ... "custom"; "unknown" for other ids. Static. */
const char *kw_wasm_section_str(uint8_t id);
/* "MEM_INFO", "NEEDED", ... ; NULL for an unknown type. Static. */
const char *kw_wasm_dylink_type_str(uint8_t type);
/* "func", "table", "memory", "global", "tag"; "unknown" otherwise. Static. */
const char *kw_wasm_kind_str(uint8_t kind);

/* A change to a side module's dylink.0 section. Unset parts are kept as they are. */
struct kw_wasm_edit {
	bool set_needed;                  /* replace NEEDED by needed[0..n_needed) */
	const char *const *needed;
	size_t n_needed;
	bool set_runtime_path;            /* replace RUNTIME_PATH by runtime_path[0..n_runtime_path) */
	const char *const *runtime_path;
	size_t n_runtime_path;
};

/*
 * Apply edit to the module buf[0..len) (borrowed) and return the new module:
 * the 8-byte header, the re-encoded dylink.0 section, then every byte after
 * the old one as it was. Subsections keep their order; a replaced one is
 * re-encoded in place, one that did not exist is appended (NEEDED before
 * RUNTIME_PATH), one replaced by an empty list is dropped, and unknown ones
 * are copied byte for byte. An edit that changes nothing returns a copy of
 * the input, byte for byte (padded LEBs too). The new values are checked as
 * the reader checks input (non-empty UTF-8 without NUL; no ':' in a path).
 * KW_EUNSUPPORTED for a module with no dylink.0 (not a side module, or the
 * legacy `dylink` format, which cannot hold a runtime path); KW_EFORMAT if
 * buf does not parse; KW_EINVAL for a bad new value. Returns 0 and a new
 * buffer (free()) in *out, its size in *out_len.
 */
int kw_wasm_edit_dylink(const void *buf, size_t len, const char *name, const struct kw_wasm_edit *edit,
			unsigned char **out, size_t *out_len, struct kw_error *err);

#endif
