"""The trainer: learning, outputs, exact resume, non-finite stop, transfer learning, checkpoints."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.classify.checkpoint import load_checkpoint, load_model
from asdlib.classify.config import TrainConfig
from asdlib.classify.evaluate import EvalSet
from asdlib.classify.inference import window_starts
from asdlib.classify.train import fit
from asdlib.classify.transfer import finetune_classifier
from asdlib.core.errors import AsdlibError, CacheError, ConfigError

C, N_PER, M, T = 3, 16, 16, 24


def tones(n_per: int, seed: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like clips (N, M, T): class c has a steady 'tone' in mel bin 2 + 4c (+ shift)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), n_per)
    x = 0.5 * rng.normal(size=(len(y), M, T)).astype(np.float32)
    x[np.arange(len(y)), 2 + 4 * y + shift] += 3.0
    return x, y


def tiny_cfg(**kw) -> TrainConfig:
    base = {"model": "iresnet50", "width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 32, "batch_size": 16,
            "epochs": 4, "schedule.max_lr": 3e-3, "schedule.T_up": 1, "schedule.T_0": 4, "schedule.T_mult": 1,
            "eval_every": 2, "device": "cpu", "amp": False}
    return TrainConfig.from_dict({**base, **kw}, strict=True)


def dev_set() -> EvalSet:
    """Normal clips and 'anomalies' whose tone sits one bin off (per class, as DCASE IDs)."""
    xn, yn = tones(8, seed=11)
    xa, ya = tones(8, seed=12, shift=1)
    meta = pd.DataFrame({"dataset": "dev", "machine_type": "toy", "machine_id": [f"{c:02d}" for c in np.r_[yn, ya]],
                         "label": np.r_[np.zeros(len(yn)), np.ones(len(ya))].astype(int), "class": np.r_[yn, ya]})
    return EvalSet(np.concatenate([xn, xa]), meta)


def state_of(path) -> dict:
    return load_checkpoint(path)["model"]


def test_fit_learns_and_writes_history_best_and_summary(tmp_path):
    x, y = tones(N_PER, seed=0)
    res = fit(x, y, tiny_cfg(epochs=4), tmp_path, eval_sets={"dev": dev_set()}, progress=False)
    h = pd.read_csv(tmp_path / "history.csv")
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert {"lr", "train_loss", "val_loss", "dev_auc", "dev_pauc", "time_s"} <= set(h.columns)
    assert h["val_loss"].iloc[-1] < h["val_loss"].iloc[0]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["dev_auc"].notna().sum() == 2  # epochs 2 and 4
    for crit in ("dev_auc_pauc", "val_loss"):
        assert (tmp_path / f"best_{crit}.pt").is_file()
        b = res.best[crit]
        assert load_checkpoint(b.path)["epoch"] == b.epoch
    assert res.best["val_loss"].value == pytest.approx(h["val_loss"].min())
    assert (tmp_path / "summary.json").is_file() and res.epochs_run == 4


class Interrupt(Exception):
    pass


def test_resume_after_interruption_is_bit_identical(tmp_path):
    x, y = tones(N_PER, seed=1)
    cfg = tiny_cfg(epochs=4, crop_frames=16, dropout=0.3)  # exercises crop, mixup and dropout RNGs
    fit(x, y, cfg, tmp_path / "a", progress=False)

    def stop_after_2(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(x, y, cfg, tmp_path / "b", progress=False, callback=stop_after_2)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    res = fit(x, y, cfg, tmp_path / "b", progress=False)
    a, b = state_of(tmp_path / "a" / "last.pt"), state_of(tmp_path / "b" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert list(res.history["epoch"]) == [1, 2, 3, 4]
    ha = pd.read_csv(tmp_path / "a" / "history.csv")
    assert np.array_equal(ha["train_loss"].to_numpy(), res.history["train_loss"].to_numpy())


def test_resume_refuses_other_settings(tmp_path):
    x, y = tones(8, seed=2)
    fit(x, y, tiny_cfg(epochs=1), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="max_lr"):
        fit(x, y, tiny_cfg(**{"epochs": 2, "schedule.max_lr": 1e-2}), tmp_path, progress=False)


def test_loop_generator_is_on_the_host_and_a_foreign_state_is_a_clear_error(tmp_path):
    """The shuffle/crop generator lives on the host whatever the device (the same draws on every rank and
    machine); a checkpoint whose saved generator state came from another placement (a CUDA generator's
    16 bytes, as older asdlib wrote beside GPU-resident features) is refused naming the file, not a raw
    RuntimeError from Generator.set_state."""
    from asdlib.classify.checkpoint import save_checkpoint
    from asdlib.classify.train import start_run

    x, y = tones(8, seed=2)
    cfg = tiny_cfg(epochs=1, crop_frames=16)
    run = start_run(x, y, cfg, tmp_path / "probe")
    assert all(g.device.type == "cpu" for g in run.gens.values())
    fit(x, y, cfg, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "last.pt"
    state = load_checkpoint(last)
    state["rng"]["generators"]["loop"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) generator's state
    save_checkpoint(last, {k: v for k, v in state.items() if k != "version"})
    with pytest.raises(CacheError, match=r"last\.pt: the saved state of the 'loop' generator \(16 bytes\)"):
        fit(x, y, tiny_cfg(epochs=2, crop_frames=16), tmp_path / "run", progress=False)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    x, y = tones(N_PER, seed=3)
    digest = {}

    def poison_after_2(epoch, row):
        if epoch == 2:
            digest["last"] = hashlib.sha256((tmp_path / "last.pt").read_bytes()).hexdigest()
            x[:] = np.nan  # fit() reads this very array: epoch 3 sees NaN inputs

    with pytest.raises(AsdlibError, match="non-finite training loss at epoch 3, step 1"):
        fit(x, y, tiny_cfg(epochs=4), tmp_path, progress=False, callback=poison_after_2)
    assert hashlib.sha256((tmp_path / "last.pt").read_bytes()).hexdigest() == digest["last"]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("init", ["reset", "rows"])
def test_finetune_changes_only_the_classifier(tmp_path, init):
    x, y = tones(N_PER, seed=4)
    names = [("toy", f"{c:02d}") for c in range(C)]
    res = fit(x, y, tiny_cfg(epochs=2), tmp_path / "int", class_names=names, progress=False)
    before = state_of(res.last_path)
    keep = y > 0  # fine-tune on two of the three IDs, as one machine type of the integrated model
    ft = finetune_classifier(res.last_path, x[keep], y[keep] - 1, names[1:], tmp_path / "ft",
                             cfg_overrides={"epochs": 2}, init=init, progress=False)
    after = state_of(ft.last_path)
    cls_keys = {k for k in after if k.startswith("classifier.")}
    assert cls_keys and set(after) - cls_keys == set(before) - cls_keys
    for k in set(after) - cls_keys:  # backbone weights and batch-norm statistics untouched
        assert torch.equal(before[k], after[k]), k
    w = next(k for k in cls_keys if after[k].ndim == 2)
    assert after[w].shape[0] == 2
    if init == "rows":  # started from the integrated rows 1 and 2, then moved
        assert not torch.equal(after[w], before[w][1:])
    model, cfg, meta = load_model(ft.last_path)
    assert meta["class_names"] == ["toy/01", "toy/02"] and cfg.epochs == 2
    assert model(torch.as_tensor(x[:4]).unsqueeze(1)).shape == (4, 2)


def test_load_model_roundtrip_and_bad_checkpoints(tmp_path):
    x, y = tones(8, seed=5)
    res = fit(x, y, tiny_cfg(epochs=1, val_fraction=0.0), tmp_path, progress=False)
    assert res.best == {}  # no criterion can be computed without val clips or eval sets
    model, cfg, meta = load_model(res.last_path)
    assert not model.training and cfg.width == 0.0625 and meta["epoch"] == 1
    with pytest.raises(CacheError, match="not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError, match="bad.pt"):
        load_checkpoint(bad)


def test_window_starts_cover_the_clip():
    assert window_starts(24, None) == [0] and window_starts(24, 24) == [0]
    s = window_starts(30, 16)
    assert s[0] == 0 and s[-1] == 14 and all(b - a <= 8 for a, b in zip(s, s[1:]))


def test_extract_averages_sliding_windows():
    from asdlib.classify.config import build_model
    from asdlib.classify.inference import extract, model_outputs

    torch.manual_seed(0)
    model = build_model(tiny_cfg(), C).eval()
    x, _ = tones(2, seed=6)  # (6, 16, 24)
    logits, emb = extract(model, x, batch_size=4, crop_frames=16)  # windows start at 0 and 8
    assert logits.shape == (6, C) and emb.shape == (6, 32)
    with torch.no_grad():
        parts = [model_outputs(model, torch.as_tensor(x[:, :, s : s + 16]).unsqueeze(1)) for s in (0, 8)]
    np.testing.assert_allclose(logits, ((parts[0][0] + parts[1][0]) / 2).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(emb, ((parts[0][1] + parts[1][1]) / 2).numpy(), rtol=1e-5, atol=1e-5)
    full_logits, _ = extract(model, x, batch_size=4)  # whole clips: one pass equals forward()
    with torch.no_grad():
        np.testing.assert_allclose(full_logits, model(torch.as_tensor(x).unsqueeze(1)).numpy(), rtol=1e-5, atol=1e-5)


def test_transfer_holds_out_the_integrated_runs_held_out_clips(tmp_path):
    """E5 fine-tunes on one type's clips: its held-out clips must be the integrated run's held-out clips of that
    type (the others trained the backbone), and its checkpoints get decision thresholds."""
    import dataclasses

    from asdlib.classify.threshold import load_thresholds
    from asdlib.data.index import index_dataset
    from asdlib.data.synth import SynthProfile, generate_dataset
    from asdlib.features.cache import build_feature_cache
    from asdlib.features.logmel import FeatureConfig
    from asdlib.study import experiments
    from asdlib.study.context import Study
    from asdlib.study.profiles import PROFILES

    root = generate_dataset(tmp_path / "data", SynthProfile("t", clip_seconds=0.25, n_train=6, n_test_normal=1,
                                                            n_test_anomaly=1), machine_types=["fan", "valve"],
                            progress=False)
    ci = PROFILES["ci"]
    profile = dataclasses.replace(ci, classifier=ci.classifier | {"epochs": 2, "val_fraction": 0.5})
    study = Study(data_root=root, synthetic=True, profile=profile, device="cpu", seed=0,
                  results_dir=tmp_path / "res", work_dir=tmp_path / "work", progress=False)
    study.__dict__["features"] = build_feature_cache(index_dataset(root), FeatureConfig(duration_s=0.25),
                                                     cache_dir=tmp_path / "c", device="cpu", progress=False)
    index = study.features.index
    integrated = experiments.train_classifier(study, "integrated", overrides={})
    parent_rows = experiments.rows(index, ("fan", "valve"), "train")
    held = set(parent_rows[load_checkpoint(integrated.last_path)["val_index"].numpy()])
    runs = {t: experiments.transfer_classifier(study, integrated.best["val_loss"].path, t) for t in ("valve", "fan")}
    for machine_type, r in runs.items():
        tr = experiments.rows(index, [machine_type], "train")
        own_val = set(tr[load_checkpoint(r.last_path)["val_index"].numpy()])
        assert own_val == {row for row in held if row in set(tr)} and len(own_val) == 7 * 3, machine_type
    for machine_type, r in runs.items():
        for ckpt in [r.last_path] + [b.path for b in r.best.values()]:  # calibrated, as E1/E2 checkpoints are
            assert set(load_thresholds(ckpt)) == {f"{machine_type}/{i}" for i in
                                                  ("00", "01", "02", "03", "04", "05", "06")}


def test_transfer_fine_tunes_one_epochs_weights_once():
    """E5 fine-tunes the checkpoint of each selection rule; where two rules chose the same epoch, the
    first rule's checkpoint serves both (identical weights), otherwise each rule's own."""
    from types import SimpleNamespace as NS

    from asdlib.study.experiments import SELECTIONS, transfer_source

    first, second = SELECTIONS
    same = NS(best={first: NS(epoch=6, path="a.pt"), second: NS(epoch=6, path="b.pt")})
    assert transfer_source(same, first) == transfer_source(same, second) == "a.pt"
    other = NS(best={first: NS(epoch=4, path="a.pt"), second: NS(epoch=6, path="b.pt")})
    assert (transfer_source(other, first), transfer_source(other, second)) == ("a.pt", "b.pt")
    only = NS(best={second: NS(epoch=6, path="b.pt")})
    assert transfer_source(only, second) == "b.pt"
