"""Score fusion (:mod:`asdlib.report.fusion`) on small synthetic score arrays."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from asdlib.report.fusion import (
    FusionError,
    Standardiser,
    agreement,
    combine,
    fit_standardiser,
    fuse_frame,
    standardiser_path,
)


def _scores(rng, method: str, scale: float, n_held: int = 6, n_test: int = 20) -> pd.DataFrame:
    """Positive scores of two IDs: held-out normal clips, then test clips (half anomalous, higher)."""
    rows = []
    for mid in ("01", "02"):
        for k in range(n_held):
            rows.append(("heldout", mid, f"held_{mid}_{k}", 0, scale * rng.lognormal(0, 0.5)))
        for k in range(n_test):
            label = k % 2
            rows.append(("test", mid, f"test_{mid}_{k}", label, scale * rng.lognormal(label, 0.5)))
    df = pd.DataFrame(rows, columns=["part", "machine_id", "file", "label", "score"])
    return df.assign(method=method, machine_type="ToyCar")


def test_standardisation_uses_only_the_held_out_training_clips():
    rng = np.random.default_rng(0)
    a, b = _scores(rng, "a", 1.0), _scores(rng, "b", 50.0)
    fused = fuse_frame(pd.concat([a, b]), ["a", "b"])
    # the statistics are those of the held-out clips alone
    held = a[(a["part"] == "heldout") & (a["machine_id"] == "01")]["score"]
    st = fit_standardiser("a", a[a["part"] == "heldout"])
    assert st.stats["ToyCar/01"]["n"] == 6
    assert st.stats["ToyCar/01"]["mean"] == pytest.approx(np.log(held).mean())
    assert st.stats["ToyCar/01"]["sd"] == pytest.approx(np.log(held).std(ddof=1))
    # more test clips, with extreme scores, change nothing for the clips already there
    extra = pd.concat([m.assign(file="extra_" + m["file"], score=m["score"] * 1e6) for m in
                       (a[a["part"] == "test"], b[b["part"] == "test"])])
    fused2 = fuse_frame(pd.concat([a, b, extra]), ["a", "b"])
    again = fused2[~fused2["file"].str.startswith("extra_")].sort_values("file")["score"].to_numpy()
    assert np.allclose(again, fused.sort_values("file")["score"].to_numpy())
    # and the held-out clips are not scored as test clips
    assert not fused["file"].str.startswith("held_").any()
    assert len(fused) == 40


def test_fusing_a_method_with_itself_or_a_rescaled_copy_keeps_its_ranking():
    rng = np.random.default_rng(1)
    a = _scores(rng, "a", 1.0)
    for other in (a.assign(method="b"), a.assign(method="b", score=a["score"] * 37.0)):
        for how in ("mean", "max"):
            fused = fuse_frame(pd.concat([a, other]), ["a", "b"], how=how)
            for mid, g in fused.groupby("machine_id"):
                own = a[(a["part"] == "test") & (a["machine_id"] == mid)].set_index("file").loc[g["file"], "score"]
                assert np.array_equal(rankdata(g["score"]), rankdata(own.to_numpy())), (how, mid)


def test_rank_and_z_transforms_and_errors(tmp_path):
    st = Standardiser("m", "rank").add("fan", "00", [1.0, 2.0, 3.0, 4.0])
    assert st([0.5, 2.0, 10.0], "fan", "00").tolist() == [0.0, 0.375, 1.0]
    z = Standardiser("m", "z").add("fan", "00", [1.0, 3.0])
    assert z([2.0, 2.0 + np.sqrt(2)], "fan", "00") == pytest.approx([0.0, 1.0])
    path = z.save(standardiser_path(tmp_path / "last.pt", "mse"))
    assert path.name == "last.mse.fusion.json"
    assert Standardiser.load(path).stats == z.stats
    with pytest.raises(FusionError, match="no held-out statistics for fan/02"):
        z([1.0], "fan", "02")
    with pytest.raises(FusionError, match="at least 2"):
        Standardiser("m").add("fan", "00", [1.0])
    with pytest.raises(FusionError, match="non-negative"):
        Standardiser("m", "zlog").add("fan", "00", [1.0, -1.0])
    with pytest.raises(FusionError, match="no fusion statistics at"):
        Standardiser.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{\"method\": 1}")
    with pytest.raises(FusionError, match="bad.json is not a fusion standardiser"):
        Standardiser.load(tmp_path / "bad.json")
    with pytest.raises(FusionError, match="unknown combination"):
        combine([np.zeros(2)], "median")


def test_fuse_frame_names_a_clip_that_one_method_did_not_score():
    rng = np.random.default_rng(2)
    a, b = _scores(rng, "a", 1.0), _scores(rng, "b", 1.0)
    with pytest.raises(FusionError, match="test_02_19"):
        fuse_frame(pd.concat([a, b.iloc[:-1]]), ["a", "b"])


def test_agreement_is_spearman_per_id_and_reads_no_label():
    rng = np.random.default_rng(3)
    a = _scores(rng, "a", 1.0)
    b = a.assign(method="b", score=np.exp(a["score"]))  # a monotone copy: ranks every clip alike
    c = a.assign(method="c", score=rng.permutation(a["score"].to_numpy()))
    both = pd.concat([a, b, c])
    agree = agreement(both, ["a", "b", "c"], part="test")
    assert len(agree) == 2 * 3 and set(agree["machine_id"]) == {"01", "02"} and (agree["n"] == 20).all()
    ab = agree[(agree["a"] == "a") & (agree["b"] == "b")]["rho"]
    assert np.allclose(ab, 1.0)
    g = both[(both["part"] == "test") & (both["machine_id"] == "01")]
    expect = spearmanr(g[g.method == "a"]["score"], g[g.method == "c"].set_index("file").loc[g[g.method == "a"]["file"], "score"])[0]
    assert agree[(agree["machine_id"] == "01") & (agree["b"] == "c") & (agree["a"] == "a")]["rho"].item() == pytest.approx(expect)
    # labels do not enter: without the column, or with other labels, the same figures
    assert agree.equals(agreement(both.drop(columns="label"), ["a", "b", "c"], part="test"))
    assert agree.equals(agreement(both.assign(label=1 - both["label"]), ["a", "b", "c"], part="test"))
    # by default the held-out clips only
    held = agreement(both, ["a", "b"])
    assert set(held["part"]) == {"heldout"} and (held["n"] == 6).all()
    with pytest.raises(FusionError, match="no heldout scores of 'd'"):
        agreement(both, ["a", "d"])
    with pytest.raises(FusionError, match="scores a test clip twice"):
        agreement(pd.concat([both, a[a["part"] == "test"].iloc[[3]]]), ["a", "b"], part="test")
