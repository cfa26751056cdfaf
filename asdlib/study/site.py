"""The results folder as a small static web site: ``results/html/index.html``.

:func:`build_site` renders every executed notebook (``results/executed/*.ipynb``) to HTML
with nbconvert, every table (``results/tables/*.md``) to a page of its own, and writes an
index that links each notebook, table and figure, grouped by notebook, with the run's
provenance (``run_info.json``: synthetic or real data, profile, git revision, versions) at
the top. Results of the synthetic dataset carry a banner saying so on every page.

Links are relative (``../figures/x.png``, ``../tables/x.csv``), so the results folder can be
moved, zipped or served as it is (``python -m http.server -d results``, then open
``/html/index.html``). Figures are linked, not copied. The site is built in a temporary
folder and swapped in at the end, so a reader never sees half a site; notebook pages whose
executed notebook did not change are reused from the previous build.

:func:`check_site` checks a built site: every local ``href``/``src`` exists, every linked
PNG decodes, every notebook, table and figure of the results folder is linked from the index.

``python -m asdlib.study.site RESULTS_DIR`` (re)builds the site of a results folder.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..core.utils import display_path
from .captions import REAL_CAPTION, SYNTHETIC_CAPTION

SITE_VERSION = "1"  # bump to rebuild every cached notebook page
HTML_DIR = "html"
# Tables named after the study's experiments belong to the notebook that runs them.
EXPERIMENT_NOTEBOOK = {"E1": "03", "E2": "03", "E3": "04", "E4": "04", "E5": "05", "E6": "06"}
HEADLINE_TABLES = ("09_claims", "09_means")
VERDICT_CLASSES = {"holds": "v-holds", "reversed": "v-reversed", "not resolved at this size": "v-open",
                   "not run": "v-none"}
SYNTHETIC_BANNER = ("SYNTHETIC DATA: these results come from the embedded synthetic dataset (asdlib synth) and "
                    "small networks. They test the pipeline; they are NOT the study's results.")

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #2457a6; --bg2: #f5f7fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1200px; padding: 0 24px 48px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 1.7em; margin: 0.8em 0 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid var(--line); }
.muted { color: var(--muted); }
.banner { margin: 16px 0; padding: 12px 16px; border-radius: 6px; font-weight: 600; }
.banner.synthetic { background: #fff3cd; border: 2px solid #e0a800; color: #5c4400; }
.banner.real { background: #e7f3ec; border: 1px solid #7fbf95; color: #1d4d2c; }
.banner.unknown { background: #f1f1f1; border: 1px solid #bbb; }
.nav { position: sticky; top: 0; background: #fff; padding: 8px 0; border-bottom: 1px solid var(--line);
       font-size: 0.92em; z-index: 10; }
table.meta td { padding: 2px 12px 2px 0; vertical-align: top; }
.table-wrap { overflow-x: auto; margin: 8px 0 4px; border: 1px solid var(--line); border-radius: 6px; }
.table-wrap table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9em; width: 100%; }
.table-wrap th, .table-wrap td { padding: 4px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
.table-wrap th { background: var(--bg2); position: sticky; top: 0; }
.table-wrap tbody tr:nth-child(even) { background: #fafbfc; }
.table-wrap tbody tr:hover { background: #eef3fb; }
td.v-holds { color: #11692f; font-weight: 600; } td.v-reversed { color: #a61b1b; font-weight: 600; }
td.v-open { color: #6b6b6b; } td.v-none { color: #999; font-style: italic; }
.caption { color: var(--muted); font-size: 0.9em; max-width: 95ch; }
ul.items { padding-left: 20px; } ul.items li { margin: 3px 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85em; color: var(--muted); margin-top: 4px; }
details summary { cursor: pointer; color: var(--accent); }
code { background: var(--bg2); padding: 0 4px; border-radius: 3px; }
"""

# The bar on top of nbconvert's notebook pages: scoped, so the notebook's own styles stay as they are.
BAR_CSS = """
.asd-top { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1200px;
           margin: 0 auto; padding: 0 24px; }
.asd-top a { color: #2457a6; text-decoration: none; }
.asd-top .nav { padding: 8px 0; border-bottom: 1px solid #d9dee7; }
.asd-top .banner { margin: 12px 0; padding: 10px 14px; border-radius: 6px; font-weight: 600; }
.asd-top .banner.synthetic { background: #fff3cd; border: 2px solid #e0a800; color: #5c4400; }
.asd-top .banner.real { background: #e7f3ec; border: 1px solid #7fbf95; color: #1d4d2c; }
.asd-top .banner.unknown { background: #f1f1f1; border: 1px solid #bbb; }
"""


# ---- reading the results folder ----------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _synthetic_prefixes() -> tuple[str, str]:
    return SYNTHETIC_CAPTION.split("{")[0], REAL_CAPTION.split("{")[0]


def data_kind(results: Path, info: dict[str, Any]) -> str:
    """'synthetic', 'real' or 'unknown': run_info.json's flag, else what the table captions say."""
    if "synthetic_data" in info:
        return "synthetic" if info["synthetic_data"] else "real"
    synth, real = _synthetic_prefixes()
    captions = [p.read_text(errors="replace") for p in sorted((results / "tables").glob("*.md"))]
    if any(synth in c for c in captions):
        return "synthetic"
    return "real" if any(real in c for c in captions) else "unknown"


def _group(name: str) -> str:
    """The notebook number ('03') an output belongs to, from its name ('03_x', 'E4_cosface'), or ''."""
    m = re.match(r"^(\d\d)_", name)
    if m:
        return m.group(1)
    m = re.match(r"^(E\d)_", name)
    return EXPERIMENT_NOTEBOOK.get(m.group(1), "") if m else ""


def _notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _table_title(md: str) -> str:
    """A table's short title: its '### ' heading, else its caption cut before the data note."""
    for line in md.splitlines():
        if line.startswith("### "):
            return line[4:].strip()
    notes = [line.strip().strip("*") for line in md.splitlines() if line.startswith("*") and line.endswith("*")]
    if not notes:
        return ""
    text = notes[0]
    for prefix in _synthetic_prefixes():
        text = text.split(prefix)[0]
    text = text.split(". ")[0].strip().rstrip(".")
    if len(text) > 110:  # a long caption: its first clause
        m = re.search(r"[:;] ", text[15:])
        text = text[: 15 + m.start()] if m else text[:110] + "…"
    return text


def _timings(results: Path) -> dict[str, str]:
    out = {}
    path = results / "timings.csv"
    if path.exists():
        for line in path.read_text().splitlines()[1:]:
            step, seconds, status = (line.split(",") + ["", ""])[:3]
            if seconds:
                out[step] = f"{float(seconds):.1f} s" + (" (reused)" if status == "reused" else "")
    return out


# ---- rendering ---------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _u(path: str) -> str:
    """A relative URL for an attribute: percent-encoded (spaces and all), then HTML-escaped."""
    return _e(quote(path))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_e(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _banner(kind: str, info: dict[str, Any]) -> str:
    profile = info.get("config", {}).get("profile", "?")
    if kind == "synthetic":
        return f'<div class="banner synthetic">{_e(SYNTHETIC_BANNER)} (profile {_e(profile)})</div>'
    if kind == "real":
        root = display_path(info.get("config", {}).get("parameters", {}).get("data_root")) or "?"
        return f'<div class="banner real">DCASE2020 Task 2 data ({_e(root)}), profile {_e(profile)}.</div>'
    return '<div class="banner unknown">Data unknown: this results folder has no run_info.json.</div>'


def _markdown(md: str) -> str:
    """Markdown to HTML (nbconvert's renderer, GitHub tables); tables wrapped for scrolling, verdicts coloured."""
    from nbconvert.filters import markdown2html

    out = markdown2html(md)
    out = out.replace("<table>", '<div class="table-wrap"><table>').replace("</table>", "</table></div>")
    for word, cls in VERDICT_CLASSES.items():
        out = re.sub(rf'<td( style="[^"]*")?>{re.escape(word)}</td>', rf'<td\1 class="{cls}">{word}</td>', out)
    return out


def _table_body(md: str) -> str:
    """A table's HTML with its caption (the italic lines under the Markdown table) set apart."""
    lines = md.rstrip().splitlines()
    notes = []
    while lines and lines[-1].startswith("*") and lines[-1].endswith("*"):
        notes.insert(0, lines.pop().strip("*"))
    while lines and not lines[-1].strip():
        lines.pop()
    caption = "".join(f'<p class="caption">{_e(n)}</p>' for n in notes)
    return _markdown("\n".join(lines) + "\n") + caption


def _inject(page: str, bar: str) -> str:
    """Put the navigation bar and banner at the top of an nbconvert page (styles scoped to the bar)."""
    m = re.search(r"<body[^>]*>", page)
    top = f'<style>{BAR_CSS}</style><div class="asd-top">{bar}</div>'
    return page[: m.end()] + top + page[m.end():] if m else top + page


def _digest(path: Path, extra: str) -> str:
    h = hashlib.sha256()
    h.update(extra.encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def _render_notebook(path: Path) -> tuple[str, str]:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return body, _notebook_title(nb)


# ---- the site ----------------------------------------------------------------------------
def build_site(results_dir: str | os.PathLike, nested: bool = True, progress: bool = False) -> Path:
    """Render ``results_dir`` as a static site in ``results_dir/html``; return the index page.

    ``nested``: also (re)build the sites of result folders inside it that have executed
    notebooks (``results/real_mini``) and link them from the index.
    """
    results = Path(results_dir).resolve()
    if not results.is_dir():
        raise FileNotFoundError(f"no results folder at {results}")
    info = _read_json(results / "run_info.json")
    kind = data_kind(results, info)
    final = results / HTML_DIR
    old_manifest = _read_json(final / "manifest.json")
    _clean_leftovers(results)
    tmp = results / f".{HTML_DIR}.tmp-{os.getpid()}"
    (tmp / "notebooks").mkdir(parents=True)
    (tmp / "tables").mkdir()
    try:
        banner = _banner(kind, info)
        manifest: dict[str, Any] = {"site_version": SITE_VERSION, "notebooks": {}}

        # Notebooks (reused when neither the notebook nor the page's frame changed).
        notebooks = []
        for path in sorted((results / "executed").glob("*.ipynb")):
            key = _digest(path, SITE_VERSION + banner)
            page = tmp / "notebooks" / f"{path.stem}.html"
            cached = old_manifest.get("notebooks", {}).get(path.stem, {})
            if cached.get("key") == key and (final / "notebooks" / page.name).exists():
                shutil.copy2(final / "notebooks" / page.name, page)
                title = cached.get("title", "")
            else:
                if progress:
                    print(f"[site] {path.stem}", flush=True)
                body, title = _render_notebook(path)
                bar = f'<div class="nav"><a href="../index.html">← index</a> · {_e(path.stem)}</div>{banner}'
                page.write_text(_inject(body, bar), encoding="utf-8")
            manifest["notebooks"][path.stem] = {"key": key, "title": title}
            notebooks.append((path.stem, title))

        # Tables: one page each, beside links to the Markdown and CSV files.
        tables = []
        for md_path in sorted((results / "tables").glob("*.md")):
            md = md_path.read_text(encoding="utf-8")
            name = md_path.stem
            title = _table_title(md) or name
            raw = [f'<a href="{_u(f"../../tables/{p.name}")}">{p.suffix[1:]}</a>'
                   for p in (md_path, md_path.with_suffix(".csv")) if p.exists()]
            body = (f'<div class="nav"><a href="../index.html">← index</a> · table {_e(name)} · '
                    f'{" · ".join(raw)}</div>{banner}<h1>{_e(title)}</h1>'
                    f'<p class="muted"><code>{_e(name)}</code></p>{_table_body(md)}')
            (tmp / "tables" / f"{name}.html").write_text(_page(f"{name}: {title}", body), encoding="utf-8")
            tables.append((name, title, md))
        other_files = sorted(p for p in (results / "tables").glob("*") if p.suffix not in (".md", ".csv"))
        figures = sorted((results / "figures").glob("*.png"))

        sub_sites = []
        if nested:
            for sub in sorted(p for p in results.iterdir() if p.is_dir() and (p / "executed").is_dir()):
                sub_sites.append((sub.name, build_site(sub, nested=False, progress=progress),
                                  data_kind(sub, _read_json(sub / "run_info.json"))))

        readme = results / "README.md"
        if readme.exists():
            body = (f'<div class="nav"><a href="index.html">← index</a> · README.md</div>{banner}'
                    f'{_markdown(readme.read_text(encoding="utf-8"))}')
            (tmp / "readme.html").write_text(_page("results/README.md", body), encoding="utf-8")

        index = _index(results, info, kind, banner, notebooks, tables, other_files, figures, sub_sites,
                       readme.exists())
        (tmp / "index.html").write_text(index, encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

        # Swap the finished site in.
        old = results / f".{HTML_DIR}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "index.html"


def _clean_leftovers(results: Path) -> None:
    """Remove the temporary folders of a killed build (those whose process is gone)."""
    for p in results.glob(f".{HTML_DIR}.*-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
            alive = pid != os.getpid()
            if alive:
                os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:  # another user's live process
            alive = True
        if not alive:
            shutil.rmtree(p, ignore_errors=True)


def _index(results: Path, info: dict[str, Any], kind: str, banner: str, notebooks: list[tuple[str, str]],
           tables: list[tuple[str, str, str]], other_files: list[Path], figures: list[Path],
           sub_sites: list[tuple[str, Path, str]], has_readme: bool) -> str:
    cfg = info.get("config", {})
    git = info.get("git", {})
    timings = _timings(results)
    rows = [("data", {"synthetic": "SYNTHETIC (asdlib synth)", "real": "DCASE2020 Task 2 (real recordings)"}
             .get(kind, "unknown")),
            ("profile", cfg.get("profile", "?")), ("seed", cfg.get("seed", "?")),
            ("data root", display_path(cfg.get("parameters", {}).get("data_root") or cfg.get("data_root")) or "?"),
            ("device", f"{cfg.get('device', '?')} ({info.get('device', {}).get('cpu', '')}, "
                       f"CUDA {'yes' if info.get('device', {}).get('cuda_available') else 'no'})"),
            ("git revision", f"{git.get('commit', '?')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
            ("created", info.get("created", "?")), ("python", info.get("python", "?"))]
    speed = info.get("machine_speed")
    if isinstance(speed, dict) and "score" in speed:
        rows.append(("machine speed", f"{speed['score']} (asdlib.study.speed v{speed.get('version', '?')}: "
                                      f"{speed.get('train_steps_per_s', '?')} training steps/s, "
                                      f"{speed.get('feature_clips_per_s', '?')} log-mel clips/s, "
                                      f"{speed.get('threads', '?')} thread(s); higher is faster, so timings "
                                      "compare across machines)"))
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    if versions:
        rows.append(("versions", versions))
    if info.get("note"):
        rows.append(("note", info["note"]))
    meta = "".join(f"<tr><td class=\"muted\">{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    parts = [f'<h1>asdlib: anomalous sound detection (DCASE2020 Task 2)</h1>'
             f'<p class="muted">The study\'s notebooks, tables and figures, as this run regenerated them '
             f'(<code>{_e(results.name)}/</code>).</p>', banner, f'<table class="meta">{meta}</table>']
    links = []
    if has_readme:
        links.append('<a href="readme.html">about this folder (README)</a>')
    links += [f'<a href="{_u(f"../{name}/html/index.html")}">{_e(name)}: a second run '
              f'({_e(sub_kind)} data)</a>' for name, _, sub_kind in sub_sites]
    links += [f'<a href="../{f}">{f}</a>' for f in ("run_info.json", "timings.csv") if (results / f).exists()]
    parts.append(f'<p>{" · ".join(links)}</p>')

    by_name = {name: (title, md) for name, title, md in tables}
    headline = [n for n in HEADLINE_TABLES if n in by_name]
    if headline:
        parts.append("<h2>Headline</h2>")
        for n in headline:
            title, md = by_name[n]
            parts.append(f'<h3><a href="{_u(f"tables/{n}.html")}">{_e(title)}</a></h3>{_table_body(md)}')
        if "09_claims" in headline and any(f.stem == "09_claims" for f in figures):
            parts.append('<figure style="max-width:900px"><a href="../figures/09_claims.png">'
                         '<img src="../figures/09_claims.png" alt="09_claims: forest plot of the claims"></a>'
                         '<figcaption>09_claims</figcaption></figure>')

    parts.append("<h2>Notebooks</h2><ul class=\"items\">")
    for stem, title in notebooks:
        t = f' <span class="muted">({_e(timings[stem])})</span>' if stem in timings else ""
        parts.append(f'<li><a href="{_u(f"notebooks/{stem}.html")}">{_e(stem)}</a> {_e(title)}{t}</li>')
    parts.append("</ul>")

    groups = sorted({_group(n) for n, _, _ in tables} | {_group(f.stem) for f in figures} |
                    {_group(p.stem) for p in other_files}, key=lambda g: (g == "", g))
    titles = {stem[:2]: (stem, title) for stem, title in notebooks}
    for g in groups:
        stem, title = titles.get(g, ("", ""))
        head = (f'<a href="{_u(f"notebooks/{stem}.html")}">{_e(stem)}</a> {_e(title)}' if stem
                else f"notebook {_e(g)}" if g else "Other outputs")
        parts.append(f'<h2 id="nb-{_e(g or "other")}">{head}</h2>')
        g_tables = [(n, t) for n, t, _ in tables if _group(n) == g]
        g_files = [p for p in other_files if _group(p.stem) == g]
        if g_tables or g_files:
            parts.append('<h3>Tables</h3><ul class="items">')
            for n, t in g_tables:
                extra = " · ".join(f'<a href="{_u(f"../tables/{n}{ext}")}">{ext[1:]}</a>' for ext in (".md", ".csv")
                                   if (results / "tables" / f"{n}{ext}").exists())
                parts.append(f'<li><a href="{_u(f"tables/{n}.html")}">{_e(n)}</a> {_e(t)} '
                             f'<span class="muted">({extra})</span></li>')
            for p in g_files:
                parts.append(f'<li><a href="{_u(f"../tables/{p.name}")}">{_e(p.name)}</a></li>')
            parts.append("</ul>")
        g_figs = [f for f in figures if _group(f.stem) == g]
        if g_figs:
            parts.append('<h3>Figures</h3><div class="figures">')
            for f in g_figs:
                src = f"../figures/{f.name}"
                parts.append(f'<figure><a href="{_u(src)}"><img src="{_u(src)}" loading="lazy" alt="{_e(f.stem)}">'
                             f'</a><figcaption>{_e(f.stem)}</figcaption></figure>')
            parts.append("</div>")
    return _page("asdlib results", "\n".join(parts))


# ---- checking a built site ---------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, value))


def local_links(page: Path) -> list[tuple[str, str]]:
    """(tag, url) of every href/src of a page that points at a local file (not http(s), data:, #anchor)."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    out = []
    for tag, url in parser.links:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith("#") or not parts.path:
            continue
        out.append((tag, url))
    return out


def check_site(results_dir: str | os.PathLike) -> dict[str, Any]:
    """Check ``results_dir/html``: links resolve, images decode, every output is linked, synthetic is labelled.

    Returns counts and lists of problems (``missing``, ``bad_images``, ``unlinked``,
    ``unlabelled``); ``ok`` is True when all lists are empty.
    """
    from matplotlib import image

    results = Path(results_dir).resolve()
    site = results / HTML_DIR
    index = site / "index.html"
    report: dict[str, Any] = {"site": str(site), "pages": 0, "links": 0, "images": 0, "missing": [],
                              "bad_images": [], "unlinked": [], "unlabelled": [], "bytes": 0}
    if not index.exists():
        report["missing"].append(str(index))
        report["ok"] = False
        return report
    kind = data_kind(results, _read_json(results / "run_info.json"))
    report["data"] = kind
    checked: set[Path] = set()
    for page in sorted(site.rglob("*.html")):
        report["pages"] += 1
        report["bytes"] += page.stat().st_size
        text = page.read_text(encoding="utf-8", errors="replace")
        if kind == "synthetic" and "SYNTHETIC" not in text:
            report["unlabelled"].append(str(page.relative_to(site)))
        for tag, url in local_links(page):
            report["links"] += 1
            target = (page.parent / unquote(urlsplit(url).path)).resolve()
            if not target.exists():
                report["missing"].append(f"{page.relative_to(site)} -> {url}")
                continue
            if tag == "img" and target.suffix.lower() == ".png" and target not in checked:
                checked.add(target)
                report["images"] += 1
                try:
                    arr = image.imread(target)
                    if arr.ndim < 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
                        raise ValueError(f"shape {arr.shape}")
                except Exception as e:  # any decode failure is a finding
                    report["bad_images"].append(f"{target.name}: {e}")
    linked = {(index.parent / unquote(urlsplit(u).path)).resolve() for _, u in local_links(index)}
    wanted = [site / "notebooks" / f"{p.stem}.html" for p in (results / "executed").glob("*.ipynb")]
    wanted += [site / "tables" / f"{p.stem}.html" for p in (results / "tables").glob("*.md")]
    wanted += list((results / "figures").glob("*.png"))
    report["unlinked"] = sorted(str(p.relative_to(results)) for p in wanted if p.resolve() not in linked)
    report["ok"] = not any(report[k] for k in ("missing", "bad_images", "unlinked", "unlabelled"))
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m asdlib.study.site RESULTS_DIR", file=sys.stderr)
        return 2
    print(build_site(args[0], progress=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
