"""Headless Chromium for the HTML report tests: dump the DOM, measure, print to PDF.

The report has no script of its own; to measure layout a test renders a copy with
one appended (:func:`measure_widths`), so the shipped page stays script-free.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_MEASURE = """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > vw + 0.5 || r.left < -0.5) {
      const where = el.closest('section');
      wide.push(`${el.tagName.toLowerCase()}.${el.getAttribute('class') || ''} in `
                + `${where ? where.id : 'page'}: ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  const out = document.createElement('pre');
  out.id = 'spanledger-measure';
  out.textContent = JSON.stringify({viewport: vw, scroll: document.documentElement.scrollWidth,
                                    wide: wide});
  document.body.appendChild(out);
});
</script>"""


def headless(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def measure_widths(page: Path, width: int, profile: Path) -> dict[str, Any]:
    """The page's viewport and scroll width at ``width`` px, and every element past an edge."""
    copy = page.with_name(page.stem + "-measured.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"),
                    encoding="utf-8")
    dom = headless(f"--window-size={width},2000", "--dump-dom", copy.as_uri(),
                   profile=profile).stdout
    m = re.search(r'<pre id="spanledger-measure">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    result: dict[str, Any] = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")
                                        .replace("&lt;", "<").replace("&gt;", ">"))
    return result


def media_boxes(pdf: bytes) -> list[tuple[float, float]]:
    """(width, height) in points of every page of a PDF Chromium wrote."""
    return [(float(w), float(h)) for w, h in re.findall(
        rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)]
