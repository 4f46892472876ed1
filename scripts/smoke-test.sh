#!/usr/bin/env bash
# After `pulumi up`, from the CI runner (inside an admin network): is the stack really serving
# what was just shipped? Production's job waits for this on staging.
#   bash scripts/smoke-test.sh STACK
# 1. TLS is valid: curl verifies the chain and the name (TLS 1.2+ only), and the certificate
#    has at least MIN_CERT_DAYS left (default 14, the alert's threshold).
# 2. /health/ready answers 200 through the site (nginx, the backend, PostgreSQL and Redis).
# 3. Every host serves the release the stack just shipped, one release live, all healthy:
#    `python -m components ops status --expect-shipped` (the hosts' own clipper-release status,
#    compared with the stack's releaseImages output).
# Needs the Pulumi CLI (pulumi/actions puts it on PATH) and the venv (scripts/setup.sh).
set -euo pipefail
stack=${1:?usage: bash scripts/smoke-test.sh STACK}
cd "$(dirname "$0")/.."
min_days=${MIN_CERT_DAYS:-14}
attempts=${SMOKE_ATTEMPTS:-30}

site=$(pulumi stack output siteUrl -s "$stack")
host=${site#https://}
host=${host%%/*}
if [[ $site != https://* ]]; then
  echo "smoke: siteUrl $site is not https" >&2
  exit 1
fi

echo "smoke: $site/health/ready (a fresh certificate or droplet may take a few minutes)"
ready=""
for attempt in $(seq 1 "$attempts"); do
  if ready=$(curl --fail --silent --show-error --proto '=https' --tlsv1.2 --max-time 10 \
      "$site/health/ready" 2>&1); then
    break
  fi
  echo "smoke: attempt $attempt/$attempts: $ready"
  ready=""
  sleep 10
done
if [[ -z $ready ]]; then
  echo "smoke: FAILED: $site/health/ready did not answer 200 over valid TLS" >&2
  exit 1
fi
echo "smoke: ready: $ready"

echo "smoke: the certificate of $host has at least $min_days days left"
if ! openssl s_client -connect "$host:443" -servername "$host" -verify_return_error \
    </dev/null 2>/dev/null | openssl x509 -noout -subject -enddate -checkend $((min_days * 86400)); then
  echo "smoke: FAILED: the certificate of $host is invalid or expires within $min_days days" >&2
  exit 1
fi

echo "smoke: every host serves what the stack shipped"
.venv/bin/python -m components ops --stack "$stack" status --expect-shipped
echo "smoke: $stack passed"
