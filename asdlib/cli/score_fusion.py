"""``asdlib score --model A --model B ...``: one fused anomaly score from several models
(:mod:`asdlib.report.fusion`).

Each model is a classifier checkpoint (scored with ``--scorer``) or a reconstruction checkpoint
(autoencoder or WaveNet, scored with its mean squared error). Its scores are standardised with
the statistics stored beside it (``<stem>.<score>.fusion.json``, fitted on held-out normal
training clips) and the standardised scores are combined by ``--fusion`` (max, the default, or mean).

``--fit-fusion`` writes those statistics instead: the clips given must be normal clips of the
ID that no model trained on (held out); the statistics of that (type, ID) are added to each
model's file (other IDs' kept). Reconstruction checkpoints record no feature settings: they use
the ones stored in their statistics file, else those of a classifier checkpoint among the models.
Fusion writes ``anomaly_score_<type>_id_XX.csv`` only: a fused score has no calibrated threshold,
so no decision file.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Member:
    """One model of the fusion: how to score clips with it and where its statistics live."""

    path: str
    kind: str  # "classifier", "autoencoder" or "wavenet"
    score: str  # the scorer's name, or "mse"
    model: object
    feature_config: dict | None
    stats_path: Path


def load_member(path: str, scorer: str, device: str) -> Member:
    import torch

    from ..core.errors import AsdlibError, CacheError
    from ..recon import load_recon_model
    from ..report.fusion import Standardiser, standardiser_path

    if not Path(path).is_file():
        raise AsdlibError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        kind = state.get("kind") if isinstance(state, dict) else None
    except Exception as e:  # a truncated or foreign file
        raise CacheError(f"cannot read checkpoint {path}: {e}") from e
    if kind in ("autoencoder", "wavenet"):
        model, _ = load_recon_model(path, device)
        if getattr(model.cfg, "condition_on_id", False):
            raise AsdlibError(f"{path}: an ID-conditioned WaveNet cannot be fused by `asdlib score` yet")
        stats = standardiser_path(path, "mse")
        fc = Standardiser.load(stats).info.get("feature_config") if stats.is_file() else None
        return Member(path, kind, "mse", model, fc, stats)
    from ..classify.inference import Classifier
    from ..classify.threshold import load_fitted_scorer

    clf = Classifier.load(path, device)
    return Member(path, "classifier", scorer, (clf, load_fitted_scorer(path, scorer)), clf.meta.get("feature_config"),
                  standardiser_path(path, scorer))


def member_scores(m: Member, x: np.ndarray, machine_type: str, machine_id: str, device: str,
                  progress: bool) -> np.ndarray:
    """Raw scores ``(N,)`` of clips' features ``x`` ``(N, n_mels, T)`` by one member."""
    from ..classify.checkpoint import class_name
    from ..classify.inference import embed
    from ..core.errors import AsdlibError
    from ..recon import score_autoencoder, score_wavenet

    rows = np.arange(len(x))
    if m.kind == "autoencoder":
        return score_autoencoder(m.model, x, rows, device=device)
    if m.kind == "wavenet":
        return score_wavenet(m.model, x, rows, device=device)
    clf, scorer = m.model
    name = class_name(machine_type, machine_id)
    if name not in clf.class_names:
        raise AsdlibError(f"{m.path} has no class {name}; its classes are {', '.join(clf.class_names)}")
    outputs = embed(clf, x, progress=progress)
    return scorer.score(outputs.emb, outputs.logits, np.full(len(x), clf.class_names.index(name)))


def run_fusion(args: argparse.Namespace, files: list) -> int:
    """Fuse (or, with ``--fit-fusion``, fit the statistics of) the models ``args.model`` on ``files``."""
    from ..core.errors import AsdlibError
    from ..core.utils import resolve_device
    from ..report.dcase_io import anomaly_score_filename, write_anomaly_scores
    from ..report.fusion import Standardiser, combine, machine_key
    from .score_inputs import other_id_files, wav_features

    others = other_id_files(files, args.machine_type, args.machine_id)
    if others and not args.allow_other_ids:
        raise AsdlibError(f"{len(others)} of {len(files)} files are named for another machine than "
                          f"{args.machine_type}/{args.machine_id}: {', '.join(others[:3])}; score each ID with its "
                          "own --id, or pass --allow-other-ids")
    device = resolve_device(args.device)
    progress = not args.no_progress
    members = [load_member(p, args.scorer, device) for p in args.model]
    default_fc = next((m.feature_config for m in members if m.kind == "classifier"), None)
    key = machine_key(args.machine_type, args.machine_id)
    features: dict[str, np.ndarray] = {}  # one feature computation per distinct setting
    raw = []
    for m in members:
        fc = m.feature_config or default_fc
        if fc is None:
            raise AsdlibError(f"{m.path} records no feature settings: fit its fusion statistics "
                              "(--fit-fusion) together with a classifier checkpoint, whose settings it then uses")
        m.feature_config = fc
        k = repr(sorted(fc.items()))
        if k not in features:
            features[k] = wav_features(files, fc, progress, device)  # (N, n_mels, T)
        raw.append(member_scores(m, features[k], args.machine_type, args.machine_id, device, progress))

    if args.fit_fusion:
        for m, s in zip(members, raw):
            st = Standardiser.load(m.stats_path) if m.stats_path.is_file() else Standardiser(
                f"{m.kind}/{m.score}", args.fusion_transform)
            if st.transform != args.fusion_transform:
                raise AsdlibError(f"{m.stats_path} holds {st.transform!r} statistics, not {args.fusion_transform!r}; "
                                  "remove it to refit")
            st.add(args.machine_type, args.machine_id, s)
            st.info |= {"checkpoint": Path(m.path).name, "feature_config": m.feature_config,
                        f"heldout_{key}": [Path(f).name for f in files]}
            st.save(m.stats_path)
            print(f"{key}: fusion statistics of {len(files)} held-out clips ({st.transform}) written to {m.stats_path}")
        return 0

    z = [Standardiser.load(m.stats_path)(s, args.machine_type, args.machine_id) for m, s in zip(members, raw)]
    fused = combine(z, args.fusion)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_anomaly_scores(out / anomaly_score_filename(args.machine_type, args.machine_id), files, fused)
    print(f"{key}: {len(files)} clips scored by {len(members)} models fused ({args.fusion} of standardised scores); "
          f"mean fused score {fused.mean():.6g}; no decision file (a fused score has no calibrated threshold)")
    print(f"wrote {path}")
    return 0
