"""The DCASE2023+ baseline anchor: its settings, the selective Mahalanobis score against a
numpy reference, and the min over the two domains."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asdlib.core.errors import ConfigError
from asdlib.recon import (
    AutoencoderConfig,
    DenseAutoencoder,
    ReconConfig,
    fit_dcase2023_baseline,
    fit_selective_mahalanobis,
    score_autoencoder,
    score_dcase2023,
    stack_frames,
)

torch.set_num_threads(1)


def _tiny_model(m: int = 6, seed: int = 0) -> DenseAutoencoder:
    torch.manual_seed(seed)
    return DenseAutoencoder(AutoencoderConfig(n_mels=m, hidden=12, bottleneck=3, n_hidden=2)).eval()


def test_dcase2023_settings_shapes_and_gradients():
    cfg = ReconConfig.dcase2023_defaults()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.adam_eps, cfg.val_fraction) == (100, 256, 1e-3, 1e-8, 0.1)
    assert cfg.val_split == "random"  # the target clips come last in a machine's rows
    model = DenseAutoencoder()  # 5 frames x 128 mels, 128-unit hidden layers, 8-d bottleneck
    x = torch.randn(16, 640)
    out = model(x)
    assert out.shape == (16, 640) and torch.isfinite(out).all()
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _numpy_reference(model, feats, src, tgt, test, ridge):
    """Everything by hand in float64 numpy from the model's error vectors."""
    def errors(rows):
        x = torch.from_numpy(np.asarray(feats[rows], dtype=np.float32))
        v = stack_frames(x, model.n_frames)  # (K, T', D)
        with torch.no_grad():
            r = model(v.reshape(-1, v.shape[-1])).reshape(v.shape)
        return (v - r).double().numpy()

    prec = {}
    for dom, rows in (("source", src), ("target", tgt)):
        e = errors(rows).reshape(-1, model.cfg.input_dim)
        c = np.cov(e, rowvar=False)  # unbiased, centred
        prec[dom] = np.linalg.inv(c + ridge * np.mean(np.diag(c)) * np.eye(len(c)))
    e = errors(test)  # (K, T', D)
    return {dom: np.array([np.mean([v @ p @ v for v in clip]) for clip in e]) for dom, p in prec.items()}


def test_selective_mahalanobis_matches_numpy_reference():
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 1, (30, 6, 12)).astype(np.float16)  # 8 vectors of 30 dims per clip
    feats[20:, :2] *= 4  # a "target domain" with louder low bins
    model = _tiny_model()
    src, tgt, test = np.arange(0, 20), np.arange(20, 26), np.array([3, 26, 27, 28, 29, 0])
    ridge = 1e-3
    maha = fit_selective_mahalanobis(model, feats, src, tgt, ridge=ridge, device="cpu")
    assert maha.n_vectors == {"source": 20 * 8, "target": 6 * 8}
    got = score_dcase2023(model, feats, test, maha, device="cpu")
    ref = _numpy_reference(model, feats, src, tgt, test, ridge)
    np.testing.assert_allclose(got["maha_source"], ref["source"], rtol=1e-6)
    np.testing.assert_allclose(got["maha_target"], ref["target"], rtol=1e-6)
    np.testing.assert_allclose(got["mahalanobis"], np.minimum(ref["source"], ref["target"]), rtol=1e-6)
    np.testing.assert_allclose(got["mse"], score_autoencoder(model, feats, test, device="cpu"), rtol=1e-5)


def test_selective_score_takes_the_nearer_domain():
    rng = np.random.default_rng(1)
    m, t = 6, 12
    src = rng.normal(0, 1, (40, m, t))
    tgt = rng.normal(0, 1, (20, m, t))
    tgt[:, 3:] *= 6  # the target domain: much louder in the upper bins, quieter in the lower
    tgt[:, :3] *= 0.2
    feats = np.concatenate([src, tgt]).astype(np.float32)
    src_rows, tgt_rows = np.arange(0, 30), np.arange(40, 50)
    test_src, test_tgt = np.arange(30, 40), np.arange(50, 60)
    model = _tiny_model(m)
    maha = fit_selective_mahalanobis(model, feats, src_rows, tgt_rows, device="cpu")
    s = score_dcase2023(model, feats, np.r_[test_src, test_tgt], maha, device="cpu")
    np.testing.assert_array_equal(s["mahalanobis"], np.minimum(s["maha_source"], s["maha_target"]))
    # Unseen normals of each domain are measured by their own domain's statistics ...
    assert np.all(s["maha_source"][:10] < s["maha_target"][:10])
    assert np.all(s["maha_target"][10:] < s["maha_source"][10:])
    # ... so target normals are not flagged: against source statistics only, every one of
    # them would outscore every source normal.
    assert s["maha_source"][10:].min() > s["maha_source"][:10].max()
    assert s["mahalanobis"][10:].max() < s["maha_source"][10:].min()
    # No target clips: the target statistics are the source's.
    only = fit_selective_mahalanobis(model, feats, src_rows, None, device="cpu")
    assert only.n_vectors["target"] == 0
    np.testing.assert_array_equal(only.precision["target"], only.precision["source"])
    with pytest.raises(ConfigError):
        fit_selective_mahalanobis(model, feats, src_rows, tgt_rows, ridge=-1.0)


def test_fit_dcase2023_baseline_per_machine(tmp_path):
    rng = np.random.default_rng(2)
    feats = (rng.normal(0, 1, (24, 8, 10)) + np.linspace(-3, 3, 8)[None, :, None]).astype(np.float32)
    cfg = ReconConfig.dcase2023_defaults(epochs=2, batch_size=32, device="cpu")
    model, maha, hist = fit_dcase2023_baseline(feats, np.arange(14), np.arange(14, 18), cfg,
                                               AutoencoderConfig(n_mels=8, hidden=16, bottleneck=4, n_hidden=1),
                                               out_path=tmp_path / "ae.pt")
    assert len(hist) == 2 and (tmp_path / "ae.pt").exists()
    assert maha.n_vectors == {"source": 14 * 6, "target": 4 * 6}
    s = score_dcase2023(model, feats, np.arange(18, 24), maha, device="cpu")
    assert set(s) == {"mse", "maha_source", "maha_target", "mahalanobis"}
    assert all(v.shape == (6,) and np.isfinite(v).all() for v in s.values())
