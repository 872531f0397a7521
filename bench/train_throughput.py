"""Training throughput on CPU: seconds of audio trained per wall-clock second and peak memory
(RSS), per model size, on one fixed synthetic batch (random fbank, random character targets).

    .venv/bin/python bench/train_throughput.py --sizes tiny,xsmall,small,medium --steps 3

Each size runs in its own process so its peak RSS is its own. A step is forward (pruned RNN-T
loss, icefall's post-warm-up scales) + backward + ScaledAdam step, in training mode.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Row:
    size: str
    params_m: float
    batch_audio_s: float
    step_s: float
    audio_s_per_s: float
    peak_rss_mb: float


def _run(
    size: str, steps: int, batch_seconds: float, utt_seconds: float, vocab: int, threads: int
) -> Row:
    import torch

    from training.model.config import preset
    from training.model.transducer import Transducer
    from training.optim import ScaledAdam

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Transducer(preset(size, vocab_size=vocab)).train()
    params = sum(p.numel() for p in model.parameters())
    n = max(1, round(batch_seconds / utt_seconds))
    frames = int(utt_seconds * 100)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, frames, 80, generator=g)
    x_lens = torch.full((n,), frames, dtype=torch.int64)
    chars = max(1, int(utt_seconds * 4))  # ~4 Mandarin characters per second
    y = torch.randint(3, vocab, (n, chars), generator=g).tolist()
    opt = ScaledAdam(list(model.named_parameters()), lr=0.045, clipping_scale=2.0)
    s_scale, p_scale = 0.5, 1.0  # icefall's scales after the warm-up

    def step() -> None:
        simple, pruned, _ = model(x, x_lens, y)
        (s_scale * simple + p_scale * pruned).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (allocations, oneDNN kernels)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    audio = n * utt_seconds
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Row(size, params / 1e6, audio, dt, audio / dt, rss_mb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="tiny,xsmall,small,medium")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--batch-seconds", type=float, default=40.0)
    ap.add_argument("--utt-seconds", type=float, default=5.0)
    ap.add_argument("--vocab", type=int, default=3700)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print rows as JSON lines too")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for size in [s for s in args.sizes.split(",") if s]:
        with ctx.Pool(1) as pool:
            rows.append(
                pool.apply(
                    _run,
                    (
                        size,
                        args.steps,
                        args.batch_seconds,
                        args.utt_seconds,
                        args.vocab,
                        args.threads,
                    ),
                )
            )
    print(
        f"batch: {args.batch_seconds:g} s of audio ({args.utt_seconds:g} s utterances), "
        f"vocab {args.vocab}, {args.threads} threads, {args.steps} timed steps"
    )
    print(f"{'size':<8} {'params(M)':>9} {'step(s)':>8} {'audio s/s':>10} {'peak RSS(MB)':>13}")
    for r in rows:
        print(
            f"{r.size:<8} {r.params_m:>9.2f} {r.step_s:>8.2f} {r.audio_s_per_s:>10.2f} "
            f"{r.peak_rss_mb:>13.0f}"
        )
    if args.json:
        import json

        for r in rows:
            print(json.dumps(asdict(r)))


if __name__ == "__main__":
    main()
