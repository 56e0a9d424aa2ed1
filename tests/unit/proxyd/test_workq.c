/* Unit tests of proxyd/workq.c: work runs on worker threads, completions
 * come back on the loop thread, a full queue refuses jobs, and freeing
 * the pool cancels what never ran. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>

#include <cmocka.h>
#include <event2/event.h>

#include "workq.h"

#define JOBS	2000

struct job {
	int		 n;
	uint64_t	 result;
	pthread_t	 worker;
};

struct ctx {
	struct event_base	*base;
	struct workq		*q;
	pthread_t		 loop;
	int			 done, cancelled, refused, next;
	struct job		 jobs[JOBS];
	struct event		*feeder;
};

static void
work(void *job, void *arg)
{
	struct job *j = job;
	uint64_t x = (uint64_t)j->n;

	(void)arg;
	for (int i = 0; i < 1000; i++)		/* a little CPU */
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	j->result = x;
	j->worker = pthread_self();
}

static void
done(void *job, int cancelled, void *arg)
{
	struct ctx *c = arg;
	struct job *j = job;

	if (!pthread_equal(pthread_self(), c->loop))
		fail_msg("completion off the loop thread");
	if (cancelled) {
		c->cancelled++;
		return;
	}
	if (pthread_equal(j->worker, c->loop))
		fail_msg("job %d ran on the loop thread", j->n);
	c->done++;
	if (c->done == JOBS)
		event_base_loopbreak(c->base);
}

/* Feed jobs as fast as the queue takes them. */
static void
feed(evutil_socket_t fd, short what, void *arg)
{
	struct ctx *c = arg;

	(void)fd;
	(void)what;
	while (c->next < JOBS) {
		c->jobs[c->next].n = c->next;
		if (workq_push(c->q, &c->jobs[c->next]) < 0) {
			c->refused++;
			return;		/* full: try on the next tick */
		}
		c->next++;
	}
}

static void
test_all_jobs_complete_on_loop(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct timeval tick = { 0, 1000 };
	char err[ERR_LEN];

	(void)state;
	c->base = event_base_new();
	c->loop = pthread_self();
	c->q = workq_new(c->base, 2, 16, work, done, c, err);
	assert_non_null(c->q);
	c->feeder = event_new(c->base, -1, EV_PERSIST, feed, c);
	event_add(c->feeder, &tick);
	event_base_dispatch(c->base);
	assert_int_equal(c->done, JOBS);
	assert_true(c->refused > 0);	/* the bound was hit, not grown */
	for (int i = 0; i < JOBS; i++)
		assert_true(c->jobs[i].result != 0);
	assert_int_equal(workq_depth(c->q), 0);
	workq_free(c->q);
	event_free(c->feeder);
	event_base_free(c->base);
	free(c);
}

static void
test_free_cancels_queued(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	char err[ERR_LEN];
	int pushed = 0;

	(void)state;
	c->base = event_base_new();
	c->loop = pthread_self();
	c->q = workq_new(c->base, 1, 64, work, done, c, err);
	for (int i = 0; i < 64; i++) {
		c->jobs[i].n = i;
		if (workq_push(c->q, &c->jobs[i]) == 0)
			pushed++;
	}
	workq_free(c->q);	/* without running the loop */
	assert_int_equal(c->done + c->cancelled, pushed);
	event_base_free(c->base);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_jobs_complete_on_loop),
		cmocka_unit_test(test_free_cancels_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
