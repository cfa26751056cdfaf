"""The study: what the notebooks call (data and cache context, experiment registry and runners, profiles, the papermill pipeline, plots)."""
from __future__ import annotations

from typing import Any, Mapping

from .context import Study

# The names of every notebook's parameters cell (papermill overrides them).
PARAMETERS = ("data_root", "synthetic", "profile", "device", "seed", "seeds", "results_dir", "work_dir")


def open_study(parameters: Mapping[str, Any], show: bool = True) -> Study:
    """Open the study a notebook runs on from its parameters cell: ``study = open_study(globals())``.

    Reads exactly :data:`PARAMETERS` from ``parameters`` (a missing one is an error naming it)
    and prints the data root, what data it is, the device and the caption.
    """
    missing = [p for p in PARAMETERS if p not in parameters]
    if missing:
        raise KeyError(f"the parameters cell lacks {', '.join(missing)}; a notebook defines all of {PARAMETERS}")
    study = Study.open(**{p: parameters[p] for p in PARAMETERS})
    if show:
        from ..core.utils import display_path

        print(display_path(study.data_root), "|", study.data_label, "|", study.device, "|", study.seeds_text)
        print(study.caption)
    return study


__all__ = ["PARAMETERS", "Study", "open_study"]
