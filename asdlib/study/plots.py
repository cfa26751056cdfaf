"""Figures of the notebooks. Each function returns a matplotlib Figure and does not save it
(``Study.save_figure`` does, and labels synthetic-data figures)."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..report.tables import SD


def plot_examples(examples: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, str]]], sample_rate: int,
                  hop_length: int) -> plt.Figure:
    """Waveform and log-mel of a normal and an anomalous clip per type, side by side.

    ``examples[type][kind] = (wave, logmel (M, T), title)`` with kind in {'normal', 'anomaly'}.
    """
    types = list(examples)
    fig, axes = plt.subplots(len(types), 4, figsize=(16, 2.3 * len(types)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.3, 1, 1.3]})
    for row, t in enumerate(types):
        for col, kind in enumerate(("normal", "anomaly")):
            wave, mel, title = examples[t][kind]
            ax_w, ax_m = axes[row, 2 * col], axes[row, 2 * col + 1]
            ax_w.plot(np.arange(len(wave)) / sample_rate, wave, lw=0.3, color="C0" if kind == "normal" else "C3")
            ax_w.set_title(f"{t} {kind}: {title}", fontsize=8)
            ax_w.set_xlim(0, len(wave) / sample_rate)
            ax_w.set_ylabel("amplitude", fontsize=7)
            extent = (0, mel.shape[1] * hop_length / sample_rate, 0, mel.shape[0])
            im = ax_m.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=extent)
            ax_m.set_ylabel("mel bin", fontsize=7)
            fig.colorbar(im, ax=ax_m, pad=0.01, label="dB")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_id_spectra(spectra: pd.DataFrame) -> plt.Figure:
    """Mean log-mel spectrum of normal clips per ID, one panel per machine type."""
    types = list(dict.fromkeys(spectra["machine_type"]))
    fig, axes = plt.subplots(2, (len(types) + 1) // 2, figsize=(15, 6.5), squeeze=False, sharex=True)
    for ax, t in zip(axes.ravel(), types):
        for mid, g in spectra[spectra.machine_type == t].groupby("machine_id", sort=True):
            ax.plot(g["mel_bin"], g["db"], lw=1, label=f"id {mid}")
            ax.fill_between(g["mel_bin"], g["db"] - g["db_std"], g["db"] + g["db_std"], alpha=0.12)
        ax.set_title(t)
        ax.legend(fontsize=6, ncol=2)
        ax.set_xlabel("mel bin")
        ax.set_ylabel("mean dB")
    for ax in axes.ravel()[len(types):]:
        ax.set_visible(False)
    fig.suptitle("How the IDs of a type differ: mean log-mel spectrum of normal clips (band: ±1 std over clips)")
    fig.tight_layout()
    return fig


def plot_levels(stats: pd.DataFrame) -> plt.Figure:
    """RMS level (dBFS) per machine type and label, from a sample of clips."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.boxplot(data=stats, x="machine_type", y="rms_dbfs", hue="label", ax=ax, fliersize=2)
    ax.set_xlabel("")
    ax.set_ylabel("RMS level (dBFS)")
    ax.set_title("Clip levels by machine type and label")
    fig.tight_layout()
    return fig


def plot_feature_histograms(features: np.ndarray, index: pd.DataFrame, max_clips: int = 64, seed: int = 0) -> plt.Figure:
    """Histogram of log-mel values (dB) per machine type."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for t, g in index.groupby("machine_type", sort=True):
        take = np.sort(g.sample(n=min(max_clips, len(g)), random_state=seed).index.to_numpy())
        ax.hist(np.asarray(features[take], dtype=np.float32).ravel(), bins=120, histtype="step", density=True, label=t)
    ax.set_xlabel("log-mel (dB)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title("Distribution of log-mel values per machine type")
    fig.tight_layout()
    return fig


def plot_training_curves(histories: Mapping[str, pd.DataFrame], metrics: Sequence[str] = ("train_loss",)) -> plt.Figure:
    """One panel per metric, one line per run (history: one row per epoch with an 'epoch' column)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, h in histories.items():
            if metric in h and h[metric].notna().any():
                d = h[["epoch", metric]].dropna()
                ax.plot(d["epoch"], d[metric], marker="o" if len(d) < 15 else None, ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_metric_bars(table: pd.DataFrame, columns: Sequence[str], title: str) -> plt.Figure:
    """Grouped bars: rows of ``table`` (types, Mean, Harmonic Mean) x the given columns (experiments).

    A column's '<column> ± sd' partner (the spread over seeds) becomes its error bar; the
    '± sd' columns themselves are not drawn as bars.
    """
    columns = [c for c in columns if not str(c).endswith(SD)]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    x = np.arange(len(table.index))
    width = 0.8 / len(columns)
    for k, col in enumerate(columns):
        sd = table[f"{col} {SD}"].to_numpy(dtype=float) if f"{col} {SD}" in table else None
        ax.bar(x + (k - (len(columns) - 1) / 2) * width, table[col].to_numpy(dtype=float), width, label=str(col),
               yerr=sd, capsize=2 if sd is not None else 0, error_kw={"lw": 0.8})
    ax.set_xticks(x, [str(i) for i in table.index], rotation=0, fontsize=8)
    ax.axhline(50, color="0.5", lw=0.8, ls="--")
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(len(columns), 4))
    fig.tight_layout()
    return fig


def plot_tsne_panels(maps: Mapping[str, pd.DataFrame], title: str | None = None) -> plt.Figure:
    """One t-SNE panel per machine type: points coloured by ID, anomalies as crosses.

    ``maps[type]`` has columns x, y, machine_id, label (0/1).
    """
    types = list(maps)
    fig, axes = plt.subplots(2, (len(types) + 1) // 2, figsize=(15, 9), squeeze=False)
    for ax, t in zip(axes.ravel(), types):
        m = maps[t]
        for k, (mid, g) in enumerate(m.groupby("machine_id", sort=True)):
            color = f"C{k % 10}"
            n, a = g[g.label == 0], g[g.label == 1]
            ax.scatter(n.x, n.y, s=10, color=color, alpha=0.7, label=f"id {mid}")
            ax.scatter(a.x, a.y, s=22, color=color, marker="x", lw=1)
        ax.set_title(f"{t} (o normal, x anomaly)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=1.2, ncol=2)
    for ax in axes.ravel()[len(types):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_error_maps(maps: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str) -> plt.Figure:
    """Rows: clips (e.g. 'normal', 'anomaly'); columns: input, reconstruction, squared error."""
    fig, axes = plt.subplots(len(maps), 3, figsize=(13, 2.6 * len(maps)), squeeze=False)
    for row, (name, (inp, rec, err)) in enumerate(maps.items()):
        vmin, vmax = np.percentile(inp, [1, 99])
        for col, (img, sub) in enumerate(((inp, "input"), (rec, "reconstruction / prediction"), (err, "squared error"))):
            kw = {"vmin": vmin, "vmax": vmax} if col < 2 else {"vmin": 0, "vmax": np.percentile(err, 99.5)}
            im = axes[row, col].imshow(img, origin="lower", aspect="auto", cmap="magma" if col < 2 else "viridis", **kw)
            axes[row, col].set_title(f"{name}: {sub}", fontsize=9)
            fig.colorbar(im, ax=axes[row, col], pad=0.01)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"holds": "#1a9850", "reversed": "#d73027", "not resolved at this size": "0.45"}


def plot_claims(result: pd.DataFrame, metrics: Sequence[str] = ("AUC", "pAUC"), title: str | None = None) -> plt.Figure:
    """Forest plot of the study's claims (:func:`asdlib.report.claims.evaluate_claims`).

    One row per claim, one panel per metric: our difference (better minus worse, percentage
    points) as a dot with its interval as a bar coloured by the verdict, the study's
    difference as a hollow diamond, and a line at 0. A claim that did not run says so.
    """
    n = len(result)
    height = 0.55 * n + 1.9
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 1.5, height), sharey=True, squeeze=False)
    y = np.arange(n)[::-1]
    for ax, m in zip(axes[0], metrics):
        ax.axvline(0, color="0.2", lw=0.8, zorder=1)
        for yi, (_, r) in zip(y, result.iterrows()):
            verdict = r[f"verdict_{m}"]
            if verdict not in VERDICT_COLOURS:
                ax.text(0.02, yi, "not run", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="0.4",
                        style="italic")
            else:
                colour = VERDICT_COLOURS[verdict]
                ax.plot([100 * r[f"low_{m}"], 100 * r[f"high_{m}"]], [yi, yi], color=colour, lw=4, alpha=0.55,
                        solid_capstyle="butt", zorder=2)
                ax.plot(100 * r[f"d_{m}"], yi, "o", color=colour, ms=6, zorder=3)
            if np.isfinite(r[f"study_d_{m}"]):
                ax.plot(100 * r[f"study_d_{m}"], yi, "D", mfc="none", mec="black", ms=6, zorder=4)
        ax.set_title(f"dev Mean {m}")
        ax.set_xlabel("difference, better − worse (percentage points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, [f"{c}\n({b} − {w})" for c, b, w in zip(result["claim"], result["better"],
                                                                        result["worse"])], fontsize=8)
    axes[0, 0].set_ylim(-0.7, n - 0.3)
    level = f"{100 * float(result['level'].iloc[0]):g} % interval" if n else "interval"
    handles = [plt.Line2D([], [], color=c, lw=4, alpha=0.55, marker="o", label=f"ours, {level}: {v}")
               for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], ls="none", marker="D", mfc="none", mec="black", label="the study"))
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0))
    fig.suptitle(title or "The study's claims on our scores")
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1))  # room for the legend under the panels
    return fig
