"""``asdlib score --model A --model B ...``: fusion statistics fitted on held-out clips, new clips fused on that scale."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asdlib.classify.config import TrainConfig
from asdlib.classify.inference import Classifier, embed
from asdlib.classify.scorers import make_scorer
from asdlib.classify.train import fit
from asdlib.cli.main import main
from asdlib.cli.score import wav_features
from asdlib.features.logmel import FeatureConfig
from asdlib.recon import ReconConfig, WaveNetConfig, fit_autoencoder, fit_wavenet, score_autoencoder, score_wavenet
from asdlib.report.fusion import Standardiser, standardiser_path

SR = 16_000
FC = FeatureConfig(n_fft=256, win_length=256, hop_length=128, n_mels=16, duration_s=0.25)
TINY = {"model": "iresnet50", "width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 32, "batch_size": 8,
        "schedule.max_lr": 3e-3, "schedule.T_up": 1, "schedule.T_0": 2, "schedule.T_mult": 1, "device": "cpu",
        "amp": False, "epochs": 2, "val_fraction": 0.0}
FREQ = {"00": 500.0, "02": 2000.0}


def _clips(folder, mid: str, n: int, seed0: int, noise: float = 0.1) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.25 * SR)) / SR
    files = []
    for k in range(n):
        rng = np.random.default_rng(seed0 + k)
        files.append(folder / f"normal_id_{mid}_{seed0 + k:08d}.wav")
        sf.write(files[-1], (0.3 * np.sin(2 * np.pi * FREQ[mid] * t) + noise * rng.normal(size=t.size)).astype(np.float32), SR)
    return files


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """A classifier of fan/00 vs fan/02, an autoencoder and a WaveNet of fan, each a checkpoint file."""
    root = tmp_path_factory.mktemp("fusion")
    train = _clips(root / "train", "00", 10, 0) + _clips(root / "train", "02", 10, 100)
    x = wav_features(train, FC.to_dict())
    y = np.array([0] * 10 + [1] * 10)
    res = fit(x, y, TrainConfig.from_dict(TINY, strict=True), root / "clf", class_names=[("fan", "00"), ("fan", "02")],
              feature_config=FC.to_dict(), progress=False)
    rows = np.arange(len(x))
    fit_autoencoder(x, rows, ReconConfig(epochs=1, batch_size=64, device="cpu", val_fraction=0.0),
                    out_path=root / "ae.pt", progress=False)
    fit_wavenet(x, rows, ReconConfig.wavenet_defaults(epochs=1, device="cpu", val_fraction=0.0),
                WaveNetConfig(n_mels=16, residual_channels=8, skip_channels=8, dilations=(1, 2)), out_path=root / "wavenet.pt", progress=False)
    return root, [res.last_path, str(root / "ae.pt"), str(root / "wavenet.pt")]


def _raw(models, files) -> list[np.ndarray]:
    """Each model's own score of ``files`` (fan/00), computed with the library directly."""
    from asdlib.recon import load_recon_model

    x = wav_features(files, FC.to_dict())
    clf = Classifier.load(models[0])
    out = embed(clf, x)
    rows = np.arange(len(x))
    return [make_scorer("neglogp").score(out.emb, out.logits, np.zeros(len(x), int)),
            score_autoencoder(load_recon_model(models[1])[0], x, rows, device="cpu"),
            score_wavenet(load_recon_model(models[2])[0], x, rows, device="cpu")]


def test_score_fuses_new_clips_on_the_scale_stored_from_held_out_clips(three_models, tmp_path, capsys):
    root, models = three_models
    held = _clips(tmp_path / "held", "00", 5, 500)
    new = _clips(tmp_path / "new", "00", 3, 900) + _clips(tmp_path / "new", "00", 3, 950, noise=0.5)
    common = ["--type", "fan", "--id", "00", "--scorer", "neglogp", "--device", "cpu", "--no-progress"]
    model_args = [a for m in models for a in ("--model", m)]
    assert main(["score", *model_args, "--input", str(tmp_path / "held"), "--fit-fusion", *common]) == 0
    # the statistics beside each checkpoint are those of the held-out clips' log scores
    for m, score, s in zip(models, ("neglogp", "mse", "mse"), _raw(models, held)):
        st = json.loads(standardiser_path(m, score).read_text())
        assert st["transform"] == "zlog" and st["stats"]["fan/00"]["n"] == 5
        assert st["stats"]["fan/00"]["mean"] == pytest.approx(np.log(s).mean(), rel=1e-5)
        assert st["stats"]["fan/00"]["sd"] == pytest.approx(np.log(s).std(ddof=1), rel=1e-4)
        assert st["info"]["feature_config"]["n_mels"] == 16  # recon checkpoints: the classifier's settings
    out = tmp_path / "out"
    assert main(["score", *model_args, "--input", str(tmp_path / "new"), "--out", str(out), *common]) == 0
    fused = pd.read_csv(out / "anomaly_score_fan_id_00.csv", header=None, names=["file", "score"])
    assert [f for f in fused["file"]] == [f.name for f in new] and not (out / "decision_result_fan_id_00.csv").exists()
    stored = [Standardiser.load(standardiser_path(m, s)) for m, s in zip(models, ("neglogp", "mse", "mse"))]
    expect = np.max([st(s, "fan", "00") for st, s in zip(stored, _raw(models, new))], axis=0)  # the default: max
    assert np.allclose(fused["score"], expect, rtol=1e-5, atol=1e-6)
    # the stored scale: a clip's fused score does not depend on which other new clips are scored with it
    one = tmp_path / "one"
    assert main(["score", *model_args, "--input", str(new[4]), "--out", str(one), *common]) == 0
    alone = pd.read_csv(one / "anomaly_score_fan_id_00.csv", header=None)[1].iloc[0]
    assert alone == pytest.approx(fused["score"].iloc[4], rel=1e-5, abs=1e-6)
    assert main(["score", *model_args, "--input", str(tmp_path / "new"), "--out", str(tmp_path / "mn"),
                 "--fusion", "mean", *common]) == 0
    mn = pd.read_csv(tmp_path / "mn" / "anomaly_score_fan_id_00.csv", header=None)[1].to_numpy()
    assert np.allclose(mn, np.mean([st(s, "fan", "00") for st, s in zip(stored, _raw(models, new))], axis=0),
                       rtol=1e-5, atol=1e-6)
    assert np.all(mn <= fused["score"].to_numpy() + 1e-9) and not np.allclose(mn, fused["score"])


def test_score_fusion_names_missing_statistics(three_models, tmp_path, capsys):
    root, models = three_models
    _clips(tmp_path / "new", "02", 2, 700)
    code = main(["score", "--model", models[0], "--model", models[1], "--input", str(tmp_path / "new"),
                 "--type", "fan", "--id", "02", "--scorer", "softmax", "--device", "cpu", "--no-progress"])
    assert code != 0
    err = capsys.readouterr().err
    assert "fusion statistics" in err and "softmax.fusion.json" in err
