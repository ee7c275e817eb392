#!/bin/bash
# Run the whole podkit test suite (unit + integration against the real peers)
# after making sure everything it needs is installed.  Extra arguments go to pytest.
set -Eeuo pipefail
cd "$(dirname "$(readlink -f "$0")")"
bash ./install.sh --no-demo
.venv/bin/ruff check .
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider "${@:-tests}" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: no tests ran" >&2
    exit 1
fi
exit "$rc"
