"""The DCASE2020 Task 2 baseline autoencoder, rebuilt in PyTorch from its published design.

Design (Koizumi et al., DCASE2020 Task 2 baseline, Keras): input = 5 consecutive log-mel
frames of 128 bins concatenated (640 values); Dense 640-128-128-128-128-8-128-128-128-128-640;
every hidden Dense (the 8-unit bottleneck included) is followed by BatchNormalization and
ReLU; the output Dense is linear; MSE loss, Adam with Keras defaults (lr 1e-3, beta 0.9 /
0.999, eps 1e-7), 100 epochs, batch 512, shuffle, validation_split 0.1. The anomaly score of
a clip is the mean squared reconstruction error over all its frame vectors.

Keras conventions kept so the model behaves like the baseline, not only looks like it:
Glorot-uniform weights and zero biases; BatchNorm eps 1e-3 and moving-average momentum
0.99 (PyTorch's ``momentum`` is the complement, 0.01).

Parameter count: Keras reports 269,992 "total params" for the baseline, of which 267,928
are trainable and 2,064 are BatchNorm moving means/variances (buffers here);
:func:`baseline_param_count` derives the figure from the layer sizes.

Features: the baseline computes ``librosa.feature.melspectrogram(n_fft=1024, hop=512,
n_mels=128, power=2)`` and ``10*log10(mel + eps)`` with centred frames (313 per 10 s clip,
so 309 vectors), dropping no frames. The default :class:`asdlib.features.logmel.FeatureConfig`
of the cache reproduces that (Slaney mel scale and norm, centre with reflect padding as
librosa < 0.10, the same eps floor, no top_db), so the vectors are the baseline's, with two
exceptions: the cache stores float16 (steps of 0.03-0.06 dB for magnitudes of 32-128 dB, far below the
noise of a log-mel bin), and all clips of one cache share one length, so ToyCar's 11-s
clips keep their first 10 s (309 vectors instead of the baseline's 340).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AutoencoderConfig:
    n_mels: int = 128
    n_frames: int = 5
    hidden: int = 128
    bottleneck: int = 8
    n_hidden: int = 4  # hidden layers on each side of the bottleneck
    bn_eps: float = 1e-3  # Keras BatchNormalization default
    bn_momentum: float = 0.01  # = 1 - Keras momentum 0.99

    @property
    def input_dim(self) -> int:
        return self.n_mels * self.n_frames

    def layer_sizes(self) -> list[int]:
        """Widths from input to output, e.g. [640, 128, 128, 128, 128, 8, 128, ..., 640]."""
        side = [self.hidden] * self.n_hidden
        return [self.input_dim, *side, self.bottleneck, *side, self.input_dim]


def baseline_param_count(cfg: AutoencoderConfig | None = None) -> dict[str, int]:
    """Parameter counts by formula: Dense ``i*o + o`` per layer, BatchNorm ``2*o`` trainable
    (gamma, beta) plus ``2*o`` moving statistics for every hidden layer (Keras counts those
    as non-trainable params)."""
    sizes = (cfg or AutoencoderConfig()).layer_sizes()
    dense = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    hidden_units = sum(sizes[1:-1])
    return {"dense": dense, "bn_trainable": 2 * hidden_units, "bn_moving": 2 * hidden_units,
            "trainable": dense + 2 * hidden_units, "total_keras": dense + 4 * hidden_units}


class DenseAutoencoder(nn.Module):
    """Frame-vector autoencoder ``(B, M*n) -> (B, M*n)``; see the module docstring."""

    def __init__(self, cfg: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or AutoencoderConfig()
        sizes = cfg.layer_sizes()
        layers: list[nn.Module] = []
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(i, o))
            if k < len(sizes) - 2:  # every layer but the output one
                layers += [nn.BatchNorm1d(o, eps=cfg.bn_eps, momentum=cfg.bn_momentum), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if isinstance(mod, nn.Linear):  # Keras Dense defaults
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)

    @property
    def n_frames(self) -> int:
        return self.cfg.n_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, M*n)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error over batch and dimensions, as Keras ``loss='mean_squared_error'``."""
        return torch.mean((self(x) - x) ** 2)
