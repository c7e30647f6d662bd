"""Reading a config file and wording its errors (``cotdistill.config`` builds and validates the models): the YAML
file as a mapping, ``--set`` overrides applied to it, and every bad field in one line blamed on what caused it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cotdistill.errors import ConfigError


def _error_parts(errors: list[Any]) -> list[tuple[str, str]]:
    """(dotted location, message) of each pydantic error, worded for a config."""
    parts = []
    for e in errors:
        loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "missing":
            msg = "missing required field"
        parts.append((loc, msg.removeprefix("Value error, ")))
    return parts


def format_validation_error(err: ValidationError, source: str) -> str:
    """Every bad field of a config in one line: ``file: a.b: msg; c: msg``."""
    parts = [f"{loc or '(top level)'}: {msg}" for loc, msg in _error_parts(err.errors())]
    return " ".join((f"{source}: invalid config: " + "; ".join(parts)).splitlines())


def blame(err: ValidationError, source: str, file_ok: bool, labels: dict[str, str]) -> str:
    """The errors of a config built from a file plus overrides, each under what caused it: the override (or CLI
    flag) that set the field, else the file; a cross-field error of a file that is valid alone goes to the
    overrides together. One line."""
    groups: dict[str, list[str]] = {}
    for loc, msg in _error_parts(err.errors()):
        hits = [k for k in labels if loc == k or loc.startswith(k + ".") or (loc and k.startswith(loc + "."))]
        if hits:
            label = labels[max(hits, key=len)]
        elif file_ok and labels:
            label = " ".join(dict.fromkeys(labels.values()))
        else:
            label = f"{source}: invalid config"
        groups.setdefault(label, []).append(f"{loc or '(top level)'}: {msg}")
    return " ".join("; ".join(f"{label}: {'; '.join(parts)}" for label, parts in groups.items()).splitlines())


def set_by_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply one ``a.b.c=value`` CLI override to a nested dict (list items by index: teachers.0.model)."""
    keys = dotted.split(".")
    cur: Any = data
    for k in keys[:-1]:
        if isinstance(cur, list):
            cur = cur[int(k)]
        else:
            cur = cur.setdefault(k, {})
    if isinstance(cur, list):
        cur[int(keys[-1])] = value
    else:
        cur[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``key=value`` strings to (key, YAML-parsed value) pairs."""
    out = []
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} must look like key.path=value")
        k, v = o.split("=", 1)
        try:
            out.append((k.strip(), yaml.safe_load(v)))
        except yaml.YAMLError:
            out.append((k.strip(), v))
    return out


def read_config_file(p: Path) -> dict[str, Any]:
    """The mapping of a YAML config file; one-line errors for a missing, unreadable or non-mapping file."""
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a YAML config file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not valid UTF-8 (byte {e.start})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line, whatever yaml says
        raise ConfigError(f"{p}{where}: malformed YAML: {problem}") from None
    if loaded is None:
        raise ConfigError(f"{p}: config file is empty")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: config must be a mapping, got {type(loaded).__name__}")
    return loaded


def options_error(e: ValidationError, method: str, valid: list[str]) -> str:
    """A method's ``train.options`` that its options model rejected, in one line: a typo names the key and the
    method's valid keys."""
    parts = []
    for err in e.errors():
        key = ".".join(str(x) for x in err.get("loc", ())) or "(options)"
        if err.get("type") == "extra_forbidden":
            parts.append(f"options.{key}: unknown option for method '{method}' (valid: {', '.join(valid) or 'none'})")
        else:
            parts.append(f"options.{key}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)
