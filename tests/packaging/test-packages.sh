#!/bin/bash
# The Debian packages (debian/), from build to purge: builds
# chatmail-push-relay and chatmail-push-proxy with dpkg-buildpackage in a
# temporary copy of the tree (the repository gets no build output), runs
# lintian on them, installs them with dpkg -i and checks what they put
# where (binaries, units, the Dovecot drop-in, the guides, the
# chatmail-push user, systemd-analyze verify, enabled but not started),
# then removes them (state kept) and purges them (state gone, nothing of
# theirs left).
#
# As root on Debian 12: `make package-test`. Installs what is missing to
# build (the Build-Depends) and lintian; apt-get update only when apt
# cannot find them. Otherwise it leaves the machine as it found it, on
# failure too: the packages purged, the state and the chatmail-push user
# it made removed, the temporary directory deleted
# (PACKAGE_TEST_KEEP=1 keeps that one: the .debs and the logs).
#
# It refuses to run where the packages' files or state already exist (an
# installed relay or proxy): it would overwrite and then delete them.
#
# The lists (units, binaries, paths) are split on purpose:
# shellcheck disable=SC2086
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
START=$SECONDS
RELAY=chatmail-push-relay
PROXY=chatmail-push-proxy
USERNAME=chatmail-push
UNITDIR=/lib/systemd/system
WANTS=/etc/systemd/system/multi-user.target.wants
RELAY_UNITS="metadata-dictd.service notifierd.service"
PROXY_UNITS="proxyd.service"
RELAY_BINS="/usr/bin/metadata-dictd /usr/bin/notifierd"
PROXY_BINS="/usr/bin/proxyd"
DROPIN=/etc/dovecot/conf.d/95-chatmail-push.conf
PUSHLUA=/etc/dovecot/push.lua
SYSUSERS=/usr/lib/sysusers.d/chatmail-push.conf
RELAY_DOC=/usr/share/doc/$RELAY
PROXY_DOC=/usr/share/doc/$PROXY
RELAY_STATE=/var/lib/chatmail-push
PROXY_STATE_LINK=/var/lib/chatmail-proxyd
PROXY_STATE=/var/lib/private/chatmail-proxyd
PROXY_ETC=/etc/chatmail-proxyd
# Every path of the packages' and their state; none may exist before.
OWN_PATHS="$RELAY_BINS $PROXY_BINS $DROPIN $PUSHLUA $SYSUSERS $RELAY_DOC
$PROXY_DOC $RELAY_STATE $PROXY_STATE_LINK $PROXY_STATE $PROXY_ETC
/run/metadata-dictd /run/notifierd"
for u in $RELAY_UNITS $PROXY_UNITS; do
	OWN_PATHS="$OWN_PATHS $UNITDIR/$u $WANTS/$u /etc/systemd/system/$u"
done

step() { printf '== %s (%ds)\n' "$*" $((SECONDS - START)); }
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
ok() { echo "   ok: $*"; }
# check DESCRIPTION COMMAND...: fails the test unless COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
status_of() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }
# not_installed PACKAGE...: dpkg knows none of them, or only as purged.
not_installed() {
	local p
	for p in "$@"; do
		case $(status_of "$p") in ""|not-installed) ;; *) return 1 ;; esac
	done
}
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
all_absent() { local p; for p in "$@"; do absent "$p" || { echo "   still there: $p"; return 1; }; done; }
all_present() { local p; for p in "$@"; do [ -e "$p" ] || { echo "   missing: $p"; return 1; }; done; }

# The names the packages use, wherever a file of theirs or of dpkg's and
# systemd's bookkeeping about them could be. Compared before and after.
snapshot() {
	{ find /etc /usr/bin /usr/sbin /usr/lib/sysusers.d "$UNITDIR" \
		/usr/share/doc /var/lib/dpkg/info /var/lib/systemd \
		/var/lib/chatmail-push /var/lib/chatmail-proxyd /var/lib/private \
		/run/metadata-dictd /run/notifierd \
		\( -name 'chatmail-push' -o -name 'chatmail-push.conf' \
		-o -name 'chatmail-push-relay*' -o -name 'chatmail-push-proxy*' \
		-o -name 'chatmail-proxyd' -o -name 'metadata-dictd*' \
		-o -name 'notifierd*' -o -name 'proxyd' -o -name 'proxyd.*' \
		-o -name '95-chatmail-push.conf' -o -name 'push.lua' \) \
		-print 2>/dev/null || true; } | sort
}

# apt-get install "$@", with apt-get update first only when that fails.
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$@" >>"$TMP/apt.log" 2>&1 && return 0
	apt-get update -q >>"$TMP/apt.log" 2>&1
	apt-get install -y -q --no-install-recommends "$@" >>"$TMP/apt.log" 2>&1 ||
		{ tail -20 "$TMP/apt.log"; fail "apt-get install $*"; }
}

# ---- preconditions ----------------------------------------------------------

[ "$(id -u)" -eq 0 ] || fail "run as root"
case $(cat /etc/debian_version 2>/dev/null) in
12.*|bookworm*) ;;
*) fail "needs Debian 12 (this is $(cat /etc/debian_version 2>/dev/null || echo 'not Debian'))" ;;
esac
for p in $RELAY $PROXY; do
	not_installed $p ||
		fail "$p is already on this machine ($(status_of $p)): not touching it"
done
for p in $OWN_PATHS; do
	absent "$p" || fail "$p exists already: not overwriting or deleting it"
done
had_user=false
getent passwd $USERNAME >/dev/null && had_user=true
had_group=false
getent group $USERNAME >/dev/null && had_group=true
had_private=false
[ -d /var/lib/private ] && had_private=true

TMP=$(mktemp -d /tmp/chatmail-push-package-test.XXXXXX)
cleanup() {
	local rc=$?
	set +e
	for p in $RELAY $PROXY; do
		not_installed $p || dpkg -P $p >>"$TMP/cleanup.log" 2>&1 ||
			echo "package-test: cleanup: dpkg -P $p failed" >&2
	done
	# All of these were absent at the start.
	rm -rf $RELAY_STATE $PROXY_STATE_LINK $PROXY_STATE $PROXY_ETC \
		/run/metadata-dictd /run/notifierd
	$had_private || rmdir /var/lib/private 2>/dev/null
	$had_user || ! getent passwd $USERNAME >/dev/null || userdel $USERNAME
	$had_group || ! getent group $USERNAME >/dev/null || groupdel $USERNAME
	if [ "${PACKAGE_TEST_KEEP:-0}" = 1 ]; then
		echo "package-test: kept $TMP"
	else
		rm -rf "$TMP"
	fi
	if [ $rc -eq 0 ]; then
		echo "package-test: passed in $((SECONDS - START))s"
	else
		echo "package-test: failed after $((SECONDS - START))s" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

BEFORE=$(snapshot)

# ---- build ----------------------------------------------------------------

step "copy the tree to $TMP/src/chatmail-push"
SRC=$TMP/src/chatmail-push
mkdir -p "$SRC"
# Others may edit the tree meanwhile: tar's "file changed as we read it"
# (status 1) is fine, the copy is a snapshot.
set +o pipefail
tar -C "$REPO" --exclude=./.git --exclude=./build --exclude='./build-*' \
	--exclude=node_modules --exclude=.pytest_cache --exclude=__pycache__ \
	--warning=no-file-changed -cf - . | tar -C "$SRC" -xf -
st=("${PIPESTATUS[@]}")
set -o pipefail
if [ "${st[0]}" -gt 1 ] || [ "${st[1]}" -ne 0 ]; then
	fail "copying the tree (tar: ${st[*]})"
fi
[ -f "$SRC/debian/control" ] || fail "no debian/control in $REPO"

step "build dependencies"
if ! (cd "$SRC" && dpkg-checkbuilddeps) >"$TMP/builddeps.log" 2>&1; then
	sed 's/^/   /' "$TMP/builddeps.log"
	export DEBIAN_FRONTEND=noninteractive
	if ! (cd "$SRC" && apt-get build-dep -y -q --no-install-recommends ./) \
	    >>"$TMP/apt.log" 2>&1; then
		apt-get update -q >>"$TMP/apt.log" 2>&1
		(cd "$SRC" && apt-get build-dep -y -q --no-install-recommends ./) \
			>>"$TMP/apt.log" 2>&1 || { tail -20 "$TMP/apt.log"; fail "apt-get build-dep"; }
	fi
fi
command -v lintian >/dev/null || apt_install lintian
ok "Build-Depends and lintian installed"

step "dpkg-buildpackage -us -uc -b"
(cd "$SRC" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$TMP/build.log" 2>&1 ||
	{ tail -40 "$TMP/build.log"; fail "dpkg-buildpackage (log: $TMP/build.log)"; }
ARCH=$(dpkg --print-architecture)
VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
RELAY_DEB=$TMP/src/${RELAY}_${VERSION}_$ARCH.deb
PROXY_DEB=$TMP/src/${PROXY}_${VERSION}_$ARCH.deb
CHANGES=$TMP/src/chatmail-push_${VERSION}_$ARCH.changes
check "built $(cd "$TMP/src" && echo *.deb)" all_present "$RELAY_DEB" "$PROXY_DEB" "$CHANGES"
for d in "$RELAY_DEB" "$PROXY_DEB"; do
	echo "   $(dpkg-deb -f "$d" Package) $(du -k "$d" | cut -f1) KiB, Depends: $(dpkg-deb -f "$d" Depends)"
done

step "lintian"
# As nobody: lintian would rather not run as root. Every tag is shown,
# information and overridden ones (O:, with their comments, N:) too; an
# error or warning not overridden (E:, W:) fails the test. (With
# --show-overrides, --fail-on would count the overridden ones.)
chmod 0755 "$TMP" "$TMP/src"
install -d -o nobody "$TMP/lintian"
# From a directory nobody may enter: the tree may sit in one only root
# may (a mktemp -d clone), where lintian's first chdir would fail.
(cd "$TMP/lintian" && runuser -u nobody -- env HOME="$TMP/lintian" \
	TMPDIR="$TMP/lintian" lintian --fail-on none --display-info \
	--show-overrides "$CHANGES") >"$TMP/lintian.log" 2>&1 ||
	{ cat "$TMP/lintian.log"; fail "lintian did not run"; }
sed 's/^/   /' "$TMP/lintian.log"
if grep -q '^[EW]:' "$TMP/lintian.log"; then
	fail "lintian: errors or warnings (E:, W: above)"
fi
ok "lintian: no error or warning; $(grep -c '^O:' "$TMP/lintian.log" || true) overridden, $(grep -c '^[IPX]:' "$TMP/lintian.log" || true) info/pedantic/experimental"

# ---- install ----------------------------------------------------------------

step "dpkg -i"
if ! dpkg -i "$RELAY_DEB" "$PROXY_DEB" >"$TMP/install.log" 2>&1; then
	tail -20 "$TMP/install.log" | sed 's/^/   /'
	echo "   dpkg -i failed (missing dependencies?): apt-get install -f"
	apt_install -f
fi
check "both packages installed" \
	test "$(status_of $RELAY) $(status_of $PROXY)" = "installed installed"

for b in $RELAY_BINS $PROXY_BINS; do
	check "$b --help" sh -c "'$b' --help 2>&1 | grep -q '^usage: $(basename "$b")'"
done
check "relay files" all_present $UNITDIR/metadata-dictd.service \
	$UNITDIR/notifierd.service $SYSUSERS $DROPIN $PUSHLUA \
	$RELAY_DOC/operator-relay.md $RELAY_DOC/metadata-dictd.md \
	$RELAY_DOC/notifierd.md $RELAY_DOC/examples/chatmail-push.rules.yml \
	$RELAY_DOC/examples/chatmail-push.json $RELAY_DOC/copyright \
	$RELAY_DOC/changelog.gz
check "proxy files" all_present $UNITDIR/proxyd.service $PROXY_ETC \
	$PROXY_DOC/operator-proxy.md $PROXY_DOC/proxyd.md $PROXY_DOC/scaling.md \
	$PROXY_DOC/examples/haproxy.cfg $PROXY_DOC/examples/chatmail-push.rules.yml \
	$PROXY_DOC/examples/chatmail-push.json $PROXY_DOC/copyright \
	$PROXY_DOC/changelog.gz
check "the relay has none of the proxy's files, nor the other way" \
	sh -c "! dpkg -L $RELAY | grep -q proxyd && ! dpkg -L $PROXY | grep -Eq 'dictd|notifierd|dovecot'"
check "the drop-in names the installed push.lua" \
	grep -q "^ *push_notification_driver = lua:file=$PUSHLUA\$" $DROPIN
check "the drop-in and push.lua are conffiles" sh -c \
	"dpkg-query -W -f='\${Conffiles}\n' $RELAY | grep -q ' $DROPIN ' &&
	 dpkg-query -W -f='\${Conffiles}\n' $RELAY | grep -q ' $PUSHLUA '"
check "$PROXY_ETC is root's, 0700" test "$(stat -c '%U %a' $PROXY_ETC)" = "root 700"
for u in $RELAY_UNITS $PROXY_UNITS; do
	doc=$(sed -n 's|^Documentation=file:||p' $UNITDIR/$u)
	check "$u: Documentation= $doc is installed" test -f "$doc"
	check "$u: ExecStart= is /usr/bin/${u%.service}" \
		grep -q "^ExecStart=/usr/bin/${u%.service} " $UNITDIR/$u
done

# The maintainer scripts: enable on install, never start; an upgrade
# restarts what runs (try-restart); removal stops them. Without a running
# systemd only the scripts themselves can be checked for the last two.
info=/var/lib/dpkg/info
check "postinst: enable, try-restart on upgrade, no start" sh -c "
	grep -q \"deb-systemd-helper enable 'metadata-dictd.service'\" $info/$RELAY.postinst &&
	grep -q \"deb-systemd-helper enable 'proxyd.service'\" $info/$PROXY.postinst &&
	grep -q \"deb-systemd-invoke try-restart 'metadata-dictd.service' 'notifierd.service'\" $info/$RELAY.postinst &&
	grep -q \"deb-systemd-invoke try-restart 'proxyd.service'\" $info/$PROXY.postinst &&
	! grep -Eq 'deb-systemd-invoke (start|restart) ' $info/$RELAY.postinst $info/$PROXY.postinst"
check "prerm: stop on remove" sh -c "
	grep -q \"deb-systemd-invoke stop 'metadata-dictd.service' 'notifierd.service'\" $info/$RELAY.prerm &&
	grep -q \"deb-systemd-invoke stop 'proxyd.service'\" $info/$PROXY.prerm"
check "postinst: systemd-sysusers chatmail-push.conf" \
	grep -q 'systemd-sysusers .*chatmail-push.conf' $info/$RELAY.postinst

pw=$(getent passwd $USERNAME || true)
check "user $USERNAME: $pw" test -n "$pw"
IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
check "$USERNAME is a system user ($uid < 1000), home $RELAY_STATE, no login" \
	test "$uid" -lt 1000 -a "$home" = "$RELAY_STATE" -a "${shell##*/}" = nologin
check "group $USERNAME" sh -c "getent group $USERNAME >/dev/null"

# systemd-analyze verify reads the unit files and checks each ExecStart=
# binary; it needs no running systemd. Any line about our units (an
# unknown key is only a warning) fails the test too.
verify_out=$(cd $UNITDIR && systemd-analyze verify $RELAY_UNITS $PROXY_UNITS 2>&1) ||
	{ echo "$verify_out"; fail "systemd-analyze verify"; }
if echo "$verify_out" | grep -E 'metadata-dictd|notifierd|proxyd'; then
	fail "systemd-analyze verify complains about the units"
fi
ok "systemd-analyze verify $RELAY_UNITS $PROXY_UNITS${verify_out:+ (other units: $verify_out)}"

for u in $RELAY_UNITS $PROXY_UNITS; do
	check "$u enabled" test "$(systemctl is-enabled $u 2>&1)" = enabled
	check "$u linked from multi-user.target.wants" \
		test "$(readlink $WANTS/$u)" = "$UNITDIR/$u"
done
# Not started: with systemd running, it says so; without, nothing ran
# the installed binaries and nothing made the units' directories.
if [ -d /run/systemd/system ]; then
	for u in $RELAY_UNITS $PROXY_UNITS; do
		check "$u not started" test "$(systemctl is-active $u 2>&1)" != active
	done
else
	echo "   (systemd is not PID 1 here: checking processes and directories)"
fi
running=""
for p in /proc/[0-9]*; do
	case $(readlink "$p/exe" 2>/dev/null) in
	/usr/bin/metadata-dictd|/usr/bin/notifierd|/usr/bin/proxyd) running="$running ${p#/proc/}" ;;
	esac
done
check "no process runs the installed daemons" test -z "$running"
check "no state or runtime directory made" all_absent $RELAY_STATE \
	$PROXY_STATE_LINK $PROXY_STATE /run/metadata-dictd /run/notifierd

# ---- remove, purge ------------------------------------------------------------

step "state as the daemons make it"
install -d -o $USERNAME -g $USERNAME -m 0750 $RELAY_STATE
install -o $USERNAME -g $USERNAME -m 0600 /dev/null $RELAY_STATE/relay.db
install -d -m 0700 /var/lib/private
install -d -m 0700 $PROXY_STATE
install -m 0600 /dev/null $PROXY_STATE/notifiers.db
ln -s private/chatmail-proxyd $PROXY_STATE_LINK
ok "$RELAY_STATE/relay.db, $PROXY_STATE_LINK -> $PROXY_STATE/notifiers.db"

step "dpkg -r"
dpkg -r $RELAY $PROXY >"$TMP/remove.log" 2>&1 ||
	{ cat "$TMP/remove.log"; fail "dpkg -r"; }
check "both packages removed, config files kept" \
	test "$(status_of $RELAY) $(status_of $PROXY)" = "config-files config-files"
check "binaries, units and guides gone" all_absent $RELAY_BINS $PROXY_BINS \
	$UNITDIR/metadata-dictd.service $UNITDIR/notifierd.service \
	$UNITDIR/proxyd.service $SYSUSERS $RELAY_DOC $PROXY_DOC
check "conffiles kept" all_present $DROPIN $PUSHLUA
check "state kept" all_present $RELAY_STATE/relay.db \
	$PROXY_STATE_LINK/notifiers.db $PROXY_STATE/notifiers.db $PROXY_ETC
check "$RELAY_STATE/relay.db still $USERNAME's" \
	test "$(stat -c %U $RELAY_STATE/relay.db)" = $USERNAME

step "dpkg -P"
dpkg -P $RELAY $PROXY >"$TMP/purge.log" 2>&1 ||
	{ cat "$TMP/purge.log"; fail "dpkg -P"; }
check "both packages purged" not_installed $RELAY $PROXY
check "state, conffiles and $PROXY_ETC gone" all_absent $RELAY_STATE \
	$PROXY_STATE_LINK $PROXY_STATE $PROXY_ETC $DROPIN $PUSHLUA
for p in $OWN_PATHS; do
	absent "$p" || fail "$p left after purge"
done
ok "none of the packages' paths left"
AFTER=$(snapshot)
if [ "$BEFORE" != "$AFTER" ]; then
	diff <(echo "$BEFORE") <(echo "$AFTER") | sed 's/^/   /'
	fail "files left after purge (> above)"
fi
ok "nothing of theirs left (dpkg, systemd and deb-systemd-helper state included)"
if getent passwd $USERNAME >/dev/null; then
	echo "   user $USERNAME kept on purge, as Debian does with system users$($had_user || echo '; the test removes it')"
fi
