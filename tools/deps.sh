#!/bin/sh
# Install the Debian 12 packages that building, the demo and the tests need.
# As root it installs what is missing; otherwise it prints the command to run.
set -eu

# Chosen one by one, because --no-install-recommends leaves out what a package only recommends.
# prosody recommends three Lua libraries: lua-unbound is needed (the s2s test's hosts file and
# stub DNS server are read only by its libunbound resolver); lua-event is not (it is the
# "event" network backend, and Prosody uses epoll); lua-readline is not (line editing in an
# interactive prosodyctl shell, which no test opens). Of its Suggests, the SQL drivers for
# SQLite and PostgreSQL are needed (the quota on SQL storage), with a PostgreSQL server.
# publicsuffix: the list by which check tells whether downloads share the chat's site.
PACKAGES="gcc make pkg-config publicsuffix lua5.4 liblua5.4-dev libssl-dev uuid-dev
lua-busted lua-check valgrind clang libclang-rt-14-dev python3 python3-botocore python3-slixmpp
prosody lua-unbound luarocks git
lua-dbi-sqlite3 lua-dbi-postgresql postgresql
chromium
ceph-mon ceph-osd radosgw ceph-common"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Only the JavaScript clients' tests (xmpp.js, playwright-core) need Node.js 20 or later with npm;
# Debian 12's own nodejs is 18, so it is no substitute. The demo, the build and make check do not.
if ! node -e 'process.exit(parseInt(process.versions.node, 10) >= 20 ? 0 : 1)' 2>/dev/null || ! command -v npm >/dev/null; then
	echo "deps: note: the JavaScript tests (make test) need Node.js >= 20 with npm on PATH" >&2
fi

if [ -n "$missing" ]; then
	cmd="apt-get install -y --no-install-recommends$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing:$missing"
		echo "deps: run as root:  apt-get update && $cmd"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	$cmd
else
	echo "deps: all packages present"
fi
# Prosody 13 beside Debian's 0.12, for the specs and the integration tests on both: the one
# download the tests need, done here so that make check and make test never reach the network
sh "$(dirname "$0")/prosody13.sh" "$(dirname "$0")/../build/prosody-13"
