"""DCASE baseline file formats: names, exact layout, round trips and refusals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asdlib.report.dcase_io import (
    anomaly_score_filename,
    decision_result_filename,
    read_anomaly_scores,
    read_decisions,
    read_type_result,
    write_anomaly_scores,
    write_decisions,
    write_type_result,
)
from asdlib.report.metrics import evaluate


def test_filenames() -> None:
    assert anomaly_score_filename("ToyCar", "01") == "anomaly_score_ToyCar_id_01.csv"
    assert decision_result_filename("valve", "05") == "decision_result_valve_id_05.csv"
    with pytest.raises(ValueError):
        anomaly_score_filename("Fan", "01")
    with pytest.raises(ValueError):
        anomaly_score_filename("fan", "1")


def test_anomaly_scores_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    files = [f"/data/dev_data/fan/test/normal_id_00_{k:08d}.wav" for k in range(5)]
    scores = rng.normal(size=5)
    path = write_anomaly_scores(tmp_path / anomaly_score_filename("fan", "00"), files, scores)
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[0] == "normal_id_00_00000000.wav"  # base name, no header
    assert len(lines) == 5
    back = read_anomaly_scores(path)
    assert back["file_name"].tolist() == [f.rsplit("/", 1)[1] for f in files]
    np.testing.assert_array_equal(back["score"].to_numpy(), scores)  # repr keeps every bit


def test_anomaly_scores_refuse_bad_input(tmp_path) -> None:
    path = tmp_path / "s.csv"
    with pytest.raises(ValueError, match="NaN"):
        write_anomaly_scores(path, ["a.wav", "b.wav"], [0.1, np.nan])
    with pytest.raises(ValueError, match="2 files but 1"):
        write_anomaly_scores(path, ["a.wav", "b.wav"], [0.1])
    assert not path.exists()


def test_decisions_round_trip(tmp_path) -> None:
    path = write_decisions(tmp_path / "d.csv", ["id_01_00000000.wav", "id_01_00000001.wav"], np.array([1, 0]))
    assert path.read_text() == "id_01_00000000.wav,1\nid_01_00000001.wav,0\n"
    assert read_decisions(path)["decision"].tolist() == [1, 0]
    with pytest.raises(ValueError):
        write_decisions(tmp_path / "e.csv", ["a.wav"], [2])


def test_type_result_from_evaluate(tmp_path) -> None:
    scores = pd.DataFrame({
        "dataset": "dev", "machine_type": "pump",
        "machine_id": ["00"] * 4 + ["02"] * 4,
        "label": [0, 0, 1, 1] * 2,
        "score": [0, 1, 2, 3, 0, 2, 1, 3],
    })
    path = write_type_result(tmp_path / "result_pump.csv", evaluate(scores))
    lines = path.read_text().splitlines()
    assert lines[0] == "pump" and lines[1] == "id,AUC,pAUC"
    assert lines[2].startswith("00,1.0,") and lines[-1].startswith("Average,0.875,")
    mtype, per_id, (avg_auc, avg_pauc) = read_type_result(path)
    assert mtype == "pump" and per_id["id"].tolist() == ["00", "02"]
    assert per_id["AUC"].tolist() == [1.0, 0.75]
    assert avg_pauc == pytest.approx(per_id["pAUC"].mean())


def test_type_result_from_tuples(tmp_path) -> None:
    path = write_type_result(tmp_path / "r.csv", [("id_03", 0.9, 0.8), ("id_01", 0.7, 0.6)], machine_type="fan")
    _, per_id, avg = read_type_result(path)
    assert per_id["id"].tolist() == ["01", "03"]
    assert avg == pytest.approx((0.8, 0.7))
    with pytest.raises(ValueError, match="one machine type"):
        write_type_result(tmp_path / "x.csv", [("01", 0.9, 0.8)])
