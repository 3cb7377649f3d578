"""``spanledger demo --serve``: after the demo the collector keeps serving the live report,
prints its URL (with the token), answers it, refuses it without the token, and stops
cleanly on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.demo import clean_env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_demo_serves_the_live_report_until_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanledger", "demo", "--calls", "100", "--days", "3", "--serve",
         "--quiet"], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r"Live report: (http://127\.0\.0\.1:\d+/report\?\S+)$", line.strip())
            url = m.group(1) if m else None
        assert url, "".join(lines)[-2000:] + (proc.stderr.read() if proc.poll() is not None
                                              and proc.stderr else "")
        assert "token=" in url and "from=" in url and "to=" in url
        status, html = _get(url)
        assert status == 200
        assert '<section id="drill-down">' in html and "· live" in html
        assert re.search(r'<option value="support"', html)  # the pickers know the teams
        status, html = _get(url + "&team=sales")
        assert status == 200 and "team sales" in html
        base = url.split("?", 1)[0]
        assert _get(base)[0] == 401
        assert _get(base + "?token=nope")[0] == 401
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert out.rstrip().endswith("Stopped serving.")
    assert "Traceback" not in err
