"""Official DCASE2021-2025 scores (asdlib.report.official) against the organisers' evaluators."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asdlib.core.errors import DatasetLayoutError
from asdlib.report.official import (
    evaluate_official,
    official_scores,
    read_evaluator_result,
    read_score_folder,
    score_filename,
    write_score_files,
)

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "official-eval"
needs_fixtures = pytest.mark.skipif(not OFFICIAL.is_dir(), reason="shared/data/official-eval absent")


@needs_fixtures
@pytest.mark.parametrize("year", [2021, 2023])
def test_official_fixture_reproduced_to_1e9(year):
    folder = OFFICIAL / f"dcase{year}"
    want = read_evaluator_result(folder / "official_result.csv")
    want_sections = {(r.machine, r.section, r.domain, r.metric): r.value for r in want.tidy.itertuples()}
    want_summary = {(r.machine, r.row, r.metric): r.value for r in want.summary.itertuples()}
    want_score = want.official_score
    got = evaluate_official(folder / "scores", folder, year)
    tidy = {(r.machine, r.section, r.domain, r.metric): r.value for r in got.tidy.itertuples()}
    summary = {(r.machine, r.row, r.metric): r.value for r in got.summary.itertuples()}
    assert len(want_sections) >= 7 * (30 if year == 2021 else 10) and len(want_summary) >= 8 * 20
    assert set(tidy) == set(want_sections)
    assert set(summary) == set(want_summary)
    for key, v in want_sections.items():
        assert tidy[key] == pytest.approx(v, abs=1e-9), key
    for key, v in want_summary.items():
        assert summary[key] == pytest.approx(v, abs=1e-9), key
    assert got.official_score == pytest.approx(want_score, abs=1e-9)
    assert want_score == {2021: 0.6532653624413693, 2023: 0.6845221053622476}[year]  # the README's figure


@needs_fixtures
@pytest.mark.parametrize("year", [2021, 2023])
def test_score_files_round_trip_in_official_naming(tmp_path, year):
    """asdlib writes the files under the names the evaluator reads, and gets the same score back."""
    folder = OFFICIAL / f"dcase{year}"
    scores = read_score_folder(folder / "scores", year)
    written = write_score_files(tmp_path, year, scores)
    assert sorted(p.name for p in written) == sorted(p.name for p in (folder / "scores").glob("*.csv"))
    again = evaluate_official(tmp_path, folder, year)
    assert again.official_score == pytest.approx(evaluate_official(folder / "scores", folder, year).official_score,
                                                 abs=1e-12)


def test_score_filename_per_edition():
    assert score_filename(2023, "bandsaw", "00") == "anomaly_score_bandsaw_section_00_test.csv"
    assert score_filename(2022, "fan", "03", kind="decision_result") == "decision_result_fan_section_03_test.csv"
    assert score_filename(2021, "pump", "04", "target") == "anomaly_score_pump_section_04_target_test.csv"
    with pytest.raises(ValueError, match="per domain"):
        score_filename(2021, "pump", "04")
    with pytest.raises(DatasetLayoutError, match="unknown machine type 'lathe'"):
        score_filename(2023, "lathe", "00")


def _clips(rng, n=40):
    """One section: source/target x normal/anomaly, n each, scores that separate them a little."""
    rows = []
    for domain in ("source", "target"):
        for label in (0, 1):
            for k in range(n):
                rows.append(("valve", "00", domain, f"{domain}_{label}_{k}.wav", rng.normal(label + (domain == "target")),
                             label))
    return pd.DataFrame(rows, columns=["machine", "section", "domain", "file", "score", "label"])


def test_2022_domain_auc_uses_every_anomaly_of_the_section():
    df = _clips(np.random.default_rng(0))
    got = official_scores(df, 2023).tidy.set_index(["domain", "metric"])["value"]
    src = df[(df.domain == "source") | (df.label == 1)]
    own = df[df.domain == "source"]
    assert got[("source", "AUC")] == roc_auc_score(src.label, src.score)
    assert got[("source", "AUC")] != pytest.approx(roc_auc_score(own.label, own.score), abs=1e-3)
    assert got[("all", "pAUC")] == roc_auc_score(df.label, df.score, max_fpr=0.1)
    # 2021: each domain on its own clips
    got21 = official_scores(df.assign(section="00"), 2021).tidy.set_index(["domain", "metric"])["value"]
    assert got21[("source", "AUC")] == roc_auc_score(own.label, own.score)


def test_values_floored_at_machine_epsilon():
    df = _clips(np.random.default_rng(1))
    df["score"] = -df["label"].astype(float)  # every anomaly scored below every normal: AUC 0
    res = official_scores(df, 2023)
    assert (res.tidy.loc[res.tidy.metric == "AUC", "value"] == 0).all()
    assert res.official_score == pytest.approx(sys.float_info.epsilon)
    assert res.official_score > 0


def test_one_class_section_is_a_clear_error():
    df = _clips(np.random.default_rng(2))
    with pytest.raises(ValueError, match="valve section 00: the clips are all of one class"):
        official_scores(df[df.label == 0], 2023)


@needs_fixtures
def test_missing_ground_truth_clip_and_wrong_edition_names(tmp_path):
    folder = OFFICIAL / "dcase2023"
    shutil.copytree(folder / "scores", tmp_path / "s")
    p = tmp_path / "s" / "anomaly_score_bandsaw_section_00_test.csv"
    p.write_text(p.read_text() + "section_00_9999.wav,0.5\n")
    with pytest.raises(DatasetLayoutError, match=r"decision_result_bandsaw_section_00_test\.csv: lacks 1 clips"):
        evaluate_official(tmp_path / "s", folder, 2023)
    (tmp_path / "s" / "decision_result_bandsaw_section_00_test.csv").unlink()
    with pytest.raises(DatasetLayoutError, match="1 scored clips not in the ground truth"):
        evaluate_official(tmp_path / "s", folder, 2023)
    with pytest.raises(DatasetLayoutError, match="not a DCASE2021 score file name"):
        read_score_folder(folder / "scores", 2021)


def test_evaluator_result_reader_refuses_other_files(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("fan\nid,AUC,pAUC\n00,0.9,0.8\nAverage,0.9,0.8\n")
    with pytest.raises(DatasetLayoutError, match="r.csv"):
        read_evaluator_result(p)
