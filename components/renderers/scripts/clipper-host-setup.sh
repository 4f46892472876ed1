#!/bin/bash
# Clipper host setup: run once by cloud-init (runcmd) after the packages are installed and
# every file is in place, on every host of every role. Safe to run again. The last step writes
# READY_FILE: its presence means every step before it succeeded.
#
# Fed by clipper-host-setup.env beside it (rendered by components/renderers/cloud_init.py and
# written by cloud-init's write_files with this script):
#   DEPLOY_USER    the one user sshd lets in
#   UFW_RULES      the firewall's allow list, one "PORT SOURCE COMMENT" a line (SOURCE "any":
#                  everyone); every other inbound connection is denied
#   ROLE_COMMANDS  the role's own steps, one shell line each, run in order
#   HOST_DIRS      directories the host scripts expect (made just before the marker)
#   READY_FILE     the ready marker the remote commands wait for
set -euo pipefail

# shellcheck source=/dev/null  # rendered per stack and role; not in the repository
source "$(dirname "${BASH_SOURCE[0]}")/clipper-host-setup.env"

step() { printf '==> clipper-host-setup: %s\n' "$*"; }

step "kernel settings and journal limits"
sysctl --quiet --system
systemctl restart systemd-journald.service

step "host firewall (ufw): deny inbound except the rules below"
ufw default deny incoming
ufw default allow outgoing
for rule in "${UFW_RULES[@]}"; do
  read -r port from comment <<<"${rule}"
  if [[ ${from} == any ]]; then
    ufw allow proto tcp to any port "${port}" comment "${comment}"
  else
    ufw allow proto tcp from "${from}" to any port "${port}" comment "${comment}"
  fi
done
ufw --force enable

step "ssh: keys only, no root, only ${DEPLOY_USER}"
sshd -t
systemctl try-reload-or-restart ssh.service

step "services: docker, fail2ban, time sync, unattended upgrades"
systemctl daemon-reload
systemctl enable --now docker.service fail2ban.service chrony.service unattended-upgrades.service
systemctl restart fail2ban.service docker.service

# Each line is shell as the renderer wrote it (`step "..."` prints a heading); a failing line
# stops the script here, before the marker.
for line in "${ROLE_COMMANDS[@]}"; do
  eval "${line}"
done

step "ready"
install -d -m 0755 "${HOST_DIRS[@]}"
date -u +%Y-%m-%dT%H:%M:%SZ >"${READY_FILE}.tmp"
mv "${READY_FILE}.tmp" "${READY_FILE}"
