#!/usr/bin/env bash
# Installs what `make test` needs from Debian's packages when it is missing: redis-server and
# redis-tools (the tests start throwaway instances), mmdebstrap (builds the test Asterisk's root),
# docker-compose (validates docker/compose.yml without a Docker engine and resolves it for
# internal/stacktest), and what internal/stacktest runs the compose stack with: capsh
# (libcap2-bin), ip (iproute2), unshare and mount (util-linux, mount); chromium, the headless
# browser the dashboard's test drives (webhooks/dashboard_e2e_test.go; unless
# EARPIECE_TEST_CHROMIUM names another), with a font for its screenshots (fonts-dejavu-core).
# Then builds (once) the test Asterisk root. Idempotent; quiet when everything is there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v capsh >/dev/null 2>&1 || need+=(libcap2-bin)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
if [ -z "${EARPIECE_TEST_CHROMIUM:-}" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-deps: missing ${need[*]}; install them (Debian packages) or run as root" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The test Asterisk (skipped when the tests are pointed at another one).
if [ -z "${EARPIECE_TEST_ARI_URL:-}" ]; then
  "$(dirname "$0")/asterisk-root.sh" >/dev/null
fi
