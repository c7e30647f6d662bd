"""The truth-telling parts of eval: base rows from untrained weights, the prompt policy, the answer sentence,
forgetting on probes, representation drift, and bad probe / student input."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli
from cotdistill.config import load_config
from cotdistill.evaluation.drift import linear_cka, mean_cosine
from cotdistill.records import Question
from cotdistill.rundir import RunDir
from cotdistill.stages.eval import evaluate_run
from cotdistill.stages.train import train
from cotdistill.students.prompt import question_prompt
from cotdistill.tasks import get_family
from cotdistill.training.methods.base import training_target
from trainutil import TINY, tiny_hf_llama, write_succ_run

Q = Question(id="q", task="math", question="What is 2 + 3?", gold="5")


def test_prompt_policies():
    core = question_prompt(Q, "core")
    assert core.startswith("What is 2 + 3?") and "step by step" in core and '"The answer is N."' in core
    assert question_prompt(Q, "bare") == "What is 2 + 3?"
    assert (
        question_prompt(Q, "Q: {question}\n{instruction}")
        == f"Q: What is 2 + 3?\n{get_family('math').answer_instruction}"
    )
    c = Question(id="c", task="choice", question="Pick one.", choices=["x", "y"], gold="B")
    assert "(A) x" in question_prompt(c, "bare") and "(B) y" in question_prompt(c, "{question}")
    with pytest.raises(Exception, match="core, bare, or a template containing"):
        load_config(None, ["prompt=no placeholder here"])


def test_answer_sentence_closes_a_path_only_when_strict_extraction_finds_nothing():
    stated = "2 + 3 = 5. The answer is 5."
    assert training_target(Q, stated, True) == (stated, False)  # already readable: unchanged
    silent = "Therefore, Melissa has 2 + 3 = 5 apples."
    assert training_target(Q, silent, True) == (silent + "\nThe answer is 5.", True)
    wrong = "Therefore she has 7 apples."  # the path's own answer, even when it is wrong
    assert training_target(Q, wrong, True) == (wrong + "\nThe answer is 7.", True)
    assert training_target(Q, "No numbers here.", True) == ("No numbers here.", False)  # nothing to state
    assert training_target(Q, silent, False) == (silent, False)  # the option off
    c = Question(id="c", task="choice", question="Pick.", choices=["cat", "dog"], gold="B")
    assert training_target(c, "So (B) it is", True)[0].endswith("The answer is (B).")


def test_linear_cka_and_cosine():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 8, generator=g)
    assert linear_cka(x, x) == pytest.approx(1.0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-9)  # rotation and scale do not count
    assert linear_cka(x, torch.randn(40, 8, generator=g)) < 0.5
    assert mean_cosine(x, x) == pytest.approx(1.0) and mean_cosine(x, x[:, :4]) is None


def _trained_run(tmp_path, probes: list | None = None):
    """A tiny preset trained to say ``N + 1`` on 24 questions, evaluated on those training questions."""
    import yaml

    root = write_succ_run(tmp_path / "run", n_train=24, n_dev=0)
    student = {**TINY, "lr": 3e-3, "size": {**TINY["size"], "d_model": 64, "n_layer": 2}}
    cfg = {
        "seed": 0, "prompt": "bare", "students": [student],
        "train": {"epochs": 40, "batch_size": 8, "max_length": 96, "trackers": [], "bf16": False},
        "eval": {"split": "train", "max_new_tokens": 32, "probes": probes or []},
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run, config = RunDir.at(root), load_config(tmp_path / "c.yaml")
    train(run, config)
    return run, config


def test_base_rows_come_from_untrained_weights_and_drift_is_measured(tmp_path):
    run, cfg = _trained_run(tmp_path)
    m = evaluate_run(run, cfg)
    base, after = m["base"]["s"], m["students"]["s"]
    assert base["n"] == after["n"] == 24
    assert after["accuracy"] > base["accuracy"] + 0.3  # it learned the task it was trained on
    assert base["no_answer_rate"] > 0.5 and after["no_answer_rate"] < 0.2  # the random init states nothing
    assert m["delta"]["s"] == pytest.approx(after["accuracy"] - base["accuracy"], abs=1e-6)
    assert 0.0 <= m["drift"]["s"]["cka"] < 0.99 and m["drift"]["s"]["n"] == 24  # training moved the states
    base_lines = [json.loads(x) for x in run.base_outputs.read_text().splitlines()]
    assert len(base_lines) == 24 and all("no_answer" in r for r in base_lines)
    cached = {p.name: p.stat().st_mtime_ns for p in run.base_cache.iterdir()}
    m2 = evaluate_run(run, cfg)  # the base rows come from the cache: nothing recomputed, same numbers
    assert m2["base"] == m["base"] and {p.name: p.stat().st_mtime_ns for p in run.base_cache.iterdir()} == cached


def test_forgetting_on_a_probe(tmp_path):
    probe = tmp_path / "probe.jsonl"
    rows = [{"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(10, 16)]
    probe.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run, cfg = _trained_run(tmp_path, probes=[{"name": "succ", "source": f"file:{probe}", "n": 5}])
    m = evaluate_run(run, cfg)
    row = m["probes"]["succ"]["s"]
    assert row["before"]["n"] == row["after"]["n"] == 5
    assert row["drop"] == pytest.approx(row["before"]["accuracy"] - row["after"]["accuracy"], abs=1e-6)
    probe_lines = [json.loads(x) for x in run.probe_outputs.read_text().splitlines()]
    assert {(r["model"], r["probe"]) for r in probe_lines} == {("base", "succ"), ("distilled", "succ")}
    assert m["drift"]["s"]["n"] == 5  # drift is measured on the first probe


@pytest.mark.parametrize(
    "probe, needle",
    [
        (
            {"name": "bad", "source": "file:{dir}/broken.jsonl"},
            "eval.probes[0] (bad): {dir}/broken.jsonl:2: malformed JSON",
        ),
        ({"name": "bad", "source": "file:{dir}/ok.jsonl", "task": "poetry"}, "unknown task family 'poetry'"),
        ({"name": "bad", "source": "nosuch:thing"}, "unknown question source 'nosuch:thing'"),
    ],
)
def test_bad_probe_is_one_line_and_keeps_eval(tmp_path, probe, needle):
    run = write_succ_run(tmp_path / "run", n_train=4, n_dev=0)
    (tmp_path / "broken.jsonl").write_text('{"question": "a", "answer": "1"}\n{"question": \n')
    (tmp_path / "ok.jsonl").write_text('{"question": "a", "answer": "1"}\n')
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text("{}")
    probe = {k: v.replace("{dir}", str(tmp_path)) for k, v in probe.items()}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"students": [TINY], "prompt": "bare", "eval": {"split": "train", "probes": [probe]}}))
    r = run_cli("eval", str(run), "-c", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle.replace("{dir}", str(tmp_path)) in r.stderr
    assert (run / "eval" / "metrics.json").read_text() == "{}"


def test_a_student_whose_base_cannot_be_built_is_one_line(tmp_path):
    from cotdistill.config import load_config as load
    from cotdistill.students import build_student, save_student

    run = write_succ_run(tmp_path / "run", n_train=4, n_dev=0)
    built = build_student(load(None, [f"students=[{json.dumps(TINY)}]"]).students[0], ["What is 1 + 1? 2"], None)
    save_student(built.model, built.tokenizer, run / "students" / "s")  # the trained student is fine
    cfg = tmp_path / "c.yaml"  # ... but the config's student cannot be built (its base row)
    bad = {"name": "s", "kind": "hf", "path": str(tmp_path / "nowhere")}
    cfg.write_text(json.dumps({"students": [bad], "prompt": "bare", "eval": {"split": "train"}}))
    r = run_cli("eval", str(run), "-c", str(cfg), "--set", "eval.max_new_tokens=4")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "'s': kind hf needs path: a local model directory" in r.stderr
    assert not (run / "eval" / "metrics.json").exists()


def test_a_prompt_longer_than_the_models_positions_is_one_line(tmp_path):
    from cotdistill.errors import CotdistillError
    from cotdistill.evaluation import answer_questions
    from cotdistill.students import build_student

    built = build_student(load_config(None, [f"students=[{json.dumps(TINY)}]"]).students[0], ["a b c 1 2 3"], None)
    with pytest.raises(CotdistillError, match="exceeds the model's 128 positions"):
        answer_questions(built.model, built.tokenizer, [Q], 120, policy="core")


def test_the_bench_has_a_base_row_per_student_and_seed(tmp_path):
    import yaml

    from cotdistill.stages.bench import run_bench

    root = write_succ_run(tmp_path / "run", n_train=12, n_dev=0)
    (root / "questions.jsonl").write_text(
        (root / "questions.jsonl").read_text().replace('"split":"train"', '"split":"test"', 4)
    )  # four of the questions become the test split
    (root / "paths.jsonl").write_bytes((root / "filtered.jsonl").read_bytes())  # as an import leaves them
    cfg = {
        "seed": 0, "prompt": "bare", "questions": {"source": "imported"}, "students": [TINY],
        "filter": {"judge": {"kind": "none"}, "consensus": {"enabled": False}},
        "train": {"epochs": 1, "batch_size": 8, "max_length": 96, "trackers": [], "bf16": False},
        "eval": {"max_new_tokens": 8},
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    lines: list[str] = []
    result = run_bench(RunDir.at(root), load_config(tmp_path / "c.yaml"), [0, 1], ["sft-multi"], log=lines.append)
    cells = [x for x in lines if x.startswith("bench: cell")]
    cell_dir = root / "bench" / "sft-multi" / "s"
    assert cells[0::2] == [
        f"bench: cell 1/2: sft-multi / s / seed 0 in {cell_dir / 'seed0'}",
        f"bench: cell 2/2: sft-multi / s / seed 1 in {cell_dir / 'seed1'}",
    ]
    assert all(x.startswith("bench: cell done in ") for x in cells[1::2]) and len(cells) == 4  # progress, timings
    rows = {(r.method, r.student): r for r in result.rows}
    assert set(rows) == {("base", "s"), ("sft-multi", "s")}
    base = rows[("base", "s")]
    assert len(base.accuracies) == 2 and base.group == "methods"  # one per seed (a preset's init is seeded)
    assert len(base.extras["no_answer_rate"]) == 2 and len(rows[("sft-multi", "s")].extras["truncation_rate"]) == 2


def test_eval_bf16_auto_is_off_on_cpu_and_an_explicit_setting_wins() -> None:
    """On CPU greedy decoding in bf16 measured slower than fp32 (benchmarks/bench_eval_bf16.py), so auto is off."""
    from cotdistill.stages.eval import eval_bf16

    cpu = torch.device("cpu")
    assert eval_bf16("auto", cpu) is False
    assert eval_bf16(True, cpu) is True
    assert eval_bf16(False, cpu) is False


def test_students_of_one_pretrained_model_share_one_base_evaluation(tmp_path, monkeypatch):
    """Two LoRA students of the same weights have the same starting point: it is generated once and cached under
    each name; two presets (seeded by position) are generated each."""
    import cotdistill.stages.eval as stage_eval

    tiny_hf_llama(tmp_path / "llama")
    run = RunDir.at(write_succ_run(tmp_path / "run", n_train=6, n_dev=0))
    hf = {"kind": "hf", "path": str(tmp_path / "llama")}
    students = [{**hf, "name": "a", "lora": {"r": 4}}, {**hf, "name": "b", "lora": {"r": 2}, "lr": 1e-3}]
    cfg = load_config(None, [f"students={json.dumps(students)}", "prompt=bare", "eval.split=train",
                             "eval.max_new_tokens=6"])  # fmt: skip
    calls: list[str] = []
    real = stage_eval.evaluate_model
    monkeypatch.setattr(stage_eval, "evaluate_model", lambda name, *a: calls.append(name) or real(name, *a))
    sets, dev = stage_eval.eval_sets(run, cfg), torch.device("cpu")
    evs = stage_eval.base_evals(run, cfg, sets, dev, False)
    assert calls == ["a"] and set(evs) == {"a", "b"}
    assert [r["student"] for r in evs["b"].outputs] == ["b"] * 6
    assert [r["text"] for r in evs["b"].outputs] == [r["text"] for r in evs["a"].outputs]
    again = stage_eval.base_evals(run, cfg, sets, dev, False)  # both now come from the cache
    assert calls == ["a"] and again["b"].outputs == evs["b"].outputs
    presets = [TINY, {**TINY, "name": "t"}]
    pcfg = load_config(None, [f"students={json.dumps(presets)}", "prompt=bare", "eval.split=train",
                              "eval.max_new_tokens=6"])  # fmt: skip
    stage_eval.base_evals(run, pcfg, sets, dev, False)
    assert calls == ["a", "s", "t"]
