"""Reconstruction-based anomaly detection (the study's Method 2).

- :mod:`.frames`: stacking of consecutive log-mel frames and memory-bounded readers over the
  feature cache (a float16 memmap).
- :mod:`.autoencoder`: the DCASE2020 baseline dense autoencoder.
- :mod:`.wavenet`: a WaveNet-style next-frame predictor on log-mel frames.
- :mod:`.train`: fit/score loops for both, and per-clip error maps for pictures.
- :mod:`.mahalanobis`: the DCASE2023+ baseline's scores (MSE and selective Mahalanobis of
  the reconstruction errors against source and target training statistics).
"""
from .autoencoder import AutoencoderConfig, DenseAutoencoder, baseline_param_count
from .frames import ClipBatches, FrameVectorStream, mel_stats, stack_frames
from .mahalanobis import (
                    SelectiveMahalanobis,
                    error_covariance,
                    fit_dcase2023_baseline,
                    fit_selective_mahalanobis,
                    mahalanobis_sq,
                    score_dcase2023,
)
from .train import (
                    ReconConfig,
                    fit_autoencoder,
                    fit_wavenet,
                    load_recon_model,
                    reconstruction_map,
                    score_autoencoder,
                    score_wavenet,
                    split_rows,
)
from .wavenet import WaveNetConfig, WaveNetPredictor

__all__ = [
    "AutoencoderConfig", "DenseAutoencoder", "baseline_param_count",
    "ClipBatches", "FrameVectorStream", "mel_stats", "stack_frames",
    "ReconConfig", "fit_autoencoder", "fit_wavenet", "load_recon_model", "reconstruction_map",
    "score_autoencoder", "score_wavenet", "split_rows",
    "WaveNetConfig", "WaveNetPredictor",
    "SelectiveMahalanobis", "error_covariance", "fit_dcase2023_baseline", "fit_selective_mahalanobis",
    "mahalanobis_sq", "score_dcase2023",
]
