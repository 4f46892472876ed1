#!/bin/bash
# Give nginx a certificate to start with until Let's Encrypt issues the real one: a self-signed
# placeholder in certbot's live dir. Does nothing when a certificate is there. Safe to re-run.
# Run by cloud-init's setup script and before every nginx start (a drop-in of nginx.service).
#
# Fed by clipper-tls.env beside it (rendered by components/renderers/tls.py, written with this
# script): DOMAIN, LE_DIR (certbot's config dir), LIVE_DIR, RENEWAL_CONF (the lineage's paths),
# WEBROOT (nginx's ACME webroot), PLACEHOLDER_DAYS, PLACEHOLDER_MARKER (the file that tells the
# placeholder from certbot's own certificate).
set -euo pipefail

# shellcheck source=/dev/null  # rendered per stack; not in the repository
source "$(dirname "${BASH_SOURCE[0]}")/clipper-tls.env"

log() { printf 'clipper-tls-placeholder: %s\n' "$*" >&2; }

# nginx serves the ACME challenge from here (as www-data: world-readable).
install -d -m 0755 "${WEBROOT}/.well-known/acme-challenge"

complete=yes
for name in fullchain.pem privkey.pem chain.pem; do
  [[ -s ${LIVE_DIR}/${name} ]] || complete=no
done
if [[ ${complete} == yes ]]; then
  exit 0
fi
if [[ -e ${RENEWAL_CONF} ]]; then
  log "certbot's lineage for ${DOMAIN} is incomplete; not replacing it (run: certbot renew)"
  exit 1
fi

install -d -m 0755 "${LE_DIR}"
install -d -m 0700 "${LE_DIR}/live"
umask 077
tmp=$(mktemp -d "${LE_DIR}/live/.placeholder.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days "${PLACEHOLDER_DAYS}" -subj "/CN=${DOMAIN}" \
  -addext "subjectAltName=DNS:${DOMAIN},DNS:www.${DOMAIN}" \
  -keyout "${tmp}/privkey.pem" -out "${tmp}/fullchain.pem" 2>/dev/null
cp "${tmp}/fullchain.pem" "${tmp}/chain.pem"
cp "${tmp}/fullchain.pem" "${tmp}/cert.pem"
: >"${tmp}/${PLACEHOLDER_MARKER}"
chmod 0755 "${tmp}"
chmod 0644 "${tmp}/fullchain.pem" "${tmp}/chain.pem" "${tmp}/cert.pem"

# Only a placeholder (or debris) can be here: certbot's own lineage has a renewal config.
rm -rf "${LIVE_DIR}"
mv "${tmp}" "${LIVE_DIR}"
trap - EXIT
log "self-signed placeholder for ${DOMAIN} in ${LIVE_DIR} (until Let's Encrypt issues)"
