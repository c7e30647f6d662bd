"""The ``cotdistill`` command line: one command per pipeline stage, plus import / inspect helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cotdistill.errors import CotdistillError

app = typer.Typer(
    help="Distil the reasoning of many teacher LLMs over many reasoning paths into small student models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


def _log(message: str) -> None:
    """A stage line of ``cotdistill run`` / ``demo`` / ``bench``, printed as is (no rich markup: "[filter]" stays)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _finish(run: Any) -> None:
    """The closing summary of ``run`` / ``demo``: base -> distilled per student, then the report's path."""
    from cotdistill.stages.describe import summary_table

    table = summary_table(run)
    if table is not None:
        out.print(table)
    if run.report_html.exists():
        out.print(f"report: {run.report_html}", markup=False, soft_wrap=True)


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="run config YAML")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override: key.path=value (repeatable)")]


@app.command("questions")
def questions_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="run directory to write questions.jsonl into")],
    source: Annotated[
        str | None,
        typer.Option(help="lab:arith,date,compare | rg:NAME[,NAME] | file:PATH | hf:NAME[:CONFIG] (default: config)"),
    ] = None,
    train: Annotated[int | None, typer.Option(help="training questions")] = None,
    dev: Annotated[int | None, typer.Option(help="dev questions")] = None,
    test: Annotated[int | None, typer.Option(help="test questions")] = None,
    task: Annotated[str | None, typer.Option(help="task family override")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write questions (train/dev/test splits) from a source into RUN/questions.jsonl."""
    from cotdistill.config import load_config
    from cotdistill.rundir import RunDir
    from cotdistill.stages.questions import write_questions

    cfg = load_config(config, set_)
    updates = {
        k: v for k, v in dict(source=source, train=train, dev=dev, test=test, task=task).items() if v is not None
    }
    cfg.questions = _questions_flags(cfg.questions, updates)
    if seed is not None:
        cfg.seed = seed
    from cotdistill.lock import acquire_run_lock

    acquire_run_lock(out_dir, "questions")
    counts = write_questions(RunDir.at(out_dir), cfg)
    out.print(f"wrote {sum(counts.values())} questions to {out_dir / 'questions.jsonl'} ({counts})", soft_wrap=True)


def _check_task_flag(task: str | None) -> None:
    """``--task`` names a task family: a typo is an error naming the option, not a line of the data."""
    from cotdistill.tasks import FAMILIES

    if task is not None and task not in FAMILIES:
        raise CotdistillError(f"--task: unknown task family '{task}' (known: {', '.join(sorted(FAMILIES))})")


def _questions_flags(qc: object, updates: dict[str, object]) -> object:
    """``questions.*`` with the command's options applied and validated (``--train -5`` is an error naming it)."""
    from pydantic import ValidationError

    from cotdistill.config import QuestionsConfig

    _check_task_flag(updates.get("task"))  # type: ignore[arg-type]
    try:
        return QuestionsConfig.model_validate({**qc.model_dump(), **updates})  # type: ignore[attr-defined]
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0])
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise CotdistillError(f"--{key} {updates.get(key)}: {msg}") from None


@app.command("import")
def import_cmd(
    fmt: Annotated[str, typer.Argument(help="format: mcc-kd | qr-distill")],
    src: Annotated[Path, typer.Argument(help="file to import")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="run directory to create")],
    task: Annotated[str | None, typer.Option(help="task family (default: from the data, else math)")] = None,
    teacher: Annotated[str, typer.Option(help="teacher name recorded on the paths")] = "teacher",
    style: Annotated[str | None, typer.Option(help="style recorded on the paths")] = None,
    split: Annotated[str, typer.Option(help="split recorded on every question: train | dev | test")] = "train",
    append: Annotated[bool, typer.Option("--append", help="add to the run's questions and paths")] = False,
    hold_out: Annotated[
        int, typer.Option(min=0, help="record a seeded N of the file's questions as dev (a dev split from train)")
    ] = 0,
    hold_out_seed: Annotated[int, typer.Option(help="seed of the --hold-out sample")] = 0,
) -> None:
    """Import an existing multi-path dataset into RUN/questions.jsonl + RUN/paths.jsonl."""
    from cotdistill.lock import acquire_run_lock
    from cotdistill.sources.importers import ImportOptions, run_import

    _check_task_flag(task)
    acquire_run_lock(out_dir, "import")
    opts = ImportOptions(task, teacher, style, split, append, hold_out=hold_out, hold_out_seed=hold_out_seed)
    nq, np_ = run_import(fmt, src, out_dir, opts)
    verb = "appended" if append else "imported"
    where = f"split {split}" + (f"; {hold_out} of them held out as dev" if hold_out else "")
    out.print(f"{verb} {nq} questions and {np_} paths into {out_dir} ({where})", soft_wrap=True)


@app.command("inspect")
def inspect_cmd(
    run: Annotated[Path, typer.Argument(help="run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Counts per task, teacher and style; answer-correctness rates; path length statistics."""
    from cotdistill.stats import inspect_run

    stats = inspect_run(str(run))
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    t = stats["total"]
    out.print(
        f"[bold]{escape(stats['run'])}[/]: {stats['questions']} questions, {stats['paths']} paths, "
        f"answer correct {t['answer_ok']}/{t['paths']} ({t['answer_ok_rate']:.1%})",
        soft_wrap=True,  # one line however narrow the terminal (scripts grep it)
    )
    for group in ("task", "teacher", "style", "teacher_style"):
        rows = stats[f"by_{group}"]
        if not rows:
            continue
        table = Table(title=f"by {group.replace('_', ' x ')}")
        for col in (group, "paths", "answer ok", "rate", "mean chars", "min", "max"):
            table.add_column(col, justify="left" if col == group else "right")
        for key, r in rows.items():
            table.add_row(
                escape(key),
                str(r["paths"]),
                str(r["answer_ok"]),
                f"{r['answer_ok_rate']:.1%}",
                f"{r['mean_chars']:.0f}",
                str(r["min_chars"]),
                str(r["max_chars"]),
            )
        out.print(table)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="run config YAML")],
    set_: SetOpt = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="default: run_dir of the config, else runs/<name>")
    ] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", "-f", help="re-run this stage (and what follows)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="stop after this stage")] = None,
) -> None:
    """Every stage in order (questions, generate, filter, train, eval, report), skipping current ones."""
    from cotdistill.stages.pipeline import check_stage_names, run_pipeline
    from cotdistill.stages.preflight import for_stages
    from cotdistill.stages.resolve import resolve_run

    check_stage_names(tuple(force or ()), until)
    run, cfg = resolve_run(run_dir, config, set_, lock="run", checks=for_stages(until))
    run_pipeline(run, cfg, tuple(force or ()), until, log=_log)
    _finish(run)


@app.command("demo")
def demo_cmd(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="where the demo run goes")] = Path("runs/demo"),
    set_: SetOpt = None,
) -> None:
    """The embedded default, offline: lab questions, synthetic teachers, filter, QR-Distill, eval, report."""
    from importlib.resources import files

    from cotdistill.stages.pipeline import run_pipeline
    from cotdistill.stages.resolve import resolve_run

    config = Path(str(files("cotdistill") / "configs" / "demo.yaml"))
    run, cfg = resolve_run(run_dir, config, set_, lock="demo")
    run_pipeline(run, cfg, log=_log)
    _finish(run)


@app.command("bench")
def bench_cmd(
    config: Annotated[Path, typer.Argument(help="run config YAML (the data and students to compare methods on)")],
    seeds: Annotated[str, typer.Option(help="comma-separated training seeds")] = "0,1,2",
    variants: Annotated[str | None, typer.Option(help="comma-separated subset of the bench rows")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="default: runs/<name>")] = None,
    set_: SetOpt = None,
) -> None:
    """Methods x seeds on one dataset: the methods table and the QR-Distill ablations, mean +- std."""
    from cotdistill.stages.bench import run_bench
    from cotdistill.stages.resolve import resolve_run

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise CotdistillError(f"--seeds: expected comma-separated integers, got '{seeds}'") from None
    run, cfg = resolve_run(run_dir, config, set_, lock="bench")
    names = [v.strip() for v in variants.split(",")] if variants else None
    result = run_bench(run, cfg, seed_list, names, log=_log)
    for group, rows in result.groups().items():
        table = Table(title=f"{group} (accuracy, mean +- std over seeds {seeds})")
        for col in ("method", "student", "accuracy %", "per seed"):
            table.add_column(col)
        for r in rows:
            table.add_row(escape(r.method), escape(r.student), r.mean_std("+-"), r.per_seed)
        out.print(table)
    out.print(f"bench: {run.bench_json} ({result.seconds:.0f}s)", markup=False)


@app.command("generate")
def generate_cmd(
    run: Annotated[Path, typer.Argument(help="run directory (holds questions.jsonl)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write reasoning paths: teachers x styles x questions x samples into RUN/paths.jsonl (resumable)."""
    from cotdistill.stages.generate import run_generate
    from cotdistill.stages.resolve import resolve_run

    run_dir, cfg = resolve_run(run, config, set_, lock="generate")
    summary = run_generate(run_dir, cfg, console=console)
    done = sum(t.completed + t.cached for t in summary.teachers.values())
    out.print(f"generate: {done} new paths in {run_dir.paths}, {summary.failed} failed")


@app.command("filter")
def filter_cmd(
    run: Annotated[Path, typer.Argument(help="run directory with questions.jsonl and paths.jsonl")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as JSON")] = False,
) -> None:
    """Answer check, judge and consensus for every path: RUN/filtered.jsonl + RUN/filter_stats.json."""
    from cotdistill.stages.filter import filter_run
    from cotdistill.stages.resolve import resolve_run

    run_dir, cfg = resolve_run(run, config, set_, lock="filter")
    stats = filter_run(run_dir, cfg)
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    _print_filter_stats(stats)
    out.print(f"wrote {run_dir.filtered} and {run_dir.filter_stats}", markup=False)


def _print_filter_stats(stats: dict) -> None:
    total, kept = stats["total"], stats["kept"]
    out.print(
        f"[bold]kept {kept}/{total} paths[/] ({kept / max(total, 1):.1%}); judge verdicts {stats['judge_verdicts']}"
    )
    for group in ("teacher", "style"):
        table = Table(title=f"kept by {group}")
        for col in (group, "total", "kept", "dropped", "kept %"):
            table.add_column(col, justify="left" if col == group else "right")
        for key, r in stats[f"by_{group}"].items():
            table.add_row(
                key,
                str(r["total"]),
                str(r["kept"]),
                str(r["total"] - r["kept"]),
                f"{r['kept'] / max(r['total'], 1):.1%}",
            )
        out.print(table)
    if stats["by_reason"]:
        table = Table(title="dropped by reason")
        table.add_column("reason")
        table.add_column("paths", justify="right")
        for reason, n in stats["by_reason"].items():
            table.add_row(reason, str(n))
        out.print(table)
    if stats.get("duplicate_paths_skipped"):
        n_dup = stats["duplicate_paths_skipped"]
        out.print(f"[yellow]{n_dup} path(s) repeat an earlier path's id[/]: skipped, the first one kept")
    if stats.get("unknown_question_paths"):
        out.print(
            f"[yellow]{stats['unknown_question_paths']} path(s) name no question of questions.jsonl[/]: "
            "rejected as unknown_question"
        )
    n_empty = stats["questions_without_kept"]
    if n_empty:
        ids = stats["questions_without_kept_ids"]
        shown = ", ".join(ids[:10]) + (" ..." if n_empty > 10 else "")
        out.print(f"[yellow]{n_empty} of {stats['questions']} questions have no kept path[/]: {shown}")
    else:
        out.print(f"every one of the {stats['questions']} questions keeps at least one path")


@app.command("train")
def train_cmd(
    run: Annotated[Path, typer.Argument(help="run directory (questions.jsonl + filtered.jsonl or paths.jsonl)")],
    method: Annotated[
        str | None, typer.Option(help="sft-single | sft-multi | step-by-step | qr-distill | compact (default: config)")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="ignore existing checkpoints and start over")] = False,
    warm_start: Annotated[
        bool,
        typer.Option("--warm-start", help="start from the latest checkpoint's weights with a new schedule"),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train the configured students with a method; resumes from RUN/checkpoints when they match the run."""
    from cotdistill.lock import launched_rank_zero
    from cotdistill.stages.resolve import resolve_run
    from cotdistill.stages.train import train, trained_line

    if fresh and warm_start:
        raise CotdistillError("--fresh and --warm-start exclude each other (fresh weights, or the checkpoint's)")
    overrides = list(set_ or []) + ([f"train.method={method}"] if method else [])
    rd, cfg = resolve_run(run, config, overrides, lock="train", flags={"train.method": "--method"})
    summary = train(rd, cfg, resume=not fresh, warm_start=warm_start)
    if launched_rank_zero():
        out.print(trained_line(summary, rd.students))


@app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Argument(help="run directory with students/")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Greedy zero-shot evaluation of every student on eval.split: RUN/eval/metrics.json + outputs.jsonl."""
    from cotdistill.evaluation import metrics_table
    from cotdistill.stages.eval import evaluate_run
    from cotdistill.stages.resolve import resolve_run

    rd, cfg = resolve_run(run, config, set_, lock="eval")
    metrics = evaluate_run(rd, cfg)
    out.print(metrics_table(metrics))
    out.print(f"wrote {rd.metrics} and {rd.outputs}", markup=False)


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="run directory")],
) -> None:
    """Write RUN/report.html (self-contained) and RUN/report.md (+ RUN/report_files/) from whatever the run holds."""
    from cotdistill.lock import acquire_run_lock
    from cotdistill.report import write_report
    from cotdistill.rundir import RunDir

    if not run.is_dir():
        raise CotdistillError(f"{run}: run directory not found")
    acquire_run_lock(run, "report")  # never a report of a run another command is writing into
    html_path, md_path, sections = write_report(RunDir.at(run))
    done = ", ".join(f"{s.title}" for s in sections if s.present) or "nothing yet"
    out.print(f"wrote {html_path} and {md_path} (sections with data: {done})")


@app.command("config-reference")
def config_reference_cmd() -> None:
    """Print every config field (type, default, meaning) as a markdown table (docs/config.md is this output)."""
    from cotdistill.config_reference import config_reference

    print(config_reference(), end="")


def main() -> None:
    """Entry point: every error is one line on stderr with a meaningful exit code (``cotdistill.exits``)."""
    from cotdistill.exits import run_app
    from cotdistill.progress import quiet_third_party_bars

    quiet_third_party_bars()
    run_app(app)


if __name__ == "__main__":
    main()
