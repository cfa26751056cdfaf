"""The improved recipe's settings: class-balanced sampling, per-mel input standardisation, one-cycle schedule.

Each is a :class:`TrainConfig` setting whose default is the study's behaviour; these tests check
what each does, that checkpoints carry it (a saved model scores clips as the training run
did), and that a resumed run stays bit-identical with all of them on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.classify.checkpoint import load_checkpoint, load_model, save_checkpoint
from asdlib.classify.config import TrainConfig, build_model
from asdlib.classify.inference import Classifier, embed, extract
from asdlib.classify.schedule import ScheduleConfig, WarmupCosineRestarts, for_run, lr_at
from asdlib.classify.train import balanced_epoch_indices, fit, per_mel_stats, split_validation
from asdlib.core.errors import CacheError, ConfigError
from asdlib.models.heads import InputNorm

M, T = 16, 24


def unbalanced(counts=(24, 6, 4), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like clips (N, M, T) in dB: class c has a tone in bin 2 + 4c; the mel bins have very
    different levels (as real log-mels: loud low bins, quiet high ones)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    x = rng.normal(size=(len(y), M, T)).astype(np.float32)
    x[np.arange(len(y)), 2 + 4 * y] += 3.0
    x = x * np.linspace(8, 1, M, dtype=np.float32)[:, None] + np.linspace(-10, -80, M, dtype=np.float32)[:, None]
    return x, y


def cfg_of(**kw) -> TrainConfig:
    base = {"model": "iresnet50", "width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 32, "batch_size": 8,
            "epochs": 4, "schedule.max_lr": 3e-3, "schedule.T_up": 1, "schedule.T_0": 4, "schedule.T_mult": 1,
            "device": "cpu", "amp": False}
    return TrainConfig.from_dict({**base, **kw}, strict=True)


RECIPE = {"sampling": "balanced", "input_norm": "per_mel", "schedule.cycle": "one", "crop_frames": 16,
          "loss.margin": 0.5, "dropout": 0.3}


# ---------------------------------------------------------------- settings and defaults

def test_defaults_are_the_studys_and_bad_values_are_named():
    cfg = TrainConfig()
    assert (cfg.sampling, cfg.input_norm, cfg.schedule.cycle) == ("shuffle", "global", "restarts")
    for key, bad in (("sampling", "weighted"), ("input_norm", "per_clip"), ("schedule.cycle", "two")):
        with pytest.raises(ConfigError, match=key.split(".")[-1]):
            TrainConfig().replace({key: bad})


# ---------------------------------------------------------------- balanced sampling

def test_balanced_draws_ids_uniformly_and_deterministically():
    labels = np.repeat([0, 1, 2, 3], [210, 27, 21, 21])  # the ToyCar developers' half
    draw = balanced_epoch_indices(labels, 40000, torch.Generator().manual_seed(3))
    freq = np.bincount(labels[draw.numpy()], minlength=4) / len(draw)
    assert np.allclose(freq, 0.25, atol=0.01), freq
    clips = np.bincount(draw.numpy(), minlength=len(labels))  # uniform within an ID too
    assert clips[labels == 3].min() > 0 and clips[labels == 0].mean() == pytest.approx(10000 / 210, rel=0.1)
    again = balanced_epoch_indices(labels, 40000, torch.Generator().manual_seed(3))
    other = balanced_epoch_indices(labels, 40000, torch.Generator().manual_seed(4))
    assert torch.equal(draw, again) and not torch.equal(draw, other)


def test_balanced_fit_draws_ids_uniformly(tmp_path, monkeypatch):
    """Through fit: the batches of a balanced run hold each ID about equally often; a shuffled one in
    proportion to its clips."""
    import asdlib.classify.train as train_mod

    x, y = unbalanced((40, 4, 4))
    seen: dict[str, list] = {"shuffle": [], "balanced": []}
    original = train_mod.make_batch

    for sampling in seen:
        def spy(x_all, y_all, idx, *a, _s=sampling, **k):
            seen[_s].append(y_all[idx].numpy().copy())
            return original(x_all, y_all, idx, *a, **k)

        monkeypatch.setattr(train_mod, "make_batch", spy)
        fit(x, y, cfg_of(epochs=8, sampling=sampling, val_fraction=0.0), tmp_path / sampling, progress=False)
    bal = np.bincount(np.concatenate(seen["balanced"]), minlength=3) / np.concatenate(seen["balanced"]).size
    shu = np.bincount(np.concatenate(seen["shuffle"]), minlength=3) / np.concatenate(seen["shuffle"]).size
    assert len(seen["balanced"]) == len(seen["shuffle"]) == 8 * (48 // 8)  # same steps per epoch
    assert np.allclose(bal, 1 / 3, atol=0.08), bal
    assert shu[0] > 0.75  # the big ID dominates a shuffled epoch


# ---------------------------------------------------------------- per-mel standardisation

def test_per_mel_stats_match_numpy_over_the_rows_given():
    x, _ = unbalanced()
    rows = np.array([0, 3, 7, 30])
    mean, std = per_mel_stats(x, rows, chunk=3)
    sub = x[rows].astype(np.float64)
    assert np.allclose(mean.numpy(), sub.mean((0, 2)), atol=1e-4)
    assert np.allclose(std.numpy(), sub.std((0, 2)), rtol=1e-5)
    m_all, _ = per_mel_stats(torch.from_numpy(x))
    assert np.allclose(m_all.numpy(), x.astype(np.float64).mean((0, 2)), atol=1e-4)


def test_input_norm_without_statistics_is_unchanged_and_loads_them_from_a_state_dict():
    a, b = InputNorm(), InputNorm()
    assert not any("mel" in k for k in b.state_dict())  # models without them save what they always did
    a.set_mel_stats(np.full(M, -40.0), np.full(M, 5.0))
    assert {"mel_mean", "mel_std"} <= set(a.state_dict())
    b.load_state_dict(a.state_dict())  # the buffers come with the state dict
    assert b.per_mel and torch.equal(b.mel_mean, a.mel_mean)
    x = torch.randn(2, 1, M, T) * 5 - 40
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    with pytest.raises(ConfigError, match="mel bins"):
        a(torch.randn(2, 1, M + 1, T))
    with pytest.raises(ConfigError, match="std > 0"):
        InputNorm().set_mel_stats(np.zeros(M), np.zeros(M))


def test_per_mel_statistics_come_from_the_training_clips_and_checkpoints_restore_them(tmp_path):
    x, y = unbalanced()
    cfg = cfg_of(epochs=2, input_norm="per_mel", val_fraction=0.25, crop_frames=16)
    res = fit(x, y, cfg, tmp_path, progress=False)
    state = load_checkpoint(res.last_path)
    train_idx, val_idx = split_validation(y, 0.25, cfg.seed)
    assert len(val_idx) and np.array_equal(state["val_index"].numpy(), val_idx)
    mean, std = per_mel_stats(x, train_idx)  # the clips trained on: not the held-out ones
    assert torch.equal(state["model"]["input_norm.mel_mean"], mean)
    assert torch.equal(state["model"]["input_norm.mel_std"], std)
    assert not torch.allclose(per_mel_stats(x)[0], mean)  # (the held-out clips would change them)

    # a checkpoint loaded and run gives the outputs of the model it saved...
    clf = Classifier.load(res.last_path)
    test_x, _ = unbalanced((3, 3, 3), seed=9)
    out = embed(clf, test_x)
    again = embed(Classifier.load(res.last_path), test_x)
    assert np.array_equal(out.logits, again.logits) and np.array_equal(out.emb, again.emb)
    # ...which are those of the same weights fed the explicitly standardised clips (one transform, in the model)
    plain = build_model(cfg.replace(input_norm="global"), 3)
    plain.load_state_dict({k: v for k, v in state["model"].items() if "mel_" not in k})
    standardised = (test_x - mean.numpy()[:, None]) / std.numpy()[:, None]
    logits, emb = extract(plain, standardised, batch_size=cfg.batch_size, crop_frames=cfg.crop_frames)
    assert np.allclose(logits, out.logits, atol=1e-4) and np.allclose(emb, out.emb, atol=1e-4)
    # and a damaged checkpoint (statistics missing) is refused by name
    del state["model"]["input_norm.mel_mean"], state["model"]["input_norm.mel_std"]
    save_checkpoint(tmp_path / "no_stats.pt", state)
    with pytest.raises(CacheError, match="per-mel"):
        load_model(tmp_path / "no_stats.pt")


def test_per_mel_model_is_invariant_to_a_per_bin_offset(tmp_path):
    """Training and scoring see the same transform: shifting mel bin m of every clip by b_m (train and
    test alike) leaves a per-mel model's scores as they were, up to float rounding amplified by
    training (the global input norm, for contrast, sees a different input)."""
    x, y = unbalanced()
    shift = np.linspace(0, 30, M, dtype=np.float32)[:, None]
    test_x, _ = unbalanced((2, 2, 2), seed=5)
    diff = {}
    for norm in ("per_mel", "global"):
        cfg = cfg_of(epochs=2, input_norm=norm, val_fraction=0.0, mixup_alpha=0.0)
        a = fit(x, y, cfg, tmp_path / norm / "a", progress=False)
        b = fit(x + shift, y, cfg, tmp_path / norm / "b", progress=False)
        la = embed(Classifier.load(a.last_path), test_x).logits
        lb = embed(Classifier.load(b.last_path), test_x + shift).logits
        diff[norm] = np.abs(la - lb).max()
    assert diff["per_mel"] < 0.1 * diff["global"], diff


# ---------------------------------------------------------------- one-cycle schedule

def test_one_cycle_schedule_spans_the_run():
    one = ScheduleConfig(max_lr=1e-3, T_up=6, cycle="one")
    run = for_run(one, 120)
    assert (run.T_0, run.T_mult, run.cycle) == (120, 1, "restarts")
    assert lr_at(6, run) == pytest.approx(1e-3) and lr_at(3, run) == pytest.approx(5e-4)
    assert lr_at(63, run) == pytest.approx(5e-4) and lr_at(120 - 1e-6, run) < 1e-12
    assert for_run(ScheduleConfig(), 120) == ScheduleConfig()  # restarts: unchanged
    with pytest.raises(ConfigError, match="for_run"):
        lr_at(3, one)
    with pytest.raises(ConfigError, match="T_up"):
        for_run(one, 6)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineRestarts(opt, one, steps_per_epoch=4, epochs=120)
    assert sched.cfg == run


def test_one_cycle_run_ends_at_zero_and_refuses_a_longer_resume(tmp_path):
    x, y = unbalanced()
    cfg = cfg_of(epochs=3, **{"schedule.cycle": "one", "schedule.T_0": 1})  # T_0 is ignored
    res = fit(x, y, cfg, tmp_path, progress=False)
    lrs = res.history["lr"].to_numpy()
    assert lrs[0] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="epochs"):
        fit(x, y, cfg.replace(epochs=4), tmp_path, progress=False)


# ---------------------------------------------------------------- resume with everything on

class Interrupt(Exception):
    pass


def test_resume_is_bit_identical_with_the_recipe_settings_on(tmp_path):
    x, y = unbalanced()
    cfg = cfg_of(epochs=4, val_fraction=0.2, **RECIPE)
    fit(x, y, cfg, tmp_path / "a", progress=False)

    def stop_after_2(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(x, y, cfg, tmp_path / "b", progress=False, callback=stop_after_2)
    res = fit(x, y, cfg, tmp_path / "b", progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt")["model"], load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert "input_norm.mel_mean" in a
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = pd.read_csv(tmp_path / "a" / "history.csv")
    assert np.array_equal(ha["train_loss"].to_numpy(), res.history["train_loss"].to_numpy())


# ---------------------------------------------------------------- the registry line

def test_improved_experiment_is_registered_with_the_recipe():
    from asdlib.study.profiles import PROFILES
    from asdlib.study.registry import EXPERIMENTS

    exp = EXPERIMENTS["improved"]
    assert exp.kind == "classifier" and exp.reference is None and set(exp.groups) == {"integrated"}
    cfg = TrainConfig().replace(PROFILES["smoke"].classifier | dict(exp.overrides))
    assert (cfg.sampling, cfg.input_norm, cfg.schedule.cycle, cfg.loss.margin, cfg.crop_frames,
            cfg.schedule.max_lr) == ("balanced", "per_mel", "one", 0.5, 64, 1e-3)
    assert for_run(cfg.schedule, cfg.epochs).T_0 == PROFILES["smoke"].classifier["epochs"]
    study = TrainConfig().replace(PROFILES["smoke"].classifier | dict(EXPERIMENTS["integrated"].overrides))
    assert (study.sampling, study.input_norm, study.schedule.cycle) == ("shuffle", "global", "restarts")
