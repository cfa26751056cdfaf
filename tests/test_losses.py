"""Margin losses, focal loss, label smoothing and mixup, against references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asdlib.classify.augment import mixup
from asdlib.classify.losses import (
    LOSS_KINDS,
    LossConfig,
    MarginLoss,
    arcface_margin,
    build_loss,
    needs_cosine_head,
)
from asdlib.core.errors import ConfigError

S = 30.0


def cosines(b: int = 4, c: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, generator=g) * 1.6 - 0.8  # (B, C) in [-0.8, 0.8]


def test_needs_cosine_head():
    assert [needs_cosine_head(k) for k in LOSS_KINDS] == [False, True, True, True]
    with pytest.raises(ConfigError):
        needs_cosine_head("sphereface")
    with pytest.raises(ConfigError):
        LossConfig(kind="arcface", label_smoothing=1.0)


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_arcface_margin_zero_is_scaled_cosine_ce(eps: float):
    cos, y = cosines(), torch.tensor([0, 2, 5, 1])
    loss = build_loss(LossConfig(kind="arcface", margin=0.0, label_smoothing=eps))
    torch.testing.assert_close(loss(S * cos, y), F.cross_entropy(S * cos, y, label_smoothing=eps))


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
def test_softmax_label_smoothing_matches_torch(eps: float):
    logits, y = torch.randn(5, 7) * 3, torch.tensor([0, 6, 2, 2, 4])
    loss = build_loss(LossConfig(kind="softmax", label_smoothing=eps))
    torch.testing.assert_close(loss(logits, y), F.cross_entropy(logits, y, label_smoothing=eps))


@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_margin_edits_only_the_target_logit(kind: str):
    cos, y = cosines(), torch.tensor([0, 2, 5, 1])
    loss = build_loss(LossConfig(kind=kind, margin=0.3))
    z = loss.margin_logits(S * cos, y)
    changed = ~torch.isclose(z, S * cos)
    assert changed.equal(F.one_hot(y, 6).bool())
    assert (z[changed] < (S * cos)[changed]).all()  # a margin makes the target harder


def test_cosface_value():
    cos, y = cosines(), torch.tensor([0, 2, 5, 1])
    z = build_loss(LossConfig(kind="cosface", margin=0.35)).margin_logits(S * cos, y)
    expected = S * (cos - 0.35 * F.one_hot(y, 6))
    torch.testing.assert_close(z, expected)


def test_arcface_value_and_fallback():
    m = 0.5
    cos = torch.tensor([0.9, 0.2, -0.5, -0.95, -0.999])
    out = arcface_margin(cos, m)
    theta = torch.acos(cos)
    normal = theta + m <= math.pi
    torch.testing.assert_close(out[normal], torch.cos(theta[normal] + m), atol=1e-4, rtol=0)
    # Past pi - m the fallback keeps the logit decreasing in theta instead of wrapping round.
    torch.testing.assert_close(out[~normal], cos[~normal] - m * math.sin(m))
    assert (~normal).any() and (out[1:] < out[:-1]).all()


def test_arcface_margin_receives_gradient():
    m, c = 0.3, torch.tensor([0.3], requires_grad=True)
    (g,) = torch.autograd.grad(arcface_margin(c, m).sum(), c)
    sin = math.sqrt(1 - 0.3**2)
    # d cos(theta + m) / d cos = cos(m) + cos / sin * sin(m): the margin term contributes
    assert g.item() == pytest.approx(math.cos(m) + 0.3 / sin * math.sin(m), rel=1e-5)
    assert g.item() != pytest.approx(1.0)


@pytest.mark.parametrize("c_target", [0.4, 0.2, 0.0, -0.3])
def test_arcface_target_gradient_differs_from_no_margin(c_target: float):
    # Competing classes close by, so that the softmax is not saturated at scale 30.
    cos, y = torch.tensor([[c_target, c_target + 0.02, c_target - 0.05]]), torch.tensor([0])
    grads = []
    for margin in (0.0, 0.05):
        logits = (S * cos).requires_grad_(True)
        build_loss(LossConfig(kind="arcface", margin=margin, label_smoothing=0.0))(logits, y).backward()
        grads.append(logits.grad[0, 0].item())
    assert math.isfinite(grads[1]) and abs(grads[1] - grads[0]) > 1e-4 * abs(grads[0])


@pytest.mark.parametrize("c_target", [1.0, 1.0 - 1e-7, 0.9999, -0.9999, -1.0 + 1e-7, -1.0])
def test_arcface_gradient_finite_near_theta_zero_and_pi(c_target: float):
    m = 0.05
    cos, y = torch.tensor([[c_target, 0.1, -0.2]]), torch.tensor([0])
    logits = (S * cos).requires_grad_(True)
    loss = build_loss(LossConfig(kind="arcface", margin=m))
    (dz,) = torch.autograd.grad(loss.margin_logits(logits, y)[0, 0], logits)
    assert torch.isfinite(dz).all()
    if c_target > 0:  # theta near 0: the margin term cos/sin*sin(m) adds to cos(m), bounded
        assert math.cos(m) - 1e-6 <= dz[0, 0].item() <= 100.0
    else:  # theta near pi: the fallback cos - m*sin(m) has slope exactly 1
        assert dz[0, 0].item() == pytest.approx(1.0)
    logits.grad = None
    loss(logits, y).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_focal_gamma_zero_is_ce(eps: float):
    logits, y = torch.randn(5, 4) * 4, torch.tensor([0, 3, 1, 1, 2])
    focal = MarginLoss(criterion="focal", focal_gamma=0.0, label_smoothing=eps)
    torch.testing.assert_close(focal(logits, y), F.cross_entropy(logits, y, label_smoothing=eps))
    soft = torch.softmax(torch.randn(5, 4), dim=1)
    torch.testing.assert_close(focal(logits, soft), MarginLoss(label_smoothing=eps)(logits, soft))


def test_focal_downweights_easy_examples():
    logits, y = torch.tensor([[6.0, 0.0, 0.0], [0.0, 0.5, 0.0]]), torch.tensor([0, 1])
    ce = F.cross_entropy(logits, y, reduction="none")
    p = torch.softmax(logits, 1)[[0, 1], y]
    focal = torch.stack([MarginLoss(criterion="focal", focal_gamma=1.0)(logits[i : i + 1], y[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(focal, (1 - p) * ce)
    cfg = LossConfig(kind="focal")
    assert (cfg.focal_alpha, cfg.focal_gamma) == (1.0, 1.0) and build_loss(cfg).margin_kind == "none"


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_one_hot_soft_targets_equal_int_targets(kind: str):
    cos, y = cosines(), torch.tensor([0, 2, 5, 1])
    loss = build_loss(LossConfig(kind=kind, margin=0.2))
    torch.testing.assert_close(loss(S * cos, y), loss(S * cos, F.one_hot(y, 6).float()))


def test_soft_target_margin_is_shared_by_target_weight():
    cos = cosines(2, 3)
    t = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    z = build_loss(LossConfig(kind="cosface", margin=0.4)).margin_logits(S * cos, t)
    torch.testing.assert_close(z, S * (cos - 0.4 * t))


# --- mixup ---------------------------------------------------------------------------


def test_mixup_convex_combination_and_targets():
    x, y = torch.randn(6, 1, 4, 5), torch.arange(6)
    xm, t, lam = mixup(x, y, 6, alpha=1.0, generator=torch.Generator().manual_seed(3), return_lambda=True)
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    assert 0.0 < lam < 1.0 and (t >= 0).all()
    # Labels are distinct, so the partner of row i is where the rest of its target sits.
    rest = t - lam * F.one_hot(y, 6)
    perm = rest.argmax(1)
    perm = torch.where(rest.max(1).values > 1e-6, perm, torch.arange(6))  # partner = itself
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    assert sorted(perm.tolist()) == list(range(6))


def test_mixup_reproducible_and_disabled():
    x, y = torch.randn(4, 1, 3, 3), torch.tensor([0, 1, 2, 2])
    a = mixup(x, y, 3, generator=torch.Generator().manual_seed(1))
    b = mixup(x, y, 3, generator=np.random.default_rng(0))
    c = mixup(x, y, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, c)
    assert b[1].shape == (4, 3)
    xm, t = mixup(x, y, 3, alpha=0.0)
    assert xm is x and t.equal(F.one_hot(y, 3).float())
    with pytest.raises(ConfigError):
        mixup(x, torch.zeros(4, 2), 3)


# ---- mixup with margins: the usual pair form (default) and the shared form --------------------------------


def _mixed_batch(seed: int = 0, b: int = 6, c: int = 5, lam: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(b, c, generator=g) * 1.6 - 0.8  # (B, C) cosines
    ya = torch.randint(0, c, (b,), generator=g)
    yb = (ya + 1 + torch.randint(0, c - 1, (b,), generator=g)) % c  # a partner of another class
    t = lam * F.one_hot(ya, c).float() + (1 - lam) * F.one_hot(yb, c).float()
    return cos, ya, yb, t, lam


@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_pair_form_is_lambda_weighted_sum_of_full_margin_losses(kind):
    cos, ya, yb, t, lam = _mixed_batch()
    loss = build_loss(LossConfig(kind=kind, scale=30.0, margin=0.3, label_smoothing=0.05))
    expect = lam * loss(30.0 * cos, ya) + (1 - lam) * loss(30.0 * cos, yb)  # full margin in each term
    assert torch.allclose(loss(30.0 * cos, t), expect, atol=1e-6)


def test_shared_form_gives_each_class_its_share_of_the_margin():
    cos, ya, yb, t, lam = _mixed_batch(seed=1)
    m, s = 0.3, 30.0
    shared = build_loss(LossConfig(kind="cosface", scale=s, margin=m, label_smoothing=0.0, mixup_margin="shared"))
    z = s * (cos - m * t)  # CosFace: cos_c - t_c * m
    expect = -(t * F.log_softmax(z, dim=1)).sum(1).mean()
    assert torch.allclose(shared(s * cos, t), expect, atol=1e-6)
    pair = build_loss(LossConfig(kind="cosface", scale=s, margin=m, label_smoothing=0.0))
    assert not torch.allclose(pair(s * cos, t), shared(s * cos, t))  # the forms differ under mixup...
    one_hot = F.one_hot(ya, cos.shape[1]).float()
    assert torch.allclose(pair(s * cos, one_hot), shared(s * cos, one_hot), atol=1e-6)  # ...not without it


def test_pair_form_gradients_flow_and_match_autograd_of_the_sum():
    cos, ya, yb, t, lam = _mixed_batch(seed=2)
    logits = (30.0 * cos).requires_grad_(True)
    loss = build_loss(LossConfig(kind="arcface", margin=0.2))
    loss(logits, t).backward()
    g_pair = logits.grad.clone()
    logits.grad = None
    (lam * loss(logits, ya) + (1 - lam) * loss(logits, yb)).backward()
    assert torch.isfinite(g_pair).all() and torch.allclose(g_pair, logits.grad, atol=1e-6)


def test_focal_with_or_without_the_arcface_margin():
    cos, ya, *_ = _mixed_batch(seed=3)
    plain = build_loss(LossConfig(kind="focal", margin=0.3))
    margined = build_loss(LossConfig(kind="focal", margin=0.3, focal_margin="arcface"))
    ref = MarginLoss(scale=30.0, margin=0.3, margin_kind="arcface", criterion="focal", label_smoothing=0.05)
    assert torch.allclose(margined(30.0 * cos, ya), ref(30.0 * cos, ya))
    assert margined(30.0 * cos, ya) > plain(30.0 * cos, ya)  # the margin lowers the target logit
    with pytest.raises(ConfigError, match="focal_margin"):
        LossConfig(kind="focal", focal_margin="cosface")
    with pytest.raises(ConfigError, match="mixup_margin"):
        LossConfig(mixup_margin="half")
