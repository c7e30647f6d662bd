"""Tiny runs for the training tests: an easy arithmetic set written straight into a run directory."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Question, path_id
from cotdistill.records import ReasoningPath as PathRec


def write_add_run(root: Path, n_train: int = 60, n_dev: int = 20, paths_per_q: int = 2, seed: int = 0) -> Path:
    """``What is A + B?`` with single digits; each train question gets ``paths_per_q`` phrasings of the sum."""
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(10) for b in range(10)]
    rng.shuffle(pairs)
    qs, ps = [], []
    for i, (a, b) in enumerate(pairs[: n_train + n_dev]):
        split = "train" if i < n_train else "dev"
        q = Question(id=f"q{i}", task="math", question=f"What is {a} + {b}?", gold=str(a + b), split=split)
        qs.append(q)
        texts = [f"{a} + {b} = {a + b}. The answer is {a + b}.", f"We add {a} and {b}: {a + b}. The answer is {a + b}."]
        for k in range(paths_per_q):
            ps.append(
                PathRec(
                    id=path_id(q.id, "t", "cot", k), question_id=q.id, teacher="t", style="cot", sample=k,
                    text=texts[k % len(texts)], answer=str(a + b), checks={"kept": True},
                )
            )  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(root / "questions.jsonl", qs)
    atomic_write_jsonl(root / "filtered.jsonl", ps)
    return root


def write_config(path: Path, students: list[dict], **train: object) -> Path:
    """A run config with the given students and train settings (trackers off, fp32 unless asked)."""
    cfg = {"seed": 0, "students": students, "prompt": "bare", "train": {"trackers": [], "bf16": False, **train}}
    path.write_text(yaml.safe_dump(cfg))
    return path


TINY = {"name": "s", "kind": "preset", "preset": "tiny-gpt2", "size": {"vocab": 300, "d_model": 32, "n_head": 2,
        "d_ff": 64, "n_layer": 1, "n_positions": 128}}  # fmt: skip


def write_succ_run(root: Path, n_train: int = 60, n_dev: int = 20, seed: int = 0) -> Path:
    """An easy lab-like set, ``What is N + 1?`` for two-digit N (dev numbers unseen), two phrasings per question."""
    rng = random.Random(seed)
    ns = list(range(10, 100))
    rng.shuffle(ns)
    qs, ps = [], []
    for i, n in enumerate(ns[: n_train + n_dev]):
        q = Question(id=f"q{i}", task="math", question=f"What is {n} + 1?", gold=str(n + 1),
                     split="train" if i < n_train else "dev")  # fmt: skip
        qs.append(q)
        texts = [f"{n} + 1 = {n + 1}. The answer is {n + 1}.", f"One more than {n} is {n + 1}. The answer is {n + 1}."]
        for k, t in enumerate(texts):
            ps.append(PathRec(id=path_id(q.id, "t", "cot", k), question_id=q.id, teacher="t", style="cot", sample=k,
                              text=t, checks={"kept": True}))  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(root / "questions.jsonl", qs)
    atomic_write_jsonl(root / "filtered.jsonl", ps)
    return root


def tiny_hf_llama(path: Path) -> None:
    """A 2-layer Llama with a trained 300-token tokenizer saved as a local Hugging Face model directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cotdistill.students.tokenizer import train_tokenizer

    tok = train_tokenizer([f"What is {a} + {b}? {a + b}" for a in range(10) for b in range(10)], 300)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=1, eos_token_id=1, pad_token_id=0)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    assert AutoTokenizer.from_pretrained(path).chat_template
