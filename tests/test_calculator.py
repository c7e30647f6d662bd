"""The decoding calculator: which tails it computes, and a real tiny model whose wrong sums it corrects."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import torch

from cotdistill.students.calculator import evaluate, format_result, pending_result
from cotdistill.students.encoding import rendered_ids
from cotdistill.students.generate import generate

EOS, PAD = "<|endoftext|>", "<pad>"


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("67 - 35 =", "32"),
        ("so 74 - 5 = ", "69"),
        ("he had $17 - $10 =", "7"),
        ("2 x 67 =", "134"),
        ("2 × 6 ÷ 4 =", "3"),
        ("91,676 - 61,619 =", "30057"),
        ("(3 + 4) * 2 =", "14"),
        ("7 / 2 =", "3.5"),
        ("1/3 =", "0.3333"),
        ("49 - 59 =", "-10"),
        ("2 + 2 = 4 and 4 * 3 =", "12"),
        ("12 + x =", None),  # a variable, not arithmetic
        ("price = ", None),
        ("15 x 13 = 225 feet", None),  # nothing pending
        ("10 / 0 =", None),
        ("a3 + 4 =", None),  # the number is part of a word
        ("((3 + 4) =", None),  # unbalanced
        ("5 =", None),  # no operator
        (" 2 + 3 =", "5"),
    ],
)
def test_pending_result(text, result):
    assert pending_result(text) == result


def test_evaluate_is_exact_and_refuses_code():
    assert evaluate("0.1 + 0.2") == Fraction(3, 10)
    assert evaluate("__import__('os')") is None
    assert evaluate("2 ** 3") is None
    assert format_result(Fraction(-1, 3)) == "-0.3333" and format_result(Fraction(1, 100000)) == "0"


PROMPTS = {
    "What is 2 plus 3?": " 2 + 3 = 9 so it is 9.",
    "What is 4 plus 4?": " It is 8.",
    "What is 7 minus 2?": " 7 - 2 = 1.",
}


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([*PROMPTS, *PROMPTS.values()] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)


@pytest.fixture(scope="module")
def memoriser():
    """A tiny GPT-2 that has memorised a (partly wrong) answer to each prompt."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _tokenizer()
    torch.manual_seed(0)
    ids = {"eos_token_id": tok.eos_token_id, "bos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=64, n_layer=2, n_head=2, **ids)
    model = GPT2LMHeadModel(cfg)
    seqs = [rendered_ids(tok, p) + tok(a)["input_ids"] + [tok.eos_token_id] for p, a in PROMPTS.items()]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok


def test_without_the_calculator_the_memorised_answers_come_back(memoriser):
    model, tok = memoriser
    gens = generate(model, tok, list(PROMPTS), max_new_tokens=20)
    assert [g.text for g in gens] == list(PROMPTS.values())
    assert all(g.calculator_calls == 0 and g.hit_eos for g in gens)


def test_the_calculator_writes_each_result_and_leaves_other_text_alone(memoriser):
    model, tok = memoriser
    gens = generate(model, tok, list(PROMPTS), max_new_tokens=20, calculator=True)
    first, plain, minus = gens
    assert first.text.startswith(" 2 + 3 = 5") and minus.text.startswith(" 7 - 2 = 5")
    for g in (first, minus):  # past the first result the memoriser is off its script; every sum it writes is right
        sums = re.findall(r"(\d+) ([-+]) (\d+) = (-?\d+)", g.text)
        assert len(sums) == g.calculator_calls >= 1
        assert all(int(a) + (1 if op == "+" else -1) * int(b) == int(c) for a, op, b, c in sums)
    assert plain.text == " It is 8." and plain.calculator_calls == 0 and plain.hit_eos
    assert all(g.n_tokens <= 20 and g.mean_logprob < 0 for g in gens)
    # batching (rows stopping in different rounds, left padding) does not change a row
    single = [generate(model, tok, [p], max_new_tokens=20, calculator=True)[0] for p in PROMPTS]
    assert [g.text for g in single] == [g.text for g in gens]
    assert [g.n_tokens for g in single] == [g.n_tokens for g in gens]


def test_results_count_against_the_budget(memoriser):
    model, tok = memoriser
    n_expr = len(tok(" 2 + 3 =")["input_ids"])
    for budget in (n_expr, n_expr + 1, n_expr + 3):
        g = generate(model, tok, ["What is 2 plus 3?"], max_new_tokens=budget, calculator=True)[0]
        assert g.n_tokens <= budget and not g.hit_eos
        assert g.text.startswith(" 2 + 3 =")


def test_base_rows_are_cached_per_calculator_setting():
    from cotdistill.config import RunConfig
    from cotdistill.evaluation.suite import EvalSets
    from cotdistill.stages.eval import _base_key

    sets = EvalSets("test", [])
    keys = {
        _base_key(RunConfig.model_validate({"students": [{"name": "s"}], "eval": {"calculator": on}}), 0, sets, False)
        for on in (False, True)
    }
    assert len(keys) == 2
