/*
 * --import-chatmaild VMAIL_DIR: moving a relay from chatmail relay's
 * Python metadata service (chatmaild) to metadata-dictd. Reads the device
 * tokens of every <VMAIL_DIR>/<addr>/metadata.json and the pushes still
 * waiting in <VMAIL_DIR>/pending_notifications (formats in
 * chatmaild_parse.c) and writes them through dict_store, so the rows are
 * those the daemon itself keeps. It may run while metadata-dictd runs:
 * it writes in short transactions, as a second writer of the relay
 * database must (see common/db.h).
 *
 * What is kept, and why:
 *  - A token's time is its metadata.json timestamp; a token of the old
 *    list form gets the import's time, which is what chatmaild itself
 *    does when it reads that form. Tokens older than --token-ttl (90 days
 *    by default, chatmaild's own limit) or more than 60 s in the future
 *    (chatmaild drops those too) are left out and counted.
 *  - Imported tokens have no mailbox ('' in tokens.mailbox): they answer
 *    on any mailbox, as chatmaild's did, until the device sets its token
 *    again through Dovecot.
 *  - A queue file becomes one job for its token, created at its start
 *    time, so notifierd's deadline counts from the mail as chatmaild's
 *    did; files already past chatmaild's 5 h deadline are left out.
 *
 * Running it twice changes nothing: a token already there is kept (its
 * time only ever moves forward), and a queue file whose token already has
 * a waiting job adds none (the coalescing new mail gets). Once notifierd
 * has sent those jobs, a second run would queue them again: import
 * before starting notifierd, with chatmaild stopped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "dictd.h"
#include "log.h"
#include "xmalloc.h"

#define CHATMAILD_PENDING_DIR		"pending_notifications"
#define CHATMAILD_METADATA_FILE		"metadata.json"
/* chatmaild's Notifier.DROP_DEADLINE: pushes older than that are given
 * up, by chatmaild and by us. */
#define CHATMAILD_DROP_DEADLINE_MS	(5LL * 3600 * 1000)
/* chatmaild's _is_valid_token_timestamp() allows 60 s of clock skew. */
#define CHATMAILD_FUTURE_SLACK_MS	(60LL * 1000)
/* Users or queue files per transaction: short enough for a running
 * metadata-dictd's commits to slip in between. */
#define CHATMAILD_IMPORT_BATCH		256
/* How much of a file name goes into a log line. */
#define CHATMAILD_LOG_NAME_MAX		200

struct chatmaild_import {
	struct dict_store		*store;
	int64_t				 now_ms;
	int64_t				 token_ttl_ms;
	struct chatmaild_import_report	*r;
	unsigned int			 in_batch;	/* items in it */
	bool				 batch_open;
};

static const char *const chatmaild_skip_names[CHATMAILD_SKIP_COUNT] = {
	[CHATMAILD_SKIP_BAD_ADDRESS] = "bad_address",
	[CHATMAILD_SKIP_WRONG_TYPE] = "wrong_type",
	[CHATMAILD_SKIP_TOO_LARGE] = "too_large",
	[CHATMAILD_SKIP_UNREADABLE] = "unreadable",
	[CHATMAILD_SKIP_BAD_FORMAT] = "bad_format",
	[CHATMAILD_SKIP_PARTIAL] = "partial",
	[CHATMAILD_SKIP_INVALID_TOKEN] = "invalid_token",
	[CHATMAILD_SKIP_EXPIRED] = "expired",
	[CHATMAILD_SKIP_UNKNOWN_TOKEN] = "unknown_token",
};

const char *
chatmaild_import_skip_name(enum chatmaild_skip s)
{
	return s < CHATMAILD_SKIP_COUNT ? chatmaild_skip_names[s] : "?";
}

/* Count and log one file left out. dir and name come from the file
 * system: escaped, so that a crafted name cannot forge log lines. */
static void
chatmaild_import_skip(struct chatmaild_import *im, enum chatmaild_skip why,
    const char *dir, const char *name, const char *detail)
{
	char ename[CHATMAILD_LOG_NAME_MAX * 4 + 4];

	log_escape(name, strlen(name), CHATMAILD_LOG_NAME_MAX, ename);
	im->r->skipped[why]++;
	log_warnx("chatmaild import skipped file=%s%s%s reason=%s: %s",
	    dir != NULL ? dir : "", dir != NULL ? "/" : "", ename,
	    chatmaild_import_skip_name(why), detail);
}

/* The bytes of a regular file (caller frees) of at most max bytes,
 * opened under dirfd without following a symlink: 0, or the reason it
 * was left out (-1 when the file does not exist) with err. */
static int
chatmaild_import_read(int dirfd, const char *name, size_t max,
    char **data_out, size_t *len_out, enum chatmaild_skip *why_out,
    char err[ERR_LEN])
{
	struct stat st;
	size_t len = 0;
	ssize_t n;
	char *data;
	int fd;

	/* O_NONBLOCK: a FIFO must not hang the import. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -1;
		*why_out = errno == ELOOP ? CHATMAILD_SKIP_WRONG_TYPE :
		    CHATMAILD_SKIP_UNREADABLE;
		err_set(err, "%s", errno == ELOOP ? "a symbolic link" :
		    strerror(errno));
		return 1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why_out = CHATMAILD_SKIP_WRONG_TYPE;
		err_set(err, "not a regular file");
		close(fd);
		return 1;
	}
	if ((uint64_t)st.st_size > max) {
		*why_out = CHATMAILD_SKIP_TOO_LARGE;
		err_set(err, "%lld bytes, at most %zu taken",
		    (long long)st.st_size, max);
		close(fd);
		return 1;
	}
	/* Sized from the file (most are tiny), one byte more than that:
	 * a file that grows meanwhile is skipped, not cut. */
	max = (size_t)st.st_size;
	data = xmalloc(max + 1);
	while (len <= max && (n = read(fd, data + len, max + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why_out = CHATMAILD_SKIP_UNREADABLE;
			err_set(err, "%s", strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len > max) {
		*why_out = CHATMAILD_SKIP_TOO_LARGE;
		err_set(err, "grew past %zu bytes while read", max);
		goto fail;
	}
	close(fd);
	*data_out = data;
	*len_out = len;
	return 0;
fail:
	close(fd);
	free(data);
	return 1;
}

/* Before an item's writes: a batch is open (begun lazily). */
static int
chatmaild_import_batch_open(struct chatmaild_import *im, char err[ERR_LEN])
{
	if (im->batch_open)
		return 0;
	if (dict_store_batch_begin(im->store, err) < 0)
		return -1;
	im->batch_open = true;
	return 0;
}

/* After an item's writes: commit every CHATMAILD_IMPORT_BATCH items. */
static int
chatmaild_import_batch_step(struct chatmaild_import *im, char err[ERR_LEN])
{
	if (++im->in_batch < CHATMAILD_IMPORT_BATCH)
		return 0;
	im->batch_open = false;
	im->in_batch = 0;
	return dict_store_batch_commit(im->store, err);
}

static int
chatmaild_import_batch_end(struct chatmaild_import *im, char err[ERR_LEN])
{
	if (!im->batch_open)
		return 0;
	im->batch_open = false;
	im->in_batch = 0;
	return dict_store_batch_commit(im->store, err);
}

static void
chatmaild_import_token_skip(const char *addr, const struct chatmaild_token *t,
    const char *why)
{
	char digest[LOG_DIGEST_LEN];

	log_digest(t->token, t->len, digest);
	log_warnx("chatmaild import skipped user=%s token=%s: %s", addr,
	    digest, why);
}

/* The tokens of one user; -1 only on a storage failure. */
static int
chatmaild_import_tokens(struct chatmaild_import *im, const char *addr,
    const struct chatmaild_tokens *tokens, char err[ERR_LEN])
{
	struct chatmaild_import_report *r = im->r;
	enum dict_import_result res;
	char why[ERR_LEN];

	for (size_t i = 0; i < tokens->n; i++) {
		const struct chatmaild_token *t = &tokens->v[i];
		int64_t at = im->now_ms;

		if (dict_key_token_check(t->token, t->len, why) < 0) {
			chatmaild_import_token_skip(addr, t, why);
			r->tokens_invalid++;
			continue;
		}
		if (t->ts != CHATMAILD_TS_NONE) {
			at = t->ts * 1000;
			if (at >= im->now_ms + CHATMAILD_FUTURE_SLACK_MS) {
				chatmaild_import_token_skip(addr, t,
				    "timestamp in the future");
				r->tokens_invalid++;
				continue;
			}
			if (at < im->now_ms - im->token_ttl_ms) {
				r->tokens_expired++;
				continue;
			}
		}
		/* A list-form token is refreshed by nothing but its device:
		 * its time is the import's, so a rerun must not move it. */
		if (dict_store_token_import(im->store, addr, t->token, t->len,
		    at, t->ts != CHATMAILD_TS_NONE, &res, err) < 0)
			return -1;
		if (res == DICT_IMPORT_ADDED)
			r->tokens_imported++;
		else if (res == DICT_IMPORT_REFRESHED)
			r->tokens_refreshed++;
		else
			r->tokens_present++;
	}
	return 0;
}

/* One <vmail>/<addr> entry; -1 only on a storage failure. */
static int
chatmaild_import_user(struct chatmaild_import *im, int vfd, const char *addr,
    char err[ERR_LEN])
{
	struct chatmaild_tokens tokens;
	enum chatmaild_skip why;
	char detail[ERR_LEN], path[CHATMAILD_ADDR_MAX_BYTES + 32];
	char *data;
	size_t len;
	int ufd, rc;

	if (chatmaild_parse_addr(addr, strlen(addr), detail) < 0) {
		chatmaild_import_skip(im, CHATMAILD_SKIP_BAD_ADDRESS, NULL,
		    addr, detail);
		return 0;
	}
	ufd = openat(vfd, addr, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (ufd < 0) {
		chatmaild_import_skip(im, errno == ENOTDIR || errno == ELOOP ?
		    CHATMAILD_SKIP_WRONG_TYPE : CHATMAILD_SKIP_UNREADABLE,
		    NULL, addr, errno == ENOTDIR || errno == ELOOP ?
		    "not a directory" : strerror(errno));
		return 0;
	}
	im->r->users++;
	snprintf(path, sizeof(path), "%s/%s", addr, CHATMAILD_METADATA_FILE);
	rc = chatmaild_import_read(ufd, CHATMAILD_METADATA_FILE,
	    CHATMAILD_METADATA_MAX_BYTES, &data, &len, &why, detail);
	close(ufd);
	if (rc < 0)
		return 0;		/* a user who never set a token */
	if (rc > 0) {
		chatmaild_import_skip(im, why, NULL, path, detail);
		return 0;
	}
	rc = chatmaild_parse_metadata(data, len, &tokens, detail);
	free(data);
	if (rc < 0) {
		chatmaild_import_skip(im, CHATMAILD_SKIP_BAD_FORMAT, NULL, path,
		    detail);
		return 0;
	}
	im->r->metadata_files++;
	if (chatmaild_import_batch_open(im, err) < 0) {
		chatmaild_tokens_clear(&tokens);
		return -1;
	}
	rc = chatmaild_import_tokens(im, addr, &tokens, err);
	chatmaild_tokens_clear(&tokens);
	if (rc < 0)
		return -1;
	return chatmaild_import_batch_step(im, err);
}

/* One queue file; -1 only on a storage failure. */
static int
chatmaild_import_pending_file(struct chatmaild_import *im, int pfd,
    const char *name, char err[ERR_LEN])
{
	struct chatmaild_pending p;
	enum dict_import_job_result res;
	enum chatmaild_skip why;
	char detail[ERR_LEN];
	size_t namelen = strlen(name), len;
	int64_t start_ms;
	char *data;
	int rc;

	/* chatmaild writes <uuid>.tmp and renames it: a .tmp left behind
	 * is a write cut short (chatmaild deletes them at start). */
	if (namelen > 4 && strcmp(name + namelen - 4, ".tmp") == 0) {
		chatmaild_import_skip(im, CHATMAILD_SKIP_PARTIAL,
		    CHATMAILD_PENDING_DIR, name, "unfinished write");
		return 0;
	}
	rc = chatmaild_import_read(pfd, name, CHATMAILD_PENDING_MAX_BYTES,
	    &data, &len, &why, detail);
	if (rc < 0)
		return 0;		/* sent and deleted meanwhile */
	if (rc > 0) {
		chatmaild_import_skip(im, why, CHATMAILD_PENDING_DIR, name,
		    detail);
		return 0;
	}
	rc = chatmaild_parse_pending(data, len, &p, detail);
	free(data);
	if (rc < 0) {
		chatmaild_import_skip(im, CHATMAILD_SKIP_BAD_FORMAT,
		    CHATMAILD_PENDING_DIR, name, detail);
		return 0;
	}
	start_ms = p.start_ts * 1000;
	if (dict_key_token_check(p.token, p.token_len, detail) < 0)
		chatmaild_import_skip(im, CHATMAILD_SKIP_INVALID_TOKEN,
		    CHATMAILD_PENDING_DIR, name, detail);
	else if (start_ms >= im->now_ms + CHATMAILD_FUTURE_SLACK_MS)
		chatmaild_import_skip(im, CHATMAILD_SKIP_BAD_FORMAT,
		    CHATMAILD_PENDING_DIR, name, "start time in the future");
	else if (start_ms < im->now_ms - CHATMAILD_DROP_DEADLINE_MS)
		chatmaild_import_skip(im, CHATMAILD_SKIP_EXPIRED,
		    CHATMAILD_PENDING_DIR, name,
		    "older than chatmaild's 5 h deadline");
	else if (chatmaild_import_batch_open(im, err) < 0)
		rc = -1;
	else if (dict_store_queue_import(im->store, p.addr, p.token,
	    p.token_len, start_ms, im->now_ms, &res, err) < 0)
		rc = -1;
	else if (res == DICT_IMPORT_JOB_NO_TOKEN)
		chatmaild_import_skip(im, CHATMAILD_SKIP_UNKNOWN_TOKEN,
		    CHATMAILD_PENDING_DIR, name,
		    "the token is not a valid token of its user");
	else {
		if (res == DICT_IMPORT_JOB_QUEUED)
			im->r->pending_queued++;
		else
			im->r->pending_present++;
		rc = chatmaild_import_batch_step(im, err);
	}
	chatmaild_pending_clear(&p);
	return rc;
}

static int
chatmaild_import_pending(struct chatmaild_import *im, int vfd,
    char err[ERR_LEN])
{
	struct dirent *de;
	DIR *d;
	int pfd, rc = 0;

	pfd = openat(vfd, CHATMAILD_PENDING_DIR, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0 && errno == ENOENT)
		return 0;
	if (pfd < 0 || (d = fdopendir(pfd)) == NULL) {
		err_set(err, "%s: %s", CHATMAILD_PENDING_DIR, strerror(errno));
		if (pfd >= 0)
			close(pfd);
		return -1;
	}
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		rc = chatmaild_import_pending_file(im, dirfd(d), de->d_name,
		    err);
	}
	if (rc == 0 && errno != 0) {
		err_set(err, "%s: %s", CHATMAILD_PENDING_DIR, strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

int
chatmaild_import_run(struct dict_store *store, const char *vmail_dir,
    int64_t now_ms, int64_t token_ttl_ms,
    struct chatmaild_import_report *report, char err[ERR_LEN])
{
	struct chatmaild_import im = {
		.store = store,
		.now_ms = now_ms,
		.token_ttl_ms = token_ttl_ms,
		.r = report,
	};
	struct dirent *de;
	DIR *d;
	int rc = 0;

	memset(report, 0, sizeof(*report));
	if ((d = opendir(vmail_dir)) == NULL) {
		err_set(err, "%s: %s", vmail_dir, strerror(errno));
		return -1;
	}
	/* Every token first, then the queue files that refer to them. */
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		/* Not users: ".", "..", the queue, chatmaild's other files
		 * (a chatmail address always has an @). */
		if (strchr(de->d_name, '@') == NULL)
			continue;
		rc = chatmaild_import_user(&im, dirfd(d), de->d_name, err);
	}
	if (rc == 0 && errno != 0) {
		err_set(err, "%s: %s", vmail_dir, strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = chatmaild_import_batch_end(&im, err);
	if (rc == 0)
		rc = chatmaild_import_pending(&im, dirfd(d), err);
	if (rc == 0)
		rc = chatmaild_import_batch_end(&im, err);
	if (rc < 0)
		dict_store_batch_rollback(store);
	closedir(d);
	return rc;
}

void
chatmaild_import_report_format(const struct chatmaild_import_report *r,
    struct buf *out)
{
	uint64_t skipped = 0;

	for (int i = 0; i < CHATMAILD_SKIP_COUNT; i++)
		skipped += r->skipped[i];
	buf_printf(out, "users=%" PRIu64 " metadata_files=%" PRIu64
	    " tokens_imported=%" PRIu64 " tokens_present=%" PRIu64
	    " tokens_refreshed=%" PRIu64 " tokens_expired=%" PRIu64
	    " tokens_invalid=%" PRIu64 " pending_queued=%" PRIu64
	    " pending_present=%" PRIu64 " files_skipped=%" PRIu64,
	    r->users, r->metadata_files, r->tokens_imported, r->tokens_present,
	    r->tokens_refreshed, r->tokens_expired, r->tokens_invalid,
	    r->pending_queued, r->pending_present, skipped);
	for (int i = 0; i < CHATMAILD_SKIP_COUNT; i++)
		buf_printf(out, " skipped_%s=%" PRIu64,
		    chatmaild_import_skip_name(i), r->skipped[i]);
}

int
chatmaild_import_main(const char *db_path, enum db_sync sync,
    int64_t token_ttl_ms, const char *vmail_dir)
{
	struct chatmaild_import_report report;
	struct dict_store *store;
	struct buf line;
	char err[ERR_LEN];
	int rc;

	if ((store = dict_store_open(db_path, sync, token_ttl_ms,
	    err)) == NULL) {
		log_err("database: %s", err);
		return 1;
	}
	log_info("chatmaild import from=%s db=%s", vmail_dir, db_path);
	rc = chatmaild_import_run(store, vmail_dir, clock_wall_ms(), token_ttl_ms,
	    &report, err);
	dict_store_close(store);
	buf_init(&line);
	chatmaild_import_report_format(&report, &line);
	if (rc < 0) {
		/* The last batch was rolled back: the counts are what was
		 * read, not all of it stored. A rerun picks up from there. */
		log_err("chatmaild import failed: %s (read before: %s)", err,
		    line.data);
		buf_clear(&line);
		return 1;
	}
	log_info("chatmaild import done %s", line.data);
	printf("%s\n", line.data);
	buf_clear(&line);
	return 0;
}
