"""Typed configs: nested dataclasses, dotted overrides, and command-line flags made from the fields.

A run's settings are one dataclass whose sections are dataclasses too (``TrainConfig.loss``
is a :class:`~asdlib.classify.losses.LossConfig`). Everything outside the dataclass speaks
in *dotted overrides*, flat dicts such as ``{"loss.kind": "cosface", "schedule.max_lr": 2e-3}``:
profiles, the experiment registry and the command line merge them with ``|`` and
:func:`override` applies them, so a setting has exactly one name everywhere.

Command-line flags are generated from the fields (:func:`add_arguments`): ``loss.kind``
becomes ``--loss-kind``, ``schedule.max_lr`` ``--schedule-max-lr``. A field's help text is
its ``metadata["help"]``; the default shown is the dataclass's own, so nothing is retyped.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Mapping

from .errors import ConfigError

_FLAG_PREFIX = "cfg:"  # argparse dest prefix of generated flags


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def to_dict(cfg) -> dict:
    """Nested plain dict (tuples as lists), as stored in checkpoints and hashed into run keys."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"kind": "x"}}`` -> ``{"loss.kind": "x"}`` (dataclass instances too)."""
    if dataclasses.is_dataclass(d):
        d = to_dict(d)
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def leaf_fields(cls, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Every leaf setting of a config class: ``{"loss.kind": (type, field)}``."""
    hints = _hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_config(tp):
            out |= leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            out[f"{prefix}{f.name}"] = (tp, f)
    return out


def _build(cls, values: Mapping[str, Any], strict: bool, where: str):
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown and strict:
        known = ", ".join(sorted(leaf_fields(cls)))
        raise ConfigError(f"unknown setting(s) {', '.join(where + u for u in unknown)} for {cls.__name__}; "
                          f"known: {known}")
    kwargs = {}
    for name, v in values.items():
        if name not in names:
            continue
        tp = hints[name]
        if _is_config(tp):
            if dataclasses.is_dataclass(v):
                v = to_dict(v)
            if not isinstance(v, Mapping):
                raise ConfigError(f"setting {where}{name} is a section of {tp.__name__}; give a dict, got {v!r}")
            v = _build(tp, v, strict, f"{where}{name}.")
        kwargs[name] = v
    return cls(**kwargs)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys (and nested dicts) -> one nested dict; later keys win."""
    out: dict[str, Any] = {}
    for key, v in flat.items():
        if isinstance(v, Mapping):
            v = _nest(flatten(v))
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"setting {key!r} conflicts with a value given for {p!r}")
        if isinstance(v, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = _deep_merge(node[parts[-1]], v)
        else:
            node[parts[-1]] = v
    return out


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls, d: Mapping[str, Any], strict: bool = False):
    """Build ``cls`` from a nested dict and/or dotted keys.

    ``strict=False`` (reading a checkpoint) ignores keys a newer version may have added;
    ``strict=True`` (user overrides) names any unknown key and lists the known ones.
    """
    return _build(cls, _nest(d), strict, "")


def override(cfg, overrides: Mapping[str, Any] | None):
    """A copy of ``cfg`` with dotted ``overrides`` applied; unknown names are a :class:`ConfigError`."""
    if not overrides:
        return cfg
    return _build(type(cfg), _deep_merge(to_dict(cfg), _nest(overrides)), True, "")


# ---------------------------------------------------------------- command-line flags

def _base_type(tp):
    """``(scalar type, optional, is_tuple)`` of an annotation such as ``tuple[int, ...] | None``."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
        origin = typing.get_origin(tp)
    if origin is tuple:
        return typing.get_args(tp)[0], optional, True
    return tp, optional, False


def _parser_for(name: str, tp):
    scalar, optional, is_tuple = _base_type(tp)

    def parse(text: str):
        if optional and text.lower() in ("none", ""):
            return None
        if is_tuple:
            return tuple(scalar(v.strip()) for v in text.split(",") if v.strip())
        return scalar(text)

    parse.__name__ = scalar.__name__ if isinstance(scalar, type) else "value"
    return parse


def flag_name(dotted: str) -> str:
    """``schedule.max_lr`` -> ``--schedule-max-lr``."""
    return "--" + dotted.replace(".", "-").replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), title: str | None = None) -> None:
    """One flag per leaf setting of ``cls`` (not those in ``skip``); only flags given on the
    command line reach :func:`overrides_from_args`, so the dataclass keeps every default."""
    group = parser.add_argument_group(title or f"{cls.__name__} settings (defaults as shown)")
    defaults = flatten(cls())
    for dotted, (tp, f) in leaf_fields(cls).items():
        if dotted in skip:
            continue
        help_text = f.metadata.get("help", "")
        default = defaults[dotted]
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        help_text = f"{help_text} (default: {shown})".strip()
        if tp is bool:
            group.add_argument(flag_name(dotted), dest=_FLAG_PREFIX + dotted, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            scalar, _, is_tuple = _base_type(tp)
            metavar = (f"{scalar.__name__.upper()},..." if is_tuple else scalar.__name__.upper()) \
                if isinstance(scalar, type) else None
            group.add_argument(flag_name(dotted), dest=_FLAG_PREFIX + dotted, type=_parser_for(dotted, tp),
                               default=argparse.SUPPRESS, metavar=metavar, help=help_text.replace("%", "%%"))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted overrides the user gave as generated flags."""
    return {k[len(_FLAG_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_FLAG_PREFIX)}
