"""Does the model hear tones? Decode a training checkpoint's pinyin auxiliary CTC head
(``loss.pinyin_ctc_scale``; in Lightning checkpoints only, not in exported models) greedily and
score it over syllables, with and without tone, per ``text`` slice (call sentences / word
lists); then, where the syllable is right, the share of right tones per reference tone.

    .venv/bin/python bench/pinyin_tones.py recipes/zipformer_synth/exp-c16/ctc/last.ckpt \\
        --data data/fbank/synth_cuts_test.jsonl.gz --max-utts 150 [--chunk-size -1]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluate import (  # noqa: E402
    LOG_EPS,
    TAIL_PAD_FRAMES,
    collapse_ctc,
    load_torch_model,
    read_eval_data,
)
from training.lightning.pinyin import TONES, PinyinTargets  # noqa: E402
from training.scoring import ErrorCounts, align  # noqa: E402


def syllables(units: list[str]) -> list[str]:
    """``zhong`` ``1`` unit pairs as ``zhong1``; a stray tone or a syllable without one gets ``?``."""
    out, k = [], 0
    while k < len(units):
        if units[k] in TONES:
            out.append("?" + units[k])
            k += 1
        elif k + 1 < len(units) and units[k + 1] in TONES:
            out.append(units[k] + units[k + 1])
            k += 2
        else:
            out.append(units[k] + "?")
            k += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a Lightning .ckpt with pinyin_head weights")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--max-utts", type=int, default=150)
    ap.add_argument("--chunk-size", type=int, default=-1)
    ap.add_argument("--left-context", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_torch_model(args.checkpoint)
    model.eval()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    if "pinyin_head.1.weight" not in state:
        sys.exit(f"{args.checkpoint} has no pinyin head: train with loss.pinyin_ctc_scale > 0")
    w, b = state["pinyin_head.1.weight"], state["pinyin_head.1.bias"]
    head = torch.nn.Linear(w.shape[1], w.shape[0])
    head.load_state_dict({"weight": w, "bias": b})
    targets = PinyinTargets()
    items = read_eval_data(args.data)[: args.max_utts]
    counts: dict[tuple[str, str], ErrorCounts] = {}
    tones: Counter = Counter()  # (slice, ref tone, hyp tone) where the syllable is right
    captured: dict[str, torch.Tensor] = {}
    model.encoder.register_forward_hook(lambda m, i, o: captured.update(out=o[0], lens=o[1]))
    for at in range(0, len(items), 8):
        batch = items[at : at + 8]
        feats = [torch.from_numpy(it.features()) for it in batch]
        lens = torch.tensor([f.shape[0] + TAIL_PAD_FRAMES for f in feats])
        x = torch.full((len(feats), int(lens.max()), feats[0].shape[1]), LOG_EPS)
        for j, f in enumerate(feats):
            x[j, : f.shape[0]] = f
        with torch.no_grad():
            model.forward_encoder(
                x, lens, chunk_size=args.chunk_size, left_context_frames=args.left_context
            )
            best = head(captured["out"].permute(1, 0, 2)).argmax(-1)
        for j, it in enumerate(batch):
            ids = collapse_ctc(best[j, : int(captured["lens"][j])].tolist(), 0)
            hyp = syllables(targets.decode(ids))
            ref = syllables(targets.decode(targets.encode(it.text)))
            kind = it.slices.get("text", "all")
            bare_ref, bare_hyp = [s[:-1] for s in ref], [s[:-1] for s in hyp]
            for name, a, h in (("with tone", ref, hyp), ("without", bare_ref, bare_hyp)):
                c = ErrorCounts.from_ops(align(a, h))
                counts[(kind, name)] = counts.get((kind, name), ErrorCounts()) + c
            r = h = 0
            for op in align(bare_ref, bare_hyp):
                if op.op == "ok":
                    tones[(kind, ref[r][-1], hyp[h][-1])] += 1
                r += op.op != "ins"
                h += op.op != "del"
    print(f"{args.checkpoint}, {len(items)} utts of {args.data}, chunk {args.chunk_size}")
    print(f"{'text':<12}  {'syllables':>9}  {'with tone':>9}  {'without':>8}")
    for kind in sorted({k for k, _ in counts}):
        wt, wo = counts[(kind, "with tone")], counts[(kind, "without")]
        print(f"{kind:<12}  {wt.ref_chars:>9}  {100 * wt.cer:>8.2f}%  {100 * wo.cer:>7.2f}%")
    print("\ntones right where the syllable is right, per reference tone")
    print(f"{'text':<12}  " + "  ".join(f"{t:>5}" for t in TONES))
    for kind in sorted({k for k, _, _ in tones}):
        row = []
        for t in TONES:
            n = sum(v for (k, rt, _), v in tones.items() if k == kind and rt == t)
            row.append(f"{100 * tones[(kind, t, t)] / n:>4.0f}%" if n else f"{'-':>5}")
        print(f"{kind:<12}  " + "  ".join(row))


if __name__ == "__main__":
    main()
