"""The machine-speed figure (asdlib.study.speed): a positive rate with every field, measured once per
process, and written beside the timings (timings.csv, run_info.json, the site, the test session)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

from asdlib.study import speed as speed_mod
from asdlib.study.speed import SPEED_FIELDS, SpeedConfig, SpeedResult, machine_speed, measure_speed

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_output_is_positive_and_has_the_fields() -> None:
    threads = torch.get_num_threads()
    r = measure_speed(SpeedConfig(seconds=0.2, min_reps=1))
    d = r.to_dict()
    assert set(SPEED_FIELDS) <= set(d)
    assert all(d[k] > 0 for k in SPEED_FIELDS), d
    assert abs(r.score - (r.train_steps_per_s * r.feature_clips_per_s) ** 0.5) < 1e-2 * r.score
    assert r.threads == 1 and torch.get_num_threads() == threads  # the caller's thread count is restored
    assert "steps/s" in r.line() and "clips/s" in r.line()


def test_measured_once_per_process(monkeypatch) -> None:
    calls = []
    fake = SpeedResult(1.0, 2.0, 1.414, 1, 0.1, "cpu", 1)
    monkeypatch.setattr(speed_mod, "_MEASURED", [])
    monkeypatch.setattr(speed_mod, "measure_speed", lambda cfg=None: calls.append(1) or fake)
    assert machine_speed() is fake and machine_speed() is fake and len(calls) == 1


def test_the_session_measured_the_machine(request) -> None:
    """The conftest hook measured at the session's start; the figure is kept in .pytest_cache."""
    speed = getattr(request.config, "_asdlib_speed", None)
    assert isinstance(speed, SpeedResult) and speed.score > 0
    assert machine_speed() is speed  # every study run of the session reuses it
    cache = getattr(request.config, "cache", None)
    if cache is not None:  # absent only under -p no:cacheprovider
        assert cache.get("asdlib/machine_speed", None) == speed.to_dict()


def check_speed_written(results: Path) -> None:
    """The figure in every place a study run writes timings (used by the CI-size run's tests)."""
    timings = pd.read_csv(results / "timings.csv")
    assert "machine_speed" in timings.columns
    ran = timings[timings["status"] == "ran"]
    assert (ran["machine_speed"] > 0).all(), timings
    info = json.loads((results / "run_info.json").read_text())
    assert set(SPEED_FIELDS) <= set(info["machine_speed"]) and info["machine_speed"]["score"] > 0
    assert all(r["machine_speed"] == info["machine_speed"]["score"] for r in info["timings"] if r["status"] == "ran")
    index = (results / "html" / "index.html").read_text()
    assert "machine speed" in index and str(info["machine_speed"]["score"]) in index


def test_figure_written_by_a_ci_size_run(ci_study) -> None:
    check_speed_written(ci_study.results)


def test_readme_states_timings_with_the_speed_figure() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Measured here", 1)[1].split("\n## ", 1)[0]
    assert "machine speed" in section and "asdlib.study.speed" in section
    assert re.search(r"speed \d+", section), "no measured figure in README's Measured here"
