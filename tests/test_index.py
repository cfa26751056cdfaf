"""Dataset index: good layouts, labels from names and from the ground truth, every bad layout."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from asdlib.cli.main import main
from asdlib.core.errors import DatasetLayoutError
from asdlib.data.index import COLUMNS, index_dataset, pivot_summary, read_ground_truth, summarize_index

MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dcase2020-mini"


def _expected(manifest: list[dict], **where) -> pd.DataFrame:
    rows = [r for r in manifest if all(r[k] == v for k, v in where.items())]
    return pd.DataFrame(rows).sort_values("relpath").reset_index(drop=True)


def test_index_matches_what_was_written(tiny_dataset: Path, tiny_manifest: list[dict]) -> None:
    df = index_dataset(tiny_dataset)
    assert tuple(df.columns) == COLUMNS
    assert len(df) == len(tiny_manifest)
    assert list(df.index) == list(range(len(df)))
    got = df.sort_values("relpath").reset_index(drop=True)
    exp = _expected(tiny_manifest)
    for col in ("relpath", "dataset", "part", "machine_type", "machine_id"):
        assert got[col].tolist() == exp[col].tolist(), col
    # labels: dev from names, eval test from the ground truth (both kinds present)
    assert got["label"].tolist() == exp["label"].tolist()
    assert set(df.loc[(df.dataset == "eval") & (df.part == "test"), "label"]) == {0, 1}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])
    assert (df["file"] == df["relpath"].str.rsplit("/", n=1).str[-1]).all()
    keys = ["dataset", "machine_type", "part", "machine_id", "file"]
    assert df[keys].equals(df[keys].sort_values(keys).reset_index(drop=True))


def test_selection_and_unknown_labels_without_ground_truth(tiny_dataset: Path, tiny_manifest: list[dict]) -> None:
    fan_eval = index_dataset(tiny_dataset, datasets=["eval"], machine_types=["fan"], parts=["test"])
    assert len(fan_eval) == len(_expected(tiny_manifest, dataset="eval", machine_type="fan", part="test"))
    (tiny_dataset / "eval_data_list.csv").unlink()
    df = index_dataset(tiny_dataset)
    eval_test = df[(df.dataset == "eval") & (df.part == "test")]
    assert len(eval_test) > 0 and (eval_test["label"] == -1).all()
    assert (df.loc[df.dataset == "dev", "label"] >= 0).all()


def test_ground_truth_inside_eval_data_is_found(tiny_dataset: Path) -> None:
    shutil.move(tiny_dataset / "eval_data_list.csv", tiny_dataset / "eval_data" / "eval_data_list.csv")
    df = index_dataset(tiny_dataset, datasets=["eval"], parts=["test"])
    assert (df["label"] >= 0).all()


def test_partial_data_and_empty_root(tiny_dataset: Path, tmp_path: Path) -> None:
    shutil.rmtree(tiny_dataset / "eval_data")
    shutil.rmtree(tiny_dataset / "dev_data" / "fan" / "train")
    df = index_dataset(tiny_dataset)
    assert set(df["dataset"]) == {"dev"}
    assert not ((df.machine_type == "fan") & (df.part == "train")).any()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError, match="no clips found") as e:
        index_dataset(empty)
    assert str(empty) in str(e.value)


@pytest.mark.parametrize(
    "relpath, reason",
    [
        ("dev_data/fan/train/normal_id_00_1.wav", "naming"),
        ("dev_data/fan/test/normal_id_01_00000009.wav", "not a dev ID"),  # an eval ID in dev
        ("dev_data/ToyCar/test/normal_id_00_00000009.wav", "not a dev ID"),  # a fan ID in ToyCar
        ("dev_data/fan/train/anomaly_id_00_00000009.wav", "anomalous clip in a training folder"),
        ("eval_data/fan/test/anomaly_id_01_00000009.wav", "not with a label"),
        ("eval_data/fan/test/id_01_00000009.wav", "missing from the ground truth"),
        ("dev_data/fann/test/normal_id_00_00000009.wav", "unknown machine type folder"),
        ("dev_data/fan/test/notes.txt", "not a .wav"),
    ],
)
def test_each_bad_layout_is_one_error_naming_the_path(tiny_dataset: Path, make_wav, relpath: str, reason: str) -> None:
    bad = tiny_dataset / relpath
    if bad.suffix == ".wav":
        make_wav(bad, seconds=0.1)
    else:
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text("x")
    (tiny_dataset / "dev_data" / "fan" / "test" / ".DS_Store").write_text("ignored")
    with pytest.raises(DatasetLayoutError) as e:
        index_dataset(tiny_dataset)
    msg = str(e.value)
    offending = bad.parent.parent if "folder" in reason else bad
    assert str(offending.resolve()) in msg and reason in msg
    assert msg.startswith("1 problem(s)")


def test_all_problems_are_counted(tiny_dataset: Path, make_wav) -> None:
    for k in range(13):
        make_wav(tiny_dataset / "dev_data" / "pump" / "train" / f"bad_{k}.wav", seconds=0.05)
    with pytest.raises(DatasetLayoutError, match=r"^13 problem\(s\)") as e:
        index_dataset(tiny_dataset)
    assert "and 3 more" in str(e.value)


def test_ground_truth_parser(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("fan\nid_01_00000000.wav,normal_id_01_00000007.wav,0\n\nvalve\nid_05_00000001.wav,x.wav,1\n")
    assert read_ground_truth(good) == {("fan", "id_01_00000000.wav"): 0, ("valve", "id_05_00000001.wav"): 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("fan\nid_01_00000000.wav,x,2\nid_00_00000001.wav,x,1\nfann\nid_02_00000000.wav,x,0\n")
    with pytest.raises(DatasetLayoutError, match=r"^4 problem\(s\)") as e:
        read_ground_truth(bad)
    assert f"{bad}:2" in str(e.value) and f"{bad}:3" in str(e.value)


def test_summaries(tiny_dataset: Path, tiny_manifest: list[dict]) -> None:
    df = index_dataset(tiny_dataset)
    tidy = summarize_index(df)
    assert tidy["n"].sum() == len(tiny_manifest)
    pivot = pivot_summary(df)
    assert pivot["total"].sum() == len(tiny_manifest)
    n_dev_test_anomaly = sum(1 for r in tiny_manifest if r["dataset"] == "dev" and r["label"] == 1)
    assert pivot.loc["dev", "test anomaly"].sum() == n_dev_test_anomaly


def test_cli_index_exit_codes(tiny_dataset: Path, make_wav, capsys, tmp_path: Path) -> None:
    out_csv = tmp_path / "index.csv"
    assert main(["index", "--root", str(tiny_dataset), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "test anomaly" in out and "ToyCar" in out
    assert len(pd.read_csv(out_csv)) == len(index_dataset(tiny_dataset))
    bad = make_wav(tiny_dataset / "dev_data" / "fan" / "train" / "anomaly_id_00_00000042.wav", seconds=0.05)
    assert main(["index", "--root", str(tiny_dataset)]) == 2
    assert str(bad.resolve()) in capsys.readouterr().err
    assert main(["index", "--root", str(tiny_dataset), "--types", "lawnmower"]) == 2


@pytest.mark.real_data
@pytest.mark.skipif(not MINI.is_dir(), reason="../shared/data/dcase2020-mini absent")
def test_real_mini_dataset() -> None:
    df = index_dataset(MINI)
    assert set(df["part"]) == {"test"} and set(df["dataset"]) == {"dev"}
    assert set(df["machine_type"]) == {"ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"}
    assert set(df["label"]) == {0, 1}
