/* The intake's connections and their deadlines; see api_conn.h. */
#include "api_conn.h"

void
api_conns_init(struct api_conns *t, int64_t request_ms, int64_t idle_ms)
{
	TAILQ_INIT(&t->reading);
	TAILQ_INIT(&t->idle);
	t->open = 0;
	t->request_ms = request_ms;
	t->idle_ms = idle_ms;
}

/* Off whichever list c is on. */
static void
api_conn_unlist(struct api_conns *t, struct api_conn *c)
{
	if (c->phase == API_CONN_READING)
		TAILQ_REMOVE(&t->reading, c, link);
	else if (c->phase == API_CONN_IDLE)
		TAILQ_REMOVE(&t->idle, c, link);
}

void
api_conns_add(struct api_conns *t, struct api_conn *c, int64_t now)
{
	c->phase = API_CONN_READING;
	c->deadline_ms = now + t->request_ms;
	TAILQ_INSERT_TAIL(&t->reading, c, link);
	t->open++;
}

void
api_conns_remove(struct api_conns *t, struct api_conn *c)
{
	api_conn_unlist(t, c);
	c->phase = API_CONN_CUT;
	t->open--;
}

void
api_conn_reading(struct api_conns *t, struct api_conn *c, int64_t now)
{
	if (c->phase != API_CONN_IDLE && c->phase != API_CONN_BUSY)
		return;
	api_conn_unlist(t, c);
	c->phase = API_CONN_READING;
	c->deadline_ms = now + t->request_ms;
	TAILQ_INSERT_TAIL(&t->reading, c, link);
}

void
api_conn_busy(struct api_conns *t, struct api_conn *c)
{
	if (c->phase == API_CONN_CUT)
		return;
	api_conn_unlist(t, c);
	c->phase = API_CONN_BUSY;
}

void
api_conn_idle(struct api_conns *t, struct api_conn *c, int64_t now)
{
	if (c->phase == API_CONN_CUT)
		return;
	api_conn_unlist(t, c);
	c->phase = API_CONN_IDLE;
	c->deadline_ms = now + t->idle_ms;
	TAILQ_INSERT_TAIL(&t->idle, c, link);
}

static struct api_conn *
api_conn_cut(struct api_conns *t, struct api_conn *c)
{
	api_conn_unlist(t, c);
	c->phase = API_CONN_CUT;
	return c;
}

void
api_conns_cut(struct api_conns *t, struct api_conn *c)
{
	api_conn_cut(t, c);
}

struct api_conn *
api_conns_expired(struct api_conns *t, int64_t now, bool *idle_out)
{
	struct api_conn *r = TAILQ_FIRST(&t->reading);
	struct api_conn *i = TAILQ_FIRST(&t->idle);

	if (r != NULL && r->deadline_ms <= now &&
	    (i == NULL || r->deadline_ms <= i->deadline_ms)) {
		*idle_out = false;
		return api_conn_cut(t, r);
	}
	if (i != NULL && i->deadline_ms <= now) {
		*idle_out = true;
		return api_conn_cut(t, i);
	}
	return NULL;
}

struct api_conn *
api_conns_victim(struct api_conns *t)
{
	struct api_conn *c;

	/* A client still sending its request after its peers' finished is
	 * the likeliest to be slow on purpose; an idle one loses nothing
	 * but a reconnect (nginx reuses idle keep-alive connections the
	 * same way when it runs out: ngx_drain_connections). */
	if ((c = TAILQ_FIRST(&t->reading)) != NULL ||
	    (c = TAILQ_FIRST(&t->idle)) != NULL)
		return api_conn_cut(t, c);
	return NULL;
}

int64_t
api_conns_next_deadline(const struct api_conns *t)
{
	const struct api_conn *r = TAILQ_FIRST(&t->reading);
	const struct api_conn *i = TAILQ_FIRST(&t->idle);

	if (r == NULL && i == NULL)
		return -1;
	if (r == NULL)
		return i->deadline_ms;
	if (i == NULL)
		return r->deadline_ms;
	return r->deadline_ms < i->deadline_ms ? r->deadline_ms :
	    i->deadline_ms;
}
