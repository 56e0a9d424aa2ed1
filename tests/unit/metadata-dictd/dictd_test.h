/*
 * What the unit tests of metadata-dictd's chain share (test_dict_cmd,
 * test_dict_conn, test_dict_commit): a scratch store, the counters on a
 * registry of their own, a real group commit, and a command context
 * whose hooks are the test's: commits go to the group commit and wait
 * there until the test flushes it, the clock is the test's (fake_now_ms).
 * Header-only (static inline) so each test binary takes what it uses;
 * include after cmocka.h.
 */
#ifndef DICTD_TEST_H
#define DICTD_TEST_H

#include <string.h>

#include <event2/event.h>

#include "dictd.h"
#include "metrics.h"
#include "testutil.h"

/* A device token's mailbox GUID, as Dovecot sends them. */
#define DT_G		"455d042d2ed60a6b1c36000083ecc375"
#define DT_HELLO	"H3\t2\t0\t\tmetadata"
#define DT_TTL_MS	(90LL * 24 * 3600 * 1000)
/* 2026-12-07, a plausible "now" for stored times. */
#define DT_T0_MS	1796601600000LL

/* How long the fixture's group commit waits for a held write lock. */
#define DT_LOCK_WAIT_MS	5000

/* The tests' clocks (dict_clock_fn has no argument, like clock_wall_ms);
 * fake_mono_ms is the monotonic one dict_commit_flush takes. */
static int64_t fake_now_ms = DT_T0_MS;
static int64_t fake_mono_ms = 1000;

static inline int64_t
fake_clock(void)
{
	return fake_now_ms;
}

struct dt_fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 db_path[TESTUTIL_PATH_LEN];
	struct event_base	*base;
	struct dict_store	*store;
	struct metrics		*metrics;
	struct dict_stats	 stats;
	struct dict_commit	*gc;
	struct dict_vendor	*vendor;
	struct dict_cmd_ctx	 ctx;
	int			 commits;	/* ctx.commit calls */
	int			 read_dones;	/* ctx.read_done calls */
};

static inline void
dt_on_commit(void *arg, struct dict_txn *t, dict_commit_done_fn *done,
    void *done_arg)
{
	struct dt_fixture *f = arg;

	f->commits++;
	dict_commit_enqueue(f->gc, t, done, done_arg);
}

static inline void
dt_on_read_done(void *arg)
{
	struct dt_fixture *f = arg;

	f->read_dones++;
}

/* A fixture with vendor entries from vcfg (NULL: none configured). */
static inline struct dt_fixture *
dt_fixture_new(const char *name, const struct dict_vendor_config *vcfg)
{
	struct dt_fixture *f = calloc(1, sizeof(*f));
	struct dict_vendor_config none;
	char err[ERR_LEN];

	assert_non_null(f);
	memset(&none, 0, sizeof(none));
	fake_now_ms = DT_T0_MS;
	fake_mono_ms = 1000;
	testutil_db_dir(f->dir, name, "relay.db", f->db_path);
	f->store = dict_store_open(f->db_path, DB_SYNC_NORMAL, DT_TTL_MS, err);
	if (f->store == NULL)
		fail_msg("store: %s", err);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->metrics = metrics_new();
	dict_stats_register(&f->stats, f->metrics);
	f->gc = dict_commit_new(f->store, NULL, DT_LOCK_WAIT_MS, &f->stats,
	    err);
	assert_non_null(f->gc);
	f->vendor = dict_vendor_new(vcfg != NULL ? vcfg : &none);
	f->ctx.base = f->base;
	f->ctx.store = f->store;
	f->ctx.vendor = f->vendor;
	f->ctx.stats = &f->stats;
	f->ctx.wall_ms = fake_clock;
	f->ctx.commit = dt_on_commit;
	f->ctx.read_done = dt_on_read_done;
	f->ctx.hook_arg = f;
	return f;
}

static inline void
dt_fixture_free(struct dt_fixture *f)
{
	dict_commit_free(f->gc);
	dict_vendor_free(f->vendor);
	dict_store_close(f->store);
	metrics_free(f->metrics);
	event_base_free(f->base);
	testutil_db_dir_remove(f->dir, f->db_path);
	free(f);
}

/* What the store answers for user's key now: "N" when not found, else
 * the value (a static buffer, for assertions). */
static inline const char *
dt_lookup(struct dt_fixture *f, const char *user, const char *key)
{
	static char out[1024];
	struct buf v;
	char err[ERR_LEN];
	int rc;

	buf_init(&v);
	rc = dict_store_lookup(f->store, user, key, fake_now_ms, &v, err);
	if (rc < 0)
		fail_msg("lookup %s: %s", key, err);
	snprintf(out, sizeof(out), "%s", rc == 0 ? "N" :
	    v.data != NULL ? v.data : "");
	buf_clear(&v);
	dict_store_read_end(f->store);
	return out;
}

#endif
