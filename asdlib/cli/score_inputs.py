"""`asdlib score`'s input checks and feature reading, shared by :mod:`.score` and :mod:`.score_fusion`."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type of ``--batch-size``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def machine_id_of(machine_id: str, machine_type: str, class_names: list[str], model: str = "the checkpoint") -> str:
    """``--id`` as the checkpoint stores it: digits zero-padded to two (``2`` -> ``02``); an ID that
    ``class_names`` lacks for ``machine_type`` is an error listing the type's valid IDs."""
    from ..classify.checkpoint import class_name
    from ..core.errors import AsdlibError

    mid = str(machine_id).strip()
    if mid.isdigit() and len(mid) < 2:
        mid = mid.zfill(2)
    if class_name(machine_type, mid) in class_names:
        return mid
    valid = sorted(n.split("/", 1)[1] for n in class_names if n.split("/", 1)[0] == machine_type)
    if not valid:
        raise AsdlibError(f"{model} has no class {class_name(machine_type, mid)}, nor any of type {machine_type}; "
                          f"its classes are {', '.join(class_names)}")
    raise AsdlibError(f"{model} has no class {class_name(machine_type, mid)}: --id {machine_id!r} is not one of "
                      f"{machine_type}'s IDs in it, which are {', '.join(valid)}")


def collect_wavs(inputs: list[str]) -> list:
    """The .wav files named by ``inputs`` (folders are listed, sorted), each once (the first time it
    is named); a file given by name that is not a .wav, or a path that does not exist, is an error naming it."""
    from pathlib import Path

    from ..core.errors import AsdlibError

    files, seen = [], set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() == ".wav" and f.is_file())
            if not found:
                raise AsdlibError(f"no .wav files in {p}")
        elif p.is_file():
            if p.suffix.lower() != ".wav":
                raise AsdlibError(f"input {p} is not a .wav file; give WAV clips (or a folder of them)")
            found = [p]
        else:
            raise AsdlibError(f"input {p} does not exist")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    if not files:
        raise AsdlibError("no input files given")
    return files


def refuse_existing(paths: list, overwrite: bool) -> None:
    """Stop before any work when an output file exists, unless ``overwrite`` (``--overwrite``)."""
    from ..core.errors import AsdlibError

    there = [str(p) for p in paths if p.exists()]
    if there and not overwrite:
        raise AsdlibError(f"{' and '.join(there)} already exist{'s' if len(there) == 1 else ''}; pass --overwrite to "
                          "replace, or choose another --out")


def check_finite_scores(files: list, scores) -> None:
    """A NaN or infinite score is an error naming its clips (nothing is written)."""
    import numpy as np

    from ..core.errors import AsdlibError

    bad = [str(f) for f, s in zip(files, np.asarray(scores, dtype=float).ravel()) if not np.isfinite(s)]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise AsdlibError(f"{len(bad)} of {len(files)} clips got a NaN or infinite score: {', '.join(bad[:5])}{more}; "
                          "check these clips (silence, clipping) and the checkpoint; nothing was written")


def wav_features(files: list, feature_config: dict | None, progress: bool = False, device: str = "cpu"):
    """Log-mel features ``(N, n_mels, T)`` of WAV files with a checkpoint's feature settings.

    The same computation as the feature cache the model was trained on: clips are cut to the
    length the training cache recorded (``duration_s``), a shorter clip is an error naming it
    unless the training cache padded (``short_clips``). Never the length of the clips given.
    """
    from ..core.errors import AsdlibError
    from ..features.logmel import FeatureConfig, compute_features

    fc = FeatureConfig.from_dict(feature_config) if feature_config else None
    if fc is None or fc.duration_s is None:
        raise AsdlibError("the checkpoint records no training clip length (feature_config.duration_s): it was not "
                          "trained from a feature cache; retrain it with `asdlib train`")
    return compute_features([str(f) for f in files], fc, device=device, progress=progress)  # float16


def other_id_files(files: list, machine_type: str, machine_id: str) -> list[str]:
    """The files whose DCASE name (``[normal|anomaly_]id_XX_NNNNNNNN.wav``) says another machine ID,
    or whose layout folder (``<type>/{train,test}/``) another machine type, each with what it says."""
    from pathlib import Path

    from ..core.machines import EVAL_TEST_NAME, LABELLED_NAME, MACHINE_TYPES, PARTS

    out = []
    for f in files:
        p = Path(f)
        said = []
        m = LABELLED_NAME.match(p.name) or EVAL_TEST_NAME.match(p.name)
        if m is not None and m["id"] != machine_id:
            said.append(f"ID {m['id']}")
        folder_type = p.parent.parent.name
        if p.parent.name in PARTS and folder_type in MACHINE_TYPES and folder_type != machine_type:
            said.append(f"type {folder_type}")
        if said:
            out.append(f"{p} ({' and '.join(said)})")
    return out


def input_warnings(files: list, checkpoint_meta: dict, used: dict, machine_type: str) -> list[str]:
    """What differs between the clips to score and the model's training data, in words (empty: nothing).

    ``checkpoint_meta`` is :attr:`Classifier.meta` (``feature_config``, ``data``); ``used`` the
    feature settings the clips are scored with.
    """
    from ..data.audio import wav_info
    from ..features.logmel import FEATURE_VERSION

    data = checkpoint_meta.get("data") or {}
    trained = checkpoint_meta.get("feature_config") or {}
    out = []
    if not data:
        out.append("the checkpoint records nothing about its training data (written before asdlib recorded it): "
                   "whether it was synthetic and how long its clips were cannot be checked")
    if data.get("synthetic"):
        profiles = ", ".join(data.get("synth_profile") or []) or "?"
        out.append(f"the checkpoint was trained on SYNTHETIC data (asdlib synth, profile {profiles}); its scores and "
                   "thresholds say nothing about real recordings")
    tol = 0.01  # seconds
    duration = float(used["duration_s"])
    lo, hi = (data.get("clip_seconds") or {}).get(machine_type) or (duration, duration)
    infos = [(f, wav_info(f)) for f in files]
    lengths = [i.duration_s for _, i in infos]
    odd = [f"{f} ({n:g} s)" for (f, _), n in zip(infos, lengths) if n < lo - tol or n > hi + tol]
    if odd:
        span = f"{lo:g} s" if abs(hi - lo) <= tol else f"{lo:g}-{hi:g} s"
        more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
        out.append(f"{len(odd)} of {len(files)} clips are not as long as the model's training clips of {machine_type} "
                   f"({span}, cut to {duration:g} s): {', '.join(odd[:3])}{more}; their scores may not be comparable")
    rates = sorted({i.sample_rate for _, i in infos} - {int(used["sample_rate"])})
    if rates and used.get("resample"):
        out.append(f"clips at {', '.join(map(str, rates))} Hz are resampled to the training data's {used['sample_rate']} Hz")
    diff = [f"{k}={used[k]!r} (training: {trained[k]!r})" for k in used if k in trained and used[k] != trained[k]]
    if diff:
        out.append(f"feature settings differ from the training data's: {', '.join(diff)}")
    version = data.get("feature_version")
    if version is not None and version != FEATURE_VERSION:
        out.append(f"the training features were computed by feature code version {version}, these by version "
                   f"{FEATURE_VERSION} (asdlib.features.logmel.FEATURE_VERSION): the numbers may differ")
    return out
