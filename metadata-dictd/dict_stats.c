/*
 * The daemon's counters, registered in one place so that every series
 * has one name and one help text: the server counts connections, the
 * connections bad input, the commands themselves and what failed inside
 * them, the group commit its commits. Exposed by the OpenMetrics listener
 * (--metrics); docs/metadata-dictd.md lists them.
 */
#include <stdint.h>
#include <stdio.h>

#include "dictd.h"
#include "metrics.h"

void
dict_stats_register(struct dict_stats *st, struct metrics *m)
{
	const char *cmd_help = "Dict protocol commands received";
	const char *commit_help = "Dict transactions committed, by result";
	const char *bad_help = "Connections closed for bad input";
	const char *fail_help = "Failed operations";
	const char *too_large_help = "Transactions failed for a bound on "
	    "their size";
	static const char *const too_large_labels[DICT_TXN_BOUNDS] = {
		[DICT_TXN_OVER_CHANGES] = "limit=\"changes\"",
		[DICT_TXN_OVER_CONN] = "limit=\"connection_bytes\"",
		[DICT_TXN_OVER_TOTAL] = "limit=\"total_bytes\"",
	};
	const struct dict_cmd_def *def;
	char labels[64];

	st->connections = metrics_gauge(m, "dictd_connections_open",
	    "Open dict connections", NULL);
	st->connections_total = metrics_counter(m, "dictd_connections",
	    "Dict connections accepted", NULL);
	/* One series per label of the command table, in its order;
	 * letters that share a label share the series. */
	for (size_t i = 0; (def = dict_cmd_def_at(i)) != NULL; i++) {
		snprintf(labels, sizeof(labels), "command=\"%s\"",
		    def->counter);
		st->commands[def->kind] = metrics_counter_labeled(m,
		    "dictd_commands", cmd_help, labels, SIZE_MAX);
	}
	st->commit_ok = metrics_counter(m, "dictd_commits", commit_help,
	    "result=\"ok\"");
	st->commit_not_found = metrics_counter(m, "dictd_commits",
	    commit_help, "result=\"not_found\"");
	st->commit_failed = metrics_counter(m, "dictd_commits", commit_help,
	    "result=\"failed\"");
	st->group_commits = metrics_counter(m, "dictd_group_commits",
	    "SQLite transactions that carried dict commits", NULL);
	st->token_sets = metrics_counter(m, "dictd_token_sets",
	    "Device tokens set or refreshed", NULL);
	st->tokens = metrics_gauge(m, "dictd_tokens",
	    "Device tokens stored (as of the last sweep)", NULL);
	st->queue_rows = metrics_counter(m, "dictd_queue_rows_inserted",
	    "Notification jobs queued for notifierd", NULL);
	st->err_line_too_long = metrics_counter(m, "dictd_protocol_errors",
	    bad_help, "reason=\"line_too_long\"");
	st->err_parse = metrics_counter(m, "dictd_protocol_errors", bad_help,
	    "reason=\"malformed\"");
	st->err_protocol = metrics_counter(m, "dictd_protocol_errors",
	    bad_help, "reason=\"protocol\"");
	st->err_line_timeout = metrics_counter(m, "dictd_protocol_errors",
	    bad_help, "reason=\"line_timeout\"");
	st->fail_store = metrics_counter(m, "dictd_failures", fail_help,
	    "reason=\"storage\"");
	st->fail_txn = metrics_counter(m, "dictd_failures", fail_help,
	    "reason=\"transaction\"");
	st->fail_turn = metrics_counter(m, "dictd_failures", fail_help,
	    "reason=\"turn\"");
	st->fail_appversions = metrics_counter(m, "dictd_failures", fail_help,
	    "reason=\"appversions\"");
	st->fail_busy = metrics_counter(m, "dictd_failures", fail_help,
	    "reason=\"busy\"");
	/* The bounds, each with its flag (docs/metadata-dictd.md). */
	st->accept_pauses = metrics_counter(m, "dictd_accept_pauses",
	    "Listener paused: accept failed (out of file descriptors)",
	    NULL);
	st->conn_limit_pauses = metrics_counter(m,
	    "dictd_connection_limit_pauses",
	    "Listener paused: --max-connections connections held", NULL);
	for (int b = DICT_TXN_OVER_CHANGES; b < DICT_TXN_BOUNDS; b++)
		st->txn_too_large[b] = metrics_counter(m,
		    "dictd_transactions_too_large", too_large_help,
		    too_large_labels[b]);
	st->txn_bytes = metrics_gauge(m, "dictd_transaction_bytes",
	    "Bytes held by open transactions", NULL);
	st->tokens_evicted = metrics_counter(m, "dictd_tokens_evicted",
	    "Device tokens evicted past --max-tokens-per-user", NULL);
	st->keys_refused = metrics_counter(m, "dictd_keys_refused",
	    "New metadata keys refused past --max-keys-per-user (their "
	    "transaction failed)", NULL);
	st->write_busy = metrics_counter(m, "dictd_write_lock_busy",
	    "Group commits that found the write lock held by another "
	    "process (retried)", NULL);
	/* Not dictd_: common/log_limit.h's, the same name in every
	 * daemon. */
	st->log_suppressed = metrics_counter(m, "log_lines_suppressed",
	    "Log lines dropped by rate limits", NULL);
}
