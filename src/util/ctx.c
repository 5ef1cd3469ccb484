/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libelf.h>

#include "kwheel/kwheel.h"

int kw_ctx_new(struct kw_ctx **out, struct kw_error *err)
{
	struct kw_ctx *ctx;

	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		return kw_error_set(err, KW_EINTERNAL, "libelf is too old: %s", elf_errmsg(-1));
	}
	ctx = kw_calloc(1, sizeof(*ctx));
	if (!ctx) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	ctx->root = kw_strdup("");
	if (!ctx->root) {
		free(ctx);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&ctx->lock, NULL);
	/* Generous for real wheels (torch ships 2 GB members), fatal for bombs. */
	ctx->limits.max_member_size = UINT64_C(8) << 30;
	ctx->limits.max_total_size = UINT64_C(32) << 30;
	ctx->limits.max_ratio = 1000;
	ctx->limits.max_members = 1000000;
	ctx->limits.max_depth = 64;
	ctx->limits.max_path_entries = 1024;
	/* A 350-library closure makes about 1,500 lookups; this many take a few seconds at most. */
	ctx->limits.max_lookups = 4000000;
	ctx->log_level = KW_LOG_WARN;
	*out = ctx;
	return 0;
}

void kw_ctx_free(struct kw_ctx *ctx)
{
	size_t i;

	if (!ctx) {
		return;
	}
	if (ctx->policy && ctx->policy_free) {
		ctx->policy_free(ctx->policy);
	}
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->root);
	free(ctx->ld_library_path);
	for (i = 0; i < ctx->n_lib_paths; i++) {
		free(ctx->lib_paths[i]);
	}
	free(ctx->lib_paths);
	free(ctx);
}

int kw_ctx_set_root(struct kw_ctx *ctx, const char *root, struct kw_error *err)
{
	char *r;
	size_t n;

	if (!root || !*root || strcmp(root, "/") == 0) {
		root = "";
	}
	r = kw_strdup(root);
	if (!r) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* "ROOT/" + "/usr/lib" must not become "ROOT//usr/lib". */
	n = strlen(r);
	while (n > 0 && r[n - 1] == '/') {
		r[--n] = '\0';
	}
	free(ctx->root);
	ctx->root = r;
	return 0;
}

int kw_ctx_set_ld_library_path(struct kw_ctx *ctx, const char *value, struct kw_error *err)
{
	char *v = NULL;

	if (value) {
		v = kw_strdup(value);
		if (!v) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	free(ctx->ld_library_path);
	ctx->ld_library_path = v;
	return 0;
}

int kw_ctx_add_lib_path(struct kw_ctx *ctx, const char *dir, struct kw_error *err)
{
	char **nv;
	char *d;

	d = kw_strdup(dir);
	if (!d) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	nv = kw_realloc(ctx->lib_paths, (ctx->n_lib_paths + 1) * sizeof(*nv));
	if (!nv) {
		free(d);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	nv[ctx->n_lib_paths++] = d;
	ctx->lib_paths = nv;
	return 0;
}

void kw_ctx_log(struct kw_ctx *ctx, enum kw_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!ctx || !ctx->log_fn || (int)level > ctx->log_level) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_data, level, buf);
}

char *kw_ctx_rooted(const struct kw_ctx *ctx, const char *abspath)
{
	return kw_asprintf("%s%s%s", ctx->root, abspath[0] == '/' ? "" : "/", abspath);
}
