"""The run report: sections from hand-written run files, HTML + markdown twins, and a headless-Chromium check."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from cotdistill.report import routing_rates, write_report
from cotdistill.rundir import RunDir

STYLES = ["cot", "program", "facts"]
IMG = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _jsonl(path: Path, recs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")


def make_full_run(root: Path) -> Path:
    """A run directory holding every input the report reads, following the shared file contracts."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "eval").mkdir()
    (root / "eval" / "metrics.json").write_text(
        json.dumps(
            {
                "split": "test",
                "students": {
                    "gpt2-a": {
                        "accuracy": 0.42,
                        "n": 50,
                        "by_task": {"math": 0.4, "yesno": 0.5},
                        "no_answer_rate": 0.04,
                        "truncation_rate": 0.1,
                    },
                    "llama-b": {
                        "accuracy": 0.36,
                        "n": 50,
                        "by_task": {"math": 0.3, "yesno": 0.6},
                        "truncation_rate": 0.0,
                    },
                },
                "ensembles": {"vote": 0.44, "logprob": 0.4},
                "ensembles_by_task": {"vote": {"math": 0.45, "yesno": 0.4}},
                "prompt": "core",
                "base": {
                    "gpt2-a": {
                        "accuracy": 0.1,
                        "n": 50,
                        "by_task": {"math": 0.05, "yesno": 0.15},
                        "no_answer_rate": 0.9,
                        "truncation_rate": 0.5,
                    }
                },
                "delta": {"gpt2-a": 0.32},
                "probes": {
                    "csqa": {"gpt2-a": {"before": {"accuracy": 0.3}, "after": {"accuracy": 0.26}, "drop": 0.04}}
                },
                "drift": {"gpt2-a": {"cka": 0.8123, "cosine": 0.9, "n": 40}},
            }
        )
    )
    (root / "filter_stats.json").write_text(
        json.dumps(
            {
                "total": 120,
                "kept": 80,
                "by_teacher": {"alpha": {"total": 60, "kept": 50}, "beta": {"total": 60, "kept": 30}},
                "by_style": {s: {"total": 40, "kept": 20 + 5 * i} for i, s in enumerate(STYLES)},
                "by_reason": {"wrong_answer": 25, "judge_invalid": 15},
            }
        )
    )
    routing = []
    # epoch 0: student a takes cot 3/4, program 1/4; epoch 1: a takes cot 1/4, program 4/4; b takes 2/4 always
    plan = {(0, "cot"): 3, (0, "program"): 1, (0, "facts"): 2, (1, "cot"): 1, (1, "program"): 4, (1, "facts"): 0}
    for (epoch, style), k in plan.items():
        for j in range(4):
            for student, gate in (("gpt2-a", int(j < k)), ("llama-b", int(j < 2))):
                routing.append(
                    {
                        "schema_version": 1,
                        "step": epoch * 10 + j,
                        "epoch": epoch,
                        "question_id": f"q{j}",
                        "path_id": f"q{j}|alpha|{style}|0",
                        "teacher": "alpha",
                        "style": style,
                        "student": student,
                        "gate": gate,
                        "prob": 0.5,
                        "fallback": False,
                    }
                )
    _jsonl(root / "logs" / "routing.jsonl", routing)
    weights = []
    for step in range(20):
        for q in range(3):
            wa = 0.5 + 0.02 * step
            for t, w in (("alpha", wa), ("beta", 1 - wa)):
                weights.append(
                    {"schema_version": 1, "step": step, "epoch": step // 10, "question_id": f"q{q}", "teacher": t}
                    | {"weight": w, "C": 0.9 if t == "alpha" else 0.3, "A": 0.1, "D": 1.2}
                )
    _jsonl(root / "logs" / "compact_weights.jsonl", weights)
    metrics = [
        {
            "schema_version": 1,
            "step": s,
            "epoch": s // 10,
            "losses": {"ce/gpt2-a": 3.0 / (1 + s), "entropy": 0.69 - 0.001 * s, "total": 3.2 / (1 + s)},
            "lr": {"gpt2-a": 1e-3},
        }
        for s in range(20)
    ]
    _jsonl(root / "logs" / "train_metrics.jsonl", metrics)
    (root / "config.yaml").write_text("name: demo\nseed: 0\ntrain:\n  method: qr-distill\n")
    (root / "bench.json").write_text(
        json.dumps(
            {
                "seeds": [0, 1, 2],
                "rows": [
                    {"method": "sft-multi", "student": "gpt2-a", "accuracies": [0.4, 0.5, 0.6]},
                    {"method": "qr-distill", "student": "gpt2-a", "accuracies": [0.5, 0.5, 0.5]},
                    {"method": "qr-distill", "student": "llama-b", "accuracies": [0.3, 0.35]},
                    {"method": "qr-distill w/o QF", "student": "gpt2-a", "accuracies": [0.45], "group": "ablation"},
                ],
            }
        )
    )
    return root


def decode_pngs(html_text: str) -> list[tuple[int, int]]:
    from PIL import Image

    sizes = []
    for b64 in IMG.findall(html_text):
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        assert img.format == "PNG"
        sizes.append(img.size)
    return sizes


def test_full_report_sections_numbers_and_figures(tmp_path):
    run = make_full_run(tmp_path / "run")
    html_path, md_path, sections = write_report(RunDir.at(run))
    assert [s.key for s in sections if s.present] == [
        "accuracy",
        "bench",
        "filter",
        "routing",
        "compact",
        "losses",
        "config",
    ]
    page = html_path.read_text()
    md = md_path.read_text()
    assert "not run" not in page
    # self-contained: no external URL anywhere, CSS inline, figures embedded
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "<link" not in page and "<style>" in page
    sizes = decode_pngs(page)
    assert len(sizes) == 5 and all(w > 100 and h > 50 for w, h in sizes)
    files = sorted(p.name for p in (run / "report_files").glob("*.png"))
    assert files == ["accuracy.png", "compact_weights.png", "filter.png", "losses.png", "routing.png"]
    for f in files:
        assert f"](report_files/{f})" in md
    # numbers: routing rates per epoch x style x student, computed from the log
    assert "| 0 | cot | 75.0% | 50.0% |" in md
    assert "| 1 | program | 100.0% | 50.0% |" in md
    assert "| 1 | facts | 0.0% | 50.0% |" in md
    # bench: mean ± sample std; a row with fewer seeds says so; ablations in their own table
    assert "| sft-multi | 10.0" not in md and "| sft-multi | 50.0 ± 10.0 (40.0, 50.0, 60.0) | - |" in md
    assert "| qr-distill | 50.0 ± 0.0 (50.0, 50.0, 50.0) | 32.5 ± 3.5 (n=2: 30.0, 35.0) |" in md
    assert "*ablation*" in md and "| qr-distill w/o QF | 45.0 (one seed) |" in md
    # accuracy with ensembles and per-task; filter per teacher and reason; compact mean weight; config
    assert "| gpt2-a | 10.0% | 42.0% | +32.0 | 90.0% -> 4.0% | 10.0% | 50 |" in md  # base -> distilled
    assert "| llama-b | - | 36.0% | - | - | 0.0% | 50 |" in md  # no base row, no no-answer rate: shown as such
    assert "| ensemble: vote | - | 44.0% | - | - | - |  |" in md
    assert "| gpt2-a | math | 5.0% | 40.0% |" in md and "| ensemble: vote | yesno | - | 40.0% |" in md
    assert "| csqa | gpt2-a | 30.0% | 26.0% | +4.0 |" in md and "| gpt2-a | 0.812 | 0.900 | 40 |" in md
    assert "| beta | 60 | 30 | 50.0% |" in md and "| wrong_answer | 25 | 62.5% |" in md
    assert "| alpha | 60 | 0.690 | 0.900 | 0.100 | 1.200 |" in md
    assert "method: qr-distill" in md and "method: qr-distill" in page
    assert "| total | 20 | 3.2 | 0.16 | 0.16 |" in md


def test_routing_rates_and_torn_line(tmp_path):
    run = make_full_run(tmp_path / "run")
    log = run / "logs" / "routing.jsonl"
    with open(log, "a") as f:
        f.write('{"student": "gpt2-a", "epoch": 1, "sty')  # torn by a kill
    skipped = [0]
    rates = routing_rates(log, skipped)
    assert skipped == [1]
    assert rates["gpt2-a"][0]["cot"] == (4, 3) and rates["llama-b"][1]["facts"] == (4, 2)
    _, md_path, _ = write_report(RunDir.at(run))
    assert "1 line(s) of routing.jsonl did not parse" in md_path.read_text()


def test_empty_run_says_not_run_and_cli(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    res = run_cli("report", str(run))
    assert res.returncode == 0, res.stderr
    page = (run / "report.html").read_text()
    assert page.count("not run (no ") == 7
    assert "<img" not in page
    assert not list(run.glob("report_files/*.png"))
    # a broken input becomes a note in its section, the rest still renders
    (run / "bench.json").write_text("{not json")
    make_full_run(tmp_path / "full")
    shutil.copy(tmp_path / "full" / "filter_stats.json", run / "filter_stats.json")
    res = run_cli("report", str(run))
    assert res.returncode == 0, res.stderr
    md = (run / "report.md").read_text()
    assert (
        "could not read bench.json: ValidationError: 1 validation error for BenchResult Invalid JSON" in md
        and "Kept 80 of 120 paths (66.7%)" in md
    )
    assert [p.name for p in (run / "report_files").glob("*.png")] == ["filter.png"]
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "run directory not found" in missing.stderr


# --------------------------------------------------------------------------------------------------------------
# Headless Chromium: the page really renders, with its tables and every figure decoded by the browser


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        res = subprocess.run(["sh", str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True)
        exe = shutil.which("chromium")
        if exe is None:
            pytest.skip(f"headless chromium not available: {res.stderr.strip() or 'install failed'}")
    return exe


def _chromium(exe: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    flags += ["--no-first-run", f"--user-data-dir={home / 'profile'}"]
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}
    )


CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = imgs.map(function (i) { return [i.complete, i.naturalWidth, i.naturalHeight]; });
  var d = document.createElement('div');
  d.id = 'imgcheck';
  var t = document.getElementById('base-distilled');
  var first = t ? {bottom: t.getBoundingClientRect().bottom, screen: window.innerHeight,
                   headers: Array.prototype.map.call(t.querySelectorAll('th'), function (h) { return h.textContent; })}
                : null;
  d.textContent = JSON.stringify({images: out, tables: document.querySelectorAll('table').length, first: first});
  document.body.appendChild(d);
});
</script>"""


def test_report_renders_in_headless_chromium(tmp_path, chromium):
    from PIL import Image, ImageStat

    run = make_full_run(tmp_path / "run")
    html_path, _, _ = write_report(RunDir.at(run))
    shot = tmp_path / "shot.png"
    res = _chromium(chromium, f"--screenshot={shot}", "--window-size=1200,3000", html_path.as_uri(), home=tmp_path)
    assert shot.exists(), res.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 3000)
    stat = ImageStat.Stat(img)
    assert stat.var[0] > 100  # not a blank page: text, tables and plots give contrast
    # the browser decoded every figure: a copy of the page with a probe script, DOM dumped after load
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    res = _chromium(chromium, "--virtual-time-budget=5000", "--window-size=1280,800", "--dump-dom", probe.as_uri(),
                    home=tmp_path)  # fmt: skip
    m = re.search(r'<div id="imgcheck">(.*?)</div>', res.stdout)
    assert m, res.stderr[-2000:]
    check = json.loads(m.group(1).replace("&quot;", '"'))
    assert check["tables"] >= 9
    assert len(check["images"]) == 5
    assert all(complete and w > 100 and h > 50 for complete, w, h in check["images"])
    # did it work? the base -> distilled table is on the first screen of a 1280x800 window
    first = check["first"]
    assert first is not None and first["headers"][:3] == ["model", "base", "distilled"]
    assert 0 < first["bottom"] <= first["screen"], first


def test_bench_row_mean_std_says_when_one_seed_has_no_spread():
    from cotdistill.results import BenchRow

    two = BenchRow(method="m", student="s", accuracies=[0.1, 0.2])
    one = BenchRow(method="m", student="s", accuracies=[0.16])
    assert two.mean_std() == "15.0 ± 7.1" and two.mean_std("+-") == "15.0 +- 7.1"
    assert one.mean_std() == "16.0 (one seed)"  # not "16.0 ± 0.0": one seed has no sample std
