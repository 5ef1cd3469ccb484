/* SPDX-License-Identifier: MIT */
#ifndef KWHEEL_KWHEEL_H
#define KWHEEL_KWHEEL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KW_UNUSED __attribute__((unused))
#else
#define KW_PRINTF(a, b)
#define KW_UNUSED
#endif

/* Status codes: 0 or a negative value. */
enum kw_status {
	KW_OK = 0,
	KW_ENOMEM = -1,       /* allocation failed */
	KW_EIO = -2,          /* read/write/open failed */
	KW_EFORMAT = -3,      /* input is malformed (truncated, not a zip, bad ELF) */
	KW_EUNSUPPORTED = -4, /* well-formed but not something kwheel handles */
	KW_ENOTFOUND = -5,    /* a looked-up thing does not exist */
	KW_EHOSTILE = -6,     /* input is refused as unsafe (zip slip, bomb, symlink) */
	KW_EINVAL = -7,       /* bad argument from the caller */
	KW_ELIMIT = -8,       /* a resource limit was reached */
	KW_EINTERNAL = -9,    /* a bug in kwheel */
	KW_EPOLICY = -10,     /* the wheel cannot meet the policy asked for (too-new symbols, missing library) */
	KW_EREQUEST = -11,    /* what the caller asked does not apply to this input (a policy of another arch) */
};

#define KW_ERROR_MSG_MAX 512

/* An error, filled once at the failure site. */
struct kw_error {
	int code;                   /* an enum kw_status */
	char msg[KW_ERROR_MSG_MAX]; /* one line, lower case first word, no full stop */
};

/* Set err (if not NULL) to code and a formatted message; returns code. */
int kw_error_set(struct kw_error *err, int code, const char *fmt, ...) KW_PRINTF(3, 4);
/* Prefix an already-set message with "PREFIX: "; keeps the code. */
void kw_error_prefix(struct kw_error *err, const char *fmt, ...) KW_PRINTF(2, 3);
/* A static string naming a status code. */
const char *kw_status_str(int code);

/*
 * Allocation. Every allocation in libkwheel goes through these so a test can
 * make the Nth one fail. They return NULL on failure and never exit.
 */
void *kw_malloc(size_t n);
void *kw_calloc(size_t nmemb, size_t size);
void *kw_realloc(void *p, size_t n);
/* Grow an array: *p holds *cap elements of size sz; ensure room for need. */
int kw_grow(void *p, size_t *cap, size_t need, size_t sz);
char *kw_strdup(const char *s);
char *kw_strndup(const char *s, size_t n);
/* printf into a new string (freed with free()); NULL on failure. */
char *kw_asprintf(const char *fmt, ...) KW_PRINTF(1, 2);
char *kw_vasprintf(const char *fmt, va_list ap) KW_PRINTF(1, 0);
/*
 * Fault injection for tests: the nth allocation from now (1-based) and every
 * later one fail; 0 turns it off. Returns how many allocations happened since
 * the last call. This is the one piece of process-wide state in the library,
 * on purpose: it exists only so the test suite can prove every failure path.
 */
long kw_alloc_fail_at(long nth);

/* Log levels for the context's log callback. */
enum kw_log_level {
	KW_LOG_ERROR = 0,
	KW_LOG_WARN = 1,
	KW_LOG_INFO = 2,
	KW_LOG_DEBUG = 3,
};

typedef void (*kw_log_fn)(void *userdata, enum kw_log_level level, const char *msg);

/* Limits that guard against hostile input. */
struct kw_limits {
	uint64_t max_member_size;   /* largest uncompressed member we will inflate */
	uint64_t max_total_size;    /* largest sum of uncompressed member sizes */
	uint64_t max_ratio;         /* largest uncompressed/compressed ratio (zip bomb) */
	uint64_t max_members;       /* most members in one wheel */
	uint32_t max_depth;         /* deepest dependency chain followed */
	uint32_t max_path_entries;  /* most entries in one RPATH/RUNPATH/LD_LIBRARY_PATH */
	uint64_t max_lookups;       /* most (directory, library name) lookups of one resolver: a wheel or file */
};

struct kw_policy_set;
struct kw_pool;

/*
 * Everything the library needs that would otherwise be global: options,
 * the filesystem root that lookups go through, logging and loaded policy.
 *
 * Threads: configure a context (kw_ctx_set_*, kw_ctx_add_lib_path, the
 * fields) from one thread, then share it: every library call only reads it,
 * except kw_ctx_policy's first load, which is serialised by the context's
 * lock. log_fn may be called from any thread that uses the context. The
 * pool, set like the rest, locks for itself.
 */
struct kw_ctx {
	char *root;               /* "" or a directory that stands for "/" in lookups */
	char *ld_library_path;    /* value used as LD_LIBRARY_PATH, or NULL */
	char **lib_paths;         /* extra directories searched before the defaults */
	size_t n_lib_paths;
	bool no_default_paths;    /* skip ld.so.conf and default directories */
	struct kw_limits limits;
	kw_log_fn log_fn;
	void *log_data;
	int log_level;
	struct kw_policy_set *policy; /* loaded lazily by kw_ctx_policy(), under lock */
	/* How to free policy: set by the module that loaded it, so util/ needs no policy code. */
	void (*policy_free)(struct kw_policy_set *set);
	pthread_mutex_t lock;         /* guards the lazy load of policy */
	/* Borrowed (kw_pool_new): where a call runs its independent pieces (a wheel's members); NULL: here. */
	struct kw_pool *pool;
};

/*
 * New context with default limits and root "/". Initialises libelf.
 * Returns 0 and a new context in *out (freed with kw_ctx_free).
 */
int kw_ctx_new(struct kw_ctx **out, struct kw_error *err);
void kw_ctx_free(struct kw_ctx *ctx);
/* Set the root directory (copied). NULL or "" or "/" means the real root. */
int kw_ctx_set_root(struct kw_ctx *ctx, const char *root, struct kw_error *err);
/* Set LD_LIBRARY_PATH as the loader would see it (copied); NULL unsets. */
int kw_ctx_set_ld_library_path(struct kw_ctx *ctx, const char *value, struct kw_error *err);
/* Append a directory searched before ld.so.conf and defaults (copied). */
int kw_ctx_add_lib_path(struct kw_ctx *ctx, const char *dir, struct kw_error *err);
void kw_ctx_log(struct kw_ctx *ctx, enum kw_log_level level, const char *fmt, ...) KW_PRINTF(3, 4);

/*
 * Build "ROOT/path" for a lookup of absolute path under ctx->root.
 * Returns a new string (free()), or NULL on allocation failure.
 */
char *kw_ctx_rooted(const struct kw_ctx *ctx, const char *abspath);

#endif
