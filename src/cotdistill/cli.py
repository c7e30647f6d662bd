"""The ``cotdistill`` command line: one command per pipeline stage, plus import / inspect helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="run config YAML")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override: key.path=value (repeatable)")]


@app.command("questions")
def questions_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="run directory to write questions.jsonl into")],
    source: Annotated[
        str | None, typer.Option(help="lab:arith,date,compare | rg:NAME[,NAME] | file:PATH (default: config)")
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
    from cotdistill.stages import write_questions

    cfg = load_config(config, set_)
    qc = cfg.questions
    updates = {
        k: v for k, v in dict(source=source, train=train, dev=dev, test=test, task=task).items() if v is not None
    }
    cfg.questions = qc.model_copy(update=updates)
    if seed is not None:
        cfg.seed = seed
    counts = write_questions(cfg, out_dir)
    out.print(f"wrote {sum(counts.values())} questions to {out_dir / 'questions.jsonl'} ({counts})")


@app.command("import")
def import_cmd(
    fmt: Annotated[str, typer.Argument(help="format: mcc-kd | qr-distill")],
    src: Annotated[Path, typer.Argument(help="file to import")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="run directory to create")],
    task: Annotated[str | None, typer.Option(help="task family (default: from the data, else math)")] = None,
    teacher: Annotated[str, typer.Option(help="teacher name recorded on the paths")] = "teacher",
    style: Annotated[str | None, typer.Option(help="style recorded on the paths")] = None,
) -> None:
    """Import an existing multi-path dataset into RUN/questions.jsonl + RUN/paths.jsonl."""
    from cotdistill.sources.importers import ImportOptions, run_import

    nq, np_ = run_import(fmt, src, out_dir, ImportOptions(task=task, teacher=teacher, style=style))
    out.print(f"imported {nq} questions and {np_} paths into {out_dir}")


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
        f"[bold]{stats['run']}[/]: {stats['questions']} questions, {stats['paths']} paths, "
        f"answer correct {t['answer_ok']}/{t['paths']} ({t['answer_ok_rate']:.1%})"
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
                key,
                str(r["paths"]),
                str(r["answer_ok"]),
                f"{r['answer_ok_rate']:.1%}",
                f"{r['mean_chars']:.0f}",
                str(r["min_chars"]),
                str(r["max_chars"]),
            )
        out.print(table)


@app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Argument(help="run directory with students/")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Greedy zero-shot evaluation of every student on eval.split: RUN/eval/metrics.json + outputs.jsonl."""
    from cotdistill.evaluation import evaluate_run, metrics_table
    from cotdistill.stages import resolve_run

    rd, cfg = resolve_run(run, config, set_)
    metrics = evaluate_run(rd, cfg, console=console)
    out.print(metrics_table(metrics))
    out.print(f"wrote {rd.eval / 'metrics.json'} and {rd.eval / 'outputs.jsonl'}")


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="run directory")],
) -> None:
    """Write RUN/report.html (self-contained) and RUN/report.md (+ RUN/report_files/) from whatever the run holds."""
    from cotdistill.report import write_report

    html_path, md_path, sections = write_report(run)
    done = ", ".join(f"{s.title}" for s in sections if s.present) or "nothing yet"
    out.print(f"wrote {html_path} and {md_path} (sections with data: {done})")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except CotdistillError as e:
        console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        sys.exit(code)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
