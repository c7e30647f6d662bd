"""What QR-Distill prepares before training: the router's path embeddings and the peer maps' calibration batch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from cotdistill.students.encoding import collate, encode, pad_id
from cotdistill.training.methods.base import Example, StudentHandle


def hidden_size(model: torch.nn.Module) -> int:
    """A causal LM's hidden size (the text config's, for multimodal configs)."""
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return int(text_cfg.hidden_size)


def embed_paths(encoder_name: str, cache: Path, examples: list[Example]) -> dict[str, torch.Tensor]:
    """Question and path text embedded separately (the path's vector is shared with the filter's consensus
    cache, so a filtered run embeds nothing twice), concatenated per path id."""
    from cotdistill.embeddings import Encoder

    enc = Encoder(encoder_name, cache_dir=cache)
    qtexts = sorted({e.question.question for e in examples})
    qvec = dict(zip(qtexts, enc.encode(qtexts), strict=True))
    pvec = enc.encode([e.target for e in examples])
    return {
        e.path.id: torch.from_numpy(np.concatenate([qvec[e.question.question], pvec[i]]))  # type: ignore[union-attr]
        for i, e in enumerate(examples)
    }


def encoder_dim(encoder_name: str) -> int:
    """The router's input size: the question's and the path's embeddings side by side."""
    from cotdistill.embeddings import Encoder

    return 2 * int(Encoder(encoder_name).dim)


def calibration_states(
    students: list[StudentHandle], examples: list[Example], k: int, seed: int, max_length: int, chunk: int = 16
) -> list[torch.Tensor]:
    """Each student's response-pooled last hidden states on the same ``k`` seeded examples (no grad, eval mode),
    as ``[k, H_s]``: the batch the peer maps are fitted on. Every process computes the same batch.

    Only examples within ``max_length`` tokens for every student are drawn (the ones training keeps): a path of
    1,500 tokens in a chunk would pad all sixteen to its length, and the peer maps are for the paths trained on.
    """
    rng = random.Random(seed + 104729)
    order = rng.sample(examples, len(examples))
    chosen, items = [], {st.name: [] for st in students}  # type: ignore[var-annotated]
    for e in order:
        if len(chosen) == k:
            break
        enc = {st.name: encode(st.tokenizer, e.prompt, e.target) for st in students}
        if all(len(x) <= max_length for x in enc.values()):
            chosen.append(e)
            for name, x in enc.items():
                items[name].append(x)
    by_len = sorted(range(len(chosen)), key=lambda i: max(len(x[i]) for x in items.values()))  # less padding
    out = []
    for st in students:
        rows = [items[st.name][i] for i in by_len]
        was = st.model.training
        st.model.eval()
        parts = []
        with torch.no_grad():
            for i in range(0, len(rows), chunk):
                hid = st.forward(collate(rows[i : i + chunk], pad_id(st.tokenizer)), hidden=True).hidden
                assert hid is not None
                parts.append(hid.float().cpu())
        st.model.train(was)
        out.append(torch.cat(parts))
    return out
