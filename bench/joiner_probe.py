"""Does the transducer's joiner learn to read a trained encoder? A probe, not a recipe.

    .venv/bin/python bench/joiner_probe.py MODEL --loss pruned|full [--steps 150]
        [--rnnt-type modified] [--context-mask 0.5] [--reinit | --joiner-from-ctc 0.2]

Freezes the encoder of MODEL (ours or a Lightning .ckpt), caches its full-context output on
short training utterances, and trains only the decoder, joiner and simple projections with
Adam, using either the recipe's pruned RNN-T loss (simple loss -> prune ranges -> pruned loss,
as `Transducer.forward`) or the full, unpruned RNN-T loss over the whole (t, u) lattice. Every
``--eval-every`` steps it prints the greedy transducer CER on the first test utterances, next to
the CTC head's CER on the same encoder output when the model has one: if the CTC head reads the
encoder well and the transducer does not catch up under one loss but does under the other, the
loss (not the encoder) is what holds the transducer back. ``--context-mask`` hides decoder
context labels in training, ``--reinit`` starts the decoder and joiner afresh and
``--joiner-from-ctc`` first rewrites the joiner from the CTC head
(``training.model.ctc_joiner``), so its step-0 CER shows what that initialisation gives.
"""

from __future__ import annotations

import argparse
import itertools
import time

import lhotse
import torch

from serving.tokens import TokenTable
from training.decode.search import greedy_search
from training.evaluate import ctc_greedy_ids, load_torch_model
from training.scoring import ScoredUtt, score


def encode(model, cuts):
    out = []
    with torch.no_grad():
        for cut in cuts:
            x = torch.from_numpy(cut.load_features())[None]
            enc, lens = model.forward_encoder(
                x, torch.tensor([x.shape[1]]), chunk_size=-1, left_context_frames=-1
            )
            out.append((enc[0], cut.supervisions[0].text))
    return out


def batch_loss(
    model, table, batch, kind: str, mask: float = 0.0, rnnt_type: str = "regular"
) -> torch.Tensor:
    ys = [table.encode(text) for _, text in batch]
    lens = torch.tensor([e.shape[0] for e, _ in batch])
    enc = torch.nn.utils.rnn.pad_sequence([e for e, _ in batch], batch_first=True)
    if kind == "pruned":  # the recipe's loss, exactly as training computes it
        simple, pruned, _ = model.losses(enc, lens, ys, rnnt_type=rnnt_type, context_mask_prob=mask)
        return 0.5 * simple + pruned
    return model.full_loss(enc, lens, ys, rnnt_type=rnnt_type, context_mask_prob=mask)


def cer(model, table, test, method: str) -> float:
    pairs = []
    with torch.no_grad():
        for i, (e, ref) in enumerate(test):
            lens = torch.tensor([e.shape[0]])
            ids = (
                greedy_search(model, e[None], lens)
                if method == "rnnt"
                else ctc_greedy_ids(model, e[None], lens)
            )[0]
            pairs.append(ScoredUtt(str(i), ref, table.decode(ids), {}))
    return score(pairs).overall.cer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--loss", choices=["pruned", "full"], default="pruned")
    ap.add_argument("--train", default="data/fbank/synth_cuts_train.jsonl.gz")
    ap.add_argument("--test", default="data/fbank/synth_cuts_test.jsonl.gz")
    ap.add_argument("--train-utts", type=int, default=400)
    ap.add_argument("--test-utts", type=int, default=40)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--context-mask", type=float, default=0.0, help="Transducer.mask_context")
    ap.add_argument("--rnnt-type", default="regular", choices=["regular", "modified"])
    ap.add_argument(
        "--joiner-from-ctc",
        type=float,
        default=None,
        metavar="SCALE",
        help="rewrite the joiner from the CTC head first (training.model.ctc_joiner)",
    )
    ap.add_argument("--reinit", action="store_true", help="start decoder and joiner afresh")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tokens = load_torch_model(args.model)
    table = TokenTable(tokens)
    short = (c for c in lhotse.load_manifest_lazy(args.train) if c.duration <= args.max_seconds)
    train = encode(model.eval(), itertools.islice(short, args.train_utts))
    test = encode(model, itertools.islice(lhotse.load_manifest_lazy(args.test), args.test_utts))
    if args.reinit:
        for name, module in model.named_modules():
            if name.startswith(("decoder", "joiner", "simple")) and hasattr(
                module, "reset_parameters"
            ):
                module.reset_parameters()
    if args.joiner_from_ctc is not None:
        from training.model.ctc_joiner import joiner_from_ctc

        rms = torch.cat([e for e, _ in train]).pow(2).mean().sqrt().item()
        joiner_from_ctc(model, args.joiner_from_ctc)
        print(f"joiner from the CTC head, scale {args.joiner_from_ctc} (encoder rms {rms:.2f})")
    params = [p for n, p in model.named_parameters() if not n.startswith(("encoder", "ctc"))]
    opt = torch.optim.Adam(params, lr=args.lr)
    ctc = f"{cer(model, table, test, 'ctc'):.1%}" if model.use_ctc else "-"
    print(f"loss {args.loss} | {len(train)} train utts | CTC head CER {ctc}")
    print("step | train loss/utt | transducer CER | s")
    t0 = time.time()
    print(f"0 | - | {cer(model, table, test, 'rnnt'):.1%} | 0")
    g = torch.Generator().manual_seed(0)
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(train), (args.batch,), generator=g).tolist()
        model.train()
        loss = batch_loss(
            model, table, [train[i] for i in idx], args.loss, args.context_mask, args.rnnt_type
        )
        model.eval()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        if step % args.eval_every == 0:
            print(
                f"{step} | {loss.item() / args.batch:.2f} | "
                f"{cer(model, table, test, 'rnnt'):.1%} | {time.time() - t0:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
