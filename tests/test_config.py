"""Config loading: defaults, every bad field reported at once, no literal secrets, ``--set`` overrides."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from cotdistill.config import RunConfig, dump_config, load_config
from cotdistill.config_io import parse_overrides, set_by_dotted
from cotdistill.errors import ConfigError
from cotdistill.stages.resolve import resolve_run

# a fresh random key-shaped string per run: nothing that looks like a real key is committed
SECRET = "sk-" + secrets.token_hex(16)


def _write(tmp_path: Path, data: object, name: str = "run.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_defaults_are_valid_and_round_trip(tmp_path: Path):
    cfg = load_config(None)
    assert cfg == RunConfig()
    assert cfg.questions.train == 300 and cfg.train.method == "sft-multi"
    again = load_config(_write(tmp_path, yaml.safe_load(dump_config(cfg))))
    assert again == cfg


def test_every_bad_field_is_listed_at_once(tmp_path: Path):
    path = _write(
        tmp_path,
        {
            "seed": "abc",
            "questions": {"train": -3, "sourc": "rg:gsm_symbolic"},
            "teachers": [{"name": "t1"}, {"name": "t2", "temperature": 5}],
            "train": {"method": "magic", "epochs": 0},
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: invalid config: ")
    assert "\n" not in msg
    for field in ("seed:", "questions.train:", "questions.sourc: unknown field", "teachers.1.temperature:"):
        assert field in msg, field
    assert "train.method: unknown method 'magic'" in msg
    assert "train.epochs:" in msg
    assert msg.count(";") == 5  # six problems, one line


@pytest.mark.parametrize(
    "teacher",
    [
        {"name": "t", "backend": "openai", "api_key": SECRET},
        {"name": "t", "backend": "openai", "token": SECRET},
        {"name": "t", "backend": "openai", "api_key_env": SECRET},
        {"name": "t", "backend": "openai", "api_key_env": "hf_" + "x" * 30},
    ],
)
def test_literal_api_key_is_rejected_and_never_echoed(tmp_path: Path, teacher: dict):
    path = _write(tmp_path, {"teachers": [teacher]})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "teachers.0" in msg and "environment variable" in msg
    assert SECRET not in msg and "x" * 30 not in msg


def test_api_key_env_name_is_accepted_and_only_the_name_is_saved(tmp_path: Path):
    path = _write(tmp_path, {"teachers": [{"name": "t", "backend": "openai", "api_key_env": "OPENAI_API_KEY"}]})
    cfg = load_config(path)
    assert cfg.teachers[0].api_key_env == "OPENAI_API_KEY"
    assert "OPENAI_API_KEY" in dump_config(cfg)


def test_overrides_apply_with_yaml_types(tmp_path: Path):
    path = _write(tmp_path, {"teachers": [{"name": "a"}, {"name": "b"}], "questions": {"train": 10}})
    cfg = load_config(
        path,
        ["questions.train=7", "seed=3", "teachers.1.temperature=0.2", "filter.consensus.enabled=false", "name=demo"],
    )
    assert cfg.questions.train == 7 and cfg.seed == 3 and cfg.name == "demo"
    assert cfg.teachers[1].temperature == 0.2 and cfg.teachers[0].temperature == 0.8
    assert cfg.filter.consensus.enabled is False
    assert load_config(path).questions.train == 10  # the file itself is untouched


def test_override_values_are_validated_like_the_file():
    with pytest.raises(ConfigError, match=r"questions\.train: .*integer"):
        load_config(None, ["questions.train=many"])
    with pytest.raises(ConfigError, match=r"train\.colour: unknown field"):
        load_config(None, ["train.colour=red"])


@pytest.mark.parametrize("bad", ["questions", "teachers.5.name=x"])
def test_bad_override_syntax_or_address(tmp_path: Path, bad: str):
    path = _write(tmp_path, {"teachers": [{"name": "a"}]})
    with pytest.raises(ConfigError, match="override"):
        load_config(path, [bad])


def test_parse_and_set_helpers():
    assert parse_overrides(["a.b=1", "c=x=y", "d=[1, 2]", "e="]) == [
        ("a.b", 1),
        ("c", "x=y"),
        ("d", [1, 2]),
        ("e", None),
    ]
    data: dict = {"l": [{"k": 1}]}
    set_by_dotted(data, "l.0.k", 2)
    set_by_dotted(data, "new.deep.key", "v")
    assert data == {"l": [{"k": 2}], "new": {"deep": {"key": "v"}}}


@pytest.mark.parametrize(
    ("content", "needle"),
    [("a: [1, 2\n", "malformed YAML"), ("", "empty"), ("- 1\n- 2\n", "must be a mapping")],
)
def test_unreadable_config_files(tmp_path: Path, content: str, needle: str):
    p = tmp_path / "c.yaml"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        load_config(p)


def test_missing_and_non_utf8_config(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(p)


def test_resolve_run_saves_the_resolved_config(tmp_path: Path):
    path = _write(tmp_path, {"name": "r", "questions": {"train": 5}})
    run, cfg = resolve_run(tmp_path / "run", path, ["seed=9"])
    assert run.root == tmp_path / "run"
    saved = load_config(run.config)
    assert saved == cfg and saved.seed == 9 and saved.questions.train == 5
    # later stages with no --config read RUN/config.yaml
    _, cfg2 = resolve_run(tmp_path / "run")
    assert cfg2 == cfg


def test_cli_config_error_is_one_line(tmp_path: Path):
    path = _write(tmp_path, {"questions": {"train": -1, "dev": "x"}})
    proc = run_cli("questions", "--out", str(tmp_path / "run"), "-c", str(path))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "questions.train" in err and "questions.dev" in err and "run.yaml" in err


def test_cli_set_override_reaches_the_stage(tmp_path: Path):
    src = tmp_path / "qs.jsonl"
    src.write_text("".join(f'{{"question": "q{i}", "answer": "{i}"}}\n' for i in range(6)), encoding="utf-8")
    proc = run_cli("questions", "--out", str(tmp_path / "run"), "--source", str(src), "--set", "questions.train=4")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "run" / "questions.jsonl").read_text().splitlines()) == 4
