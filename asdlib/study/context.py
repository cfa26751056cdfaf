"""The context every notebook opens: data, feature cache, profile, and where results go.

A notebook's first code cell is ``study = Study.open(**parameters)``. Everything it makes
is written through the study (tables, figures, tidy results), which labels synthetic-data
results as such and writes the provenance beside them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import ConfigError
from ..core.utils import atomic_write_text, display_path, repo_root, resolve_device
from .captions import REAL_CAPTION, SUBSET_NOTE, SYNTHETIC_CAPTION
from .profiles import StudyProfile, get_profile
from .run_config import ReproduceConfig, prepare_data


@dataclass
class Study:
    data_root: Path
    synthetic: bool
    profile: StudyProfile
    device: str
    seed: int
    results_dir: Path
    work_dir: Path
    progress: bool = True
    n_seeds: int = 1

    @classmethod
    def open(cls, data_root: str | None = None, synthetic: bool | None = None, profile: str = "smoke",
             device: str = "auto", seed: int = 0, results_dir: str | None = None, work_dir: str | None = None,
             progress: bool = True, seeds: int | None = None) -> Study:
        """Open (and, without ``data_root``, generate) the data of a study run.

        ``seeds``: how many seeds every experiment runs for (``seed``, ``seed + 1``, ...);
        None: the profile's ``n_seeds``.
        """
        prof = get_profile(profile)
        cfg = ReproduceConfig(data_root=data_root, profile=prof.name, device=device, seed=seed,
                              results_dir=results_dir or str(repo_root() / "results"), work_dir=work_dir)
        if prof.needs_data_root and data_root is None:
            raise ConfigError(f"profile {prof.name!r} runs on real recordings: give data_root (--data-root), e.g. the "
                              "subset of `asdlib download --subset small --root data/dcase2020-subset`")
        root, is_synth = prepare_data(cfg, progress=progress)
        results = Path(cfg.results_dir)
        for sub in ("tables", "figures", "tidy"):
            (results / sub).mkdir(parents=True, exist_ok=True)
        return cls(data_root=Path(root), synthetic=is_synth if synthetic is None else bool(synthetic), profile=prof,
                   device=resolve_device(device), seed=seed, results_dir=results, work_dir=Path(cfg.work_dir),
                   progress=progress, n_seeds=prof.n_seeds if seeds is None else int(seeds))

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seeds of every experiment (the data stay the same)."""
        if self.n_seeds < 1:
            raise ConfigError(f"need at least one seed, got {self.n_seeds}")
        return tuple(range(self.seed, self.seed + self.n_seeds))

    # ---- data -------------------------------------------------------------------------
    @cached_property
    def index(self) -> pd.DataFrame:
        from ..data.index import index_dataset

        return index_dataset(self.data_root)

    @property
    def feature_config(self):
        """The log-mel settings: the library's defaults with the profile's ``features`` overrides
        (``duration_s`` None: the data's known clip length, resolved when the cache is built)."""
        from ..features.logmel import FeatureConfig

        try:
            return FeatureConfig(**self.profile.features)
        except TypeError as e:
            raise ConfigError(f"profile {self.profile.name!r}: bad features overrides {self.profile.features}: {e}") from None

    @cached_property
    def features(self):
        """The log-mel feature cache (built once per data and settings, then reused)."""
        from ..features.cache import build_feature_cache

        return build_feature_cache(self.index, self.feature_config, cache_dir=self.work_dir / "features",
                                   device=self.device, batch_size=self.profile.feature_batch_size,
                                   progress=self.progress)

    # ---- labelling ------------------------------------------------------------------------
    @property
    def caption(self) -> str:
        if self.synthetic:
            note = "small networks" if self.profile.name != "full" else "the study's network sizes"
            return SYNTHETIC_CAPTION.format(profile=self.profile.name, model_note=note)
        subset = (self.data_root / "subset_manifest.json").exists()
        return REAL_CAPTION.format(subset=" (a subset read out of the Zenodo archives)" if subset else "",
                                   root=display_path(self.data_root), counts=self.clip_counts_text, profile=self.profile.name,
                                   seeds=self.seeds_text, size_note=SUBSET_NOTE if subset else "")

    @property
    def seeds_text(self) -> str:
        return f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''} ({', '.join(map(str, self.seeds))})"

    @cached_property
    def clip_counts_text(self) -> str:
        """Clips per ID in words (the median over IDs of each split and label): what every caption states."""
        idx = self.index
        parts = []
        for (part, label), name in {("train", 0): "training clips", ("test", 0): "normal test clips",
                                    ("test", 1): "anomalous test clips"}.items():
            per_id = idx[(idx["part"] == part) & (idx["label"] == label)].groupby(["machine_type", "machine_id"]).size()
            if len(per_id):
                lo, hi = int(per_id.min()), int(per_id.max())
                parts.append(f"{lo if lo == hi else f'{lo}-{hi}'} {name}")
        return "per ID: " + ", ".join(parts) if parts else "no clips"

    @property
    def data_label(self) -> str:
        if self.synthetic:
            return f"synthetic ({self.profile.name})"
        return "real DCASE2020 subset" if (self.data_root / "subset_manifest.json").exists() else "real DCASE2020"

    # ---- outputs ---------------------------------------------------------------------------
    def save_table(self, table: pd.DataFrame, name: str, title: str) -> Path:
        from ..report.tables import write_table

        md, _ = write_table(table, self.results_dir / "tables", name, caption=f"{title}. {self.caption}")
        return md

    def save_figure(self, fig, name: str) -> Path:
        path = self.results_dir / "figures" / f"{name}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        if self.synthetic:
            fig.text(0.99, 0.005, "synthetic data", ha="right", va="bottom", fontsize=7, color="0.4")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        tmp.replace(path)
        return path

    def save_tidy(self, tidy: pd.DataFrame, name: str) -> Path:
        """Write one notebook's tidy results (one row per experiment, dataset, type, ID, metric, seed)."""
        path = self.results_dir / "tidy" / f"{name}.csv"
        tidy = tidy.assign(data=self.data_label, profile=self.profile.name)
        atomic_write_text(path, tidy.to_csv(index=False))
        return path

    def load_tidy(self, names: list[str] | None = None) -> pd.DataFrame:
        files = sorted((self.results_dir / "tidy").glob("*.csv"))
        if names is not None:
            files = [f for f in files if f.stem in names]
        return pd.concat([pd.read_csv(f, dtype={"machine_id": str}) for f in files], ignore_index=True)

    def save_json(self, obj: Any, name: str) -> Path:
        path = self.results_dir / "tables" / f"{name}.json"
        atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
        return path

    def save_scores(self, scores: pd.DataFrame, name: str) -> Path:
        """Per-clip anomaly scores of one experiment (for bootstrap intervals and re-analysis)."""
        path = self.results_dir / "scores" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, scores.to_csv(index=False))
        return path

    def load_scores(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.results_dir / "scores" / f"{name}.csv", dtype={"machine_id": str})

