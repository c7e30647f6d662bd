"""The run report: one self-contained HTML page (``RUN/report.html``) and its markdown twin (``RUN/report.md``).

Every section is built from a run-directory file and appears with "not run" when that file is absent:

- **Accuracy** (``eval/metrics.json``): students and ensembles, overall and per task family, truncation rate.
- **Filter** (``filter_stats.json``): kept / total per teacher and per style, rejections per reason.
- **Routing** (``logs/routing.jsonl``): per epoch and style, the share of paths whose gate opened (``gate == 1``)
  for each student; one heatmap per student (styles x epochs).
- **COMPACT weights** (``logs/compact_weights.jsonl``): mean weight per teacher at each step (lines), and per
  teacher mean weight / C / A / D.
- **Losses** (``logs/train_metrics.jsonl``): one curve per loss component over optimizer steps.
- **Benchmark** (``bench.json``), written by ``cotdistill bench`` or by hand::

      {"seeds": [0, 1, 2],
       "rows": [{"method": "qr-distill", "student": "gpt2-a", "accuracies": [0.41, 0.44, 0.43]},
                {"method": "qr-distill w/o QF", "student": "gpt2-a", "accuracies": [...], "group": "ablation"}]}

  ``accuracies`` are fractions in [0, 1], one per seed. One table per ``group`` (default ``main``): methods as
  rows, students as columns, each cell ``mean ± std`` in percent (sample standard deviation; n shown when it
  differs from the number of seeds).
- **Config** (``config.yaml``): the resolved run config.

Figures are matplotlib PNGs (Agg backend, no display needed): embedded as base64 ``data:`` URIs in the HTML
(inline CSS, no external URL, so the file can be mailed or archived alone) and written as files in
``RUN/report_files/`` for the markdown. A log line that does not parse (a torn last line, say) is skipped and
counted; a file that cannot be read at all turns its section into an error note instead of failing the report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cotdistill.io import atomic_write_bytes, atomic_write_text
from cotdistill.report.document import Figure, Section, render_html, render_markdown
from cotdistill.report.sections import build_sections, routing_rates
from cotdistill.rundir import RunDir

__all__ = ["Section", "build_sections", "routing_rates", "write_report"]


def write_report(run: RunDir) -> tuple[Path, Path, list[Section]]:
    """Build every section from the run's files and write report.html, report.md and report_files/*.png."""
    from cotdistill.errors import CotdistillError

    if not run.root.is_dir():
        raise CotdistillError(f"{run.root}: run directory not found")
    sections = build_sections(run)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = run.report_files
    figures = [p for s in sections for p in s.parts if isinstance(p, Figure)]
    for f in figures:
        atomic_write_bytes(files / f"{f.name}.png", f.png)
    if files.is_dir():  # figures of sections that are gone now
        keep = {f"{f.name}.png" for f in figures}
        for old in files.glob("*.png"):
            if old.name not in keep:
                old.unlink()
    atomic_write_text(run.report_html, render_html(run, sections, generated))
    atomic_write_text(run.report_md, render_markdown(run, sections, generated))
    return run.report_html, run.report_md, sections
