/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_WHEEL_INTERNAL_H
#define KWHEEL_WHEEL_INTERNAL_H

#include <pthread.h>

#include <zip.h>

#include "kwheel/wheel.h"

struct kw_wheel {
	struct kw_ctx *ctx;
	zip_t *zip;
	char *path;
	char *label;                   /* base name, for messages */
	struct kw_wheel_name name;
	char *dist_info;
	struct kw_wheel_member *members; /* zip order */
	size_t n_members;
	size_t *by_name;               /* indexes into members, sorted by name */
	uint64_t *inflated_of;         /* most bytes inflated so far of each member */
	uint64_t inflated;             /* their sum, held to ctx->limits.max_total_size */
	int fd;                        /* the archive, for reading compressed bytes whole; -1 if not */
	uint64_t *data_off;            /* where each member's compressed bytes start (zip order) */
	/*
	 * Members are read from several threads at once (a wheel's members on
	 * the pool): compressed bytes by pread from fd, each read with its own
	 * inflater. The lock guards what reads share: the inflated counts and
	 * libzip's archive, the path only when fd is -1.
	 */
	pthread_mutex_t lock;
};

/* Why a member name is unsafe to extract (a short phrase), or NULL: for names read and names written. */
const char *kw_wheel_name_problem(const char *name);

/* The open archive, for the writer in this module. Borrowed. */
zip_t *kw_wheel_zip(struct kw_wheel *w);

#endif
