/* libevent set-up, signals and limits; see evloop.h. */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "evloop.h"
#include "xmalloc.h"

struct evloop_signals {
	struct event	*term;
	struct event	*intr;
	evloop_stop_fn	*stop;
	void		*arg;
};

struct event_base *
evloop_new(char err[ERR_LEN])
{
	struct event_base *base = event_base_new();

	if (base == NULL) {
		err_set(err, "event_base_new failed");
		return NULL;
	}
	return base;
}

static void
evloop_on_signal(evutil_socket_t signo, short what, void *arg)
{
	struct evloop_signals *s = arg;

	(void)what;
	s->stop((int)signo, s->arg);
}

struct evloop_signals *
evloop_signals_add(struct event_base *base, evloop_stop_fn *stop, void *arg)
{
	struct evloop_signals *s = xcalloc(1, sizeof(*s));

	signal(SIGPIPE, SIG_IGN);
	s->stop = stop;
	s->arg = arg;
	s->term = evsignal_new(base, SIGTERM, evloop_on_signal, s);
	s->intr = evsignal_new(base, SIGINT, evloop_on_signal, s);
	if (s->term == NULL || s->intr == NULL ||
	    event_add(s->term, NULL) < 0 || event_add(s->intr, NULL) < 0)
		abort();	/* only fails on OOM or a broken base */
	return s;
}

void
evloop_signals_free(struct evloop_signals *s)
{
	if (s == NULL)
		return;
	event_free(s->term);
	event_free(s->intr);
	free(s);
}

uint64_t
evloop_raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
		    want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}
