"""A WaveNet-style next-frame predictor on log-mel frames (the study's planned Method 2).

Why frames and not samples: the study names WaveNet, which was made for raw audio, but a
16 kHz, 10-s clip is 160,000 samples; a sample-level model would need a receptive field of
thousands of samples to see even one machine cycle, and the cues that tell IDs and
anomalies apart are spectral (tonal lines, broadband bursts) rather than waveform detail.
Working on the 128-bin log-mel frames (hop 512, 32 ms) gives a receptive field of seconds
with a few layers, and reuses the feature cache that Method 1 and the autoencoder read.

Model: the 128 mel bins are the input channels of 1-D convolutions over time. A 1x1 input
convolution, then ``n_stacks`` x ``dilations`` residual blocks, each a dilated *causal*
convolution (left padding only) with a gated activation ``tanh(a) * sigmoid(b)``, a 1x1
residual and a 1x1 skip output; the summed skips pass ReLU-1x1-ReLU-1x1 to 128 outputs.
Output ``t`` predicts frame ``t + 1`` from frames ``<= t``; the anomaly score is the mean
squared prediction error over the clip, in the normalised space (per-bin mean/std fitted on
the training clips and stored as buffers, so every bin counts alike).

Optional global conditioning on the machine ID (as WaveNet's speaker conditioning): a
learned embedding per ID is added to both halves of every gated unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError


@dataclass
class WaveNetConfig:
    n_mels: int = 128
    residual_channels: int = 64
    skip_channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    n_stacks: int = 1
    kernel_size: int = 2
    condition_on_id: bool = False
    num_ids: int = 0

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.condition_on_id and self.num_ids < 1:
            raise ConfigError("condition_on_id needs num_ids >= 1")
        if self.kernel_size < 2:
            raise ConfigError("kernel_size must be >= 2 for the model to see the past")

    @property
    def receptive_field(self) -> int:
        """Frames that one output sees: itself and ``(k-1) * sum(dilations)`` before it
        (defaults: 64 frames, 2.0 s at hop 512 / 16 kHz)."""
        return (self.kernel_size - 1) * sum(self.dilations) * self.n_stacks + 1


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only, so output ``t`` depends on inputs ``<= t``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))  # (B, C_out, T)


class GatedResidualBlock(nn.Module):
    """Dilated causal conv -> tanh x sigmoid gate -> 1x1 residual (added to the input) and
    1x1 skip; ``(B, R, T) -> ((B, R, T), (B, S, T))``."""

    def __init__(self, res: int, skip: int, kernel_size: int, dilation: int, cond_dim: int = 0,
                 last: bool = False) -> None:
        super().__init__()
        self.conv = CausalConv1d(res, 2 * res, kernel_size, dilation)
        # Global conditioning: one vector per clip, added to filter and gate alike.
        self.cond = nn.Linear(cond_dim, 2 * res, bias=False) if cond_dim else None
        # The last block's residual output would feed nothing: only its skip is used.
        self.res_out = None if last else nn.Conv1d(res, res, 1)
        self.skip_out = nn.Conv1d(res, skip, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x)  # (B, 2R, T)
        if self.cond is not None and g is not None:
            h = h + self.cond(g).unsqueeze(-1)  # (B, 2R, 1) broadcast over time
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)  # (B, R, T)
        res = x if self.res_out is None else x + self.res_out(z)
        return res, self.skip_out(z)


class WaveNetPredictor(nn.Module):
    """Next-frame predictor ``(B, M, T) -> (B, M, T)`` on *raw* log-mel input; see module doc."""

    def __init__(self, cfg: WaveNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or WaveNetConfig()
        r, s = cfg.residual_channels, cfg.skip_channels
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))
        self.id_embedding = nn.Embedding(cfg.num_ids, r) if cfg.condition_on_id else None
        self.input_conv = nn.Conv1d(cfg.n_mels, r, 1)
        dils = [d for _ in range(cfg.n_stacks) for d in cfg.dilations]
        self.blocks = nn.ModuleList(
            GatedResidualBlock(r, s, cfg.kernel_size, d, r if cfg.condition_on_id else 0, last=k == len(dils) - 1)
            for k, d in enumerate(dils))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(), nn.Conv1d(s, cfg.n_mels, 1))

    @property
    def receptive_field(self) -> int:
        return self.cfg.receptive_field

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.mel_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mel_mean[:, None]) / self.mel_std[:, None]  # (B, M, T)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions in the normalised space: output ``[..., t]`` estimates normalised
        frame ``t + 1``."""
        if self.id_embedding is not None and ids is None:
            raise ConfigError("this WaveNet is conditioned on the machine ID: pass ids")
        g = self.id_embedding(ids) if self.id_embedding is not None else None  # (B, R)
        h = self.input_conv(self.normalise(x))  # (B, R, T)
        skips = 0
        for block in self.blocks:
            h, sk = block(h, g)
            skips = skips + sk  # (B, S, T)
        return self.head(skips)  # (B, M, T)

    def frame_errors(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Squared prediction error per bin and predicted frame, ``(B, M, T-1)``."""
        pred = self(x, ids)[..., :-1]  # predictions of frames 1..T-1
        return (pred - self.normalise(x)[..., 1:]) ** 2

    def loss(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.frame_errors(x, ids).mean()
