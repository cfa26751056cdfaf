"""Every scorer ranks planted outliers above inliers of the same ID on clustered embeddings."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdlib.classify.scorers import SCORERS, make_scorer
from asdlib.core.errors import AsdlibError

D, C = 16, 3


def _clusters(seed: int = 0):
    """Normal clips near their class centroid; outliers pushed away from it (but still nearest it)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(C, D)) * 3.0  # (C, D)

    def draw(n_per, spread, pull):
        emb, cls = [], []
        for c in range(C):  # outliers: wider and pulled part-way towards the next class
            e = centres[c] + spread * rng.normal(size=(n_per, D)) + pull * (centres[(c + 1) % C] - centres[c])
            emb.append(e)
            cls.append(np.full(n_per, c))
        return np.concatenate(emb), np.concatenate(cls)

    train = draw(40, 0.3, 0.0)
    test_in = draw(20, 0.3, 0.0)
    test_out = draw(20, 1.0, 0.3)
    centre_unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def logits(e):  # a cosine head: scale * cos(emb, class weight)
        return 30.0 * (e / np.linalg.norm(e, axis=1, keepdims=True)) @ centre_unit.T

    return train, test_in, test_out, logits


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_scorer_ranks_outliers_above_inliers(name):
    (tr_e, tr_c), (in_e, in_c), (out_e, out_c), logits = _clusters()
    scorer = make_scorer(name).fit(tr_e, tr_c)
    emb = np.concatenate([in_e, out_e])
    cls = np.concatenate([in_c, out_c])
    y = np.r_[np.zeros(len(in_e)), np.ones(len(out_e))]
    s = scorer.score(emb, logits(emb), cls)
    assert s.shape == (len(emb),) and np.isfinite(s).all()
    for c in range(C):  # per ID, as DCASE evaluates
        m = cls == c
        assert roc_auc_score(y[m], s[m]) > 0.9, (name, c)


def test_softmax_scores_are_one_minus_own_probability():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    s = make_scorer("softmax").score(None, logits, np.array([0, 2]))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(s, [1 - p[0, 0], 1 - p[1, 2]])
    np.testing.assert_allclose(make_scorer("neglogp").score(None, logits, np.array([0, 2])),
                               [-np.log(p[0, 0]), -np.log(p[1, 2])])


def test_fitted_scorer_rejects_unknown_class_and_unfitted_use():
    (tr_e, tr_c), _, _, _ = _clusters()
    with pytest.raises(AsdlibError, match="before fit"):
        make_scorer("cosine").score(tr_e, None, tr_c)
    s = make_scorer("knn").fit(tr_e[tr_c != 2], tr_c[tr_c != 2])
    with pytest.raises(AsdlibError, match="class 2"):
        s.score(tr_e, None, tr_c)
    with pytest.raises(AsdlibError, match="unknown scorer"):
        make_scorer("nope")


def test_softmax_scores_do_not_saturate_for_confident_clips():
    """Logit gaps of ~45 put the other classes' terms below 1e-16: 1 - p and -log p must stay
    distinct (not exactly 0), so that confident clips are still ranked."""
    gaps = np.array([40.0, 45.0, 50.0, 60.0, 100.0, 300.0])
    logits = np.zeros((len(gaps), 4))
    logits[:, 1] = gaps  # own class 1, three others at 0
    own = np.ones(len(gaps), dtype=int)
    expected = np.log1p(3 * np.exp(-gaps))  # = 3 exp(-gap) to float precision
    for name in ("softmax", "neglogp"):
        s = make_scorer(name).score(None, logits, own)
        assert (s > 0).all() and (np.diff(s) < 0).all(), (name, s)  # a larger gap: a smaller score
        np.testing.assert_allclose(s, expected, rtol=1e-12)
    # 400 clips with gaps around 45: normal clips more confident than anomalous ones
    rng = np.random.default_rng(0)
    g = np.r_[rng.normal(47, 1, 200), rng.normal(44, 1, 200)]
    y = np.r_[np.zeros(200), np.ones(200)]
    z = np.zeros((400, 3))
    z[:, 0] = g
    for name in ("softmax", "neglogp"):
        assert roc_auc_score(y, make_scorer(name).score(None, z, np.zeros(400, dtype=int))) > 0.9
    # the own class far below another: large -log p, 1 - p -> 1, no overflow
    z = np.array([[0.0, 800.0, -5.0]])
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_allclose(make_scorer("neglogp").score(None, z, np.array([0])), [800.0])
        np.testing.assert_allclose(make_scorer("softmax").score(None, z, np.array([0])), [1.0])
    # one class only: p(own) = 1
    assert make_scorer("neglogp").score(None, np.array([[3.0]]), np.array([0]))[0] == 0.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_dg_knn_does_not_flag_target_normals():
    """990 source clips around one direction, 10 target clips around another (the domain
    shift); a new target normal near the 10 scores low with dg_knn although it is far from
    every source clip, while a source-only kNN flags it above an anomaly."""
    rng = np.random.default_rng(0)
    d = 16
    src_dir, tgt_dir, anom_dir = np.eye(d)[0], np.eye(d)[1], _unit(np.eye(d)[0] + np.eye(d)[2])
    noise = lambda n, s=0.05: s * rng.normal(size=(n, d))  # noqa: E731
    train = np.r_[_unit(src_dir + noise(990)), _unit(tgt_dir + noise(10))]
    dom = np.array(["source"] * 990 + ["target"] * 10)
    cls = np.zeros(1000, dtype=int)
    test = np.r_[_unit(tgt_dir + noise(5)), _unit(src_dir + noise(5)), _unit(anom_dir + noise(5, 0.02))]
    test_cls = np.zeros(15, dtype=int)
    dg = make_scorer("dg_knn").fit(train, cls, domain=dom).score(test, None, test_cls)
    tgt_normal, src_normal, anomaly = dg[:5], dg[5:10], dg[10:]
    assert tgt_normal.max() < anomaly.min() and src_normal.max() < anomaly.min()
    # Far from every source clip: against the source bank alone each target normal scores
    # above every anomaly (which is what the min over domains prevents).
    src_only = make_scorer("knn", k=1).fit(train[dom == "source"], cls[dom == "source"]).score(test, None, test_cls)
    assert src_only[:5].min() > src_only[10:].max()
    # No domains: all clips are one bank, the plain kNN distance.
    pooled = make_scorer("knn").fit(train, cls).score(test, None, test_cls)
    np.testing.assert_allclose(make_scorer("dg_knn").fit(train, cls).score(test, None, test_cls), pooled)
    with pytest.raises(AsdlibError, match="domains must be"):
        make_scorer("dg_knn").fit(train, cls, domain=np.array(["src"] * 1000))
    with pytest.raises(AsdlibError, match="before fit"):
        make_scorer("dg_knn").score(test, None, test_cls)


def test_score_outputs_passes_domains_to_dg_knn():
    from asdlib.classify.inference import Outputs, score_outputs

    rng = np.random.default_rng(1)
    train = _unit(rng.normal(size=(20, 4)))
    out = Outputs(np.zeros((3, 2), np.float32), train[:3].astype(np.float32))
    dom = np.array(["source"] * 17 + ["target"] * 3)
    s = score_outputs(make_scorer("dg_knn", k=1), out, np.zeros(3, int), train, np.zeros(20, int), dom)
    np.testing.assert_allclose(s, 0.0, atol=1e-7)  # each scored clip is one of the training clips
