/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_SRC_WASM_INTERNAL_H
#define KWHEEL_SRC_WASM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kwheel/kwheel.h"

/*
 * A bounded cursor over module bytes: reads stop at end (never len), so a
 * read inside a section or subsection cannot run into the next one.
 */
struct wrd {
	const unsigned char *b;
	size_t off;   /* next byte to read */
	size_t end;   /* one past the last byte this cursor may read */
	const char *name; /* the module, for messages */
};

#define WASM_HEADER_SIZE 8
/* The longest varuint32: 5 bytes, the 5th holding the top 4 bits. */
#define WASM_LEB32_MAX 5

/* Read a varuint32; what names the field in a message. */
int kw_wasm_rd_u32(struct wrd *r, uint32_t *v, const char *what, struct kw_error *err);
/* Read one byte. */
int kw_wasm_rd_u8(struct wrd *r, uint8_t *v, const char *what, struct kw_error *err);
/*
 * Read a name (varuint32 length, UTF-8 bytes) into a new NUL-terminated
 * string (*out, free()). Refuses bytes that are not UTF-8, a NUL inside,
 * and, when nonempty is set, the empty string.
 */
int kw_wasm_rd_name(struct wrd *r, char **out, bool nonempty, const char *what, struct kw_error *err);
/* Is s[0..n) well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF)? */
bool kw_wasm_utf8_ok(const unsigned char *s, size_t n);
/* Write v as a minimal varuint32 into p (room for WASM_LEB32_MAX bytes); returns the bytes written. */
size_t kw_wasm_put_u32(unsigned char *p, uint32_t v);

#endif
