#!/usr/bin/env bash
# Builds (once) and prints the path of a minimal Debian sid root with Asterisk 22 installed, for
# the test Asterisk. Debian 12 has no Asterisk package; sid does (22.10.1), and mmdebstrap builds a
# root with it in well under a minute. The root lives in a cache directory outside the repository
# and is reused by every later run.
#
# Environment:
#   EARPIECE_ASTERISK_ROOT   where the root goes (default: ${XDG_CACHE_HOME:-~/.cache}/earpiece/asterisk-root)
#   EARPIECE_DEBIAN_MIRROR   Debian mirror URL (default: the first Debian archive in this machine's
#                            apt configuration; no host name is written in this repository)
#
# Prints the root's path on stdout as its last line; progress goes to stderr.
set -euo pipefail

cache=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/earpiece
root=${EARPIECE_ASTERISK_ROOT:-$cache/asterisk-root}
stamp=$root/.earpiece-ready

log() { printf 'asterisk-root: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -f "$stamp" ]; then
  echo "$root"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "building the Asterisk root needs root (mmdebstrap, chroot); run as root or set EARPIECE_TEST_ARI_URL to use another Asterisk"

# mirror_from_apt prints the first Debian archive URI of the machine's apt configuration
# (deb822 .sources files and one-line .list files), skipping the security archive.
mirror_from_apt() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'tolower($1)=="uris:" { for (i=2;i<=NF;i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
}

mirror=${EARPIECE_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(mirror_from_apt | grep -E '/debian/?$' | grep -v -- '-security' | head -n 1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set EARPIECE_DEBIAN_MIRROR"

if ! command -v mmdebstrap >/dev/null 2>&1; then
  log "installing mmdebstrap (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; } \
    || die "could not install mmdebstrap with apt-get"
fi

mkdir -p "$(dirname "$root")"
# Two test binaries may ask at once: one builds, the other waits for it.
exec 9>"$root.lock"
flock 9
if [ -f "$stamp" ]; then
  echo "$root"
  exit 0
fi

tmp=$root.tmp.$$
rm -rf "$tmp"
log "building a Debian sid root with Asterisk in $root (from $mirror; about a minute)"
start=$(date +%s)
# The mirror served here is a dated snapshot whose Release file has expired, hence Check-Valid-Until.
if ! mmdebstrap --variant=minbase --quiet \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --include=asterisk,asterisk-modules,asterisk-core-sounds-en-gsm,ca-certificates \
      sid "$tmp" "$mirror" >&2; then
  rm -rf "$tmp"
  die "mmdebstrap failed (mirror $mirror)"
fi
version=$(chroot "$tmp" dpkg-query -W -f='${Version}' asterisk)
rm -rf "$root"
mv "$tmp" "$root"
echo "$version" >"$stamp"
log "ready in $(( $(date +%s) - start )) s: asterisk $version"
echo "$root"
