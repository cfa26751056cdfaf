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
# # 02 · Feature extraction
#
# The study's input is a log-mel spectrogram: 16 kHz, window (n_fft) 1024, hop 512, 128 mel
# bins, power spectrum in dB. `asdlib` computes it with `torchaudio.transforms.MelSpectrogram`
# (every argument explicit), batched on the CPU or GPU, and stores it once in a memory-mapped
# float16 cache that every later notebook reuses (keyed by the files and the settings).

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

# %% [markdown]
# ## Settings

# %%
import pandas as pd

fcfg = study.feature_config  # the library's defaults with the profile's overrides
settings = pd.Series(fcfg.to_dict(), name="value").astype(str).to_frame()
settings.index.name = "setting"
study.save_table(settings, "02_feature_settings", "Log-mel settings")
settings

# %% [markdown]
# ## Build (or reuse) the feature cache

# %%
import time

start = time.perf_counter()
store = study.features
seconds = time.perf_counter() - start
n, n_mels, n_frames = store.features.shape
timing = pd.Series({
    "clips": n, "n_mels": n_mels, "frames per clip": n_frames, "clip length used (s)": store.config.duration_s,
    "clip length from": store.meta["clip_length"]["source"],
    "size (MB, float16)": round(store.features.nbytes / 2**20, 1),
    "this run": f"reused ({seconds:.2f} s to open)" if store.reused else f"built ({seconds:.2f} s)",
    "build time (s)": store.meta["build_seconds"], "build speed (clips/s)": store.meta["clips_per_s"],
    "built on": store.meta["device"], "key": store.key}, name="value").to_frame()
timing.index.name = "feature cache"
study.save_table(timing, "02_feature_cache", "Feature cache: size, and how long building it took")
timing

# %% [markdown]
# ## Feature statistics per machine type

# %%
from asdlib.study import explore, plots

fstats = explore.feature_stats(store.features, store.index).round(2)
study.save_table(fstats, "02_feature_stats", "Log-mel statistics per machine type (dB)")
study.save_figure(plots.plot_feature_histograms(store.features, store.index, seed=seed), "02_feature_histograms")
fstats
