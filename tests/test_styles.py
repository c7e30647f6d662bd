"""Reasoning styles as data files: the six built-ins, user style directories, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotdistill.config import STYLES
from cotdistill.errors import ConfigError, InputError
from cotdistill.records import Question
from cotdistill.tasks import get_family
from cotdistill.teachers.styles import BUILTIN_DIR, load_styles, select_styles

Q = Question(id="q", task="choice", question="Which is a fruit?", choices=["rock", "apple"], gold="B")


def test_six_builtin_styles_wrap_the_core_prompt() -> None:
    styles = load_styles()
    assert set(STYLES) <= set(styles)
    fam = get_family("choice")
    prompts = {}
    for name in STYLES:
        msgs = styles[name].messages(fam, Q)
        assert msgs[-1]["role"] == "user"
        user = msgs[-1]["content"]
        assert user.startswith(fam.core_prompt(Q))  # answer format fixed by the task family
        assert len(user) > len(fam.core_prompt(Q)) + 40  # and a real style instruction after it
        prompts[name] = user
    assert len(set(prompts.values())) == 6
    assert "python" in prompts["program"].lower() and "backward" in prompts["backward"].lower()
    assert "facts" in prompts["facts"].lower() and "approach" in prompts["tot"].lower()
    assert all((BUILTIN_DIR / f"{n}.yaml").exists() for n in STYLES)


def test_user_style_dir_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "socratic.yaml").write_text("name: socratic\ntemplate: 'Ask yourself questions. {core_prompt}'\n")
    (tmp_path / "cot.yaml").write_text("name: cot\nsystem: custom\ntemplate: '{core_prompt} -- mine'\n")
    styles = select_styles(["socratic", "cot", "vanilla"], [str(tmp_path)])
    fam = get_family("math")
    q = Question(id="q", task="math", question="1+1?", gold="2")
    assert [s.name for s in styles] == ["socratic", "cot", "vanilla"]
    assert styles[0].messages(fam, q)[-1]["content"] == "Ask yourself questions. " + fam.core_prompt(q)
    assert styles[1].messages(fam, q) == [
        {"role": "system", "content": "custom"},
        {"role": "user", "content": fam.core_prompt(q) + " -- mine"},
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: x\ntemplate: no placeholder\n", "core_prompt"),
        ("template: '{core_prompt}'\n", "name"),
        ("name: x\ntemplate: '{core_prompt}'\ncolour: red\n", "colour"),
        ("name: [x\n", "malformed YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_bad_style_files_name_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=match) as e:
        load_styles([str(tmp_path)])
    assert "bad.yaml" in str(e.value)


def test_unknown_style_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown style.*nope.*known: backward"):
        select_styles(["cot", "nope"])
    with pytest.raises(ConfigError, match="not a directory"):
        load_styles([str(tmp_path / "absent")])
