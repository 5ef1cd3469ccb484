/* SPDX-License-Identifier: MIT */
/* SHA-512 and SHA-384 by libcrypto; why the low-level calls: see sha256.c. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <assert.h>

#include "kwheel/util.h"

static_assert(sizeof(SHA512_CTX) <= sizeof(((struct kw_sha512 *)0)->state), "kw_sha512 holds a SHA512_CTX");
static_assert(_Alignof(SHA512_CTX) <= _Alignof(uint64_t), "kw_sha512 is aligned for a SHA512_CTX");

static SHA512_CTX *ctx(struct kw_sha512 *s)
{
	return (SHA512_CTX *)(void *)s->state.bytes;
}

void kw_sha512_init(struct kw_sha512 *s, bool sha384)
{
	if (sha384) {
		SHA384_Init(ctx(s));
		s->out_len = 48;
	} else {
		SHA512_Init(ctx(s));
		s->out_len = 64;
	}
}

void kw_sha512_update(struct kw_sha512 *s, const void *data, size_t len)
{
	/* SHA384_Update is SHA512_Update: one compression function, other start values */
	SHA512_Update(ctx(s), data, len);
}

size_t kw_sha512_final(struct kw_sha512 *s, unsigned char out[64])
{
	if (s->out_len == 48) {
		SHA384_Final(out, ctx(s));
	} else {
		SHA512_Final(out, ctx(s));
	}
	return s->out_len;
}
