/* SPDX-License-Identifier: MIT */
/* What the km module's files share and nothing outside it needs. */
#ifndef KWHEEL_KM_INTERNAL_H
#define KWHEEL_KM_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include <gelf.h>
#include <libelf.h>

#include "kwheel/km.h"
#include "kwheel/kwheel.h"
#include "kwheel/resolve.h"

/* Called for each named non-local symbol (index >= sh_info) of each symbol table; non-zero stops the walk. */
typedef int (*km_sym_fn)(void *ud, Elf *e, Elf_Data *syms, size_t i, GElf_Sym *sym, const char *name);

int km_each_nonlocal(Elf *e, km_sym_fn fn, void *ud);

/*
 * One output file in the making (output.c): km_out_open creates a unique
 * temporary beside final (mode 0644) and opens f on it; km_out_close
 * flushes and closes it (never synced: see output.c); km_out_commit closes
 * it and renames it over final; km_out_discard removes the temporary (a
 * no-op on a zeroed or committed one).
 */
struct km_out {
	char *final;
	char *tmp;     /* NULL once renamed */
	FILE *f;       /* NULL once closed */
};
int km_out_open(struct km_out *o, const char *final, struct kw_error *err);
int km_out_close(struct km_out *o, struct kw_error *err);
/* Write all of data and close: the whole file in one call. */
int km_out_write(struct km_out *o, const void *data, size_t len, struct kw_error *err);
int km_out_commit(struct km_out *o, struct kw_error *err);
void km_out_discard(struct km_out *o);

/* The same for a directory of objects: a fresh one, swapped for whatever stands at final on commit. */
struct km_dir {
	char *final;
	char *tmp;
};
int km_dir_open(struct km_dir *d, const char *final, struct kw_error *err);
int km_dir_commit(struct km_dir *d, struct kw_error *err);
void km_dir_discard(struct km_dir *d);

/* An object's index entries as its conversion knew them (kw_km_converted's defined); names NULL: not known. */
struct km_index_names {
	const char *names;
	size_t len, n;
};

/*
 * Write the archive of kw_km_write_archive into f (left open, positioned at
 * its end; the caller checks and closes it). The symbols of the objects
 * whose known[i] is given are taken from it (known may be NULL); the others
 * are read from their files on pool's threads (NULL: here). The bytes are
 * the same either way.
 */
int km_archive_write(FILE *f, const char *path, const char *const *objects, const char *const *names, size_t n,
		     const struct km_index_names *known, struct kw_pool *pool, const char *thin_dir,
		     struct kw_error *err);

/* Between a library member's file name and its symbol tag: "003-libz.so.1.2.13@0123456789ab.o". */
#define KM_LIB_TAG_SEP "@"

/*
 * Each member of the ar archive at path (as km_archive_write makes them:
 * GNU long names, the symbol index skipped), in order; non-zero from fn
 * stops the walk and is returned. A full archive's member is name, its
 * bytes data and len, file NULL. A thin archive's is name (its path's last
 * part), data NULL, len its header's size, and file the absolute path of
 * the file it names, which must lie inside the archive's directory.
 */
typedef int (*km_member_fn)(void *ud, const char *name, const unsigned char *data, size_t len, const char *file,
			    struct kw_error *err);
int km_archive_each(const char *path, km_member_fn fn, void *ud, struct kw_error *err);

/*
 * Add to names the default-version exports of the C library and libgcc_s
 * that graph g reaches (libstdc++ aside: its vague-linkage objects must
 * stay one copy, which weak definitions already give), each library once
 * (done: their paths). km_sort_unique makes the list kw_km_delink_with's.
 */
int km_runtime_add(const struct kw_dep_graph *g, struct kw_strv *names, struct kw_strv *done);
void km_sort_unique(struct kw_strv *sv);

/* The static library flag (-lstdc++, -lm, -lresolv, ...) for a system library the objects need, or NULL. */
const char *km_static_flag(const char *soname);

/*
 * Plugins a system library loads by path (plugins.c): the regular shared
 * objects under root ("" for the real one) that absolute path strings in its bytes (buf,
 * len) name, directly or as a directory of *.so files; unrooted paths added
 * to out once each. KW_ENOMEM only.
 */
int km_find_plugins(const char *root, const unsigned char *buf, size_t len, struct kw_strv *out);

/*
 * The link file's text (convert.c): the archive as a whole, the loader's
 * wraps, then the static libraries in flags. New string, NULL if out of memory.
 */
char *link_text(const char *archive, const struct kw_strv *flags);

/*
 * The payload wheel (wheel.c): w with each converted object of v stubbed,
 * the archive and manifest (read from archive_src, manifest_src) and a link
 * file added, tagged km_<arch>; its path in *out_path.
 */
int write_km_wheel(struct kw_wheel *w, const struct kw_audit *a, const struct kw_km_verdict *v,
		   const struct kw_km_wheel *res, const struct kw_strv *flags, const char *archive_src,
		   const char *manifest_src, const char *outdir, char **out_path, struct kw_error *err);

/*
 * The symbol tag of the shared object buf (twelve hex digits): what
 * kw_km_delink names the object's symbols with. A library's object file is
 * named with it too, so it is taken first and handed to km_delink (tag
 * NULL: taken there), which is kw_km_delink_with otherwise.
 */
void km_symbol_tag(const unsigned char *buf, size_t len, char tag[13]);
int km_delink(const unsigned char *buf, size_t len, const char *tag, const char *name, const char *id,
	      enum kw_km_mode mode, unsigned flags, const struct kw_strv *runtime, const char *out_path,
	      struct kw_km_converted *res, struct kw_error *err);

/*
 * The conversion cache (cache.c). km_convert (tag as km_delink's):
 * kw_km_delink_with, or (cache not NULL, an object with the same key
 * committed before) that object linked or copied to out_path, with *res
 * filled from its conversion and *reused_from the wheel it was converted
 * for (borrowed from the cache); key is written for km_cache_pend either
 * way. km_cache_pend: remember a conversion (res copied) whose object is
 * named object in a directory not yet in place; km_cache_commit: that
 * directory is at dir now, for the wheel from; km_cache_drop: it never
 * will be. Each is a no-op on a NULL cache; KW_ENOMEM only, but for
 * km_convert's own errors.
 */
int km_convert(struct kw_km_cache *cache, const unsigned char *buf, size_t len, const char *tag, const char *name,
	       const char *id, enum kw_km_mode mode, unsigned flags, const struct kw_strv *runtime,
	       const char *out_path, struct kw_km_converted *res, unsigned char key[32], const char **reused_from,
	       struct kw_error *err);
int km_cache_pend(struct kw_km_cache *cache, const unsigned char key[32], const struct kw_km_converted *res,
		  const char *object);
int km_cache_commit(struct kw_km_cache *cache, const char *dir, const char *from);
void km_cache_drop(struct kw_km_cache *cache);

#endif
