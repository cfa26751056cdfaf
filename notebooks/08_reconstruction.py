# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Reconstruction-based detection (the study's Method 2)
#
# Train on normal clips to reconstruct (or predict) the input; the error is the anomaly score.
# - **The DCASE2020 baseline autoencoder**, exactly as published: 5 log-mel frames stacked
#   (640 inputs), Dense 640-128-128-128-128-8-128-128-128-128-640 with BatchNorm + ReLU, MSE,
#   Adam, batch 512, one model per machine type and dataset (dev_data/<type>/train for the
#   development figures, eval_data/<type>/train for the evaluation IDs, as the baseline trains
#   them); the clip's score is its mean squared error.
#   Frame vectors are streamed from the feature cache, so memory does not grow with the data.
# - **A WaveNet** of dilated causal convolutions with gated activations, residual and skip
#   connections, predicting the next log-mel frame from the past ones (conditioned on the
#   machine ID); the score is the mean prediction error. Like the autoencoder, one model per
#   machine type and dataset, conditioned on that dataset's IDs.
# - The best ID-classification model (E5 transfer learning, notebook 05) on the same test clips.

# %% tags=["parameters"]
data_root = None  # folder with dev_data/ and eval_data/; None: the embedded synthetic dataset
synthetic = None  # None: detect (a synthetic root has SYNTHETIC.md)
profile = "smoke"  # ci | smoke | full (asdlib/study/profiles.py)
device = "auto"
seed = 0
seeds = None  # how many seeds each experiment runs for; None: the profile's
results_dir = "../results"
work_dir = None  # caches and checkpoints; None: runs/<profile>

# %%
from asdlib.study import open_study

study = open_study(globals())  # the parameters cell's values

# %%
import pandas as pd

from asdlib.study.experiments import run_experiment

ae = run_experiment(study, "autoencoder")
wavenet = run_experiment(study, "wavenet")
transfer_tidy = study.load_tidy(["05_transfer_learning"])  # E5 results of notebook 05
tidy = pd.concat([ae.tidy, wavenet.tidy], ignore_index=True)
study.save_tidy(tidy, "08_reconstruction")

# %% [markdown]
# ## The autoencoder against the baseline's published development figures

# %%
from asdlib.report.tables import study_table

t_ae = study_table(tidy, "autoencoder", reference="baseline_ae")
study.save_table(t_ae, "08_autoencoder", "DCASE2020 baseline autoencoder (AUC / pAUC %), beside its published dev figures (study)")
t_ae

# %%
t_wn = study_table(tidy, "wavenet")
study.save_table(t_wn, "08_wavenet", "WaveNet next-frame predictor (AUC / pAUC %)")
t_wn

# %% [markdown]
# ## Reconstruction vs ID classification on the same splits

# %%
from asdlib.report.tables import side_by_side

both = pd.concat([tidy, transfer_tidy[transfer_tidy.selection == "dev_auc_pauc"].assign(selection="final")],
                 ignore_index=True)
cmp = side_by_side(both, ["autoencoder", "wavenet", "transfer"], references={"autoencoder": "baseline_ae"},
                   reference_datasets=["dev"])
study.save_table(cmp, "08_reconstruction_vs_classification",
                 "Autoencoder, WaveNet and the transfer-learned ID classifier on the same test clips (%)")
cmp

# %% [markdown]
# ## Error maps: a normal and an anomalous clip
# Input, reconstruction (AE: middle frame of each stacked vector; WaveNet: the prediction of
# each frame) and squared error, for the same machine type and ID.

# %%
from asdlib.recon import load_recon_model, reconstruction_map
from asdlib.study import explore, plots

store = study.features
examples = explore.pick_examples(store.index, seed=seed)
machine_type = "fan" if "fan" in examples else next(iter(examples))
pair = examples[machine_type]
for kind, res in (("autoencoder", ae), ("wavenet", wavenet)):
    run = res.run(machine_type)["models"][pair["normal"].dataset]  # first seed; the model of the clips' dataset
    model, _ = load_recon_model(run["path"])
    maps = {}
    for name, row in pair.items():
        id_ = run["ids"].index(row.machine_id) if kind == "wavenet" else None
        maps[f"{name} ({row.file})"] = reconstruction_map(model, store.features[row.name].astype("float32"), id_)
    fig = plots.plot_error_maps(maps, f"{kind}: {machine_type}, normal vs anomalous clip")
    study.save_figure(fig, f"08_error_maps_{kind}")

# %%
curves = ({f"AE {t}": r["history"] for t, r in ae.runs[study.seed].items()}
          | {f"WaveNet {t}": r["history"] for t, r in wavenet.runs[study.seed].items()})  # first seed, dev models
study.save_figure(plots.plot_training_curves(curves, ("train_loss", "val_loss")), "08_training_curves")

# %% [markdown]
# ## asdlib's score fusion beside its parts (asdlib's, not the study's)
# The study does not fuse detectors. asdlib's fusion (`asdlib.report.fusion`, the `fusion` rows of
# `results/real_toycar`) standardises each part's score per ID with statistics of **held-out normal
# training clips only** (z-score of the log score) and takes the maximum; no weight is learnt.
# asdlib's declared fusion is the classifier with the WaveNet (one detector per family; the
# autoencoder and the WaveNet rank clips alike); the three together and the other pairs are shown too.
# Here on one machine type of this run's data: an ID classifier of that type (the profile's
# settings, -log p), the baseline autoencoder and the WaveNet, each trained on the dev training
# clips less 20 % of each ID held out (the classifier's validation clips; the clips the statistics
# come from). First seed only, to keep it cheap; on synthetic data the numbers say nothing about
# real recordings.

# %%
from asdlib.study.fusion import fusion_type

fusion_machine = "ToyCar" if "ToyCar" in set(store.index["machine_type"]) else machine_type
fusion = fusion_type(study, fusion_machine)
t_fusion = (fusion.tidy.assign(value=lambda d: 100 * d["value"])
            .pivot_table(index=["method", "scorer"], columns=["machine_id", "metric"], values="value")
            .round(1))
t_fusion.columns = [f"ID{m} {k}" for m, k in t_fusion.columns]
t_fusion = t_fusion.assign(**{"mean AUC": t_fusion.filter(like=" AUC").mean(axis=1).round(1),
                              "mean pAUC": t_fusion.filter(like="pAUC").mean(axis=1).round(1)})
study.save_table(t_fusion.reset_index(), "08_fusion",
                 f"asdlib's score fusion (not the study's) on {fusion_machine} dev: parts and fused scores, "
                 f"AUC / pAUC % per ID, seed {study.seed}")
t_fusion
