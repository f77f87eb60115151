#!/bin/sh
# Entrypoint of the earpiece Asterisk image (docker/asterisk.Dockerfile).
#
# Builds /etc/asterisk at every start, the way the tests do (internal/asterisktest): only the
# project's configuration (asterisk-conf/, mounted read-only at $CONF_SRC) plus a few overrides
# for the container; Debian's samples stay in /etc/asterisk.dist. Then runs Asterisk in the
# foreground as PID 1; Asterisk drops from root to the asterisk user itself (-U/-G).
#
# Environment:
#   ARI_PASSWORD           when set, ari.conf is replaced by one with this password for $ARI_USER
#   ARI_USER               ARI user written with ARI_PASSWORD (default: earpiece)
#   SIP_EXTERNAL_ADDRESS   when set, the address (host name or IP) phones outside the Docker host
#                          reach this host at; written as external_media_address and
#                          external_signaling_address of [transport-udp]
#   SIP_LOCAL_NET          with SIP_EXTERNAL_ADDRESS: networks that get the container's own
#                          address, space-separated (default: 172.16.0.0/12 127.0.0.0/8)
#   CONF_SRC               where asterisk-conf/ is mounted (default: /etc/asterisk-earpiece)
set -eu

src=${CONF_SRC:-/etc/asterisk-earpiece}
etc=/etc/asterisk
ari_user=${ARI_USER:-earpiece}

log() { printf 'asterisk-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# conf_value checks that $2 can be written as a value in an Asterisk .conf file and prints it with
# ";" escaped (";" starts a comment). $1 names it in errors.
conf_value() {
  case $2 in
    *'
'*) die "$1 must not contain a line break" ;;
  esac
  case $2 in
    '' | ' '* | *' ' | '	'* | *'	') die "$1 must not be empty or start or end with a blank" ;;
  esac
  printf '%s' "$2" | sed 's/;/\\;/g'
}

[ "$(id -u)" = 0 ] || die "must start as root (Asterisk drops to the asterisk user itself)"
[ -d "$src" ] || die "$src is missing: mount asterisk-conf/ there"

# Check the environment before anything is changed.
if [ -n "${ARI_PASSWORD+set}" ]; then
  ari_user=$(conf_value ARI_USER "$ari_user")
  case $ari_user in
    *'['* | *']'*) die "ARI_USER must not contain [ or ]" ;;
  esac
  ari_pass=$(conf_value ARI_PASSWORD "$ARI_PASSWORD")
fi
if [ -n "${SIP_EXTERNAL_ADDRESS:-}" ]; then
  sip_ext=$(conf_value SIP_EXTERNAL_ADDRESS "$SIP_EXTERNAL_ADDRESS")
  sip_nets=
  # shellcheck disable=SC2086 # a space-separated list, split on purpose
  for net in ${SIP_LOCAL_NET:-172.16.0.0/12 127.0.0.0/8}; do
    sip_nets="$sip_nets $(conf_value SIP_LOCAL_NET "$net")"
  done
fi

# /etc/asterisk: emptied, then the project's .conf files, readable by Asterisk but not writable.
find "$etc" -mindepth 1 -delete
found=0
for f in "$src"/*.conf; do
  [ -f "$f" ] || continue
  install -o root -g asterisk -m 0640 "$f" "$etc/"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || die "no .conf files in $src"

# The tests' asterisk.conf options; the directories are the package's built-in defaults.
if [ ! -f "$etc/asterisk.conf" ]; then
  cat >"$etc/asterisk.conf" <<'EOF'
; Written by asterisk-entrypoint.sh (the options the tests run with); directories: built-in
; defaults of Debian's package (/etc/asterisk, /var/lib/asterisk, /var/run/asterisk, ...).
[options]
nocolor = yes
transmit_silence = no
EOF
fi

# ARI over HTTP on every address of the container, so that earpiece reaches it at asterisk:8088
# on the compose network. compose.yml publishes 8088 on the host's loopback only.
cat >"$etc/http.conf" <<'EOF'
; Written by asterisk-entrypoint.sh: ARI on the compose network (asterisk-conf/http.conf binds
; loopback, which other containers cannot reach).
[general]
enabled=yes
bindaddr=0.0.0.0
bindport=8088
EOF

if [ -n "${ARI_PASSWORD+set}" ]; then
  [ "$ARI_PASSWORD" != earpiece-change-me ] \
    || log "warning: ARI_PASSWORD is the sample password; set EARPIECE_ARI_PASSWORD"
  cat >"$etc/ari.conf" <<EOF
; Written by asterisk-entrypoint.sh from ARI_USER/ARI_PASSWORD.
[general]
enabled=yes
pretty=no
allowed_origins=

[$ari_user]
type=user
read_only=no
password_format=plain
password=$ari_pass
EOF
fi

if [ -n "${SIP_EXTERNAL_ADDRESS:-}" ]; then
  [ -f "$etc/pjsip_transport.conf" ] || die "SIP_EXTERNAL_ADDRESS needs pjsip_transport.conf in $src"
  {
    printf '\n; Added by asterisk-entrypoint.sh from SIP_EXTERNAL_ADDRESS/SIP_LOCAL_NET.\n'
    printf '[transport-udp](+)\n'
    printf 'external_media_address=%s\n' "$sip_ext"
    printf 'external_signaling_address=%s\n' "$sip_ext"
    for net in $sip_nets; do
      printf 'local_net=%s\n' "$net"
    done
  } >>"$etc/pjsip_transport.conf"
fi

chown root:asterisk "$etc"/*.conf
chmod 0640 "$etc"/*.conf

# Asterisk's own directories (volumes mounted over them may come with other owners).
for d in /var/lib/asterisk /var/log/asterisk /var/spool/asterisk /var/cache/asterisk /var/run/asterisk; do
  install -d -o asterisk -g asterisk "$d"
  chown asterisk:asterisk "$d"
done

log "starting $(asterisk -V) with $found files from $src"
exec asterisk -f -n -U asterisk -G asterisk "$@"
