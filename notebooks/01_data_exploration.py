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
# # 01 · Data exploration
#
# What the data look like: clips per machine type, ID, split and label; durations and levels;
# waveforms and log-mel pictures of normal and anomalous clips side by side; how the IDs of a
# type differ. With the default settings this runs on the **synthetic** stand-in dataset
# (`asdlib synth`), not on the DCASE2020 recordings; point `data_root` at the real data (or at
# `../shared/data/dcase2020-mini`, 93 real test clips) to see real machine sounds.

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
# ## Clips per type, ID, split and label

# %%
from asdlib.data.index import pivot_summary

counts = pivot_summary(study.index)
study.save_table(counts, "01_clip_counts", "Clips per dataset, machine type, ID, split and label")
counts

# %% [markdown]
# ## Durations and levels
# A sample of clips of every type, split and label (ToyCar clips are 11 s in the real data, the rest 10 s).

# %%
from asdlib.study import explore, plots

stats = explore.clip_stats(study.index, per_group=6, seed=seed)
summary = (stats.groupby(["machine_type", "label"])[["duration_s", "rms_dbfs", "peak_dbfs"]]
           .agg(["mean", "min", "max"]).round(2))
summary.columns = [f"{col} {stat}" for col, stat in summary.columns]
study.save_table(summary, "01_levels", "Duration (s) and level (dBFS) of a sample of clips")
study.save_figure(plots.plot_levels(stats), "01_levels")
summary

# %% [markdown]
# ## Normal and anomalous clips side by side
# One normal and one anomalous test clip of the same ID per machine type: waveform and log-mel
# (16 kHz, n_fft 1024, hop 512, 128 mel bins, dB).

# %%
import torch

from asdlib.data.audio import read_wav
from asdlib.features.logmel import FeatureConfig, LogMel

fcfg = FeatureConfig()
logmel = LogMel(fcfg)
picked = explore.pick_examples(study.index, seed=seed)
examples = {}
for machine_type, pair in picked.items():
    examples[machine_type] = {}
    for kind, row in pair.items():
        wave = read_wav(row.path)
        mel = logmel(torch.from_numpy(wave)[None])[0].numpy()
        examples[machine_type][kind] = (wave, mel, row.file)
fig = plots.plot_examples(examples, fcfg.sample_rate, fcfg.hop_length)
study.save_figure(fig, "01_examples")

# %% [markdown]
# ## Listen
# Audio players for the same clips (normal first, then anomalous).

# %%
from IPython.display import HTML, Audio, display

for machine_type, pair in examples.items():
    for kind, (wave, _, name) in pair.items():
        display(HTML(f"<b>{machine_type}</b> {kind}: {name}"))
        display(Audio(wave, rate=fcfg.sample_rate))

# %% [markdown]
# ## How the IDs of a type differ
# Mean log-mel spectrum of the normal clips of each ID (computed from the feature cache, which
# notebook 02 describes). In the real data ToyConveyor's IDs differ strongly, the others subtly.

# %%
spectra = explore.mean_spectra(study.features.features, study.features.index, seed=seed)
study.save_figure(plots.plot_id_spectra(spectra), "01_id_spectra")
spread = (spectra.groupby(["machine_type", "mel_bin"])["db"].std().groupby("machine_type").mean()
          .rename("mean std of the ID spectra (dB)").round(2).to_frame())
study.save_table(spread, "01_id_spread", "How far apart the IDs of a type are (std across IDs of the mean spectrum, averaged over mel bins)")
spread
