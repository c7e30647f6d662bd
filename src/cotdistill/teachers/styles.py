"""Reasoning styles as data files: each wraps a task family's core prompt (which fixes the answer format).

A style file is YAML with ``name``, ``template`` (must contain ``{core_prompt}``; ``{question}`` is also
available), optional ``system`` and ``description``. The six built-in styles live in ``teachers/styles/``;
``generate.style_dirs`` adds user directories whose files override built-ins of the same name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from cotdistill.errors import ConfigError, InputError
from cotdistill.records import Question
from cotdistill.tasks import TaskFamily

BUILTIN_DIR = Path(__file__).with_name("styles")
_FIELDS = {"name", "description", "system", "template"}


@dataclass(frozen=True)
class Style:
    """One reasoning style: how the core prompt is wrapped and which system message goes with it."""

    name: str
    template: str
    system: str = ""
    description: str = ""
    source: str = ""

    def user_prompt(self, family: TaskFamily, q: Question) -> str:
        """The user message: the template with the task's core prompt (and raw question) filled in."""
        return self.template.replace("{core_prompt}", family.core_prompt(q)).replace("{question}", q.question)

    def messages(self, family: TaskFamily, q: Question) -> list[dict[str, str]]:
        """The chat conversation a teacher sees for ``q`` in this style."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": self.user_prompt(family, q)}]


def load_style_file(path: str | os.PathLike) -> Style:
    """Parse and validate one style file; errors name the file and the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(
            p, f"malformed YAML: {getattr(e, 'problem', e)}", line=mark.line + 1 if mark else None
        ) from None
    except UnicodeDecodeError as e:
        raise InputError(p, f"not valid UTF-8 (byte {e.start})") from None
    if not isinstance(data, dict):
        raise InputError(p, "a style file must be a mapping with 'name' and 'template'")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InputError(p, f"unknown field (known: {', '.join(sorted(_FIELDS))})", field=unknown[0])
    for key in ("name", "template"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise InputError(
                p, "missing required field" if key not in data else "must be a non-empty string", field=key
            )
    for key in ("system", "description"):
        if key in data and not isinstance(data[key], str):
            raise InputError(p, "must be a string", field=key)
    if "{core_prompt}" not in data["template"]:
        raise InputError(
            p, "must contain {core_prompt} (the task's prompt, which fixes the answer format)", field="template"
        )
    return Style(
        name=data["name"].strip(),
        template=data["template"],
        system=data.get("system", "") or "",
        description=data.get("description", "") or "",
        source=str(p),
    )


def load_styles(style_dirs: list[str] | None = None) -> dict[str, Style]:
    """Built-in styles plus those in ``style_dirs`` (later directories override earlier ones by name)."""
    styles: dict[str, Style] = {}
    for d in [BUILTIN_DIR, *(Path(x) for x in style_dirs or [])]:
        if not d.is_dir():
            raise ConfigError(f"generate.style_dirs: '{d}' is not a directory")
        for f in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            s = load_style_file(f)
            styles[s.name] = s
    return styles


def select_styles(names: list[str], style_dirs: list[str] | None = None) -> list[Style]:
    """The styles called ``names``, in order; a clear error naming the known styles otherwise."""
    known = load_styles(style_dirs)
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(
            f"generate.styles: unknown style(s) {', '.join(missing)} (known: {', '.join(sorted(known))}; "
            "add your own with generate.style_dirs)"
        )
    if len(set(names)) != len(names):
        raise ConfigError("generate.styles: a style is listed twice")
    return [known[n] for n in names]
