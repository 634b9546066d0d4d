#!/usr/bin/env bash
# Wire-compatibility suite: drives the unmodified PyPI package codegate-sdk 0.1.1
# against a real CodeGate server binary.
#
#   bash tests/compat/run.sh [extra pytest args]
#
# Uses the binary in $CODEGATE_BIN (default <repo>/target/debug/codegate); it never
# builds the server. The virtualenv lives in <repo>/.venv-compat and is reinstalled
# only when requirements.txt changes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-compat"
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"

BIN="${CODEGATE_BIN:-$REPO/target/debug/codegate}"
if [[ ! -f "$BIN" ]]; then
    echo "run.sh: CodeGate server binary not found at '$BIN'." >&2
    echo "run.sh: build it first (cargo build -p <cli crate>) or point CODEGATE_BIN at one." >&2
    exit 1
fi
if [[ ! -x "$BIN" ]]; then
    echo "run.sh: '$BIN' exists but is not executable." >&2
    exit 1
fi
# Absolute, so it still resolves after we change directory below.
CODEGATE_BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
export CODEGATE_BIN

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi

wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
installed="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$wanted" != "$installed" ]]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$wanted" >"$STAMP"
fi

cd "$REPO"
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/compat "$@"
