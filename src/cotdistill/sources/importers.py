"""Importers of existing multi-path datasets into questions + paths.

- ``mcc-kd``: a JSON array of ``{"instruction", "output": [path, ...] | "path", "label"}`` (MCC-KD's format).
- ``qr-distill``: QR-Distill reference JSONL (``*.enriched.jsonl`` with ``prompts``, ``responses``, ``preds``,
  ``correct_flags``, ``gold_answer``; or ``*.correct.jsonl``, the same with only the correct responses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from cotdistill.config import STYLES
from cotdistill.errors import CotdistillError, InputError
from cotdistill.records import Question, ReasoningPath, path_id
from cotdistill.sources.files import iter_rows
from cotdistill.tasks import FAMILIES, get_family

# QR-Distill dataset names -> task family
DATASET_FAMILY = {
    "anli": "label",
    "strategy_qa": "yesno",
    "strategyqa": "yesno",
    "arc_challenge": "choice",
    "arc": "choice",
    "commonsense_qa": "choice",
    "date": "choice",
    "math": "math",
    "gsm8k": "math",
    "svamp": "math",
}


@dataclass
class ImportOptions:
    task: str | None = None
    teacher: str = "teacher"
    style: str | None = None
    split: str = "train"


Item = tuple[Question, list[ReasoningPath]]
Importer = Callable[[FsPath, ImportOptions], Iterator[Item]]


def _require(row: dict[str, Any], key: str, src: FsPath, line: int, kinds: tuple[type, ...]) -> Any:
    if key not in row:
        raise InputError(src, "missing required field", line=line, field=key)
    val = row[key]
    if not isinstance(val, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InputError(src, f"expected {names}, got {type(val).__name__}", line=line, field=key)
    return val


def _make_paths(
    q: Question, texts: list[str], teacher: str, styles: list[str], prompts: list[str], extra: list[dict]
) -> list[ReasoningPath]:
    fam = get_family(q.task)
    out = []
    counters: dict[str, int] = {}
    for text, style, prompt, meta in zip(texts, styles, prompts, extra, strict=True):
        sample = counters.get(style, 0)
        counters[style] = sample + 1
        out.append(
            ReasoningPath(
                id=path_id(q.id, teacher, style, sample),
                question_id=q.id,
                teacher=teacher,
                style=style,
                sample=sample,
                prompt=prompt,
                text=text,
                answer=fam.extract(text, q, lenient=True),
                metadata=meta,
            )
        )
    return out


def import_mcc_kd(src: FsPath, opts: ImportOptions) -> Iterator[Item]:
    """MCC-KD JSON array: each item's ``output`` paths become paths of one teacher in one style."""
    task = opts.task or "math"
    style = opts.style or "cot"
    for index, (i, row) in enumerate(iter_rows(src)):
        instr = _require(row, "instruction", src, i, (str,))
        label = _require(row, "label", src, i, (str, int, float))
        if "output" in row:
            outs = row["output"]
        elif "path" in row:
            outs = row["path"]
        else:
            raise InputError(src, "missing required field", line=i, field="output")
        if isinstance(outs, str):
            outs = [outs]
        if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs):
            raise InputError(src, "expected a list of strings", line=i, field="output")
        if not instr.strip():
            raise InputError(src, "empty question text", line=i, field="instruction")
        q = Question(
            id=f"{src.stem}-{index}",
            task=task,
            question=instr.strip(),
            gold=str(label),
            source=f"mcc-kd:{src.name}",
            split=opts.split,  # type: ignore[arg-type]
        )
        n = len(outs)
        yield q, _make_paths(q, outs, opts.teacher, [style] * n, [""] * n, [{} for _ in outs])


def import_qr_distill(src: FsPath, opts: ImportOptions) -> Iterator[Item]:
    """QR-Distill reference JSONL: one line per question with parallel lists of prompts and responses."""
    for i, row in iter_rows(src):
        gold = _require(row, "gold_answer", src, i, (str, int, float, list))
        if isinstance(gold, list):
            gold = gold[0] if gold else ""
        if "responses" in row:
            responses = _require(row, "responses", src, i, (list,))
        else:
            responses = [_require(row, "response", src, i, (str,))]
        if not all(isinstance(r, str) for r in responses):
            raise InputError(src, "expected a list of strings", line=i, field="responses")
        prompts = row.get("prompts") or [row.get("prompt", "")] * len(responses)
        if not isinstance(prompts, list) or len(prompts) != len(responses):
            raise InputError(src, "must be a list as long as responses", line=i, field="prompts")
        dataset = str(row.get("dataset", "")).lower()
        if dataset and not opts.task and dataset not in DATASET_FAMILY:  # never graded as math by accident
            known = ", ".join(sorted(DATASET_FAMILY))
            raise InputError(src, f"unknown dataset '{dataset}' (known: {known}; or --task)", line=i, field="dataset")
        task = opts.task or DATASET_FAMILY.get(dataset) or "math"
        if task not in FAMILIES:
            raise InputError(src, f"unknown task family '{task}'", line=i, field="dataset")
        text = row.get("question") or row.get("input") or row.get("problem")
        if not text:
            text = str(prompts[0]) if prompts and prompts[0] else ""
        if not str(text).strip():
            raise InputError(src, "no question text (question, input, problem or prompts)", line=i, field="question")
        styles = row.get("styles") or row.get("prompt_types")
        if not isinstance(styles, list) or len(styles) != len(responses):
            styles = [
                STYLES[k] if len(responses) == len(STYLES) else (opts.style or "vanilla") for k in range(len(responses))
            ]
        flags = row.get("correct_flags") or [None] * len(responses)
        preds = row.get("preds") or [None] * len(responses)
        q = Question(
            id=str(row.get("id", f"{src.name.split('.')[0]}-{i - 1}")),
            task=task,
            question=str(text).strip(),
            choices=row.get("choices") if isinstance(row.get("choices"), list) else None,
            gold=str(gold),
            source=f"qr-distill:{src.name}",
            split=opts.split,  # type: ignore[arg-type]
        )
        extra = [{"reference_pred": p, "reference_correct": f} for p, f in zip(preds, flags, strict=False)]
        extra += [{} for _ in range(len(responses) - len(extra))]
        yield (
            q,
            _make_paths(q, responses, opts.teacher, [str(s) for s in styles], [str(p) for p in prompts], extra),
        )


IMPORTERS: dict[str, Importer] = {"mcc-kd": import_mcc_kd, "qr-distill": import_qr_distill}


def get_importer(fmt: str) -> Importer:
    if fmt not in IMPORTERS:
        raise CotdistillError(f"unknown import format '{fmt}' (known: {', '.join(sorted(IMPORTERS))})")
    return IMPORTERS[fmt]


def run_import(fmt: str, src: str | FsPath, out_dir: str | FsPath, opts: ImportOptions) -> tuple[int, int]:
    """Import ``src`` into ``out_dir``'s questions.jsonl and paths.jsonl; both appear only if all of it is valid."""
    from cotdistill.rundir import RunDir

    importer = get_importer(fmt)
    if opts.task is not None:
        get_family(opts.task)
    src = FsPath(src)
    run = RunDir.at(out_dir)
    run.ensure()
    tmp_q, tmp_p = run.questions.with_suffix(".jsonl.importing"), run.paths.with_suffix(".jsonl.importing")
    nq = np_ = 0
    ids: set[str] = set()
    try:
        with open(tmp_q, "w", encoding="utf-8") as fq, open(tmp_p, "w", encoding="utf-8") as fp:
            for q, paths in importer(src, opts):
                if q.id in ids:
                    raise InputError(src, f"duplicate question id '{q.id}'", field="id")
                ids.add(q.id)
                fq.write(q.model_dump_json() + "\n")
                nq += 1
                for p in paths:
                    fp.write(p.model_dump_json() + "\n")
                    np_ += 1
        if nq == 0:
            raise InputError(src, "no questions found")
        tmp_q.replace(run.questions)
        tmp_p.replace(run.paths)
    except OSError as e:  # disk full / read-only: one line naming the run directory; nothing half-written stays
        from cotdistill.io import DISK_ERRNOS, disk_error

        if e.errno in DISK_ERRNOS:
            raise disk_error(e, f"{run.questions} / {run.paths}") from None
        raise
    finally:
        tmp_q.unlink(missing_ok=True)
        tmp_p.unlink(missing_ok=True)
    return nq, np_
