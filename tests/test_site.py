"""The results as a static web site: every link resolves, figures load, synthetic data is labelled."""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from asdlib.report.tables import write_table
from asdlib.study.browser import blank, check_pages, check_site_in_browser, find_browser
from asdlib.study.context import SYNTHETIC_CAPTION
from asdlib.study.site import build_site, check_site, local_links

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _notebook(path: Path, title: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = nbformat.v4.new_code_cell("print('hello')\nplot()", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(_png()).decode(),
                                                                 "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nWhat this notebook shows."), code]
    nbformat.write(nb, path)


def make_results(root: Path, synthetic: bool | None = True) -> Path:
    """A small results folder: two executed notebooks, three tables, two figures, run_info.json."""
    for sub in ("executed", "tables", "figures"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _notebook(root / "executed" / "01_demo.ipynb", "01 · Demo exploration")
    _notebook(root / "executed" / "09_summary.ipynb", "09 · Summary")
    caption = SYNTHETIC_CAPTION.format(profile="ci", model_note="small networks") if synthetic is not False else \
        "DCASE2020 Task 2 data under /data, profile full."
    t = pd.DataFrame({"Dev AUC": [71.234, 80.5], "Dev AUC (study)": [90.75, np.nan]},
                     index=pd.Index(["fan", "Mean"], name="machine type"))
    write_table(t, root / "tables", "01_demo", caption=f"Demo table (AUC %). {caption}")
    write_table(t, root / "tables", "E4_cosface", caption=f"E4: CosFace, beside the study's figures. {caption}")
    claims = pd.DataFrame({"AUC verdict": ["holds", "not resolved at this size"]}, index=pd.Index(["A > B", "C > D"],
                                                                                                   name="claim"))
    write_table(claims, root / "tables", "09_claims", caption=f"The study's claims: tested. {caption}")
    (root / "tables" / "02_settings.json").write_text("{}\n")
    _png(root / "figures" / "01_demo plot.png")  # a space: links must be escaped and still resolve
    _png(root / "figures" / "09_claims.png")
    if synthetic is not None:
        info = {"created": "2026-01-01T00:00:00+00:00", "python": "3.11.7", "synthetic_data": synthetic,
                "versions": {"asdlib": "0.1.0", "torch": "2.14.1"}, "git": {"commit": "abc1234", "dirty": False},
                "config": {"profile": "ci", "seed": 0, "device": "cpu", "parameters": {"data_root": "/data"}},
                "device": {"cpu": "x86_64", "cuda_available": False}}
        (root / "run_info.json").write_text(json.dumps(info))
        (root / "timings.csv").write_text("step,seconds,status\ndata,1.0,ran\n01_demo,2.5,ran\n09_summary,1.0,reused\n")
    (root / "README.md").write_text("# results/\n\n| path | what |\n|---|---|\n| `tables/` | tables |\n")
    return root


def _resolve(page: Path, url: str) -> Path:
    return (page.parent / unquote(urlsplit(url).path)).resolve()


def test_every_link_resolves_and_every_figure_loads(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    index = build_site(res)
    assert index == res / "html" / "index.html"
    pages = sorted((res / "html").rglob("*.html"))
    assert {p.relative_to(res / "html").as_posix() for p in pages} == {
        "index.html", "readme.html", "notebooks/01_demo.html", "notebooks/09_summary.html", "tables/01_demo.html",
        "tables/E4_cosface.html", "tables/09_claims.html"}
    images = 0
    for page in pages:
        for tag, url in local_links(page):
            target = _resolve(page, url)
            assert target.exists(), f"{page.name}: {url}"
            assert res in target.parents, f"{page.name}: {url} leaves the results folder"
            if tag == "img":
                arr = image.imread(target)
                assert arr.ndim == 3 and arr.shape[0] > 10 and arr.std() > 0
                images += 1
    assert images >= 2
    # The index links every notebook, table (page, md, csv) and figure, relatively.
    linked = {_resolve(index, u) for _, u in local_links(index)}
    for p in [*res.glob("executed/*.ipynb")]:
        assert (res / "html" / "notebooks" / f"{p.stem}.html").resolve() in linked
    for p in [*res.glob("tables/*.md")]:
        assert {(res / "html" / "tables" / f"{p.stem}.html").resolve(), p.resolve(), p.with_suffix(".csv").resolve()} \
            <= linked
    for p in [*res.glob("figures/*.png"), res / "tables" / "02_settings.json", res / "run_info.json"]:
        assert p.resolve() in linked, p
    assert not any(u.startswith(("/", "file:")) for _, u in local_links(index))
    report = check_site(res)
    assert report["ok"], report
    assert report["pages"] == 7 and report["images"] == 2


def test_synthetic_data_is_labelled_and_provenance_shown(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    index = build_site(res).read_text()
    assert "SYNTHETIC DATA" in index and "abc1234" in index and "profile" in index and "torch 2.14.1" in index
    for page in (res / "html").rglob("*.html"):
        assert "SYNTHETIC" in page.read_text(), page
    nb = (res / "html" / "notebooks" / "01_demo.html").read_text()
    assert "Demo exploration" in nb and "hello" in nb and 'href="../index.html"' in nb
    assert "01 · Demo exploration" in index and "2.5 s" in index  # titles and timings in the list
    table = (res / "html" / "tables" / "01_demo.html").read_text()
    assert "<table>" in table and "71.23" in table and "Demo table (AUC %)" in table
    claims = (res / "html" / "tables" / "09_claims.html").read_text()
    assert 'class="v-holds"' in claims and 'class="v-open"' in claims
    # E-tables belong to the notebook that runs the experiment; the claims are a headline.
    assert index.index("Headline") < index.index("tables/09_claims.html") < index.index("notebooks/01_demo.html")


def test_real_and_unknown_data(tmp_path) -> None:
    real = make_results(tmp_path / "real", synthetic=False)
    text = build_site(real).read_text()
    assert "SYNTHETIC" not in text and "DCASE2020 Task 2" in text
    assert check_site(real)["ok"]
    bare = make_results(tmp_path / "bare", synthetic=None)  # no run_info.json: the captions decide
    text = build_site(bare).read_text()
    assert "SYNTHETIC DATA" in text and check_site(bare)["data"] == "synthetic"


def test_rebuild_is_atomic_reuses_pages_and_drops_stale_ones(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    build_site(res)
    page = res / "html" / "notebooks" / "01_demo.html"
    page.write_text(page.read_text() + "<!-- marker -->")  # a reused page is copied, not re-rendered
    (res / "tables" / "01_demo.md").unlink()
    (res / "tables" / "01_demo.csv").unlink()
    build_site(res)
    assert "<!-- marker -->" in page.read_text()
    assert not (res / "html" / "tables" / "01_demo.html").exists()
    assert sorted(p.name for p in res.iterdir() if p.name.startswith(".")) == []  # no temporary folders left
    _notebook(res / "executed" / "01_demo.ipynb", "01 · Demo, changed")
    build_site(res)
    assert "Demo, changed" in page.read_text() and "marker" not in page.read_text()
    assert check_site(res)["ok"]


def test_check_site_finds_broken_links_and_unlinked_outputs(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    build_site(res)
    (res / "figures" / "09_claims.png").unlink()
    _png(res / "figures" / "05_new.png")
    (res / "figures" / "01_demo plot.png").write_bytes(b"not a png")
    r = check_site(res)
    assert not r["ok"]
    assert any("09_claims.png" in m for m in r["missing"])
    assert r["unlinked"] == ["figures/05_new.png"]
    assert any("01_demo plot.png" in b for b in r["bad_images"])


def test_nested_results_are_linked(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    make_results(res / "real_mini", synthetic=False)
    index = build_site(res)
    assert (res / "real_mini" / "html" / "index.html").exists()
    assert "../real_mini/html/index.html" in index.read_text()
    assert check_site(res)["ok"] and check_site(res / "real_mini")["ok"]


def test_check_site_script(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    build_site(res)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "check_site.py"), str(res)], capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout and "7 pages" in out.stdout and "data: synthetic" in out.stdout


CHROMIUM = find_browser()
# CI (.ci/run) installs chromium and sets ASDLIB_REQUIRE_BROWSER=1: there a missing browser fails the test.
needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("ASDLIB_REQUIRE_BROWSER"),
                                   reason="no chromium / chromium-browser on PATH (CI installs it)")


@needs_browser
def test_index_and_a_notebook_page_render_in_a_headless_browser(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    build_site(res)
    views, problems = check_site_in_browser(res, CHROMIUM)
    assert problems == []
    index, notebook = views
    assert index.url.endswith("/html/index.html") and notebook.url.endswith("/html/notebooks/01_demo.html")
    for v in views:
        assert "SYNTHETIC DATA" in v.banner and not blank(v.screenshot)
        assert image.imread(io.BytesIO(v.screenshot)).shape[:2] == (900, 1200)
    assert index.tables >= 2 and index.images >= 2 and notebook.images == 1


@needs_browser
def test_the_browser_check_sees_a_broken_figure_and_link_and_a_blank_page(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    build_site(res)
    (res / "figures" / "09_claims.png").write_bytes(b"not a png")
    (res / "tables" / "02_settings.json").unlink()
    page = tmp_path / "blank.html"
    page.write_text("<html><body></body></html>")
    (_, problems), view = check_site_in_browser(res, CHROMIUM), check_pages([page], CHROMIUM)[0]
    assert blank(view.screenshot) and view.banner is None and view.tables == 0
    assert "index.html: figure ../figures/09_claims.png does not load" in problems
    assert any(p.startswith("index.html: link ") and p.endswith("02_settings.json points at a missing file")
               for p in problems), problems


def test_a_killed_build_leaves_nothing_behind(tmp_path) -> None:
    res = make_results(tmp_path / "results")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = res / f".html.tmp-{int(dead.stdout)}"
    (stale / "notebooks").mkdir(parents=True)
    build_site(res)
    assert not stale.exists() and (res / "html" / "index.html").exists()
