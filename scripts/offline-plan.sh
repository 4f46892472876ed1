#!/usr/bin/env bash
# The main job with no cloud and no account: set up, then show what a stack declares (the
# offline plan) and write every file it would put on a host (the offline render).
#   bash scripts/offline-plan.sh [STACK]     (default: staging; files land in build/STACK)
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-staging}

bash scripts/setup.sh
echo "==> offline plan of stack '$stack' (Pulumi mock runtime)"
.venv/bin/python -m components plan --stack "$stack"
echo "==> offline render of stack '$stack' into build/$stack"
rm -rf "build/$stack"
.venv/bin/python -m components render --stack "$stack" --out "build/$stack"
