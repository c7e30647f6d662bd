"""Scaling knobs that run on this CPU for real: gradient checkpointing, students on their own devices, QLoRA
(4-bit NF4 through bitsandbytes' CPU backend). What needs CUDA is skipped with a reason naming it."""

from __future__ import annotations

import json

import pytest
import torch

from cotdistill.config import load_config
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from trainutil import tiny_hf_llama, write_add_run, write_config

LLAMA = {"name": "s", "kind": "preset", "preset": "tiny-llama", "lr": 3e-3,
         "size": {"vocab": 300, "d_model": 32, "n_head": 2, "n_kv_head": 1, "d_ff": 64, "n_layer": 2,
                  "n_positions": 128}}  # fmt: skip


def _losses(run) -> list[float]:
    return [json.loads(x)["losses"]["total"] for x in run.log("train_metrics").read_text().splitlines()]


def test_gradient_checkpointing_leaves_the_losses_equal(tmp_path):
    out = {}
    for gc in (False, True):
        root = write_add_run(tmp_path / f"gc{gc}", n_train=12, n_dev=0)
        cfg = load_config(write_config(tmp_path / f"c{gc}.yaml", [LLAMA], epochs=2, batch_size=4,
                                       gradient_checkpointing=gc))  # fmt: skip
        train(RunDir.at(root), cfg)
        out[gc] = _losses(RunDir.at(root))
    assert len(out[True]) == len(out[False]) == 12  # 24 examples, batches of 4, 2 epochs
    assert out[True] == pytest.approx(out[False], abs=1e-5)


def test_two_students_on_their_own_cpu_devices_still_train(tmp_path):
    root = write_add_run(tmp_path / "run", n_train=12, n_dev=0)
    students = [{**LLAMA, "name": "a", "device": "cpu"}, {**LLAMA, "name": "b", "device": "cpu:0"}]
    cfg = load_config(write_config(tmp_path / "c.yaml", students, epochs=2, batch_size=4))
    summary = train(RunDir.at(root), cfg)
    losses = [json.loads(x)["losses"] for x in RunDir.at(root).log("train_metrics").read_text().splitlines()]
    assert summary["steps"] == 12 and all(set(r) == {"ce/a", "ce/b", "total"} for r in losses)
    assert losses[-1]["ce/a"] < losses[0]["ce/a"] and losses[-1]["ce/b"] < losses[0]["ce/b"]


def test_qlora_trains_every_lora_layer_on_this_cpu(tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (make installs the dev set)")
    from safetensors.torch import load_file

    base = tmp_path / "tiny-llama"
    tiny_hf_llama(base)
    root = write_add_run(tmp_path / "run", n_train=8, n_dev=4)
    student = {"name": "q", "kind": "hf", "path": str(base), "lr": 5e-3,
               "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
               "quantization": {"bits": 4, "quant_type": "nf4", "double_quant": True}}  # fmt: skip
    # dev_metric accuracy: an eval-mode forward between epochs (bitsandbytes' CPU path used to repack there)
    cfg = load_config(write_config(tmp_path / "c.yaml", [student], epochs=2, batch_size=4, dev_metric="accuracy",
                                   dev_max_new_tokens=4))  # fmt: skip
    summary = train(RunDir.at(root), cfg)
    assert summary["steps"] == 8 and all(x == x for x in _losses(RunDir.at(root)))  # finite
    saved = tmp_path / "run" / "students" / "q"
    assert (saved / "adapter_config.json").exists()  # a 4-bit base is never merged: the adapter is saved
    weights = load_file(str(saved / "adapter_model.safetensors"))
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert len(lora_b) == 4 and all(float(v.abs().sum()) > 0 for v in lora_b.values())  # every layer learned


def test_qlora_config_needs_hf_and_lora():
    from cotdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="quantization needs kind: hf and a lora section"):
        load_config(None, ['students=[{"name": "s", "kind": "gguf", "path": "smollm2", "quantization": {}}]'])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: bitsandbytes' 4-bit CUDA kernels")
def test_qlora_on_cuda(tmp_path):  # pragma: no cover - no GPU here
    test_qlora_trains_every_lora_layer_on_this_cpu(tmp_path)


def test_qlora_gradients_reach_every_lora_layer_after_an_eval_forward(tmp_path):
    """bitsandbytes' CPU path repacks 4-bit weights for inference after an eval-mode forward on AVX512-BF16 CPUs;
    backward through a repacked layer then drops its LoRA gradients. cotdistill keeps the training layout."""
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (make installs the dev set)")
    from cotdistill.config import StudentConfig
    from cotdistill.students import build_student

    base = tmp_path / "tiny-llama"
    tiny_hf_llama(base)
    sc = StudentConfig(name="q", kind="hf", path=str(base), lora={"r": 4, "alpha": 8}, quantization={})
    built = build_student(sc)
    model, tok = built.model, built.tokenizer
    ids = torch.tensor([tok("What is 2 + 3? 5")["input_ids"]])
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_B" in n}
    assert len(grads) == 14  # all-linear: 7 projections x 2 layers
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads.values())
