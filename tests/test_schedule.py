"""Warm-up + cosine restarts: closed form, scheduler class, resume, plot."""
from __future__ import annotations

import io
import math

import matplotlib
import pytest
import torch

from asdlib.classify.schedule import ScheduleConfig, WarmupCosineRestarts, cycle_ends, cycle_of, lr_at, plot_schedule
from asdlib.core.errors import ConfigError

STUDY = ScheduleConfig(max_lr=2e-4, T_up=2, T_0=10, T_mult=2)


def test_study_cycle_ends():
    assert cycle_ends(STUDY, 150) == [10, 30, 70, 150]
    assert cycle_ends(STUDY, 149.9) == [10, 30, 70]
    assert [cycle_of(e, STUDY)[:2] for e in (0, 9.99, 10, 29.9, 30, 70)] == [
        (0, 0), (0, 0), (1, 10), (1, 10), (2, 30), (3, 70)
    ]


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, 0.0), (1, 1e-4), (2, 2e-4), (6, 1e-4), (10, 0.0),  # cycle 0: up 0-2, down 2-10
        (11, 1e-4), (12, 2e-4), (21, 1e-4), (30, 0.0),  # cycle 1: 10-30, cosine mid at 21
        (32, 2e-4), (51, 1e-4), (70, 0.0), (72, 2e-4), (111, 1e-4), (150, 0.0),
    ],
)
def test_closed_form_points(epoch: float, expected: float):
    assert lr_at(epoch, STUDY) == pytest.approx(expected, abs=1e-12)


def test_closed_form_shape():
    # Continuous at cycle ends (approaches the minimum from below the boundary too) and
    # within [min_lr, max_lr] everywhere; the cosine part matches the formula.
    for end in (10, 30, 70, 150):
        assert lr_at(end - 1e-6, STUDY) < 1e-12
    xs = [k / 7 for k in range(150 * 7)]
    lrs = [lr_at(x, STUDY) for x in xs]
    assert min(lrs) >= 0 and max(lrs) <= 2e-4 + 1e-15
    t = 30 + 2 + 0.3 * 38  # cycle 2, 30 % of its cosine part
    assert lr_at(t, STUDY) == pytest.approx(1e-4 * (1 + math.cos(0.3 * math.pi)))


def test_min_lr_gamma_and_tmult_one():
    cfg = ScheduleConfig(max_lr=1.0, T_up=1, T_0=4, T_mult=1, min_lr=0.1, gamma=0.5)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(1, cfg) == pytest.approx(1.0)
    assert lr_at(5, cfg) == pytest.approx(0.5)  # second peak decayed by gamma
    assert lr_at(9, cfg) == pytest.approx(0.25)
    assert lr_at(8, cfg) == pytest.approx(0.1)
    assert cycle_ends(cfg, 12) == [4, 8, 12]


@pytest.mark.parametrize(
    "kwargs", [dict(T_up=10, T_0=10), dict(T_mult=0.5), dict(min_lr=1.0, max_lr=0.5), dict(gamma=0.0)]
)
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        ScheduleConfig(**kwargs)


def make(cfg: ScheduleConfig, spe: int):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=123.0)  # whatever lr: the schedule overrides it
    return p, opt, WarmupCosineRestarts(opt, cfg, steps_per_epoch=spe)


def run(p, opt, sched, n: int) -> list[float]:
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("cfg, spe", [(STUDY, 2), (ScheduleConfig(max_lr=0.1, T_up=1, T_0=4, T_mult=2, gamma=0.7), 5)])
def test_scheduler_matches_closed_form(cfg: ScheduleConfig, spe: int):
    p, opt, sched = make(cfg, spe)
    n = int(cycle_ends(cfg, 150)[-1] * spe) + 3
    lrs = run(p, opt, sched, n)
    expected = [lr_at(k / spe, cfg) for k in range(n)]
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert sched.get_last_lr()[0] == pytest.approx(lr_at(n / spe, cfg))


def test_scheduler_resume_from_state_dict():
    cfg, spe = ScheduleConfig(max_lr=0.05, T_up=1, T_0=3, T_mult=2), 4
    torch.manual_seed(0)
    p, opt, sched = make(cfg, spe)
    full = run(p, opt, sched, 40)
    final = p.detach().clone()

    torch.manual_seed(0)
    p1, opt1, sched1 = make(cfg, spe)
    first = run(p1, opt1, sched1, 17)
    buf = io.BytesIO()
    torch.save({"opt": opt1.state_dict(), "sched": sched1.state_dict(), "p": p1.detach()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # the config travels as a plain dict

    p2 = torch.nn.Parameter(state["p"].clone())
    opt2 = torch.optim.Adam([p2], lr=123.0)
    sched2 = WarmupCosineRestarts(opt2, ScheduleConfig(), steps_per_epoch=1)  # wrong on purpose
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    assert sched2.cfg == cfg and sched2.steps_per_epoch == spe
    rest = run(p2, opt2, sched2, 23)
    assert first + rest == pytest.approx(full, abs=0)
    torch.testing.assert_close(p2.detach(), final)


def test_param_group_lr_scale():
    p, q = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [p]}, {"params": [q], "lr_scale": 0.1}], lr=1.0)
    sched = WarmupCosineRestarts(opt, STUDY, steps_per_epoch=1)
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-4, 2e-5])


def test_plot_schedule_marks_cycle_ends():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_schedule(STUDY, 150, steps_per_epoch=4)
    vlines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert sorted(ln.get_xdata()[0] for ln in vlines) == [10, 30, 70, 150]
    curve = ax.get_lines()[0]
    assert max(curve.get_ydata()) == pytest.approx(2e-4)
    plt.close(ax.figure)
