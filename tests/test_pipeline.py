"""The notebook pipeline: failure reporting, resumption, and the whole sequence at CI size."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from asdlib.core.errors import AsdlibError
from asdlib.data.editions import EDITIONS
from asdlib.report.claims import VERDICTS
from asdlib.study.browser import check_site_in_browser, find_browser
from asdlib.study.pipeline import NOTEBOOKS, ReproduceConfig, reproduce
from asdlib.study.site import check_site

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "data" / "dcase2020-mini"

_HEADER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
data_root = None
synthetic = None
profile = "ci"
device = "cpu"
seed = 0
seeds = None
results_dir = None
work_dir = None

"""


def _fake_notebooks(folder: Path, bodies: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in bodies.items():
        (folder / f"{name}.py").write_text(_HEADER + "# %%\n" + body + "\n")


def _touch(name: str) -> str:
    return f"from pathlib import Path\nPath(results_dir, '{name}.done').write_text('ok')"


def test_failing_notebook_stops_the_run_and_is_named(tmp_path, tiny_dataset):
    nb = tmp_path / "nb"
    first, second, third = NOTEBOOKS[:3]
    _fake_notebooks(nb, {first: _touch(first), second: "x = 1\n\n# %%\nraise ValueError('boom in the second step')",
                         third: _touch(third)})
    cfg = ReproduceConfig(data_root=str(tiny_dataset), profile="ci", device="cpu", results_dir=str(tmp_path / "res"),
                          work_dir=str(tmp_path / "work"), notebooks_dir=str(nb), notebooks=(first, second, third))
    with pytest.raises(AsdlibError) as err:
        reproduce(cfg, progress=False)
    msg = str(err.value)
    assert second in msg and "cell" in msg and "boom in the second step" in msg
    assert (tmp_path / "res" / f"{first}.done").exists()
    assert not (tmp_path / "res" / f"{third}.done").exists()  # stopped at the failure
    assert (tmp_path / "res" / "executed" / f"{second}.ipynb").exists()  # the traceback is kept

    # Fix the failing step: a re-run skips the finished first step and continues.
    (tmp_path / "res" / f"{first}.done").unlink()
    _fake_notebooks(nb, {second: _touch(second)})
    rows = reproduce(cfg, progress=False)
    status = {r["step"]: r["status"] for r in rows}
    assert status == {"data": "ran", first: "reused", second: "ran", third: "ran", "html": "ran"}
    assert not (tmp_path / "res" / f"{first}.done").exists()
    assert (tmp_path / "res" / f"{third}.done").exists()
    info = json.loads((tmp_path / "res" / "run_info.json").read_text())
    assert info["versions"]["torch"] and "git" in info and info["config"]["profile"] == "ci"
    timings = pd.read_csv(tmp_path / "res" / "timings.csv")
    assert list(timings["step"]) == ["data", first, second, third, "html"]
    assert (timings["machine_speed"] > 0).all()  # the reused step keeps the figure of the run that took it
    assert (tmp_path / "res" / "html" / "notebooks" / f"{third}.html").exists()  # the results as web pages


def test_no_absolute_path_of_the_machine_in_the_results(tmp_path, tiny_dataset):
    """Issue 17.5: run_info.json, results/README.md, the executed notebooks (papermill's parameters
    and metadata, printed paths), table captions and the site name paths relative to the repository,
    or the data by its name; never this machine's absolute paths (repository or temporary folder)."""
    nb = tmp_path / "nb"
    first = NOTEBOOKS[0]
    _fake_notebooks(nb, {first: "import pandas as pd\nfrom asdlib.study import open_study\n\n"
                                "study = open_study(globals())\n"
                                "study.save_table(pd.DataFrame({'a': [1]}), 'paths', 'a table')\n"
                                "print(results_dir, work_dir, data_root)"})
    cfg = ReproduceConfig(data_root=str(tiny_dataset), profile="ci", device="cpu", results_dir=str(tmp_path / "res"),
                          work_dir=str(tmp_path / "work"), notebooks_dir=str(nb), notebooks=(first,),
                          data_note=f"a test root at {tiny_dataset}")
    reproduce(cfg, progress=False)
    res = tmp_path / "res"
    assert "under data," in (res / "tables" / "paths.md").read_text()  # the data by its folder's name
    info = json.loads((res / "run_info.json").read_text())
    assert info["config"]["parameters"]["data_root"] == "data" and info["config"]["results_dir"] == "res"
    texts = [p for p in res.rglob("*") if p.is_file() and p.suffix in (".json", ".md", ".csv", ".html", ".ipynb")]
    assert {"run_info.json", "README.md", f"{first}.ipynb", f"{first}.html", "index.html"} <= {p.name for p in texts}
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for machine in (str(tmp_path), str(ROOT)):
            assert machine not in text, f"{path.relative_to(res)} names {machine}"


def test_notebook_10_alone_gets_edition_root_and_the_results_say_which_2023_data(tmp_path, tiny_dataset):
    """Issue 19.5: reproduce passes edition_root to notebook 10 only (01-09 keep their parameters, so
    their keys do not move with it), and run_info.json / results/README.md say real or synthetic,
    naming the folder without this machine's path."""
    nb = tmp_path / "nb"
    first, tenth = NOTEBOOKS[0], "10_later_editions"
    _fake_notebooks(nb, {first: "assert 'edition_root' not in globals()",
                         tenth: "edition_root = None\n\n# %%\nprint(edition_root)"})
    edition = tmp_path / "dcase2023-small"
    (edition / "dev_data").mkdir(parents=True)
    cfg = ReproduceConfig(data_root=str(tiny_dataset), profile="ci", device="cpu", results_dir=str(tmp_path / "res"),
                          work_dir=str(tmp_path / "work"), notebooks_dir=str(nb), notebooks=(first, tenth),
                          edition_root=str(edition), edition_note=f"Zenodo reachable; fetched into {edition}")
    reproduce(cfg, progress=False)
    res = tmp_path / "res"
    executed = (res / "executed" / f"{tenth}.ipynb").read_text(encoding="utf-8")
    assert "dcase2023-small" in executed and str(tmp_path) not in executed
    info = json.loads((res / "run_info.json").read_text())
    assert info["edition_data"]["data"] == "real" and info["edition_data"]["edition_root"] == "dcase2023-small"
    assert info["config"]["edition_root"] == "dcase2023-small" and str(tmp_path) not in json.dumps(info)
    readme = (res / "README.md").read_text()
    assert "real DCASE2023 development clips" in readme and str(tmp_path) not in readme
    (edition / "SYNTHETIC.md").write_text("synthetic")  # a local copy that asdlib synth wrote is labelled so
    reproduce(cfg, progress=False)
    assert json.loads((res / "run_info.json").read_text())["edition_data"]["data"] == "synthetic"
    assert "synthetic DCASE2023 edition" in (res / "README.md").read_text()


def test_display_path_is_relative_to_the_repository_or_the_data_name(tmp_path):
    from asdlib.core.utils import display_path, scrub_paths

    assert display_path(ROOT / "runs" / "smoke" / "synthetic_data") == "runs/smoke/synthetic_data"
    assert display_path(tmp_path / "dcase2020-mini") == "dcase2020-mini"
    assert display_path("runs/x") == "runs/x" and display_path(None) is None
    text = f"a {ROOT}/results/x.md b {tmp_path}/mini c {ROOT} d {ROOT}2"
    assert scrub_paths(text, [tmp_path / "mini"]) == f"a results/x.md b mini c . d {ROOT}2"


def test_unknown_notebook_name_is_refused():
    with pytest.raises(AsdlibError, match="unknown notebook"):
        ReproduceConfig(notebooks=("99_nothing",))


STUDY_TABLES = ["E1_individual", "E2_integrated", "E3_ls0", "E4_softmax", "E4_cosface", "E4_focal", "E5_transfer",
                "08_autoencoder", "08_wavenet"]
COMPARE_TABLES = ["03_individual_vs_integrated_auc", "E4_losses_dev_AUC", "07_scorers_dev_AUC",
                  "08_reconstruction_vs_classification", "05_transfer_gain"]
FIGURES = ["01_examples", "01_levels", "01_id_spectra", "02_feature_histograms", "03_schedule",
           "03_individual_vs_integrated", "03_training_curves", "04_loss_ablation", "04_training_curves",
           "05_finetune_curves", "06_tsne", "07_scorers", "08_error_maps_autoencoder", "08_error_maps_wavenet",
           "08_training_curves", "09_claims"]
ROWS = ["ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve", "Mean", "Harmonic Mean"]


def _check_rows(path: Path, columns: list[str] | None = None) -> None:
    t = pd.read_csv(path, index_col=0)
    assert list(t.index) == ROWS, path
    values = t[columns] if columns else t[[c for c in t.columns if "Δ" not in c and "(study)" not in c]]
    assert values.notna().all().all(), f"{path}: missing values\n{t}"
    assert ((values >= 0) & (values <= 100)).all().all(), f"{path}: values out of range\n{t}"


@pytest.mark.slow
def test_whole_sequence_at_ci_size(ci_study):
    """The session's shared CI-size run (conftest.ci_study): every table, figure and notebook."""
    rows, res = ci_study.rows, ci_study.results
    assert [r["step"] for r in rows] == ["data", *NOTEBOOKS, "html"] and all(r["status"] == "ran" for r in rows)
    for name in STUDY_TABLES:
        _check_rows(res / "tables" / f"{name}.csv", ["Dev AUC", "Dev pAUC", "Eval AUC", "Eval pAUC"])
        assert "SYNTHETIC" in (res / "tables" / f"{name}.md").read_text()
    for name in COMPARE_TABLES:
        _check_rows(res / "tables" / f"{name}.csv")
    for name in FIGURES:
        assert (res / "figures" / f"{name}.png").stat().st_size > 5_000, name
    for name in NOTEBOOKS:
        assert (res / "executed" / f"{name}.ipynb").exists()
    means = pd.read_csv(res / "tables" / "09_means.csv", index_col=0)
    from asdlib.study.registry import EXPERIMENTS

    assert len(means) == len(EXPERIMENTS) and means["Dev AUC"].between(0, 100).all()
    sel = pd.read_csv(res / "tables" / "09_selection.csv", index_col=0)
    assert {"Dev AUC study rule", "Dev AUC label-free", "Dev AUC optimism"} <= set(sel.columns)
    fusion = pd.read_csv(res / "tables" / "08_fusion.csv", index_col=0)  # asdlib's fusion beside its parts
    assert set(fusion["method"]) == {"classifier", "autoencoder", "wavenet", "fusion"}
    assert fusion["mean AUC"].between(0, 100).all()
    claims = pd.read_csv(res / "tables" / "09_claims.csv", index_col=0)
    assert len(claims) == 7 and claims["AUC verdict"].isin(VERDICTS).all()
    later = pd.read_csv(res / "tables" / "10_official_dcase2023.csv", index_col=0)
    assert list(later.index) == sorted(EDITIONS[2023].dev_machines) + ["official score (hmean)"]
    assert later.shape[1] == 12 and "SYNTHETIC DCASE2023" in (res / "tables" / "10_official_dcase2023.md").read_text()
    site = check_site(res)
    assert site["ok"] and site["data"] == "synthetic", site
    if find_browser() or os.environ.get("ASDLIB_REQUIRE_BROWSER"):  # CI installs chromium (.ci/run)
        views, problems = check_site_in_browser(res)
        assert problems == [] and all("SYNTHETIC" in v.banner for v in views), problems


@pytest.mark.slow
def test_second_run_reuses_every_notebook(ci_study):
    """A second run of the same settings reuses every step. In place (the keys hold the folders); the
    shared run's tables, figures and notebooks stay as they were, timings.csv then says 'reused'."""
    again = reproduce(ci_study.cfg, progress=False)
    assert [r["step"] for r in again] == ["data", *NOTEBOOKS, "html"]
    assert all(r["status"] == "reused" for r in again if r["step"] not in ("data", "html"))


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(not MINI.exists(), reason=f"real clips not present at {MINI}")
def test_exploration_notebooks_run_on_real_clips(tmp_path):
    cfg = ReproduceConfig(data_root=str(MINI), profile="ci", device="cpu", results_dir=str(tmp_path / "res"),
                          work_dir=str(tmp_path / "work"), notebooks=NOTEBOOKS[:2])
    reproduce(cfg, progress=False)
    counts = pd.read_csv(tmp_path / "res" / "tables" / "01_clip_counts.csv")
    assert counts["total"].sum() == 93
    assert "DCASE2020" in (tmp_path / "res" / "tables" / "01_clip_counts.md").read_text()
    for name in ("01_examples", "01_id_spectra", "02_feature_histograms"):
        assert (tmp_path / "res" / "figures" / f"{name}.png").exists()


@pytest.mark.slow
def test_subset_profile_runs_the_notebooks_on_a_locally_served_subset(tmp_path):
    """The real-subset path end to end: Zenodo-like zips served on 127.0.0.1 (real clips of
    ../shared where present, synthetic ones filling the other IDs), `download --subset`, then
    the whole notebook sequence with the subset profile's code path (crops, sliding windows)."""
    from zenodo_server import FakeZenodo, build_fake_zenodo, real_data_available

    from asdlib.data.subset import SubsetProfile, fetch_subset

    # 4 training clips per ID: the fewest that notebook 07 fits its scorers on (the GMM needs 4 per ID)
    fake = build_fake_zenodo(n_train=4, n_test=2, n_eval_test=2, real=real_data_available(), seconds=1.5)
    root = tmp_path / "subset"
    with FakeZenodo(fake) as server:
        fetch_subset(root, SubsetProfile("test", n_train=4, n_test=2), base_url=server.url, progress=False,
                     min_interval=0.0, backoff=0.01, timeout=10.0)
    cfg = ReproduceConfig(data_root=str(root), profile="ci_real", device="cpu", results_dir=str(tmp_path / "res"),
                          work_dir=str(tmp_path / "work"), data_note="a subset served on 127.0.0.1 (test)")
    rows = reproduce(cfg, progress=False)
    assert [r["step"] for r in rows][:2] == ["data", NOTEBOOKS[0]] and all(r["status"] == "ran" for r in rows[1:])
    res = tmp_path / "res"
    for name in STUDY_TABLES:
        text = (res / "tables" / f"{name}.md").read_text()
        assert "REAL DCASE2020" in text and "SYNTHETIC" not in text
        assert "per ID: 4 training clips, 2 normal test clips, 2 anomalous test clips" in text
        _check_rows(res / "tables" / f"{name}.csv", ["Dev AUC", "Dev pAUC", "Eval AUC", "Eval pAUC"])
    info = json.loads((res / "run_info.json").read_text())
    assert info["synthetic_data"] is False and "127.0.0.1" in info["data_source"]
    assert "real DCASE2020" in (res / "README.md").read_text()


def test_library_digest_covers_every_subpackage():
    """A change anywhere in asdlib (not only asdlib/study) re-runs the notebooks."""
    from asdlib.study.pipeline import library_sources

    names = {p.relative_to(ROOT / "asdlib").as_posix() for p in library_sources()}
    assert {"classify/train.py", "report/metrics.py", "features/logmel.py", "study/pipeline.py"} <= names
