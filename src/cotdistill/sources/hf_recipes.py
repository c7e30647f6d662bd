"""Built-in recipes of the ``hf:`` source: for each benchmark of the papers, how a row of the published Hugging Face
dataset becomes a question (text, options, gold answer in the task family's canonical form), its task family, and
which of its splits are our train / dev / test.

The column names and value shapes are the published datasets' own (see each function); a row that does not fit
raises :class:`RowError` naming the column, which the source turns into a one-line error naming the dataset,
split and row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from cotdistill.errors import CotdistillError
from cotdistill.sources.choices import choice_gold, split_choices
from cotdistill.tasks.choice import LETTERS
from cotdistill.tasks.math import boxed_spans

NLI_LABELS = ("entailment", "neutral", "contradiction")


class RowError(Exception):
    """A row that does not fit its recipe: the column (``field``) and what is wrong with it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Parsed:
    """What a recipe makes of one row."""

    question: str
    gold: str
    choices: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# a row -> its question, or None for a row with no gold answer (skipped: CommonsenseQA's unlabelled test split)
RowFn = Callable[[dict[str, Any]], Parsed | None]


@dataclass(frozen=True)
class Recipe:
    """One benchmark: the hub ids it is chosen for, its family, its default config and split mapping, its rows."""

    name: str
    task: str
    hub: tuple[str, ...]
    splits: dict[str, tuple[str, ...]]  # our split -> the dataset's splits, read in order
    row: RowFn
    config: str | None = None  # the config a hub id gets when none is given
    unlabelled: str = ""  # said when a whole split has no gold answer


def _text(row: dict[str, Any], col: str) -> str:
    v = row.get(col)
    if not isinstance(v, str):
        raise RowError(col, "missing required field" if v is None else f"expected a string, got {type(v).__name__}")
    if not v.strip():
        raise RowError(col, "empty text")
    return v.strip()


def canonical_number(value: Any, col: str) -> str:
    """``145``, ``"145"``, ``145.0``, ``"1,450"`` -> ``"145"`` / ``"1450"``; ``2.5`` -> ``"2.5"``."""
    try:
        f = float(str(value).replace(",", "").replace("$", "").strip())
    except ValueError:
        raise RowError(col, f"not a number: {value!r}") from None
    if not math.isfinite(f):
        raise RowError(col, f"not a finite number: {value!r}")
    return str(int(f)) if f.is_integer() else repr(f)


def _option_lists(row: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``choices: {"text": [...], "label": [...]}`` (ARC, CommonsenseQA; also a list of ``{text, label}``)."""
    ch = row.get("choices")
    if isinstance(ch, list) and all(isinstance(c, dict) for c in ch):
        ch = {"text": [c.get("text") for c in ch], "label": [c.get("label") for c in ch]}
    if not isinstance(ch, dict) or not isinstance(ch.get("text"), list) or not isinstance(ch.get("label"), list):
        raise RowError("choices", "expected {'text': [...], 'label': [...]}")
    texts, labels = ch["text"], [str(x).strip() for x in ch["label"]]
    if len(texts) != len(labels) or not 2 <= len(texts) <= len(LETTERS):
        raise RowError("choices", f"expected 2-{len(LETTERS)} options with one label each")
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise RowError("choices", "every option needs a text")
    return [t.strip() for t in texts], labels


def _keyed_choice(row: dict[str, Any], key_col: str) -> tuple[list[str], str | None]:
    texts, labels = _option_lists(row)
    key = str(row.get(key_col) or "").strip()
    if not key:
        return texts, None
    if key not in labels:
        raise RowError(key_col, f"'{key}' is not one of the option labels {labels}")
    return texts, LETTERS[labels.index(key)]


# ---------------------------------------------------------------- rows, one function per published schema


def gsm8k_row(row: dict[str, Any]) -> Parsed:
    """openai/gsm8k: ``question``; ``answer`` is the rationale ending ``#### 72`` (gold: after the last ``####``,
    commas and ``$`` removed; the rationale, calculator annotations ``<<48/2=24>>`` stripped, is kept)."""
    answer = _text(row, "answer")
    rationale, sep, final = answer.rpartition("####")
    if not sep:
        raise RowError("answer", "no '#### <answer>' line")
    gold = final.strip().replace(",", "").replace("$", "").rstrip(".").strip()
    if not gold:
        raise RowError("answer", "empty answer after '####'")
    solution = re.sub(r"<<[^>]*>>", "", rationale).strip()
    return Parsed(_text(row, "question"), gold, metadata={"gold_solution": solution})


def svamp_row(row: dict[str, Any]) -> Parsed:
    """ChilleD/SVAMP: ``question_concat`` (else ``Body`` + " " + ``Question``); ``Answer`` a string or a float."""
    concat = row.get("question_concat")
    if isinstance(concat, str) and concat.strip():
        text = concat.strip()
    else:
        text = f"{_text(row, 'Body')} {_text(row, 'Question')}"
    if row.get("Answer") is None:
        raise RowError("Answer", "missing required field")
    meta = {k.lower(): row[k] for k in ("ID", "Equation", "Type") if row.get(k) is not None}
    return Parsed(text, canonical_number(row["Answer"], "Answer"), metadata=meta)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched: ``\\frac{\\pi}{2}`` stays whole),
    or of a last ``\\boxed 5``; None when there is none."""
    spans = boxed_spans(text)
    best: tuple[int, str] | None = spans[-1] if spans else None
    for m in re.finditer(r"\\boxed ([^\s${}]+)", text):
        if best is None or m.start() > best[0]:
            best = (m.start(), m.group(1))
    return best[1] if best and best[1] else None


def math_row(row: dict[str, Any]) -> Parsed:
    """EleutherAI/hendrycks_math (``problem``, ``level``, ``type``, ``solution``) and HuggingFaceH4/MATH-500 (also
    ``answer``, ``subject``, ``unique_id``): gold is ``answer`` when present, else the solution's last ``\\boxed{}``."""
    solution = row.get("solution") if isinstance(row.get("solution"), str) else ""
    answer = row.get("answer")
    gold = answer.strip() if isinstance(answer, str) and answer.strip() else last_boxed(solution)
    if not gold:
        raise RowError("solution", "no \\boxed{} answer in the solution (and no 'answer' column)")
    meta: dict[str, Any] = {k: row[k] for k in ("level", "type", "subject", "unique_id") if row.get(k) is not None}
    if solution:
        meta["gold_solution"] = solution
    return Parsed(_text(row, "problem"), gold, metadata=meta)


def arc_row(row: dict[str, Any]) -> Parsed:
    """allenai/ai2_arc: ``question``, ``choices{text,label}``, ``answerKey`` (labels ``A``-``E`` or ``1``-``5``:
    gold is the letter of the key's position among the labels)."""
    texts, gold = _keyed_choice(row, "answerKey")
    if gold is None:
        raise RowError("answerKey", "missing required field")
    return Parsed(_text(row, "question"), gold, texts, {"id": row.get("id")} if row.get("id") else {})


def strategyqa_row(row: dict[str, Any]) -> Parsed:
    """ChilleD/StrategyQA and copies: ``question``, ``answer`` a bool (or "true"/"yes"/...), ``facts`` a list or
    a string (kept in metadata, with ``qid``, ``term`` and ``decomposition``)."""
    a = row.get("answer")
    if isinstance(a, str):
        a = {"true": True, "yes": True, "false": False, "no": False}.get(a.strip().lower(), a)
    if not isinstance(a, bool):
        raise RowError("answer", f"expected a boolean, got {a!r}")
    meta = {k: row[k] for k in ("qid", "term", "decomposition") if row.get(k) is not None}
    facts = row.get("facts")
    if facts:
        meta["facts"] = " ".join(facts) if isinstance(facts, list) else str(facts)
    return Parsed(_text(row, "question"), "yes" if a else "no", metadata=meta)


def anli_row(row: dict[str, Any]) -> Parsed:
    """facebook/anli: ``premise``, ``hypothesis``, ``label`` (ClassLabel 0/1/2, or its name); the question shows
    the premise and the hypothesis."""
    label = row.get("label")
    if isinstance(label, bool) or not isinstance(label, int | str):
        raise RowError("label", f"expected 0, 1, 2 or a label name, got {label!r}")
    if isinstance(label, int):
        if not 0 <= label < len(NLI_LABELS):
            raise RowError("label", f"{label} is not 0 (entailment), 1 (neutral) or 2 (contradiction)")
        label = NLI_LABELS[label]
    if label.strip().lower() not in NLI_LABELS:
        raise RowError("label", f"'{label}' is not one of {', '.join(NLI_LABELS)}")
    text = f"Premise: {_text(row, 'premise')}\nHypothesis: {_text(row, 'hypothesis')}"
    meta = {k: row[k] for k in ("uid", "reason") if row.get(k)}
    return Parsed(text, label.strip().lower(), metadata=meta)


def bbh_date_row(row: dict[str, Any]) -> Parsed:
    """lukaemon/bbh date_understanding: the options sit in ``input`` after "Options:" as ``(A) text``;
    ``target`` is ``"(B)"``."""
    parsed = split_choices(_text(row, "input"))
    if parsed is None:
        raise RowError("input", "no 'Options:' block of lines '(A) text'")
    text, choices = parsed
    target = _text(row, "target")
    gold = choice_gold(target, choices)
    if gold is None:
        raise RowError("target", f"'{target}' is not one of the {len(choices)} options A-{LETTERS[len(choices) - 1]}")
    return Parsed(text, gold, choices)


def bigbench_date_row(row: dict[str, Any]) -> Parsed | None:
    """tasksource/bigbench date_understanding: ``inputs`` (the prompt), ``multiple_choice_targets`` (the options)
    and ``multiple_choice_scores`` (1 on the right one). A row without exactly one right option is skipped."""
    choices = row.get("multiple_choice_targets")
    scores = row.get("multiple_choice_scores")
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
        raise RowError("multiple_choice_targets", f"expected a list of 2-{len(LETTERS)} options")
    if not isinstance(scores, list) or len(scores) != len(choices):
        raise RowError("multiple_choice_scores", "expected one score per option")
    if scores.count(1) != 1:
        return None
    inputs = _text(row, "inputs")
    parsed = split_choices(inputs)
    lines = (parsed[0] if parsed else inputs).split("\n")
    lines = [ln for ln in lines if not ln.strip().lower().startswith("choice:")]
    if lines and lines[-1].strip() == "A:":
        lines = lines[:-1]
    text = "\n".join(lines).strip().removeprefix("Q:").strip()
    if not text:
        raise RowError("inputs", "no question text")
    return Parsed(text, LETTERS[scores.index(1)], [str(c).strip() for c in choices], {"idx": row.get("idx")})


def csqa_row(row: dict[str, Any]) -> Parsed | None:
    """tau/commonsense_qa: ``question``, ``choices{label,text}``, ``answerKey`` (empty in the test split: skipped)."""
    texts, gold = _keyed_choice(row, "answerKey")
    if gold is None:
        return None
    meta = {k: row[k] for k in ("id", "question_concept") if row.get(k)}
    return Parsed(_text(row, "question"), gold, texts, meta)


_TT = {"train": ("train",), "test": ("test",)}
_ANLI = {s: tuple(f"{s}_r{k}" for k in (1, 2, 3)) for s in ("train", "dev", "test")}
RECIPES: tuple[Recipe, ...] = (
    Recipe("gsm8k", "math", ("openai/gsm8k", "gsm8k"), _TT, gsm8k_row, config="main"),
    Recipe("svamp", "math", ("ChilleD/SVAMP", "svamp", "kinit/svamp", "tongyx361/svamp"), _TT, svamp_row),
    Recipe(
        "math", "math",
        ("EleutherAI/hendrycks_math", "DigitalLearningGmbH/MATH-lighteval", "hendrycks_math", "competition_math"),
        _TT, math_row,
    ),
    Recipe("math500", "math", ("HuggingFaceH4/MATH-500", "MATH-500"), {"test": ("test",)}, math_row),
    Recipe(
        "arc_challenge", "choice", ("allenai/ai2_arc", "ai2_arc"),
        {"train": ("train",), "dev": ("validation",), "test": ("test",)}, arc_row, config="ARC-Challenge",
    ),
    Recipe(
        "strategyqa", "yesno", ("ChilleD/StrategyQA", "tasksource/strategy-qa", "metaeval/strategy-qa", "StrategyQA"),
        _TT, strategyqa_row,
    ),
    Recipe("anli", "label", ("facebook/anli", "anli"), _ANLI, anli_row),
    Recipe(
        "bbh_date", "choice", ("lukaemon/bbh", "SaylorTwift/bbh", "bbh"), {"test": ("test",)}, bbh_date_row,
        config="date_understanding",
    ),
    Recipe(
        "bigbench_date", "choice", ("tasksource/bigbench", "bigbench"), {"train": ("train",), "test": ("validation",)},
        bigbench_date_row, config="date_understanding",
    ),
    Recipe(
        "csqa", "choice", ("tau/commonsense_qa", "commonsense_qa"), {"train": ("train",), "test": ("validation",)},
        csqa_row, unlabelled="CommonsenseQA's test split has no answers (empty answerKey): use validation",
    ),
)  # fmt: skip
BY_NAME = {r.name: r for r in RECIPES}


def find_recipe(name: str, override: str | None) -> Recipe:
    """The recipe for dataset ``name``: ``override`` (``questions.options.recipe``) when given, else the one whose
    hub id the name is or ends with (``openai/gsm8k``, ``./data/openai/gsm8k``), else the one whose short name the
    path's last part is (``runs/data/gsm8k``, ``~/MATH-500``; for a data file its stem, else its folder)."""
    known = ", ".join(BY_NAME)
    if override:
        if override not in BY_NAME:
            raise CotdistillError(f"questions.options.recipe: unknown recipe '{override}' (known: {known})")
        return BY_NAME[override]
    key = name.strip().rstrip("/").lower()
    for r in RECIPES:
        if any(key == h.lower() or key.endswith("/" + h.lower()) for h in r.hub if "/" in h):
            return r
    path = PurePath(key)
    names = [path.name]
    if path.suffix in (".json", ".jsonl", ".parquet", ".csv"):  # a data file: its stem, else its folder (test.jsonl)
        names += [path.stem, path.parent.name]
    for base in names:
        for r in RECIPES:
            if base in {r.name, *(h.split("/")[-1].lower() for h in r.hub)}:
                return r
    raise CotdistillError(
        f"hf:{name}: no built-in recipe for this dataset (known: {known}); name one with "
        "--set questions.options.recipe=NAME"
    )
