#!/usr/bin/env bash
# Install wslab from a wheelhouse into a fresh venv with every index disabled, then run the doctor
# and the first notebook's imports: the command docs/instructors.md gives an offline workshop room.
set -euo pipefail
wheelhouse=$(cd "${1:-wheelhouse}" && pwd)
lock=$(cd "$(dirname "${2:-requirements.lock}")" && pwd)/$(basename "${2:-requirements.lock}")
python=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
# --isolated and an empty config: nothing from this machine's pip configuration (extra indexes,
# find-links) may help; only the wheelhouse counts.
# The tested set first (hash-checked against the lock), then wslab itself without resolving again.
PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install --isolated --no-index \
  --find-links "$wheelhouse" --disable-pip-version-check -q -r "$lock"
PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install --isolated --no-index \
  --find-links "$wheelhouse" --disable-pip-version-check -q --no-deps wslab
"$venv/bin/python" -m wslab doctor >/dev/null
"$venv/bin/python" -c 'import wslab, wslab.lab, wslab.chat, jupyterlab, nbval; print("offline install OK:", wslab.__version__)'
