"""Eval generation throughput: batched greedy decoding (length-sorted, left-padded) vs one prompt at a time.

Both sides run in this one process on the same tiny config-built GPT-2 student, the same prompts (lengths spread
over 8..120 tokens) and the same ``max_new_tokens``; prints generated tokens/s of each and the ratios.

    PYTHONPATH=src python benchmarks/bench_eval_batching.py [--prompts 64] [--batch 16] [--new 32]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from cotdistill.students.generate import generate as greedy_generate

WORDS = "the a one two three four five apples pears sum of and plus minus how many more has had gives left".split()


def build(seed: int) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast, list[str]]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 120))) for _ in range(400)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<eos>", "<pad>"], initial_alphabet=alphabet)
    tok.train_from_iterator(texts, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(seed)
    eos, pad = hf_tok.eos_token_id, hf_tok.pad_token_id
    cfg = GPT2Config(
        vocab_size=len(hf_tok), n_positions=256, n_embd=256, n_layer=4, n_head=4, bos_token_id=eos, eos_token_id=eos
    )
    cfg.pad_token_id = pad
    return GPT2LMHeadModel(cfg).eval(), hf_tok, texts


def timed(fn) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model, tok, texts = build(a.seed)
    prompts = texts[: a.prompts]
    greedy_generate(model, tok, prompts[:2], 4, 2)  # warm-up
    runs = {
        "one at a time": lambda: greedy_generate(model, tok, prompts, a.new, 1),
        f"batched {a.batch}, file order": lambda: greedy_generate(
            model, tok, prompts, a.new, a.batch, sort_by_length=False
        ),
        f"batched {a.batch}, length-sorted": lambda: greedy_generate(model, tok, prompts, a.new, a.batch),
    }
    rates = {}
    texts_by = {}
    for name, fn in runs.items():
        secs, gens = timed(fn)
        toks = sum(g.n_tokens for g in gens)
        rates[name] = toks / secs
        texts_by[name] = [g.text for g in gens]
        print(f"{name:32s} {toks:6d} tokens in {secs:7.2f} s = {rates[name]:8.1f} tokens/s")
    names = list(runs)
    same = sum(x == y for x, y in zip(texts_by[names[0]], texts_by[names[2]], strict=True))
    print(f"identical generations (one-at-a-time vs sorted batches): {same}/{len(prompts)}")
    print(f"ratio sorted-batched / one-at-a-time: {rates[names[2]] / rates[names[0]]:.2f}x")
    print(f"ratio sorted-batched / file-order-batched: {rates[names[2]] / rates[names[1]]:.2f}x")


if __name__ == "__main__":
    main()
