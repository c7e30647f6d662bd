"""reasoning-gym generators as a question source: ``rg:gsm_symbolic,basic_arithmetic`` (exact gold answers)."""

from __future__ import annotations

from collections.abc import Iterator

from cotdistill.errors import CotdistillError
from cotdistill.records import Question
from cotdistill.sources import SourceRequest, register_source

# reasoning-gym datasets whose answers are not numbers, mapped to the family that grades them
_NON_MATH = {"syllogism": "yesno"}
_SPLIT_OFFSET = {"train": 0, "dev": 1_000_003, "test": 2_000_029}


@register_source("rg")
def rg_source(req: SourceRequest) -> Iterator[Question]:
    """``counts[split]`` questions per split, spread evenly over the named datasets, each split its own seed.

    Splits never share a question: a question text seen in an earlier split is skipped.
    """
    rest, counts, seed, task, options = req.rest, req.counts, req.seed, req.task, req.options
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    names = [n.strip() for n in rest.split(",") if n.strip()]
    if not names:
        raise CotdistillError("rg: source needs at least one reasoning-gym dataset name, e.g. rg:gsm_symbolic")
    for n in names:
        if n not in DATASETS:
            raise CotdistillError(f"unknown reasoning-gym dataset '{n}' (see reasoning_gym.factory.DATASETS)")
    seen: set[str] = set()
    for split, count in counts.items():
        if count <= 0:
            continue
        per = [count // len(names) + (1 if i < count % len(names) else 0) for i in range(len(names))]
        for name, k in zip(names, per, strict=True):
            if k == 0:
                continue
            extra = options.get(name, {})
            # over-generate a little so that cross-split duplicates can be skipped
            ds = reasoning_gym.create_dataset(name, size=k * 2 + 10, seed=seed + _SPLIT_OFFSET[split], **extra)
            made = 0
            for i, entry in enumerate(ds):
                if made == k:
                    break
                if entry["question"] in seen:
                    continue
                seen.add(entry["question"])
                meta = dict(entry.get("metadata", {}))
                gold_solution = meta.pop("answer_cot", None)
                meta = {k2: v for k2, v in meta.items() if k2 in ("difficulty", "source_dataset", "source_index")}
                if gold_solution:
                    meta["gold_solution"] = gold_solution
                made += 1
                yield Question(
                    id=f"rg-{name}-{split}-{i}",
                    task=task or _NON_MATH.get(name, "math"),
                    question=entry["question"],
                    gold=str(entry["answer"]),
                    source=f"reasoning-gym:{name}",
                    split=split,  # type: ignore[arg-type]
                    metadata=meta,
                )
