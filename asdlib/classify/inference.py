"""One inference path: logits and embeddings of a classifier over clips, whole or in sliding windows.

A model trained on random crops of ``crop_frames`` frames scores a longer clip by cutting it
into windows of ``crop_frames`` frames with a hop of half a window (the last window aligned
to the clip's end, so every frame is seen) and averaging the windows' *logits* and
*embeddings*. Averaging logits rather than probabilities keeps one confident window from
dominating and equals, after the softmax, a normalised geometric mean of the windows'
probabilities.

On top of :func:`extract`: :class:`Classifier` (a model with its run's config), :func:`embed`
(the one way the package runs a classifier over clips: crop and batch size from the config)
and :func:`fit_and_score` / :func:`score_outputs` (fit a scorer on normal clips, score clips),
used by the training-time evaluation, threshold calibration, the study's experiments and
``asdlib score``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.errors import AsdlibError
from .checkpoint import load_model
from .config import TrainConfig
from .scorers import Scorer


def window_starts(n_frames: int, crop_frames: int | None) -> list[int]:
    """Start frames of the sliding windows over a clip (one window when it is short enough)."""
    if crop_frames is None or n_frames <= crop_frames:
        return [0]
    hop = max(1, crop_frames // 2)
    starts = list(range(0, n_frames - crop_frames + 1, hop))
    if starts[-1] != n_frames - crop_frames:
        starts.append(n_frames - crop_frames)
    return starts


def model_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (B, C), embedding (B, D))`` from one pass over the backbone."""
    f = model.forward_features(x)
    emb = model.forward_head(f, pre_logits=True)  # (B, D)
    logits = model.get_classifier()(emb)  # (B, C): scale*cos for cosine heads
    return logits, emb


@torch.no_grad()
def extract(
    model: nn.Module,
    features,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    crop_frames: int | None = None,
    progress: bool = False,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(N, C)`` and embeddings ``(N, D)`` (float32) of ``features`` ``(N, n_mels, T)``.

    ``features`` may be a NumPy array / memmap (float16 is fine) or a tensor (already on
    ``device``: nothing is copied); batches are moved to ``device`` one at a time, so a cache
    larger than device memory works. The outputs stay on the device until the end.
    """
    model.eval()
    device = torch.device(device)
    n, _, n_frames = features.shape
    starts = window_starts(n_frames, crop_frames)
    width = n_frames if len(starts) == 1 else crop_frames
    all_logits, all_emb = [], []
    for i in tqdm(range(0, n, batch_size), disable=not progress, desc="extract", leave=False):
        xb = torch.as_tensor(np.array(features[i : i + batch_size]) if not torch.is_tensor(features)
                             else features[i : i + batch_size])
        xb = xb.to(device, non_blocking=True).float()  # (B, M, T)
        b = xb.shape[0]
        windows = torch.stack([xb[:, :, s : s + width] for s in starts], dim=1)  # (B, W, M, crop)
        windows = windows.reshape(b * len(starts), 1, xb.shape[1], width)  # (B*W, 1, M, crop)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits, emb = model_outputs(model, windows)
        all_logits.append(logits.float().reshape(b, len(starts), -1).mean(1))  # (B, C), on the device
        all_emb.append(emb.float().reshape(b, len(starts), -1).mean(1))  # (B, D)
    # one copy to the host at the end: the batches above are queued without waiting for the device
    return torch.cat(all_logits).cpu().numpy(), torch.cat(all_emb).cpu().numpy()


@dataclass
class Classifier:
    """A trained ID classifier and the settings of the run that trained it.

    Inference reads the crop and the batch size from ``cfg`` (the config saved in the
    checkpoint), so every caller scores a clip the way the run's own evaluation did.
    ``batch_size`` overrides ``cfg.batch_size``, as a memory knob: in eval mode a clip's
    outputs depend on its batch only through float rounding, but that rounding (~1e-6) is
    enough to move a gamma-fitted threshold on a few clips, so leave it unset to reproduce.
    """

    model: nn.Module
    cfg: TrainConfig
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    class_names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # the rest of the checkpoint (feature_config, epoch, ...)
    batch_size: int | None = None

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> Classifier:
        """Rebuild a checkpoint's model (eval mode, on ``device``) with its config and class names."""
        model, cfg, meta = load_model(checkpoint, device)
        return cls(model, cfg, torch.device(device), list(meta["class_names"]), meta)


class Outputs(NamedTuple):
    logits: np.ndarray  # (N, C) float32
    emb: np.ndarray  # (N, D) float32


def embed(
    classifier: Classifier | str | os.PathLike,
    features,
    *,
    device: str | torch.device = "cpu",
    amp: bool = False,
    progress: bool = False,
) -> Outputs:
    """Logits and embeddings of a classifier (or a checkpoint, loaded on ``device``) over clips.

    The one inference entry point: :func:`extract` with the crop and batch size of the run's
    config. ``amp`` (bf16 autocast, CUDA only) is set by the training loop alone, so that its
    evaluation runs as its steps do (``cfg.amp``); a saved checkpoint is scored in float32.
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier.load(classifier, device)
    batch = clf.batch_size if clf.batch_size is not None else clf.cfg.batch_size
    logits, emb = extract(clf.model, features, batch, clf.device, clf.cfg.crop_frames, progress=progress, amp=amp)
    return Outputs(logits, emb)


def score_outputs(scorer: Scorer, outputs: Outputs, classes, fit_emb: np.ndarray | None = None,
                  fit_classes=None, fit_domains=None) -> np.ndarray:
    """Fit ``scorer`` on normal embeddings (only if it needs fitting), then score ``outputs``.

    ``classes`` is each clip's own class index. For clips already embedded (one embedding
    scored by several scorers, or one training set fitting the scorer of several eval sets).
    ``fit_domains`` (source/target per training clip) goes to scorers that use domains.
    """
    if scorer.needs_fit:
        if fit_emb is None:
            raise AsdlibError(f"scorer {scorer.name!r} fits on normal training embeddings; none were given")
        if scorer.needs_domain:
            scorer.fit(fit_emb, np.asarray(fit_classes), domain=fit_domains)
        else:
            scorer.fit(fit_emb, np.asarray(fit_classes))
    return scorer.score(outputs.emb, outputs.logits, np.asarray(classes))


def fit_and_score(
    scorer: Scorer,
    classifier: Classifier,
    clips,
    classes,
    fit_clips=None,
    fit_classes=None,
    *,
    amp: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Anomaly scores ``(N,)`` of ``clips`` (with their own ``classes``) under ``scorer``.

    Scorers that fit on embeddings are fitted on ``fit_clips``/``fit_classes`` (normal
    training clips, required for them: fitted on the scored clips themselves, a kNN scorer
    would find each clip at distance 0 from itself), embedded only for such scorers.
    """
    if scorer.needs_fit and fit_clips is None:
        raise AsdlibError(f"scorer {scorer.name!r} fits on normal training clips: pass fit_clips (and fit_classes), "
                          "clips other than the ones scored")
    out = embed(classifier, clips, amp=amp, progress=progress)
    fit_emb = embed(classifier, fit_clips, amp=amp).emb if scorer.needs_fit else None
    return score_outputs(scorer, out, classes, fit_emb, fit_classes)
