"""Autobahn|Testsuite through wsproxy: the same cases against an echo server alone and behind
`wsproxy record`, verdicts side by side.

    .venv/bin/python scripts/autobahn.py            # the quick set: all cases but 12.* and 13.* (~20 s)
    .venv/bin/python scripts/autobahn.py --full     # every case, compression included (minutes)

Uses kosoku (PyPI), which runs Autobahn's own case files with the original `wstest` verdicts.
Exits 1 when any case FAILED through the proxy. Reports (HTML and JSON per case) land in --outdir.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ECHO = Path(__file__).with_name("echo_server.py")
ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def kosoku() -> str:
    found = shutil.which("kosoku") or str(Path(sys.executable).with_name("kosoku"))
    if not Path(found).exists():
        raise SystemExit("kosoku is not installed: pip install kosoku (it runs the Autobahn cases)")
    return found


def run_cases(port: int, outdir: Path, full: bool) -> dict[str, dict]:
    excludes = [] if full else ["-x", "12.*", "-x", "13.*"]
    subprocess.run([kosoku(), f"127.0.0.1:{port}", *excludes, "-p", "4", "-o", str(outdir)],
                   check=False, capture_output=True, text=True)
    report = json.loads((outdir / "index.json").read_text())
    return next(iter(report.values()))


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every case, compression (12.*, 13.*) included")
    parser.add_argument("--outdir", type=Path, default=None, help="where the reports go (default: a temp dir)")
    args = parser.parse_args()
    outdir = args.outdir or Path(tempfile.mkdtemp(prefix="wsproxy-autobahn-"))
    outdir.mkdir(parents=True, exist_ok=True)
    echo_port, proxy_port = free_port(), free_port()
    echo = subprocess.Popen([sys.executable, str(ECHO), str(echo_port)])
    proxy = subprocess.Popen([sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{proxy_port}",
                              "--upstream", f"ws://127.0.0.1:{echo_port}", "--db", str(outdir / "autobahn.duckdb"),
                              "--quiet", "--log-format", "json", "--no-check",
                              "--max-message-size", str(16 * 1024 * 1024)],
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(echo_port)
        if proxy.poll() is not None:
            raise SystemExit(f"wsproxy record did not start: {proxy.stderr.read().strip()}")
        wait_for_port(proxy_port)
        started = time.perf_counter()
        direct = run_cases(echo_port, outdir / "direct", args.full)
        through = run_cases(proxy_port, outdir / "proxy", args.full)
        elapsed = time.perf_counter() - started
    finally:
        proxy.send_signal(signal.SIGINT)
        try:
            _, err = proxy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proxy.kill()
            err = ""
        echo.terminate()
        echo.wait(10)
    counts = {name: Counter(v["behavior"] for v in cases.values()) for name, cases in (("direct", direct),
                                                                                       ("proxy", through))}
    print(f"Autobahn|Testsuite ({'full' if args.full else 'quick: all but 12.*, 13.*'}), {len(through)} cases, "
          f"{elapsed:.0f} s; reports in {outdir}")
    print(f"{'verdict':<15}{'echo server':>12}{'through wsproxy':>18}")
    for verdict in ORDER:
        if counts["direct"][verdict] or counts["proxy"][verdict]:
            print(f"{verdict:<15}{counts['direct'][verdict]:>12}{counts['proxy'][verdict]:>18}")
    differing = sorted((case for case in through if through[case]["behavior"] != "OK"
                        or direct.get(case, {}).get("behavior") != "OK"), key=case_key)
    if differing:
        print(f"\n{'case':<10}{'echo server':>16}{'through wsproxy':>18}")
        for case in differing:
            print(f"{case:<10}{direct.get(case, {}).get('behavior', '-'):>16}{through[case]['behavior']:>18}")
    summary = next((json.loads(line) for line in (err or "").splitlines() if '"summary"' in line), {})
    print(f"\nrecorder: {summary.get('connections', '?')} connections, {summary.get('rows_written', '?')} frames "
          f"written to {outdir / 'autobahn.duckdb'}" + (f", error: {summary['error']}" if summary.get("error") else ""))
    return 1 if counts["proxy"]["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
