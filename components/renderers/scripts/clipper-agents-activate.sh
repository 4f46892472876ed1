#!/bin/bash
# Clipper app host: let Prometheus reach Alloy's metrics from the VPC, (re)start node_exporter
# and Alloy and wait until each answers. Run over SSH by Pulumi. Safe to run again.
#
# Fed by clipper-agents-activate.env beside it (rendered by
# components/renderers/monitoring_units.py, installed with this script over SSH):
#   ALLOY_PORT, ALLOY_FROM, ALLOY_RULE_COMMENT  the ufw rule for Alloy's metrics (cloud-init
#                 opens it on new droplets; a droplet created before gets it here)
#   STATE_DIR     Alloy's storage on the host
#   TEXTFILE_DIR  node_exporter's textfile directory
#   UNITS         the agents' units, in start order
#   UNIT_HEADER   the first line of every unit the renderer writes (retiring old ones)
#   HEALTH_URLS   one URL per agent; each must answer
set -euo pipefail

# shellcheck source=/dev/null  # rendered per stack; not in the repository
source "$(dirname "${BASH_SOURCE[0]}")/clipper-agents-activate.env"

step() { printf '==> clipper-agents-activate: %s\n' "$*"; }

step "host firewall: alloy metrics from the VPC"
# ufw skips a rule it already has.
ufw allow proto tcp from "$ALLOY_FROM" to any port "$ALLOY_PORT" comment "$ALLOY_RULE_COMMENT"

# A host created while node_exporter came from the distribution still has that package's
# service on the same port: it gives way to the pinned container.
step "node_exporter: the pinned container replaces the distribution's service"
systemctl disable --now prometheus-node-exporter.service 2>/dev/null || true

# Units of ours that this host no longer runs go (clipper-retire-units, installed beside this).
step "retire containers this host no longer runs"
"$(dirname "${BASH_SOURCE[0]}")/clipper-retire-units" "$UNIT_HEADER" "${UNITS[@]}"

step "agents: ${UNITS[*]}"
install -d -m 0700 "$STATE_DIR"
install -d -m 0755 "$TEXTFILE_DIR"
systemctl daemon-reload
systemctl enable "${UNITS[@]}"
systemctl restart "${UNITS[@]}"
for url in "${HEALTH_URLS[@]}"; do
  curl --fail --silent --show-error --output /dev/null --retry 60 --retry-delay 2 \
    --retry-all-errors --max-time 5 "$url"
done
step "agents are up"
