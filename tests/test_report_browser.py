"""report.html as a reader sees it: rendered by a real browser (headless Chromium)."""

import json
import re
import shutil
import subprocess

import pytest

from advfit.report.__main__ import main as report
from tests.test_report import distances, trend, write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: once everything has loaded, it writes what the reader sees
# into the DOM that Chromium dumps.
PROBE = """
<script>
window.addEventListener("load", () => {
  const tables = [...document.querySelectorAll("table")].map(t =>
    [...t.querySelectorAll("tr")].map(r => [...r.cells].map(c => c.innerText.trim())));
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight,
    i.getBoundingClientRect().width]);
  const badges = [...document.querySelectorAll(".badge")].map(b =>
    [b.innerText, getComputedStyle(b).backgroundColor]);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({tables, images, badges, text: document.body.innerText,
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth});
  document.body.appendChild(out);
});
</script>
"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: `make install` installs Debian's chromium as root, "
    "or run `apt-get install chromium`",
)
def test_report_html_renders_tables_badges_and_figures_in_a_browser(tmp_path):
    for regime in ("normal", "overfit"):
        for fold in (0, 1, 2):
            write_run(
                tmp_path / "sweep",
                "cifar10",
                regime,
                fold,
                trend(regime, fold),
                distances(50 + 10 * fold, 8 + fold, 0.5),
            )
    out = tmp_path / "out"
    assert report([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    page = tmp_path / "probe.html"
    page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    for width in (1200, 500):  # a desktop, and a phone (headless Chromium is 500 px at least)
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--window-size={width},900",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
        assert match, dom[-2000:]
        seen = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        verdict, per_fold, distance = seen["tables"][:3]
        assert verdict[0][:5] == ["dataset", "regime", "attack", "ASR", "folds"]
        assert [row[1:3] for row in verdict[1:]] == [["normal", "fgsm"], ["overfit", "fgsm"]]
        assert [row[-1] for row in verdict[1:]] == ["holds", "holds"]
        # Per fold: the fixture's 3 finished folds of each regime, each on the claim's side.
        assert per_fold[0][2] == "fold" and per_fold[0][-2:] == ["reads", "fgsm"]
        assert [(row[1], row[2], row[-1][-1]) for row in per_fold[1:]] == [
            (regime, str(fold), "✓") for regime in ("normal", "overfit") for fold in range(3)
        ]
        assert [row[2] for row in distance[1:]] == ["fgsm", "fgsm"]
        assert "9.11 ± 0.95" in distance[1]
        assert [b[0] for b in seen["badges"]] == ["holds", "holds"]
        assert all(colour == "rgb(26, 127, 55)" for _, colour in seen["badges"])
        # Figures 3, 4, 6, 7, 8, 10 (no CLEVER column): each decoded, none wider than the page.
        assert len(seen["images"]) == 6
        viewport = seen["innerWidth"]
        assert viewport <= width
        for complete, natural_w, natural_h, shown_w in seen["images"]:
            assert complete and natural_w > 300 and natural_h > 200 and 0 < shown_w <= viewport
        assert "|---" not in seen["text"] and "**" not in seen["text"]
        assert "Figure 3. Training progress for normal training." in seen["text"]
        assert seen["scrollWidth"] <= viewport  # wide tables scroll inside their own box
