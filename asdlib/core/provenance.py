"""What a result was made with: package versions, device, git revision, settings.

Written beside every result file (minGPT's config.json / timm's args.yaml habit), so that
every number in ``results/`` can be traced to the code and machine that produced it.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .utils import atomic_write_text, repo_root

_PACKAGES = ("asdlib", "torch", "torchaudio", "numpy", "scipy", "pandas", "scikit-learn", "soundfile",
             "openTSNE", "matplotlib", "papermill")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(root: Path | None = None) -> dict[str, Any]:
    """Commit hash and whether the code had uncommitted changes (None outside git).

    ``results/`` is left out of the check: a run rewrites the committed results, and that
    must not make the code that produced them look modified.
    """
    root = root or repo_root()
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if rev.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def device_info(device: str | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "requested": device,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(config: dict[str, Any] | None = None, device: str | None = None) -> dict[str, Any]:
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "device": device_info(device),
        "git": git_revision(),
        "config": config or {},
    }


def write_provenance(path: str | os.PathLike, config: dict[str, Any] | None = None, device: str | None = None,
                     **extra: Any) -> dict[str, Any]:
    record = provenance(config, device) | extra
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return record
