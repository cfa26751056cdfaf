"""A feature cache: log-mel features computed once per (set of files, feature settings), reused after.

Every later step (training, scoring, t-SNE, the reconstruction baseline) reads the same
float16 array instead of decoding ~30k WAVs again. A cache lives in ``<cache_dir>/<key>/``:

- ``features.f16``: raw float16, C order, shape (N, n_mels, T), read back with ``np.memmap``;
- ``index.csv``: the clip table, row i describing ``features[i]`` (rows sorted by ``relpath``,
  so the same files give the same cache whatever order the caller's index was in);
- ``meta.json``: resolved config, feature version, shape, dtype, key, creation time, versions, build speed.

``key`` = hash of the feature code's version (:data:`asdlib.features.logmel.FEATURE_VERSION`),
the :class:`FeatureConfig` and the sorted list of ``(relpath, size, mtime_ns)``: changing how
features are computed, a setting, or adding, removing or rewriting a file, gives a new key and
hence a rebuild; moving the data root does not (relpaths are relative).
Crash safety: a build writes into a hidden temporary folder beside the target, writes
``meta.json`` last, and renames the folder into place. A folder without a valid
``meta.json`` (whose shape agrees with the file sizes) is never treated as complete.
float16 is safe for dB values: the range is about [-157, +100] dB, far inside float16's
+-65504, with a resolution of 1/16 dB at most (values of magnitude 64..128).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..core.errors import AudioError, CacheError, ConfigError
from ..core.utils import atomic_write_text
from ..data.audio import wav_info
from . import logmel
from .logmel import FeatureConfig, compute_features, num_frames

__all__ = ["FeatureStore", "build_feature_cache", "load_feature_cache", "cache_key", "default_cache_dir",
           "resolve_duration"]

FORMAT = "asdlib-feature-cache"
FORMAT_VERSION = 1
FEATURES_FILE, INDEX_FILE, META_FILE = "features.f16", "index.csv", "meta.json"


def default_cache_dir() -> Path:
    """``$ASDLIB_CACHE_DIR`` if set, else ``~/.cache/asdlib/features``."""
    env = os.environ.get("ASDLIB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asdlib" / "features"


class FeatureStore:
    """A complete cache on disk: ``features`` (read-only float16 memmap) aligned with ``index``."""

    def __init__(self, path: Path, meta: dict[str, Any], index: pd.DataFrame, reused: bool) -> None:
        self.path = path
        self.meta = meta
        self.key: str = meta["key"]
        self.config = FeatureConfig.from_dict(meta["config"])
        self.index = index
        self.reused = reused  # True when found on disk, False when this call built it
        self.features = np.memmap(path / FEATURES_FILE, dtype=np.float16, mode="r", shape=tuple(meta["shape"]))

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the array (a memmap would be pickled as a full in-memory copy);
        DataLoader workers started with 'spawn' then reopen the file instead."""
        state = self.__dict__.copy()
        del state["features"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.features = np.memmap(self.path / FEATURES_FILE, dtype=np.float16, mode="r", shape=tuple(self.meta["shape"]))

    @property
    def data_info(self) -> dict[str, Any]:
        """What the features were computed from (synthetic or real, clip lengths per type, feature
        version); stored in every checkpoint trained on them, read by ``asdlib score``."""
        info = dict(self.meta.get("data") or {})
        info.setdefault("feature_version", self.meta.get("feature_version"))
        info["clip_length"] = self.meta.get("clip_length")
        return info

    @property
    def feature_version(self) -> int | None:
        """The :data:`~asdlib.features.logmel.FEATURE_VERSION` the features were computed with."""
        return self.meta.get("feature_version")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape)

    def __repr__(self) -> str:
        return f"FeatureStore(path={str(self.path)!r}, shape={self.shape}, key={self.key!r})"

    def subset(self, selection: str | np.ndarray | pd.Series | list) -> tuple[np.ndarray, pd.DataFrame]:
        """Features and index rows of a selection: a ``DataFrame.query`` string, a boolean mask or positions.

        A contiguous selection comes back as a read-only view of the memmap (no copy);
        anything else as an in-memory float16 copy. The index is renumbered from 0.
        """
        if isinstance(selection, str):
            pos = self.index.query(selection).index.to_numpy()  # index is a RangeIndex: labels == positions
        else:
            sel = np.asarray(selection)
            if sel.dtype == bool:
                if sel.shape != (len(self),):
                    raise ValueError(f"boolean mask has shape {sel.shape}, the store has {len(self)} rows")
                pos = np.flatnonzero(sel)
            else:
                pos = sel.astype(np.int64)
        rows = self.index.iloc[pos].reset_index(drop=True)
        if len(pos) and np.array_equal(pos, np.arange(pos[0], pos[0] + len(pos))):
            return self.features[pos[0] : pos[0] + len(pos)], rows
        return np.asarray(self.features[pos]), rows


def _file_stats(index: pd.DataFrame) -> list[tuple[str, int, int]]:
    out = []
    for path, rel in zip(index["path"], index["relpath"]):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise AudioError(f"{path}: file in the index not found; re-index the data root") from None
        out.append((str(rel), int(st.st_size), int(st.st_mtime_ns)))
    return sorted(out)


def resolve_duration(index: pd.DataFrame, cfg: FeatureConfig) -> tuple[FeatureConfig, str]:
    """``(cfg with duration_s set, where the length comes from)``.

    A length given in ``cfg`` is kept; ``duration_s=None`` becomes the known clip length of the
    data root the index comes from (:func:`asdlib.data.index.known_clip_seconds`: 10 s for the
    real data, a synthetic root's own length from its manifest), never the shortest clip found.
    """
    from ..core.machines import STANDARD_CLIP_SECONDS
    from ..data.index import index_roots, known_clip_seconds

    if cfg.duration_s is not None:
        return cfg, f"given explicitly ({cfg.duration_s:g} s)"
    roots = index_roots(index)
    if not roots:
        return (cfg.replace(duration_s=STANDARD_CLIP_SECONDS),
                f"the DCASE2020 clip length ({STANDARD_CLIP_SECONDS:g} s; the index names no data root)")
    known = {root: known_clip_seconds(root) for root in roots}
    lengths = {seconds for seconds, _ in known.values()}
    if len(lengths) > 1:
        listed = ", ".join(f"{root}: {seconds:g} s" for root, (seconds, _) in known.items())
        raise ConfigError(f"the index mixes data roots of different clip lengths ({listed}); give the length "
                          "explicitly (FeatureConfig(duration_s=...), --duration)")
    seconds, source = next(iter(known.values()))
    return cfg.replace(duration_s=seconds), source


def cache_key(index: pd.DataFrame, cfg: FeatureConfig) -> str:
    """Hash of the feature code's version, the settings (the clip length resolved, see
    :func:`resolve_duration`) and every file's (relpath, size, mtime_ns)."""
    import hashlib

    cfg, _ = resolve_duration(index, cfg)
    h = hashlib.sha256(f"feature_version={logmel.FEATURE_VERSION}\n{cfg.key()}".encode())
    for rel, size, mtime in _file_stats(index):
        h.update(f"\n{rel}\t{size}\t{mtime}".encode())
    return h.hexdigest()[:20]


def _dtype_tag(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "str"


def _read_index(path: Path, dtypes: dict[str, str]) -> pd.DataFrame:
    """Read index.csv keeping IDs such as '00' as strings; restore numeric columns from meta."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col, tag in dtypes.items():
        if tag == "int":
            df[col] = df[col].astype("int64")
        elif tag == "float":
            df[col] = pd.to_numeric(df[col].where(df[col] != "", "nan"))  # to_csv writes NaN as ''

        elif tag == "bool":
            df[col] = df[col].map({"True": True, "False": False}).astype(bool)
    return df


def load_feature_cache(path: str | os.PathLike, *, _reused: bool = True) -> FeatureStore:
    """Open a complete cache folder; :class:`CacheError` (saying how to fix it) if it is not one."""
    path = Path(path)
    fix = f"delete {path} and build again (`asdlib features` or build_feature_cache)"
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise CacheError(f"{path}: not a complete feature cache (no {META_FILE}: the build was interrupted?); {fix}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise CacheError(f"{meta_path}: not an asdlib feature cache of format version {FORMAT_VERSION}; {fix}")
        shape = tuple(int(v) for v in meta["shape"])
        columns = dict(meta["index_columns"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CacheError(f"{meta_path}: damaged meta.json ({e}); {fix}") from None
    feat = path / FEATURES_FILE
    expected = int(np.prod(shape)) * 2
    if not feat.is_file() or feat.stat().st_size != expected:
        got = feat.stat().st_size if feat.is_file() else "missing"
        raise CacheError(f"{feat}: size {got}, expected {expected} bytes for shape {shape} float16; {fix}")
    if not (path / INDEX_FILE).is_file():
        raise CacheError(f"{path / INDEX_FILE}: missing; {fix}")
    index = _read_index(path / INDEX_FILE, columns)
    if len(index) != shape[0]:
        raise CacheError(f"{path / INDEX_FILE}: {len(index)} rows, but features hold {shape[0]} clips; {fix}")
    return FeatureStore(path, meta, index, reused=_reused)


def _check_files(paths: list[str], cfg: FeatureConfig, pool: ThreadPoolExecutor, source: str) -> list[int]:
    """Read every header (cheap): fail fast on bad files and on clips shorter than ``cfg.duration_s``
    (unless ``cfg.short_clips`` pads them), naming the files. Returns each clip's length in samples
    (at ``cfg.sample_rate``)."""
    problems: list[str] = []
    lengths: list[int] = []

    def check(p: str) -> tuple[int | None, str | None]:
        try:
            info = wav_info(p)
        except AudioError as e:
            return None, str(e)
        if info.sample_rate != cfg.sample_rate and not cfg.resample:
            return None, f"{p}: sample rate {info.sample_rate} Hz, expected {cfg.sample_rate} Hz (set resample=True in the FeatureConfig to resample)"
        if info.channels > 1 and cfg.channel is None:
            return None, f"{p}: {info.channels} channels; set channel=k or channel='mean' in the FeatureConfig"
        return int(np.ceil(info.frames * cfg.sample_rate / info.sample_rate)), None

    def check_all(part: list[str]) -> list[tuple[int | None, str | None]]:
        return [check(p) for p in part]

    # a few contiguous slices instead of a future per file (the future would cost more than the header read)
    k = min(8, len(paths))
    parts = [paths[i * len(paths) // k : (i + 1) * len(paths) // k] for i in range(k)]
    for n, err in (r for part in pool.map(check_all, parts) for r in part):
        if err is not None:
            problems.append(err)
        else:
            lengths.append(n)
    if problems:
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise AudioError(f"{len(problems)} unusable audio file(s):\n" + "\n".join(problems[:10]) + more)
    if cfg.short_clips == "error" and min(lengths) < cfg.num_samples:
        short = [(p, n) for p, n in zip(paths, lengths) if n < cfg.num_samples]
        listed = "\n".join(f"  {p}: {n / cfg.sample_rate:g} s" for p, n in short[:10])
        more = f"\n  ... and {len(short) - 10} more" if len(short) > 10 else ""
        raise AudioError(
            f"{len(short)} clip(s) shorter than the {cfg.duration_s:g} s every clip of this feature cache gets "
            f"({source}):\n{listed}{more}\nremove or replace them, allow padding explicitly (short_clips='wrap' "
            f"or 'zeros'; `--pad wrap`), or give a shorter length explicitly (duration_s; `--duration`)"
        )
    return lengths


def _remove_stale_temps(cache_dir: Path, key: str) -> None:
    """Remove temporary folders of this key left by builds whose process is gone (killed)."""
    for d in cache_dir.glob(f".tmp-{key}-*"):
        try:
            pid = int(d.name.split("-")[2])  # .tmp-<key>-<pid>-<ns>
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # alive, owned by someone else
            pass


def build_feature_cache(
    index: pd.DataFrame,
    cfg: FeatureConfig = FeatureConfig(),
    cache_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 2,
    progress: bool = True,
) -> FeatureStore:
    """Return the cache of ``index`` under ``cfg``: reused if complete on disk, else built now.

    ``store.reused`` says which case happened. The computation is
    :func:`asdlib.features.logmel.compute_features` (threaded reading, batched log-mel on
    ``device``; on CPU ``num_workers`` is the number of cores used), written into a float16
    memmap inside a temporary folder that is renamed into place when complete.

    Clip length: ``cfg.duration_s``, or with None the data root's known clip length
    (:func:`resolve_duration`); a shorter clip is an :class:`AudioError` naming it unless
    ``cfg.short_clips`` pads. ``meta.json`` records the length used (``config.duration_s``)
    and where it came from (``clip_length``).
    """
    from ..core.utils import resolve_device

    if len(index) == 0:
        raise CacheError("the index is empty: nothing to compute features for")
    missing = {"path", "relpath"} - set(index.columns)
    if missing:
        raise CacheError(f"the index lacks column(s) {sorted(missing)}; build it with asdlib.data.index.index_dataset")
    if index["relpath"].duplicated().any():
        dup = index.loc[index["relpath"].duplicated(), "relpath"].iloc[0]
        raise CacheError(f"the index lists {dup} more than once")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cfg, length_source = resolve_duration(index, cfg)
    key = cache_key(index, cfg)
    final = cache_dir / key
    if (final / META_FILE).is_file():
        try:
            store = load_feature_cache(final)
            store.index = _with_current_paths(store.index, index)
            return store
        except CacheError:
            pass  # damaged: rebuilt below and replaced
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(cache_dir, key)
    device = resolve_device(device)
    table = index.sort_values("relpath", kind="stable").reset_index(drop=True)
    paths = [str(p) for p in table["path"]]
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
            lengths = _check_files(paths, cfg, pool, length_source)
            shape = (len(paths), cfg.n_mels, num_frames(cfg))
            mm = np.memmap(tmp / FEATURES_FILE, dtype=np.float16, mode="w+", shape=shape)
        compute_features(paths, cfg, mm, device=device, batch_size=batch_size, num_workers=num_workers, progress=progress)
        mm.flush()
        del mm
        seconds = time.perf_counter() - t0
        table.to_csv(tmp / INDEX_FILE, index=False)
        meta = _meta(key, cfg, shape, table, device, seconds)
        meta["clip_length"] = {"seconds": cfg.duration_s, "source": length_source,
                               "short_clips": cfg.short_clips}
        meta["data"] = _data_record(index, table, lengths, cfg)
        atomic_write_text(tmp / META_FILE, json.dumps(meta, indent=2))  # last: marks the folder complete
        os.chmod(tmp / META_FILE, 0o644)  # mkstemp made it owner-only; caches may be shared
        if final.exists():
            shutil.rmtree(final)  # an incomplete or damaged earlier attempt
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store = load_feature_cache(final, _reused=False)
    store.index = _with_current_paths(store.index, index)
    return store


def _data_record(index: pd.DataFrame, table: pd.DataFrame, lengths: list[int], cfg: FeatureConfig) -> dict:
    """What the features were computed from, for whoever uses a model trained on them (``asdlib score``):
    synthetic or real data, and the clips' own lengths (seconds, min and max) per machine type."""
    from ..data.index import index_roots
    from ..data.synth import read_manifest

    manifests = [read_manifest(root) for root in index_roots(index)]
    synth = [m for m in manifests if m is not None]
    record: dict[str, Any] = {
        "synthetic": bool(synth),
        "synth_profile": sorted({str((m.get("profile") or {}).get("name")) for m in synth}) or None,
        "feature_version": logmel.FEATURE_VERSION,
    }
    if "machine_type" in table.columns:
        secs = pd.Series(np.asarray(lengths, dtype=np.float64) / cfg.sample_rate, index=table.index)
        by_type = secs.groupby(table["machine_type"]).agg(["min", "max"])
        record["clip_seconds"] = {str(t): [round(float(r["min"]), 4), round(float(r["max"]), 4)]
                                  for t, r in by_type.iterrows()}
    return record


def _with_current_paths(stored: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """The caller's rows in cache order: absolute paths reflect where the data is now."""
    cur = current.set_index("relpath", drop=False).loc[stored["relpath"]].reset_index(drop=True)
    return cur[list(current.columns)]


def _meta(key: str, cfg: FeatureConfig, shape: tuple, table: pd.DataFrame, device: str, seconds: float) -> dict:
    import torch
    import torchaudio

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "key": key,
        "feature_version": logmel.FEATURE_VERSION,
        "config": cfg.to_dict(),  # resolved: duration_s is the length every clip got
        "shape": list(shape),
        "dtype": "float16",
        "index_columns": {c: _dtype_tag(table[c]) for c in table.columns},
        "n_files": int(shape[0]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "created_ns": time.time_ns(),
        "build_seconds": round(seconds, 3),
        "clips_per_s": round(shape[0] / seconds, 1) if seconds > 0 else None,
        "device": device,
        "asdlib_version": __version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
    }
