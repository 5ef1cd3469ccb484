/* SPDX-License-Identifier: MIT */
/*
 * Conversions shared by the wheels of one `kwheel km` run: a library several
 * wheels need is delinked for the first and its object reused (hard-linked,
 * or copied) for the others. The key is everything the object's bytes
 * depend on (the shared object's bytes, mode, flags, registration id and
 * which of its exports the runtime defines, made local then), so a
 * reused object is the very object a conversion would write, registration
 * included.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kwheel/km.h"

#include "internal.h"

struct cache_entry {
	unsigned char key[32];
	char *path;     /* committed: where the object is; pending: its name in the directory being made */
	char *from;     /* the wheel (or "lib-dynload") it was converted for */
	bool pending;
	struct kw_km_converted c;
};

struct kw_km_cache {
	struct cache_entry *v;
	size_t n, cap;
	atomic_size_t converted, reused; /* counted on the threads that convert */
};

int kw_km_cache_new(struct kw_km_cache **out, struct kw_error *err)
{
	*out = kw_calloc(1, sizeof(**out));
	return *out ? 0 : kw_error_set(err, KW_ENOMEM, "out of memory");
}

static void entry_release(struct cache_entry *e)
{
	free(e->path);
	free(e->from);
	kw_km_converted_release(&e->c);
}

void kw_km_cache_free(struct kw_km_cache *c)
{
	size_t i;

	if (!c) {
		return;
	}
	for (i = 0; i < c->n; i++) {
		entry_release(&c->v[i]);
	}
	free(c->v);
	free(c);
}

void kw_km_cache_counts(const struct kw_km_cache *c, size_t *converted, size_t *reused)
{
	*converted = c ? atomic_load(&c->converted) : 0;
	*reused = c ? atomic_load(&c->reused) : 0;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The key: the bytes, mode, flags and id, and (lib mode) the names among
 * the object's exports that the runtime defines, the only part of the
 * runtime list the converter reads, so wheels whose runtime lists differ
 * elsewhere (one reaches libgcc_s, the other not) share the object too.
 * false if the object cannot be parsed (then the converter says why).
 */
static bool cache_key(const unsigned char *buf, size_t len, const char *name, enum kw_km_mode mode, unsigned flags,
		      const char *id, const struct kw_strv *runtime, unsigned char key[32])
{
	struct kw_elf_info *info = NULL;
	struct kw_error e2 = { 0 };
	struct kw_sha256 s;
	unsigned char head[2] = { (unsigned char)mode, (unsigned char)flags };
	size_t i;

	if (kw_elf_parse_memory(buf, len, name, &info, &e2) != 0) {
		return false;
	}
	kw_sha256_init(&s);
	kw_sha256_update(&s, buf, len);
	kw_sha256_update(&s, head, sizeof(head));
	kw_sha256_update(&s, id, strlen(id) + 1);
	for (i = 0; mode == KW_KM_LIB && runtime && runtime->n && i < info->n_syms; i++) {
		const struct kw_elf_sym *sym = &info->syms[i];
		const char *n = sym->name;

		if (sym->defined && sym->bind != 0 /* STB_LOCAL */ &&
		    bsearch(&n, runtime->v, runtime->n, sizeof(*runtime->v), cmp_strp)) {
			kw_sha256_update(&s, n, strlen(n) + 1);
		}
	}
	kw_sha256_final(&s, key);
	kw_elf_info_free(info);
	return true;
}

static struct cache_entry *find(struct kw_km_cache *c, const unsigned char key[32])
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (!c->v[i].pending && memcmp(c->v[i].key, key, 32) == 0) {
			return &c->v[i];
		}
	}
	return NULL;
}

static int strv_copy(struct kw_strv *dst, const struct kw_strv *src)
{
	size_t i;

	for (i = 0; i < src->n; i++) {
		if (kw_strv_push(dst, src->v[i])) {
			return KW_ENOMEM;
		}
	}
	return 0;
}

/* A deep copy of src into *dst (zeroed on entry); KW_ENOMEM leaves nothing to release. */
static int converted_copy(struct kw_km_converted *dst, const struct kw_km_converted *src)
{
	*dst = *src;
	memset(&dst->exports, 0, sizeof(dst->exports));
	memset(&dst->undefined, 0, sizeof(dst->undefined));
	memset(&dst->warnings, 0, sizeof(dst->warnings));
	dst->defined = src->defined ? kw_malloc(src->defined_len ? src->defined_len : 1) : NULL;
	if (dst->defined) {
		memcpy(dst->defined, src->defined, src->defined_len);
	}
	if ((src->defined && !dst->defined) || strv_copy(&dst->exports, &src->exports) ||
	    strv_copy(&dst->undefined, &src->undefined) || strv_copy(&dst->warnings, &src->warnings)) {
		kw_km_converted_release(dst);
		return KW_ENOMEM;
	}
	return 0;
}

int km_convert(struct kw_km_cache *cache, const unsigned char *buf, size_t len, const char *tag, const char *name,
	       const char *id, enum kw_km_mode mode, unsigned flags, const struct kw_strv *runtime,
	       const char *out_path, struct kw_km_converted *res, unsigned char key[32], const char **reused_from,
	       struct kw_error *err)
{
	struct cache_entry *e;
	struct kw_error e2 = { 0 };
	int rc;

	*reused_from = NULL;
	memset(key, 0, 32);
	if (!cache || !cache_key(buf, len, name, mode, flags, id, runtime, key)) {
		return km_delink(buf, len, tag, name, id, mode, flags, runtime, out_path, res, err);
	}
	e = find(cache, key);
	/* A hard link where it can (the same file system: instant, no bytes written), else a copy. */
	if (e && link(e->path, out_path) != 0) {
		if (errno == ENOENT || kw_copy_file(e->path, out_path, 0644, &e2) != 0) {
			unlink(out_path);
			e = NULL;
		}
	}
	if (e) {
		memset(res, 0, sizeof(*res));
		if (converted_copy(res, &e->c)) {
			unlink(out_path);
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
		/* Objects of one wheel convert on several threads; the cache's entries are only read then. */
		atomic_fetch_add_explicit(&cache->reused, 1, memory_order_relaxed);
		*reused_from = e->from;
		return 0;
	}
	/* Not seen, or its object has gone since: converted again. */
	rc = km_delink(buf, len, tag, name, id, mode, flags, runtime, out_path, res, err);
	if (!rc) {
		atomic_fetch_add_explicit(&cache->converted, 1, memory_order_relaxed);
	}
	return rc;
}

int km_cache_pend(struct kw_km_cache *cache, const unsigned char key[32], const struct kw_km_converted *res,
		  const char *object)
{
	struct cache_entry *e;

	if (!cache) {
		return 0;
	}
	if (kw_grow(&cache->v, &cache->cap, cache->n + 1, sizeof(*cache->v))) {
		return KW_ENOMEM;
	}
	e = &cache->v[cache->n];
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, 32);
	e->pending = true;
	if (!(e->path = kw_strdup(object)) || converted_copy(&e->c, res)) {
		free(e->path);
		return KW_ENOMEM;
	}
	cache->n++;
	return 0;
}

int km_cache_commit(struct kw_km_cache *cache, const char *dir, const char *from)
{
	size_t i, w;

	if (!cache) {
		return 0;
	}
	for (i = 0; i < cache->n; i++) {
		struct cache_entry *e = &cache->v[i];
		char *p, *f;

		if (!e->pending) {
			continue;
		}
		p = kw_asprintf("%s/%s", dir, e->path);
		f = kw_strdup(from);
		if (!p || !f) {
			free(p);
			free(f);
			km_cache_drop(cache);
			return KW_ENOMEM;
		}
		free(e->path);
		e->path = p;
		e->from = f;
		e->pending = false;
	}
	/* A key committed again (the same wheel twice): the newest object wins, as it is the one left on disk. */
	for (i = 0, w = 0; i < cache->n; i++) {
		size_t j;
		bool newer = false;

		for (j = i + 1; j < cache->n && !newer; j++) {
			newer = memcmp(cache->v[j].key, cache->v[i].key, 32) == 0;
		}
		if (newer) {
			entry_release(&cache->v[i]);
		} else {
			cache->v[w++] = cache->v[i];
		}
	}
	cache->n = w;
	return 0;
}

void km_cache_drop(struct kw_km_cache *cache)
{
	size_t i, w;

	if (!cache) {
		return;
	}
	for (i = 0, w = 0; i < cache->n; i++) {
		if (cache->v[i].pending) {
			entry_release(&cache->v[i]);
		} else {
			cache->v[w++] = cache->v[i];
		}
	}
	cache->n = w;
}
