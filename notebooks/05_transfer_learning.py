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
profile = "smoke"  # ci | smoke | full (asdlib/profiles.py)
device = "auto"
seed = 0
results_dir = "../results"
work_dir = None  # caches and checkpoints; None: runs/<profile>

# %%
from asdlib.study.context import Study

study = Study.open(data_root=data_root, synthetic=synthetic, profile=profile, device=device, seed=seed,
                   results_dir=results_dir, work_dir=work_dir)
print(study.data_root, "|", study.data_label, "|", study.device)
print(study.caption)

# %%
import pandas as pd

from asdlib.study.experiments import INTEGRATED, run_experiment, run_transfer

integrated = run_experiment(study, "integrated", INTEGRATED)  # reused from notebook 03
transfer = run_transfer(study, integrated.runs["integrated"])
study.save_tidy(transfer.tidy, "05_transfer_learning")

# %%
from asdlib.report.tables import compare_table, study_table

t5 = study_table(transfer.tidy, "transfer", reference="transfer", selection="dev_auc_pauc")
study.save_table(t5, "E5_transfer", "E5: integrated pre-training, classifier fine-tuned per type (AUC / pAUC %), beside the study's figures")
t5

# %% [markdown]
# ## What fine-tuning the classifier changed

# %%
both = pd.concat([integrated.tidy, transfer.tidy], ignore_index=True)
both = both[both.selection == "dev_auc_pauc"]
gain = pd.concat({f"{ds.capitalize()} {m}": compare_table(both, ["integrated", "transfer"], ds, m)
                  for ds in ("dev", "eval") for m in ("AUC", "pAUC")}, axis=1)
gain.columns = [f"{a} {b}" for a, b in gain.columns]
for col in ("Dev AUC", "Dev pAUC", "Eval AUC", "Eval pAUC"):
    gain[f"{col} Δ"] = (gain[f"{col} transfer"] - gain[f"{col} integrated"]).round(2)
study.save_table(gain, "05_transfer_gain", "Integrated model vs the same model with per-type fine-tuned classifiers (%)")
gain

# %%
from asdlib import plots

curves = {name.replace("transfer_", ""): r.history for name, r in transfer.runs.items() if name.endswith("dev_auc_pauc")}
study.save_figure(plots.plot_training_curves(curves, ("train_loss", "val_loss", "dev_auc")), "05_finetune_curves")
