"""Tests of the reconstruction methods: frame stacking, streaming, both models, fit/score."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asdlib.core.errors import CacheError, ConfigError
from asdlib.recon import (
    AutoencoderConfig,
    ClipBatches,
    DenseAutoencoder,
    FrameVectorStream,
    ReconConfig,
    WaveNetConfig,
    WaveNetPredictor,
    baseline_param_count,
    fit_autoencoder,
    fit_wavenet,
    load_recon_model,
    mel_stats,
    reconstruction_map,
    score_autoencoder,
    score_wavenet,
    split_rows,
    stack_frames,
)

torch.set_num_threads(1)


def synthetic_logmel(n_normal: int, n_anom: int, m: int = 16, t: int = 48, seed: int = 0,
                     dtype=np.float16) -> tuple[np.ndarray, np.ndarray]:
    """Normal clips: a stable spectral envelope (dB) with a slow per-clip gain and noise.
    Anomalies: the same plus either a tonal line in one bin or broadband bursts."""
    rng = np.random.default_rng(seed)
    bins = np.arange(m)
    envelope = -40 + 15 * np.exp(-((bins - m / 3) ** 2) / 8) + 8 * np.exp(-((bins - 3 * m / 4) ** 2) / 4)
    n = n_normal + n_anom
    x = envelope[None, :, None] + rng.normal(0, 1.0, (n, m, t)) + rng.normal(0, 0.5, (n, 1, 1))
    labels = np.r_[np.zeros(n_normal, int), np.ones(n_anom, int)]
    for i in range(n_normal, n):
        if i % 2:  # tonal line
            x[i, rng.integers(2, m - 2)] += 10.0
        else:  # broadband bursts in a few frames
            x[i][:, rng.choice(t, size=t // 5, replace=False)] += 8.0
    return x.astype(dtype), labels


# ---------------------------------------------------------------- frames and streaming

def test_stack_frames_order_on_arange():
    m, t, n = 3, 7, 5
    logmel = np.arange(m * t, dtype=np.float32).reshape(m, t)
    vec = stack_frames(logmel, n)
    assert vec.shape == (t - n + 1, m * n)
    # The baseline's construction, written out: block k holds frame t+k, bins contiguous.
    ref = np.zeros_like(vec)
    for k in range(n):
        ref[:, m * k:m * (k + 1)] = logmel[:, k:k + t - n + 1].T
    np.testing.assert_array_equal(vec, ref)
    assert vec[1].tolist() == [1, 8, 15, 2, 9, 16, 3, 10, 17, 4, 11, 18, 5, 12, 19]
    batch = np.stack([logmel, logmel + 100])  # (2, M, T)
    np.testing.assert_array_equal(stack_frames(torch.from_numpy(batch), n).numpy(), stack_frames(batch, n))
    with pytest.raises(ConfigError):
        stack_frames(logmel[:, :4], n)


def _memmap(tmp_path, arr: np.ndarray) -> np.memmap:
    mm = np.memmap(tmp_path / "feat.f16", dtype=np.float16, mode="w+", shape=arr.shape)
    mm[:] = arr
    mm.flush()
    return np.memmap(tmp_path / "feat.f16", dtype=np.float16, mode="r", shape=arr.shape)


@pytest.mark.parametrize("chunk_clips,batch_size", [(3, 7), (1, 512), (50, 4)])
def test_stream_yields_every_vector_once(tmp_path, chunk_clips, batch_size):
    rng = np.random.default_rng(1)
    n, m, t, nf = 13, 4, 9, 5
    feats = _memmap(tmp_path, rng.normal(size=(n, m, t)))
    rows = np.array([0, 2, 3, 5, 6, 7, 8, 10, 11, 12])  # a subset, as one machine type's rows
    stream = FrameVectorStream(feats, rows, nf, batch_size, chunk_clips, shuffle=True, seed=3)
    in_ram = stack_frames(np.asarray(feats[rows], dtype=np.float32), nf).reshape(-1, m * nf)
    epochs = []
    for _ in range(2):
        batches = list(stream)
        assert len(batches) == len(stream)
        assert all(len(b) == batch_size for b in batches[:-1]) and 0 < len(batches[-1]) <= batch_size
        got = torch.cat(batches).numpy()
        assert got.shape == in_ram.shape == (len(rows) * (t - nf + 1), m * nf)
        assert np.isclose(got.astype(np.float64).sum(), in_ram.astype(np.float64).sum())
        # Same multiset of vectors: sort rows lexicographically and compare exactly.
        np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], in_ram[np.lexsort(in_ram.T[::-1])])
        epochs.append(got)
    # Bounded: never more than one chunk of vectors plus less than one batch carried over.
    assert stream.max_chunk_vectors <= chunk_clips * (t - nf + 1) + batch_size - 1
    if len(epochs[0]) > batch_size:
        assert not np.array_equal(epochs[0], epochs[1])  # a fresh shuffle per epoch


def test_clip_batches_and_mel_stats(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.normal(3.0, 2.0, size=(9, 5, 11))
    feats = _memmap(tmp_path, arr)
    rows, ids = np.array([8, 1, 4, 6]), np.array([0, 1, 2, 3])
    seen = {}
    for x, g in ClipBatches(feats, rows, batch_size=3, shuffle=True, seed=0, ids=ids):
        assert x.dtype == torch.float32 and x.shape[1:] == (5, 11)
        for clip, i in zip(x.numpy(), g.tolist()):
            seen[i] = clip
    for i, r in zip(ids, rows):  # each clip arrives once, with its own ID
        np.testing.assert_array_equal(seen[i], np.asarray(feats[r], dtype=np.float32))
    mean, std = mel_stats(feats, rows, chunk_clips=3)
    ref = np.asarray(feats[rows], dtype=np.float64).transpose(1, 0, 2).reshape(5, -1)
    np.testing.assert_allclose(mean, ref.mean(1), rtol=1e-5)
    np.testing.assert_allclose(std, ref.std(1), rtol=1e-4)


def test_split_rows_is_keras_like():
    tr, va = split_rows(np.arange(20, 40), 0.1)  # positions into rows
    assert tr.tolist() == list(range(18)) and va.tolist() == [18, 19]
    tr, va = split_rows([5], 0.1)
    assert tr.tolist() == [0] and va.size == 0
    tr, va = split_rows(np.arange(100), 0.1, "random", seed=1)
    assert len(va) == 10 and sorted(np.r_[tr, va].tolist()) == list(range(100))
    assert not np.array_equal(va, np.arange(90, 100))  # not the Keras tail
    assert not np.array_equal(va, split_rows(np.arange(100), 0.1, "random", seed=2)[1])
    with pytest.raises(ConfigError):
        ReconConfig(val_fraction=1.0)
    with pytest.raises(ConfigError):
        ReconConfig(val_split="first")


# ---------------------------------------------------------------- autoencoder

def test_autoencoder_matches_published_design():
    model = DenseAutoencoder()
    linears = [mod for mod in model.net if isinstance(mod, torch.nn.Linear)]
    widths = [linears[0].in_features] + [lin.out_features for lin in linears]
    assert widths == [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    bns = [mod for mod in model.net if isinstance(mod, torch.nn.BatchNorm1d)]
    assert [b.num_features for b in bns] == widths[1:-1]  # BN after every hidden layer, bottleneck too
    assert isinstance(model.net[-1], torch.nn.Linear)  # linear output
    dense = 640 * 128 + 128 + 3 * (128 * 128 + 128) + (128 * 8 + 8) + (8 * 128 + 128) \
        + 3 * (128 * 128 + 128) + (128 * 640 + 640)
    bn_units = 8 * 128 + 8
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert trainable == dense + 2 * bn_units == baseline_param_count()["trainable"]
    # Keras' "Total params" of the baseline counts the BN moving mean/variance too.
    assert trainable + moving == dense + 4 * bn_units == baseline_param_count()["total_keras"] == 269_992


def test_autoencoder_shapes_and_gradients():
    model = DenseAutoencoder(AutoencoderConfig(n_mels=16))
    x = torch.randn(32, 80)
    out = model(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    model.loss(x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- WaveNet

@pytest.mark.parametrize("cond", [False, True])
def test_wavenet_shapes_and_gradients(cond):
    cfg = WaveNetConfig(n_mels=8, residual_channels=6, skip_channels=5, dilations=(1, 2), n_stacks=2,
                        condition_on_id=cond, num_ids=3 if cond else 0)
    model = WaveNetPredictor(cfg)
    x, ids = torch.randn(4, 8, 20), torch.tensor([0, 1, 2, 1])
    out = model(x, ids if cond else None)
    assert out.shape == x.shape and torch.isfinite(out).all()
    model.loss(x, ids if cond else None).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if cond:  # the ID changes the prediction, and is required
        assert not torch.allclose(out, model(x, torch.tensor([2, 2, 0, 0])))
        with pytest.raises(ConfigError):
            model(x)


def test_wavenet_causality_and_receptive_field():
    torch.manual_seed(0)
    cfg = WaveNetConfig(n_mels=4, residual_channels=8, skip_channels=8, dilations=(1, 2, 4), n_stacks=2)
    assert cfg.receptive_field == 1 + 2 * (1 + 2 + 4) == 15
    model = WaveNetPredictor(cfg).eval()
    x = torch.randn(1, 4, 40)
    t0 = 25
    x2 = x.clone()
    x2[..., t0] += 5.0
    y, y2 = model(x), model(x2)
    assert torch.equal(y[..., :t0], y2[..., :t0])  # the future does not leak into the past
    assert not torch.allclose(y[..., t0], y2[..., t0])
    # Output t depends on exactly the inputs t - RF + 1 .. t.
    t = 35
    xg = x.clone().requires_grad_(True)
    model(xg)[..., t].sum().backward()
    touched = (xg.grad.abs().sum(dim=(0, 1)) > 0).nonzero().flatten().tolist()
    assert touched == list(range(t - cfg.receptive_field + 1, t + 1))


# ---------------------------------------------------------------- fit and score on synthetic data

@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    x_train, _ = synthetic_logmel(60, 0, seed=0)
    x_test, labels = synthetic_logmel(30, 30, seed=1)
    arr = np.concatenate([x_train, x_test])
    path = tmp_path_factory.mktemp("synth") / "feat.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=arr.shape)
    mm[:] = arr
    mm.flush()
    feats = np.memmap(path, dtype=np.float16, mode="r", shape=arr.shape)
    return feats, np.arange(60), np.arange(60, len(arr)), labels


def test_autoencoder_detects_synthetic_anomalies(synth, tmp_path):
    feats, train_rows, test_rows, labels = synth
    cfg = ReconConfig(epochs=20, batch_size=64, chunk_clips=16, device="cpu")
    ckpt = tmp_path / "ae.pt"
    model, hist = fit_autoencoder(feats, train_rows, cfg, AutoencoderConfig(n_mels=16), ckpt, progress=False)
    assert len(hist) == 20 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert np.isfinite(hist[-1]["val_loss"])
    scores = score_autoencoder(model, feats, test_rows, batch_size=7, device="cpu")
    auc = roc_auc_score(labels, scores)
    print(f"synthetic AE AUC = {auc:.3f}")
    assert auc > 0.8
    loaded, meta = load_recon_model(ckpt)
    assert meta["kind"] == "autoencoder" and meta["recon_config"]["epochs"] == 20
    np.testing.assert_allclose(score_autoencoder(loaded, feats, test_rows, device="cpu"), scores, rtol=1e-5)
    inp, rec, err = reconstruction_map(model, np.asarray(feats[test_rows[0]], dtype=np.float32))
    assert inp.shape == rec.shape == err.shape == (16, 48 - 4)
    assert np.isclose(err.mean(), scores[0], rtol=1e-4)


@pytest.mark.parametrize("cond", [False, True])
def test_wavenet_detects_synthetic_anomalies(synth, tmp_path, cond):
    feats, train_rows, test_rows, labels = synth
    wcfg = WaveNetConfig(n_mels=16, residual_channels=16, skip_channels=16, dilations=(1, 2, 4, 8),
                         condition_on_id=cond, num_ids=2 if cond else 0)
    ids_train, ids_test = train_rows % 2, test_rows % 2
    cfg = ReconConfig.wavenet_defaults(epochs=6, batch_size=8, device="cpu")
    model, hist = fit_wavenet(feats, train_rows, cfg, wcfg, id_index=ids_train,
                              out_path=tmp_path / "wn.pt", progress=False)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    # The normalisation buffers hold the training statistics (the envelope peaks near bin 5).
    assert int(model.mel_mean.argmax()) in (4, 5, 6) and torch.all(model.mel_std > 0.5)
    scores = score_wavenet(model, feats, test_rows, id_index=ids_test, batch_size=7, device="cpu")
    auc = roc_auc_score(labels, scores)
    print(f"synthetic WaveNet (cond={cond}) AUC = {auc:.3f}")
    assert auc > 0.8
    loaded, meta = load_recon_model(tmp_path / "wn.pt")
    assert meta["kind"] == "wavenet" and loaded.cfg == wcfg
    np.testing.assert_allclose(score_wavenet(loaded, feats, test_rows, ids_test, device="cpu"), scores, rtol=1e-5)
    inp, rec, err = reconstruction_map(model, np.asarray(feats[test_rows[0]], dtype=np.float32),
                                       id_=int(ids_test[0]) if cond else None)
    assert inp.shape == rec.shape == err.shape == (16, 47)
    assert np.isclose(err.mean(), scores[0], rtol=1e-4)


def test_load_rejects_bad_checkpoints(tmp_path):
    with pytest.raises(CacheError):
        load_recon_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError):
        load_recon_model(tmp_path / "junk.pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_and_score_on_cuda(synth):
    feats, train_rows, test_rows, _ = synth
    ae, _ = fit_autoencoder(feats, train_rows, ReconConfig(epochs=1, batch_size=64, device="cuda"),
                            AutoencoderConfig(n_mels=16), progress=False)
    s_gpu = score_autoencoder(ae, feats, test_rows, device="cuda")
    assert np.allclose(score_autoencoder(ae, feats, test_rows, device="cpu"), s_gpu, rtol=1e-3)
    wn, _ = fit_wavenet(feats, train_rows, ReconConfig.wavenet_defaults(epochs=1, device="cuda"),
                        WaveNetConfig(n_mels=16, residual_channels=8, skip_channels=8), progress=False)
    assert np.isfinite(score_wavenet(wn, feats, test_rows, device="cuda")).all()


def test_autoencoder_survives_a_final_batch_of_one():
    # 3 clips x 7 vectors = 21 = 2 * 10 + 1: the last batch holds a single vector.
    feats = np.random.default_rng(0).normal(size=(3, 4, 11)).astype(np.float16)
    _, hist = fit_autoencoder(feats, np.arange(3), ReconConfig(epochs=1, batch_size=10, val_fraction=0.0,
                                                               device="cpu"),
                              AutoencoderConfig(n_mels=4), progress=False)
    assert np.isfinite(hist[0]["train_loss"])


@pytest.mark.parametrize("kind", ["autoencoder", "wavenet"])
def test_one_reconstruction_model_per_type_and_dataset(tiny_dataset, tmp_path, monkeypatch, kind):
    """As the DCASE2020 baseline: the dev model trains on dev_data/<type>/train and scores the dev test
    clips, the eval model trains on eval_data/<type>/train and scores the eval test clips."""
    from asdlib.data.index import index_dataset
    from asdlib.features.cache import build_feature_cache
    from asdlib.features.logmel import FeatureConfig
    from asdlib.study import experiments
    from asdlib.study.context import Study
    from asdlib.study.profiles import PROFILES

    study = Study(data_root=tiny_dataset, synthetic=False, profile=PROFILES["ci"], device="cpu", seed=0,
                  results_dir=tmp_path / "res", work_dir=tmp_path / "work", progress=False)
    index = index_dataset(tiny_dataset)
    study.__dict__["features"] = build_feature_cache(index, FeatureConfig(duration_s=0.5), cache_dir=tmp_path / "c",
                                                     device="cpu", progress=False)
    datasets = study.features.index["dataset"].to_numpy()
    trained, scored, alive = {}, [], []  # alive: the models stay referenced, so their id() stay unique
    fit_name, score_name = ("fit_autoencoder", "score_autoencoder") if kind == "autoencoder" else ("fit_wavenet", "score_wavenet")
    real_fit, real_score = getattr(experiments, fit_name), getattr(experiments, score_name)

    def spy_fit(feats, tr, *args, **kwargs):
        model, history = real_fit(feats, tr, *args, **kwargs)
        trained[id(model)] = set(datasets[np.asarray(tr)])
        alive.append(model)
        return model, history

    def spy_score(model, feats, te, *args, **kwargs):
        scored.append((id(model), set(datasets[np.asarray(te)])))
        return real_score(model, feats, te, *args, **kwargs)

    monkeypatch.setattr(experiments, fit_name, spy_fit)
    monkeypatch.setattr(experiments, score_name, spy_score)
    res = experiments.run_reconstruction(study, kind, save=False)
    assert len(trained) == 4  # fan and ToyCar, dev and eval
    assert sorted(map(sorted, trained.values())) == [["dev"], ["dev"], ["eval"], ["eval"]]
    assert len(scored) == 4 and all(trained[m] == ds for m, ds in scored)  # each test set by its dataset's model
    for t in ("fan", "ToyCar"):
        record = res.run(t)
        assert set(record["models"]) == {"dev", "eval"} and record["path"] == record["models"]["dev"]["path"]
        assert record["models"]["dev"]["n_train"] == 4 and record["models"]["eval"]["n_train"] == 2
    scores = res.scores["final"]
    assert len(scores) == int((index["part"] == "test").sum())
    assert set(scores["dataset"]) == {"dev", "eval"}
