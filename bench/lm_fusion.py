"""Benchmark: what LM fusion adds to one step of modified beam search.

    .venv/bin/python bench/lm_fusion.py                      # models/default tokens + lm.arpa
    .venv/bin/python bench/lm_fusion.py --lm exp/lm/voice4.arpa --hyps 4 --frames 5000

Times, per encoder frame of one stream, the choice of the next ``beam`` paths from ``hyps``
rows of joiner log-probabilities: the plain ``serving.engine.search.top_k`` against
``LmFusion.top`` (argpartition of each row, then the n-gram gain of its best tokens). Histories
are drawn from the LM's own vocabulary and change every frame, so the gain cache is exercised
as in a real search. Times are this process's CPU time (one thread), so other jobs on the
machine stretch them less than wall time. Prints medians over repeats, the ratio, and the added
real-time factor at the encoder's 25 frames per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.engine.search import top_k  # noqa: E402
from serving.lm import LmFusion, NgramLM  # noqa: E402
from serving.tokens import TokenTable  # noqa: E402

FRAMES_PER_SECOND = 25  # Zipformer2 encoder output rate (40 ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=Path, default=REPO / "models/default/tokens.txt")
    ap.add_argument("--lm", type=Path, default=REPO / "models/default/lm.arpa")
    ap.add_argument("--hyps", type=int, default=4, help="hypotheses per stream (beam)")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    table = TokenTable.load(args.tokens)
    t0 = time.perf_counter()
    lm = NgramLM.from_arpa(args.lm, table)
    load_s = time.perf_counter() - t0
    fusion = LmFusion(lm)
    rng = np.random.default_rng(0)
    vocab = len(table)
    # peaky rows, like a trained joiner's
    rows = [np.log(rng.dirichlet(np.full(vocab, 0.05), size=args.hyps) + 1e-12) for _ in range(64)]
    known = [t for t in lm.unigram_tokens() if t > 2]  # characters, not <unk>
    hists = [
        [tuple(rng.choice(known, size=10)) for _ in range(args.hyps)] for _ in range(args.frames)
    ]
    skip = frozenset({0, table.unk_id})
    plain, fused = [], []
    for _ in range(args.repeats):
        t0 = time.process_time()
        for i in range(args.frames):
            top_k(rows[i % 64], args.hyps)
        plain.append((time.process_time() - t0) / args.frames)
        t0 = time.process_time()
        for i in range(args.frames):
            fusion.top(rows[i % 64], hists[i], args.hyps, skip)
        fused.append((time.process_time() - t0) / args.frames)
    p, f = statistics.median(plain), statistics.median(fused)
    print(f"LM {args.lm} ({len(lm):,} n-grams, order {lm.order}), loaded in {load_s:.2f} s")
    print(f"{'search step':<22}{'us/frame':>10}{'RTF':>10}")
    print(f"{'plain top-k':<22}{p * 1e6:>10.1f}{p * FRAMES_PER_SECOND:>10.5f}")
    print(f"{'LM fusion':<22}{f * 1e6:>10.1f}{f * FRAMES_PER_SECOND:>10.5f}")
    print(f"ratio {f / p:.2f}; LM adds {(f - p) * FRAMES_PER_SECOND:.5f} to the real-time factor")


if __name__ == "__main__":
    main()
