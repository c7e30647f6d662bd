"""The shared training loop: collation, batching, a short sft run, reload with plain transformers."""

from __future__ import annotations

import json

import pytest
import torch

from cotdistill.config import load_config
from cotdistill.errors import CotdistillError
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from cotdistill.students import train_tokenizer
from cotdistill.students.encoding import collate, encode
from cotdistill.students.prompt import render_prompt
from cotdistill.training.data import make_batches, shard
from trainutil import TINY, write_add_run, write_config


@pytest.fixture(scope="module")
def tok():
    texts = [f"What is {a} + {b}?" for a in range(10) for b in range(10)] + ["The answer is 7."] * 5
    return train_tokenizer(texts, 300)


def test_encode_labels_only_on_response_and_eos(tok):
    e = encode(tok, "What is 3 + 4?", "3 + 4 = 7. The answer is 7.")
    prompt_ids = tok(render_prompt(tok, "What is 3 + 4?"), add_special_tokens=False)["input_ids"]
    assert e.ids[: e.n_prompt] == prompt_ids
    assert e.ids[-1] == tok.eos_token_id
    assert tok.decode(e.ids[e.n_prompt :], skip_special_tokens=True) == "3 + 4 = 7. The answer is 7."
    b = collate([e, encode(tok, "Hi", "ok")], tok.pad_token_id)
    assert b.input_ids.shape == (2, len(e))  # padded to the longest in the batch, not to a fixed length
    assert (b.labels[0, : e.n_prompt] == -100).all() and (b.labels[0, e.n_prompt :] != -100).all()
    assert b.attention_mask[1].sum() < b.attention_mask[0].sum()
    assert (b.labels[1][b.attention_mask[1] == 0] == -100).all()


def test_digits_are_single_tokens(tok):
    ids = tok("12345", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5


def test_question_batching_keeps_questions_together():
    groups = [f"q{i // 3}" for i in range(30)]  # 10 questions x 3 examples
    batches = make_batches([5] * 30, groups, 7, seed=1, epoch=0, mode="question", length_grouping=True)
    assert sorted(i for b in batches for i in b) == list(range(30))
    for b in batches:
        qs = {groups[i] for i in b}
        assert all(sum(groups[i] == q for i in b) == 3 for q in qs)  # every question whole
    for rank_sets in ([shard(b, groups, r, 2, "question") for r in range(2)] for b in batches):
        assert not {groups[i] for i in rank_sets[0]} & {groups[i] for i in rank_sets[1]}


def test_path_batching_is_seeded_and_length_grouped():
    lengths = [i % 17 for i in range(200)]
    a = make_batches(lengths, ["x"] * 200, 10, seed=3, epoch=1, mode="path", length_grouping=True)
    assert a == make_batches(lengths, ["x"] * 200, 10, seed=3, epoch=1, mode="path", length_grouping=True)
    assert a != make_batches(lengths, ["x"] * 200, 10, seed=3, epoch=2, mode="path", length_grouping=True)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 5  # random batches would span ~16


def test_sft_multi_trains_saves_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = write_add_run(tmp_path / "run")
    cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], epochs=2, batch_size=8, checkpoint_every=5))
    summary = train(RunDir.at(run), cfg)
    assert summary["examples"] == 120 and summary["dropped_overlong"] == 0
    recs = [json.loads(line) for line in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == list(range(summary["total_steps"]))
    assert set(recs[0]["losses"]) == {"ce/s", "total"} and set(recs[0]["lr"]) == {"s"}
    assert recs[-1]["losses"]["total"] < recs[0]["losses"]["total"]
    dev = [json.loads(line) for line in (run / "logs" / "dev.jsonl").read_text().splitlines()]
    assert [d["epoch"] for d in dev] == [0, 1] and dev[0]["metric"] == "loss"
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(ckpts) == 2  # keep_checkpoints
    for d in (run / "students" / "s", run / "students" / "s" / "best"):
        model = AutoModelForCausalLM.from_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
        ids = torch.tensor([tok(render_prompt(tok, "What is 1 + 2?"))["input_ids"]])
        assert model(ids).logits.shape[-1] == len(tok)


def test_student_count_is_checked(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=4, n_dev=0)
    cfg = load_config(write_config(tmp_path / "c.yaml", []))
    with pytest.raises(CotdistillError, match="needs 1..any student"):
        train(RunDir.at(run), cfg)


def test_student_forward_is_response_token_mean_ce(tok):
    from cotdistill.config import StudentConfig
    from cotdistill.students import build_student
    from cotdistill.training.student import Student

    torch.manual_seed(0)
    b = build_student(StudentConfig(**TINY), [f"What is {a} + 1? {a + 1}" for a in range(50)])
    s = Student("s", b.model, b.tokenizer, torch.device("cpu"), bf16=False, lora=False)
    x = collate([encode(b.tokenizer, "What is 3 + 1?", "4. The answer is 4."), encode(b.tokenizer, "Hi", "ok")], 0)
    out = s.forward(x, hidden=True)
    logits = b.model(input_ids=x.input_ids, attention_mask=x.attention_mask).logits
    for i in range(2):
        ref = torch.nn.functional.cross_entropy(logits[i, :-1], x.labels[i, 1:], ignore_index=-100)
        assert torch.allclose(out.loss[i], ref, atol=1e-5)
    assert (out.token_loss[x.labels == -100] == 0).all() and (out.token_loss[x.labels != -100] > 0).all()
    assert out.hidden is not None and out.hidden.shape == (2, 32)
    out.loss.sum().backward()
    assert all(p.grad is not None for p in b.model.parameters())


def test_max_paths_per_teacher_keeps_each_teachers_first_paths(tmp_path):
    """Two teachers, the first one's 3 paths first in the file: a per-teacher cap of 1 keeps one of each teacher,
    where ``max_paths: 2`` alone keeps the first teacher's two; filter-rejected paths stay and are not counted."""
    from cotdistill.io import atomic_write_jsonl
    from cotdistill.records import ReasoningPath, path_id, read_paths
    from cotdistill.training.data import load_train_data

    run = RunDir(write_add_run(tmp_path / "r", n_train=4, n_dev=0, paths_per_q=1))
    rows = []
    for p in read_paths(run.filtered):
        for teacher, k, kept in [("gpt", 0, False), ("gpt", 1, True), ("gpt", 2, True), ("smol", 0, True)]:
            rows.append(
                ReasoningPath(**{**p.model_dump(), "id": path_id(p.question_id, teacher, "cot", k), "teacher": teacher,
                                 "sample": k, "checks": {"kept": kept}})
            )  # fmt: skip
    atomic_write_jsonl(run.filtered, rows)

    def kept_by_teacher(**caps):
        data = load_train_data(run, **caps)
        kept = [p for p in data.train_paths if p.checks["kept"]]
        return sorted({t: sum(p.teacher == t for p in kept) for t in ("gpt", "smol")}.items()), len(data.train_paths)

    assert kept_by_teacher(max_paths=2) == ([("gpt", 8), ("smol", 0)], 12)
    assert kept_by_teacher(max_paths_per_teacher=1) == ([("gpt", 4), ("smol", 4)], 12)
    assert kept_by_teacher(max_paths=1, max_paths_per_teacher=1) == ([("gpt", 4), ("smol", 0)], 8)
    assert kept_by_teacher() == ([("gpt", 8), ("smol", 4)], 16)


def test_bf16_auto_on_a_cpu_follows_its_bf16_kernels(monkeypatch):
    """``train.bf16: auto`` autocasts on a CPU only where it has bf16 kernels (AVX512 or Arm bf16): on an AVX2-only
    CPU autocast runs reference kernels, 0.03x fp32 for SmolLM2 + LoRA (docs/benchmarks.md). true/false force it."""
    from cotdistill.training import loop

    cpu = torch.device("cpu")
    assert loop.use_bf16("auto", cpu) is loop.cpu_has_fast_bf16()  # this machine's own answer
    for fast in (True, False):
        monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert loop.use_bf16("auto", cpu) is fast
        assert loop.use_bf16(True, cpu) is True and loop.use_bf16(False, cpu) is False
