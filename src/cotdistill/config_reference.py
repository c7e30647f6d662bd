"""``cotdistill config-reference``: every config field and every method's ``train.options`` as markdown tables,
generated from the pydantic models (``docs/config.md`` is this output; a test keeps it current)."""

from __future__ import annotations

from pydantic import BaseModel

from cotdistill.config import RunConfig


def config_reference() -> str:
    """Markdown table of every config field (name, type, default, description), generated from the models,
    followed by every registered method's ``train.options``."""
    from cotdistill.training.methods import method_names, method_spec

    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    _reference_rows(RunConfig, "", rows)
    for name in method_names():
        spec = method_spec(name)
        rows += ["", f"### `train.options` of `{name}` ({spec.summary})", ""]
        if not spec.options.model_fields:
            rows.append("No options.")
            continue
        rows += ["| option | type | default | meaning |", "|---|---|---|---|"]
        _reference_rows(spec.options, "", rows)
    return "\n".join(rows) + "\n"


def _reference_rows(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    """One markdown row per field of ``model``; nested sections and lists of sections walked with a dotted prefix."""
    for name, f in model.model_fields.items():
        ann = f.annotation
        item = getattr(ann, "__args__", (None,))[0] if getattr(ann, "__origin__", None) is list else None
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is None and isinstance(item, type) and issubclass(item, BaseModel):
            rows.append(f"| `{prefix}{name}` | list | `[]` | {f.description or ''} |")
            _reference_rows(item, f"{prefix}{name}[].", rows)
            continue
        if sub is not None:
            _reference_rows(sub, f"{prefix}{name}.", rows)
            continue
        default = "" if f.is_required() else repr(f.get_default(call_default_factory=True))
        typ = getattr(ann, "__name__", None) if isinstance(ann, type) else None
        typ = (typ or str(ann)).replace("typing.", "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {typ} | `{default}` | {(f.description or '').replace('|', '/')} |")
