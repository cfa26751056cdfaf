"""ID-classification training (the study's Method 1): config, resumable loop, checkpoint selection.

One :class:`TrainConfig` holds every setting and is saved in each checkpoint. :func:`fit`
trains on an in-memory (or memory-mapped) feature array and writes, under ``out_dir``:
``last.pt`` every epoch, ``best_<criterion>.pt`` (with ``best_<criterion>.outputs.npz``, the eval sets'
outputs of those weights, when an eval epoch wrote it: the final scoring reuses them), ``history.csv``
and ``summary.json``.

Why the loop looks the way it does:
- All randomness of the loop comes from two seeded ``torch.Generator`` objects (shuffling
  and crops; mixup), both on the host whatever the device and wherever the features sit,
  whose states are in the checkpoint, and dropout uses the global torch RNG, also saved; so
  a run resumed from ``last.pt`` is bit-identical to an uninterrupted one on CPU. On the host
  because where the features live depends on each GPU's free memory: a generator that
  followed them would draw other numbers on a rank (or machine) whose features stayed on the
  host, so DDP ranks would train on different "global" batches, and its saved state would not
  load there. The draws are a few hundred numbers per step, copied to the device without a wait.
- Steps per epoch = floor(train clips / batch): the ragged last batch is dropped (a batch
  of one would break batch norm, and a fixed count keeps the per-step schedule exact).
  ``sampling="balanced"`` draws the same number of clips per epoch, with replacement and
  every ID equally likely (:func:`epoch_order`).
- ``input_norm="per_mel"``: the mean and standard deviation of each mel bin over the clips
  trained on (:func:`per_mel_stats`, never the validation or test clips) become buffers of the
  model's input layer before the first step (:func:`prepare_input_norm`), so training,
  evaluation, checkpoints and ``asdlib score`` all apply the same transform.
- On CUDA the whole feature array sits on the GPU when it fits (a 41-ID DCASE cache in
  float16 is ~1.8 GB); batches are then gathered by index on the device and the step loop
  never waits for the host: the loss is accumulated on the device and read once per epoch
  (and every ``log_every`` steps for the progress bar).
- Mixed precision is bf16 autocast, on CUDA only: bf16 has float32's range, so no loss
  scaler is needed (and none is saved).
- Under torchrun the run is one DistributedDataParallel run over the ranks, with the
  single-process batch, schedule and seeds (:mod:`asdlib.classify.distributed`); rank 0
  alone evaluates and writes. ``cfg.compile`` compiles the model the steps call.
- Evaluation (every ``eval_every`` epochs) reads eval clips kept on the device for the run
  and returns its outputs to the host once per set, not once per batch.

:func:`fit` strings together small steps over one :class:`TrainRun` (the run's state):
:func:`start_run`, :func:`resume_run`, and per epoch :func:`train_epoch`,
:func:`evaluate_epoch` (held-out loss; AUC/pAUC of the eval sets through
:func:`asdlib.classify.inference.embed` and :mod:`asdlib.report.metrics`) and
:func:`save_epoch`; then :func:`finish_run`.
"""
from __future__ import annotations

import copy
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.config import flatten
from ..core.errors import AsdlibError, ConfigError
from ..core.utils import atomic_write_text, resolve_device, set_seed
from . import distributed
from .augment import mixup_params
from .checkpoint import load_checkpoint, normalise_class_names, rng_state, save_checkpoint, set_rng_state
from .config import EXECUTION_SETTINGS, TrainConfig, build_model
from .evaluate import EvalSet, eval_outputs_path, evaluate_set, held_out_loss, save_eval_outputs, update_best
from .inference import Classifier, Outputs, embed
from .losses import build_loss
from .schedule import WarmupCosineRestarts
from .scorers import Scorer, make_scorer


@dataclass
class BestCheckpoint:
    criterion: str
    path: str
    epoch: int
    value: float
    metrics: dict


@dataclass
class TrainResult:
    out_dir: str
    last_path: str
    epochs_run: int
    history: pd.DataFrame
    best: dict[str, BestCheckpoint] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)


def split_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_idx, val_idx): ``fraction`` of each class, at least one clip kept for training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(int(round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def place_features(features, device: torch.device) -> torch.Tensor:
    """The feature array as a tensor: resident on the GPU when it fits, else pinned host memory."""
    if torch.is_tensor(features):
        x = features
    else:
        with warnings.catch_warnings():  # a read-only memmap: we never write to it
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(np.asarray(features))
    if device.type != "cuda":
        return x
    free, _ = torch.cuda.mem_get_info(device)
    if x.numel() * x.element_size() < 0.5 * free:  # leave half for weights, activations, eval
        return x.to(device)
    return x.pin_memory()


def _crop_offsets(n: int, t: int, crop: int | None, gen: torch.Generator) -> torch.Tensor | None:
    """Random start frames (n, 1, 1) of time crops, drawn from ``gen`` (None: whole clips)."""
    if crop is None or crop >= t:
        return None
    return torch.randint(0, t - crop + 1, (n, 1, 1), generator=gen, device=gen.device)


def _crop(xb: torch.Tensor, crop: int | None, off: torch.Tensor | None) -> torch.Tensor:
    """Time crops (B, M, T) -> (B, M, crop) at offsets ``off`` (B, 1, 1)."""
    if off is None:
        return xb
    idx = off.to(xb.device) + torch.arange(crop, device=xb.device)  # (B, 1, crop)
    return torch.gather(xb, 2, idx.expand(-1, xb.shape[1], -1))


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device`` without a host wait: a copy from pageable memory makes
    the host wait for the stream (every queued kernel) before it returns; a pinned one does not."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def make_batch(x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, cfg: TrainConfig, num_classes: int,
               device: torch.device, gen: torch.Generator, mix_gen: torch.Generator | None,
               rows: slice = slice(None)):
    """Gather clips ``idx`` (on the data's device), crop, move, mix: ``(x (b, 1, M, T'), target)``.

    ``idx`` is the whole (global) batch and every random draw (crop offsets, mixup lambda and
    partners) is made for all of it; ``rows`` picks the positions returned (a rank's share
    under DDP, see :mod:`asdlib.classify.distributed`), each mixed with its partner wherever
    that partner sits in the batch. With all rows (the default) this is the plain batch.
    """
    off = _crop_offsets(idx.shape[0], x_all.shape[-1], cfg.crop_frames, gen)  # (B, 1, 1) or None, on gen's device
    if off is not None:
        off = _to_device(off, idx.device)
    pos = torch.arange(idx.shape[0], device=idx.device)[rows]  # (b,) positions in the batch

    def clips(p: torch.Tensor) -> torch.Tensor:  # (b,) positions -> (b, 1, M, T') float
        xb = x_all[idx[p]].to(device, non_blocking=True)
        return _crop(xb, cfg.crop_frames, None if off is None else off[p.to(off.device)]).float().unsqueeze(1)

    xb = clips(pos)
    target = y_all[idx[pos]].to(device, non_blocking=True)  # (b,)
    if cfg.mixup_alpha > 0:
        lam, perm = mixup_params(idx.shape[0], cfg.mixup_alpha, mix_gen)
        partner = _to_device(torch.from_numpy(perm), idx.device)[pos]  # (b,)
        t_a = torch.nn.functional.one_hot(target.long(), num_classes).to(xb.dtype)
        t_b = torch.nn.functional.one_hot(y_all[idx[partner]].to(device, non_blocking=True).long(),
                                          num_classes).to(xb.dtype)
        xb = lam * xb + (1.0 - lam) * clips(partner)  # (b, 1, M, T')
        target = lam * t_a + (1.0 - lam) * t_b  # (b, C)
    if cfg.channels_last and device.type == "cuda":
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, target


def train_step(model: nn.Module, optimizer, scheduler, loss_fn, xb: torch.Tensor, target: torch.Tensor,
               use_amp: bool) -> torch.Tensor:
    """One optimisation step; returns the loss as a device tensor (no host sync)."""
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=use_amp):
        logits = model(xb)  # (B, C)
    loss = loss_fn(logits.float(), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


@dataclass
class TrainRun:
    """What one training run carries from epoch to epoch (built by :func:`start_run`)."""

    cfg: TrainConfig
    out_dir: Path
    device: torch.device
    class_names: list[str]
    feature_config: dict | None
    data_info: dict | None  # what the features come from (synthetic or real, clip lengths): FeatureStore.data_info
    labels: np.ndarray  # (N,) int64 class of every clip
    train_idx: np.ndarray  # rows trained on
    val_idx: np.ndarray  # rows held out for val_loss and threshold calibration
    x_all: torch.Tensor  # (N, M, T) on the GPU when it fits, else host memory
    y_all: torch.Tensor  # (N,) on x_all's device
    train_t: torch.Tensor  # train_idx on x_all's device
    batch: int
    steps: int  # optimisation steps per epoch
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineRestarts
    loss_fn: nn.Module
    gens: dict[str, torch.Generator]  # "loop" (shuffling, crops) and "mixup"; saved in every checkpoint
    scorer: Scorer  # cfg.eval_scorer, for the eval sets
    use_amp: bool
    frozen_backbone: bool  # transfer learning: only the classifier trains (see _freeze_hook)
    net: nn.Module | None = None  # what the steps call: the model, DDP-wrapped and/or compiled (None: model)
    dist: distributed.Dist = field(default_factory=distributed.Dist)
    eval_sets: dict[str, EvalSet] | None = None  # rank 0's eval sets, features on the device (fit)
    eval_outputs: dict[str, Outputs] = field(default_factory=dict)  # this epoch's outputs on the eval sets
    history: list[dict] = field(default_factory=list)
    best: dict[str, dict] = field(default_factory=dict)
    epoch: int = 0  # last completed epoch

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def classifier(self) -> Classifier:
        """The model being trained, as inference sees it (crop and batch size from ``cfg``)."""
        return Classifier(self.model, self.cfg, self.device, self.class_names)


def start_run(features, labels, cfg: TrainConfig, out_dir: str | Path, class_names: Sequence | None = None,
              feature_config: dict | None = None, model: nn.Module | None = None,
              trainable: Callable[[nn.Module], list[nn.Parameter]] | None = None,
              data_info: dict | None = None, val_index=None) -> TrainRun:
    """Check the inputs, seed, split off the validation clips (``val_index`` if given, else a
    stratified ``cfg.val_fraction``) and build model, optimiser, schedule, loss and generators
    (in this order: the model's initialisation draws on the seeded RNG)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist_ = distributed.current()
    device = torch.device(resolve_device(distributed.rank_device(cfg.device, dist_)))
    set_seed(cfg.seed, deterministic=cfg.deterministic)
    labels_np = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels, dtype=np.int64)
    if len(labels_np) != len(features):
        raise ConfigError(f"{len(features)} feature rows but {len(labels_np)} labels")
    num_classes = int(labels_np.max()) + 1 if class_names is None else len(class_names)
    class_names = normalise_class_names(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if labels_np.min() < 0 or labels_np.max() >= num_classes:
        raise ConfigError(f"labels must lie in [0, {num_classes}); got {labels_np.min()}..{labels_np.max()}")
    if val_index is None:
        train_idx, val_idx = split_validation(labels_np, cfg.val_fraction, cfg.seed)
    else:
        val_idx = np.unique(np.asarray(val_index, dtype=np.int64).reshape(-1))
        if len(val_idx) and (val_idx[0] < 0 or val_idx[-1] >= len(labels_np)):
            raise ConfigError(f"val_index must lie in [0, {len(labels_np)}), got {val_idx[0]}..{val_idx[-1]}")
        train_idx = np.setdiff1d(np.arange(len(labels_np)), val_idx)
    if len(train_idx) < 2:
        raise ConfigError(f"only {len(train_idx)} training clips after the validation split")

    x_all = place_features(features, device)  # (N, M, T), float16 ok
    y_all = torch.as_tensor(labels_np, device=x_all.device)
    train_t = torch.as_tensor(train_idx, device=x_all.device)
    bs = min(cfg.batch_size, len(train_idx))
    steps = max(1, len(train_idx) // bs)  # (B,)-sized steps only: see the module docstring
    if bs % dist_.world:
        raise ConfigError(f"the batch of {bs} clips cannot be shared by {dist_.world} processes; "
                          f"use a batch_size that is a multiple of {dist_.world}")

    model = model if model is not None else build_model(cfg, num_classes)
    if dist_.active:  # before the optimiser: the converted layers keep the same parameter tensors
        model = distributed.convert_batchnorm(model, device)
    model.to(device)
    prepare_input_norm(model, cfg, x_all, train_t)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = trainable(model) if trainable is not None else list(model.parameters())
    net = distributed.wrap(model, device) if dist_.active else model
    if cfg.compile:
        net = torch.compile(net)
    optimizer = torch.optim.Adam(params, lr=cfg.schedule.max_lr, weight_decay=cfg.weight_decay)
    scheduler = WarmupCosineRestarts(optimizer, cfg.schedule, steps_per_epoch=steps, epochs=cfg.epochs)
    loss_fn = build_loss(cfg.loss)
    # Every generator on the host, wherever the features sit (see the module docstring): the same
    # draws on every rank and machine, and a saved state that loads anywhere.
    gen = torch.Generator().manual_seed(cfg.seed)
    mix_gen = torch.Generator().manual_seed(cfg.seed + 1)
    return TrainRun(cfg=cfg, out_dir=out_dir, device=device, class_names=class_names, feature_config=feature_config,
                    data_info=data_info, labels=labels_np, train_idx=train_idx, val_idx=val_idx, x_all=x_all, y_all=y_all,
                    train_t=train_t, batch=bs, steps=steps, model=model, optimizer=optimizer, scheduler=scheduler,
                    loss_fn=loss_fn, gens={"loop": gen, "mixup": mix_gen}, scorer=make_scorer(cfg.eval_scorer),
                    use_amp=cfg.amp and device.type == "cuda", frozen_backbone=trainable is not None, net=net,
                    dist=dist_)


def resume_run(run: TrainRun) -> bool:
    """Continue from ``last.pt`` when there is one: model, optimiser, schedule, every RNG, history,
    best checkpoints and epoch, so the run goes on bit-identically (on CPU). True if resumed."""
    if not run.last_path.exists():
        return False
    state = load_checkpoint(run.last_path, map_location="cpu")  # load_state_dict moves to the device
    _check_resumable(state, run.cfg, run.last_path)
    saved_val = state["val_index"].cpu().numpy() if "val_index" in state else None
    if saved_val is not None and not np.array_equal(np.sort(saved_val), run.val_idx):
        raise ConfigError(f"{run.last_path} was written with another validation split (held-out clips); "
                          "use another out_dir or resume=False")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], run.gens, source=run.last_path)
    run.history, run.best, run.epoch = list(state["history"]), dict(state["best"]), int(state["epoch"])
    return True


def run_steps(run: TrainRun, epoch: int, progress: bool = False) -> torch.Tensor:
    """The optimisation steps of one epoch; their losses ``(steps,)`` as a device tensor.

    The loop never waits for the device (no ``.item()``, no data-dependent Python branch),
    except for the progress bar's value every ``log_every`` steps when ``progress`` is on;
    ``tests/test_train.py`` checks this stays so. Under DDP each rank steps through its share
    of every global batch and the losses are its own rows' means.
    """
    cfg, gen = run.cfg, run.gens["loop"]
    net = run.net if run.net is not None else run.model
    net.train()
    if run.frozen_backbone:
        _freeze_hook(run.model)
    if run.dist.active:  # dropout masks: per rank, and a function of the epoch (exact resume)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + run.dist.rank)
    perm = epoch_order(run, gen)  # (>= steps * batch,) rows of x_all
    rows = run.dist.shard(run.batch)
    step_losses = torch.zeros(run.steps, device=run.device)
    bar = tqdm(range(run.steps), disable=not progress, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
    for step in bar:
        xb, target = make_batch(run.x_all, run.y_all, perm[step * run.batch : (step + 1) * run.batch], cfg,
                                len(run.class_names), run.device, gen, run.gens["mixup"], rows)  # (b, 1, M, T'), (b,) or (b, C)
        step_losses[step] = train_step(net, run.optimizer, run.scheduler, run.loss_fn, xb, target, run.use_amp)
        if progress and (step + 1) % cfg.log_every == 0:
            bar.set_postfix(loss=f"{step_losses[step].item():.4f}", lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
    return step_losses


def train_epoch(run: TrainRun, epoch: int, progress: bool = False) -> dict:
    """One pass over the training clips; ``{'epoch', 'lr', 'train_loss'}``. A non-finite loss
    stops the run (before anything of this epoch is saved). Under DDP the losses are averaged
    over the ranks (one all-reduce per epoch), so every rank sees the global batch's."""
    step_losses = distributed.all_mean(run_steps(run, epoch, progress))
    bad = ~torch.isfinite(step_losses)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise AsdlibError(f"non-finite training loss at epoch {epoch}, step {first + 1}/{run.steps}; "
                          f"stopped. The last good checkpoint is {run.last_path} (epoch {epoch - 1}).")
    return {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"], "train_loss": float(step_losses.mean())}


def place_eval_sets(eval_sets: dict[str, EvalSet] | None, device: torch.device) -> dict[str, EvalSet] | None:
    """The eval sets with their features on ``device`` for the whole run (when they fit; see
    :func:`place_features`), so evaluation epochs copy nothing from the host."""
    if not eval_sets or device.type != "cuda":
        return eval_sets
    out = {}
    for name, es in eval_sets.items():
        es = copy.copy(es)  # same meta and dropped IDs; no second validation
        es.features = place_features(es.features, device)
        out[name] = es
    return out


def evaluate_epoch(run: TrainRun, row: dict, eval_sets: dict[str, EvalSet] | None) -> None:
    """Add to ``row`` the held-out ``val_loss`` and, on eval epochs, ``<set>_auc``/``<set>_pauc``.

    Batched at the run's batch size in eval mode (bf16 on CUDA when the steps are), on clips
    already on the device; ``row['eval_s']`` is the time it took."""
    t0 = time.perf_counter()
    clf, epoch = run.classifier, row["epoch"]
    run.eval_outputs = {}
    if len(run.val_idx):
        vi = torch.as_tensor(run.val_idx, device=run.x_all.device)
        row["val_loss"] = held_out_loss(clf, run.x_all[vi], run.y_all[vi], run.loss_fn, amp=run.use_amp)
    if eval_sets and (epoch % run.cfg.eval_every == 0 or epoch == run.cfg.epochs):
        fit_emb = fit_classes = None
        if run.scorer.needs_fit:  # embedding scorers learn from the normal training clips only
            fit_emb, fit_classes = embed(clf, run.x_all[run.train_t], amp=run.use_amp).emb, run.labels[run.train_idx]
        for name, es in eval_sets.items():
            run.eval_outputs[name] = embed(clf, es.features, amp=run.use_amp)  # kept for save_epoch
            _, summ = evaluate_set(clf, es, run.scorer, fit_emb, fit_classes, amp=run.use_amp, name=name,
                                   outputs=run.eval_outputs[name])
            row[f"{name}_auc"], row[f"{name}_pauc"] = summ["auc"], summ["pauc"]
    row["eval_s"] = time.perf_counter() - t0


def _snapshot(run: TrainRun, epoch: int) -> dict:
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "rng": rng_state(run.gens), "epoch": epoch,
            "config": run.cfg.to_dict(), "class_names": run.class_names, "feature_config": run.feature_config,
            "data": run.data_info or {}, "n_clips": int(len(run.labels)), "history": run.history, "best": run.best, "val_index": torch.as_tensor(run.val_idx)}


def save_epoch(run: TrainRun, row: dict, dev_name: str | None) -> None:
    """Record the epoch: history, ``best_<criterion>.pt`` for the criteria it improved, ``last.pt``
    (after the best ones, so a kill in between resumes into a consistent state) and history.csv."""
    run.history.append(row)
    run.epoch = row["epoch"]
    improved = update_best(run.best, row, run.cfg.select, dev_name)
    state = _snapshot(run, row["epoch"])
    for crit in improved:
        run.best[crit]["path"] = str(run.out_dir / f"best_{crit}.pt")
        keep_eval_outputs(run, run.best[crit]["path"], row["epoch"])
        save_checkpoint(run.best[crit]["path"], {**state, "best": run.best})
    save_checkpoint(run.last_path, {**state, "best": run.best})
    atomic_write_text(run.out_dir / "history.csv", pd.DataFrame(run.history).to_csv(index=False))


def keep_eval_outputs(run: TrainRun, checkpoint: str, epoch: int) -> None:
    """Keep this epoch's eval-set outputs beside ``checkpoint`` (same weights) for the final scoring
    to reuse; where the epoch has none (not an eval epoch) or they ran in bf16 (not what scoring a
    saved checkpoint does), remove an older epoch's file instead. Written before the checkpoint."""
    path = eval_outputs_path(checkpoint)
    if run.eval_outputs and not run.use_amp and run.eval_sets:
        save_eval_outputs(path, epoch, run.eval_outputs, run.eval_sets)
    else:
        path.unlink(missing_ok=True)


def finish_run(run: TrainRun, write: bool = True) -> TrainResult:
    """The run's :class:`TrainResult`, with ``summary.json`` written beside the checkpoints."""
    history, best = run.history, run.best
    result = TrainResult(out_dir=str(run.out_dir), last_path=str(run.last_path), epochs_run=len(history),
                         history=pd.DataFrame(history), class_names=run.class_names,
                         best={k: BestCheckpoint(criterion=k, **v) for k, v in best.items()})
    summary = {"config": run.cfg.to_dict(), "device": str(run.device), "n_train": int(len(run.train_idx)),
               "n_val": int(len(run.val_idx)), "epochs_run": result.epochs_run, "class_names": run.class_names,
               "best": best, "torch": torch.__version__, "last": history[-1] if history else None,
               "processes": run.dist.world}
    if write:
        atomic_write_text(run.out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return result


def fit(
    features,
    labels,
    cfg: TrainConfig,
    out_dir: str | Path,
    eval_sets: dict[str, EvalSet] | None = None,
    class_names: Sequence | None = None,
    feature_config: dict | None = None,
    progress: bool = True,
    resume: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    model: nn.Module | None = None,
    trainable: Callable[[nn.Module], list[nn.Parameter]] | None = None,
    data_info: dict | None = None,
    val_index=None,
) -> TrainResult:
    """Train an ID classifier on ``features`` ``(N, n_mels, T)`` with int ``labels`` ``(N,)``.

    ``eval_sets`` are scored every ``cfg.eval_every`` epochs (key ``'dev'`` feeds the
    ``dev_auc_pauc`` criterion, else the first set). ``callback(epoch, row)`` runs after each
    epoch's checkpoint is written. ``model``/``trainable`` let :func:`finetune_classifier`
    pass a prepared model and the parameters to optimise (default: all). ``feature_config`` and
    ``data_info`` (:attr:`asdlib.features.cache.FeatureStore.data_info`: synthetic or real data,
    the clips' lengths) are stored in every checkpoint, for ``asdlib score``. ``val_index``: the
    rows to hold out (positions in ``features``), instead of a fresh stratified split of
    ``cfg.val_fraction``; transfer learning passes the integrated run's held-out clips.

    ``history.csv`` columns: epoch, lr (at the epoch's last step), train_loss (mean over the
    epoch's steps, mixup targets), val_loss, ``<set>_auc``/``<set>_pauc`` on eval epochs,
    eval_s (evaluation time), time_s (the epoch's, evaluation included).
    With pinned host features (a cache too large for the GPU) each batch is gathered on the
    host and copied; that path is correct but slower than the resident one.

    Under torchrun (a process group is initialised, see :mod:`asdlib.classify.distributed`)
    every rank calls ``fit`` with the same arguments; rank 0 evaluates and writes, the
    ``callback`` runs on every rank, and every rank returns the same :class:`TrainResult`.
    """
    run = start_run(features, labels, cfg, out_dir, class_names, feature_config, model, trainable, data_info,
                    val_index)
    if resume:
        resume_run(run)
    if not distributed.agree(run.epoch, run.device):
        raise ConfigError(f"the processes found different checkpoints in {run.out_dir} (this rank: epoch {run.epoch}); "
                          "under torchrun the output folder must be shared by every node")
    main = run.dist.main
    run.eval_sets = place_eval_sets(eval_sets, run.device) if main else None
    dev_name = None if not eval_sets else ("dev" if "dev" in eval_sets else next(iter(eval_sets)))
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        row = train_epoch(run, epoch, progress and main)
        if main:
            evaluate_epoch(run, row, run.eval_sets)
            row["time_s"] = time.perf_counter() - t0
            save_epoch(run, row, dev_name)
            if progress:
                tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        else:
            run.epoch = epoch
        if callback is not None:
            callback(epoch, row)
    if run.dist.active:
        distributed.barrier()  # rank 0 has written last.pt
        if not main:
            state = load_checkpoint(run.last_path, map_location="cpu")
            run.history, run.best = list(state["history"]), dict(state["best"])
            return finish_run(run, write=False)
    return finish_run(run)


def _check_resumable(state: dict, cfg: TrainConfig, path: Path) -> None:
    """Resuming is only sound with the same settings; ``epochs`` may grow under a restarts schedule
    (which ignores it), not under a one-cycle schedule (whose length it is)."""
    saved = flatten(TrainConfig.from_dict(state["config"]))
    now = flatten(cfg)
    free = EXECUTION_SETTINGS + (("epochs",) if cfg.schedule.cycle == "restarts" else ())
    diff = [k for k in now if k not in free and saved.get(k) != now[k]]
    if diff:
        raise ConfigError(f"{path} was written with other settings ({', '.join(diff)}); "
                          "use another out_dir or resume=False")


def _freeze_hook(model: nn.Module) -> None:
    """Put everything but the classifier in eval mode: frozen batch norms keep their running
    statistics and the frozen embedding head's dropout is off, so the backbone is a fixed map."""
    model.eval()
    model.get_classifier().train()


# ---------------------------------------------------------------- sampling and input normalisation

def balanced_epoch_indices(labels: np.ndarray, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` positions into ``labels`` drawn with replacement, every class equally likely (each
    clip with probability ``1 / (n_classes * n_clips_of_its_class)``): a class with 21 clips is
    seen as often as one with 210, so the classifier cannot do well by neglecting it. Drawn
    from ``gen`` on its device (deterministic under its seed)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    w = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64, device=gen.device)  # (N,)
    return torch.multinomial(w, n, replacement=True, generator=gen)


def epoch_order(run: TrainRun, gen: torch.Generator) -> torch.Tensor:
    """The rows of ``run.x_all`` one epoch trains on, in order (the first ``steps * batch`` are
    used): a permutation of the training clips (``sampling="shuffle"``) or ``steps * batch``
    class-balanced draws with replacement (``"balanced"``)."""
    if run.cfg.sampling == "balanced":
        pos = balanced_epoch_indices(run.labels[run.train_idx], run.steps * run.batch, gen)
    else:
        pos = torch.randperm(len(run.train_idx), generator=gen, device=gen.device)
    return run.train_t[_to_device(pos, run.x_all.device)]


@torch.no_grad()
def per_mel_stats(features, rows=None, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``(M,)`` of each mel bin over all frames of clips ``rows`` of
    ``features`` ``(N, M, T)`` (array or tensor; default all rows), in float64, chunk by chunk
    (two passes: the mean, then the squared deviations); the std is floored at 1e-5."""
    x = features if torch.is_tensor(features) else torch.from_numpy(np.asarray(features))
    idx = torch.arange(len(x)) if rows is None else torch.as_tensor(rows).reshape(-1)
    idx = idx.to(x.device)
    if len(idx) == 0:
        raise ConfigError("per-mel statistics need at least one clip")
    n = len(idx) * x.shape[-1]
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for i in range(0, len(idx), chunk):
        total += x[idx[i:i + chunk]].double().sum((0, 2))
    mean = total / n
    sq = torch.zeros_like(total)
    for i in range(0, len(idx), chunk):
        sq += ((x[idx[i:i + chunk]].double() - mean[:, None]) ** 2).sum((0, 2))
    return mean.float().cpu(), (sq / n).sqrt().clamp_min(1e-5).float().cpu()


def prepare_input_norm(model: nn.Module, cfg: TrainConfig, x_all: torch.Tensor, train_rows: torch.Tensor) -> None:
    """``input_norm="per_mel"``: give the model's input layer the per-mel statistics of the clips
    trained on, unless it has some (a pre-trained backbone keeps the statistics it learnt with)."""
    if cfg.input_norm != "per_mel":
        return
    norm = getattr(model, "input_norm", None)
    if norm is None or not hasattr(norm, "set_mel_stats"):
        raise ConfigError(f"input_norm='per_mel' needs a model with an InputNorm layer; {type(model).__name__} has none")
    if not norm.per_mel:
        norm.set_mel_stats(*per_mel_stats(x_all, train_rows))
