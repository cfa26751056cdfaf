"""One inference path: logits and embeddings of a classifier over clips, whole or in sliding windows.

A model trained on random crops of ``crop_frames`` frames scores a longer clip by cutting it
into windows of ``crop_frames`` frames with a hop of half a window (the last window aligned
to the clip's end, so every frame is seen) and averaging the windows' *logits* and
*embeddings*. Averaging logits rather than probabilities keeps one confident window from
dominating and equals, after the softmax, a normalised geometric mean of the windows'
probabilities.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


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

    ``features`` may be a NumPy array / memmap (float16 is fine) or a tensor; batches are
    moved to ``device`` one at a time, so a cache larger than device memory works.
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
        all_logits.append(logits.float().reshape(b, len(starts), -1).mean(1).cpu())  # (B, C)
        all_emb.append(emb.float().reshape(b, len(starts), -1).mean(1).cpu())  # (B, D)
    return torch.cat(all_logits).numpy(), torch.cat(all_emb).numpy()
