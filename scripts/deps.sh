#!/bin/sh
# Installs the Debian packages Ember needs. Idempotent and quiet when all are
# present: only missing packages are installed.
set -eu
PKGS="build-essential make gcc clang llvm libclang-rt-14-dev pkg-config
liburing-dev libcmocka-dev libfdt-dev device-tree-compiler musl-tools
liblua5.4-dev linux-source-6.1 bc bison flex libelf-dev libssl-dev ccache
xz-utils cpio e2fsprogs fakeroot util-linux procps socat qemu-system-x86 python3
coreutils
libseccomp-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3
libarchive-dev libcurl4-openssl-dev curl wrk golang-go rustc cargo
libpython3.11-dev libexpat1-dev zlib1g-dev python3-distutils python3-lib2to3
tzdata prometheus python3-yaml openssl"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
