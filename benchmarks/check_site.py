"""Check the HTML rendering of a results folder (``results/html``), as a reader's browser would meet it.

Every local ``href``/``src`` of every page must exist, every linked PNG must decode, every
executed notebook, table and figure of the folder must be linked from ``index.html``, and a
synthetic run must say so on every page. Prints a summary; exits 1 when something is wrong.

Usage: ``python benchmarks/check_site.py results [--build] [--browser]`` (``--build`` renders the
site first, as the last step of ``asdlib reproduce`` does; ``--browser`` also opens ``index.html`` and
the first notebook page in headless Chromium: not blank, the data banner and a table visible, every
figure loads and every local link resolves, :mod:`asdlib.study.browser`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from asdlib.study.site import build_site, check_site


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--build", action="store_true", help="(re)build results_dir/html first")
    ap.add_argument("--browser", action="store_true", help="also open the index and a notebook page in headless Chromium")
    args = ap.parse_args(argv)
    if args.build:
        t0 = time.perf_counter()
        build_site(args.results_dir)
        print(f"built {args.results_dir / 'html' / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    r = check_site(args.results_dir)
    print(f"site: {r['site']}")
    print(f"data: {r.get('data', '?')}; {r['pages']} pages ({r['bytes'] / 1e6:.1f} MB), {r['links']} local links, "
          f"{r['images']} figures decoded")
    for key, what in (("missing", "broken links"), ("bad_images", "figures that do not decode"),
                      ("unlinked", "outputs not linked from index.html"), ("unlabelled", "pages without the "
                                                                                         "SYNTHETIC label")):
        items = r[key]
        print(f"{what}: {len(items)}")
        for item in items[:20]:
            print(f"  {item}")
        if len(items) > 20:
            print(f"  ... and {len(items) - 20} more")
    ok = r["ok"]
    if args.browser:
        from asdlib.study.browser import check_site_in_browser

        views, problems = check_site_in_browser(args.results_dir)
        print(f"browser: {', '.join(v.url.rsplit('/html/', 1)[-1] for v in views)}; problems: {len(problems)}")
        for item in problems:
            print(f"  {item}")
        ok = ok and not problems
    print("OK" if ok else "PROBLEMS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
