"""Re-run the study's notebook sequence with papermill (``asdlib reproduce``).

Each notebook is a step: it gets the same parameters (data root, profile, device, seed,
results and work folders), reads what earlier steps left in the work folder (feature
cache, checkpoints; each keyed by its settings) and writes tables, figures and tidy
results under ``results/``. The ``.py`` (jupytext percent) files are the source of truth;
they are converted to notebooks at run time, so an out-of-date ``.ipynb`` cannot run.

Resumable: a step whose source, parameters and library code have not changed since it last
finished is skipped, so a run killed in step 5 continues with step 5. The last step renders
the executed notebooks, tables and figures as a static site, ``results/html/index.html``.

With ``devices`` (``asdlib reproduce --devices 0,1,2,3``) a ``pretrain`` step first trains,
in parallel over those devices, every model the notebooks about to run will ask for
(:mod:`asdlib.study.parallel`); the notebooks then find them finished.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import AsdlibError
from ..core.utils import atomic_write_text, display_path, scrub_paths
from .run_config import (  # noqa: F401 (NOTEBOOKS: imported from here by the cli and tests)
    EDITION_NOTEBOOK,
    NOTEBOOKS,
    ReproduceConfig,
    notebook_parameters,
    prepare_data,
)
from .speed import SpeedResult, machine_speed


def _source_path(cfg: ReproduceConfig, name: str) -> Path:
    path = Path(cfg.notebooks_dir) / f"{name}.py"
    if not path.exists():
        raise AsdlibError(f"notebook source {path} is missing; restore it from git (`git checkout -- {path}`)")
    return path


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # asdlib/


def library_sources() -> list[Path]:
    """Every source file of the asdlib package (not only asdlib/study), in a fixed order."""
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _library_digest() -> str:
    """Digest of the asdlib sources, so that results never outlive the code that made them."""
    return _digest(*(f"{p.relative_to(PACKAGE_DIR)}\x00{p.read_text()}" for p in library_sources()))


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_notebook(source: Path, output: Path, parameters: dict[str, Any], cwd: Path, progress: bool) -> None:
    """Execute one jupytext source with papermill; a failing cell becomes an AsdlibError naming it."""
    import jupytext
    import papermill as pm

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = cwd / f".{source.stem}.input.ipynb"
    jupytext.write(nb, staged, fmt="ipynb")
    try:
        pm.execute_notebook(str(staged), str(output), parameters=parameters, kernel_name="python3",
                            cwd=str(cwd), progress_bar=progress, log_output=False)
    except pm.PapermillExecutionError as e:
        raise AsdlibError(
            f"notebook {source.stem} failed in cell {e.cell_index} (execution count {e.exec_count}): "
            f"{e.ename}: {e.evalue}. The executed notebook with the traceback is {output}"
        ) from None
    finally:
        staged.unlink(missing_ok=True)
        if output.exists():  # papermill quotes the parameters and its paths verbatim: none of this machine's
            paths = [parameters.get(k) for k in PATH_PARAMETERS] + [cwd, source.parent, output.parent, sys.prefix]
            atomic_write_text(output, scrub_paths(output.read_text(encoding="utf-8"), paths))


PATH_PARAMETERS = ("data_root", "results_dir", "work_dir", "edition_root")  # written into results/ as display_path shows them
PATH_SETTINGS = ("data_root", "results_dir", "work_dir", "notebooks_dir", "edition_root")


def shown_paths(settings: dict[str, Any], keys: Sequence[str] = PATH_SETTINGS) -> dict[str, Any]:
    """``settings`` with its path values as :func:`~asdlib.core.utils.display_path` writes them
    (relative to the repository, or the data's name): no absolute path of this machine in results/."""
    paths = [v for k, v in settings.items() if k in keys and isinstance(v, (str, Path))]
    return {k: (display_path(v) if k in keys else scrub_paths(v, paths)) if isinstance(v, (str, Path)) else v
            for k, v in settings.items()}


def reproduce(cfg: ReproduceConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Run the notebooks in order, then render the results as HTML (:func:`asdlib.study.site.build_site`).

    Stops at the first failure. Returns one timing row per step: ``data``, each notebook, ``html``.
    """
    results = Path(cfg.results_dir)
    work = Path(cfg.work_dir)
    for sub in ("executed", "tables", "figures", "tidy"):
        (results / sub).mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    speed = machine_speed()  # the machine's figure, beside every timing of this run (asdlib.study.speed)
    if progress:
        print(f"[reproduce] {speed.line()}", flush=True)
    t0 = time.perf_counter()
    data_root, synthetic = prepare_data(cfg, progress)
    data_seconds = time.perf_counter() - t0
    params = {"data_root": data_root, "synthetic": synthetic, "profile": cfg.profile, "device": cfg.device,
              "seed": cfg.seed, "seeds": cfg.seeds, "results_dir": str(results.resolve()),
              "work_dir": str(work.resolve())}
    code = _library_digest()  # a change to asdlib re-runs the notebooks (their models reuse by settings key)
    state_path = work / "reproduce_state.json"
    state = _load_state(state_path)
    rows: list[dict[str, Any]] = [{"step": "data", "seconds": round(data_seconds, 2), "status": "ran",
                                   "machine_speed": speed.score}]
    nb_params = {name: notebook_parameters(cfg, name, params) for name in cfg.notebooks}
    keys = {name: _digest(_source_path(cfg, name).read_text(), json.dumps(nb_params[name], sort_keys=True), code)
            for name in cfg.notebooks}

    def unchanged(name: str) -> bool:
        return (not cfg.force and state.get(name, {}).get("key") == keys[name]
                and (results / "executed" / f"{name}.ipynb").exists())

    if cfg.devices:
        row = _pretrain(cfg, params, [n for n in cfg.notebooks if not unchanged(n)], progress)
        if row is not None:
            rows.append(row | {"machine_speed": speed.score})
    for name in cfg.notebooks:
        source = _source_path(cfg, name)
        key = keys[name]
        output = results / "executed" / f"{name}.ipynb"
        done = state.get(name, {})
        if unchanged(name):
            rows.append({"step": name, "seconds": done.get("seconds"), "status": "reused",
                         "machine_speed": done.get("machine_speed")})  # the figure of the run that took it
            if progress:
                print(f"[reproduce] {name}: unchanged since last run, skipped", flush=True)
            continue
        if progress:
            print(f"[reproduce] {name} ...", flush=True)
        start = time.perf_counter()
        run_notebook(source, output, nb_params[name], cwd=work, progress=progress)
        seconds = round(time.perf_counter() - start, 2)
        state[name] = {"key": key, "seconds": seconds, "machine_speed": speed.score,
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(state_path, json.dumps(state, indent=2) + "\n")
        rows.append({"step": name, "seconds": seconds, "status": "ran", "machine_speed": speed.score})
        if progress:
            print(f"[reproduce] {name}: {seconds:.1f} s", flush=True)
    _write_run_record(results, cfg, params, rows, synthetic, speed)
    write_data_note(results / "README.md", data_note(cfg, data_root, synthetic)
                    + (f"\n>\n> {edition_data_note(cfg)}" if EDITION_NOTEBOOK in cfg.notebooks else ""))
    # The results as a web site (results/html/index.html), from the record just written.
    from .site import build_site

    start = time.perf_counter()
    build_site(results, progress=progress)
    rows.append({"step": "html", "seconds": round(time.perf_counter() - start, 2), "status": "ran",
                 "machine_speed": speed.score})
    _write_run_record(results, cfg, params, rows, synthetic, speed)
    if progress:
        print(f"[reproduce] html: {results / 'html' / 'index.html'}", flush=True)
    return rows


def _pretrain(cfg: ReproduceConfig, params: dict[str, Any], notebooks: list[str],
              progress: bool) -> dict[str, Any] | None:
    """The ``pretrain`` step: the models of ``notebooks`` trained in parallel over ``cfg.devices``
    (``('auto',)``: :func:`asdlib.study.parallel.auto_devices`; None where that is no worker)."""
    from ..core.utils import resolve_device
    from .context import Study
    from .parallel import auto_devices, pretrain

    start = time.perf_counter()
    devices = auto_devices(resolve_device(cfg.device)) if cfg.devices == ("auto",) else cfg.devices
    if not devices:
        return None
    if not notebooks:
        return {"step": "pretrain", "seconds": 0.0, "status": "reused"}
    study = Study.open(**{k: params[k] for k in ("data_root", "synthetic", "profile", "device", "seed", "seeds",
                                                  "results_dir", "work_dir")}, progress=progress)
    if progress:
        print(f"[reproduce] pretrain: the models of {len(notebooks)} notebook(s) on devices {','.join(devices)}",
              flush=True)
    jobs = pretrain(study, notebooks, devices, progress=progress)
    if progress:
        print(f"[reproduce] pretrain: {len(jobs)} runs trained or found finished", flush=True)
    return {"step": "pretrain", "seconds": round(time.perf_counter() - start, 2), "status": "ran"}


DATA_NOTE_START, DATA_NOTE_END = "<!-- data-source: written by asdlib reproduce -->", "<!-- /data-source -->"


def data_note(cfg: ReproduceConfig, data_root: str, synthetic: bool) -> str:
    """One paragraph: which data this run used and why."""
    what = (f"the embedded **synthetic** dataset (profile `{cfg.profile}`)" if synthetic
            else f"**real DCASE2020 recordings** under `{display_path(data_root)}` (profile `{cfg.profile}`)")
    why = f" Why: {cfg.data_note}" if cfg.data_note else ""
    text = f"This run used {what}.{why}"  # the data source in bold; no nested emphasis
    return scrub_paths(text, [data_root, cfg.data_root, cfg.results_dir, cfg.work_dir])  # a reason may quote a path


def edition_data_note(cfg: ReproduceConfig) -> str:
    """One paragraph: which DCASE2023 data notebook 10 used and why (no absolute path of this machine)."""
    what = ("the **synthetic DCASE2023 edition** (`asdlib synth --edition 2023`)" if edition_synthetic(cfg)
            else f"**real DCASE2023 development clips** under `{display_path(cfg.edition_root)}`")
    why = f" Why: {cfg.edition_note}" if cfg.edition_note else ""
    return scrub_paths(f"Notebook {EDITION_NOTEBOOK} used {what}.{why}", [cfg.edition_root, cfg.results_dir, cfg.work_dir])


def edition_synthetic(cfg: ReproduceConfig) -> bool:
    """Whether notebook 10 runs on synthetic data (no edition root, or one that asdlib synth wrote)."""
    return cfg.edition_root is None or (Path(cfg.edition_root).expanduser() / "SYNTHETIC.md").exists()


def write_data_note(readme: Path, note: str) -> None:
    """Put ``note`` at the top of ``readme`` between markers, replacing the previous run's (the rest is kept)."""
    block = f"{DATA_NOTE_START}\n> {note}\n{DATA_NOTE_END}\n"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# results/\n"
    if DATA_NOTE_START in text and DATA_NOTE_END in text:
        head, rest = text.split(DATA_NOTE_START, 1)
        text = head + block + rest.split(DATA_NOTE_END, 1)[1].lstrip("\n")
    else:
        first, _, rest = text.partition("\n")
        text = f"{first}\n\n{block}{rest}" if first.startswith("#") else block + text
    atomic_write_text(readme, text)


def _write_run_record(results: Path, cfg: ReproduceConfig, params: dict[str, Any], rows: list[dict[str, Any]],
                      synthetic: bool, speed: SpeedResult) -> None:
    from ..core.provenance import write_provenance

    def cell(v: Any) -> str:
        return "" if v is None else str(v)

    # machine_speed: asdlib.study.speed's score on the machine that took the step (higher is faster)
    lines = ["step,seconds,status,machine_speed"] + [
        f"{r['step']},{cell(r['seconds'])},{r['status']},{cell(r.get('machine_speed'))}" for r in rows]
    atomic_write_text(results / "timings.csv", "\n".join(lines) + "\n")
    write_provenance(results / "run_info.json", config=shown_paths(asdict(cfg)) | {"parameters": shown_paths(params)},
                     device=cfg.device, synthetic_data=synthetic, timings=rows, machine_speed=speed.to_dict(),
                     data_source=data_note(cfg, params["data_root"], synthetic),
                     edition_data=({"notebook": EDITION_NOTEBOOK, "edition": 2023,
                                    "data": "synthetic" if edition_synthetic(cfg) else "real",
                                    "edition_root": display_path(cfg.edition_root), "source": edition_data_note(cfg)}
                                   if EDITION_NOTEBOOK in cfg.notebooks else None),
                     note=("Results on the embedded SYNTHETIC dataset (asdlib synth) with a small model: "
                           "they test the pipeline and are not the study's figures.") if synthetic else
                          "Results on the data under parameters.data_root.")
