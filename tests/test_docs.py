"""The documentation that is generated stays true: docs/config.md is the config models' own reference."""

from pathlib import Path

from cotdistill.config_reference import config_reference


def test_config_reference_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text(encoding="utf-8") == config_reference(), "regenerate: cotdistill config-reference"


def test_every_config_field_is_documented():
    rows = [r for r in config_reference().splitlines()[2:] if r.startswith("| `")]
    undocumented = [r.split("|")[1].strip() for r in rows if r.rstrip().endswith("|  |")]
    assert len(rows) > 60 and undocumented == []
