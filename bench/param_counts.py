"""Parameter counts of the Zipformer2 transducer presets, compared with icefall's published
figures (egs/librispeech/ASR/RESULTS.md, zipformer, 500-class BPE).

    .venv/bin/python bench/param_counts.py [--vocab 500 --vocab 5000]

Models are built on torch's "meta" device, so nothing is allocated and it takes ~1 s.
"""

from __future__ import annotations

import argparse

import torch

from training.model.config import preset
from training.model.transducer import Transducer

# (preset, causal) -> icefall's published count with vocab 500.
PUBLISHED = {
    ("small", False): 23_285_615,
    ("medium", False): 65_549_011,
    ("large", False): 148_439_574,
    ("medium", True): 66_110_931,
}


def count(name: str, vocab_size: int, causal: bool) -> int:
    with torch.device("meta"):
        model = Transducer(preset(name, vocab_size=vocab_size, causal=causal))
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, action="append", help="vocab sizes (default 500, 5000)")
    args = ap.parse_args()
    vocabs = args.vocab or [500, 5000]
    print(f"{'preset':8} {'causal':6} {'vocab':>6} {'params':>13} {'icefall':>13}  match")
    for name in ("tiny", "xsmall", "small", "medium", "large"):
        for causal in (False, True):
            for vocab in vocabs:
                n = count(name, vocab, causal)
                pub = PUBLISHED.get((name, causal)) if vocab == 500 else None
                ref = f"{pub:>13,}" if pub else f"{'-':>13}"
                ok = "" if pub is None else ("yes" if pub == n else "NO")
                print(f"{name:8} {causal!s:6} {vocab:>6} {n:>13,} {ref}  {ok}")


if __name__ == "__main__":
    main()
