"""The results site in a real browser: headless Chromium opens pages and reports what a reader sees.

:func:`check_pages` drives Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4, so no port and no extra package), waits for the
page and every figure on it (lazy ones too), and returns the data banner's text if it is visible,
how many tables are visible, the figures that did not load, the local links whose file is
missing (as the browser resolved them) and a PNG screenshot. :func:`check_site_in_browser` checks a results site's index and a notebook page. :func:`blank` says whether a
screenshot is blank. Used by ``benchmarks/check_site.py --browser`` and the site tests.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.errors import AsdlibError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# What the page shows, evaluated in the page once it has loaded: figures are made to load (a lazy
# one loads only when scrolled to) and awaited, so that a broken one is told from a late one.
_PROBE = """(async () => {
  const visible = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const images = [...document.images];
  images.forEach(i => { i.loading = 'eager'; });
  const broken = (await Promise.all(images.map(i => i.decode().then(() => null, () => i.getAttribute('src')))))
    .filter(s => s !== null);
  const banner = document.querySelector('.banner');
  return {banner: banner && visible(banner) ? banner.innerText : null,
          tables: [...document.querySelectorAll('table')].filter(visible).length,
          images: images.length, broken_images: broken,
          links: [...document.querySelectorAll('a[href]')].map(a => a.href)};
})()"""


@dataclass
class PageView:
    """What headless Chromium showed of one page."""

    url: str
    banner: str | None  # the data banner's text, None when there is none or it is not visible
    tables: int  # visible tables
    images: int
    broken_images: list[str]
    missing_links: list[str]  # local (file://) links whose file does not exist
    screenshot: bytes = field(repr=False)


def find_browser() -> str | None:
    """The first of :data:`BROWSERS` on PATH, or None."""
    return next((b for b in BROWSERS if shutil.which(b)), None)


class _Pipe:
    """The DevTools protocol over Chromium's pipe: send a command, read until its answer."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.out = os.fdopen(to_browser, "wb", buffering=0)
        self.inp = os.fdopen(from_browser, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.out.write(json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise AsdlibError(f"chromium: {method} failed: {answer['error']}")
                    return answer["result"]
            chunk = self.inp.read(1 << 16)
            if not chunk:
                raise AsdlibError(f"chromium closed its pipe during {method}")
            self.buf += chunk

    def close(self) -> None:
        self.out.close()
        self.inp.close()


def _missing_local(links: list[str]) -> list[str]:
    out = []
    for link in links:
        parts = urlsplit(link)
        if parts.scheme == "file" and not Path(unquote(parts.path)).exists():
            out.append(link)
    return sorted(set(out))


def check_pages(pages: list[Path], browser: str | None = None, *, width: int = 1200, height: int = 900,
                timeout: float = 60.0) -> list[PageView]:
    """Open each of ``pages`` (HTML files) in one headless Chromium and report what each shows (see the module doc)."""
    browser = browser or find_browser()
    if browser is None:
        raise AsdlibError(f"no browser found (looked for {', '.join(BROWSERS)} on PATH); on Debian: "
                          "`apt-get install -y chromium`")
    pages = [Path(p).resolve() for p in pages]
    for page in pages:
        if not page.is_file():
            raise AsdlibError(f"{page} does not exist; build the site first (benchmarks/check_site.py --build)")
    to_child, to_browser = os.pipe()  # the browser reads commands on fd 3 ...
    from_browser, from_child = os.pipe()  # ... and writes answers on fd 4

    def wire() -> None:  # in the child: put the pipe ends on 3 and 4 (dup first: they may already sit there)
        a, b = os.dup(to_child), os.dup(from_child)
        os.dup2(a, 3)
        os.dup2(b, 4)

    views = []
    with tempfile.TemporaryDirectory(prefix="asdlib-browser-") as profile:
        proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        pipe = _Pipe(to_browser, from_browser)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
            for page in pages:
                views.append(_view(pipe, session, page, timeout))
            try:
                pipe.call("Browser.close")
            except AsdlibError:
                pass  # it may close the pipe before answering
        finally:
            pipe.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return views


def _view(pipe: _Pipe, session: str, page: Path, timeout: float) -> PageView:
    pipe.call("Page.navigate", {"url": page.as_uri()}, session)
    deadline = time.monotonic() + timeout
    while pipe.call("Runtime.evaluate", {"expression": "document.readyState", "returnByValue": True},
                    session)["result"].get("value") != "complete":
        if time.monotonic() > deadline:
            raise AsdlibError(f"{page} did not finish loading in {timeout:g} s")
        time.sleep(0.05)
    probe = pipe.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True, "awaitPromise": True}, session)
    if "exceptionDetails" in probe:
        raise AsdlibError(f"chromium: probing {page} failed: {probe['exceptionDetails']}")
    seen = probe["result"]["value"]
    pipe.call("Runtime.evaluate", {"expression": "window.scrollTo(0, 0)"}, session)
    shot = base64.b64decode(pipe.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
    return PageView(url=page.as_uri(), banner=seen["banner"], tables=int(seen["tables"]), images=int(seen["images"]),
                    broken_images=list(seen["broken_images"]), missing_links=_missing_local(seen["links"]),
                    screenshot=shot)


def blank(png: bytes) -> bool:
    """Whether a screenshot is blank: one flat colour, or almost no dark (text) pixels."""
    from matplotlib import image

    grey = image.imread(io.BytesIO(png), format="png")[..., :3].mean(axis=2)
    return not (grey.std() > 0.02 and (grey < 0.5).mean() > 0.001)


def check_site_in_browser(results: Path, browser: str | None = None) -> tuple[list[PageView], list[str]]:
    """``results/html/index.html`` and its first notebook page in headless Chromium: the pages seen, and
    the problems found: a blank screenshot, no visible data banner, no visible table on the index, a figure
    that does not load or a local link to a missing file on either."""
    html = Path(results) / "html"
    notebooks = sorted((html / "notebooks").glob("*.html"))
    if not notebooks:
        raise AsdlibError(f"{html / 'notebooks'} holds no notebook page; build the site first")
    pages = [html / "index.html", notebooks[0]]
    views, problems = check_pages(pages, browser), []
    for page, v in zip(pages, views):
        name = page.relative_to(html).as_posix()
        if blank(v.screenshot):
            problems.append(f"{name}: the screenshot is blank")
        if not v.banner:
            problems.append(f"{name}: no visible data banner")
        if page.name == "index.html" and v.tables < 1:
            problems.append(f"{name}: no visible table")
        problems += [f"{name}: figure {src} does not load" for src in v.broken_images]
        problems += [f"{name}: link {link} points at a missing file" for link in v.missing_links]
    return views, problems
