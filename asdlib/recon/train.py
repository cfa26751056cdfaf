"""Fit and score loops shared by the reconstruction models (autoencoder and WaveNet).

Both read clips from the feature array (a float16 memmap from the cache, or any ndarray of
shape ``(N, M, T)``) by row index, chunk by chunk, so training one machine type never loads
the whole cache. Validation follows Keras' ``validation_split``: the *last* fraction of the
rows given (in the order given) is held out before any shuffling; the baseline split frame
vectors, we split clips, so no clip is on both sides.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.errors import CacheError, ConfigError
from ..core.utils import atomic_save_torch, resolve_device, set_seed
from .autoencoder import AutoencoderConfig, DenseAutoencoder
from .frames import ClipBatches, FrameVectorStream, mel_stats, read_clips, stack_frames
from .wavenet import WaveNetConfig, WaveNetPredictor


@dataclass
class ReconConfig:
    """Training settings. Defaults are the DCASE2020 baseline's (autoencoder); use
    :meth:`wavenet_defaults` for the WaveNet, where ``batch_size`` counts clips."""
    epochs: int = 100
    batch_size: int = 512  # frame vectors (AE) or clips (WaveNet)
    lr: float = 1e-3
    adam_eps: float = 1e-7  # Keras' Adam epsilon
    seed: int = 0
    device: str = "auto"
    chunk_clips: int = 256  # clips read and shuffled together by the AE stream
    val_fraction: float = 0.1
    # 'last': Keras' validation_split (the last rows; with the index sorted by ID that is
    # mostly the last machine ID, as in the baseline); 'random': a seeded random subset.
    val_split: str = "last"
    max_batches_per_epoch: int | None = None  # for smoke runs and benchmarks
    grad_clip: float | None = None
    deterministic: bool = False

    @classmethod
    def dcase2023_defaults(cls, **kw) -> ReconConfig:
        """The organisers' DCASE2023-2025 baseline settings (its published ``baseline.yaml``:
        100 epochs, batch 256, lr 1e-3, validation split 0.1; PyTorch Adam, eps 1e-8). The
        split is random: the rows of one machine list the 10 target clips last, and
        Keras' 'last' split would hold all of them out."""
        base = dict(epochs=100, batch_size=256, lr=1e-3, adam_eps=1e-8, val_split="random")
        return cls(**{**base, **kw})

    @classmethod
    def wavenet_defaults(cls, **kw) -> ReconConfig:
        base = dict(epochs=30, batch_size=16, lr=1e-3, adam_eps=1e-8, grad_clip=1.0, val_split="random")
        return cls(**{**base, **kw})

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_split not in ("last", "random"):
            raise ConfigError(f"val_split must be 'last' or 'random', got {self.val_split!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")


def split_rows(rows: Sequence[int], val_fraction: float, how: str = "last",
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``rows`` for training and validation: ``ceil(f * n)`` validate (at
    least one row trains). ``how='last'`` is Keras' split (the last rows); ``'random'`` a
    seeded random subset. Both parts keep the order of ``rows``."""
    n = len(np.asarray(rows).reshape(-1))
    n_val = min(math.ceil(val_fraction * n), n - 1) if val_fraction > 0 else 0
    if how == "last":
        val = np.arange(n - n_val, n)
    elif how == "random":
        val = np.sort(np.random.default_rng(seed).permutation(n)[:n_val])
    else:
        raise ConfigError(f"unknown split {how!r}")
    return np.setdiff1d(np.arange(n), val), val


def _checkpoint(kind: str, model: torch.nn.Module, cfg: ReconConfig, history: list[dict]) -> dict:
    return {"kind": kind, "model_config": asdict(model.cfg), "recon_config": asdict(cfg),
            "state_dict": model.state_dict(), "history": history, "torch_version": str(torch.__version__)}


def _fit(kind: str, model: torch.nn.Module, make_train, make_val, step_loss, cfg: ReconConfig,
         out_path: str | Path | None, progress: bool) -> tuple[torch.nn.Module, list[dict]]:
    """The loop both models share: Adam, per-epoch mean train/val loss, an atomic checkpoint at the end."""
    device = resolve_device(cfg.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    train_it, val_it = make_train(), make_val()
    history: list[dict] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"fit {kind}", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        tot, n = 0.0, 0
        for b, batch in enumerate(train_it):
            if cfg.max_batches_per_epoch is not None and b >= cfg.max_batches_per_epoch:
                break
            out = step_loss(model, batch, device)
            if out is None:  # a batch the model cannot train on (see the AE's step)
                continue
            loss, size = out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            tot, n = tot + loss.item() * size, n + size
        rec = {"epoch": epoch, "train_loss": tot / max(n, 1), "val_loss": float("nan")}
        if val_it is not None:
            model.eval()
            vt, vn = 0.0, 0
            with torch.no_grad():
                for batch in val_it:
                    out = step_loss(model, batch, device)
                    if out is None:
                        continue
                    loss, size = out
                    vt, vn = vt + loss.item() * size, vn + size
            rec["val_loss"] = vt / max(vn, 1)
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.4g}", val=f"{rec['val_loss']:.4g}")
    # Once, at the end: an unfinished run is trained again from scratch (there is no resume, see
    # asdlib.study.experiments._recon_checkpoint), so a checkpoint per epoch only cost time (6 % of the AE's)
    if out_path is not None:
        atomic_save_torch(_checkpoint(kind, model, cfg, history), out_path)
    model.eval()
    return model, history


def fit_autoencoder(features: np.ndarray, rows: Sequence[int], cfg: ReconConfig | None = None,
                    ae_cfg: AutoencoderConfig | None = None, out_path: str | Path | None = None,
                    progress: bool = True) -> tuple[DenseAutoencoder, list[dict]]:
    """Train the baseline autoencoder on the frame vectors of clips ``rows`` (normal
    training clips of one machine type). Returns the model (eval mode) and per-epoch history."""
    cfg = cfg or ReconConfig()
    ae_cfg = ae_cfg or AutoencoderConfig(n_mels=features.shape[1])
    if ae_cfg.n_mels != features.shape[1]:
        raise ConfigError(f"model expects {ae_cfg.n_mels} mel bins, features have {features.shape[1]}")
    set_seed(cfg.seed, cfg.deterministic)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    p_tr, p_va = split_rows(rows, cfg.val_fraction, cfg.val_split, cfg.seed)
    tr, va = rows[p_tr], rows[p_va]
    model = DenseAutoencoder(ae_cfg)

    def step(m, x, device):
        # BatchNorm cannot train on one vector (PyTorch raises; Keras would use a zero
        # variance): a final remainder batch of one vector per epoch is skipped.
        if x.shape[0] < 2:
            return None
        x = x.to(device, non_blocking=True)  # (B, M*n)
        return m.loss(x), x.shape[0]

    make_train = lambda: FrameVectorStream(features, tr, ae_cfg.n_frames, cfg.batch_size,  # noqa: E731
                                           cfg.chunk_clips, shuffle=True, seed=cfg.seed)
    make_val = lambda: (FrameVectorStream(features, va, ae_cfg.n_frames, cfg.batch_size,  # noqa: E731
                                          cfg.chunk_clips, shuffle=False) if len(va) else None)
    return _fit("autoencoder", model, make_train, make_val, step, cfg, out_path, progress)


def fit_wavenet(features: np.ndarray, rows: Sequence[int], cfg: ReconConfig | None = None,
                wcfg: WaveNetConfig | None = None, id_index: Sequence[int] | None = None,
                out_path: str | Path | None = None, progress: bool = True) -> tuple[WaveNetPredictor, list[dict]]:
    """Train the WaveNet next-frame predictor on whole clips ``rows``. ``id_index`` (one
    integer in ``[0, wcfg.num_ids)`` per row) is required when ``wcfg.condition_on_id``.
    The per-bin normalisation is fitted on the training part of ``rows``."""
    cfg = cfg or ReconConfig.wavenet_defaults()
    wcfg = wcfg or WaveNetConfig(n_mels=features.shape[1])
    if wcfg.n_mels != features.shape[1]:
        raise ConfigError(f"model expects {wcfg.n_mels} mel bins, features have {features.shape[1]}")
    if wcfg.condition_on_id and id_index is None:
        raise ConfigError("condition_on_id is set: pass id_index (one ID index per row)")
    set_seed(cfg.seed, cfg.deterministic)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    ids = None if (id_index is None or not wcfg.condition_on_id) else np.asarray(id_index, dtype=np.int64)
    p_tr, p_va = split_rows(rows, cfg.val_fraction, cfg.val_split, cfg.seed)
    tr, va = rows[p_tr], rows[p_va]
    ids_tr, ids_va = (None, None) if ids is None else (ids[p_tr], ids[p_va])
    model = WaveNetPredictor(wcfg)
    model.set_normalisation(*mel_stats(features, tr, cfg.chunk_clips))

    def step(m, batch, device):
        x, g = batch
        x = x.to(device, non_blocking=True)  # (B, M, T)
        return m.loss(x, None if g is None else g.to(device)), x.shape[0]

    make_train = lambda: ClipBatches(features, tr, cfg.batch_size, True, cfg.seed, ids_tr)  # noqa: E731
    make_val = lambda: ClipBatches(features, va, cfg.batch_size, False, 0, ids_va) if len(va) else None  # noqa: E731
    return _fit("wavenet", model, make_train, make_val, step, cfg, out_path, progress)


@torch.no_grad()
def score_autoencoder(model: DenseAutoencoder, features: np.ndarray, rows: Sequence[int],
                      batch_size: int = 64, device: str = "auto", progress: bool = False) -> np.ndarray:
    """Anomaly score per clip, ``(len(rows),)``: mean squared error over all its frame
    vectors and dimensions (the baseline's score). ``batch_size`` counts clips."""
    device = resolve_device(device)
    model.to(device).eval()
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.empty(len(rows), dtype=np.float64)
    for b in tqdm(range(0, len(rows), batch_size), desc="score AE", disable=not progress):
        x = torch.from_numpy(read_clips(features, rows[b:b + batch_size])).to(device)  # (K, M, T)
        v = stack_frames(x, model.n_frames)  # (K, T', M*n)
        err = (model(v.reshape(-1, v.shape[-1])).reshape(v.shape) - v) ** 2
        out[b:b + len(x)] = err.mean(dim=(1, 2)).double().cpu().numpy()
    return out


@torch.no_grad()
def score_wavenet(model: WaveNetPredictor, features: np.ndarray, rows: Sequence[int],
                  id_index: Sequence[int] | None = None, batch_size: int = 16, device: str = "auto",
                  progress: bool = False) -> np.ndarray:
    """Anomaly score per clip, ``(len(rows),)``: mean squared next-frame prediction error
    (normalised space) over all bins and predicted frames. Conditioned models need the
    clips' own ID indices in ``id_index``."""
    device = resolve_device(device)
    model.to(device).eval()
    it = ClipBatches(features, rows, batch_size, shuffle=False,
                     ids=id_index if model.cfg.condition_on_id else None)
    if model.cfg.condition_on_id and id_index is None:
        raise ConfigError("this WaveNet is conditioned on the machine ID: pass id_index")
    parts = []
    for x, g in tqdm(it, desc="score WaveNet", disable=not progress):
        err = model.frame_errors(x.to(device), None if g is None else g.to(device))  # (B, M, T-1)
        parts.append(err.mean(dim=(1, 2)).double().cpu().numpy())
    return np.concatenate(parts)


@torch.no_grad()
def reconstruction_map(model: DenseAutoencoder | WaveNetPredictor, logmel: np.ndarray,
                       id_: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pictures of what a model gets wrong on one clip ``(M, T)``: ``(input, reconstruction,
    error)``, each ``(M, T')`` and chosen so that ``error.mean()`` equals the clip's score.

    Autoencoder: ``T' = T - n + 1``; input and reconstruction show the middle frame of each
    stacked vector; error[m, t] is the squared error of bin m averaged over the n frames of
    vector t. WaveNet: ``T' = T - 1``; input is frames 1..T-1, reconstruction the prediction
    of each (in dB, denormalised), error the squared error in the normalised space.
    """
    device = next(model.parameters()).device
    model.eval()
    x = torch.as_tensor(np.asarray(logmel, dtype=np.float32), device=device)  # (M, T)
    m = x.shape[0]
    if isinstance(model, DenseAutoencoder):
        n = model.n_frames
        v = stack_frames(x, n)  # (T', M*n)
        r = model(v)
        err = ((r - v) ** 2).reshape(-1, n, m).mean(dim=1).T  # (M, T')
        mid = slice((n // 2) * m, (n // 2 + 1) * m)
        return v[:, mid].T.cpu().numpy(), r[:, mid].T.cpu().numpy(), err.cpu().numpy()
    if isinstance(model, WaveNetPredictor):
        ids = None
        if model.cfg.condition_on_id:
            if id_ is None:
                raise ConfigError("this WaveNet is conditioned on the machine ID: pass id_")
            ids = torch.tensor([id_], device=device)
        pred = model(x[None], ids)[0, :, :-1]  # (M, T-1), normalised
        err = (pred - model.normalise(x[None])[0, :, 1:]) ** 2
        rec = pred * model.mel_std[:, None] + model.mel_mean[:, None]
        return x[:, 1:].cpu().numpy(), rec.cpu().numpy(), err.cpu().numpy()
    raise TypeError(f"not a reconstruction model: {type(model).__name__}")


def load_recon_model(path: str | Path, map_location: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from a checkpoint written by ``fit_*``; returns ``(model, checkpoint)``."""
    path = Path(path)
    if not path.exists():
        raise CacheError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CacheError(f"cannot read checkpoint {path}: {e}") from e
    builders = {"autoencoder": (DenseAutoencoder, AutoencoderConfig), "wavenet": (WaveNetPredictor, WaveNetConfig)}
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in builders:
        raise CacheError(f"{path} is not a reconstruction checkpoint")
    cls, cfg_cls = builders[ckpt["kind"]]
    model = cls(cfg_cls(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
