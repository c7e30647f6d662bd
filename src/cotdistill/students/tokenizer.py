"""The byte-level BPE tokenizer a from-scratch preset student trains on the run's text, and its chat template."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PAD, EOS, USER, ASSISTANT = "<|pad|>", "<|endoftext|>", "<|user|>", "<|assistant|>"
# Presets get a minimal chat template so training and evaluation format prompts the same way for every student.
PRESET_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}" + USER + "{{ m['content'] }}" + ASSISTANT + ""
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, cache_dir: Path | None = None) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (special tokens: pad, EOS, user/assistant markers).

    Saved as a ``PreTrainedTokenizerFast`` with a chat template; cached under ``cache_dir`` keyed by a digest of
    the texts and vocabulary size, so a resumed or repeated run (and every DDP rank) uses the identical tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    texts = list(texts)
    digest = hashlib.sha256(f"v2\0{vocab_size}\0".encode() + "\0".join(texts).encode()).hexdigest()[:16]
    target = cache_dir / f"bpe-{vocab_size}-{digest}" if cache_dir is not None else None
    if target is not None and (target / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(target)
    tok = Tokenizer(models.BPE())
    # digits one by one (as Llama does): numbers stay composable instead of becoming arbitrary merged tokens
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, EOS, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS)
    fast.chat_template = PRESET_CHAT_TEMPLATE
    if target is None:
        return fast
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    fast.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race: use its copy
        pass
    return AutoTokenizer.from_pretrained(target)
