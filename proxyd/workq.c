/* Worker pool with an eventfd back to the loop; see workq.h. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "workq.h"
#include "xmalloc.h"

/* A ring of job pointers. */
struct workq_ring {
	void	**items;
	size_t	  cap, head, len;
};

struct workq {
	struct event_base	*base;
	workq_work_fn		*work;
	workq_done_fn		*done;
	void			*arg;
	pthread_t		*threads;
	unsigned int		 nthreads;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct workq_ring	 todo;		/* queued, bounded */
	struct workq_ring	 finished;	/* back to the loop */
	size_t			 running;
	bool			 stopping;
	int			 efd;
	struct event		*ev;
};

static void
workq_ring_init(struct workq_ring *r, size_t cap)
{
	r->items = xcalloc(cap, sizeof(void *));
	r->cap = cap;
	r->head = r->len = 0;
}

static int
workq_ring_push(struct workq_ring *r, void *item)
{
	if (r->len == r->cap)
		return -1;
	r->items[(r->head + r->len) % r->cap] = item;
	r->len++;
	return 0;
}

static void *
workq_ring_pop(struct workq_ring *r)
{
	void *item;

	if (r->len == 0)
		return NULL;
	item = r->items[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return item;
}

static void *
workq_main(void *arg)
{
	struct workq *q = arg;
	uint64_t one = 1;
	void *job;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stopping && q->todo.len == 0)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stopping)
			break;
		job = workq_ring_pop(&q->todo);
		q->running++;
		pthread_mutex_unlock(&q->lock);
		q->work(job, q->arg);
		pthread_mutex_lock(&q->lock);
		q->running--;
		/* finished has room for every job ever admitted. */
		workq_ring_push(&q->finished, job);
		if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			abort();	/* eventfd write cannot fail otherwise */
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void
workq_deliver(struct workq *q)
{
	void *job;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		job = workq_ring_pop(&q->finished);
		pthread_mutex_unlock(&q->lock);
		if (job == NULL)
			return;
		q->done(job, 0, q->arg);
	}
}

static void
workq_on_event(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	workq_deliver(arg);
}

struct workq *
workq_new(struct event_base *base, unsigned int nthreads, size_t max_queued,
    workq_work_fn *work, workq_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct workq *q = xcalloc(1, sizeof(*q));

	q->base = base;
	q->work = work;
	q->done = done;
	q->arg = arg;
	q->nthreads = nthreads ? nthreads : 1;
	workq_ring_init(&q->todo, max_queued ? max_queued : 1);
	/* Everything admitted (queued + running) fits in finished. */
	workq_ring_init(&q->finished, q->todo.cap + q->nthreads);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err_set(err, "eventfd: %s", strerror(errno));
		goto fail;
	}
	q->ev = event_new(base, q->efd, EV_READ | EV_PERSIST, workq_on_event,
	    q);
	event_add(q->ev, NULL);
	q->threads = xcalloc(q->nthreads, sizeof(pthread_t));
	for (unsigned int i = 0; i < q->nthreads; i++) {
		if (pthread_create(&q->threads[i], NULL, workq_main, q) != 0) {
			err_set(err, "cannot start worker threads");
			q->nthreads = i;
			workq_free(q);
			return NULL;
		}
	}
	return q;
fail:
	free(q->todo.items);
	free(q->finished.items);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
	return NULL;
}

int
workq_push(struct workq *q, void *job)
{
	int rc;

	pthread_mutex_lock(&q->lock);
	/* Admit only what finished can hold back: queued + running. */
	rc = q->stopping || q->todo.len + q->running + q->finished.len >=
	    q->finished.cap ? -1 : workq_ring_push(&q->todo, job);
	if (rc == 0)
		pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

size_t
workq_depth(struct workq *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->todo.len + q->running;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
workq_free(struct workq *q)
{
	void *job;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned int i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	workq_deliver(q);
	while ((job = workq_ring_pop(&q->todo)) != NULL)
		q->done(job, 1, q->arg);
	if (q->ev != NULL)
		event_free(q->ev);
	close(q->efd);
	free(q->threads);
	free(q->todo.items);
	free(q->finished.items);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}
