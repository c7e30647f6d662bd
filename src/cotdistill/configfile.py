"""Config files: YAML loading with ``--set`` overrides, validation errors as one line, and the resolved dump."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError


def format_validation_error(err: ValidationError, source: str) -> str:
    """Every bad field of a config in one line: ``file: a.b: msg; c: msg``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in e.get("loc", ())) or "(top level)"
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "missing":
            msg = "missing required field"
        parts.append(f"{loc}: {msg.removeprefix('Value error, ')}")
    return " ".join((f"{source}: invalid config: " + "; ".join(parts)).splitlines())


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


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML config (or the defaults when ``path`` is None), apply overrides, validate everything."""
    source = str(path) if path else "(defaults)"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
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
        data = loaded
    for k, v in parse_overrides(overrides or []):
        try:
            set_by_dotted(data, k, v)
        except (IndexError, ValueError, TypeError, AttributeError):
            raise ConfigError(f"override '{k}' does not address a field of the config") from None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (secrets never live in it: only environment variable names)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
