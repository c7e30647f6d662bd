"""The report's small document model (tables, figures, text, preformatted blocks in sections) and its two
renderings: one self-contained HTML page and a markdown twin with the figures as files."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

from cotdistill.rundir import RunDir


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    key: str = ""  # the HTML id (tests and links find the table by it)


@dataclass
class Figure:
    name: str  # file stem in report_files/
    png: bytes
    caption: str = ""


@dataclass
class Text:
    text: str


@dataclass
class Pre:
    text: str
    lang: str = ""


Part = Table | Figure | Text | Pre


@dataclass
class Section:
    key: str
    title: str
    source: str  # the run file it comes from
    parts: list[Part] = field(default_factory=list)
    present: bool = True


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("-" for none)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def fig_png(draw: Callable[[Any], None], width: float = 8.0, height: float = 4.0) -> bytes:
    """Draw on a fresh matplotlib Figure (Agg canvas, no pyplot state) and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _html_part(p: Part) -> str:
    if isinstance(p, Text):
        return f"<p>{html.escape(p.text)}</p>"
    if isinstance(p, Pre):
        return f'<pre class="{html.escape(p.lang)}">{html.escape(p.text)}</pre>'
    if isinstance(p, Figure):
        b64 = base64.b64encode(p.png).decode("ascii")
        cap = html.escape(p.caption)
        return (
            f'<figure><img alt="{cap}" data-figure="{html.escape(p.name)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in p.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in p.rows)
    cap = f"<caption>{html.escape(p.caption)}</caption>" if p.caption else ""
    ident = f' id="{html.escape(p.key)}"' if p.key else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(run: RunDir, sections: list[Section], generated: str) -> str:
    """The whole report as one HTML string (template: ``report_template.html`` beside this module)."""
    template = Template(resources.files("cotdistill.report").joinpath("template.html").read_text(encoding="utf-8"))
    toc = "".join(
        f'<li><a href="#{s.key}">{html.escape(s.title)}</a>{"" if s.present else " <em>(not run)</em>"}</li>'
        for s in sections
    )
    body = []
    for s in sections:
        inner = (
            "".join(_html_part(p) for p in s.parts)
            if s.present
            else f'<p class="notrun">not run (no {html.escape(s.source)})</p>'
        )
        body.append(
            f'<section id="{s.key}" class="{"present" if s.present else "absent"}"><h2>{html.escape(s.title)}</h2>'
            f'<p class="src">source: {html.escape(s.source)}</p>{inner}</section>'
        )
    return template.substitute(
        title=html.escape(f"cotdistill report: {run.root.name}"),
        run=html.escape(str(run.root)),
        generated=html.escape(generated),
        toc=toc,
        body="\n".join(body),
    )


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_part(p: Part, files_dir: str) -> str:
    if isinstance(p, Text):
        return p.text
    if isinstance(p, Pre):
        return f"```{p.lang}\n{p.text.rstrip()}\n```"
    if isinstance(p, Figure):
        return f"![{p.caption}]({files_dir}/{p.name}.png)"
    lines = []
    if p.caption:
        lines.append(f"*{p.caption}*\n")
    lines.append("| " + " | ".join(_md_cell(h) for h in p.headers) + " |")
    lines.append("|" + "|".join("---" for _ in p.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in p.rows]
    return "\n".join(lines)


def render_markdown(run: RunDir, sections: list[Section], generated: str, files_dir: str = "report_files") -> str:
    """The markdown twin; figures referenced as ``report_files/<name>.png`` relative to the report."""
    out = [f"# cotdistill report: {run.root.name}", "", f"Run `{run.root}`, generated {generated}.", ""]
    for s in sections:
        out += [f"## {s.title}", "", f"source: `{s.source}`", ""]
        if not s.present:
            out += [f"not run (no `{s.source}`)", ""]
            continue
        for p in s.parts:
            out += [_md_part(p, files_dir), ""]
    return "\n".join(out)
