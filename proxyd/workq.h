/*
 * A small pool of worker threads for CPU work that must not block the
 * event loop (proxyd's OpenPGP decryption). Jobs go in from the loop
 * thread, run on a worker, and come back to the loop thread through an
 * eventfd, so completion callbacks need no locks. The queue is bounded:
 * a full queue refuses the job (the caller answers "try later"), it never
 * grows with the load.
 */
#ifndef WORKQ_H
#define WORKQ_H

#include <stddef.h>

#include "err.h"

struct event_base;
struct workq;

/* Runs on a worker thread; must touch only the job. */
typedef void workq_work_fn(void *job, void *arg);
/* Runs on the loop thread when the job's work is done (or, with
 * cancelled set, when the pool is freed before it ran). */
typedef void workq_done_fn(void *job, int cancelled, void *arg);

struct workq *workq_new(struct event_base *, unsigned int nthreads,
	    size_t max_queued, workq_work_fn *, workq_done_fn *, void *arg,
	    char err[ERR_LEN]);
/* 0, or -1 when the queue is full (the job stays the caller's). */
int	workq_push(struct workq *, void *job);
/* Jobs queued or running. */
size_t	workq_depth(struct workq *);
/* Waits for running jobs, cancels queued ones (done with cancelled = 1),
 * delivers finished ones; NULL is a no-op. */
void	workq_free(struct workq *);

#endif
