"""Fault models: how a machine of each type sounds when it is broken.

Each type has two or three kinds of fault, after the conditions that MIMII and ToyADMOS
list (bearing damage, imbalance, rubbing, clogging, leaks, contamination, gear damage,
belt and roller damage). An anomalous clip gets one kind, chosen at random. A fault acts
in one or both of two ways:

* ``modify`` changes the machine's constants before it is played (a clogged pump turns
  slower; a sticking valve loses its rhythm), so the fault lives inside the machine sound;
* ``add`` returns an extra component (unit RMS) that rides on the machine's state (bearing
  impulses at the bearing's defect frequency of the actual rotation rate; a leak's hiss
  only while the valve is shut), mixed in at ``level_db`` below the machine sound.

Strength scales with ``severity`` (1.0: the calibrated default; 0: no fault): added
components in amplitude, parameter changes in proportion. The default is set so that a
plain spectral-distance detector is clearly better than chance but far from perfect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .sounds import Params, Render, gate, harmonics, phase_of, ring, rms, shaped_noise, strike

Modify = Callable[[Params, np.random.Generator, float], None]
Add = Callable[[Render, np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Fault:
    name: str
    modify: Modify | None = None
    add: Add | None = None
    level_db: tuple[float, float] = (-20.0, -10.0)  # added component relative to the machine, at severity 1


# --------------------------------------------------------------------------- added components
def bearing(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Outer-race defect: an impulse each time a ball passes it (BPFO ~ 3-5.5 x shaft), ringing high."""
    n = len(r.signal)
    bpfo = r.shaft_hz * rng.uniform(3.0, 5.5)
    cycles = phase_of(bpfo, sr) / (2 * np.pi)
    idx = np.nonzero(np.diff(np.floor(cycles)) > 0)[0]
    amps = rng.uniform(0.6, 1.0, len(idx))
    h = ring(sr, [(rng.uniform(2500, 5500), rng.uniform(0.001, 0.003), 1.0)])
    x = strike(n, sr, idx / sr, amps, h) * r.active
    return x / rms(x)


def friction(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Rubbing: broadband friction bursts once per revolution (or per event), only while moving."""
    n = len(r.signal)
    noise = shaped_noise(rng, n, sr, lo=rng.uniform(800, 2000), hi=rng.uniform(4000, 7000))
    duty = rng.uniform(0.15, 0.4)
    # rub once per turn of the part that rubs (a wheel, a roller): 3-25 turns per second
    divisor = max(1.0, float(np.mean(r.shaft_hz)) / rng.uniform(3, 25))
    rev = np.mod(phase_of(r.shaft_hz / divisor, sr, rng.uniform(0, 6.3)) / (2 * np.pi), 1.0)
    env = np.clip((duty - rev) / duty, 0, 1) ** 2
    x = noise * env * r.active
    return x / rms(x)


def hiss(lo: tuple[float, float], when_idle: bool) -> Add:
    """Leak: turbulent high-frequency noise, steady or only while the machine is idle (a shut valve)."""

    def add(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
        n = len(r.signal)
        f = rng.uniform(*lo)
        x = shaped_noise(rng, n, sr, lo=f, hi=min(f * 3, 7500))
        x *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 12) * np.arange(n) / sr)  # flutter
        if when_idle:
            x *= 1.0 - r.active
        return x / rms(x)

    return add


def cavitation(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Collapsing vapour bubbles: dense random crackle, in bursts that follow the vane pulsation."""
    n = len(r.signal)
    k = rng.poisson(rng.uniform(200, 600) * n / sr)
    times = rng.uniform(0, n / sr, k)
    x = strike(n, sr, times, rng.exponential(1.0, k), ring(sr, [(rng.uniform(2000, 6000), 0.0008, 1.0)]))
    x *= 1 + 0.7 * np.sin(phase_of(r.shaft_hz * rng.uniform(2, 6), sr))
    return x / rms(x)


def squeal(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Stick-slip squeal: a tone with vibrato and harmonics while the part moves (slider, belt)."""
    n = len(r.signal)
    f = rng.uniform(900, 3000) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 9) * np.arange(n) / sr))
    x = harmonics(f, sr, np.array([1.0, 0.4, 0.2]), rng)
    x += 0.5 * shaped_noise(rng, n, sr, lo=1000, hi=6000)
    if np.all(r.active > 0.99):  # continuous machines squeal in bursts
        k = max(1, rng.poisson(1.5 * n / sr))
        x *= gate(n, sr, rng.uniform(0, n / sr, k), rng.uniform(0.1, 0.5, k), 0.03)
    x = x * r.active
    return x / (rms(x) + 1e-12)


def knocks(per_event: bool) -> Add:
    """Damage struck once per cycle: a dent in a rail, a broken gear tooth, a cracked roller.

    ``per_event`` ties knocks to the machine's events (stroke ends, belt joints, a position
    on the stroke); otherwise to the rotation of the driven part (1/reduction of the motor).
    """

    def add(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
        n = len(r.signal)
        if per_event and len(r.events):
            times = r.events - rng.uniform(0.03, 0.2)
        else:
            cycles = phase_of(r.shaft_hz / rng.uniform(6, 14), sr) / (2 * np.pi)
            times = np.nonzero(np.diff(np.floor(cycles)) > 0)[0] / sr
        times = times + 0.005 * rng.standard_normal(len(times))
        h = ring(sr, [(rng.uniform(800, 4000), rng.uniform(0.002, 0.01), 1.0), (rng.uniform(200, 600), 0.01, 0.3)])
        x = strike(n, sr, times, rng.uniform(0.5, 1.0, len(times)), h)
        return x / (rms(x) + 1e-12)

    return add


def gear_sidebands(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Damaged gear: the mesh whine modulated at the gear's rotation rate (sidebands) plus knocks."""
    ratio = rng.uniform(5.5, 9.5)
    gear_rot = r.shaft_hz / rng.uniform(6, 14)
    mesh = harmonics(r.shaft_hz * ratio, sr, np.array([1.0, 0.5]), rng)
    x = mesh * np.sin(phase_of(gear_rot, sr)) ** 2
    x = x / rms(x) + knocks(False)(r, rng, sr)
    return x / rms(x)


def shaft_rattle(r: Render, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Imbalance or a bent shaft: the housing vibrates at the rotation rate and its harmonics."""
    k = 12
    x = harmonics(r.shaft_hz, sr, rng.uniform(0.2, 1.0, k) / np.sqrt(np.arange(1, k + 1)), rng) * r.active
    return x / (rms(x) + 1e-12)


# --------------------------------------------------------------------------- parameter changes
def _scale(key: str, lo: float, hi: float, default: float = 1.0) -> Modify:
    """Multiply a constant by 1 - U(lo, hi) * severity (a slower shaft, a narrower flow band)."""

    def modify(p: Params, rng: np.random.Generator, severity: float) -> None:
        p[key] = p.get(key, default) * max(0.3, 1.0 - rng.uniform(lo, hi) * severity)

    return modify


def _set(**ranges: tuple[float, float]) -> Modify:
    """Set fault-only constants (timing jitter, imbalance depth, bounce) to U(lo, hi) * severity."""

    def modify(p: Params, rng: np.random.Generator, severity: float) -> None:
        for key, (lo, hi) in ranges.items():
            p[key] = p.get(key, 0.0) + rng.uniform(lo, hi) * severity

    return modify


def _both(*mods: Modify) -> Modify:
    def modify(p: Params, rng: np.random.Generator, severity: float) -> None:
        for m in mods:
            m(p, rng, severity)

    return modify


FAULTS: dict[str, tuple[Fault, ...]] = {
    "fan": (
        Fault("imbalance", modify=_set(wobble=(0.3, 0.6)), add=shaft_rattle, level_db=(-8, 0)),
        Fault("bearing", add=bearing, level_db=(-11, -3)),
        Fault("clogging", modify=_both(_scale("speed", 0.05, 0.1), _set(tilt_shift=(-3.0, -1.5)))),
    ),
    "pump": (
        Fault("clogging", modify=_both(_scale("speed", 0.03, 0.06), _scale("flow_scale", 0.1, 0.2)),
              add=cavitation, level_db=(-22, -14)),
        Fault("leak", add=hiss((2000, 4000), False), level_db=(-22, -14)),
        Fault("bearing", add=bearing, level_db=(-20, -12)),
    ),
    "slider": (
        Fault("rail_damage", add=knocks(True), level_db=(-3, 5)),
        Fault("timing", modify=_set(jitter=(0.15, 0.35))),
        Fault("rubbing", add=squeal, level_db=(-11, -3)),
    ),
    "valve": (
        Fault("leak", add=hiss((1500, 4000), True), level_db=(-22, -12)),
        Fault("timing", modify=_set(jitter=(0.15, 0.3), missing=(0.2, 0.4))),
        Fault("contamination", modify=_both(_scale("damping", 0.2, 0.4), _set(bounce=(0.5, 1.0)))),
    ),
    "ToyCar": (
        Fault("gear_damage", add=gear_sidebands, level_db=(-14, -6)),
        Fault("bent_shaft", modify=_set(wobble=(0.3, 0.6)), add=shaft_rattle, level_db=(-14, -6)),
        Fault("tyre_rubbing", add=friction, level_db=(-16, -8)),
    ),
    "ToyConveyor": (
        Fault("belt_slip", modify=_set(slip=(0.03, 0.06), jitter=(0.1, 0.2)), add=squeal, level_db=(-9, -1)),
        Fault("roller_damage", add=knocks(True), level_db=(-1, 7)),
        Fault("rubbing", add=friction, level_db=(-10, -2)),
    ),
}


def choose_fault(machine_type: str, rng: np.random.Generator) -> Fault:
    """One fault kind of the type, uniformly at random (each anomalous clip has one condition)."""
    faults = FAULTS[machine_type]
    return faults[int(rng.integers(len(faults)))]
