#!/usr/bin/env bash
# Print the path of a Python interpreter of version X.Y (the first argument), or fail with one line saying how to
# get one. Looks at $PYTHON<XY> (e.g. PYTHON310), then pythonX.Y on PATH, then pyenv's versions (newest patch first).
set -euo pipefail
want="${1:?usage: find_python.sh X.Y}"
var="PYTHON${want//./}"
candidates=()
[ -n "${!var:-}" ] && candidates+=("${!var}")
command -v "python$want" >/dev/null 2>&1 && candidates+=("$(command -v "python$want")")
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for dir in $(ls -d "$root/versions/$want".* 2>/dev/null | sort -t. -k3,3nr); do
    candidates+=("$dir/bin/python")
done
for python in "${candidates[@]+"${candidates[@]}"}"; do
    if "$python" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
        echo "$python"
        exit 0
    fi
done
echo "error: no Python $want found (tried \$$var, python$want on PATH, $root/versions/$want.*);" \
     "install it (e.g. \`pyenv install $want\`) or set $var=/path/to/python$want" >&2
exit 1
