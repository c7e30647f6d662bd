"""Hugging Face datasets as a question source: ``hf:NAME[:CONFIG]`` through ``datasets``, with built-in recipes.

NAME is a hub id (``openai/gsm8k``; needs the network, or the local ``datasets`` cache), a folder written by
``save_to_disk`` (read with ``load_from_disk``: ``load_dataset`` would copy it and rename or merge its splits), a
folder of data files or a local copy of a hub repo (``load_dataset(folder)``), or one data file (json, jsonl,
parquet, csv). The same recipe (``hf_recipes``) then turns every row into a question, whatever way it was loaded.

Splits: each recipe maps our train / dev / test onto the dataset's own split names (``questions.options.splits``
overrides it); several of ours may read the same split of the dataset: they then take consecutive, disjoint runs of
its rows in the order train, dev, test. ``--train/--dev/--test`` cap the questions per split, in row order.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import ValidationError

from cotdistill.errors import CotdistillError, InputError
from cotdistill.records import Question
from cotdistill.sources import SourceRequest, register_source
from cotdistill.sources.hf_recipes import Recipe, RowError, find_recipe

OUR_SPLITS = ("train", "dev", "test")
STANDARD = {"train": "train", "dev": "validation", "test": "test"}  # the names datasets gives inferred splits
DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
OPTIONS = ("recipe", "splits", "field")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def parse_spec(rest: str) -> tuple[str, str | None]:
    """``NAME[:CONFIG]`` -> (NAME, CONFIG); an existing local path is taken whole (it may hold a colon)."""
    if Path(rest).expanduser().exists():
        return rest, None
    name, _, config = rest.rpartition(":") if ":" in rest else (rest, "", "")
    return name, config or None


def _is_local(name: str) -> bool:
    """Whether NAME can only mean a local path (a hub id is ``name`` or ``owner/name``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).suffix.lower() in DATA_FILE_BUILDERS


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached now (offline mode, or no connection within 3 s), or None when it may be."""
    import datasets.config
    from huggingface_hub import constants

    if datasets.config.HF_HUB_OFFLINE or constants.HF_HUB_OFFLINE:
        return "offline mode: HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None  # the client goes through the proxy: let it try
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return f"no connection to {host}"
    return None


@contextmanager
def _offline():
    """``datasets`` and ``huggingface_hub`` in offline mode for the block: the local cache answers, no retries."""
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _failure(label: str, e: Exception) -> CotdistillError:
    msg = " ".join(str(e).split())
    if len(msg) > 400:
        msg = msg[:400] + " ..."
    hint = " (give a config as hf:NAME:CONFIG)" if "Config name is missing" in msg else ""
    return CotdistillError(f"{label}: cannot load the dataset: {type(e).__name__}: {msg}{hint}")


def _load_local(path: Path, config: str | None, recipe: Recipe, options: dict[str, Any]) -> Any:
    import datasets

    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        return datasets.load_from_disk(str(path))
    if path.is_file():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise CotdistillError(f"hf:{path}: unsupported file type '{path.suffix}' (use json, jsonl, parquet, csv)")
        split = path.stem if path.stem in (*STANDARD.values(), *OUR_SPLITS) else "train"  # test.jsonl -> test
        extra = {"field": options["field"]} if options.get("field") else {}
        return datasets.load_dataset(builder, data_files={split: str(path)}, **extra)
    if config is None and recipe.config:  # a copy of a hub repo with several configs: the recipe's default one
        if recipe.config in datasets.get_dataset_config_names(str(path)):
            config = recipe.config
    return datasets.load_dataset(str(path), config)


def _load_hub(name: str, config: str | None, recipe: Recipe) -> Any:
    import datasets

    why = _hub_unreachable()
    try:
        if why is None:
            return datasets.load_dataset(name, config or recipe.config)
        with _offline():
            return datasets.load_dataset(name, config or recipe.config)
    except ConnectionError:  # offline and not in the local cache (a missing repo looks the same offline)
        why = why or "no connection"
        raise CotdistillError(
            f"hf:{name}: '{name}' is a Hugging Face Hub dataset and cannot be reached offline ({why}), nor is it in "
            "the local datasets cache or a local folder; give a local copy instead: hf:PATH to a folder written by "
            "save_to_disk, a copy of the hub repo or a data file (json, jsonl, parquet, csv), adding "
            f"--set questions.options.recipe={recipe.name} when the path does not name the dataset"
        ) from None


def load_splits(name: str, config: str | None, recipe: Recipe, options: dict[str, Any]) -> dict[str, Any]:
    """The dataset's splits by name (``datasets.Dataset`` each), however NAME is given; one-line errors."""
    import datasets

    datasets.disable_progress_bars()  # "Generating train split" bars and cache notices are not ours to show
    datasets.logging.set_verbosity_error()
    label = f"hf:{name}" + (f":{config}" if config else "")
    path = Path(name).expanduser()
    try:
        if path.exists():
            ds = _load_local(path, config, recipe, options)
        elif _is_local(name):
            raise CotdistillError(f"{label}: no such file or directory")
        else:
            ds = _load_hub(name, config, recipe)
    except CotdistillError:
        raise
    except Exception as e:  # datasets raises many types (ValueError, FileNotFoundError, RuntimeError ...)
        raise _failure(label, e) from None
    if isinstance(ds, datasets.Dataset):
        return {str(ds.split) if ds.split else "train": ds}
    return dict(ds)


def split_plan(recipe: Recipe, options: dict[str, Any], available: list[str]) -> dict[str, list[str]]:
    """Our split -> the dataset splits it reads: the recipe's defaults (those present; else the standard name, e.g.
    ``validation``, when the loader renamed the splits), overridden by ``questions.options.splits``."""
    plan: dict[str, list[str]] = {}
    for ours, names in recipe.splits.items():
        present = [n for n in names if n in available]
        fallback = [n for n in (STANDARD[ours], ours) if n in available]
        plan[ours] = present or fallback[:1]
    given = options.get("splits") or {}
    if not isinstance(given, dict):
        raise CotdistillError("questions.options.splits: expected a mapping like {train: train, dev: validation}")
    for ours, theirs in given.items():
        if ours not in OUR_SPLITS:
            raise CotdistillError(f"questions.options.splits: unknown split '{ours}' (ours are train, dev, test)")
        names = [] if theirs in (None, "", []) else [theirs] if isinstance(theirs, str) else theirs
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CotdistillError(f"questions.options.splits.{ours}: expected a split name or a list of them")
        missing = [n for n in names if n not in available]
        if missing:
            raise CotdistillError(
                f"questions.options.splits.{ours}: the dataset has no split '{missing[0]}' (it has: "
                f"{', '.join(available)})"
            )
        plan[ours] = names
    return plan


def _row_question(
    recipe: Recipe, label: str, split: str, index: int, row: dict[str, Any], prefix: str, ours: str
) -> Question | None:
    """Row ``index`` of the dataset's ``split`` as a question of our split ``ours`` (None: a row with no gold)."""
    try:
        parsed = recipe.row(row)
    except RowError as e:
        raise InputError(f"{label}[{split}]", e.message, line=index, field=e.field) from None
    if parsed is None:
        return None
    meta = {"hf_split": split, "hf_row": index, **{k: v for k, v in parsed.metadata.items() if v is not None}}
    try:
        return Question(
            id=f"{prefix}-{split}-{index}",
            task=recipe.task,
            question=parsed.question,
            choices=parsed.choices,
            gold=parsed.gold,
            source=label,
            split=ours,  # type: ignore[arg-type]
            metadata=meta,
        )
    except ValidationError as e:  # e.g. metadata a row holds that JSON cannot: one line, not a traceback
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise InputError(f"{label}[{split}]", err.get("msg", "invalid"), line=index, field=where) from None


def _decoded(ds: Any) -> Iterator[dict[str, Any]]:
    """Rows of ``ds`` with every ClassLabel column as its name (ANLI's 0 -> "entailment")."""
    import datasets

    labels = {k: f for k, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    for row in ds:
        for k, f in labels.items():
            if isinstance(row.get(k), int) and 0 <= row[k] < f.num_classes:
                row[k] = f.int2str(row[k])
        yield row


@register_source("hf")
def hf_source(req: SourceRequest) -> Iterator[Question]:
    """Questions of every planned split, capped per split by ``counts``, rows in the dataset's order."""
    unknown = sorted(set(req.options) - set(OPTIONS))
    if unknown:
        known = ", ".join(OPTIONS)
        raise CotdistillError(f"questions.options.{unknown[0]}: unknown option of the hf: source (known: {known})")
    name, config = parse_spec(req.rest)
    if not name:
        raise CotdistillError("hf: source needs a dataset, e.g. hf:openai/gsm8k or hf:path/to/folder")
    recipe = find_recipe(name, req.options.get("recipe"))
    if req.task and req.task != recipe.task:
        raise CotdistillError(f"--task {req.task}: the '{recipe.name}' recipe's questions are {recipe.task} questions")
    splits = load_splits(name, config, recipe, req.options)
    plan = split_plan(recipe, req.options, list(splits))
    label = f"hf:{name}" + (f":{config}" if config else "")
    prefix = recipe.name + (f"-{config}" if config and config != recipe.config else "")
    cursor: dict[str, int] = {}
    made = 0
    for ours in OUR_SPLITS:
        cap = req.counts.get(ours)
        taken = 0
        for theirs in plan.get(ours, []):
            if cap is not None and taken >= cap:
                break
            start, skipped = cursor.get(theirs, 0), 0
            ds = splits[theirs]
            rows = _decoded(ds.select(range(start, len(ds))) if start else ds)
            for index, row in enumerate(rows, start):
                if cap is not None and taken >= cap:
                    break
                cursor[theirs] = index + 1
                q = _row_question(recipe, label, theirs, index, row, prefix, ours)
                if q is None:
                    skipped += 1
                    continue
                taken += 1
                yield q
            if skipped and not taken:
                why = f" ({recipe.unlabelled})" if recipe.unlabelled else ""
                raise CotdistillError(f"{label}[{theirs}]: none of its {skipped} rows has a gold answer{why}")
        made += taken
    if made == 0:
        read = {k: v for k, v in plan.items() if v and req.counts.get(k, 1)}
        raise CotdistillError(
            f"{label}: no questions (the dataset's splits: {', '.join(splits)}; read: {read or 'none'}); map ours onto "
            "its splits with --set 'questions.options.splits={test: NAME}'"
        )
