#!/bin/bash
# Clipper: retire the container units a host no longer runs. Called by the activation scripts
# beside it (clipper-monitoring-activate, clipper-agents-activate) as
#   clipper-retire-units UNIT_HEADER UNIT...
# A container the renderer no longer declares for this host (a log shipper replaced, say)
# would keep running from its old unit: every /etc/systemd/system/clipper-*.service whose first
# line is UNIT_HEADER and that is not one of the UNITs is stopped, disabled and removed. Units
# from elsewhere (backups, TLS) lack the header and are never touched.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: clipper-retire-units UNIT_HEADER UNIT..." >&2
  exit 64
fi
header=$1
shift
keep=" $* "
for path in /etc/systemd/system/clipper-*.service; do
  [[ -e ${path} ]] || continue
  unit=$(basename "${path}")
  case "${keep}" in *" ${unit} "*) continue ;; esac
  head -n 1 "${path}" | grep -qxF "${header}" || continue
  systemctl disable --now "${unit}" || true
  rm -f "${path}"
  printf '==> clipper-retire-units: retired %s\n' "${unit}"
done
