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
# with the differences; the study's claims ("E2 beats E1", ...) tested on our scores with
# paired bootstrap intervals; bootstrap confidence intervals (clips resampled within each ID
# and label); and the checkpoint selected on the dev-test labels (the study's rule) against
# the selection that never sees test labels.

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
from IPython.display import Markdown, display

from asdlib.study import summary

tidy = study.load_tidy()
print("experiments:", sorted(tidy["experiment"].unique()))
display(Markdown(f"**{study.caption}**"))

# %% [markdown]
# ## Means across machine types, ours beside the study's

# %%
means = summary.means_table(tidy, "Mean")
study.save_table(means, "09_means", "Mean over machine types (AUC / pAUC %), ours vs the study's figures (study) and the "
                 "difference Δ. Checkpoints: the study's rule (dev-test AUC + pAUC) for the study's experiments, the "
                 "label-free val_loss for the improved recipe, the final epoch for reconstruction models")
hmeans = summary.means_table(tidy, "Harmonic Mean")
study.save_table(hmeans, "09_harmonic_means", "Harmonic mean over machine types (AUC / pAUC %), ours vs the study's figures")
means

# %% [markdown]
# ## The study's claims, tested
# Each claim is a difference of the dev Mean AUC (and pAUC), better minus worse. Ours is the
# mean over seeds, with a paired bootstrap interval that resamples the test clips (the same
# clips for both experiments) and the seeds. "holds": the interval lies above 0; "reversed":
# below 0; "not resolved at this size": it contains 0. Classifiers use the label-free
# checkpoint (`val_loss`), the autoencoder its final epoch; an experiment without saved
# scores is "not run".

# %%
from asdlib.report.claims import claims_table, evaluate_claims
from asdlib.study.plots import plot_claims

claim_scores, claim_rules = summary.load_claim_scores(study)
claims = evaluate_claims(claim_scores, n_boot=study.profile.n_bootstrap, seed=seed, selections=claim_rules)
study.save_table(claims_table(claims), "09_claims", summary.claims_caption(claims))
study.save_figure(plot_claims(claims), "09_claims")
claims_table(claims)

# %% [markdown]
# ## Every experiment in the study's table format

# %%
from asdlib.report.tables import study_table
from asdlib.study.registry import EXPERIMENTS

for exp in EXPERIMENTS.values():
    if exp.name in set(tidy["experiment"]):
        t = study_table(tidy, exp.name, reference=exp.reference, selection=summary.selection_for(tidy, exp.name))
        display(Markdown(f"### {exp.label}"))
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
# Each seed is evaluated on its own and the figures are the mean over seeds (the main tables'
# values); a replicate resamples the test clips once, the same clips for every seed.

# %%
from asdlib.report.metrics import bootstrap_ci

for exp in ("integrated", "transfer"):
    scores = study.load_scores(f"{exp}__dev_auc_pauc")
    ci = bootstrap_ci(scores, n_boot=study.profile.n_bootstrap, seed=seed)
    t = summary.ci_table(ci)
    n_seeds = int(ci["n_seeds"].iloc[0]) if len(ci) else 0
    study.save_table(t, f"09_bootstrap_{exp}", f"{EXPERIMENTS[exp].label}: AUC / pAUC % (mean over {n_seeds} seed(s), "
                     f"as in the main tables) with 95% bootstrap intervals ({study.profile.n_bootstrap} resamples of "
                     "the test clips within each ID and label, the same clips for every seed; each seed evaluated "
                     "on its own)")
    display(Markdown(f"### {EXPERIMENTS[exp].label}"))
    display(t)
