#!/bin/sh
# wsproxy's commands for developers. Each creates .venv (with everything it needs) when missing.
#   ./dev.sh demo      record the chat demo and print its summary
#   ./dev.sh test      ruff and mypy, then the whole test suite (pytest arguments may follow)
#   ./dev.sh upgrade   try the newest releases of every dependency in .venv-latest, run the suite
#                      there, and on success pin them in constraints.txt (then commit it)
#
# .venv installs exactly the versions in constraints.txt, the ones the suite passed with, so that a
# new release of a dependency cannot break a fresh clone. The browser tests need Chromium and the Spark
# test Java: as root (CI) they are installed with apt-get when missing; elsewhere those tests are
# skipped unless CI is set. The AsyncAPI tests need Node.js (npm installs the official parser).
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

# install VENV [constraints file]: create VENV and install wsproxy with its test dependencies
install() {
    venv=$1
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    if [ -n "${2:-}" ]; then
        # PIP_CONSTRAINT also pins the build backend pip installs in its isolated build environment
        PIP_CONSTRAINT="$PWD/$2" "$venv/bin/python" -m pip install -qq --disable-pip-version-check -e ".[test]"
    else
        "$venv/bin/python" -m pip install -qq --disable-pip-version-check --upgrade pip setuptools
        "$venv/bin/python" -m pip install -qq --disable-pip-version-check --upgrade --upgrade-strategy eager -e ".[test]"
    fi
}

ensure_venv() {
    stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
    if [ ! -f "$stamp" ]; then
        echo "dev.sh: installing wsproxy and the pinned versions of constraints.txt into .venv" >&2
        install .venv constraints.txt
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
}

ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
            || [ -n "${WSPROXY_CHROMIUM:-}" ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: installing Debian's chromium for the browser tests (apt-get)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "dev.sh: no Chromium found: the browser tests will be skipped (apt-get install chromium)" >&2
    fi
}

ensure_java() {
    if command -v java >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: installing Debian's openjdk-17-jre-headless for the Spark test (apt-get)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    else
        echo "dev.sh: no Java found: the Spark test will be skipped (apt-get install openjdk-17-jre-headless)" >&2
    fi
}

# the official AsyncAPI parser (npm) that tests/test_spec.py runs over the documents wsproxy writes,
# at the versions of tests/asyncapi/package-lock.json
ensure_asyncapi_parser() {
    lock=tests/asyncapi/node_modules/.installed-$(cksum < tests/asyncapi/package-lock.json | cut -d' ' -f1)
    if [ -f "$lock" ]; then
        return
    fi
    if command -v npm >/dev/null 2>&1; then
        echo "dev.sh: installing @asyncapi/parser for the AsyncAPI tests (npm ci in tests/asyncapi)" >&2
        (cd tests/asyncapi && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$lock"
    else
        echo "dev.sh: no npm found: the AsyncAPI parser tests will be skipped (install Node.js)" >&2
    fi
}

case "${1:-}" in
    demo) shift; ensure_venv; exec .venv/bin/wsproxy demo "$@" ;;
    test)
        shift; ensure_venv; ensure_chromium; ensure_java; ensure_asyncapi_parser
        # lint and types first (pyproject.toml [tool.ruff], [tool.mypy]): seconds, and CI runs them too
        .venv/bin/ruff check --quiet src tests
        .venv/bin/mypy
        exec .venv/bin/python -m pytest "$@" ;;
    upgrade)
        shift
        rm -rf .venv-latest
        install .venv-latest
        ensure_chromium; ensure_java; ensure_asyncapi_parser
        .venv-latest/bin/python -m pytest "$@"
        {
            echo "# The exact versions the whole suite passed with (./dev.sh upgrade, $(date -u +%Y-%m-%d), $(.venv-latest/bin/python -V))."
            echo "# ./dev.sh demo and ./dev.sh test install these; pyproject.toml keeps the compatible ranges."
            .venv-latest/bin/python -m pip freeze --all --exclude-editable --disable-pip-version-check \
                | grep -v -i -E '^(wsproxy|pip)=='
        } > constraints.txt
        echo "dev.sh: the suite passed on the newest releases; constraints.txt now pins them (git diff constraints.txt)" >&2
        ;;
    *) echo "usage: ./dev.sh demo | test [pytest args] | upgrade [pytest args]" >&2; exit 2 ;;
esac
