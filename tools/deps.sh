#!/bin/sh
# Install the Debian 12 packages that building, the demo and the tests need.
# As root it installs what is missing; otherwise it prints the command to run.
set -eu

PACKAGES="gcc make pkg-config lua5.4 liblua5.4-dev libssl-dev uuid-dev
lua-busted valgrind clang libclang-rt-14-dev python3 python3-botocore python3-slixmpp prosody luarocks git
ceph-mon ceph-osd radosgw ceph-common"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# the JavaScript clients' tests want Node.js 20 or later with npm; Debian 12's own is 18
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing"
	echo "deps: run as root:  apt-get update && $cmd"
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
