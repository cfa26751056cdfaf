"""``asdlib score``: anomaly scores and decisions for WAV clips of one machine type and ID.

Writes the DCASE files ``anomaly_score_<type>_id_XX.csv`` (file_name,score) and
``decision_result_<type>_id_XX.csv`` (file_name,0|1), the decision using the threshold
calibrated at training time for that ID and scorer.

What it checks before trusting its input: files whose DCASE names (``normal_id_02_...``,
``id_02_...``) or layout folders (``<type>/test/``) say another machine ID or type than
``--type``/``--id`` stop it with an error naming them (``--allow-other-ids`` scores them
anyway); ``--id 2`` means ``02``, and an ID the checkpoint has no class for is refused with the
type's valid IDs; the same file given twice is scored once; a file given by name must be a
``.wav``; a NaN or infinite score stops it naming the clips; existing output CSVs are replaced
only with ``--overwrite``. It warns when the checkpoint was trained on synthetic data, when the clips' lengths
differ from the training clips' of that type, and when the feature settings (``--resample``,
``--channel``) or the feature code's version differ from the training data's.
"""
from __future__ import annotations

import argparse

from .score_inputs import (  # noqa: F401 (the input checks live below both score and score_fusion)
    check_finite_scores,
    collect_wavs,
    input_warnings,
    machine_id_of,
    other_id_files,
    positive_int,
    refuse_existing,
    wav_features,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score WAV clips of one machine type/ID with a trained checkpoint",
        description="Read the WAV files (a folder, or files), compute log-mel features with the checkpoint's feature "
        "settings, score them (default: 1 - softmax probability of the given ID, the study's score) and write the "
        "DCASE anomaly-score and decision CSVs. Decisions use the per-ID threshold calibrated by `asdlib train`.",
    )
    p.add_argument("--model", required=True, action="append",
                   help="checkpoint (.pt) written by `asdlib train`; give --model several times to fuse their "
                   "standardised scores (classifier or reconstruction checkpoints; see --fusion)")
    p.add_argument("--input", required=True, nargs="+", help="a folder of .wav files, or .wav files")
    p.add_argument("--type", required=True, dest="machine_type", help="machine type, e.g. fan")
    p.add_argument("--id", required=True, dest="machine_id", help="machine ID, two digits, e.g. 00")
    p.add_argument("--out", default=".", help="folder for the two CSV files (default: current folder)")
    p.add_argument("--scorer", default="softmax",
                   help="softmax | neglogp | cosine | knn | gmm | lof | mahalanobis; a scorer that fits on embeddings "
                   "is used as it was fitted when its thresholds were calibrated (stored beside the checkpoint)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="clips per inference batch (default: the checkpoint's training batch size, which "
                   "the thresholds were calibrated with; another size changes scores in the last digits)")
    p.add_argument("--allow-other-ids", action="store_true",
                   help="score files whose DCASE names (or type folders) say another machine ID or type than "
                   "--type/--id anyway (default: stop with an error naming them)")
    p.add_argument("--resample", action="store_true",
                   help="resample clips at another sample rate to the model's (the features then differ from the "
                   "training data's; a warning says so)")
    p.add_argument("--channel", default=None, metavar="K|mean",
                   help="channel of multichannel clips to score (an index, or 'mean'); default: mono clips only")
    p.add_argument("--fusion", default="max", choices=("max", "mean"),
                   help="with several --model: combine their scores, each standardised with the statistics of "
                   "held-out normal clips stored beside it (<stem>.<score>.fusion.json), by this (default: max, "
                   "asdlib's declared fusion: the parts fail on different machines)")
    p.add_argument("--fit-fusion", action="store_true",
                   help="write those statistics instead of scoring: the --input clips must be normal clips of "
                   "--type/--id that no model trained on")
    p.add_argument("--fusion-transform", default="zlog", choices=("zlog", "z", "rank"),
                   help="with --fit-fusion: z-score of the log score (default), of the score, or rank")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k] (default: auto)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace score and decision CSVs already in --out (default: stop with an error naming them)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


# ---- input checks (helpers, so that every scoring path can share them) ----------------------


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from ..classify.checkpoint import class_name
    from ..classify.inference import Classifier, embed
    from ..classify.threshold import load_fitted_scorer, load_thresholds
    from ..core.errors import AsdlibError
    from ..core.utils import resolve_device

    if len(args.model) > 1 or args.fit_fusion:
        from .score_fusion import run_fusion

        return run_fusion(args, collect_wavs(args.input))
    args.model = args.model[0]
    progress = not args.no_progress
    device = resolve_device(args.device)
    clf = Classifier.load(args.model, device)
    clf.batch_size = args.batch_size  # None: the checkpoint's own
    machine_id = machine_id_of(args.machine_id, args.machine_type, clf.class_names, args.model)
    name = class_name(args.machine_type, machine_id)
    cls = clf.class_names.index(name)
    thresholds = load_thresholds(args.model, args.scorer)
    if name not in thresholds:
        raise AsdlibError(f"no calibrated threshold for {name} with scorer {args.scorer} beside {args.model}")
    scorer = load_fitted_scorer(args.model, args.scorer)  # fitted exactly as when the thresholds were calibrated
    files = collect_wavs(args.input)
    warn = lambda msg: print(f"asdlib score: warning: {msg}", file=sys.stderr)  # noqa: E731
    others = other_id_files(files, args.machine_type, machine_id)
    if others:
        listed = "\n  ".join(others[:10]) + (f"\n  ... and {len(others) - 10} more" if len(others) > 10 else "")
        what = f"{len(others)} of {len(files)} files are named for another machine than {name}"
        if not args.allow_other_ids:
            raise AsdlibError(f"{what}:\n  {listed}\nscore each ID with its own --id, or pass --allow-other-ids "
                              f"to score them as {name} anyway")
        warn(f"{what}, scored as {name} (--allow-other-ids):\n  {listed}")
    out = Path(args.out)
    refuse_existing(_paths(out, args.machine_type, machine_id), args.overwrite)
    feature_config = clf.meta.get("feature_config")
    if feature_config and (args.resample or args.channel is not None):
        channel = int(args.channel) if args.channel is not None and args.channel.isdigit() else args.channel
        feature_config = dict(feature_config, resample=bool(args.resample or feature_config.get("resample")),
                              channel=channel if channel is not None else feature_config.get("channel"))
    if feature_config and feature_config.get("duration_s") is not None:
        for msg in input_warnings(files, clf.meta, feature_config, args.machine_type):
            warn(msg)
    x = wav_features(files, feature_config, progress, device)  # (N, n_mels, T)
    outputs = embed(clf, x, progress=progress)
    scores = scorer.score(outputs.emb, outputs.logits, np.full(len(files), cls))  # (N,)
    check_finite_scores(files, scores)
    decisions = (scores > thresholds[name]).astype(int)

    out.mkdir(parents=True, exist_ok=True)
    score_path, decision_path = _write(out, args.machine_type, machine_id, files, scores, decisions)
    print(f"{name}: {len(files)} clips scored with {args.scorer}; {int(decisions.sum())} flagged anomalous "
          f"(threshold {thresholds[name]:.6g}); mean score {scores.mean():.6g}")
    print(f"wrote {score_path} and {decision_path}")
    return 0


def _paths(out, machine_type: str, machine_id: str) -> list:
    """The anomaly-score and decision CSVs of one type and ID under ``out``."""
    from ..report.dcase_io import anomaly_score_filename, decision_result_filename

    return [out / anomaly_score_filename(machine_type, machine_id), out / decision_result_filename(machine_type, machine_id)]


def _write(out, machine_type: str, machine_id: str, files, scores, decisions):
    from ..report.dcase_io import write_anomaly_scores, write_decisions

    score_path, decision_path = _paths(out, machine_type, machine_id)
    return write_anomaly_scores(score_path, files, scores), write_decisions(decision_path, files, decisions)
