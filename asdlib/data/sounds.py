"""Sound models of the six DCASE2020 machine types, for the synthetic stand-in dataset.

Why physical models and not noise: the notebooks must show the study's effects on a CPU in
minutes. That needs data where (a) machine IDs of a type differ the way real ones do (the
same machine family with other speeds, sizes and resonances: subtly for MIMII, strongly for
ToyConveyor), (b) normal clips of one ID vary (speed, load, phase, room noise), and (c)
faults change the sound the way real faults do (see ``asdlib.data.faults``). Each model is
a few lines of signal processing over a handful of numbers that describe one machine.

A model is a pair of functions: ``params(rng)`` draws one machine's constants (an ID), and
``render(p, rng, n, sr)`` plays one clip of it, returning the machine sound alone and the
internal state (rotation rate, activity, event times) that fault models attach to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import fftconvolve

Params = dict[str, float]


@dataclass
class Render:
    """One clip of one machine, before faults and room noise are added."""

    signal: np.ndarray  # (n,) machine sound, arbitrary scale
    shaft_hz: np.ndarray  # (n,) rotation rate of the main rotating part, Hz (bearing faults ride on it)
    active: np.ndarray  # (n,) 0..1: when the machine moves / the valve is open
    events: np.ndarray  # times in s of mechanical events (stroke ends, clicks, belt joints)


# --------------------------------------------------------------------------- primitives
def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def spectral_gain(f: np.ndarray, tilt_db_oct: float = 0.0, lo: float = 0.0, hi: float = 0.0,
                  peaks: tuple[tuple[float, float, float], ...] = ()) -> np.ndarray:
    """Magnitude response: a spectral tilt, Butterworth-like band edges and log-Gaussian resonances.

    ``peaks`` holds (centre Hz, width in octaves, gain dB): a machine body's resonances.
    """
    fs = np.maximum(f, 10.0)
    db = tilt_db_oct * np.log2(fs / 1000.0)
    for fc, width, gain_db in peaks:
        db = db + gain_db * np.exp(-0.5 * (np.log2(fs / fc) / width) ** 2)
    g = 10.0 ** (db / 20.0)
    if lo > 0:
        g = g / np.sqrt(1.0 + (lo / fs) ** 4)
    if hi > 0:
        g = g / np.sqrt(1.0 + (fs / hi) ** 4)
    g[0] = 0.0  # no DC
    return g


def shaped_noise(rng: np.random.Generator, n: int, sr: int, **shape) -> np.ndarray:
    """Gaussian noise coloured in the frequency domain by :func:`spectral_gain`; unit RMS."""
    m = n // 2 + 1
    spec = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    x = np.fft.irfft(spec * spectral_gain(np.fft.rfftfreq(n, 1.0 / sr), **shape), n)
    return x / rms(x)


def phase_of(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Instantaneous phase (rad) of a frequency track, so that speed can change within a clip."""
    return phase0 + 2.0 * np.pi * np.cumsum(freq) / sr


def harmonics(freq: np.ndarray, sr: int, amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sum of harmonics k = 1..len(amps) of a frequency track; those above 0.45 sr are left out."""
    z = np.exp(1j * phase_of(freq, sr))
    zk = z.copy()  # z**k by repeated multiplication: much cheaper than one sin() per harmonic
    out = np.zeros(len(z))
    top = float(np.max(freq))
    for k, a in enumerate(amps, start=1):
        phi = rng.uniform(0, 2 * np.pi)
        if k * top < 0.45 * sr and a > 0:
            out += a * (zk * np.exp(1j * phi)).imag
        zk *= z
    return out


def slow_curve(rng: np.random.Generator, n: int, knots: int) -> np.ndarray:
    """A smooth random curve with about zero mean and unit spread: speed drift, load changes."""
    k = max(int(knots), 2)
    values = np.cumsum(rng.standard_normal(k + 2)) / np.sqrt(k)
    values -= values.mean()
    x = np.linspace(0, 1, k + 2)
    curve = np.interp(np.linspace(0, 1, n), x, values)
    return curve / (np.std(curve) + 1e-9)


def ring(sr: int, modes: list[tuple[float, float, float]], seconds: float | None = None) -> np.ndarray:
    """Impulse response of a struck part: decaying sinusoidal modes (Hz, decay s, amplitude)."""
    seconds = seconds or 5.0 * max(d for _, d, _ in modes)
    t = np.arange(int(seconds * sr)) / sr
    h = sum(a * np.exp(-t / d) * np.sin(2 * np.pi * f * t) for f, d, a in modes)
    return h / (np.max(np.abs(h)) + 1e-12)


def strike(n: int, sr: int, times: np.ndarray, amps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Impulses at ``times`` (s) with ``amps``, each ringing with ``kernel``."""
    idx = np.round(np.asarray(times) * sr).astype(int)
    keep = (idx >= 0) & (idx < n)
    buf = np.zeros(n)
    np.add.at(buf, idx[keep], np.asarray(amps, dtype=float)[keep])
    return fftconvolve(buf, kernel)[:n]


def gate(n: int, sr: int, starts: np.ndarray, durations: np.ndarray, ramp: float) -> np.ndarray:
    """0..1 envelope that is 1 during each segment, with linear ramps of ``ramp`` s."""
    t = np.arange(n) / sr
    env = np.zeros(n)
    for s, d in zip(starts, durations):
        up = np.clip((t - s) / ramp, 0, 1)
        down = np.clip((s + d - t) / ramp, 0, 1)
        env = np.maximum(env, np.minimum(up, down))
    return env


def cycle_times(rng: np.random.Generator, seconds: float, period: float, jitter: float) -> np.ndarray:
    """Start times of a duty cycle covering the clip: a random phase, then periods with jitter."""
    t = -rng.uniform(0, period)
    out = []
    while t < seconds:
        out.append(t)
        t += period * max(0.25, 1.0 + jitter * rng.standard_normal())
    return np.asarray(out)


def resonances(rng: np.random.Generator, count: int, lo: float, hi: float, gain_db: float) -> tuple:
    return tuple((float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), float(rng.uniform(0.2, 0.6)),
                  float(rng.uniform(0.4, 1.0) * gain_db)) for _ in range(count))


def site_params(rng: np.random.Generator) -> Params:
    """The room a machine was recorded in: its noise colour, resonances and mains hum."""
    return dict(tilt=rng.uniform(-6, -2), hi=rng.uniform(4000, 7500), res=resonances(rng, 2, 100, 3000, 6.0),
                mains=float(rng.choice([50.0, 60.0])), hum=rng.uniform(0.05, 0.3))


def background(rng: np.random.Generator, n: int, sr: int, site: Params) -> np.ndarray:
    """Factory-like room noise: the site's coloured noise and hum, varying a little per clip,
    plus occasional unrelated events (impacts, air blasts, distant tools); unit RMS."""
    x = shaped_noise(rng, n, sr, tilt_db_oct=site["tilt"] + rng.normal(0, 0.3), lo=20,
                     hi=site["hi"] * np.exp(rng.normal(0, 0.05)), peaks=site["res"])
    hum = site["hum"] * np.exp(rng.normal(0, 0.2))
    x += hum * harmonics(np.full(n, site["mains"]), sr, np.array([0.3, 1, 0.5, 0.3]), rng)
    seconds = n / sr
    for _ in range(rng.poisson(0.25 * seconds)):  # impacts, air blasts, distant tools
        kind, t0 = rng.integers(3), rng.uniform(0, seconds)
        if kind == 0:
            h = ring(sr, [(rng.uniform(150, 2500), rng.uniform(0.01, 0.08), 1.0)])
            x += rng.uniform(2, 8) * strike(n, sr, np.array([t0]), np.array([1.0]), h)
        else:
            lo = rng.uniform(200, 2000)
            burst = shaped_noise(rng, n, sr, lo=lo, hi=lo * rng.uniform(2, 6))
            x += rng.uniform(0.5, 2.0) * burst * gate(n, sr, [t0], [rng.uniform(0.1, 0.8)], 0.05)
    return x / rms(x)


def _rotating(p: Params, rng: np.random.Generator, n: int, sr: int, base: str, drift: float) -> np.ndarray:
    """Rotation-rate track: the ID's rate times the clip's load factor, drifting slowly."""
    return p[base] * p.get("speed", 1.0) * (1.0 + drift * slow_curve(rng, n, 4))


def _wobble(sig: np.ndarray, shaft: np.ndarray, p: Params, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Imbalance: amplitude modulation once per revolution (0 for a healthy machine)."""
    w = p.get("wobble", 0.0)
    return sig if w <= 0 else sig * (1.0 + w * np.sin(phase_of(shaft, sr, rng.uniform(0, 6.3))))


# --------------------------------------------------------------------------- fan
def fan_params(rng: np.random.Generator) -> Params:
    return dict(shaft_hz=rng.uniform(12, 24), blades=float(rng.integers(5, 9)), tone_db=rng.uniform(-8, -2),
                h_decay=rng.uniform(0.45, 0.75), tilt=rng.uniform(-4, -1.5), air_hi=rng.uniform(1500, 4000),
                air_am=rng.uniform(0.1, 0.3), res=resonances(rng, 3, 200, 4000, 8.0))


def fan_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    shaft = _rotating(p, rng, n, sr, "shaft_hz", 0.003)
    bpf = shaft * p["blades"]
    amps = p["h_decay"] ** np.arange(8) * 10 ** (rng.normal(0, 2, 8) / 20)
    tone = harmonics(bpf, sr, amps, rng)
    tone += 0.1 * harmonics(shaft, sr, np.array([1.0, 0.5]), rng)
    air = shaped_noise(rng, n, sr, tilt_db_oct=p["tilt"] + p.get("tilt_shift", 0.0), lo=40,
                       hi=p["air_hi"], peaks=p["res"])
    air *= 1.0 + p["air_am"] * np.sin(phase_of(bpf, sr))
    sig = 10 ** (p["tone_db"] / 20) * tone / rms(tone) + air
    return Render(_wobble(sig, shaft, p, sr, rng), shaft, np.ones(n), np.zeros(0))


# --------------------------------------------------------------------------- pump
def pump_params(rng: np.random.Generator) -> Params:
    return dict(shaft_hz=rng.uniform(23, 29), vanes=float(rng.integers(5, 8)), line_hz=float(rng.choice([50, 60])),
                hum_db=rng.uniform(-14, -6), vane_db=rng.uniform(-8, -2), flow_hi=rng.uniform(700, 2500),
                tilt=rng.uniform(-3, 0), pulse=rng.uniform(0.2, 0.5), res=resonances(rng, 3, 150, 3000, 8.0))


def pump_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    shaft = _rotating(p, rng, n, sr, "shaft_hz", 0.004)
    vpf = shaft * p["vanes"]
    hum = harmonics(np.full(n, 2 * p["line_hz"]), sr, np.array([1.0, 0.4, 0.2]), rng)
    vane = harmonics(vpf, sr, 0.6 ** np.arange(5) * 10 ** (rng.normal(0, 2, 5) / 20), rng)
    vane += 0.3 * harmonics(shaft, sr, np.array([1.0, 0.6, 0.3]), rng)
    flow = shaped_noise(rng, n, sr, tilt_db_oct=p["tilt"], lo=30, hi=p["flow_hi"] * p.get("flow_scale", 1.0),
                        peaks=p["res"])
    flow *= 1.0 + p["pulse"] * np.sin(phase_of(vpf, sr))
    sig = flow + 10 ** (p["vane_db"] / 20) * vane / rms(vane) + 10 ** (p["hum_db"] / 20) * hum / rms(hum)
    return Render(_wobble(sig, shaft, p, sr, rng), shaft, np.ones(n), np.zeros(0))


# --------------------------------------------------------------------------- slider
def slider_params(rng: np.random.Generator) -> Params:
    return dict(period=rng.uniform(0.45, 0.9), duty=rng.uniform(0.55, 0.8), motor_hz=rng.uniform(250, 700),
                screw_lo=rng.uniform(600, 1500), click_hz=rng.uniform(1200, 3500), click_db=rng.uniform(0, 8),
                rattle_rate=rng.uniform(15, 50), res=resonances(rng, 2, 500, 5000, 8.0))


def slider_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    seconds = n / sr
    period = p["period"] * p.get("speed", 1.0)
    starts = cycle_times(rng, seconds, period, 0.02 + p.get("jitter", 0.0))
    durs = p["duty"] * period * (1 + 0.03 * rng.standard_normal(len(starts)))
    active = gate(n, sr, starts, durs, 0.04)
    motor_f = np.full(n, p["motor_hz"]) * (1 + 0.01 * slow_curve(rng, n, 3))
    motor = harmonics(motor_f, sr, 0.5 ** np.arange(5), rng)
    screw = shaped_noise(rng, n, sr, lo=p["screw_lo"], hi=p["screw_lo"] * 4, peaks=p["res"])
    k = rng.poisson(p["rattle_rate"] * seconds)
    rt = rng.uniform(0, seconds, k)
    rattle = strike(n, sr, rt, rng.uniform(0.2, 1.0, k), ring(sr, [(rng.uniform(3000, 5000), 0.002, 1.0)]))
    ends = starts + durs
    clicks = strike(n, sr, ends, 10 ** (rng.normal(0, 1.5, len(ends)) / 20),
                    ring(sr, [(p["click_hz"], 0.008, 1.0), (p["click_hz"] * 2.7, 0.003, 0.4)]))
    moving = (0.5 * motor / rms(motor) + screw + 0.4 * rattle / rms(rattle)) * active
    sig = moving + 10 ** (p["click_db"] / 20) * clicks / (rms(clicks) + 1e-9) * np.sqrt(np.mean(active))
    return Render(sig, motor_f / 8.0, active, ends)


# --------------------------------------------------------------------------- valve
def valve_params(rng: np.random.Generator) -> Params:
    return dict(period=rng.uniform(0.3, 0.7), open_frac=rng.uniform(0.3, 0.6), f1=rng.uniform(1500, 4000),
                f2=rng.uniform(300, 900), d1=rng.uniform(0.004, 0.012), close_db=rng.uniform(-4, 2),
                flow_db=rng.uniform(-22, -14), flow_lo=rng.uniform(800, 2000))


def valve_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    seconds = n / sr
    opens = cycle_times(rng, seconds, p["period"], 0.01 + p.get("jitter", 0.0))
    keep = rng.random(len(opens)) >= min(p.get("missing", 0.0), 0.8)
    opens = opens[keep]
    closes = opens + p["open_frac"] * p["period"] * (1 + 0.02 * rng.standard_normal(len(opens)))
    damp = p.get("damping", 1.0)
    kernel = ring(sr, [(p["f1"] * damp, p["d1"] * damp, 1.0), (p["f2"], 0.02, 0.5)], seconds=0.08)
    times = np.concatenate([opens, closes])
    amps = np.concatenate([np.ones(len(opens)), np.full(len(closes), 10 ** (p["close_db"] / 20))])
    bounce = p.get("bounce", 0.0)
    if bounce > 0:  # a contaminated seat: the plunger bounces after it closes
        times = np.concatenate([times, closes + rng.uniform(0.01, 0.04, len(closes))])
        amps = np.concatenate([amps, bounce * rng.uniform(0.5, 1.0, len(closes))])
    clicks = strike(n, sr, times, amps * 10 ** (rng.normal(0, 1.0, len(amps)) / 20), kernel)
    active = gate(n, sr, opens, closes - opens, 0.005)
    flow = shaped_noise(rng, n, sr, lo=p["flow_lo"], hi=p["flow_lo"] * 3) * active
    sig = clicks / (rms(clicks) + 1e-9) + 10 ** (p["flow_db"] / 20) * flow
    return Render(sig, np.full(n, 1.0 / p["period"]), active, np.sort(times))


# --------------------------------------------------------------------------- ToyCar
def toycar_params(rng: np.random.Generator) -> Params:
    return dict(f0=rng.uniform(120, 260), gear_ratio=rng.uniform(5.5, 9.5), reduction=rng.uniform(8, 20),
                speed_var=rng.uniform(0.02, 0.06), h_decay=rng.uniform(0.6, 0.85), gear_db=rng.uniform(-10, -3),
                roll_db=rng.uniform(-8, -2), res=resonances(rng, 3, 300, 5000, 10.0))


def toycar_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    f0 = p["f0"] * p.get("speed", 1.0) * (1 + p["speed_var"] * slow_curve(rng, n, 6))
    motor = harmonics(f0, sr, p["h_decay"] ** np.arange(10) * 10 ** (rng.normal(0, 2, 10) / 20), rng)
    gear = harmonics(f0 * p["gear_ratio"], sr, np.array([1.0, 0.4, 0.2]), rng)
    wheel = f0 / p["reduction"]
    roll = shaped_noise(rng, n, sr, tilt_db_oct=-3, lo=40, hi=2000, peaks=p["res"])
    roll *= 1 + 0.3 * np.sin(phase_of(wheel, sr))
    sig = motor / rms(motor) + 10 ** (p["gear_db"] / 20) * gear / rms(gear) + 10 ** (p["roll_db"] / 20) * roll
    return Render(_wobble(sig, wheel, p, sr, rng), f0, np.ones(n), np.zeros(0))


# --------------------------------------------------------------------------- ToyConveyor
def toyconveyor_params(rng: np.random.Generator) -> Params:
    # Wide ranges: the three ToyADMOS conveyors differ in size, so their IDs separate strongly.
    return dict(motor_hz=rng.uniform(40, 220), joint_period=rng.uniform(0.12, 0.6), thump_hz=rng.uniform(70, 320),
                hum_db=rng.uniform(-10, 0), thump_db=rng.uniform(-6, 4), tilt=rng.uniform(-7, 0),
                belt_lo=rng.uniform(60, 400), belt_hi=rng.uniform(1500, 6000), res=resonances(rng, 4, 100, 6000, 14.0))


def toyconveyor_render(p: Params, rng: np.random.Generator, n: int, sr: int) -> Render:
    seconds = n / sr
    speed = p.get("speed", 1.0)
    motor = np.full(n, p["motor_hz"] * speed) * (1 + (0.004 + p.get("slip", 0.0)) * slow_curve(rng, n, 8))
    hum = harmonics(motor, sr, 0.6 ** np.arange(6), rng)
    belt = shaped_noise(rng, n, sr, tilt_db_oct=p["tilt"], lo=p["belt_lo"], hi=p["belt_hi"], peaks=p["res"])
    joints = cycle_times(rng, seconds, p["joint_period"] / speed, 0.01 + p.get("jitter", 0.0))
    thumps = strike(n, sr, joints, rng.uniform(0.8, 1.0, len(joints)),
                    ring(sr, [(p["thump_hz"], 0.03, 1.0), (p["thump_hz"] * 3.1, 0.01, 0.3)]))
    sig = (belt + 10 ** (p["hum_db"] / 20) * hum / rms(hum)
           + 10 ** (p["thump_db"] / 20) * thumps / (rms(thumps) + 1e-9))
    return Render(sig, motor, np.ones(n), joints)


@dataclass(frozen=True)
class SoundModel:
    params: Callable[[np.random.Generator], Params]
    render: Callable[[Params, np.random.Generator, int, int], Render]
    snr_db: float  # machine-to-room-noise ratio; MIMII was mixed at -6/0/6 dB, ToyADMOS recorded in noise


MODELS: dict[str, SoundModel] = {
    "fan": SoundModel(fan_params, fan_render, 0.0),
    "pump": SoundModel(pump_params, pump_render, 2.0),
    "slider": SoundModel(slider_params, slider_render, 4.0),
    "valve": SoundModel(valve_params, valve_render, 6.0),
    "ToyCar": SoundModel(toycar_params, toycar_render, 4.0),
    "ToyConveyor": SoundModel(toyconveyor_params, toyconveyor_render, 3.0),
}
