#!/bin/sh
# Unpack Prosody 13.0.1 from Debian bookworm-backports into DIR (default
# build/prosody-13), beside the installed 0.12, so the tests can run on both.
# The package is downloaded, never installed; its launchers are pointed at DIR.
set -eu

DIR=${1:-build/prosody-13}
VERSION=13.0.1-1~bpo12+1
SOURCES=/etc/apt/sources.list.d/bookworm-backports.sources

[ -x "$DIR/usr/bin/prosody" ] && exit 0

if ! apt-cache madison prosody | grep -q "$VERSION"; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "prosody13: add bookworm-backports to apt's sources and run apt-get update (as root)" >&2
		exit 1
	fi
	printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$SOURCES"
	apt-get update -qq
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"   # apt's download sandbox user must be able to write here
(cd "$tmp" && apt-get download -q "prosody=$VERSION" >/dev/null 2>&1) ||
	{ echo "prosody13: apt-get download prosody=$VERSION failed" >&2; exit 1; }
dpkg -x "$tmp"/prosody_*.deb "$DIR"
for launcher in prosody prosodyctl; do
	sed -i "s|^CFG_SOURCEDIR=.*|CFG_SOURCEDIR='$DIR/usr/lib/prosody';|; s|^CFG_PLUGINDIR=.*|CFG_PLUGINDIR='$DIR/usr/lib/prosody/modules/';|" \
		"$DIR/usr/bin/$launcher"
done
# 13's libraries require each other as "prosody.util.x": give busted a tree where that name resolves
mkdir -p "$DIR/lua"
ln -sfn ../usr/lib/prosody "$DIR/lua/prosody"
echo "prosody13: $(cat "$DIR/usr/lib/prosody/prosody.version") in $DIR"
