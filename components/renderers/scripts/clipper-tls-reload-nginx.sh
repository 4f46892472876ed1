#!/bin/bash
# certbot deploy hook: a certificate changed (RENEWED_LINEAGE); load it into nginx, only if its
# config (with the new certificate) passes `nginx -t`, so a bad file never takes the site down.
# Installed with the TLS files of components/renderers/tls.py; needs no config file (certbot
# gives it RENEWED_LINEAGE in its environment).
set -euo pipefail

if ! nginx -t -q; then
  printf 'clipper-tls-reload-nginx: nginx -t failed; nginx keeps the old certificate\n' >&2
  exit 1
fi
systemctl reload nginx.service
printf 'clipper-tls-reload-nginx: reloaded nginx for %s\n' "${RENEWED_LINEAGE:-a renewal}"
