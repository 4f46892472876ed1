#!/bin/bash
# Issue the Let's Encrypt certificate for the site once its DNS points at this host. Run by
# clipper-tls-issue.timer until the certificate exists. Safe to re-run, also after a crash.
# Exits 0 when the certificate exists or was issued, EX_TEMPFAIL while http://DOMAIN/ does not
# reach this host yet (the timer retries), 1 when certbot failed (the placeholder stays).
#
# Fed by clipper-tls.env beside it (rendered by components/renderers/tls.py, written with this
# script): DOMAIN, EMAIL (the ACME account's), LE_DIR, WORK_DIR, LOGS_DIR (certbot's dirs),
# LIVE_DIR, RENEWAL_CONF (the lineage's paths), WEBROOT (nginx's ACME webroot), RELOAD_HOOK
# (certbot's deploy hook), HTTP_PORT (where nginx serves the challenge), EX_TEMPFAIL,
# PLACEHOLDER_MARKER, RENEW_UNIT (the renewal timer's unit, for the log).
set -euo pipefail

# shellcheck source=/dev/null  # rendered per stack; not in the repository
source "$(dirname "${BASH_SOURCE[0]}")/clipper-tls.env"

readonly PARKED=${LE_DIR}/clipper-placeholder-parked
readonly CHALLENGE_DIR=${WEBROOT}/.well-known/acme-challenge

log() { printf 'clipper-tls-issue: %s\n' "$*" >&2; }

install -d -m 0755 "${LE_DIR}"
exec 9>"${LE_DIR}/.clipper-tls-issue.lock"
if ! flock -n 9; then
  log "another issuance is running"
  exit "${EX_TEMPFAIL}"
fi

# A crash while the placeholder was parked: put it back before anything else.
if [[ ! -e ${LIVE_DIR} && -d ${PARKED} && ! -e ${RENEWAL_CONF} ]]; then
  mv "${PARKED}" "${LIVE_DIR}"
  log "restored the parked placeholder"
fi

if [[ -e ${RENEWAL_CONF} ]]; then
  log "the certificate for ${DOMAIN} exists; ${RENEW_UNIT}.timer renews it"
  rm -rf "${PARKED}"
  exit 0
fi

# Does http://NAME/ reach this nginx? The same path Let's Encrypt will fetch, with a token only
# this run knows. A failed probe costs nothing; a failed validation counts against the limits.
install -d -m 0755 "${CHALLENGE_DIR}"
token=clipper-probe-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s' "${token}" >"${CHALLENGE_DIR}/${token}"
chmod 0644 "${CHALLENGE_DIR}/${token}"
port=""
[[ ${HTTP_PORT} == 80 ]] || port=":${HTTP_PORT}"
reaches_here() {
  local answer
  answer=$(curl --silent --max-time 10 --max-redirs 0 \
    "http://$1${port}/.well-known/acme-challenge/${token}" || true)
  [[ ${answer} == "${token}" ]]
}
names=()
if reaches_here "${DOMAIN}"; then
  names+=(--domain "${DOMAIN}")
  # www is in the certificate when its DNS points here too (nginx redirects it to the apex).
  if reaches_here "www.${DOMAIN}"; then
    names+=(--domain "www.${DOMAIN}")
  else
    log "www.${DOMAIN} does not reach this host; the certificate covers ${DOMAIN} only"
  fi
fi
rm -f "${CHALLENGE_DIR}/${token}"
if [[ ${#names[@]} -eq 0 ]]; then
  log "http://${DOMAIN}/ does not reach this host yet (DNS or firewall); retrying later"
  exit "${EX_TEMPFAIL}"
fi

# certbot will not create a lineage over a live dir it did not make: park the placeholder.
# nginx keeps serving the placeholder it has loaded; the deploy hook reloads it on success.
if [[ -e ${LIVE_DIR} ]]; then
  if [[ ! -e ${LIVE_DIR}/${PLACEHOLDER_MARKER} ]]; then
    log "${LIVE_DIR} is neither certbot's nor the placeholder; not touching it"
    exit 1
  fi
  rm -rf "${PARKED}"
  mv "${LIVE_DIR}" "${PARKED}"
fi

status=0
certbot certonly --non-interactive --agree-tos --no-eff-email --email "${EMAIL}" \
  --webroot --webroot-path "${WEBROOT}" "${names[@]}" --cert-name "${DOMAIN}" \
  --key-type ecdsa --deploy-hook "${RELOAD_HOOK}" \
  --config-dir "${LE_DIR}" --work-dir "${WORK_DIR}" \
  --logs-dir "${LOGS_DIR}" || status=$?

if [[ ${status} -ne 0 || ! -s ${LIVE_DIR}/fullchain.pem ]]; then
  if [[ ! -e ${LIVE_DIR} && -d ${PARKED} ]]; then
    mv "${PARKED}" "${LIVE_DIR}"
  fi
  log "certbot failed (exit ${status}); the placeholder stays; see ${LOGS_DIR}"
  exit 1
fi
rm -rf "${PARKED}"
log "issued the certificate for ${DOMAIN}"
