#!/usr/bin/env bash
# Creates (or refreshes) the development environment at .venv/ in the repository root.
# Idempotent: a second run with unchanged requirements only checks a stamp and exits.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
stamp=.venv/.setup-stamp
want=$(cat tools/requirements.txt tools/constraints.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && .venv/bin/python -c 'import emotion_perception' 2>/dev/null; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's site configuration names local mirrors that may be absent: drop its "is ignored" warnings.
quiet_pip() { .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
quiet_pip -c tools/constraints.txt -r tools/requirements.txt
quiet_pip --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "environment ready: $root/.venv"
