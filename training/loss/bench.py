"""Time the pruned RNN-T recipe on one CPU thread: ``python -m training.loss.bench``.

Default shape: B=8 utterances, T=200 encoder frames, S=30 labels, V=500 tokens, joiner
dim 256, s_range=5 (the encoder and decoder are random tensors, the joiner is tanh + a
linear layer). Prints milliseconds per call, forward plus backward.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from training.loss.recursion import mutual_information_recursion
from training.loss.rnnt import (
    do_rnnt_pruning,
    get_rnnt_prune_ranges,
    rnnt_loss,
    rnnt_loss_pruned,
    rnnt_loss_smoothed,
)


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--labels", type=int, default=30)
    ap.add_argument("--vocab", type=int, default=500)
    ap.add_argument("--s-range", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also time the unpruned loss (slow)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    B, T, S, V, D = args.batch, args.frames, args.labels, args.vocab, 256
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(B, T, D, generator=g, requires_grad=True)
    dec = torch.randn(B, S + 1, D, generator=g, requires_grad=True)
    w = torch.randn(D, V, generator=g) * 0.1
    symbols = torch.randint(1, V, (B, S), generator=g)
    lens_s = torch.randint(2 * S // 3, S + 1, (B,), generator=g)
    lens_t = torch.randint(3 * T // 4, T + 1, (B,), generator=g)
    lens_s[0], lens_t[0] = S, T
    zeros = torch.zeros(B, dtype=torch.int64)
    boundary = torch.stack([zeros, zeros, lens_s, lens_t], dim=1)
    grads: dict[str, torch.Tensor] = {}

    def simple() -> None:
        loss, (px_grad, py_grad) = rnnt_loss_smoothed(
            dec @ w, enc @ w, symbols, 0, 0.25, 0.0, boundary, return_grad=True
        )
        loss.backward()
        grads.update(px=px_grad, py=py_grad)

    simple()
    ranges = get_rnnt_prune_ranges(grads["px"], grads["py"], boundary, args.s_range)

    def pruned() -> None:
        am, lm = do_rnnt_pruning(enc, dec, ranges)
        rnnt_loss_pruned(torch.tanh(am + lm) @ w, symbols, ranges, 0, boundary).backward()

    def recursion() -> None:
        px = torch.randn(B, S, T + 1, generator=g)
        py = torch.randn(B, S + 1, T, generator=g)
        mutual_information_recursion(px, py, boundary, return_grad=True)

    print(f"B={B} T={T} S={S} V={V} s_range={args.s_range}, 1 thread, ms per call:")
    print(f"  rnnt_loss_smoothed + occupations, fwd+bwd: {_time(simple, args.repeats):8.1f}")
    ranges_ms = _time(
        lambda: get_rnnt_prune_ranges(grads["px"], grads["py"], boundary, args.s_range),
        args.repeats,
    )
    print(f"  get_rnnt_prune_ranges:                     {ranges_ms:8.1f}")
    print(f"  pruned joiner + rnnt_loss_pruned, fwd+bwd: {_time(pruned, args.repeats):8.1f}")
    print(f"  recursion alone, forward-backward:         {_time(recursion, args.repeats):8.1f}")
    if args.full:

        def full() -> None:
            logits = torch.tanh(enc.unsqueeze(2) + dec.unsqueeze(1)) @ w
            rnnt_loss(logits, symbols, 0, boundary).backward()

        print(f"  full joiner + rnnt_loss, fwd+bwd:          {_time(full, 1):8.1f}")


if __name__ == "__main__":
    main()
