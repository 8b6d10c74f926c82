# Sourced by the scripts that build from a Debian source package
# (build-musl-openssl.sh, build-musl-sqlite3.sh). fetch_source PKG TAG: a
# fresh directory in $tmp (removed when the script exits) holding PKG's
# source package as apt-get source downloads it (needs a deb-src line;
# scripts/install-deps.sh adds one); progress and errors say TAG.
fetch_source() {
  local pkg=$1 tag=$2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp"
  chown _apt "$tmp" 2>/dev/null || true
  echo "$tag: fetching Debian's $pkg source (apt-get source)"
  (cd "$tmp" && apt-get source --download-only -qq "$pkg" >/dev/null 2>&1) || {
    echo "$tag: apt-get source $pkg failed (needs a deb-src line; scripts/install-deps.sh adds one)" >&2
    exit 1
  }
}
