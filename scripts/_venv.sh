# Sourced by the scripts: make .venv (once) and install the project into it, editable, with the
# extras given as $1 (e.g. "server" or "server,client,test"). With $2 = "npm", also install the
# npm packages pinned by package-lock.json into node_modules (only scripts/test and
# scripts/vendor need them: the page's browser files are shipped in server/vendor).
# Re-running is cheap: pip and npm only run when pyproject.toml or package-lock.json changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
_script="scripts/$(basename "$0")"
_fail() { echo "$_script: $*" >&2; exit 1; }
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || _fail "$PY is missing: install Python 3.11 or newer (or set PYTHON)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || _fail "$PY is $("$PY" -c 'import sys; print(sys.version.split()[0])'); pipelines needs Python 3.11 or newer (set PYTHON)"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv >/dev/null 2>&1 || { rm -rf .venv; _fail "could not create .venv with $PY -m venv (Debian: apt-get install python3-venv)"; }
fi
extras="${1:-}"
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "$_script: installing .${extras:+[$extras]} into .venv (editable)..." >&2
  # pip's output is shown only when it fails (setuptools is chatty about editable installs).
  if ! _log="$(.venv/bin/python -m pip install -q --upgrade pip 2>&1 \
        && .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}" 2>&1)"; then
    echo "$_log" >&2
    _fail "pip could not install .${extras:+[$extras]} into .venv (its output is above)"
  fi
  touch "$stamp"
fi
if [ "${2:-}" = "npm" ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  command -v npm >/dev/null \
    || _fail "npm is missing: install Node.js with npm (Debian: apt-get install npm); it installs the browser libraries pinned by package-lock.json"
  npm ci --silent --no-audit --no-fund || _fail "npm ci failed (see above)"
fi
