"""The study's experiments as functions of a :class:`~asdlib.study.context.Study` (what notebooks call).

Each run is keyed by its settings and the feature cache it reads, and lives in
``<work_dir>/models/<name>-<key>/``: a second notebook (or a second ``make reproduce``)
asking for the same run reuses it, and a killed run resumes from its last epoch.

Data splits follow DCASE2020: ID classifiers train on the normal training clips of the
development IDs (dev train) and of the evaluation IDs (the additional training set) together;
the reconstruction models (autoencoder, WaveNet) train one model per machine type *and dataset*
as the DCASE2020 baseline does (dev_data/<type>/train, eval_data/<type>/train). "Dev" figures
come from the dev test set, "Eval" figures from the eval test set.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..classify.checkpoint import class_name
from ..classify.config import EXECUTION_SETTINGS, TrainConfig
from ..classify.evaluate import EvalSet
from ..classify.threshold import calibrate_run
from ..classify.train import BestCheckpoint, TrainResult, fit
from ..classify.transfer import finetune_classifier
from ..core.machines import DATASETS, MACHINE_TYPES, class_labels, machine_ids
from ..recon import (
    ReconConfig,
    WaveNetConfig,
    fit_autoencoder,
    fit_wavenet,
    load_recon_model,
    score_autoencoder,
    score_wavenet,
)
from .registry import LABEL_FREE, LAST, Experiment, get_experiment

SELECTIONS = ("dev_auc_pauc", "val_loss")  # the study's (sees dev-test labels) and a label-free one
SELECTION_NOTES = {
    "dev_auc_pauc": "checkpoint with the largest dev-test AUC + pAUC (the study's rule; optimistic: it sees test labels)",
    "val_loss": "checkpoint with the lowest loss on held-out normal training clips (never sees test labels)",
    LAST: "the final epoch (label-free; used where a run has no val_loss checkpoint, e.g. no held-out clips)",
}


def select_checkpoint(result, selection: str):
    """``(label, checkpoint)`` of ``result`` (a TrainResult) under ``selection``; never a silent substitute.

    The rule's own checkpoint where the run saved one. Where the label-free ``val_loss`` one
    is missing (no held-out clips, or a loss that was never finite), the final epoch, labelled
    ``last`` so no row claims a rule it did not use; it never falls back to a checkpoint chosen
    on the test labels. A missing ``dev_auc_pauc`` checkpoint raises.
    """
    if selection in result.best:
        return selection, result.best[selection]
    if selection == LABEL_FREE:
        epochs = result.history["epoch"] if "epoch" in getattr(result.history, "columns", ()) else ()
        epoch = int(epochs.iloc[-1]) if len(epochs) else int(result.epochs_run)
        return LAST, BestCheckpoint(criterion=LAST, path=str(result.last_path), epoch=epoch, value=float("nan"),
                                    metrics={})
    raise ValueError(f"run {result.out_dir} saved no {selection!r} checkpoint (it has {sorted(result.best)}); "
                     f"was it trained without the {selection!r} criterion or its evaluation set?")


def settings_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def class_names(types: Iterable[str]) -> list[str]:
    return [class_name(t, i) for t, i in class_labels(types)]


def clip_classes(meta: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Class index of each clip's own (type, ID) in a model with classes ``names``."""
    lookup = {n: k for k, n in enumerate(names)}
    keys = [class_name(t, i) for t, i in zip(meta["machine_type"], meta["machine_id"])]
    missing = sorted({k for k in keys if k not in lookup})
    if missing:
        raise KeyError(f"clips of {missing[:5]} are not classes of this model")
    return np.array([lookup[k] for k in keys], dtype=np.int64)


def rows(index: pd.DataFrame, types: Iterable[str], part: str, dataset: str | None = None,
         labelled: bool = False) -> np.ndarray:
    """Row numbers of the feature cache for the given types and split, ascending."""
    m = index["machine_type"].isin(list(types)) & (index["part"] == part)
    if dataset is not None:
        m &= index["dataset"] == dataset
    if part == "train":
        m &= index["label"] == 0
    if labelled:
        m &= index["label"] >= 0
    return np.flatnonzero(m.to_numpy())


def take(features: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Copy rows ``idx`` of the (memory-mapped) cache into RAM, in the order given."""
    return np.ascontiguousarray(features[idx]) if len(idx) else np.empty((0, *features.shape[1:]), features.dtype)


def train_config(study, overrides: Mapping[str, Any] | None = None, seed: int | None = None) -> TrainConfig:
    """The profile's classifier settings with dotted ``overrides`` (an experiment's) on top."""
    return TrainConfig().replace(study.profile.classifier | dict(overrides or {})
                                 | {"seed": study.seed if seed is None else seed, "device": study.device})


def _dev_eval_set(study, types: Sequence[str], names: Sequence[str]):
    index = study.features.index
    dev = rows(index, types, "test", "dev", labelled=True)
    meta = index.iloc[dev]
    if len(dev) == 0 or meta["label"].nunique() < 2:
        return None
    meta = meta.assign(**{"class": clip_classes(meta, names)})
    return {"dev": EvalSet(take(study.features.features, dev), meta.reset_index(drop=True))}


def train_classifier(study, name: str, types: Sequence[str] = MACHINE_TYPES,
                     overrides: Mapping[str, Any] | None = None, seed: int | None = None) -> TrainResult:
    """Train (or reuse) an ID classifier on the normal training clips of ``types``.

    One type gives an individual model (E1); all six the integrated 41-ID model (E2).
    ``seed``: the training seed (default: the study's first).
    """
    cfg = train_config(study, overrides, seed)
    names = class_names(types)
    key = settings_key({k: v for k, v in cfg.to_dict().items() if k not in EXECUTION_SETTINGS},
                       list(types), study.features.key)
    index = study.features.index
    tr = rows(index, types, "train")
    if len(tr) == 0:
        raise ValueError(f"no normal training clips for {list(types)} under {study.data_root}")
    x = take(study.features.features, tr)  # (N, M, T)
    meta = index.iloc[tr].reset_index(drop=True)
    result = fit(x, clip_classes(meta, names), cfg, study.work_dir / "models" / f"{name}-{key}",
                 eval_sets=_dev_eval_set(study, types, names), class_names=names,
                 feature_config=study.features.config.to_dict(), data_info=study.features.data_info,
                 progress=study.progress)
    # decision thresholds beside each checkpoint, so that `asdlib score` can use it on new recordings
    calibrate_run(result, x, meta, device=study.device, skip_existing=True)
    return result


def transfer_classifier(study, checkpoint: str | Path, machine_type: str,
                        overrides: Mapping[str, Any] | None = None, seed: int | None = None,
                        parent_types: Sequence[str] = MACHINE_TYPES) -> TrainResult:
    """E5: fine-tune only the classifier of an integrated checkpoint on one type's clips.

    The fine-tuning run holds out the integrated run's held-out clips of that type (the others
    trained the backbone), so its label-free selection and its thresholds rest on clips no part
    of the model was trained on; ``parent_types``: the types the integrated run trained on.
    Every checkpoint of the run gets decision thresholds, as :func:`train_classifier`'s do.
    """
    from ..classify.transfer import inherited_val_index

    names = class_names([machine_type])
    seed = study.seed if seed is None else seed
    cfg = study.profile.finetune | dict(overrides or {}) | {"seed": seed, "device": study.device}
    key = settings_key(str(checkpoint), cfg, study.features.key, "val: inherited")
    index = study.features.index
    tr = rows(index, [machine_type], "train")
    x = take(study.features.features, tr)
    meta = index.iloc[tr].reset_index(drop=True)
    val = inherited_val_index(checkpoint, rows(index, parent_types, "train"), tr)
    result = finetune_classifier(checkpoint, x, clip_classes(meta, names), names,
                                 study.work_dir / "models" / f"transfer_{machine_type}-{key}", cfg_overrides=cfg,
                                 eval_sets=_dev_eval_set(study, [machine_type], names), progress=study.progress,
                                 val_index=val)
    calibrate_run(result, x, meta, device=study.device, skip_existing=True)
    return result


@dataclass
class Embedded:
    """Logits and embeddings of a model on the training and test clips of some types."""

    train_meta: pd.DataFrame
    train_logits: np.ndarray  # (N_train, C)
    train_emb: np.ndarray  # (N_train, D)
    test_meta: pd.DataFrame  # dataset, machine_type, machine_id, label, file, class
    test_logits: np.ndarray
    test_emb: np.ndarray
    class_names: list[str]


def embed(study, checkpoint: str | Path, types: Sequence[str] = MACHINE_TYPES, with_train: bool = True) -> Embedded:
    """Run a checkpoint over all test clips of ``types`` and (for scorers that fit on
    embeddings, ``with_train``) over their normal training clips.

    The test clips go in two blocks: the labelled dev test clips (exactly the training loop's
    ``dev`` eval set, batched as it batched them) and the rest. So the outputs the training
    loop kept beside the checkpoint for the same weights (:func:`asdlib.classify.evaluate.
    load_eval_outputs`) are reused for the first block, bit for bit what running the model
    again gives (``tests/test_eval_outputs.py``)."""
    from ..classify import inference
    from ..classify.evaluate import load_eval_outputs

    clf = inference.Classifier.load(checkpoint, study.device)
    names = clf.class_names
    index, feats = study.features.index, study.features.features

    def outputs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(idx):
            return inference.embed(clf, take(feats, idx))
        return np.empty((0, len(names)), np.float32), np.empty((0, clf.model.num_features), np.float32)

    out = {}
    train_rows = rows(index, types, "train") if with_train else np.empty(0, dtype=np.int64)
    m = index.iloc[train_rows].reset_index(drop=True)
    out["train"] = (m.assign(**{"class": clip_classes(m, names)}), *outputs(train_rows))

    test_rows = rows(index, types, "test")
    m = index.iloc[test_rows].reset_index(drop=True)
    m = m.assign(**{"class": clip_classes(m, names)})
    dev_rows = rows(index, types, "test", "dev", labelled=True)  # _dev_eval_set's clips, in its order
    rest_rows = np.setdiff1d(test_rows, dev_rows, assume_unique=True)
    kept = None
    if len(dev_rows) and "epoch" in clf.meta:
        kept = load_eval_outputs(checkpoint, int(clf.meta["epoch"]), "dev", index.iloc[dev_rows].reset_index(drop=True))
    dev_out = tuple(kept) if kept is not None else outputs(dev_rows)
    rest_out = outputs(rest_rows)
    pos = np.searchsorted(test_rows, np.concatenate([dev_rows, rest_rows]))  # block rows -> test order
    logits = np.empty((len(test_rows), dev_out[0].shape[1]), np.float32)
    emb = np.empty((len(test_rows), dev_out[1].shape[1]), np.float32)
    logits[pos] = np.concatenate([dev_out[0], rest_out[0]])
    emb[pos] = np.concatenate([dev_out[1], rest_out[1]])
    out["test"] = (m, logits, emb)
    return Embedded(*out["train"], *out["test"], class_names=names)


def score(emb: Embedded, scorer: str = "softmax", **kwargs) -> pd.DataFrame:
    """One row per test clip: dataset, machine_type, machine_id, label, file, score."""
    from ..classify.inference import Outputs, score_outputs
    from ..classify.scorers import make_scorer

    s = score_outputs(make_scorer(scorer, **kwargs), Outputs(emb.test_logits, emb.test_emb),
                      emb.test_meta["class"].to_numpy(), emb.train_emb, emb.train_meta["class"].to_numpy())
    cols = ["dataset", "machine_type", "machine_id", "label", "file"]
    return emb.test_meta[cols].assign(score=np.asarray(s, dtype=np.float64))


def evaluate_scores(scores: pd.DataFrame, experiment: str, seed: int, **extra) -> pd.DataFrame:
    """Per-ID AUC/pAUC of a scores frame, as tidy rows of ``experiment``."""
    from ..report.metrics import evaluate
    from ..report.tables import to_tidy

    return to_tidy(evaluate(scores), experiment, seed=seed, **extra)


def evaluate_checkpoint(study, best, experiment: str, selection: str, types: Sequence[str] = MACHINE_TYPES,
                        scorer: str = "softmax", scores: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy per-ID results and per-clip scores of one selected checkpoint (a BestCheckpoint);
    ``scores``: its per-clip scores where they are already at hand."""
    from ..classify.scorers import make_scorer

    if scores is None:
        scores = score(embed(study, best.path, types, with_train=make_scorer(scorer).needs_fit), scorer)
    return evaluate_scores(scores, experiment, study.seed, selection=selection, epoch=best.epoch, scorer=scorer), scores


def evaluate_classifier(study, result, experiment: str, types: Sequence[str] = MACHINE_TYPES,
                        scorer: str = "softmax") -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Tidy results of a trained run under both selection rules, and the scores per rule. Rules that
    chose the same epoch share one pass over the clips (the same weights give the same scores)."""
    tidy, all_scores, by_epoch = [], {}, {}
    for sel in SELECTIONS:
        if sel not in result.best and sel != LABEL_FREE:
            continue  # no dev-test criterion in this run: no rows under the study's rule
        label, best = select_checkpoint(result, sel)
        t, all_scores[label] = evaluate_checkpoint(study, best, experiment, label, types, scorer,
                                                   scores=by_epoch.get(best.epoch))
        by_epoch[best.epoch] = all_scores[label]
        tidy.append(t)
    return pd.concat(tidy, ignore_index=True), all_scores


@dataclass
class ExperimentResult:
    """An experiment over all of the study's seeds.

    ``tidy``: per-ID AUC/pAUC, one row per seed (and selection rule); ``scores``: selection
    rule -> one row per test clip and seed; ``runs``: seed -> run name -> its record
    (a :class:`~asdlib.classify.train.TrainResult`, or a dict for reconstruction models).
    """

    name: str
    tidy: pd.DataFrame
    scores: dict[str, pd.DataFrame]
    runs: dict[int, dict[str, Any]]

    def run(self, name: str | None = None, seed: int | None = None):
        """One run's record: ``name`` (default: the only or first run) of ``seed`` (default: the first seed)."""
        by_name = self.runs[next(iter(self.runs)) if seed is None else seed]
        return by_name[next(iter(by_name)) if name is None else name]


def _collect(study, experiment: str, tidy: list[pd.DataFrame], scores: dict[str, list[pd.DataFrame]],
             runs: dict[int, dict[str, Any]], save: bool) -> ExperimentResult:
    res = ExperimentResult(experiment, pd.concat(tidy, ignore_index=True),
                           {sel: pd.concat(v, ignore_index=True) for sel, v in scores.items()}, runs)
    if save:
        for sel, df in res.scores.items():
            study.save_scores(df, f"{experiment}__{sel}")
    return res


def _with_seed(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    return frame.assign(seed=int(seed))


def run_folder(exp: Experiment, run_name: str) -> str:
    """The folder name (before its settings key) of one run of a classifier experiment, e.g. ls0_integrated."""
    return run_name if run_name.startswith(exp.name) else f"{exp.name}_{run_name}"


def run_experiment(study, experiment: str | Experiment, save: bool = True) -> ExperimentResult:
    """Run (or reuse) a registered experiment (:mod:`asdlib.study.registry`) for every seed of the
    study, and save its scores (one file per selection rule, a ``seed`` column).

    Classifier experiments train one model per group of types with the experiment's
    overrides; ``transfer`` fine-tunes the integrated run of the same seed; reconstruction
    experiments train one model per machine type.
    """
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    if exp.kind == "transfer":
        return run_transfer(study, run_experiment(study, "integrated", save=False), exp.name, save)
    if exp.kind == "reconstruction":
        return run_reconstruction(study, exp.name, save)
    runs, tidy, scores = {}, [], {}
    for seed in study.seeds:
        runs[seed] = {}
        for run_name, types in exp.groups.items():
            r = train_classifier(study, run_folder(exp, run_name), types, exp.overrides, seed)
            t, s = evaluate_classifier(study, r, exp.name, types)
            runs[seed][run_name] = r
            tidy.append(_with_seed(t, seed))
            for sel, df in s.items():
                scores.setdefault(sel, []).append(_with_seed(df, seed))
    return _collect(study, exp.name, tidy, scores, runs, save)


def run_transfer(study, integrated: ExperimentResult, experiment: str = "transfer", save: bool = True,
                 overrides: Mapping[str, Any] | None = None) -> ExperimentResult:
    """E5 for each seed and selection rule: fine-tune the classifier of that rule's checkpoint of
    the integrated run of the same seed, per type; select the fine-tuned checkpoint by the same
    rule, and evaluate it."""
    runs, tidy, scores = {}, [], {}
    for seed, by_name in integrated.runs.items():
        run = by_name["integrated"]
        runs[seed] = {}
        scored = {}  # (fine-tuning run, epoch) -> per-clip scores: one epoch's weights are scored once
        for sel in SELECTIONS:
            if sel not in run.best:
                continue
            for t in MACHINE_TYPES:
                r = transfer_classifier(study, transfer_source(run, sel), t, overrides, seed)
                runs[seed][f"transfer_{t}__{sel}"] = r
                label, best = select_checkpoint(r, sel)  # never another rule's checkpoint under this rule's name
                key = (r.out_dir, best.epoch)
                t_, scored[key] = evaluate_checkpoint(study, best, experiment, label, [t], scores=scored.get(key))
                tidy.append(_with_seed(t_, seed))
                scores.setdefault(label, []).append(_with_seed(scored[key], seed))
    return _collect(study, experiment, tidy, scores, runs, save)


def transfer_source(run, selection: str) -> str:
    """The checkpoint of the integrated ``run`` that E5 fine-tunes for ``selection``: that rule's, or,
    where an earlier rule of :data:`SELECTIONS` chose the same epoch, the earlier rule's (the same
    weights, so they are fine-tuned once and the fine-tuned run serves both rules)."""
    epoch = run.best[selection].epoch
    first = next(s for s in SELECTIONS if s in run.best and run.best[s].epoch == epoch)
    return run.best[first].path


RECON_KINDS = ("autoencoder", "wavenet")
_RECON_COLUMNS = ["dataset", "machine_type", "machine_id", "label", "file"]


def recon_config(study, kind: str, seed: int | None = None) -> ReconConfig:
    """The profile's training settings of a reconstruction model."""
    common = {"seed": study.seed if seed is None else seed, "device": study.device}
    if kind == "autoencoder":
        return ReconConfig(**(study.profile.autoencoder | common))
    if kind == "wavenet":
        return ReconConfig.wavenet_defaults(**(study.profile.wavenet | common))
    raise ValueError(f"kind must be one of {RECON_KINDS}, got {kind!r}")


def _recon_checkpoint(path: Path, epochs: int):
    """``(model, checkpoint)`` of a finished run at ``path``, else ``None`` (absent or unfinished)."""
    if not path.exists():
        return None
    model, ckpt = load_recon_model(path)
    return (model, ckpt) if len(ckpt["history"]) == epochs else None


def _recon_models(study, kind: str, machine_type: str, train_one, score_one) -> tuple[pd.DataFrame, dict]:
    """One model per dataset of a machine type, as the DCASE2020 baseline trains them: the dev model on
    dev_data/<type>/train scores the dev test clips, the eval model on eval_data/<type>/train (the
    additional training set) the eval test clips. ``train_one(tr, ids, path)`` trains or reuses a model
    on cache rows ``tr`` (conditioned on the dataset's ``ids``), ``score_one(model, te, ids)`` scores
    rows ``te``. Returns the test scores and the run record: ``models`` per dataset (path, history,
    ids, n_train), and the dev model's (else the first one's) path and history at the top."""
    index = study.features.index
    scores, models = [], {}
    for dataset in DATASETS:
        tr = rows(index, [machine_type], "train", dataset)
        te = rows(index, [machine_type], "test", dataset)
        if len(tr) == 0 or len(te) == 0:
            continue
        ids = list(machine_ids(machine_type, dataset))
        path, model, history = train_one(tr, ids, dataset)
        meta = index.iloc[te][_RECON_COLUMNS].reset_index(drop=True)
        scores.append(meta.assign(score=score_one(model, te, ids)))
        models[dataset] = {"path": str(path), "history": pd.DataFrame(history), "ids": ids, "n_train": int(len(tr))}
    if not models:
        raise ValueError(f"no {kind} of {machine_type}: no dataset has both training and test clips")
    first = models.get("dev") or next(iter(models.values()))
    return pd.concat(scores, ignore_index=True), {"path": first["path"], "history": first["history"], "models": models}


def _recon_path(study, kind: str, machine_type: str, dataset: str, *settings) -> Path:
    key = settings_key(kind, *settings, machine_type, dataset, study.features.key)
    return study.work_dir / "models" / f"{kind}_{machine_type}_{dataset}-{key}.pt"


def autoencoder_type(study, machine_type: str, cfg: ReconConfig) -> tuple[pd.DataFrame, dict]:
    """Train (or reuse) the autoencoders of one machine type, one per dataset as the DCASE2020 baseline
    (its "last 10 % for validation" then holds out the dataset's last ID, as there); test scores and record."""
    feats = study.features.features

    def train_one(tr, ids, dataset):
        path = _recon_path(study, "autoencoder", machine_type, dataset, cfg, None)
        done = _recon_checkpoint(path, cfg.epochs)
        if done is not None:
            return path, done[0], done[1]["history"]
        return (path, *fit_autoencoder(feats, tr, cfg, out_path=path, progress=study.progress))

    def score_one(model, te, ids):
        return score_autoencoder(model, feats, te, device=study.device)

    return _recon_models(study, "autoencoder", machine_type, train_one, score_one)


def wavenet_type(study, machine_type: str, cfg: ReconConfig) -> tuple[pd.DataFrame, dict]:
    """Train (or reuse) the WaveNets of one machine type, one per dataset like the autoencoder, each
    conditioned on its dataset's IDs; test scores and record."""
    index, feats = study.features.index, study.features.features

    def wavenet_config(ids):
        return WaveNetConfig(**({"n_mels": feats.shape[1], "num_ids": len(ids)} | study.profile.wavenet_model))

    def train_one(tr, ids, dataset):
        wcfg = wavenet_config(ids)
        path = _recon_path(study, "wavenet", machine_type, dataset, cfg, wcfg)
        done = _recon_checkpoint(path, cfg.epochs)
        if done is not None:
            return path, done[0], done[1]["history"]
        id_tr = [ids.index(m) for m in index.loc[tr, "machine_id"]]
        return (path, *fit_wavenet(feats, tr, cfg, wcfg, id_index=id_tr, out_path=path, progress=study.progress))

    def score_one(model, te, ids):
        return score_wavenet(model, feats, te, id_index=[ids.index(m) for m in index.loc[te, "machine_id"]],
                             device=study.device)

    return _recon_models(study, "wavenet", machine_type, train_one, score_one)


def run_reconstruction(study, kind: str, save: bool = True) -> ExperimentResult:
    """Method 2: autoencoders or WaveNets per machine type and dataset on their normal training clips
    (the dev model scores the dev test clips, the eval model the eval test clips).

    Scores are the clip's mean reconstruction (AE) or next-frame prediction (WaveNet) error;
    there is no checkpoint selection (the final epoch is used, as the DCASE baseline does),
    so the tidy rows carry ``selection='final'``. Runs are reused by a key of their settings.
    """
    per_type = autoencoder_type if kind == "autoencoder" else wavenet_type
    index = study.features.index
    runs, tidy, scores = {}, [], []
    for seed in study.seeds:
        cfg = recon_config(study, kind, seed)
        runs[seed], per_seed = {}, []
        for t in MACHINE_TYPES:
            if not any(len(rows(index, [t], "train", d)) and len(rows(index, [t], "test", d)) for d in DATASETS):
                continue
            s, runs[seed][t] = per_type(study, t, cfg)
            per_seed.append(s)
        seed_scores = pd.concat(per_seed, ignore_index=True)
        tidy.append(evaluate_scores(seed_scores, kind, seed, selection="final"))
        scores.append(_with_seed(seed_scores, seed))
    return _collect(study, kind, tidy, {"final": scores}, runs, save)
