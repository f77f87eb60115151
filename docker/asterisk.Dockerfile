# Asterisk for earpiece: Debian sid's asterisk package, pinned to the version the tests run
# (scripts/asterisk-root.sh provisions the test Asterisk from sid too), so what is tested is what
# ships. Debian 12 has no Asterisk package.
#
# The image holds no earpiece configuration: compose mounts asterisk-conf/ at
# /etc/asterisk-earpiece and asterisk-entrypoint.sh builds /etc/asterisk from it at every start.
#
# Build context: this directory (compose: context ".", dockerfile asterisk.Dockerfile), of which
# asterisk.Dockerfile.dockerignore lets only the entrypoint through.
FROM debian:sid-slim

# Exact Debian version of asterisk, asterisk-modules and asterisk-config (the tests' version).
# compose.yml passes it from EARPIECE_ASTERISK_VERSION (same default; a test checks that the two
# defaults and the tests' Asterisk agree).
ARG ASTERISK_VERSION=1:22.10.1+dfsg+~cs6.17.60671434-1
# sid moves on and drops old versions, so the pinned version may only be found on a dated
# snapshot of the archive. APT_MIRROR (optional; compose: EARPIECE_APT_MIRROR) replaces the
# image's Debian archive URI with such a mirror. A snapshot's Release file is past its Valid-Until
# date and apt refuses it unless APT_IGNORE_VALID_UNTIL=true (compose:
# EARPIECE_APT_IGNORE_VALID_UNTIL), which sets Acquire::Check-Valid-Until "false" for this build.
# Default: the image's own archive, validity checked.
ARG APT_MIRROR=
ARG APT_IGNORE_VALID_UNTIL=false

# Debian's sample configuration is kept in /etc/asterisk.dist for reference only: like the tests,
# Asterisk runs with nothing in /etc/asterisk but asterisk-conf/ and the entrypoint's overrides.
# There is no systemd-tmpfiles in a container, hence the run directory made here (the entrypoint
# checks it again at start). The entrypoint drops to the asterisk user with setpriv (util-linux,
# essential in Debian; checked here).
RUN set -eux; \
    if [ -n "$APT_MIRROR" ]; then \
      sed -i "s|^URIs:.*|URIs: $APT_MIRROR|" /etc/apt/sources.list.d/debian.sources; \
    fi; \
    if [ "$APT_IGNORE_VALID_UNTIL" = true ]; then \
      echo 'Acquire::Check-Valid-Until "false";' >/etc/apt/apt.conf.d/99earpiece-snapshot; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk="$ASTERISK_VERSION" \
      asterisk-modules="$ASTERISK_VERSION" \
      asterisk-config="$ASTERISK_VERSION" \
      curl; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99earpiece-snapshot; \
    mv /etc/asterisk /etc/asterisk.dist; \
    install -d -o root -g asterisk -m 0750 /etc/asterisk; \
    install -d -o asterisk -g asterisk -m 0750 /var/run/asterisk; \
    chown -R asterisk:asterisk /var/lib/asterisk /var/log/asterisk /var/spool/asterisk \
      /var/cache/asterisk /var/run/asterisk; \
    asterisk -V; \
    setpriv --version

COPY asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint.sh
RUN chmod 0755 /usr/local/bin/asterisk-entrypoint.sh

# SIP (UDP), ARI/HTTP (compose network only; see compose.yml), RTP (rtp.conf).
EXPOSE 5060/udp 8088/tcp 10000-10200/udp

# ARI's ping resource (GET /ari/asterisk/ping) needs ARI, HTTP and the credentials to work.
# The entrypoint starts as root and runs Asterisk as the asterisk user (setpriv).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null -u "${ARI_USER:-earpiece}:${ARI_PASSWORD:-earpiece-change-me}" \
      http://127.0.0.1:8088/ari/asterisk/ping || exit 1

ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint.sh"]
