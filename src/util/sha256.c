/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 by libcrypto. The low-level SHA256_* calls, not EVP: an EVP_MD_CTX is
 * heap-allocated and must be freed, which kwheel's API (void init, no release,
 * states on the stack and abandoned on error paths) cannot express without a
 * leak; SHA256_CTX is plain memory and runs the same block code (SHA-NI, AVX2)
 * as the EVP digest. Deprecated in OpenSSL 3 for new code, still provided.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <assert.h>
#include <string.h>

#include "kwheel/util.h"

static_assert(sizeof(SHA256_CTX) <= sizeof(((struct kw_sha256 *)0)->state), "kw_sha256 holds a SHA256_CTX");
static_assert(_Alignof(SHA256_CTX) <= _Alignof(uint64_t), "kw_sha256 is aligned for a SHA256_CTX");

static SHA256_CTX *ctx(struct kw_sha256 *s)
{
	return (SHA256_CTX *)(void *)s->state.bytes;
}

void kw_sha256_init(struct kw_sha256 *s)
{
	SHA256_Init(ctx(s));
}

void kw_sha256_update(struct kw_sha256 *s, const void *data, size_t len)
{
	SHA256_Update(ctx(s), data, len);
}

void kw_sha256_final(struct kw_sha256 *s, unsigned char out[32])
{
	SHA256_Final(out, ctx(s));
}

void kw_b64url_nopad(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;
	char *o = out;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
	}
	*o = '\0';
}

void kw_hex(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = tab[in[i] >> 4];
		out[2 * i + 1] = tab[in[i] & 15];
	}
	out[2 * n] = '\0';
}
