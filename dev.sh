#!/bin/sh
# wsproxy's two commands. Each creates .venv (with everything it needs) when missing.
#   ./dev.sh demo   record the chat demo and print its summary
#   ./dev.sh test   run the whole test suite
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-$(cksum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ]; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
case "${1:-}" in
    demo) shift; exec .venv/bin/wsproxy demo "$@" ;;
    test) shift; exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: ./dev.sh demo | test [pytest args]" >&2; exit 2 ;;
esac
