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
# # 05 · Transfer learning (study E5)
#
# Pre-train on all 41 IDs (the integrated model of notebook 03), then for each machine type
# freeze the backbone and re-train only the final classifier layer on that type's clips. In
# the study this was the best result. The fine-tuned checkpoint is chosen by the same rule as
# the integrated one it starts from (both rules are computed; the tables show the study's).

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

integrated = run_experiment(study, "integrated")  # reused from notebook 03
transfer = run_experiment(study, "transfer")  # fine-tunes the integrated run's checkpoints
study.save_tidy(transfer.tidy, "05_transfer_learning")

# %%
from asdlib.report.tables import side_by_side, study_table

t5 = study_table(transfer.tidy, "transfer", reference="transfer", selection="dev_auc_pauc")
study.save_table(t5, "E5_transfer", "E5: integrated pre-training, classifier fine-tuned per type (AUC / pAUC %), beside the study's figures")
t5

# %% [markdown]
# ## What fine-tuning the classifier changed

# %%
both = pd.concat([integrated.tidy, transfer.tidy], ignore_index=True)
both = both[both.selection == "dev_auc_pauc"]
gain = side_by_side(both, ["integrated", "transfer"], delta=("integrated", "transfer"))
study.save_table(gain, "05_transfer_gain", "Integrated model vs the same model with per-type fine-tuned classifiers (%)")
gain

# %%
from asdlib.study import plots

curves = {name.replace("transfer_", ""): r.history for name, r in transfer.runs[study.seed].items() if name.endswith("dev_auc_pauc")}
study.save_figure(plots.plot_training_curves(curves, ("train_loss", "val_loss", "dev_auc")), "05_finetune_curves")
