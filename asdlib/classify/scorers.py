"""Anomaly scorers on top of an ID classifier: higher score = more anomalous.

Every scorer has the same interface, so the notebooks can compare them in one loop:
``fit(train_emb (N, D), train_class (N,))`` on embeddings of *normal training* clips only,
then ``score(emb (M, D), logits (M, C), cls (M,)) -> (M,)`` where ``cls`` is each clip's
own class (its machine type + ID, known from the file name at test time).

- ``softmax``: 1 - p(own ID) (the study's score); ``neglogp``: -log p(own ID), the same
  ranking within an ID. Both are computed from ``log1p(sum_{j != own} exp(z_j - z_own))``
  (and ``1 - p = -expm1(log p)``), so that confident clips keep distinct scores down to
  ~1e-308 instead of all becoming exactly 0 (which ties them and pulls the AUC to 0.5).
- ``cosine``: 1 - cosine similarity to the own ID's centroid of normal embeddings.
- ``knn``: mean cosine distance to the ``k`` nearest normal embeddings of the own ID.
- ``gmm``: negative log-likelihood under a per-ID Gaussian mixture fitted on a per-ID PCA
  of the L2-normalised embeddings (2048-d with a few hundred clips per ID is too many
  dimensions for a full covariance; PCA to ``n_components`` keeps the fit well posed).
- ``lof``: scikit-learn LocalOutlierFactor(novelty=True) per ID on normalised embeddings.
- ``mahalanobis``: per-ID mean with one covariance shared by all IDs (Ledoit-Wolf
  shrinkage), estimated from the ID-centred normal embeddings.
- ``dg_knn``: domain generalisation (DCASE2022+: source and target domains, about 990
  source and 10 target training clips per section): the cosine kNN distance to the class's
  source training embeddings and, separately, to its few target training embeddings; the
  score is the smaller of the two, so a target-domain normal is not flagged for being rare
  among the training clips. Fitted with each training clip's ``domain``; ``cls`` is the
  group the banks are kept per (in the later editions the section, not the attribute class:
  an evaluation clip's attributes are unknown). Against a source-only bank a target normal
  is far from everything; note that with ``k = 1`` the min over domains equals the nearest
  neighbour of the pooled banks (default ``k = 5``, as ``knn``).
"""
from __future__ import annotations

import numpy as np

from ..core.errors import AsdlibError


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _neg_log_p_own(logits: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """-log p(own class) per row, without saturating for confident clips.

    ``-log p(own) = log(1 + sum_{j != own} exp(z_j - z_own))``. Computed the textbook way
    (``z - logsumexp(z)``) it becomes exactly 0 once the other classes' terms fall below
    the float64 resolution of 1 (~1e-16, logit gaps of ~37 or more): every confident clip
    then scores the same. ``log1p`` of the small sum keeps it (down to ~1e-308); when the
    own class is not the largest, the sum is factored by its largest term so that nothing
    overflows.
    """
    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(z))
    cls = np.asarray(cls, dtype=np.int64)
    d = z - z[rows, cls][:, None]  # (N, C): z_j - z_own
    d[rows, cls] = -np.inf  # the own class is not in the sum
    m = d.max(axis=1) if d.shape[1] > 1 else np.full(len(z), -np.inf)  # (N,) largest other term
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        confident = np.log1p(np.exp(d).sum(axis=1))  # own class is the largest: no overflow
        shift = np.where(np.isfinite(m), m, 0.0)[:, None]
        other = m + np.log(np.exp(-m) + np.exp(d - shift).sum(axis=1))  # sum factored by exp(m)
    return np.where(m <= 0, confident, other)


class Scorer:
    """Base: a scorer that needs no fitting (it reads the logits)."""

    name = "base"
    needs_fit = False
    needs_domain = False  # fit() also takes each training clip's domain (source/target)

    def fit(self, train_emb: np.ndarray | None, train_class: np.ndarray | None) -> Scorer:
        return self

    def score(self, emb: np.ndarray | None, logits: np.ndarray, cls: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SoftmaxScorer(Scorer):
    name = "softmax"

    def score(self, emb, logits, cls):
        return -np.expm1(-_neg_log_p_own(logits, cls))  # 1 - p(own) = -expm1(log p), exact for p near 1


class NegLogPScorer(Scorer):
    name = "neglogp"

    def score(self, emb, logits, cls):
        return _neg_log_p_own(logits, cls)


class PerClassScorer(Scorer):
    """Fits one model per class on that class's normal embeddings; scores each clip with its own."""

    needs_fit = True
    min_clips = 2

    def fit(self, train_emb, train_class):
        emb, cls = np.asarray(train_emb, dtype=np.float64), np.asarray(train_class, dtype=np.int64)
        self.models_ = {}
        for c in np.unique(cls):
            e = emb[cls == c]
            if len(e) < self.min_clips:
                raise AsdlibError(f"{self.name} scorer: class {c} has {len(e)} training clips, needs {self.min_clips}")
            self.models_[int(c)] = self._fit_one(e)
        self._fit_shared(emb, cls)
        return self

    def _fit_one(self, emb: np.ndarray):
        raise NotImplementedError

    def _fit_shared(self, emb: np.ndarray, cls: np.ndarray) -> None:
        pass

    def _score_one(self, model, emb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, emb, logits, cls):
        if not hasattr(self, "models_"):
            raise AsdlibError(f"{self.name} scorer used before fit()")
        emb, cls = np.asarray(emb, dtype=np.float64), np.asarray(cls, dtype=np.int64)
        out = np.empty(len(emb))
        for c in np.unique(cls):
            if int(c) not in self.models_:
                raise AsdlibError(f"{self.name} scorer: no normal training clips of class {c} were given to fit()")
            m = cls == c
            out[m] = self._score_one(self.models_[int(c)], emb[m])
        return out


class CosineScorer(PerClassScorer):
    name = "cosine"
    min_clips = 1

    def _fit_one(self, emb):
        return _l2(_l2(emb).mean(0, keepdims=True))[0]  # (D,) unit centroid

    def _score_one(self, centroid, emb):
        return 1.0 - _l2(emb) @ centroid


class KNNScorer(PerClassScorer):
    name = "knn"
    min_clips = 1

    def __init__(self, k: int = 5):
        self.k = k

    def _fit_one(self, emb):
        return _l2(emb)

    def _score_one(self, bank, emb):
        dist = 1.0 - _l2(emb) @ bank.T  # (M, N_c)
        k = min(self.k, bank.shape[0])
        return np.sort(dist, axis=1)[:, :k].mean(1)


class GMMScorer(PerClassScorer):
    name = "gmm"
    min_clips = 4

    def __init__(self, n_components: int = 16, n_mixtures: int = 2, seed: int = 0):
        self.n_components, self.n_mixtures, self.seed = n_components, n_mixtures, seed

    def _fit_one(self, emb):
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        e = _l2(emb)
        pca = PCA(n_components=min(self.n_components, len(e) - 1, e.shape[1]), random_state=self.seed).fit(e)
        z = pca.transform(e)
        k = max(1, min(self.n_mixtures, len(e) // (2 * z.shape[1] + 2)))
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=self.seed).fit(z)
        return pca, gmm

    def _score_one(self, model, emb):
        pca, gmm = model
        return -gmm.score_samples(pca.transform(_l2(emb)))


class LOFScorer(PerClassScorer):
    name = "lof"
    min_clips = 3

    def __init__(self, n_neighbors: int = 20):
        self.n_neighbors = n_neighbors

    def _fit_one(self, emb):
        from sklearn.neighbors import LocalOutlierFactor

        return LocalOutlierFactor(n_neighbors=min(self.n_neighbors, len(emb) - 1), novelty=True).fit(_l2(emb))

    def _score_one(self, lof, emb):
        return -lof.score_samples(_l2(emb))


class MahalanobisScorer(PerClassScorer):
    name = "mahalanobis"
    min_clips = 1

    def _fit_one(self, emb):
        return _l2(emb).mean(0)  # (D,)

    def _fit_shared(self, emb, cls):
        from sklearn.covariance import LedoitWolf

        e = _l2(emb)
        centred = e - np.stack([self.models_[int(c)] for c in cls])  # (N, D) minus own-ID mean
        self.precision_ = LedoitWolf(assume_centered=True).fit(centred).precision_  # (D, D)

    def _score_one(self, mean, emb):
        d = _l2(emb) - mean  # (M, D)
        return np.einsum("md,de,me->m", d, self.precision_, d)


class DomainKNNScorer(Scorer):
    """Min over domains of the mean cosine distance to the ``k`` nearest training embeddings
    of that domain in the clip's own group (see the module docstring). ``fit(emb, cls,
    domain=...)``: ``domain`` holds ``"source"``/``"target"`` per training clip (omitted: all
    source, which makes this the ``knn`` scorer)."""

    name = "dg_knn"
    needs_fit = True
    needs_domain = True

    def __init__(self, k: int = 5):
        if k < 1:
            raise AsdlibError(f"dg_knn scorer: k must be >= 1, got {k}")
        self.k = k

    def fit(self, train_emb, train_class, domain=None):
        emb, cls = _l2(train_emb), np.asarray(train_class, dtype=np.int64)
        dom = np.full(len(cls), "source", dtype=object) if domain is None else np.asarray(domain, dtype=object)
        if len(dom) != len(cls) or len(emb) != len(cls):
            raise AsdlibError(f"dg_knn scorer: {len(emb)} embeddings, {len(cls)} classes, {len(dom)} domains")
        unknown = set(dom) - {"source", "target"}
        if unknown:
            raise AsdlibError(f"dg_knn scorer: domains must be 'source' or 'target', got {sorted(map(str, unknown))}")
        self.banks_ = {}
        for c in np.unique(cls):
            banks = {d: emb[(cls == c) & (dom == d)] for d in ("source", "target")}
            self.banks_[int(c)] = [b for b in banks.values() if len(b)]
        return self

    def _knn(self, bank: np.ndarray, emb: np.ndarray) -> np.ndarray:
        dist = 1.0 - emb @ bank.T  # (M, N_d)
        k = min(self.k, bank.shape[0])
        return np.sort(dist, axis=1)[:, :k].mean(1)

    def score(self, emb, logits, cls):
        if not hasattr(self, "banks_"):
            raise AsdlibError("dg_knn scorer used before fit()")
        emb, cls = _l2(emb), np.asarray(cls, dtype=np.int64)
        out = np.empty(len(emb))
        for c in np.unique(cls):
            if int(c) not in self.banks_:
                raise AsdlibError(f"dg_knn scorer: no normal training clips of class {c} were given to fit()")
            m = cls == c
            out[m] = np.min([self._knn(b, emb[m]) for b in self.banks_[int(c)]], axis=0)
        return out


SCORERS: dict[str, type[Scorer]] = {
    c.name: c for c in (SoftmaxScorer, NegLogPScorer, CosineScorer, KNNScorer, GMMScorer, LOFScorer, MahalanobisScorer,
                        DomainKNNScorer)
}


def make_scorer(name: str, **kwargs) -> Scorer:
    """A fresh scorer by name (``SCORERS``); keyword arguments go to its constructor."""
    if name not in SCORERS:
        raise AsdlibError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}")
    return SCORERS[name](**kwargs)
