"""``asdlib score`` end to end on a tiny checkpoint, and ``asdlib train`` + ``score`` on synthetic data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.metrics import roc_auc_score

from asdlib.classify.config import TrainConfig
from asdlib.classify.threshold import calibrate, gamma_threshold, load_thresholds
from asdlib.classify.train import fit
from asdlib.cli.main import main
from asdlib.cli.score import collect_wavs, wav_features
from asdlib.core.errors import AsdlibError, CacheError
from asdlib.features.logmel import FeatureConfig

SR = 16_000
FC = FeatureConfig(n_fft=256, win_length=256, hop_length=128, n_mels=16, duration_s=0.25)
TINY = {"model": "iresnet50", "width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 32, "batch_size": 8,
        "schedule.max_lr": 3e-3, "schedule.T_up": 1, "schedule.T_0": 4, "schedule.T_mult": 1, "device": "cpu",
        "amp": False}


def write_tone(path, freq: float, seed: int, noise: float = 0.05) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.normal(size=t.size)).astype(np.float32), SR)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A classifier of fan/00 (500 Hz tone) vs fan/02 (2 kHz), with calibrated thresholds."""
    root = tmp_path_factory.mktemp("tiny")
    files, ids = [], []
    for k in range(24):
        mid, freq = ("00", 500.0) if k % 2 == 0 else ("02", 2000.0)
        f = root / f"normal_id_{mid}_{k:08d}.wav"
        write_tone(f, freq, seed=k)
        files.append(f)
        ids.append(mid)
    x = wav_features(files, FC.to_dict())
    y = np.array([0 if i == "00" else 1 for i in ids])
    res = fit(x, y, TrainConfig.from_dict(TINY | {"epochs": 3}, strict=True), root / "run", class_names=[("fan", "00"), ("fan", "02")],
              feature_config=FC.to_dict(), progress=False)
    meta = pd.DataFrame({"machine_type": "fan", "machine_id": ids})
    cal = calibrate(res.last_path, x, meta, scorer="softmax")
    return res.last_path, cal


THREE_IDS = {"00": 500.0, "02": 1000.0, "04": 2000.0}


def _tone_clips(folder, mid: str, n: int, seed0: int) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        files.append(folder / f"normal_id_{mid}_{seed0 + k:08d}.wav")
        write_tone(files[-1], THREE_IDS[mid], seed=seed0 + k, noise=0.2)
    return files


@pytest.fixture(scope="module")
def three_id_checkpoint(tmp_path_factory):
    """fan/00, /02, /04 (tones in noise); every scorer calibrated on held-out clips, fitted on the training clips."""
    from asdlib.classify.scorers import SCORERS

    root = tmp_path_factory.mktemp("three")
    train = [f for k, mid in enumerate(THREE_IDS) for f in _tone_clips(root / "train", mid, 24, 1000 * (k + 1))]
    held = [f for k, mid in enumerate(THREE_IDS) for f in _tone_clips(root / "held", mid, 40, 1000 * (k + 1) + 500)]
    ids = lambda files: [f.name.split("_")[2] for f in files]  # noqa: E731
    x_train, x_held = wav_features(train, FC.to_dict()), wav_features(held, FC.to_dict())
    names = [("fan", mid) for mid in THREE_IDS]
    y = np.array([list(THREE_IDS).index(i) for i in ids(train)])
    res = fit(x_train, y, TrainConfig.from_dict(TINY | {"epochs": 3, "val_fraction": 0.0}, strict=True), root / "run",
              class_names=names, feature_config=FC.to_dict(), progress=False)
    meta = lambda files: pd.DataFrame({"machine_type": "fan", "machine_id": ids(files)})  # noqa: E731
    for scorer in SCORERS:
        calibrate(res.last_path, x_held, meta(held), scorer=scorer, fit_features=x_train, fit_meta=meta(train))
    return res.last_path


@pytest.mark.parametrize("scorer", ["softmax", "neglogp", "cosine", "knn", "gmm", "lof", "mahalanobis"])
def test_calibrated_threshold_flags_about_a_tenth_of_new_normal_clips(three_id_checkpoint, tmp_path, scorer):
    """`asdlib score` must score on the scale the thresholds were calibrated on: of new normal clips of
    one ID, about 10 % lie above the threshold (Mahalanobis refitted on one ID flagged none or all)."""
    fresh = _tone_clips(tmp_path / "new", "00", 120, 9000)
    rc = main(["score", "--model", str(three_id_checkpoint), "--input", str(tmp_path / "new"), "--type", "fan",
               "--id", "00", "--scorer", scorer, "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert rc == 0
    d = pd.read_csv(tmp_path / "out" / "decision_result_fan_id_00.csv", header=None, names=["file", "d"])
    assert len(d) == len(fresh)
    assert 0.03 <= d["d"].mean() <= 0.2, (scorer, d["d"].mean())


def test_gamma_threshold_rule_and_fallback():
    rng = np.random.default_rng(0)
    s = rng.gamma(2.0, 1.0, size=2000)
    thr, method = gamma_threshold(s)
    assert method == "gamma" and abs(np.mean(s > thr) - 0.1) < 0.03
    thr, method = gamma_threshold([1.0, 1.0, 1.0])
    assert method == "empirical" and thr == 1.0
    # scores over several orders of magnitude (a confident classifier's 1 - p): a gamma misfits them
    s = np.exp(rng.normal(-9, 2.5, size=200))
    thr, method = gamma_threshold(s)
    assert method == "empirical" and thr == np.quantile(s, 0.9)


@pytest.mark.parametrize("scorer", ["knn", "cosine", "mahalanobis"])
def test_calibrate_refuses_to_fit_a_scorer_on_the_clips_it_calibrates(tiny_checkpoint, tmp_path, scorer):
    """kNN fitted on the calibration clips finds each at distance 0 from itself: thresholds far too low."""
    ckpt, _ = tiny_checkpoint
    files = []
    for k in range(8):
        files.append(tmp_path / f"normal_id_00_{k:08d}.wav")
        write_tone(files[-1], 500.0, seed=300 + k)
    x = wav_features(files, FC.to_dict())
    meta = pd.DataFrame({"machine_type": "fan", "machine_id": ["00"] * len(files)})
    with pytest.raises(AsdlibError, match="fit_features"):
        calibrate(ckpt, x, meta, scorer=scorer, write=False)
    fit_files = []
    for k in range(8):
        fit_files.append(tmp_path / f"fit_normal_id_00_{k:08d}.wav")
        write_tone(fit_files[-1], 500.0, seed=400 + k)
    cal = calibrate(ckpt, x, meta, scorer=scorer, fit_features=wav_features(fit_files, FC.to_dict()),
                    fit_meta=meta, write=False)
    assert set(cal["thresholds"]) == {"fan/00"}


def test_stored_scorer_fit_is_checked(three_id_checkpoint):
    from asdlib.classify.threshold import load_fitted_scorer, scorer_fit_path

    fitted = load_fitted_scorer(three_id_checkpoint, "mahalanobis")  # the 3 IDs' shared covariance
    assert sorted(fitted.models_) == [0, 1, 2]
    path = scorer_fit_path(three_id_checkpoint, "mahalanobis")
    blob = path.read_bytes()
    try:
        path.write_bytes(blob[:-8] + b"\0" * 8)
        with pytest.raises(CacheError, match="not the file"):
            load_fitted_scorer(three_id_checkpoint, "mahalanobis")
    finally:
        path.write_bytes(blob)


def test_score_features_use_the_training_caches_length(tmp_path):
    """Scoring cuts clips to the length the training cache recorded, never to the clips' own."""
    from asdlib.core.errors import AudioError
    from asdlib.features.logmel import num_frames

    long_clip, short_clip = tmp_path / "normal_id_00_00000000.wav", tmp_path / "normal_id_00_00000001.wav"
    sf.write(long_clip, np.zeros(SR, np.float32) + 0.1, SR)  # 1 s
    sf.write(short_clip, np.zeros(SR // 8, np.float32) + 0.1, SR)  # 0.125 s, shorter than the 0.25 s of training
    assert wav_features([long_clip], FC.to_dict()).shape == (1, FC.n_mels, num_frames(FC))
    with pytest.raises(AudioError, match=short_clip.name):
        wav_features([long_clip, short_clip], FC.to_dict())
    with pytest.raises(AsdlibError, match="clip length"):  # not the shortest clip given
        wav_features([long_clip, short_clip], FC.replace(duration_s=None).to_dict())


def test_score_command_writes_dcase_csvs(tiny_checkpoint, tmp_path, capsys):
    ckpt, cal = tiny_checkpoint
    assert set(cal["thresholds"]) == {"fan/00", "fan/02"}
    test = tmp_path / "test"
    test.mkdir()
    for k in range(3):
        write_tone(test / f"normal_id_00_{k:08d}.wav", 500.0, seed=100 + k)
        write_tone(test / f"anomaly_id_00_{k:08d}.wav", 2000.0, seed=200 + k)  # sounds like the other ID
    out = tmp_path / "out"
    rc = main(["score", "--model", str(ckpt), "--input", str(test), "--type", "fan", "--id", "00",
               "--out", str(out), "--device", "cpu", "--no-progress"])
    assert rc == 0
    scores = pd.read_csv(out / "anomaly_score_fan_id_00.csv", header=None, names=["file", "score"])
    decisions = pd.read_csv(out / "decision_result_fan_id_00.csv", header=None, names=["file", "d"])
    assert len(scores) == 6 and list(scores["file"]) == sorted(p.name for p in test.iterdir())
    assert list(decisions["file"]) == list(scores["file"]) and set(decisions["d"]) <= {0, 1}
    thr = load_thresholds(ckpt)["fan/00"]
    assert (decisions["d"].to_numpy() == (scores["score"].to_numpy() > thr)).all()
    anomalous = scores["file"].str.startswith("anomaly")
    assert scores.loc[anomalous, "score"].min() > scores.loc[~anomalous, "score"].max()
    assert "6 clips scored" in capsys.readouterr().out


def test_score_refuses_clips_named_for_another_id(tiny_checkpoint, tmp_path, capsys):
    """`--type fan --id 00` on a folder of id_02 clips: an error naming them, unless asked to score them anyway."""
    ckpt, _ = tiny_checkpoint
    clips = tmp_path / "fan" / "test"
    clips.mkdir(parents=True)
    write_tone(clips / "normal_id_00_00000000.wav", 500.0, seed=1)
    write_tone(clips / "anomaly_id_02_00000001.wav", 2000.0, seed=2)
    write_tone(clips / "id_02_00000007.wav", 2000.0, seed=3)
    argv = ["score", "--model", str(ckpt), "--input", str(clips), "--type", "fan", "--id", "00",
            "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "anomaly_id_02_00000001.wav (ID 02)" in err and "id_02_00000007.wav (ID 02)" in err
    assert "normal_id_00_00000000.wav" not in err and "--allow-other-ids" in err
    assert not (tmp_path / "out").exists()
    assert main(argv + ["--allow-other-ids"]) == 0
    assert "2 of 3 files are named for another machine than fan/00" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "out" / "anomaly_score_fan_id_00.csv", header=None)) == 3
    # a DCASE layout folder of another type
    pump = tmp_path / "pump" / "test"
    pump.mkdir(parents=True)
    write_tone(pump / "normal_id_00_00000000.wav", 500.0, seed=4)
    assert main(argv[:4] + [str(pump)] + argv[5:]) == 2
    assert "(type pump)" in capsys.readouterr().err


def test_score_warns_about_synthetic_training_and_other_clips(tiny_checkpoint, tmp_path, capsys):
    """A checkpoint trained on synthetic 0.25-s clips, given 1-s clips: scored, with warnings that say why
    the decisions may mean nothing."""
    import shutil

    import torch

    from asdlib.classify.checkpoint import save_checkpoint
    from asdlib.classify.threshold import thresholds_path

    ckpt, _ = tiny_checkpoint
    state = torch.load(ckpt, weights_only=True)
    state["data"] = {"synthetic": True, "synth_profile": ["smoke"], "feature_version": 1,
                     "clip_seconds": {"fan": [0.25, 0.25]}}
    synth_ckpt = tmp_path / "synth.pt"
    save_checkpoint(synth_ckpt, {k: v for k, v in state.items() if k != "version"})
    shutil.copy(thresholds_path(ckpt), thresholds_path(synth_ckpt))
    clips = tmp_path / "clips"
    clips.mkdir()
    t = np.arange(SR) / SR  # 1 s, at the model's rate
    sf.write(clips / "normal_id_00_00000000.wav", (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32), SR)
    write_tone(clips / "normal_id_00_00000001.wav", 500.0, seed=5)  # 0.25 s: as trained
    argv = ["score", "--model", str(synth_ckpt), "--input", str(clips), "--type", "fan", "--id", "00",
            "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress", "--overwrite"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "SYNTHETIC" in err
    assert "1 of 2 clips are not as long as the model's training clips of fan (0.25 s" in err
    assert "normal_id_00_00000000.wav (1 s)" in err and "feature settings" not in err
    # another sample rate, resampled on request: the features differ from the training data's
    t = np.arange(int(0.25 * 22050)) / 22050
    sf.write(clips / "normal_id_00_00000002.wav", (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32), 22050)
    assert main(argv) == 2
    assert "22050" in capsys.readouterr().err
    assert main(argv + ["--resample"]) == 0
    err = capsys.readouterr().err
    assert "clips at 22050 Hz are resampled" in err and "feature settings differ" in err and "resample=True" in err
    # the features of another feature-code version
    state["data"]["feature_version"] = -1
    save_checkpoint(synth_ckpt, {k: v for k, v in state.items() if k != "version"})
    (clips / "normal_id_00_00000002.wav").unlink()
    assert main(argv) == 0
    assert "feature code version -1" in capsys.readouterr().err
    # nothing to say when the clips are as the training data were
    state["data"] = {"synthetic": False, "feature_version": state["data"]["feature_version"],
                     "clip_seconds": {"fan": [0.25, 1.0]}}
    from asdlib.features.logmel import FEATURE_VERSION

    state["data"]["feature_version"] = FEATURE_VERSION
    save_checkpoint(synth_ckpt, {k: v for k, v in state.items() if k != "version"})
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err


def test_score_command_bad_inputs(tiny_checkpoint, tmp_path, capsys):
    ckpt, _ = tiny_checkpoint
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["score", "--model", str(ckpt), "--device", "cpu", "--out", str(tmp_path / "o")]
    assert main(base + ["--input", str(empty), "--type", "fan", "--id", "00"]) == 2
    assert f"no .wav files in {empty}" in capsys.readouterr().err
    assert main(base + ["--input", str(empty), "--type", "pump", "--id", "00"]) == 2
    assert "has no class pump/00" in capsys.readouterr().err
    assert main(["score", "--model", str(tmp_path / "nope.pt"), "--input", str(empty), "--type", "fan", "--id", "00"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    with pytest.raises(AsdlibError, match="does not exist"):
        collect_wavs([str(tmp_path / "missing.wav")])
    with pytest.raises(CacheError, match="not for 'knn'"):
        load_thresholds(ckpt, "knn")
    from asdlib.classify.threshold import load_fitted_scorer

    with pytest.raises(CacheError, match="no stored fit of the 'knn' scorer"):
        load_fitted_scorer(ckpt, "knn")


def test_score_command_checks_its_arguments(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """--batch-size of at least 1; --id 2 read as 02, an unknown ID refused with the valid ones; each clip scored
    once; a named non-WAV file refused; existing CSVs replaced only with --overwrite; a NaN score names its clip."""
    import asdlib.classify.threshold as threshold

    ckpt, _ = tiny_checkpoint
    clips = tmp_path / "clips"
    clips.mkdir()
    a, b = clips / "normal_id_02_00000000.wav", clips / "normal_id_02_00000001.wav"
    write_tone(a, 2000.0, seed=1)
    write_tone(b, 2000.0, seed=2)
    out = tmp_path / "out"
    base = ["score", "--model", str(ckpt), "--type", "fan", "--device", "cpu", "--out", str(out), "--no-progress"]
    for bad in ("0", "-3", "two"):
        with pytest.raises(SystemExit) as e:
            main(base + ["--id", "02", "--input", str(clips), "--batch-size", bad])
        assert e.value.code == 2 and "--batch-size" in capsys.readouterr().err
    assert main(base + ["--id", "7", "--input", str(clips)]) == 2
    assert "fan's IDs in it, which are 00, 02" in capsys.readouterr().err
    # --id 2 is ID 02; the folder and one of its files named again: two clips, scored once each
    assert main(base + ["--id", "2", "--input", str(clips), str(a), str(clips / "." / a.name)]) == 0
    assert "2 clips scored" in capsys.readouterr().out
    scores = pd.read_csv(out / "anomaly_score_fan_id_02.csv", header=None, names=["file", "score"])
    assert list(scores["file"]) == [a.name, b.name]
    # the CSVs are there now: replaced only when asked, and left as they were otherwise
    before = (out / "anomaly_score_fan_id_02.csv").read_bytes()
    assert main(base + ["--id", "02", "--input", str(a)]) == 2
    err = capsys.readouterr().err
    assert "anomaly_score_fan_id_02.csv" in err and "--overwrite" in err
    assert (out / "anomaly_score_fan_id_02.csv").read_bytes() == before
    assert main(base + ["--id", "02", "--input", str(a), "--overwrite"]) == 0
    assert len(pd.read_csv(out / "anomaly_score_fan_id_02.csv", header=None)) == 1
    # a file that is not a WAV, named explicitly
    notes = clips / "notes.txt"
    notes.write_text("not audio")
    assert main(base + ["--id", "02", "--input", str(notes), "--overwrite"]) == 2
    assert f"input {notes} is not a .wav file" in capsys.readouterr().err
    # a NaN score: an error naming the clip, nothing written
    real = threshold.load_fitted_scorer

    class NaNFirst:
        def __init__(self, scorer):
            self.scorer = scorer

        def score(self, *args):
            s = np.asarray(self.scorer.score(*args), dtype=float).copy()
            s[0] = np.nan
            return s

    monkeypatch.setattr(threshold, "load_fitted_scorer", lambda *a, **k: NaNFirst(real(*a, **k)))
    nan_out = tmp_path / "nan_out"
    assert main(base[:-3] + ["--out", str(nan_out), "--no-progress", "--id", "02", "--input", str(clips)]) == 2
    err = capsys.readouterr().err
    assert f"1 of 2 clips got a NaN or infinite score: {a}" in err and str(b) not in err
    assert not (nan_out / "anomaly_score_fan_id_02.csv").exists()


@pytest.mark.slow
def test_train_then_score_on_synthetic_data(tmp_path, capsys):
    """The whole chain on a small synthetic valve dataset: `asdlib train`, then `asdlib score`.

    Settings chosen to learn the 7 IDs within CPU seconds (2-s clips, 20 per ID, softmax,
    no mixup); the study's ArcFace + mixup need more data and epochs than a test can spend.
    """
    from asdlib.data.synth import SynthProfile, generate_dataset

    profile = SynthProfile("tiny", clip_seconds=2.0, n_train=20, n_test_normal=10, n_test_anomaly=10)
    root = generate_dataset(tmp_path / "data", profile, seed=0, machine_types=["valve"], progress=False)
    run = tmp_path / "run"
    rc = main(["train", "--root", str(root), "--out", str(run), "--cache-dir", str(tmp_path / "cache"),
               "--width", "0.125", "--depths", "1,1,1,1", "--embedding-dim", "32", "--batch-size", "16",
               "--loss-kind", "softmax", "--mixup-alpha", "0", "--epochs", "6", "--schedule-max-lr", "3e-3", "--eval-every", "2",
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    h = pd.read_csv(run / "history.csv")
    assert len(h) == 6 and h["dev_auc"].notna().sum() == 3
    assert (run / "best_val_loss.thresholds.json").is_file()
    files = sorted((root / "dev_data" / "valve" / "test").glob("*_id_00_*.wav"))
    rc = main(["score", "--model", str(run / "best_val_loss.pt"), "--input", *map(str, files), "--type", "valve",
               "--id", "00", "--out", str(tmp_path / "scores"), "--device", "cpu", "--no-progress"])
    assert rc == 0
    assert "trained on SYNTHETIC data" in capsys.readouterr().err  # recorded in the checkpoint by `asdlib train`
    s = pd.read_csv(tmp_path / "scores" / "anomaly_score_valve_id_00.csv", header=None, names=["file", "score"])
    assert len(s) == 20
    auc = roc_auc_score(s["file"].str.startswith("anomaly").astype(int), s["score"])
    with capsys.disabled():
        print(f"\nsynthetic valve: id_00 AUC {auc:.3f} (best_val_loss.pt); dev mean AUC by epoch "
              f"{h['dev_auc'].dropna().round(3).tolist()}")
    assert h["dev_auc"].max() > 0.65  # chance is 0.5; 4 dev IDs x 20 clips


def test_calibrate_run_calibrates_one_epochs_weights_once(tmp_path, monkeypatch):
    """best_val_loss and last hold the same epoch here (one epoch): one calibration, the same thresholds
    and the same stored scorer fit for both, as calibrating each would give."""
    from asdlib.classify import threshold
    from asdlib.classify.checkpoint import load_checkpoint
    from asdlib.classify.threshold import calibrate_run, load_fitted_scorer, scorer_fit_path, thresholds_path

    files = [f for k, mid in enumerate(THREE_IDS) for f in _tone_clips(tmp_path / "train", mid, 12, 100 * (k + 1))]
    ids = [f.name.split("_")[2] for f in files]
    x = wav_features(files, FC.to_dict())
    y = np.array([list(THREE_IDS).index(i) for i in ids])
    res = fit(x, y, TrainConfig.from_dict(TINY | {"epochs": 1, "val_fraction": 0.25}, strict=True), tmp_path / "run",
              class_names=[("fan", m) for m in THREE_IDS], feature_config=FC.to_dict(), progress=False)
    best = res.best["val_loss"].path
    assert res.best["val_loss"].epoch == 1 and best != res.last_path
    calls = []
    real = threshold.calibrate
    monkeypatch.setattr(threshold, "calibrate", lambda ckpt, *a, **k: calls.append(ckpt) or real(ckpt, *a, **k))
    meta = pd.DataFrame({"machine_type": "fan", "machine_id": ids})
    out = calibrate_run(res, x, meta, scorer="knn")
    assert len(calls) == 1 and set(out) == {"best_val_loss", "last"}
    for ckpt in (best, res.last_path):
        assert thresholds_path(ckpt).is_file() and scorer_fit_path(ckpt, "knn").is_file()
        load_fitted_scorer(ckpt, "knn")  # the copied fit passes its checksum
    assert out["best_val_loss"]["checkpoint"] != out["last"]["checkpoint"]
    val = load_checkpoint(res.last_path)["val_index"].numpy()
    fit_rows = np.setdiff1d(np.arange(len(ids)), val)
    fresh = real(best, x[val], meta.iloc[val], scorer="knn", fit_features=x[fit_rows], fit_meta=meta.iloc[fit_rows],
                 write=False)
    for ckpt in (best, res.last_path):
        assert load_thresholds(ckpt, "knn") == {k: v["threshold"] for k, v in fresh["thresholds"].items()}
