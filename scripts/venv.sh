# Shared by ./consentry and ./test: create .venv and install the project when pyproject changes.
# Usage: ensure_venv ""        (runtime only)
#        ensure_venv "test"    (with the test extras)
VENV="${CONSENTRY_VENV:-$here/.venv}"
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "consentry needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV ..." >&2
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  fi
  local spec="$here"
  [ -n "$extras" ] && spec="$here[$extras]"
  local stamp="$VENV/.consentry-installed-${extras:-base}"
  local digest
  digest="$(cat "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing consentry${extras:+ [$extras]} into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet -e "$spec" >&2
    echo "$digest" > "$stamp"
  fi
}
