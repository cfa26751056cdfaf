"""Transfer learning (study E5): keep an integrated model's backbone, re-train its classifier per type."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.utils import set_seed
from .checkpoint import load_checkpoint, load_model, normalise_class_names
from .evaluate import EvalSet
from .train import TrainResult, fit


def inherited_val_index(checkpoint: str | Path, parent_rows, rows) -> np.ndarray:
    """Positions in ``rows`` of the clips that ``checkpoint``'s run held out (its ``val_index``).

    ``parent_rows``: the rows (of a feature cache, say) the run was trained on, in the order its
    feature array had them; ``rows``: the rows of the fine-tuning run. Fine-tuning on one type's
    clips, the held-out clips must be the integrated run's held-out clips of that type: the
    others trained the backbone, so a loss on them would not be held out.
    """
    state = load_checkpoint(checkpoint)
    val = state["val_index"].cpu().numpy().astype(np.int64)
    parent_rows = np.asarray(parent_rows, dtype=np.int64)
    n = state.get("n_clips")
    if (n is not None and int(n) != len(parent_rows)) or (len(val) and val.max() >= len(parent_rows)):
        raise ConfigError(f"{checkpoint} was trained on {n if n is not None else 'other'} clips, not on the "
                          f"{len(parent_rows)} given as its training rows: its held-out clips cannot be found")
    return np.flatnonzero(np.isin(np.asarray(rows, dtype=np.int64), parent_rows[val]))


def finetune_classifier(
    checkpoint: str | Path,
    features,
    labels,
    class_names: Sequence,
    out_dir: str | Path,
    cfg_overrides: dict | None = None,
    init: str = "reset",
    eval_sets: dict[str, EvalSet] | None = None,
    progress: bool = True,
    resume: bool = True,
    val_index=None,
) -> TrainResult:
    """Transfer learning (E5): keep an integrated model's backbone, train only its classifier.

    ``init='reset'`` (default, the study's choice) re-initialises the classifier for
    ``class_names`` (one type's IDs); ``init='rows'`` starts from the integrated classifier's
    rows of those IDs, which begins at the integrated model's decision rule and only has to
    sharpen it. The backbone is frozen (``requires_grad=False``, eval-mode batch norm).
    ``cfg_overrides`` (dotted, as :meth:`TrainConfig.replace`) default to ``epochs=T_0`` (one cosine cycle: a linear layer converges fast).
    ``val_index``: the clips (positions in ``features``) held out for ``val_loss`` and threshold
    calibration; pass the integrated run's held-out clips of these IDs (:func:`inherited_val_index`),
    since a fresh split would hold out clips the backbone was trained on.
    """
    model, cfg, meta = load_model(checkpoint, device="cpu")
    cfg = cfg.replace({"epochs": int(cfg.schedule.T_0), **(cfg_overrides or {})})
    names = normalise_class_names(class_names)
    old_names = meta["class_names"]
    old_state = {k: v.clone() for k, v in model.get_classifier().state_dict().items()}
    set_seed(cfg.seed)  # the fresh classifier's initialisation is part of the run
    model.reset_classifier(len(names))
    if init == "rows":
        missing = [n for n in names if n not in old_names]
        if missing:
            raise ConfigError(f"init='rows': classes {missing} are not in {checkpoint}")
        rows = torch.tensor([old_names.index(n) for n in names])
        new_state = model.get_classifier().state_dict()
        for k, v in old_state.items():
            if k in new_state and v.ndim >= 1 and v.shape[0] == len(old_names):
                new_state[k] = v[rows].clone()  # (C_type, ...) rows of the type's IDs
        model.get_classifier().load_state_dict(new_state)
    elif init != "reset":
        raise ConfigError(f"init must be 'reset' or 'rows', got {init!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.get_classifier().parameters():
        p.requires_grad_(True)
    return fit(features, labels, cfg, out_dir, eval_sets=eval_sets, class_names=names,
               feature_config=meta.get("feature_config"), data_info=meta.get("data"), progress=progress, resume=resume,
               model=model, trainable=lambda m: list(m.get_classifier().parameters()), val_index=val_index)

