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

/* The slot of the first n bytes of s: where it is, or the empty one where it would go. */
static struct kw_strmap_slot *find(const struct kw_strmap *m, const char *s, size_t n)
{
	size_t mask = m->n_slot - 1, i = (size_t)kw_hash_bytes(KW_FNV_BASIS, s, n) & mask;

	/* Never full (grown at half), so the probe ends. */
	for (;; i = (i + 1) & mask) {
		struct kw_strmap_slot *e = &m->slot[i];

		if (!e->key || (strncmp(e->key, s, n) == 0 && e->key[n] == '\0')) {
			return e;
		}
	}
}

static int grow(struct kw_strmap *m)
{
	struct kw_strmap bigger = { 0 };
	size_t i;

	bigger.n_slot = m->n_slot ? m->n_slot * 2 : 16;
	bigger.slot = kw_calloc(bigger.n_slot, sizeof(*bigger.slot));
	if (!bigger.slot) {
		return KW_ENOMEM;
	}
	for (i = 0; i < m->n_slot; i++) {
		if (m->slot[i].key) {
			*find(&bigger, m->slot[i].key, strlen(m->slot[i].key)) = m->slot[i];
		}
	}
	bigger.n = m->n;
	free(m->slot);
	*m = bigger;
	return 0;
}

int kw_strmap_add(struct kw_strmap *m, const char *s, size_t val)
{
	struct kw_strmap_slot *e;

	if ((m->n + 1) * 2 > m->n_slot && grow(m)) {
		return KW_ENOMEM;
	}
	e = find(m, s, strlen(s));
	if (e->key) {
		return 0;
	}
	e->key = s;
	e->val = val;
	m->n++;
	return 1;
}

long kw_strmap_get_n(const struct kw_strmap *m, const char *s, size_t n)
{
	const struct kw_strmap_slot *e;

	if (m->n == 0) {
		return -1;
	}
	e = find(m, s, n);
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
	if (kw_strmap_get(m, s) >= 0) {
		return 0;
	}
	if (kw_strv_push(sv, s)) {
		return KW_ENOMEM;
	}
	if (kw_strmap_add(m, sv->v[sv->n - 1], sv->n - 1) < 0) {
		free(sv->v[--sv->n]);
		sv->v[sv->n] = NULL;
		return KW_ENOMEM;
	}
	return 0;
}
