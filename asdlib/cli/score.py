"""``asdlib score``: anomaly scores and decisions for WAV clips of one machine type and ID.

Writes the DCASE files ``anomaly_score_<type>_id_XX.csv`` (file_name,score) and
``decision_result_<type>_id_XX.csv`` (file_name,0|1), the decision using the threshold
calibrated at training time for that ID and scorer.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score WAV clips of one machine type/ID with a trained checkpoint",
        description="Read the WAV files (a folder, or files), compute log-mel features with the checkpoint's feature "
        "settings, score them (default: 1 - softmax probability of the given ID, the study's score) and write the "
        "DCASE anomaly-score and decision CSVs. Decisions use the per-ID threshold calibrated by `asdlib train`.",
    )
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by `asdlib train`")
    p.add_argument("--input", required=True, nargs="+", help="a folder of .wav files, or .wav files")
    p.add_argument("--type", required=True, dest="machine_type", help="machine type, e.g. fan")
    p.add_argument("--id", required=True, dest="machine_id", help="machine ID, two digits, e.g. 00")
    p.add_argument("--out", default=".", help="folder for the two CSV files (default: current folder)")
    p.add_argument("--scorer", default="softmax",
                   help="softmax | neglogp | cosine | knn | gmm | lof | mahalanobis; a scorer that fits on embeddings "
                   "is used as it was fitted when its thresholds were calibrated (stored beside the checkpoint)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="clips per inference batch (default: the checkpoint's training batch size, which "
                   "the thresholds were calibrated with; another size changes scores in the last digits)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k] (default: auto)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def collect_wavs(inputs: list[str]) -> list:
    """The .wav files named by ``inputs`` (folders are listed, sorted); errors name the path."""
    from pathlib import Path

    from ..core.errors import AsdlibError

    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() == ".wav" and f.is_file())
            if not found:
                raise AsdlibError(f"no .wav files in {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise AsdlibError(f"input {p} does not exist")
    if not files:
        raise AsdlibError("no input files given")
    return files


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


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from ..classify.checkpoint import class_name
    from ..classify.inference import Classifier, embed
    from ..classify.threshold import load_fitted_scorer, load_thresholds
    from ..core.errors import AsdlibError
    from ..core.utils import resolve_device

    progress = not args.no_progress
    device = resolve_device(args.device)
    clf = Classifier.load(args.model, device)
    clf.batch_size = args.batch_size  # None: the checkpoint's own
    name = class_name(args.machine_type, args.machine_id)
    if name not in clf.class_names:
        raise AsdlibError(f"{args.model} has no class {name}; its classes are {', '.join(clf.class_names)}")
    cls = clf.class_names.index(name)
    thresholds = load_thresholds(args.model, args.scorer)
    if name not in thresholds:
        raise AsdlibError(f"no calibrated threshold for {name} with scorer {args.scorer} beside {args.model}")
    scorer = load_fitted_scorer(args.model, args.scorer)  # fitted exactly as when the thresholds were calibrated
    files = collect_wavs(args.input)
    feature_config = clf.meta.get("feature_config")
    x = wav_features(files, feature_config, progress, device)  # (N, n_mels, T)
    out = embed(clf, x, progress=progress)
    scores = scorer.score(out.emb, out.logits, np.full(len(files), cls))  # (N,)
    decisions = (scores > thresholds[name]).astype(int)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    score_path, decision_path = _write(out, args.machine_type, args.machine_id, files, scores, decisions)
    print(f"{name}: {len(files)} clips scored with {args.scorer}; {int(decisions.sum())} flagged anomalous "
          f"(threshold {thresholds[name]:.6g}); mean score {scores.mean():.6g}")
    print(f"wrote {score_path} and {decision_path}")
    return 0


def _write(out, machine_type: str, machine_id: str, files, scores, decisions):
    from ..report.dcase_io import (
        anomaly_score_filename,
        decision_result_filename,
        write_anomaly_scores,
        write_decisions,
    )

    return (write_anomaly_scores(out / anomaly_score_filename(machine_type, machine_id), files, scores),
            write_decisions(out / decision_result_filename(machine_type, machine_id), files, decisions))
