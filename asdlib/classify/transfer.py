"""Transfer learning (study E5): keep an integrated model's backbone, re-train its classifier per type."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..core.errors import ConfigError
from ..core.utils import set_seed
from .checkpoint import load_model, normalise_class_names
from .evaluate import EvalSet
from .train import TrainResult, fit


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
) -> TrainResult:
    """Transfer learning (E5): keep an integrated model's backbone, train only its classifier.

    ``init='reset'`` (default, the study's choice) re-initialises the classifier for
    ``class_names`` (one type's IDs); ``init='rows'`` starts from the integrated classifier's
    rows of those IDs, which begins at the integrated model's decision rule and only has to
    sharpen it. The backbone is frozen (``requires_grad=False``, eval-mode batch norm).
    ``cfg_overrides`` (dotted, as :meth:`TrainConfig.replace`) default to ``epochs=T_0`` (one cosine cycle: a linear layer converges fast).
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
               model=model, trainable=lambda m: list(m.get_classifier().parameters()))

