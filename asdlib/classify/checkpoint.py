"""Checkpoints: atomic save, safe load, and rebuilding a model from the config stored inside.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that it loads
with ``torch.load(weights_only=True)``: opening a checkpoint never runs pickled code. That is
why the NumPy RNG state is stored as a tensor and the configs as ``asdict`` dicts.

Keys written by :func:`asdlib.classify.train.fit`:
``version, model, optimizer, scheduler, rng, epoch, config, class_names, feature_config,
data, n_clips, history, val_index, best`` (``data``: what the features came from, synthetic or real
and the clips' lengths per type, see :attr:`asdlib.features.cache.FeatureStore.data_info`). Only ``model``, ``config`` and ``class_names`` are needed to
rebuild a model (:func:`load_model`).
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..core.errors import CacheError
from ..core.utils import atomic_save_torch
from .config import TrainConfig, build_model

CHECKPOINT_VERSION = 1


def class_name(machine_type: str, machine_id: str) -> str:
    """The string a class is stored under in a checkpoint: ``"fan/00"``."""
    return f"{machine_type}/{machine_id}"


def normalise_class_names(names: Iterable[Any]) -> list[str]:
    """Accept ``("fan", "00")`` pairs (as :func:`asdlib.core.machines.class_labels` gives) or strings."""
    out = []
    for n in names:
        out.append(class_name(*n) if isinstance(n, (tuple, list)) else str(n))
    return out


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` atomically: a kill in the middle leaves the previous file intact."""
    state = {"version": CHECKPOINT_VERSION, **state}
    atomic_save_torch(state, path)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict; :class:`CacheError` naming the path when missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as e:
        raise CacheError(f"checkpoint {path} cannot be read (damaged or not a checkpoint): {e}") from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CacheError(f"checkpoint {path} lacks the 'model'/'config' entries asdlib writes")
    return state


# ---------------------------------------------------------------- RNG state (weights_only-safe)

def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Python, NumPy, torch (CPU and CUDA) global RNG states plus any named generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None, source: object = "the checkpoint") -> None:
    """Inverse of :func:`rng_state`; restoring it makes a resumed run continue bit-identically.

    CUDA states are restored for the devices this machine has (a checkpoint from a machine with
    more GPUs resumes here). A named generator's state that does not fit the generator here (one
    saved on another device: older asdlib kept the loop's generator beside GPU-resident
    features) is a :class:`CacheError` naming ``source`` and the generator."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
    for k, g in (generators or {}).items():
        if k not in state["generators"]:
            continue
        saved, here = state["generators"][k].cpu(), g.get_state()
        if saved.dtype != here.dtype or saved.shape != here.shape:
            raise CacheError(
                f"{source}: the saved state of the '{k}' generator ({saved.numel()} bytes) is not that of a generator "
                f"on {g.device.type} ({here.numel()} bytes): it was written by a version of asdlib that kept the "
                "generator on the GPU beside the features, and cannot continue the same random draws here; resume "
                "it with that version, or train again into a new folder (or without resume)")
        g.set_state(saved)


# ---------------------------------------------------------------- model rebuilding

def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model a checkpoint was trained with, in eval mode on ``device``.

    Returns ``(model, cfg, meta)``: ``cfg`` a :class:`asdlib.classify.train.TrainConfig`, ``meta`` the
    rest of the checkpoint that a scorer needs (class_names, feature_config, epoch, ...),
    without the optimizer and model tensors.
    """
    state = load_checkpoint(path, map_location="cpu")
    cfg = TrainConfig.from_dict(state["config"])
    class_names = list(state.get("class_names") or [])
    if not class_names:
        raise CacheError(f"checkpoint {path} has no class_names; cannot rebuild its classifier")
    model = build_model(cfg, num_classes=len(class_names))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CacheError(f"checkpoint {path} does not match the model its config describes: {e}") from e
    if cfg.input_norm == "per_mel" and not getattr(getattr(model, "input_norm", None), "per_mel", False):
        raise CacheError(f"checkpoint {path} was trained with input_norm='per_mel' but holds no per-mel statistics")
    model.to(device).eval()
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    meta["class_names"] = class_names
    meta["path"] = str(path)
    return model, cfg, meta
