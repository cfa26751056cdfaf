"""What one run of the study is: its settings (:class:`ReproduceConfig`), its notebooks, and its data.

Below both :mod:`asdlib.study.pipeline` (which runs the notebooks) and :mod:`asdlib.study.context`
(which every notebook opens), so that neither imports the other for them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError
from ..core.utils import repo_root

NOTEBOOKS: tuple[str, ...] = (
    "01_data_exploration",
    "02_feature_extraction",
    "03_individual_vs_integrated",
    "04_loss_ablation",
    "05_transfer_learning",
    "06_tsne",
    "07_anomaly_scores",
    "08_reconstruction",
    "09_summary",
    "10_later_editions",
)


@dataclass
class ReproduceConfig:
    """Settings of one re-run; every notebook receives them as papermill parameters."""

    data_root: str | None = None  # None: the data source below decides
    profile: str = "smoke"  # ci | smoke | real | full (asdlib.study.profiles)
    device: str = "auto"
    seed: int = 0
    seeds: int | None = None  # seeds per experiment; None: the profile's n_seeds
    results_dir: str = field(default_factory=lambda: str(repo_root() / "results"))
    work_dir: str | None = None  # caches, checkpoints, synthetic data; default runs/<profile>
    notebooks_dir: str = field(default_factory=lambda: str(repo_root() / "notebooks"))
    notebooks: tuple[str, ...] = NOTEBOOKS
    force: bool = False
    devices: tuple[str, ...] = ()  # train the notebooks' models beforehand, one worker per entry (study.parallel)
    data_note: str = ""  # why this data (asdlib.study.source), written to run_info.json and results/README.md
    # notebook 10's data: a DCASE2023 root (the real dev subset, or --edition-root), or None: the synthetic edition
    edition_root: str | None = None
    edition_note: str = ""  # why that (asdlib.study.source), written beside data_note

    def __post_init__(self) -> None:
        if self.work_dir is None:
            self.work_dir = str(repo_root() / "runs" / self.profile)
        unknown = [n for n in self.notebooks if n not in NOTEBOOKS]
        if unknown:
            raise ConfigError(f"unknown notebook(s) {unknown}; known: {', '.join(NOTEBOOKS)}")


def prepare_data(cfg: ReproduceConfig, progress: bool = True) -> tuple[str, bool]:
    """The data root to use and whether it is synthetic (generating the embedded default if needed)."""
    if cfg.data_root is not None:
        root = Path(cfg.data_root).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"--data-root {root} is not a folder; give the folder holding dev_data/ and eval_data/")
        return str(root), (root / "SYNTHETIC.md").exists()
    from ..data.synth import generate_dataset
    from .profiles import get_profile, synth_profile

    root = Path(cfg.work_dir) / "synthetic_data"
    # every clip has its own random stream, so the files are byte-identical whatever the number of processes
    generate_dataset(root, profile=synth_profile(get_profile(cfg.profile)), seed=cfg.seed, progress=progress,
                     workers=usable_cores())
    return str(root), True


EDITION_NOTEBOOK = "10_later_editions"  # the one notebook that gets edition_root
# parameters a notebook has beyond the study's (asdlib.study.PARAMETERS)
EXTRA_PARAMETERS: dict[str, tuple[str, ...]] = {EDITION_NOTEBOOK: ("edition", "edition_root")}


def notebook_parameters(cfg: ReproduceConfig, name: str, params: dict) -> dict:
    """The papermill parameters of notebook ``name``: the shared ones, and ``edition_root`` for
    notebook 10 only (so that the edition's data never invalidates notebooks 01-09)."""
    if name != EDITION_NOTEBOOK:
        return params
    root = None
    if cfg.edition_root is not None:
        root = Path(cfg.edition_root).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"--edition-root {root} is not a folder; give the folder holding dev_data/")
    return params | {"edition_root": None if root is None else str(root)}


def usable_cores(cap: int = 8) -> int:
    """The CPU cores this process may run on (its affinity, where the OS tells it), at most ``cap``."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(cap, n))
