#!/bin/bash
# Clipper monitoring host: mount the data volume, prepare the data directories, (re)start the
# containers and wait until each answers. Run over SSH by Pulumi after every config change.
# Safe to run again.
#
# Fed by clipper-monitoring-activate.env beside it (rendered by
# components/renderers/monitoring_units.py, installed with this script over SSH):
#   DEVICE        the stack's DigitalOcean volume
#   MOUNT         where it is mounted
#   DATA_DIRS     one "UID GID DIR" a line: DIR under MOUNT, owned by the container's user
#   TEXTFILE_DIR  node_exporter's textfile directory
#   UNITS         the containers' units, in start order
#   UNIT_HEADER   the first line of every unit the renderer writes (retiring old ones)
#   HEALTH_URLS   one URL per container that has one; each must answer
set -euo pipefail

# shellcheck source=/dev/null  # rendered per stack; not in the repository
source "$(dirname "${BASH_SOURCE[0]}")/clipper-monitoring-activate.env"

step() { printf '==> clipper-monitoring-activate: %s\n' "$*"; }

step "waiting for the data volume ($DEVICE)"
for _ in $(seq 1 90); do
  [ -b "$DEVICE" ] && break
  sleep 2
done
if [ ! -b "$DEVICE" ]; then
  echo "the monitoring volume is not attached: $DEVICE is missing" >&2
  exit 1
fi

step "filesystem and mount"
# DigitalOcean formats a new volume (ext4); format here only a volume with no filesystem at all,
# never one that holds data.
if ! blkid -o value -s TYPE "$DEVICE" >/dev/null; then
  mkfs.ext4 -q -L clipper-monitor "$DEVICE"
fi
uuid=$(blkid -o value -s UUID "$DEVICE")
install -d -m 0755 "$MOUNT"
if ! grep -q "[[:space:]]${MOUNT}[[:space:]]" /etc/fstab; then
  echo "UUID=$uuid $MOUNT ext4 defaults,nofail,noatime,discard 0 2" >> /etc/fstab
fi
systemctl daemon-reload
mountpoint -q "$MOUNT" || mount "$MOUNT"

step "data directories"
for entry in "${DATA_DIRS[@]}"; do
  read -r uid gid dir <<<"$entry"
  install -d -m 0750 -o "$uid" -g "$gid" "$MOUNT/$dir"
done
install -d -m 0755 "$TEXTFILE_DIR"

# A host created while node_exporter came from the distribution still has that package's
# service on the same port: it gives way to the pinned container.
step "node_exporter: the pinned container replaces the distribution's service"
systemctl disable --now prometheus-node-exporter.service 2>/dev/null || true

# Units of ours that this host no longer runs go (clipper-retire-units, installed beside this).
step "retire containers this host no longer runs"
"$(dirname "${BASH_SOURCE[0]}")/clipper-retire-units" "$UNIT_HEADER" "${UNITS[@]}"

step "containers: ${UNITS[*]}"
systemctl enable "${UNITS[@]}"
systemctl restart "${UNITS[@]}"

step "waiting until each answers"
for url in "${HEALTH_URLS[@]}"; do
  curl --fail --silent --show-error --output /dev/null --retry 60 --retry-delay 2 \
    --retry-all-errors --max-time 5 "$url"
done
step "monitoring is up"
