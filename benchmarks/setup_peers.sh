#!/usr/bin/env bash
# Create the peers' virtualenvs for the side-by-side benchmark (benchmarks/run.py):
#   benchmarks/.peers      RQ, SAQ (+ its PostgreSQL queue), Dramatiq, Celery, Huey
#   benchmarks/.peers-arq  arq (it needs redis-py below 6)
# Usage: bash benchmarks/setup_peers.sh [python]   (default: the interpreter of .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
python="${1:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then
        python="$(readlink -f "$root/.venv/bin/python")"
    else
        python="python3"
    fi
fi
make_env() {
    local dir="$1" reqs="$2"
    if [[ ! -x "$dir/bin/python" ]]; then
        "$python" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet -r "$reqs"
    echo "ready: $dir"
}
make_env "$here/.peers" "$here/requirements-peers.txt"
make_env "$here/.peers-arq" "$here/requirements-peers-arq.txt"
