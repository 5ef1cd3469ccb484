/* SPDX-License-Identifier: MIT */
/*
 * The one worker pool: a fixed set of threads that run the items of
 * batches, where a batch is n independent calls of one function. Batches
 * nest: an item may run a batch of its own (a wheel of a -j N run runs its
 * members), and the pool's threads take the newest batch's items first, so
 * a wheel that is most of the work is spread over every thread instead of
 * holding one while the others have finished. A caller works on its own
 * batch; once all its items are taken it helps with batches opened after
 * its own (the members of the wheel another thread still works on), and
 * returns when every item of its batch is done. It never waits for an item
 * that no thread has taken, so nesting cannot deadlock.
 */
#include <pthread.h>
#include <stdlib.h>

#include "kwheel/util.h"

static int larger_first(const void *x, const void *y)
{
	const struct kw_sized *a = x, *b = y;

	return a->size != b->size ? (a->size < b->size) - (a->size > b->size) : (a->i > b->i) - (a->i < b->i);
}

void kw_sort_largest_first(struct kw_sized *v, size_t n)
{
	qsort(v, n, sizeof(*v), larger_first);
}

struct batch {
	size_t n, next, done;   /* items, the next unclaimed, those finished */
	void (*fn)(void *ud, size_t i);
	int (*until)(void *ud, size_t i); /* or this, which fails with nonzero */
	size_t failed;          /* until: the lowest item that failed (n: none) */
	void *ud;
	unsigned long seq;      /* when it was opened: a later batch has a higher one */
	struct batch *below;    /* the open batches, newest first */
};

struct kw_pool {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a batch was opened or finished, or the pool stops */
	struct batch *open;     /* batches with unclaimed items, newest first */
	unsigned long seq;      /* batches opened so far */
	bool stop;
	pthread_t *threads;
	size_t n_threads;       /* started, besides the callers' */
};

/* Claim the next item of b (lock held); a batch with none left is closed. */
static size_t claim(struct kw_pool *p, struct batch *b)
{
	size_t i = b->next++;

	if (b->next == b->n) {
		struct batch **q = &p->open;

		while (*q && *q != b) {
			q = &(*q)->below;
		}
		if (*q) {
			*q = b->below;
		}
	}
	return i;
}

/* Run item i of b unlocked, then count it (lock held on entry and on return). */
static void run_item(struct kw_pool *p, struct batch *b, size_t i)
{
	bool skip = b->until && i > b->failed;
	int rc = 0;

	pthread_mutex_unlock(&p->lock);
	/* Past a failure an item's result is never looked at: it is not run. */
	if (b->until && !skip) {
		rc = b->until(b->ud, i);
	} else if (!b->until) {
		b->fn(b->ud, i);
	}
	pthread_mutex_lock(&p->lock);
	if (rc && i < b->failed) {
		b->failed = i;
	}
	if (++b->done == b->n) {
		pthread_cond_broadcast(&p->changed);
	}
}

static void *worker(void *arg)
{
	struct kw_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct batch *b;

		while (!p->open && !p->stop) {
			pthread_cond_wait(&p->changed, &p->lock);
		}
		if (p->stop) {
			break;
		}
		b = p->open;
		run_item(p, b, claim(p, b));
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int kw_pool_new(unsigned threads, struct kw_pool **out, struct kw_error *err)
{
	struct kw_pool *p;
	size_t want = threads > 1 ? threads - 1 : 0;

	*out = NULL;
	p = kw_calloc(1, sizeof(*p));
	if (!p || (want && !(p->threads = kw_calloc(want, sizeof(*p->threads))))) {
		free(p);
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	/* A thread that does not start leaves its share to the others: fewer threads, the same results. */
	while (p->n_threads < want && pthread_create(&p->threads[p->n_threads], NULL, worker, p) == 0) {
		p->n_threads++;
	}
	*out = p;
	return 0;
}

void kw_pool_free(struct kw_pool *p)
{
	size_t i;

	if (!p) {
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->n_threads; i++) {
		pthread_join(p->threads[i], NULL);
	}
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

unsigned kw_pool_threads(const struct kw_pool *p)
{
	return p ? (unsigned)p->n_threads + 1 : 1;
}

static void run_batch(struct kw_pool *p, struct batch *b)
{
	pthread_mutex_lock(&p->lock);
	b->seq = ++p->seq;
	b->below = p->open;
	p->open = b;
	pthread_cond_broadcast(&p->changed);
	while (b->next < b->n) {
		run_item(p, b, claim(p, b));
	}
	/*
	 * Every item is taken. Until the ones still running are done, help
	 * with newer batches (the open list is newest first): they are the
	 * pieces of running items, here or of other batches, never an older
	 * batch's whole item that would hold this caller long past its own.
	 */
	while (b->done < b->n) {
		if (p->open && p->open->seq > b->seq) {
			struct batch *o = p->open;

			run_item(p, o, claim(p, o));
			continue;
		}
		pthread_cond_wait(&p->changed, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
}

void kw_pool_run(struct kw_pool *p, size_t n, void (*fn)(void *ud, size_t i), void *ud)
{
	struct batch b = { .n = n, .fn = fn, .ud = ud, .failed = n };
	size_t i;

	/* No other thread to share with: in order, on this one (what -j 1 has always done). */
	if (!p || p->n_threads == 0 || n <= 1) {
		for (i = 0; i < n; i++) {
			fn(ud, i);
		}
		return;
	}
	run_batch(p, &b);
}

size_t kw_pool_run_until(struct kw_pool *p, size_t n, int (*fn)(void *ud, size_t i), void *ud)
{
	struct batch b = { .n = n, .until = fn, .ud = ud, .failed = n };
	size_t i;

	if (!p || p->n_threads == 0 || n <= 1) {
		for (i = 0; i < n; i++) {
			if (fn(ud, i)) {
				return i;
			}
		}
		return n;
	}
	run_batch(p, &b);
	return b.failed;
}
