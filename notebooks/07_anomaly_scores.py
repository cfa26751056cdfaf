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
# # 07 · Anomaly scorers on the integrated model
#
# The study scores a clip by `1 - p(own ID)` and plans alternatives. Here every scorer of
# `asdlib.classify.scorers` runs on the same integrated model (the checkpoint the study's rule selects):
# softmax (the study), negative log-probability, cosine distance to the ID's centroid of
# normal training embeddings, k-nearest-neighbour distance, GMM, LOF and Mahalanobis. All are
# fitted on normal training clips only.

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

from asdlib.classify.scorers import SCORERS
from asdlib.study.experiments import embed, evaluate_scores, score, train_classifier

integrated = train_classifier(study, "integrated")  # the E2 model, reused from notebook 03
emb = embed(study, integrated.best["dev_auc_pauc"].path)
tidy = []
for name in SCORERS:
    s = score(emb, name)
    study.save_scores(s, f"scorer_{name}__dev_auc_pauc")
    tidy.append(evaluate_scores(s, f"scorer_{name}", seed, selection="dev_auc_pauc", scorer=name))
tidy = pd.concat(tidy, ignore_index=True)
study.save_tidy(tidy, "07_anomaly_scores")

# %%
from asdlib.report.tables import compare_table

names = [f"scorer_{n}" for n in SCORERS]
tables = {}
for ds in ("dev", "eval"):
    for metric in ("AUC", "pAUC"):
        t = compare_table(tidy, names, ds, metric).rename(columns=lambda c: c.replace("scorer_", ""))
        tables[(ds, metric)] = t
        study.save_table(t, f"07_scorers_{ds}_{metric}", f"Anomaly scorers on the integrated model: {ds} {metric} (%)")
tables[("dev", "AUC")]

# %%
from asdlib.study import plots

t = tables[("dev", "AUC")]
study.save_figure(plots.plot_metric_bars(t, list(t.columns), "Scorers on the integrated model: dev AUC (%)"), "07_scorers")
overall = pd.DataFrame({f"{ds.capitalize()} {m}": tables[(ds, m)].loc["Mean"] for ds in ("dev", "eval") for m in ("AUC", "pAUC")})
study.save_table(overall, "07_scorers_means", "Scorers: mean over machine types (%)")
overall
