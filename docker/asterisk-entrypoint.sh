#!/bin/sh
# Entrypoint of the earpiece Asterisk image (docker/asterisk.Dockerfile).
#
# Builds /etc/asterisk at every start, the way the tests do (internal/asterisktest): only the
# project's configuration (asterisk-conf/, mounted read-only at $CONF_SRC) plus a few overrides
# for the container; Debian's samples stay in /etc/asterisk.dist. Then runs Asterisk in the
# foreground as the asterisk user.
#
# It starts as root with only the capabilities compose.yml gives (CHOWN, DAC_OVERRIDE, SETUID,
# SETGID; no-new-privileges), so it changes owners but never modes of files it does not own
# (that would need FOWNER). It drops to the asterisk user with setpriv before Asterisk starts:
# Asterisk's own -U/-G would keep the four capabilities as permitted ones (it asks to keep
# capabilities across setuid, then fails to install CAP_NET_ADMIN: "Unable to install
# capabilities"). After setpriv, Asterisk has no capabilities, an empty inheritable and ambient
# set, and no-new-privileges; the bounding set stays the four compose gives (lowering it needs
# CAP_SETPCAP), which a non-root process under no-new-privileges can never regain.
#
# Environment:
#   ARI_PASSWORD           when set, ari.conf is replaced by one with this password for $ARI_USER
#   ARI_USER               ARI user written with ARI_PASSWORD (default: earpiece)
#   SIP_PASSWORDS          digest passwords of the sample phones of asterisk-conf/pjsip.conf:
#                          space-separated EXTENSION=PASSWORD pairs, e.g. "700=... 744=...",
#                          written to pjsip_auth.conf. A phone without a password cannot
#                          register or call (there is no default); passwords need 8 characters
#                          or more and no blanks.
#   SIP_EXTERNAL_ADDRESS   when set, the address (host name or IP) phones outside the Docker host
#                          reach this host at; written as external_media_address and
#                          external_signaling_address of [transport-udp]
#   SIP_LOCAL_NET          with SIP_EXTERNAL_ADDRESS: networks that get the container's own
#                          address, space-separated (default or empty: 172.16.0.0/12
#                          127.0.0.0/8, Docker's default networks and loopback)
#   CONF_SRC               where asterisk-conf/ is mounted (default: /etc/asterisk-earpiece)
#   DIALPLAN_DIR           when set, a directory shared with earpiece, which writes the rendered
#                          dialplan there (extensions_earpiece.conf, features_earpiece.conf) and
#                          reloads it through ARI: /etc/asterisk's two files become links to it,
#                          seeded from $CONF_SRC's the first time
#   DIALPLAN_OWNER         uid:gid given DIALPLAN_DIR and its files, earpiece's user (it replaces
#                          the files by renaming new ones into the directory), and JOURNAL_DIR
#   JOURNAL_DIR            when set, a directory of earpiece's (its Redis-outage journal) that
#                          only needs the right owner: earpiece's root file system is read-only
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

[ "$(id -u)" = 0 ] || die "must start as root (it drops to the asterisk user before Asterisk starts)"
[ -d "$src" ] || die "$src is missing: mount asterisk-conf/ there"
command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) is missing from the image"

# Check the environment before anything is changed.
if [ -n "${ARI_PASSWORD+set}" ]; then
  ari_user=$(conf_value ARI_USER "$ari_user")
  case $ari_user in
    *'['* | *']'*) die "ARI_USER must not contain [ or ]" ;;
  esac
  ari_pass=$(conf_value ARI_PASSWORD "$ARI_PASSWORD")
fi
sip_auth=
if [ -n "${SIP_PASSWORDS:-}" ]; then
  case $SIP_PASSWORDS in
    *'
'*) die "SIP_PASSWORDS must not contain a line break" ;;
  esac
  set -f # split on blanks, but a password is no file name pattern
  # shellcheck disable=SC2086 # a space-separated list, split on purpose
  for pair in $SIP_PASSWORDS; do
    ext=${pair%%=*}
    pass=${pair#*=}
    case $pair in
      *=*) ;;
      *) die "SIP_PASSWORDS: \"$pair\" is not EXTENSION=PASSWORD" ;;
    esac
    case $ext in
      '' | *[!0-9A-Za-z_.+-]*) die "SIP_PASSWORDS: \"$ext\" is not an extension (letters, digits, _ . + -)" ;;
    esac
    [ "${#pass}" -ge 8 ] || die "SIP_PASSWORDS: the password of $ext is shorter than 8 characters"
    [ "$pass" != "$ext" ] || die "SIP_PASSWORDS: the password of $ext is the extension itself"
    pass=$(conf_value "the SIP password of $ext" "$pass")
    sip_auth="$sip_auth
[$ext]
type=auth
auth_type=userpass
username=$ext
password=$pass
"
  done
  set +f
fi
if [ -n "${SIP_EXTERNAL_ADDRESS:-}" ]; then
  sip_ext=$(conf_value SIP_EXTERNAL_ADDRESS "$SIP_EXTERNAL_ADDRESS")
  sip_nets=
  set -f
  # shellcheck disable=SC2086 # a space-separated list, split on purpose
  for net in ${SIP_LOCAL_NET:-172.16.0.0/12 127.0.0.0/8}; do
    sip_nets="$sip_nets $(conf_value SIP_LOCAL_NET "$net")"
  done
  set +f
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
  cat >"$etc/asterisk.conf" <<'CONF'
; Written by asterisk-entrypoint.sh (the options the tests run with); directories: built-in
; defaults of Debian's package (/etc/asterisk, /var/lib/asterisk, /var/run/asterisk, ...).
[options]
nocolor = yes
transmit_silence = no
CONF
fi

# ARI over HTTP on every address of the container, so that earpiece reaches it at asterisk:8088
# on the compose network. compose.yml publishes 8088 on the host's loopback only.
cat >"$etc/http.conf" <<'CONF'
; Written by asterisk-entrypoint.sh: ARI on the compose network (asterisk-conf/http.conf binds
; loopback, which other containers cannot reach).
[general]
enabled=yes
bindaddr=0.0.0.0
bindport=8088
CONF

if [ -n "${ARI_PASSWORD+set}" ]; then
  [ "$ARI_PASSWORD" != earpiece-change-me ] \
    || log "warning: ARI_PASSWORD is the sample password; set EARPIECE_ARI_PASSWORD"
  cat >"$etc/ari.conf" <<CONF
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
CONF
fi

# pjsip.conf names an auth object per sample phone and includes pjsip_auth.conf, if there is one,
# for them: without it every phone is refused.
if [ -n "$sip_auth" ]; then
  printf '; Written by asterisk-entrypoint.sh from SIP_PASSWORDS.\n%s' "$sip_auth" >"$etc/pjsip_auth.conf"
elif [ ! -f "$etc/pjsip_auth.conf" ]; then
  log "warning: SIP_PASSWORDS is empty: no phone can register (set EARPIECE_SIP_PASSWORDS)"
fi

if [ -n "${SIP_EXTERNAL_ADDRESS:-}" ]; then
  [ -f "$etc/pjsip_transport.conf" ] || die "SIP_EXTERNAL_ADDRESS needs pjsip_transport.conf in $src"
  {
    printf '\n; Added by asterisk-entrypoint.sh from SIP_EXTERNAL_ADDRESS/SIP_LOCAL_NET.\n'
    printf '[transport-udp](+)\n'
    printf 'external_media_address=%s\n' "$sip_ext"
    printf 'external_signaling_address=%s\n' "$sip_ext"
    set -f
    for net in $sip_nets; do
      printf 'local_net=%s\n' "$net"
    done
    set +f
  } >>"$etc/pjsip_transport.conf"
fi

chown root:asterisk "$etc"/*.conf
chmod 0640 "$etc"/*.conf

# The rendered dialplan lives in the directory earpiece writes; the project's copies seed it.
if [ -n "${DIALPLAN_DIR:-}" ]; then
  [ -n "${DIALPLAN_OWNER:-}" ] || die "DIALPLAN_DIR needs DIALPLAN_OWNER (earpiece's uid:gid)"
  mkdir -p "$DIALPLAN_DIR"
  for f in extensions_earpiece.conf features_earpiece.conf; do
    [ -f "$etc/$f" ] || die "DIALPLAN_DIR: no $f in $src to seed it with"
    [ -f "$DIALPLAN_DIR/$f" ] || install -m 0644 "$etc/$f" "$DIALPLAN_DIR/$f"
    rm -f "$etc/$f"
    ln -s "$DIALPLAN_DIR/$f" "$etc/$f"
  done
  chown "$DIALPLAN_OWNER" "$DIALPLAN_DIR" "$DIALPLAN_DIR/extensions_earpiece.conf" "$DIALPLAN_DIR/features_earpiece.conf"
  log "dialplan: $DIALPLAN_DIR (written by earpiece)"
fi

if [ -n "${JOURNAL_DIR:-}" ]; then
  [ -n "${DIALPLAN_OWNER:-}" ] || die "JOURNAL_DIR needs DIALPLAN_OWNER (earpiece's uid:gid)"
  mkdir -p "$JOURNAL_DIR"
  chown "$DIALPLAN_OWNER" "$JOURNAL_DIR"
fi

# Asterisk's own directories (volumes mounted over them may come with other owners). Owners
# only: Debian makes some of them 0750 and changing the mode of a directory asterisk owns would
# need CAP_FOWNER.
for d in /var/lib/asterisk /var/log/asterisk /var/spool/asterisk /var/cache/asterisk /var/run/asterisk; do
  mkdir -p "$d"
  chown asterisk:asterisk "$d"
done

log "starting $(asterisk -V) with $found files from $src"
exec setpriv --reuid=asterisk --regid=asterisk --init-groups --inh-caps=-all --ambient-caps=-all \
  --no-new-privs -- asterisk -f -n "$@"
