"""Small shared helpers: atomic writes, seeding, repository root."""
from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    A crash or kill in the middle leaves ``path`` as it was (or absent), never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_save_torch(obj, path: str | os.PathLike) -> None:
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic algorithms."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def repo_root() -> Path:
    """The repository this package was installed from (editable install) or the CWD."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def display_path(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> str | None:
    """A path as it may be written into ``results/``: never the absolute path of the machine that ran it.

    Inside the repository (``root``, default :func:`repo_root`): relative to it, POSIX style
    (``runs/smoke/synthetic_data``); elsewhere: the folder's or file's own name, which names
    the data (``dcase2020-mini``, ``toycar_dev.npz``). A relative path is kept as given; None stays None.
    """
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_absolute():
        return p.as_posix()
    p = p.resolve()
    base = Path(root if root is not None else repo_root()).resolve()
    try:
        rel = p.relative_to(base).as_posix()
    except ValueError:
        return p.name or p.as_posix()
    return rel or "."


def scrub_paths(text: str, paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """``text`` with each absolute path of ``paths`` (and the repository root) written as :func:`display_path` does.

    For outputs that quote paths verbatim (an executed notebook's parameters and metadata):
    longer paths first, so a data root inside the repository is replaced whole.
    """
    base = Path(root if root is not None else repo_root()).resolve()
    known = {str(Path(p).expanduser().resolve()) for p in paths if p is not None and Path(p).expanduser().is_absolute()}
    known.add(str(base))
    for p in sorted(known, key=len, reverse=True):
        shown = display_path(p, base)
        text = re.sub(re.escape(p) + r"(/|(?![\w.-]))",
                      lambda m, shown=shown: ("" if shown == "." else shown + "/") if m.group(1) else shown, text)
    return text


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device; use --device cpu or auto")
    return device
