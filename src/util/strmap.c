/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"

uint64_t kw_hash_bytes(uint64_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	}
	return h;
}

uint64_t kw_hash_str(const char *s)
{
	return kw_hash_bytes(KW_FNV_BASIS, s, strlen(s));
}

/*
 * The table's own hash, not FNV-1a: a table only needs its slots spread,
 * and FNV's multiplication per byte was most of the cost of indexing a
 * C++ library's long mangled names (kw_hash_str stays FNV-1a: --shard's
 * buckets are defined by it). Eight bytes a step, then a final mix, since
 * the slot is taken from the low bits.
 */
static uint64_t table_hash(const char *s, size_t n)
{
	uint64_t h = KW_FNV_BASIS ^ n, w;
	size_t k;

	for (k = 0; k + 8 <= n; k += 8) {
		memcpy(&w, s + k, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	if (k < n) {
		w = 0;
		memcpy(&w, s + k, n - k);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	return h ^ (h >> 32);
}

/* The slot of the first n bytes of s (hash h): where it is, or the empty one where it would go. */
static struct kw_strmap_slot *find(const struct kw_strmap *m, const char *s, size_t n, uint64_t h)
{
	size_t mask = m->n_slot - 1, i = (size_t)h & mask;

	/* Never full (grown at half), so the probe ends. */
	for (;; i = (i + 1) & mask) {
		struct kw_strmap_slot *e = &m->slot[i];

		if (!e->key || (e->hash == h && strncmp(e->key, s, n) == 0 && e->key[n] == '\0')) {
			return e;
		}
	}
}

static int grow(struct kw_strmap *m)
{
	struct kw_strmap bigger = { 0 };
	size_t i, mask;

	bigger.n_slot = m->n_slot ? m->n_slot * 2 : 16;
	bigger.slot = kw_calloc(bigger.n_slot, sizeof(*bigger.slot));
	if (!bigger.slot) {
		return KW_ENOMEM;
	}
	/* Each key moves by its stored hash: no key is read again. */
	mask = bigger.n_slot - 1;
	for (i = 0; i < m->n_slot; i++) {
		if (m->slot[i].key) {
			size_t j = (size_t)m->slot[i].hash & mask;

			while (bigger.slot[j].key) {
				j = (j + 1) & mask;
			}
			bigger.slot[j] = m->slot[i];
		}
	}
	bigger.n = m->n;
	free(m->slot);
	*m = bigger;
	return 0;
}

/*
 * Where s goes: KW_ENOMEM; 0 if it is there; 1 with *e the empty slot it
 * would take (the table grown first, so filling it keeps the table at
 * most half full) and *h its hash, for occupy.
 */
static int claim(struct kw_strmap *m, const char *s, struct kw_strmap_slot **e, uint64_t *h)
{
	size_t n = strlen(s);

	*h = table_hash(s, n);
	if ((m->n + 1) * 2 > m->n_slot && grow(m)) {
		return KW_ENOMEM;
	}
	*e = find(m, s, n, *h);
	return (*e)->key ? 0 : 1;
}

static void occupy(struct kw_strmap *m, struct kw_strmap_slot *e, const char *key, uint64_t h, size_t val)
{
	e->key = key;
	e->hash = h;
	e->val = val;
	m->n++;
}

int kw_strmap_add(struct kw_strmap *m, const char *s, size_t val)
{
	struct kw_strmap_slot *e = NULL;
	uint64_t h = 0;
	int rc = claim(m, s, &e, &h);

	if (rc == 1) {
		occupy(m, e, s, h, val);
	}
	return rc;
}

long kw_strmap_get_n(const struct kw_strmap *m, const char *s, size_t n)
{
	const struct kw_strmap_slot *e;

	if (m->n == 0) {
		return -1;
	}
	e = find(m, s, n, table_hash(s, n));
	return e->key ? (long)e->val : -1;
}

long kw_strmap_get(const struct kw_strmap *m, const char *s)
{
	return kw_strmap_get_n(m, s, strlen(s));
}

void kw_strmap_release(struct kw_strmap *m)
{
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

int kw_strv_push_indexed(struct kw_strv *sv, struct kw_strmap *m, const char *s)
{
	struct kw_strmap_slot *e = NULL;
	uint64_t h = 0;
	int rc = claim(m, s, &e, &h);

	/* One probe: the slot found empty is where the new string goes. */
	if (rc != 1) {
		return rc;
	}
	if (kw_strv_push(sv, s)) {
		return KW_ENOMEM;
	}
	occupy(m, e, sv->v[sv->n - 1], h, sv->n - 1);
	return 0;
}
