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
# # 09 · Summary: every table against the study
#
# All experiments of notebooks 03–08 against the study's reference figures (`shared/study.md`),
# with the differences; bootstrap confidence intervals (clips resampled within each ID and
# label); and the checkpoint selected on the dev-test labels (the study's rule) against the
# selection that never sees test labels.

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
from IPython.display import Markdown, display

from asdlib import summary

tidy = study.load_tidy()
print("experiments:", sorted(tidy["experiment"].unique()))
display(Markdown(f"**{study.caption}**"))

# %% [markdown]
# ## Means across machine types, ours beside the study's

# %%
means = summary.means_table(tidy, "Mean")
study.save_table(means, "09_means", "Mean over machine types (AUC / pAUC %), ours vs the study's figures (study) and the difference Δ")
hmeans = summary.means_table(tidy, "Harmonic Mean")
study.save_table(hmeans, "09_harmonic_means", "Harmonic mean over machine types (AUC / pAUC %), ours vs the study's figures")
means

# %% [markdown]
# ## Every experiment in the study's table format

# %%
from asdlib.report.tables import study_table

for exp, (ref, label) in summary.EXPERIMENTS.items():
    if exp in set(tidy["experiment"]):
        t = study_table(tidy, exp, reference=ref, selection=summary.selection_for(tidy, exp))
        display(Markdown(f"### {label}"))
        display(t)

# %% [markdown]
# ## Model selection: on the dev-test labels (the study) or without them
# Positive "optimism" means the study's rule flatters the figures.

# %%
sel = summary.selection_table(tidy)
study.save_table(sel, "09_selection", "Checkpoint selected on dev-test AUC+pAUC (study rule) vs on held-out normal training loss (label-free): mean AUC / pAUC %")
sel

# %% [markdown]
# ## Bootstrap confidence intervals (95 %, type means)

# %%
from asdlib.report.metrics import bootstrap_ci

for exp in ("integrated", "transfer"):
    scores = study.load_scores(f"{exp}__dev_auc_pauc")
    ci = bootstrap_ci(scores, n_boot=study.profile.n_bootstrap, seed=seed)
    t = summary.ci_table(ci)
    study.save_table(t, f"09_bootstrap_{exp}", f"{summary.EXPERIMENTS[exp][1]}: AUC / pAUC % with 95% bootstrap intervals "
                     f"({study.profile.n_bootstrap} resamples of the test clips within each ID and label)")
    display(Markdown(f"### {summary.EXPERIMENTS[exp][1]}"))
    display(t)
