"""Maps and separability figures of classifier embeddings (study E6).

The study's observation to check: when a type's IDs separate very well (ToyConveyor),
anomalous clips are still classified confidently as their own ID, so ``1 - p(own ID)``
cannot flag them. :func:`separability` puts numbers on both halves of that sentence.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def tsne_maps(emb, perplexity: float = 30.0, n_iter: int = 500, seed: int = 0,
              max_points: int = 1500) -> dict[str, pd.DataFrame]:
    """2-D openTSNE map of the test-clip embeddings, one per machine type.

    ``emb`` is an :class:`asdlib.study.experiments.Embedded`. Embeddings are L2-normalised first
    (margin losses act on the unit sphere); at most ``max_points`` clips per type are mapped.
    """
    from openTSNE import TSNE

    out: dict[str, pd.DataFrame] = {}
    meta = emb.test_meta
    for t, g in meta.groupby("machine_type", sort=False):
        g = g[g["label"] >= 0]
        if len(g) > max_points:
            g = g.sample(n=max_points, random_state=seed)
        x = emb.test_emb[g.index.to_numpy()].astype(np.float64)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        perp = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
        y = np.asarray(TSNE(perplexity=perp, n_iter=n_iter, random_state=seed, n_jobs=1,
                            initialization="pca").fit(x))
        out[t] = pd.DataFrame({"x": y[:, 0], "y": y[:, 1], "machine_id": g["machine_id"].to_numpy(),
                               "label": g["label"].to_numpy(), "dataset": g["dataset"].to_numpy()})
    return out


def separability(emb) -> pd.DataFrame:
    """Per type: how well IDs separate and how confident the model is on anomalies.

    - ``id_silhouette``: silhouette of the ID clusters of normal test clips (cosine);
    - ``id_accuracy``: share of normal test clips whose arg-max class is their own ID;
    - ``p_own_normal`` / ``p_own_anomaly``: mean softmax probability of the own ID;
    - ``anomaly_own_id_rate``: share of anomalous clips still classified as their own ID.
    """
    from sklearn.metrics import silhouette_score

    meta = emb.test_meta
    z = emb.test_logits - emb.test_logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    cls = meta["class"].to_numpy()
    p_own = p[np.arange(len(p)), cls]
    own = p.argmax(axis=1) == cls
    rows = []
    for t, g in meta.groupby("machine_type", sort=False):
        i = g.index.to_numpy()
        normal, anomaly = i[g["label"].to_numpy() == 0], i[g["label"].to_numpy() == 1]
        ids = meta.loc[normal, "machine_id"].to_numpy()
        sil = (float(silhouette_score(emb.test_emb[normal], ids, metric="cosine"))
               if len(set(ids)) > 1 and len(normal) > len(set(ids)) else float("nan"))
        rows.append({"machine_type": t, "id_silhouette": sil, "id_accuracy": float(own[normal].mean()),
                     "p_own_normal": float(p_own[normal].mean()),
                     "p_own_anomaly": float(p_own[anomaly].mean()) if len(anomaly) else float("nan"),
                     "anomaly_own_id_rate": float(own[anomaly].mean()) if len(anomaly) else float("nan")})
    return pd.DataFrame(rows).set_index("machine_type")


def describe(sep: pd.DataFrame) -> str:
    """A plain-language reading of :func:`separability` (which type separates best, and its cost)."""
    best = sep["id_silhouette"].idxmax()
    lines = [f"- IDs separate best for **{best}** (silhouette {sep.loc[best, 'id_silhouette']:.2f}); "
             f"its anomalous clips are still classified as their own ID "
             f"{100 * sep.loc[best, 'anomaly_own_id_rate']:.0f}% of the time "
             f"(mean p(own ID): normal {sep.loc[best, 'p_own_normal']:.2f}, anomaly {sep.loc[best, 'p_own_anomaly']:.2f})."]
    gap = (sep["p_own_normal"] - sep["p_own_anomaly"]).sort_values()
    lines.append(f"- The confidence gap between normal and anomalous clips is smallest for **{gap.index[0]}** "
                 f"({gap.iloc[0]:.2f}) and largest for **{gap.index[-1]}** ({gap.iloc[-1]:.2f}): the smaller the "
                 "gap, the less 1 - p(own ID) can tell anomalies apart.")
    return "\n".join(lines)
