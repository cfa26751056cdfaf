# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Loss ablation and label smoothing (study E3, E4)
#
# All on the integrated 41-ID model, everything else as E2:
# - **softmax** cross-entropy on torchvision-style bottleneck ResNet50 (global pooling, linear classifier);
# - **CosFace** and **ArcFace** (the E2 model, reused from notebook 03) on the IR-ResNet50 with the
#   BN-Dropout-FC-BN embedding head and a cosine classifier;
# - **focal** loss (alpha 1, gamma 1);
# - label smoothing **0.0** (E3) against **0.05** (E2);
# - beside them, not from the study: asdlib's **improved recipe** for the same model (registry
#   experiment `improved`), at the end of the notebook.

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
from IPython.display import Markdown, display

from asdlib.study.experiments import run_experiment

integrated = run_experiment(study, "integrated")  # reused from notebook 03
ls0, softmax, cosface, focal = (run_experiment(study, name) for name in ("ls0", "softmax", "cosface", "focal"))
improved = run_experiment(study, "improved")  # asdlib's recipe, not the study's (last section)
runs = {"arcface (E2)": integrated, "ls0": ls0, "softmax": softmax, "cosface": cosface, "focal": focal,
        "improved recipe": improved}
tidy = pd.concat([r.tidy for r in (ls0, softmax, cosface, focal, improved)], ignore_index=True)
study.save_tidy(tidy, "04_loss_ablation")
tidy_all = pd.concat([integrated.tidy, tidy], ignore_index=True)
study_rule = tidy_all[tidy_all.selection == "dev_auc_pauc"]

# %% [markdown]
# ## E4: the losses side by side
# AUC and pAUC (%) per machine type with Mean and Harmonic Mean rows; the study's figure beside each.

# %%
from asdlib.report.tables import compare_table

refs = {"softmax": "softmax", "cosface": "cosface", "integrated": "integrated", "focal": "focal"}
losses = ["softmax", "cosface", "integrated", "focal"]
for ds in ("dev", "eval"):
    for metric in ("AUC", "pAUC"):
        t = compare_table(study_rule, losses, ds, metric, references=refs).rename(
            columns=lambda c: c.replace("integrated", "arcface"))
        study.save_table(t, f"E4_losses_{ds}_{metric}",
                         f"E4 loss ablation, {ds} {metric} (%): softmax (bottleneck ResNet50), CosFace, ArcFace, focal")
        display(t)

# %% [markdown]
# ## E4 per loss, in the study's table format

# %%
from asdlib.report.tables import study_table

for exp in ("softmax", "cosface"):
    t = study_table(tidy, exp, reference=exp, selection="dev_auc_pauc")
    study.save_table(t, f"E4_{exp}", f"E4: integrated model with the {exp} loss, beside the study's figures")
t = study_table(tidy, "focal", reference="focal", selection="dev_auc_pauc")
study.save_table(t, "E4_focal", "E4: integrated model with focal loss (the study gives means only)")
t

# %% [markdown]
# ## E3: label smoothing 0.0 against 0.05

# %%
t3 = study_table(tidy, "ls0", reference="ls0", selection="dev_auc_pauc")
study.save_table(t3, "E3_ls0", "E3: label smoothing 0.0 (integrated model), beside the study's figures")
from asdlib.report.tables import side_by_side

ls = side_by_side(study_rule, ["ls0", "integrated"], metrics=["AUC"], references={"ls0": "ls0", "integrated": "integrated"},
                  labels={"ls0": "LS 0.0", "integrated": "LS 0.05"})
study.save_table(ls, "E3_label_smoothing_auc", "E3: AUC (%) with label smoothing 0.0 vs 0.05")
# ls

# %%
from asdlib.study import plots

bars = compare_table(study_rule, losses + ["ls0", "improved"], "dev", "AUC").rename(
    columns=lambda c: c.replace("integrated", "arcface"))
study.save_figure(plots.plot_metric_bars(bars, list(bars.columns), "Loss ablation: dev AUC (%)"), "04_loss_ablation")
fig = plots.plot_training_curves({k: r.run().history for k, r in runs.items()},  # first seed
                                 ("train_loss", "val_loss", "dev_auc"))
study.save_figure(fig, "04_training_curves")

# %% [markdown]
# ## asdlib's improved recipe beside the study's (ArcFace, E2)
# The registry's `improved` experiment trains the E2 model (same network, ArcFace, label smoothing
# 0.05, mixup, this profile's sizes and epochs) with the recipe that worked on real ToyCar
# recordings with few, unevenly many clips per ID (`benchmarks/bench_real.py`,
# `results/real_toycar/`): ArcFace margin 0.5, random 64-frame crops scored with sliding windows,
# class-balanced sampling, per-mel input standardisation and one warm-up + cosine cycle over the
# run at max_lr 1e-3. The study has no figures for it. Δ = improved − E2, under the study's
# checkpoint rule and under the label-free one. On clips no longer than 64 frames (the synthetic
# profiles) the crops are whole clips.

# %%
both_rules = [sel for sel in ("dev_auc_pauc", "val_loss")  # val_loss needs held-out clips (not on tiny data)
              if {"integrated", "improved"} <= set(tidy_all.loc[tidy_all.selection == sel, "experiment"])]
for sel in both_rules:
    t = side_by_side(tidy_all, ["integrated", "improved"], labels={"integrated": "E2", "improved": "improved"},
                     delta=("integrated", "improved"), selection=sel)
    study.save_table(t, f"04_improved_vs_E2_{sel}",
                     f"asdlib's improved recipe vs the study's E2 (ArcFace), AUC / pAUC %, checkpoint: {sel}")
    display(Markdown(f"### checkpoint: {sel}"))
    display(t)
