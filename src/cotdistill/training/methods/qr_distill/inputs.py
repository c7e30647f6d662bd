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
    students: list[StudentHandle], examples: list[Example], k: int, seed: int, chunk: int = 16
) -> list[torch.Tensor]:
    """Each student's response-pooled last hidden states on the same ``k`` seeded examples (no grad, eval mode),
    as ``[k, H_s]``: the batch the peer maps are fitted on. Every process computes the same batch."""
    rng = random.Random(seed + 104729)
    chosen = rng.sample(examples, min(k, len(examples)))
    out = []
    for st in students:
        items = [encode(st.tokenizer, e.prompt, e.target) for e in chosen]
        was = st.model.training
        st.model.eval()
        parts = []
        with torch.no_grad():
            for i in range(0, len(items), chunk):
                hid = st.forward(collate(items[i : i + chunk], pad_id(st.tokenizer)), hidden=True).hidden
                assert hid is not None
                parts.append(hid.float().cpu())
        st.model.train(was)
        out.append(torch.cat(parts))
    return out
