/*
 * pthreads - an example handler that uses POSIX threads.
 *
 * Per invocation it starts 4 worker threads and feeds them the request in
 * 4 KiB blocks through a work queue (a mutex and two condition variables:
 * "work available" and "all done"); each worker hashes its blocks (SHA-256)
 * and folds the digests into shared totals under the mutex; the main thread
 * joins them and answers with the block count, an order-independent digest
 * of all blocks (XOR of the block digests), a per-thread block count check,
 * and how many times the workers waited, e.g.
 *
 *   threads=4 blocks=17 xor=5f1c...e0 sum_ok=1 joined=4
 *
 * The output depends only on the request, so the same binary gives the same
 * answer in the micro guest and as a plain process (the integration test
 * micro-runtimes compares them).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sdk/ember_handler.h"
#include "sdk/sha256.h"

#define NTHREADS 4
#define BLOCK 4096

struct work {
	pthread_mutex_t lock;
	pthread_cond_t more, done;
	const uint8_t *data;
	size_t len, next;      /* next block offset to hand out */
	unsigned pending;      /* blocks handed out but not folded in */
	int closing;
	uint8_t xor[32];
	unsigned blocks;
	unsigned per_thread[NTHREADS];
};

struct worker {
	struct work *w;
	unsigned idx;
};

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	struct work *w = me->w;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->next >= w->len && !w->closing)
			pthread_cond_wait(&w->more, &w->lock);
		if (w->next >= w->len)
			break;
		size_t off = w->next, n = w->len - off;
		uint8_t d[32];

		if (n > BLOCK)
			n = BLOCK;
		w->next += n;
		w->pending++;
		pthread_mutex_unlock(&w->lock);
		{
			struct sha256 s;

			sha256_init(&s);
			sha256_update(&s, w->data + off, n);
			sha256_final(&s, d);
		} /* outside the lock */
		pthread_mutex_lock(&w->lock);
		for (int i = 0; i < 32; i++)
			w->xor[i] ^= d[i];
		w->blocks++;
		w->per_thread[me->idx]++;
		if (--w->pending == 0 && w->next >= w->len)
			pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	return me;
}

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	struct work w;
	struct worker ws[NTHREADS];
	pthread_t th[NTHREADS];
	unsigned joined = 0, sum = 0;
	char line[200];
	int n;

	(void)ctx;
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.more, NULL);
	pthread_cond_init(&w.done, NULL);
	for (unsigned i = 0; i < NTHREADS; i++) {
		ws[i] = (struct worker){ &w, i };
		if (pthread_create(&th[i], NULL, worker_main, &ws[i])) {
			ember_response_puts(resp, "pthread_create failed");
			return 1;
		}
	}
	/* Hand the request to the workers, then wait until all is folded. */
	pthread_mutex_lock(&w.lock);
	w.data = req->data;
	w.len = req->len;
	pthread_cond_broadcast(&w.more);
	while (w.next < w.len || w.pending)
		pthread_cond_wait(&w.done, &w.lock);
	w.closing = 1;
	pthread_cond_broadcast(&w.more);
	pthread_mutex_unlock(&w.lock);
	for (unsigned i = 0; i < NTHREADS; i++) {
		void *ret;

		if (pthread_join(th[i], &ret) == 0 && ret == &ws[i])
			joined++;
		sum += w.per_thread[i];
	}
	pthread_cond_destroy(&w.more);
	pthread_cond_destroy(&w.done);
	pthread_mutex_destroy(&w.lock);

	n = snprintf(line, sizeof(line), "threads=%d blocks=%u xor=", NTHREADS,
		     w.blocks);
	for (int i = 0; i < 32; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
			      w.xor[i]);
	snprintf(line + n, sizeof(line) - (size_t)n, " sum_ok=%d joined=%u\n",
		 sum == w.blocks, joined);
	return ember_response_puts(resp, line);
}

int main(void)
{
	return ember_handler_run(fn, NULL);
}
