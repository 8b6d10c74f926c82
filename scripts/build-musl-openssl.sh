#!/usr/bin/env bash
# Build the static OpenSSL that libkiln-musl.so links (docs/runtime.md, "musl
# programs"): Debian ships OpenSSL for glibc only, and a library preloaded into
# a musl program must not pull in glibc. Built once per machine from Debian's
# own openssl source package with musl-gcc into a cached prefix:
#
#   /opt/kiln/musl-openssl/include/openssl   headers
#   /opt/kiln/musl-openssl/lib/libcrypto.a, libssl.a   (-fPIC, for a shared object)
#   /opt/kiln/musl-openssl/kernel/{linux,asm,asm-generic}   the Linux UAPI headers
#       musl-gcc hides (it passes -nostdinc): links to Debian's linux-libc-dev,
#       which are C-library neutral; the runtime needs <linux/seccomp.h> and friends
#   /opt/kiln/musl-openssl/KILN-STAMP   the source version and options built
#
# Usage: scripts/build-musl-openssl.sh [--check]   (--check: exit 1 unless built)
# Run as root by scripts/install-deps.sh; does nothing when the stamp matches.
set -euo pipefail
# shellcheck source=apt-source.sh
. "$(dirname "$0")/apt-source.sh"

PREFIX=${KILN_MUSL_OPENSSL:-/opt/kiln/musl-openssl}
# Small and quick: no engines, afalg or cryptodev (kernel interfaces libkiln
# never uses), no legacy provider or loadable modules (everything libkiln uses
# is in the default provider, built in), no compression, SSLv3 or DTLS.
OPTIONS=(no-shared no-tests no-engine no-afalgeng no-devcryptoeng no-module
  no-legacy no-comp no-ssl3 no-dtls no-srp no-ktls no-ui-console no-async -fPIC)
# Same configuration directory as Debian's libssl3, so an OPENSSL_CONF-less
# process reads the same default file with either runtime.
OPENSSLDIR=/usr/lib/ssl
STAMP_WANT="options: ${OPTIONS[*]} openssldir=$OPENSSLDIR"

built() {
  [ -f "$PREFIX/KILN-STAMP" ] && [ -f "$PREFIX/lib/libcrypto.a" ] &&
    [ -f "$PREFIX/lib/libssl.a" ] && [ -e "$PREFIX/kernel/linux/seccomp.h" ] &&
    grep -qxF "$STAMP_WANT" "$PREFIX/KILN-STAMP"
}

if built; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "build-musl-openssl: $PREFIX is missing or stale (run scripts/build-musl-openssl.sh as root)" >&2
  exit 1
fi
command -v musl-gcc >/dev/null || { echo "build-musl-openssl: musl-gcc missing (apt-get install musl-tools)" >&2; exit 1; }

start=$(date +%s)
fetch_source openssl build-musl-openssl
dsc=$(ls "$tmp"/openssl_*.dsc | head -n1)
version=$(sed -n 's/^Version: //p' "$dsc")
orig=$(ls "$tmp"/openssl_*.orig.tar.* | head -n1)
echo "build-musl-openssl: openssl $version: unpacking"
tar -xf "$orig" -C "$tmp"
src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -n1)

# Kernel UAPI headers for musl-gcc: only these three trees, never /usr/include
# itself (that would mix glibc's headers into musl builds).
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/kernel"
ln -s /usr/include/linux "$PREFIX.new/kernel/linux"
ln -s /usr/include/asm-generic "$PREFIX.new/kernel/asm-generic"
ln -s "/usr/include/$(gcc -print-multiarch)/asm" "$PREFIX.new/kernel/asm"

echo "build-musl-openssl: configuring (${OPTIONS[*]})"
(cd "$src" && CC=musl-gcc ./Configure linux-x86_64 "${OPTIONS[@]}" \
  "-idirafter" "$PREFIX.new/kernel" \
  --prefix="$PREFIX" --libdir=lib --openssldir="$OPENSSLDIR" >"$tmp/configure.log" 2>&1) || {
  tail -n 30 "$tmp/configure.log" >&2; exit 1; }
echo "build-musl-openssl: building libcrypto.a and libssl.a (a few minutes)"
(cd "$src" && nice -n 5 make -j"$(nproc)" build_libs >"$tmp/build.log" 2>&1) || {
  tail -n 30 "$tmp/build.log" >&2; exit 1; }
(cd "$src" && make install_dev DESTDIR="$tmp/dest" >"$tmp/install.log" 2>&1) || {
  tail -n 30 "$tmp/install.log" >&2; exit 1; }
mkdir -p "$PREFIX.new/lib"
cp -r "$tmp/dest$PREFIX/include" "$PREFIX.new/include"
cp "$tmp/dest$PREFIX/lib/libcrypto.a" "$tmp/dest$PREFIX/lib/libssl.a" "$PREFIX.new/lib/"
{
  echo "openssl $version (Debian source package) built with musl-gcc by kiln scripts/build-musl-openssl.sh"
  echo "$STAMP_WANT"
} >"$PREFIX.new/KILN-STAMP"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
echo "build-musl-openssl: openssl $version in $PREFIX ($(( $(date +%s) - start )) s)"
