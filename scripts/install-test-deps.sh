#!/usr/bin/env bash
# Install every Debian package that the host tests (tests/host, tests/support) start or call.
#
# Why a script: CI and every new machine start without these packages; the tests start the real
# services themselves (on loopback, in temp dirs), so packages must be installed but their daemons
# must NOT be started by the package scripts (there is no systemd here anyway).
#
# Idempotent: when every package is already installed it does nothing (set
# CLIPPER_FORCE_APT=1 to run apt-get anyway). Needs root, or sudo.
set -euo pipefail

PACKAGES=(
  # web proxy; nginx-light pulls nginx + the echo module; stream is a dynamic module
  nginx-light
  libnginx-mod-stream
  # monitoring config checks (promtool, amtool)
  prometheus
  prometheus-alertmanager
  prometheus-blackbox-exporter
  # cloud-init user-data schema checks, and the tools that read the files it writes
  cloud-init
  shellcheck
  logrotate
  fail2ban
  python3-systemd
  # systemd-analyze (verify the rendered units); certbot against Pebble, Let's Encrypt's
  # ACME test server, for the edge's certificate issuance and renewal through live nginx
  systemd
  certbot
  pebble
  # a real Docker engine and a registry-free base image
  docker.io
  debootstrap
  # a loopback image registry: the end-to-end release test pushes, pins by digest and pulls
  docker-registry
  debian-archive-keyring
  gpgv
  tar
  xz-utils
  # visudo checks the deploy user's rendered sudoers file
  sudo
  # SSH test host and client
  openssh-server
  openssh-client
  openssh-sftp-server
  # psql (the release script creates extensions with it); PgBouncer stands in for DigitalOcean's
  # connection pool. PostgreSQL 17 and Valkey 8 themselves run from the trixie services image
  # (tests/support/data_stores.py), as do pg_dump/pg_restore 17 for the backup tests.
  postgresql-client
  pgbouncer
  # the S3 client clipper-backup uses (the backup host tests talk to moto on loopback)
  rclone
  # TLS tunnels, load generation, plumbing
  stunnel4
  wrk
  curl
  ca-certificates
  openssl
  iproute2
  procps
)

log() { printf '==> %s\n' "$*"; }

SUDO=()
if [[ ${EUID} -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-test-deps: must run as root (or have sudo)" >&2
    exit 1
  fi
fi

log "checking which of ${#PACKAGES[@]} packages are missing"
missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null || true)
  if [[ ${status} != installed ]]; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 && ${CLIPPER_FORCE_APT:-0} != 1 ]]; then
  log "all packages already installed; nothing to do"
  exit 0
fi
log "missing: ${missing[*]:-(none; forced)}"

# Package maintainer scripts call invoke-rc.d/deb-systemd-invoke, which ask policy-rc.d whether
# a daemon may start; 101 means "no". Keep an existing policy (e.g. a container's) untouched.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [[ ${created_policy} -eq 1 ]]; then
    log "removing temporary ${POLICY}"
    "${SUDO[@]}" rm -f "${POLICY}"
  fi
}
trap cleanup EXIT
if [[ ! -e ${POLICY} ]]; then
  log "installing temporary ${POLICY} (exit 101) so no daemon starts"
  printf '#!/bin/sh\n# installed by install-test-deps.sh: never start daemons\nexit 101\n' |
    "${SUDO[@]}" tee "${POLICY}" >/dev/null
  "${SUDO[@]}" chmod 0755 "${POLICY}"
  created_policy=1
else
  log "keeping existing ${POLICY}"
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q

log "apt-get install ${PACKAGES[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${APT_OPTS[@]}" "${PACKAGES[@]}"

log "verifying the binaries the tests call"
for bin in nginx promtool amtool prometheus-blackbox-exporter cloud-init shellcheck dockerd containerd debootstrap \
  /usr/sbin/sshd ssh ssh-keygen psql pgbouncer stunnel4 wrk curl openssl ip logrotate \
  fail2ban-client docker-registry systemd-analyze certbot pebble pebble-challtestsrv rclone; do
  if ! command -v "${bin}" >/dev/null 2>&1; then
    echo "install-test-deps: ${bin} still missing after install" >&2
    exit 1
  fi
done
log "done"
