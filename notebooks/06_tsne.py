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
# # 06 · t-SNE of the embeddings (study E6)
#
# The 2048-d embeddings (in the smoke profile: the small network's embedding) of the test
# clips of the integrated model, mapped to 2-D with openTSNE, one map per machine type:
# colours are IDs, crosses anomalies. The study observed that ToyConveyor's IDs separate so
# well that its anomalies are *also* classified confidently as their own ID, which limits the
# ID-classification approach for that type. The table below measures both halves of that claim.

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
from asdlib.study.embedding_maps import describe, separability, tsne_maps
from asdlib.study.experiments import embed, train_classifier

integrated = train_classifier(study, "integrated")  # the E2 model, reused from notebook 03
emb = embed(study, integrated.best["dev_auc_pauc"].path)
print("embedding size:", emb.test_emb.shape[1])

# %%
from asdlib.study import plots

maps = tsne_maps(emb, seed=seed, **study.profile.tsne)
fig = plots.plot_tsne_panels(
    maps, f"t-SNE of the integrated model's {emb.test_emb.shape[1]}-d embeddings of test clips ({study.data_label})")
study.save_figure(fig, "06_tsne")

# %% [markdown]
# ## What the maps show, in numbers

# %%
from IPython.display import Markdown, display

sep = separability(emb).round(3)
study.save_table(sep, "06_separability",
                 "ID separability and confidence on anomalies per type (integrated model, test clips)")
display(sep)
display(Markdown(describe(sep)))
