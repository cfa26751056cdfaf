"""asdlib's score fusion on the study's data (not part of the study): an ID classifier, the baseline
autoencoder and the WaveNet of one machine type, each standardised on held-out normal training
clips and fused (:mod:`asdlib.report.fusion`), beside its parts.

One split serves every part: ``holdout`` of each ID's normal dev training clips (the classifier's
stratified validation split, :func:`asdlib.classify.train.split_validation`, at the seed) are held
out; the classifier (the profile's settings, this type's IDs only) validates on them, the
reconstruction models (the profile's settings, their own validation split off) train on the rest.
The held-out clips' scores give the standardisation statistics; the test clips are fused.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..classify.inference import Classifier
from ..classify.inference import embed as embed_clips
from ..classify.scorers import make_scorer
from ..classify.train import fit, split_validation
from ..recon import WaveNetConfig, fit_autoencoder, fit_wavenet, score_autoencoder, score_wavenet
from ..report.fusion import fuse_frame
from ..report.metrics import evaluate
from .experiments import class_names, clip_classes, recon_config, rows, settings_key, take, train_config

PARTS = ("classifier", "autoencoder", "wavenet")
COMBINATIONS = (PARTS, ("classifier", "autoencoder"), ("classifier", "wavenet"), ("autoencoder", "wavenet"))
CLASSIFIER_SCORE = "neglogp"
_COLUMNS = ["dataset", "machine_type", "machine_id", "label", "file"]


@dataclass
class FusionResult:
    tidy: pd.DataFrame  # per ID: method ('classifier', ..., 'fusion'), scorer, seed, metric, value
    scores: pd.DataFrame  # per clip: method, part ('heldout'/'test'), score (fused rows: part 'test')


def fusion_type(study, machine_type: str, holdout: float = 0.2, seed: int | None = None,
                how: str = "max") -> FusionResult:
    """Train the three parts on one machine type's dev training clips less the held-out ones, score
    the held-out and test clips, and fuse every combination of :data:`COMBINATIONS`."""
    seed = study.seed if seed is None else seed
    index, feats = study.features.index, study.features.features
    tr = rows(index, [machine_type], "train", "dev")
    te = rows(index, [machine_type], "test", "dev", labelled=True)
    if len(tr) == 0 or len(te) == 0:
        raise ValueError(f"no dev training or labelled test clips of {machine_type}")
    names = class_names([machine_type])
    names = [n for n in names if n.split("/")[1] in set(index.iloc[tr]["machine_id"])]
    cls_tr = clip_classes(index.iloc[tr], names)
    # the standardisation needs at least 2 held-out clips per ID: tiny profiles hold out more than ``holdout``
    fewest = int(np.bincount(cls_tr)[np.unique(cls_tr)].min())
    if fewest < 3:
        raise ValueError(f"{machine_type}: an ID has {fewest} dev training clip(s); fusion needs at least 3 "
                         "(2 held out for its statistics, 1 to train on)")
    p_fit, p_held = split_validation(cls_tr, max(holdout, 2 / fewest), seed)
    fit_rows, held = tr[p_fit], tr[p_held]
    scored = np.concatenate([held, te])
    meta = index.iloc[scored][_COLUMNS].reset_index(drop=True).assign(
        part=np.where(np.arange(len(scored)) < len(held), "heldout", "test"))
    out = []

    # the ID classifier of this type, validating on the held-out clips (final epoch kept)
    cfg = train_config(study, None, seed)
    key = settings_key(cfg.to_dict(), machine_type, holdout, study.features.key)
    res = fit(take(feats, tr), cls_tr, cfg, study.work_dir / "models" / f"fusion_classifier_{machine_type}-{key}",
              class_names=names, feature_config=study.features.config.to_dict(), progress=study.progress,
              val_index=p_held)
    clf = Classifier.load(res.last_path, study.device)
    o = embed_clips(clf, take(feats, scored))
    s = make_scorer(CLASSIFIER_SCORE).score(o.emb, o.logits, clip_classes(index.iloc[scored], names))
    out.append(meta.assign(method="classifier", score=s))

    # the reconstruction models on the fit rows only
    ae, _ = fit_autoencoder(feats, fit_rows, _no_val(recon_config(study, "autoencoder", seed)), progress=study.progress)
    out.append(meta.assign(method="autoencoder", score=score_autoencoder(ae, feats, scored, device=study.device)))
    ids = sorted(set(index.iloc[tr]["machine_id"]))
    wcfg = WaveNetConfig(**({"n_mels": feats.shape[1], "num_ids": len(ids)} | study.profile.wavenet_model))
    id_of = lambda r: [ids.index(m) for m in index.iloc[r]["machine_id"]]  # noqa: E731
    wn, _ = fit_wavenet(feats, fit_rows, _no_val(recon_config(study, "wavenet", seed)), wcfg, id_index=id_of(fit_rows),
                        progress=study.progress)
    out.append(meta.assign(method="wavenet", score=score_wavenet(wn, feats, scored, id_index=id_of(scored),
                                                                   device=study.device)))
    scores = pd.concat(out, ignore_index=True)
    fused = [fuse_frame(scores, list(c), "zlog", how).assign(method="fusion", scorer="+".join(c) + f" {how}")
             for c in COMBINATIONS]
    tidy = []
    for (method, scorer), g in pd.concat([scores[scores["part"] == "test"].assign(scorer=lambda d: np.where(
            d["method"] == "classifier", CLASSIFIER_SCORE, "mse")), *fused], ignore_index=True).groupby(
            ["method", "scorer"], sort=False):
        tidy.append(evaluate(g[_COLUMNS + ["score"]]).assign(method=method, scorer=scorer, seed=seed))
    all_scores = pd.concat([scores, *[f[_COLUMNS + ["part", "method", "scorer", "score"]] for f in fused]],
                           ignore_index=True)
    return FusionResult(pd.concat(tidy, ignore_index=True), all_scores)


def _no_val(cfg):
    """The reconstruction settings with their own validation split off (the held-out clips are the split)."""
    return replace(cfg, val_fraction=0.0)
