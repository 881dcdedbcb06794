#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian/Ubuntu machine with Python 3.11:
#   1. system packages (a C++ compiler for the Chamfer custom op, python3-venv), via apt when missing;
#   2. a virtual environment in .venv with the pinned requirements (skipped when already up to date);
#   3. the CPU kernel of the Chamfer custom op (and the CUDA kernel where nvcc and a GPU build of TF exist).
# Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" - <<'PY' || { echo "install.sh: Python 3.11 or 3.12 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)
PY

# 1. System packages.
missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# 2. Virtual environment with the pinned requirements.
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

# 3. The Chamfer custom op (rebuilt only when its sources or TensorFlow changed).
.venv/bin/python -m losses.ops.build
