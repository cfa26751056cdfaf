"""benchmarks/bench_real.py: the methods on real ToyCar features, at tiny size.

A small synthetic npz with the fields of toycar_dev.npz (made in tmp_path) runs the whole code
path everywhere; the real file (``../shared/data/toycar-real/toycar_dev.npz``, or under
``$ASDLIB_SHARED``) is used when it is there and the test skipped otherwise.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_real", ROOT / "benchmarks" / "bench_real.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_real"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()
REAL = bench.default_data()


def fake_npz(path: Path, ids=(1, 2), n_train=6, n_test=3, frames=70, mels=32, seed=0, **replace) -> Path:
    """Clips (N, frames, mels) in dB as toycar_dev.npz stores them: each ID a tone in its own mel
    bin, anomalies with extra broadband noise."""
    rng = np.random.default_rng(seed)
    X, label, mid, part = [], [], [], []
    for k, m in enumerate(ids):
        for p, lab, n in (("train", 0, n_train), ("test", 0, n_test), ("test", 1, n_test)):
            x = rng.normal(-50, 3, size=(n, frames, mels))
            x[:, :, 4 + 5 * k] += 20
            if lab:
                x += rng.normal(0, 8, size=x.shape)
            X.append(x)
            label += [lab] * n
            mid += [m] * n
            part += [p] * n
    fields = {"X": np.concatenate(X).astype(np.float32), "label": np.array(label, np.int8),
              "machine_id": np.array(mid, np.int8), "part": np.array(part),
              "names": np.array([f"clip_{i:03d}.wav" for i in range(len(label))])}
    fields.update(replace)
    fields = {k: v for k, v in fields.items() if v is not None}
    np.savez(path, **fields)
    return path


N_FUSED = len(bench.FUSIONS) * len(bench.FUSION_COMBINATIONS)  # fusion rows per seed, ID and metric


def check_outputs(out: Path, n_ids: int, methods=bench.METHODS) -> pd.DataFrame:
    tidy = pd.read_csv(out / "tidy.csv", dtype={"machine_id": str})
    assert list(tidy.columns) == bench.TIDY_COLUMNS
    n_scorers = sum(len(bench.CLASSIFIER_SCORERS) if m in ("study", "improved") else 1 for m in methods) + N_FUSED
    assert len(tidy) == n_scorers * n_ids * 2  # one row per method, scorer, seed (1), ID, metric
    assert set(tidy["method"]) == set(methods) | {"fusion"} and tidy["value"].between(0, 1).all()
    # softmax and -log p rank the clips of an ID alike
    sm = tidy[(tidy.method == "improved") & (tidy.scorer == "softmax")]["value"].to_numpy()
    nl = tidy[(tidy.method == "improved") & (tidy.scorer == "neglogp")]["value"].to_numpy()
    assert np.allclose(sm, nl)
    table = pd.read_csv(out / "table.csv")
    assert len(table) == n_scorers and {"mean AUC", "mean pAUC", "mean AUC sd"} <= set(table.columns)
    md = (out / "table.md").read_text()
    assert "real ToyCar log-mel features" in md and "improved recipe (asdlib)" in md and "ID01 AUC/pAUC" in md
    assert (out / "per_id.png").stat().st_size > 1000
    for name in ("provenance.json", "table.md", "table.csv", "tidy.csv"):  # issue 17.5: no absolute path of the machine
        assert str(out.parent) not in (out / name).read_text() and str(ROOT) not in (out / name).read_text(), name
    prov = json.loads((out / "provenance.json").read_text())
    assert {"versions", "device", "git", "config", "caption", "data", "wall_s"} <= set(prov)
    assert prov["config"]["methods"]["improved"]["input_norm"] == "per_mel"
    assert prov["config"]["methods"]["study"]["sampling"] == "shuffle"
    scores = pd.read_csv(out / "scores.csv")
    assert scores["score"].notna().all()
    # fusion is computed from the test clips only, standardised on the held-out training clips
    fused = scores[scores["method"] == "fusion"]
    assert set(fused["part"]) == {"test"} and set(scores.loc[scores["method"] != "fusion", "part"]) == {"heldout", "test"}
    assert prov["config"]["holdout"] == bench.HOLDOUT and "fusion" in prov["rows"]
    # the declared fusion is one of the fused rows, and the caption says which and why
    assert bench.PRIMARY["fusion"] in set(tidy.loc[tidy["method"] == "fusion", "scorer"])
    assert bench.FUSION_DECLARED in md
    # how alike the parts rank clips, on held-out and on test clips, per seed, ID and pair; no label read
    agree = pd.read_csv(out / "agreement.csv", dtype={"machine_id": str})
    assert set(agree["part"]) == {"heldout", "test"} and agree["rho"].dropna().between(-1, 1).all()
    assert len(agree) == 2 * n_ids * 3 and set(zip(agree["a"], agree["b"])) == {
        ("improved", "autoencoder"), ("improved", "wavenet"), ("autoencoder", "wavenet")}
    return tidy


def test_bench_real_on_a_synthetic_file(tmp_path):
    npz = fake_npz(tmp_path / "fake.npz", n_train=8)  # 20 % held out: 2 clips per ID
    out = tmp_path / "out"
    args = ["--data", str(npz), "--out", str(out), "--tiny", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--cache", str(tmp_path / "cache")]
    assert bench.main(args) == 0
    tidy = check_outputs(out, n_ids=2)
    assert set(tidy["machine_id"]) == {"01", "02"}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["data"]["n_train"] == 16 and prov["data"]["n_test"] == 12  # --tiny keeps 8 per group: all here
    assert "16 train clips, 12 test clips" in prov["caption"]
    assert prov["data"]["path"] == "fake.npz" and "--data fake.npz" in prov["command"]
    assert prov["config"]["epochs"] == {"study": 1, "improved": 5, "autoencoder": 4, "wavenet": 1}
    assert prov["cached_runs"] == []
    # a second run finds every run in the cache (nothing retrained) and writes the same table;
    # with --keep-other-methods the rows of the methods not run now are kept, with their revision
    before = pd.read_csv(out / "tidy.csv", dtype={"machine_id": str})
    assert bench.main(args + ["--methods", "improved,autoencoder,wavenet", "--keep-other-methods", "--cached-only"]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["cached_runs"]) == 3 and set(prov["rows"]) == {*bench.METHODS, "fusion"} and prov["missing_runs"] == []
    pd.testing.assert_frame_equal(pd.read_csv(out / "tidy.csv", dtype={"machine_id": str}), before)


def test_bench_real_names_an_absent_or_malformed_file(tmp_path, capsys):
    missing = tmp_path / "nowhere.npz"
    assert bench.main(["--data", str(missing), "--out", str(tmp_path / "o"), "--tiny", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--data" in err
    bad = fake_npz(tmp_path / "bad.npz", part=None)
    with pytest.raises(bench.DataError, match=r"bad\.npz lacks field\(s\) part"):
        bench.load_features(bad)
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(bench.DataError, match="cannot be read"):
        bench.load_features(tmp_path / "junk.npz")
    train_anomaly = fake_npz(tmp_path / "ta.npz", label=np.ones(24, np.int8))
    with pytest.raises(bench.DataError, match="must be normal"):
        bench.load_features(train_anomaly)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} absent (../shared/data/toycar-real)")
def test_bench_real_on_the_real_toycar_file(tmp_path):
    out = tmp_path / "out"
    assert bench.main(["--out", str(out), "--tiny", "--seeds", "1", "--jobs", "1", "--no-progress",
                       "--methods", "study,improved,autoencoder,wavenet", "--no-cache"]) == 0
    tidy = check_outputs(out, n_ids=4)
    assert set(tidy["machine_id"]) == {"01", "02", "03", "04"}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["data"]["n_mels"] == 128 and prov["data"]["n_frames"] == 200


def test_the_tuning_set_figure_is_labelled_and_the_held_back_one_quoted():
    """Issue 17.4: on the developers' half (the improved recipe's tuning set) the table says so and
    quotes the held-back half's figures; the committed table.md is the generator's caption."""
    note = bench.tuning_note({"path": "/anywhere/toycar_dev.npz"})
    assert "tuning-set" in note and "AUC 86.9 ± 2.7, pAUC 81.2 ± 3.0" in note and "6fbb603" in note
    assert bench.tuning_note({"path": "fake.npz"}) == ""
    md = bench.table_markdown(pd.DataFrame(columns=["label", "scorer"]), "cap", 3, note)
    assert md.splitlines()[0].endswith(note)
    out = bench.ROOT / "results" / "real_toycar"
    prov = json.loads((out / "provenance.json").read_text())
    first = (out / "table.md").read_text().splitlines()[0]
    base = bench.table_caption(prov["caption"], len(prov["config"]["seeds"]))  # then the run's notes
    assert first.startswith(base) and bench.tuning_note(prov["data"]).strip() in first
    # issue 20: the declared fusion, and that it was declared after this half's fused rows were seen
    assert bench.FUSION_DECLARED + bench.FUSION_TUNING_NOTE in first
    assert bench.PRIMARY["fusion"] == "improved+WaveNet max"
    readme = (bench.ROOT / "README.md").read_text()
    assert "tuning-set figure" in readme and "**86.9 ± 2.7**" in readme
