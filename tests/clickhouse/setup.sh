#!/usr/bin/env bash
# Creates (idempotently) the virtualenv that runs chfront.py, the ClickHouse test front:
#   ${CARGO_TARGET_DIR:-<repo>/target}/chdb-venv  with the packages of requirements.txt.
# A marker file holding the hash of requirements.txt makes a second run a fast no-op.
# Progress goes to stderr; the last stdout line is `VENV_PYTHON=<path to the venv's python>`.
# Environment: PYTHON (interpreter used to create the venv, default python3),
#              CHDB_VENV (venv directory, overrides the default location).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="${CHDB_VENV:-$target/chdb-venv}"
req="$here/requirements.txt"
marker="$venv/.chfront-installed"
python="${PYTHON:-python3}"

say() { echo "[chdb-setup] $*" >&2; }

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -f "$marker" && "$(cat "$marker")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "VENV_PYTHON=$venv/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
# Two test binaries may start at once: serialize the installation.
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    say "another setup is running; waiting for $venv.lock"
    flock 9
fi
# Someone else may have finished while we waited.
if [[ -f "$marker" && "$(cat "$marker")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "VENV_PYTHON=$venv/bin/python"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    say "creating virtualenv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
say "installing $(grep -v '^#' "$req" | tr '\n' ' ')(chDB is a large download: ~150 MB)"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet --progress-bar off -r "$req" >&2
"$venv/bin/python" - <<'PY' >&2
import chdb, lz4.block, lz4.frame
from clickhouse_cityhash.cityhash import CityHash128
print("[chdb-setup] chDB", chdb.__version__, "engine", chdb.query("SELECT version()", "TabSeparatedRaw").bytes().decode().strip())
PY
echo "$want" > "$marker"
say "ready"
echo "VENV_PYTHON=$venv/bin/python"
