"""The HTML report in a real headless Chromium (Debian's chromium package),
driven over the DevTools protocol: it renders, every figure loads, nothing
is logged to the console.  The screenshot is kept in tests/artifacts/."""
import pathlib
import shutil

from analysis.report import build
from bundlecopy import ICOUNT, TCG
from conftest import need

ARTIFACTS = pathlib.Path(__file__).parent.parent / "artifacts"


def test_html_report_renders_in_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    need(exe, "chromium (Debian package chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        need(False, "websocket-client (pip, in the dev extra)")
    from cdp import Chromium

    _, html = build([str(ICOUNT), str(TCG)], tmp_path / "report")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Chromium(exe, profile)
    try:
        browser.open(html.as_uri())
        images = browser.evaluate(
            "Promise.all(Array.from(document.images).map(i => i.decode().then(() => "
            "[i.alt, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])))")
        headings = browser.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        tables = browser.evaluate("document.querySelectorAll('table').length")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "report.png"
        browser.screenshot(shot)
        problems = browser.problems()
    finally:
        browser.close()
    print(f"screenshot: {shot}")
    assert len(images) == 6  # the headline figure, then overhead, regs gain, variants, two distributions
    for alt, w, h, shown in images:
        assert w > 300 and h > 100 and shown > 300, f"figure {alt!r} did not load or is not shown"
    assert headings[0] == "Summary" and "Reproduce" in headings
    assert tables >= 6
    assert problems == [], problems
    assert shot.stat().st_size > 50_000
