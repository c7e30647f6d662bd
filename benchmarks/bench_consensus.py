"""Does graph consensus computed WITHOUT gold separate wrong-answer paths from right ones? (acceptance: AUROC >= 0.9)

Real data: ../shared/data/svamp-multipath/train.json (350 SVAMP questions x 10 teacher paths). Embeddings come from
the packaged all-MiniLM-L6-v2 and are cached (``--cache``), so a second run only recomputes the graphs.
Prints AUROC per variant side by side, plus the answer-only baseline (majority vote, no embeddings).

    PYTHONPATH=src python benchmarks/bench_consensus.py [--data FILE] [--questions N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cotdistill.embeddings import Encoder
from cotdistill.quality.consensus import auroc, consensus_scores
from cotdistill.records import load_questions, read_paths
from cotdistill.sources.importers import ImportOptions, run_import
from cotdistill.tasks import get_family

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "svamp-multipath" / "train.json")
    ap.add_argument("--questions", type=int, default=0, help="use only the first N questions (0: all)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cotdistill-bench-consensus-cache")
    ap.add_argument("--encoder", default="minilm")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_import("mcc-kd", args.data, Path(tmp), ImportOptions())
        questions = load_questions(Path(tmp) / "questions.jsonl")
        by_q: dict[str, list] = defaultdict(list)
        for p in read_paths(Path(tmp) / "paths.jsonl"):
            by_q[p.question_id].append(p)
    qids = list(by_q)[: args.questions or None]
    fam = get_family("math")
    enc = Encoder(args.encoder, cache_dir=args.cache)
    texts = [p.text for q in qids for p in by_q[q]]
    t0 = time.perf_counter()
    cached_before = len(enc.cache) if enc.cache else 0
    emb_all = enc.encode(texts, batch_size=64)
    t_emb = time.perf_counter() - t0
    enc.close()

    variants = {
        "degree  delta=0.5 eta=1 (default)": dict(delta=0.5, eta=1.0, centrality="degree"),
        "pagerank delta=0.5 eta=1": dict(delta=0.5, eta=1.0, centrality="pagerank"),
        "degree  delta=0.7 eta=1": dict(delta=0.7, eta=1.0, centrality="degree"),
        "degree  delta=0.5 eta=0": dict(delta=0.5, eta=0.0, centrality="degree"),
    }
    results: dict[str, list[float]] = {k: [] for k in variants}
    plain_sim: list[float] = []  # no answer information at all: similarity degree only
    vote_share: list[float] = []  # no embeddings: share of paths agreeing with this path's answer
    truth: list[bool] = []
    row = 0
    t0 = time.perf_counter()
    for qid in qids:
        paths = by_q[qid]
        q = questions[qid]
        answers = [fam.extract(p.text, q, lenient=True) for p in paths]
        emb = emb_all[row : row + len(paths)]
        row += len(paths)
        truth += [fam.equivalent(a, q.gold) for a in answers]
        for name, kw in variants.items():
            c, _ = consensus_scores(emb, answers, fam.equivalent, correct=None, **kw)
            results[name] += c
        sim = np.maximum(0.0, emb @ emb.T - 0.5)
        np.fill_diagonal(sim, 0.0)
        deg = sim.sum(axis=1)
        plain_sim += list(deg / deg.max() if deg.max() > 0 else deg)
        for a in answers:
            vote_share.append(sum(1 for b in answers if a is not None and b is not None and fam.equivalent(a, b)))
    t_graph = time.perf_counter() - t0

    n_pos = sum(truth)
    print(f"data: {args.data} | questions: {len(qids)} | paths: {len(truth)} | right answers: {n_pos}")
    print(f"embedding: {len(texts)} texts in {t_emb:.1f}s ({cached_before} cached before) | graphs: {t_graph:.1f}s")
    print("AUROC of consensus computed WITHOUT gold (positive = path's answer equals gold):")
    for name, scores in results.items():
        print(f"  {name:<36} {auroc(scores, truth):.4f}")
    print(f"  {'baseline: similarity degree only':<36} {auroc(plain_sim, truth):.4f}")
    print(f"  {'baseline: answer vote share only':<36} {auroc(vote_share, truth):.4f}")


if __name__ == "__main__":
    main()
