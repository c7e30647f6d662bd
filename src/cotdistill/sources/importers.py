"""Importers of existing multi-path datasets into questions + paths.

- ``mcc-kd``: a JSON array of ``{"instruction", "output": [path, ...] | "path", "label"}`` (MCC-KD's format; an
  empty ``output`` means no path: MCC-KD's dev sets hold questions only).
- ``qr-distill``: QR-Distill reference JSONL (``*.enriched.jsonl`` with ``prompts``, ``responses``, ``preds``,
  ``correct_flags``, ``gold_answer``; or ``*.correct.jsonl``, the same with only the correct responses).

Every imported question carries the split given (``--split``), except that ``--hold-out N`` records a seeded N of
a train file's questions as dev (a dev split to choose settings on, carved from the training file). An import
replaces the run's questions and paths, or with ``--append`` adds to them (test and probe sets next to the training
file); either way the run's files change only when the whole source is valid and no question id is already taken.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, BinaryIO

from cotdistill.config import STYLES
from cotdistill.errors import CotdistillError, InputError
from cotdistill.records import Question, ReasoningPath, path_id
from cotdistill.sources import SourceRequest, register_source
from cotdistill.sources.choices import choice_gold, split_choices
from cotdistill.sources.files import iter_rows
from cotdistill.tasks import FAMILIES, get_family
from cotdistill.tasks.choice import LETTERS

SPLITS = ("train", "dev", "test")

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
    """How to import: task family override, the teacher and style recorded on the paths, the split recorded on
    the questions, and whether to add to the run (``append``) instead of replacing its questions and paths."""

    task: str | None = None
    teacher: str = "teacher"
    style: str | None = None
    split: str = "train"
    append: bool = False
    hold_out: int = 0  # a seeded this many of the file's questions are recorded as dev instead of ``split``
    hold_out_seed: int = 0


# (the line the item starts on, its question, its paths)
Item = tuple[int, Question, list[ReasoningPath]]
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


def _choice_parts(instr: str, label: str, src: FsPath, line: int) -> tuple[str, list[str], str]:
    """Question text, options and gold letter of a choice item whose options sit in its text (``Answer Choices:``)."""
    parsed = split_choices(instr)
    if parsed is None:
        raise InputError(
            src, "choice question with no options: expected an 'Answer Choices:' block of lines 'A. text'",
            line=line, field="instruction",
        )  # fmt: skip
    text, choices = parsed
    gold = choice_gold(label, choices)
    if gold is None:
        opts = f"{len(choices)} options A-{LETTERS[len(choices) - 1]}"
        raise InputError(src, f"gold '{label}' is not one of the {opts}", line=line, field="label")
    return text, choices, gold


def import_mcc_kd(src: FsPath, opts: ImportOptions) -> Iterator[Item]:
    """MCC-KD JSON array: each item's ``output`` paths become paths of one teacher in one style.

    An empty ``output`` (``""``) is no path; with ``task=choice`` the options are parsed out of the instruction.
    """
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
        outs = [o for o in outs if o.strip()]  # "" is no path (MCC-KD's dev sets), never an empty path
        if not instr.strip():
            raise InputError(src, "empty question text", line=i, field="instruction")
        text, choices, gold = instr.strip(), None, str(label)
        if task == "choice":
            text, choices, gold = _choice_parts(instr, gold, src, i)
        q = Question(
            id=f"{src.stem}-{index}",
            task=task,
            question=text,
            choices=choices,
            gold=gold,
            source=f"mcc-kd:{src.name}",
            split=opts.split,  # type: ignore[arg-type]
        )
        n = len(outs)
        yield i, q, _make_paths(q, outs, opts.teacher, [style] * n, [""] * n, [{} for _ in outs])


@register_source("mcc-kd")
def mcc_kd_source(req: SourceRequest) -> Iterator[Question]:
    """``mcc-kd:PATH``: the questions of an MCC-KD file (paths ignored), e.g. a probe (``eval.probes``); split
    ``test`` unless ``questions.options.split`` says otherwise, the first ``counts[split]`` of them."""
    split = str(req.options.get("split", "test"))
    cap = req.counts.get(split)
    opts = ImportOptions(task=req.task, split=split)
    for n, (_, q, _) in enumerate(import_mcc_kd(FsPath(req.rest), opts)):
        if cap is not None and n >= cap:
            return
        yield q


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
            i,
            q,
            _make_paths(q, responses, opts.teacher, [str(s) for s in styles], [str(p) for p in prompts], extra),
        )


IMPORTERS: dict[str, Importer] = {"mcc-kd": import_mcc_kd, "qr-distill": import_qr_distill}


def get_importer(fmt: str) -> Importer:
    if fmt not in IMPORTERS:
        raise CotdistillError(f"unknown import format '{fmt}' (known: {', '.join(sorted(IMPORTERS))})")
    return IMPORTERS[fmt]


def run_import(fmt: str, src: str | FsPath, out_dir: str | FsPath, opts: ImportOptions) -> tuple[int, int]:
    """Import ``src`` into ``out_dir``'s questions.jsonl and paths.jsonl (replacing them, or after what they hold
    with ``opts.append``); returns the questions and paths ``src`` added.

    Both files are written in full to temp files first and renamed over the run's only when the whole source is
    valid and none of its question ids is taken, so a failed import leaves the run byte for byte as it was.
    """
    from cotdistill.rundir import RunDir

    importer = get_importer(fmt)
    if opts.task is not None:
        get_family(opts.task)
    if opts.split not in SPLITS:
        raise CotdistillError(f"--split: unknown split '{opts.split}' (use {', '.join(SPLITS)})")
    if opts.hold_out and opts.split != "train":
        raise CotdistillError("--hold-out carves dev questions from a train file; drop it or use --split train")
    src = FsPath(src)
    run = RunDir.at(out_dir)
    if opts.append and not run.questions.exists():
        raise CotdistillError(f"--append: {run.questions} does not exist (import the first file without --append)")
    taken = _taken_ids(run.questions) if opts.append else {}
    run.ensure()
    tmp_q, tmp_p = run.questions.with_suffix(".jsonl.importing"), run.paths.with_suffix(".jsonl.importing")
    try:
        with open(tmp_q, "wb") as fq, open(tmp_p, "wb") as fp:
            if opts.append:
                _copy_records(run.questions, fq)
                _copy_records(run.paths, fp)
            nq, np_ = _write_items(_held_out(importer, src, opts), src, run.questions, taken, fq, fp)
            for f in (fq, fp):
                f.flush()
                os.fsync(f.fileno())
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


def _held_out(importer: Importer, src: FsPath, opts: ImportOptions) -> Iterator[Item]:
    """The importer's items, with ``opts.hold_out`` of their questions (a seeded sample) recorded as dev."""
    if not opts.hold_out:
        yield from importer(src, opts)
        return
    ids = [q.id for _, q, _ in importer(src, opts)]
    if opts.hold_out >= len(ids):
        raise InputError(src, f"--hold-out {opts.hold_out}: the file has only {len(ids)} questions")
    dev = set(random.Random(opts.hold_out_seed).sample(ids, opts.hold_out))
    for line, q, paths in importer(src, opts):
        yield line, (q.model_copy(update={"split": "dev"}) if q.id in dev else q), paths


def _taken_ids(questions: FsPath) -> dict[str, tuple[int, str]]:
    """Each question id of the run's questions.jsonl -> (its line, its source), every record validated."""
    from cotdistill.io import iter_json_lines
    from cotdistill.records import read_questions

    for _ in read_questions(questions, allow_empty=True):  # a bad record fails here, naming its line and field
        pass
    return {str(obj.get("id")): (line, str(obj.get("source", ""))) for line, _, obj in iter_json_lines(questions)}


def _copy_records(path: FsPath, out: BinaryIO) -> None:
    """Copy ``path``'s bytes (when it exists) into ``out``, ending with a newline so appended records start a line."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                out.write(b"\n")


def _write_items(
    items: Iterator[Item],
    src: FsPath,
    questions: FsPath,
    taken: dict[str, tuple[int, str]],
    fq: BinaryIO,
    fp: BinaryIO,
) -> tuple[int, int]:
    """Write each item's question and paths; a question id already in the run (``taken``) or earlier in ``src``
    is an error naming both places."""
    seen: dict[str, int] = {}
    nq = np_ = 0
    for line, q, paths in items:
        if q.id in taken:
            where, source = taken[q.id]
            hint = ""
            if FsPath(source.partition(":")[2]).stem == src.stem:
                hint = (
                    f"; ids are '<file stem>-<index>' and a file named '{src.stem}' is already in the run "
                    "(the same file again, or rename this one)"
                )
            raise InputError(
                src, f"duplicate question id '{q.id}' (already in {questions}:{where}){hint}", line=line, field="id"
            )
        if q.id in seen:
            raise InputError(src, f"duplicate question id '{q.id}' (also on line {seen[q.id]})", line=line, field="id")
        seen[q.id] = line
        fq.write((q.model_dump_json() + "\n").encode("utf-8"))
        nq += 1
        for p in paths:
            fp.write((p.model_dump_json() + "\n").encode("utf-8"))
            np_ += 1
    return nq, np_
