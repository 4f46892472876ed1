#!/usr/bin/env bash
# Create .venv and install the program's pinned dependencies (add --dev for the test tools).
# This is also what `pulumi preview/up` needs: Pulumi.yaml points the python runtime at .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements="requirements.txt"
if [[ "${1:-}" == "--dev" ]]; then
  requirements="requirements-dev.txt"
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
echo "==> installing $requirements into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
