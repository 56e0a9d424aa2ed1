# One non-recursive Makefile for the whole stack.
#
#   make                 build every program into build/bin/
#   make test            unit tests, unit tests under ASan+UBSan, fuzz
#                        replay (and a short libFuzzer run with clang), e2e
#   make unit | san | fuzz-smoke | e2e | docker-test   the parts of make test
#   make package-test    the Debian packages built, linted, installed,
#                        removed and purged (part of make test)
#   make fuzz            longer libFuzzer runs (FUZZ_SECONDS each)
#   make bench           benchmarks under tests/bench/
#   make alerts-test     the Prometheus rules' unit tests and the metric
#                        names of the rules and the Grafana dashboard
#   make plots           PNG charts of the benchmarks' committed logs
#                        (BENCH=1: run the benchmarks first)
#   make install PREFIX=/usr/local DESTDIR=
#
# The sanitizer build is the same Makefile with BUILD=build-san and
# SANITIZE=1, so both builds share every rule.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
DOVECOT_CONFDIR ?= $(SYSCONFDIR)/dovecot
DOCDIR ?= $(PREFIX)/share/doc/chatmail-push

BUILD ?= build
CC ?= cc
PYTHON ?= /usr/bin/python3
FUZZ_SECONDS ?= 60

# Warnings live apart from CFLAGS so that `make CFLAGS=...` cannot drop them.
WARNINGS = -std=c17 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
	-Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS ?= -O2 -g
ifeq ($(SANITIZE),1)
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
CFLAGS := -O1 -g
endif
CPPFLAGS += -D_GNU_SOURCE -Icommon -MMD -MP

pc = $(shell pkg-config --cflags $(1))
pl = $(shell pkg-config --libs $(1))

COMMON_PKGS = sqlite3 libevent libevent_pthreads libmicrohttpd libssl libcrypto \
	libnghttp2
COMMON_CFLAGS := $(call pc,$(COMMON_PKGS))
COMMON_LIBS := $(call pl,$(COMMON_PKGS)) -lpthread -lm

ALL_CFLAGS = $(WARNINGS) $(CFLAGS) $(SANFLAGS) $(COMMON_CFLAGS) $(CPPFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

# ---- sources -------------------------------------------------------------

# common/ holds what at least two daemons use.
COMMON_SRCS = common/log.c common/cli.c common/db.c common/clock.c \
	common/metrics.c common/metrics_http.c common/evloop.c common/xmalloc.c \
	common/err.c common/buf.c common/relay_db.c common/db_checkpoint.c \
	common/backoff.c common/unixsock.c common/base64.c \
	common/httpc.c common/cliopt.c common/log_limit.c \
	common/accept_pause.c common/ini.c common/chatmail_ini.c
DICTD_LIB_SRCS = metadata-dictd/dict_proto.c metadata-dictd/dict_store.c \
	metadata-dictd/dict_cmd.c metadata-dictd/dict_conn.c metadata-dictd/dict_key.c \
	metadata-dictd/dict_server.c metadata-dictd/dict_vendor.c \
	metadata-dictd/dict_turn.c metadata-dictd/chatmaild_parse.c \
	metadata-dictd/chatmaild_import.c metadata-dictd/tabesc.c \
	metadata-dictd/dict_array.c metadata-dictd/dict_txn.c \
	metadata-dictd/dict_commit.c metadata-dictd/dict_stats.c
DICTD_SRCS = metadata-dictd/main.c $(DICTD_LIB_SRCS)
NOTIFIERD_LIB_SRCS = notifierd/queue.c \
	notifierd/breaker.c notifierd/notifier.c
# proxyd is in rooms (docs/architecture.md "Source layout"): its library
# is every file of every room but main.c, and its code sees every room's
# headers.
PROXYD_SRCS := $(wildcard proxyd/*.c proxyd/*/*.c proxyd/*/*/*.c)
PROXYD_LIB_SRCS = $(filter-out proxyd/main.c,$(PROXYD_SRCS))
PROXYD_INC := $(patsubst %/,-I%,$(sort $(dir $(PROXYD_SRCS))))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON = $(BUILD)/libcommon.a
LIBDICTD = $(BUILD)/libdictd.a
LIBNOTIFIERD = $(BUILD)/libnotifierd.a
LIBPROXYD = $(BUILD)/libproxyd.a
PROGRAMS = $(BUILD)/bin/metadata-dictd $(BUILD)/bin/notifierd \
	$(BUILD)/bin/proxyd
BENCH_PROGRAMS = $(BUILD)/bin/dict-load $(BUILD)/bin/notify-sink \
	$(BUILD)/bin/http-flood $(BUILD)/bin/notify-flood \
	$(BUILD)/bin/openpgp-speed $(BUILD)/bin/debounce-mem \
	$(BUILD)/bin/apns-sink

UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,\
	$(wildcard tests/unit/common/test_*.c tests/unit/metadata-dictd/test_*.c \
	tests/unit/notifierd/test_*.c tests/unit/proxyd/test_*.c))
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all test unit unit-run testdata-check san fuzz fuzz-smoke fuzz-replay e2e e2e-san docker-test bench \
	install clean deps
all: $(PROGRAMS) $(BENCH_PROGRAMS)

# Tests and fuzz drivers see the headers of the daemon they test.
$(BUILD)/obj/tests/unit/%.o: CPPFLAGS += -Itests/unit
$(BUILD)/obj/tests/unit/metadata-dictd/%.o: CPPFLAGS += -Imetadata-dictd
$(BUILD)/obj/tests/unit/notifierd/%.o: CPPFLAGS += -Inotifierd
$(BUILD)/obj/tests/unit/proxyd/%.o: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/fuzz/replay_openpgp: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/fuzz/replay_token: CPPFLAGS += $(PROXYD_INC)
build-fuzz/openpgp build-fuzz/token: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/fuzz/replay_fcm_%: CPPFLAGS += $(PROXYD_INC)
build-fuzz/fcm_%: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/fuzz/replay_dict_%: CPPFLAGS += -Imetadata-dictd
build-fuzz/dict_%: CPPFLAGS += -Imetadata-dictd
$(BUILD)/fuzz/replay_chatmaild_%: CPPFLAGS += -Imetadata-dictd
build-fuzz/chatmaild_%: CPPFLAGS += -Imetadata-dictd
$(BUILD)/fuzz/replay_api_%: CPPFLAGS += $(PROXYD_INC)
build-fuzz/api_%: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/fuzz/replay_redis_%: CPPFLAGS += $(PROXYD_INC)
build-fuzz/redis_%: CPPFLAGS += $(PROXYD_INC)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBDICTD): $(call obj,$(DICTD_LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/metadata-dictd: $(call obj,metadata-dictd/main.c) $(LIBDICTD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(JANSSON_LIBS) $(COMMON_LIBS)

$(LIBNOTIFIERD): $(call obj,$(NOTIFIERD_LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBPROXYD): $(call obj,$(PROXYD_LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/proxyd: $(call obj,proxyd/main.c) $(LIBPROXYD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ZLIB_LIBS) $(JANSSON_LIBS) \
		$(CURL_LIBS) $(HIREDIS_LIBS) $(COMMON_LIBS)

ZLIB_LIBS := $(call pl,zlib)
# The shared state (--redis): hiredis's asynchronous client on libevent.
HIREDIS_LIBS := $(call pl,hiredis)
JANSSON_LIBS := $(call pl,jansson)
# metadata-dictd reads JSON: the app versions file, chatmaild's files.
$(BUILD)/obj/metadata-dictd/%.o: CPPFLAGS += $(call pc,jansson)
$(BUILD)/obj/proxyd/%.o: CPPFLAGS += $(PROXYD_INC) \
	$(call pc,jansson)
CURL_LIBS := $(call pl,libcurl)
$(BUILD)/obj/notifierd/%.o: CPPFLAGS += $(call pc,libcurl)
$(BUILD)/obj/common/httpc.o $(BUILD)/obj/proxyd/transport/h2client.o: CPPFLAGS += \
	$(call pc,libcurl)
$(BUILD)/bin/notifierd: $(call obj,notifierd/main.c) $(LIBNOTIFIERD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CURL_LIBS) $(COMMON_LIBS)

$(BUILD)/bin/dict-load: $(call obj,tests/bench/dict_load.c \
    tests/bench/bench_util.c) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(COMMON_LIBS)

# The notifierd bench's sink and baseline client share no code with the
# daemon: libc and zlib, libc and libcurl.
$(BUILD)/obj/tests/bench/notify_sink.o: CPPFLAGS += $(call pc,zlib)
$(BUILD)/bin/notify-sink: $(call obj,tests/bench/notify_sink.c \
    tests/bench/bench_util.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pl,zlib)

$(BUILD)/obj/tests/bench/http_flood.o: CPPFLAGS += $(call pc,libcurl)
$(BUILD)/bin/http-flood: $(call obj,tests/bench/http_flood.c \
    tests/bench/bench_util.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pl,libcurl)

# The proxyd bench's load generator: libc only, a few us of CPU per
# request where http-flood's libcurl costs about 30 (the generator shares
# the machine's CPUs with proxyd).
$(BUILD)/bin/notify-flood: $(call obj,tests/bench/notify_flood.c \
    tests/bench/bench_util.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^

$(BUILD)/obj/tests/bench/openpgp_speed.o: CPPFLAGS += $(PROXYD_INC)
$(BUILD)/bin/openpgp-speed: $(call obj,tests/bench/openpgp_speed.c) $(LIBPROXYD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ZLIB_LIBS) $(JANSSON_LIBS) \
		$(CURL_LIBS) $(COMMON_LIBS)

$(BUILD)/obj/tests/bench/debounce_mem.o: CPPFLAGS += -Iproxyd/state -Iproxyd/promise
$(BUILD)/bin/debounce-mem: $(call obj,tests/bench/debounce_mem.c \
    proxyd/state/debounce.c proxyd/promise/siphash.c) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(COMMON_LIBS)

# The proxyd bench's fake APNs shares no code with proxyd: OpenSSL and
# libnghttp2 directly, and the benchmarks' own helpers (bench_util.c).
$(BUILD)/obj/tests/bench/apns_sink.o: CPPFLAGS += $(call pc,libnghttp2 openssl)
$(BUILD)/bin/apns-sink: $(call obj,tests/bench/apns_sink.c \
    tests/bench/bench_util.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pl,libnghttp2 openssl)

# ---- unit tests (cmocka) -------------------------------------------------
# tests/unit/<dir>/test_x.c links testutil, the library of <dir> and
# libcommon, nothing else: a change to one daemon relinks only its own
# tests, and a test cannot lean on another daemon's code. The archives
# give each test only the objects it references (a test may define a
# function of them itself, to stand in for it: test_notifier.c's HTTP
# client and clock).

CMOCKA_LIBS := $(call pl,cmocka)
UNIT_LIBS = $(CMOCKA_LIBS) $(CURL_LIBS) $(ZLIB_LIBS) $(JANSSON_LIBS) \
	$(HIREDIS_LIBS) $(COMMON_LIBS)
TESTUTIL_OBJ = $(BUILD)/obj/tests/unit/testutil.o

$(BUILD)/tests/common/%: $(BUILD)/obj/tests/unit/common/%.o $(TESTUTIL_OBJ) \
    $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(UNIT_LIBS)

$(BUILD)/tests/metadata-dictd/%: $(BUILD)/obj/tests/unit/metadata-dictd/%.o \
    $(TESTUTIL_OBJ) $(LIBDICTD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(UNIT_LIBS)

$(BUILD)/tests/notifierd/%: $(BUILD)/obj/tests/unit/notifierd/%.o \
    $(TESTUTIL_OBJ) $(LIBNOTIFIERD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(UNIT_LIBS)

# proxyd's tests (40 objects in rooms) go one step further: each relinks
# only when an object it contains changes. libproxyd.a is order-only; the
# link lists the members it took from it (ld -t -t: "(archive)member"),
# and test_x.link.d beside the test's object makes their objects the
# test's prerequisites, each with an empty rule as -MP does for headers
# (a source removed since relinks the test instead of stopping make).
# Nothing listed (a linker that prints another format): the whole
# archive is the prerequisite.
PROXYD_LIB_OBJS = $(call obj,$(PROXYD_LIB_SRCS))
$(BUILD)/tests/proxyd/%: $(BUILD)/obj/tests/unit/proxyd/%.o $(TESTUTIL_OBJ) \
    $(LIBCOMMON) | $(LIBPROXYD)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -Wl,-t,-t -o $@ $< $(TESTUTIL_OBJ) $(LIBPROXYD) \
		$(LIBCOMMON) $(UNIT_LIBS) >$@.trace
	@deps=; for m in $$(sed -n 's|^($(LIBPROXYD))||p' $@.trace); do \
		for o in $(PROXYD_LIB_OBJS); do case $$o in */$$m) \
			deps="$$deps $$o";; esac; done; done; \
	{ echo "$@: $${deps:-$(LIBPROXYD)}"; for o in $$deps; do \
		echo "$$o:"; done; } >$(BUILD)/obj/tests/unit/proxyd/$*.link.d; \
	rm -f $@.trace

unit-run: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; \
		TESTDATA=$(CURDIR)/tests/data $$t; done

unit: unit-run

san:
	$(MAKE) BUILD=build-san SANITIZE=1 unit-run fuzz-replay \
		build-san/bin/metadata-dictd build-san/bin/notifierd \
		build-san/bin/proxyd

# ---- fuzzing ---------------------------------------------------------------
# fuzz-replay runs every corpus file through each target with gcc+ASan (a
# tiny main in tests/fuzz/replay.c); fuzz-smoke adds a short libFuzzer run
# when clang is there; fuzz runs libFuzzer for FUZZ_SECONDS per target.

FUZZ_LIB_dict_proto = $(DICTD_LIB_SRCS) $(COMMON_SRCS)
FUZZ_LIB_chatmaild_parse = metadata-dictd/chatmaild_parse.c \
	metadata-dictd/dict_turn.c metadata-dictd/dict_array.c \
	common/unixsock.c common/xmalloc.c common/buf.c common/err.c
FUZZ_LIB_openpgp = $(PROXYD_LIB_SRCS) $(COMMON_SRCS)
FUZZ_LIB_token = $(PROXYD_LIB_SRCS) $(COMMON_SRCS)
FUZZ_LIB_fcm_key = proxyd/providers/fcm/fcm_key.c \
	proxyd/providers/fcm/fcm_auth.c proxyd/providers/provider.c \
	proxyd/providers/jwt.c common/base64.c common/buf.c common/err.c \
	common/xmalloc.c common/backoff.c
FUZZ_LIB_fcm_answer = $(FUZZ_LIB_fcm_key) proxyd/providers/fcm/fcm.c \
	proxyd/providers/ubports/ubports.c
FUZZ_LIB_api_headers = proxyd/api/api_headers.c
FUZZ_LIB_api_addr = proxyd/api/api_addr.c common/err.c
FUZZ_LIB_redis_addr = proxyd/redis/redis_addr.c common/err.c
FUZZ_LIB_ini = common/ini.c common/chatmail_ini.c common/cli.c \
	common/err.c common/xmalloc.c

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIBDICTD) \
    $(LIBPROXYD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c \
		$(LIBDICTD) $(LIBPROXYD) $(LIBCOMMON) $(ZLIB_LIBS) \
		$(JANSSON_LIBS) $(CURL_LIBS) $(HIREDIS_LIBS) $(COMMON_LIBS)

fuzz-replay: $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== replay $$t"; \
		$(BUILD)/fuzz/replay_$$t tests/fuzz/corpus/$$t; done

# Rebuilt when a source it compiles changes, not only its own file.
.SECONDEXPANSION:
build-fuzz/%: tests/fuzz/fuzz_%.c $$(FUZZ_LIB_$$*)
	@mkdir -p build-fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
		$(COMMON_CFLAGS) $(call pc,libcurl jansson) -o $@ $< \
		$(FUZZ_LIB_$*) $(ZLIB_LIBS) $(JANSSON_LIBS) $(CURL_LIBS) \
		$(HIREDIS_LIBS) $(COMMON_LIBS)

fuzz-smoke:
	@if command -v clang >/dev/null; then \
		$(MAKE) FUZZ_SECONDS=5 fuzz; \
	else echo "fuzz-smoke: clang not found, skipped"; fi

fuzz: $(patsubst %,build-fuzz/%,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus-$$t; \
		echo "== libFuzzer $$t for $(FUZZ_SECONDS)s"; \
		build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
			-print_final_stats=0 build-fuzz/corpus-$$t \
			tests/fuzz/corpus/$$t 2>build-fuzz/$$t.log || \
			{ tail -50 build-fuzz/$$t.log; exit 1; }; \
		grep -E '^#[0-9]+.*DONE' build-fuzz/$$t.log || true; done

# ---- end to end and benchmarks --------------------------------------------

e2e: all
	$(PYTHON) -m pytest -q tests/e2e

# The same suite against the ASan+UBSan daemons (built by `make san`): a
# sanitizer report makes a daemon exit non-zero, which fails its test.
e2e-san:
	$(MAKE) BUILD=build-san SANITIZE=1 build-san/bin/metadata-dictd \
		build-san/bin/notifierd build-san/bin/proxyd
	PUSHSTACK_BIN=$(CURDIR)/build-san/bin $(PYTHON) -m pytest -q \
		-m 'not not_again_under_san' tests/e2e

# The OpenPGP test data: the committed files pass the two decoders that
# are not the one under test (OpenPGP.js, the RFC 9580 Python decoder),
# and the generator still makes a set that all three decoders agree on.
TESTDATA_GEN = tests/data/openpgp/generate
testdata-check: $(BUILD)/tests/proxyd/test_openpgp
	test -d $(TESTDATA_GEN)/node_modules/openpgp || \
		(cd $(TESTDATA_GEN) && npm ci --no-audit --no-fund)
	node $(TESTDATA_GEN)/verify.mjs tests/data/openpgp
	$(PYTHON) $(TESTDATA_GEN)/rfc9580_decode.py tests/data/openpgp
	rm -rf $(BUILD)/testdata-regen
	C_TEST=$(CURDIR)/$(BUILD)/tests/proxyd/test_openpgp \
		$(TESTDATA_GEN)/make.sh $(BUILD)/testdata-regen \
		>$(BUILD)/testdata-regen.log 2>&1 || \
		{ tail -40 $(BUILD)/testdata-regen.log; exit 1; }
	@echo "testdata-check: committed data and a fresh regeneration agree"

# The images from the Dockerfile and compose.yaml's topology, in a Docker
# engine of its own (scripts/docker-test.sh, tests/docker/).
docker-test:
	scripts/docker-test.sh

# The Debian packages (debian/): built in a temporary copy of the tree,
# lintian, installed, checked, removed and purged
# (tests/packaging/test-packages.sh; root, Debian 12; about 30 s, plus
# installing debhelper and lintian the first time).
.PHONY: package-test
package-test:
	tests/packaging/test-packages.sh

bench: all
	tests/bench/run-dictd-bench.sh $(BUILD)/bin
	tests/bench/run-notifierd-bench.sh $(BUILD)/bin
	tests/bench/run-proxyd-bench.sh $(BUILD)/bin

# proxyd with its state in Redis (needs redis-server; tests/bench/README.md).
.PHONY: bench-redis
bench-redis: all
	tests/bench/run-proxyd-redis-bench.sh $(BUILD)/bin

# Charts of the benchmarks (docs/plots/*.png, shown in README.md) from the
# committed logs of one run of each (docs/plots/data/*.log): a few seconds,
# no benchmark run. bench-logs (or make plots BENCH=1) runs the four bench
# scripts one after the other to refresh the logs first (about 4 minutes;
# needs what bench and bench-redis need). tests/bench/plots.py says more.
.PHONY: plots bench-logs
plots: $(if $(filter 1,$(BENCH)),bench-logs)
	$(PYTHON) tests/bench/plots.py docs/plots/data docs/plots

bench-logs: all
	$(PYTHON) tests/bench/plots.py --run-benches $(BUILD)/bin docs/plots/data

# deploy/prometheus's alert rules pass promtool's check and their unit
# tests (tests/prometheus/), and every metric the rules and
# deploy/grafana's dashboard use is one a daemon registers (read from the
# sources, and checked against the three daemons' /metrics).
PROMTOOL ?= promtool
.PHONY: alerts-test
alerts-test: $(BUILD)/bin/metadata-dictd $(BUILD)/bin/notifierd \
    $(BUILD)/bin/proxyd
	$(PROMTOOL) check rules deploy/prometheus/chatmail-push.rules.yml
	$(PROMTOOL) test rules tests/prometheus/chatmail-push.rules.test.yml
	$(PYTHON) tests/prometheus/check_names.py --scrape $(BUILD)/bin

# Build in parallel (make -j2 test), run one suite after the other, but
# for the two end-to-end runs (the sanitizer build's and the plain one),
# which wait on sockets and timers far more than they compute: side by
# side they take the time of one (each one's output kept together).
test:
	$(MAKE) all
	$(MAKE) unit-run
	$(MAKE) testdata-check
	$(MAKE) alerts-test
	$(MAKE) plots
	$(MAKE) san
	$(MAKE) fuzz-smoke
	$(MAKE) -j2 -Otarget e2e-san e2e
	$(MAKE) package-test
	$(MAKE) docker-test

deps:
	scripts/install-deps.sh

# ---- install ---------------------------------------------------------------
# The binaries, the systemd units (with their paths filled in), the
# sysusers.d entry of the relay daemons' user, the Dovecot drop-in and Lua
# script where Dovecot reads them (the drop-in names the script's
# installed path), and the operator guides. Nothing is started or enabled:
# docs/operator-relay.md and docs/operator-proxy.md say what to run.

OPERATOR_DOCS = docs/operator-relay.md docs/operator-proxy.md \
	docs/metadata-dictd.md docs/notifierd.md docs/proxyd.md \
	docs/debounce.md docs/openpgp.md docs/architecture.md \
	docs/push-providers.md docs/dovecot-dict-protocol.md \
	docs/scaling.md docs/threat-model.md
UNIT_SED = -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'

install: $(PROGRAMS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOVECOT_CONFDIR)/conf.d \
		$(DESTDIR)$(DOCDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	for u in systemd/*.service; do \
		sed $(UNIT_SED) $$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 644 systemd/chatmail-push.sysusers \
		$(DESTDIR)$(SYSUSERSDIR)/chatmail-push.conf
	sed 's|/etc/dovecot/push.lua|$(DOVECOT_CONFDIR)/push.lua|g' \
		dovecot-conf/95-chatmail-push.conf \
		>$(DESTDIR)$(DOVECOT_CONFDIR)/conf.d/95-chatmail-push.conf
	chmod 644 $(DESTDIR)$(DOVECOT_CONFDIR)/conf.d/95-chatmail-push.conf
	install -m 644 dovecot-conf/push.lua $(DESTDIR)$(DOVECOT_CONFDIR)/
	install -m 644 $(OPERATOR_DOCS) $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 644 deploy/haproxy/haproxy.cfg \
		deploy/prometheus/chatmail-push.rules.yml \
		deploy/grafana/chatmail-push.json $(DESTDIR)$(DOCDIR)/examples/

clean:
	rm -rf build build-san build-fuzz build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
