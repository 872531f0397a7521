"""How many steps does a transducer need to memorise a handful of utterances?

A training path that works lets a model decode the very utterances it was trained on after
enough full-batch steps; one with a bug (targets paired with the wrong audio, a regulariser
that fights the loss, an optimiser error) stays at a constant hypothesis. This bench trains a
fresh model on the same ``--utts`` utterances in one batch, for each variant, and prints the
greedy CER on those utterances every ``--every`` steps::

    .venv/bin/python bench/memorise.py --kaldi ../shared/datasets/neural-voice-zh/train \
        --utts 8 --steps 200 --variants scaled,adam,adam-eval,scaled-chunks

Variants (joined with ``-``): ``scaled`` (ScaledAdam, lr 0.045) or ``adam`` (torch Adam, lr
1e-3, grad-norm clip 5); ``eval`` trains with the model in eval mode (no dropout, layer
skipping, balancers or whitening); ``chunks`` draws chunk sizes 16/32/64/full as the recipe
does (default: full context only); ``ctc`` adds a character CTC head at scale 0.5; ``norm``
normalises the fbank per bin with the utterances' own mean and std.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOG_EPS = math.log(1e-10)


@dataclass
class Curve:
    variant: str
    cer: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    first_hyp: str = ""


def load_batch(kaldi: Path, n: int, work: Path):
    """The first ``n`` utterances of a Kaldi folder, featurised by the project's pipeline."""
    import numpy as np
    import torch
    from lhotse import load_manifest

    from training.lightning.smoke import make_smoke_corpus

    corpus = make_smoke_corpus(kaldi, kaldi, work, n, 1, corpus="memorise")
    cuts = list(load_manifest(corpus.train_cuts))
    tokens = [line.split()[0] for line in corpus.tokens.read_text("utf-8").splitlines()]
    ids = {t: i for i, t in enumerate(tokens)}
    texts = ["".join(s.text or "" for s in c.supervisions) for c in cuts]
    ys = [[ids[ch] for ch in t if ch in ids] for t in texts]
    feats = [torch.from_numpy(np.asarray(c.load_features(), dtype=np.float32)) for c in cuts]
    lens = torch.tensor([f.shape[0] for f in feats])
    x = torch.full((len(feats), int(lens.max()), feats[0].shape[1]), LOG_EPS)
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f
    return x, lens, ys, texts, tokens


def run_variant(variant: str, batch, steps: int, every: int, seed: int) -> Curve:
    import torch

    from training.decode.search import greedy_search
    from training.model.config import preset
    from training.model.scaling import set_batch_count
    from training.model.transducer import Transducer
    from training.optim import ScaledAdam
    from training.scoring import ErrorCounts, align

    parts = set(variant.split("-"))
    unknown = parts - {"scaled", "adam", "eval", "chunks", "ctc", "norm"}
    if unknown or len(parts & {"scaled", "adam"}) != 1:
        raise SystemExit(
            f"bad variant {variant!r}: name one of scaled/adam plus eval/chunks/ctc/norm"
        )
    x, lens, ys, texts, tokens = batch
    torch.manual_seed(seed)
    random.seed(seed)
    pad = LOG_EPS
    if "norm" in parts:
        valid = torch.cat([x[i, : int(n)] for i, n in enumerate(lens)])
        x = (x - valid.mean(0)) / valid.std(0).clamp(min=1e-3)
        for i, n in enumerate(lens.tolist()):
            x[i, n:] = 0.0
        pad = 0.0
    chunks = (16, 32, 64, -1) if "chunks" in parts else (-1,)
    cfg = preset("tiny", vocab_size=len(tokens), chunk_size=chunks, left_context_frames=(64,),
                 use_ctc="ctc" in parts)  # fmt: skip
    model = Transducer(cfg)
    adam = "adam" in parts
    if adam:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = ScaledAdam(list(model.named_parameters()), lr=0.045, clipping_scale=2.0)
    n = len(ys)
    tail = torch.full((n, 30, x.shape[2]), pad)
    curve = Curve(variant)

    def cer() -> float:
        model.eval()
        with torch.no_grad():
            out, out_lens = model.forward_encoder(torch.cat([x, tail], 1), lens + 30, chunk_size=-1)
            hyps = greedy_search(model, out, out_lens)
        errors = sum(
            ErrorCounts.from_ops(align(t, "".join(tokens[i] for i in h))).errors
            for t, h in zip(texts, hyps, strict=True)
        )
        curve.first_hyp = "".join(tokens[i] for i in hyps[0])
        return errors / max(1, sum(len(t) for t in texts))

    t0 = time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            curve.cer.append((step, cer()))
        if step == steps:
            break
        model.train("eval" not in parts)
        set_batch_count(model, float(step))
        frac = min(1.0, step / 50)  # icefall's warm-up of the pruned loss, over 50 steps
        simple, pruned, ctc = model(x, lens, ys)
        loss = (1 - 0.5 * frac) * simple + (0.1 + 0.9 * frac) * pruned
        if ctc is not None:
            loss = loss + 0.5 * ctc
        opt.zero_grad()
        loss.backward()
        if adam:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    curve.seconds = time.perf_counter() - t0
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kaldi", type=Path, default=Path("../shared/datasets/neural-voice-zh/train"))
    ap.add_argument("--utts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--variants", default="scaled,adam,adam-eval")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not (args.kaldi / "text").is_file():
        raise SystemExit(f"{args.kaldi} is not a Kaldi-style folder (no 'text' file)")
    with tempfile.TemporaryDirectory() as tmp:
        batch = load_batch(args.kaldi, args.utts, Path(tmp))
        audio = float(batch[1].sum()) / 100
        print(f"{len(batch[3])} utterances, {audio:.1f} s of audio, {sum(map(len, batch[3]))} "
              f"characters, {len(batch[4])} tokens; tiny preset, one full batch per step")  # fmt: skip
        steps = list(range(0, args.steps, args.every)) + [args.steps]
        print("\nCER on the training utterances after N steps")
        print(
            f"{'variant':<20}"
            + "".join(f"{s:>8}" for s in steps)
            + f"{'s/step':>9}  first hypothesis"
        )
        for v in args.variants.split(","):
            c = run_variant(v, batch, args.steps, args.every, args.seed)
            row = "".join(f"{100 * val:>7.1f}%" for _, val in c.cer)
            print(
                f"{c.variant:<20}{row}{c.seconds / max(1, args.steps):>9.2f}  {c.first_hyp}",
                flush=True,
            )
        print(f"reference of the first: {batch[3][0]}")


if __name__ == "__main__":
    main()
