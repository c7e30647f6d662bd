"""Graph consensus (METHODS.md §2a), the packaged encoder, and the on-disk embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from cotdistill.embeddings import EmbeddingCache, Encoder, default_encoder_path, resolve_encoder_path
from cotdistill.errors import ConfigError
from cotdistill.quality.consensus import answer_groups, auroc, consensus_scores, edge_weights, pagerank


def _unit(rows: list[list[float]]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def same(a: str, b: str) -> bool:
    return float(a) == float(b)


def test_edge_weights_follow_the_formula() -> None:
    emb = _unit([[1, 0], [0.8, 0.6], [0, 1]])
    w = edge_weights(emb, [0, 0, 1], delta=0.5, eta=1.0)
    # cos(0,1) = 0.8 -> (0.8 - 0.5) * (1 + 1); cos(0,2) = 0 -> 0; cos(1,2) = 0.6 -> (0.6 - 0.5) * 1
    assert w[0, 1] == pytest.approx(0.6)
    assert w[0, 2] == 0.0
    assert w[1, 2] == pytest.approx(0.1)
    assert np.allclose(w, w.T) and np.all(np.diag(w) == 0)


def test_mainstream_paths_score_high_and_wrong_answers_zero() -> None:
    rng = np.random.default_rng(0)
    center = rng.normal(size=16)
    main = [center + 0.2 * rng.normal(size=16) for _ in range(5)]
    odd = [rng.normal(size=16) for _ in range(2)]
    emb = _unit([*main, *odd])
    answers = ["7", "7", "7", "7.0", "7", "3", None]
    c, majority = consensus_scores(emb, answers, same, correct=None)
    assert majority == "7"
    assert max(c) == pytest.approx(1.0)
    assert all(x > 0.5 for x in c[:5])
    assert c[5] == 0.0 and c[6] == 0.0  # minority answer and no answer
    # with gold: the gold verdicts decide, whatever the majority says
    c_gold, _ = consensus_scores(emb, answers, same, correct=[False] * 5 + [True, False])
    assert c_gold[:5] == [0.0] * 5 and c_gold[5] == 1.0


def test_majority_tie_goes_to_the_more_central_group() -> None:
    rng = np.random.default_rng(1)
    center = rng.normal(size=8)
    emb = _unit([center + 0.1 * rng.normal(size=8), center + 0.1 * rng.normal(size=8), rng.normal(size=8), -center])
    c, majority = consensus_scores(emb, ["1", "1", "2", "2"], same, correct=None)
    assert majority == "1" and c[2] == c[3] == 0.0


def test_pagerank_and_degenerate_graphs() -> None:
    w = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=float)
    r = pagerank(w)
    assert r.sum() == pytest.approx(1.0) and r[0] > r[1] == pytest.approx(r[2])
    emb = _unit([[1, 0], [0, 1]])  # no edges at all: nothing speaks against either path
    c, _ = consensus_scores(emb, ["1", "2"], same, correct=[True, True], centrality="pagerank")
    assert c == [1.0, 1.0]
    c1, _ = consensus_scores(_unit([[1, 0]]), ["5"], same, correct=None)
    assert c1 == [1.0]
    assert consensus_scores(np.zeros((0, 2)), [], same) == ([], None)
    assert answer_groups(["1", "1.0", None, "2"], same) == [0, 0, -1, 1]


def test_auroc_matches_hand_computation() -> None:
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        auroc([1.0], [True])


def test_packaged_minilm_loads_offline_and_embeds_meaningfully() -> None:
    assert (default_encoder_path() / "modules.json").exists()
    enc = Encoder("minilm")
    v = enc.encode(["Tom has 3 apples and buys 2 more.", "Tom had three apples, then bought two.", "The sky is blue."])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_unknown_encoder_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a local sentence-transformers model directory"):
        resolve_encoder_path(str(tmp_path / "nope"))


def test_embedding_cache_survives_reopen_and_a_torn_write(tmp_path) -> None:
    c = EmbeddingCache(tmp_path / "e", 4)
    c.put("a", np.ones(4))
    c.put("b", np.arange(4))
    c.flush()
    c.close()
    # a kill after a vector row was appended but before its key: the orphan row is dropped on open
    with open(tmp_path / "e" / "vectors.f32", "ab") as f:
        f.write(np.full(4, 9, dtype=np.float32).tobytes())
    with open(tmp_path / "e" / "keys.txt", "a") as f:
        f.write("torn-key-without-newl")
    c2 = EmbeddingCache(tmp_path / "e", 4)
    assert len(c2) == 2
    assert c2.get("b").tolist() == [0, 1, 2, 3] and c2.get("a").tolist() == [1, 1, 1, 1]
    c2.put("c", np.full(4, 2.0))
    c2.flush()
    assert c2.get("c").tolist() == [2, 2, 2, 2]
    c2.close()
    assert len(EmbeddingCache(tmp_path / "e", 4)) == 3


def test_encoder_cache_avoids_recomputation(tmp_path, tiny_encoder) -> None:
    enc = Encoder(str(tiny_encoder), cache_dir=tmp_path)
    texts = ["one two", "three four", "one two"]
    first = enc.encode(texts)
    enc.close()
    enc2 = Encoder(str(tiny_encoder), cache_dir=tmp_path)
    enc2.model = None  # any model call would fail: everything must come from the cache
    assert np.array_equal(enc2.encode(texts), first)
    assert np.array_equal(first[0], first[2])


def test_graph_max_normalisation_compares_across_questions() -> None:
    rng = np.random.default_rng(2)
    center = rng.normal(size=16)
    emb = _unit([center + 0.2 * rng.normal(size=16) for _ in range(10)])
    unanimous = ["4"] * 10
    split = ["4", "4", "4", "1", "2", "3", "5", "6", "7", "8"]  # a weak plurality
    for norm in ("question_max", "graph_max"):
        c_all, _ = consensus_scores(emb, unanimous, same, normalize=norm)
        c_split, maj = consensus_scores(emb, split, same, normalize=norm)
        assert maj == "4" and c_split[3:] == [0.0] * 7
        if norm == "question_max":
            assert max(c_all) == max(c_split) == pytest.approx(1.0)
        else:
            assert min(c_all) > max(c_split) > 0.0
            assert max(c_all) <= 1.0
