"""Does the transducer's joiner learn to read a trained encoder? A probe, not a recipe.

    .venv/bin/python bench/joiner_probe.py MODEL --loss pruned|full [--steps 150]

Freezes the encoder of MODEL (ours or a Lightning .ckpt), caches its full-context output on
short training utterances, and trains only the decoder, joiner and simple projections with
Adam, using either the recipe's pruned RNN-T loss (simple loss -> prune ranges -> pruned loss,
as `Transducer.forward`) or the full, unpruned RNN-T loss over the whole (t, u) lattice. Every
``--eval-every`` steps it prints the greedy transducer CER on the first test utterances, next to
the CTC head's CER on the same encoder output when the model has one: if the CTC head reads the
encoder well and the transducer does not catch up under one loss but does under the other, the
loss (not the encoder) is what holds the transducer back.
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
from training.loss import rnnt
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


def batch_loss(model, table, batch, kind: str, prune_range: int = 5) -> torch.Tensor:
    blank = model.decoder.blank_id
    ys = [table.encode(t) for _, t in batch]
    n, tmax, umax = len(batch), max(e.shape[0] for e, _ in batch), max(len(y) for y in ys)
    enc = torch.zeros(n, tmax, batch[0][0].shape[1])
    y_pad = torch.zeros(n, umax, dtype=torch.int64)
    sos_y = torch.full((n, umax + 1), blank, dtype=torch.int64)
    boundary = torch.zeros(n, 4, dtype=torch.int64)
    for i, ((e, _), y) in enumerate(zip(batch, ys, strict=True)):
        enc[i, : e.shape[0]] = e
        y_pad[i, : len(y)] = torch.tensor(y)
        sos_y[i, 1 : len(y) + 1] = torch.tensor(y)
        boundary[i, 2], boundary[i, 3] = len(y), e.shape[0]
    dec = model.decoder(sos_y)
    if kind == "full":
        logits = model.joiner(
            model.joiner.encoder_proj(enc).unsqueeze(2),
            model.joiner.decoder_proj(dec).unsqueeze(1),
            project_input=False,
        )
        return rnnt.rnnt_loss(logits, y_pad, blank, boundary)
    simple, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
        lm=model.simple_lm_proj(dec),
        am=model.simple_am_proj(enc),
        symbols=y_pad,
        termination_symbol=blank,
        lm_only_scale=0.25,
        am_only_scale=0.0,
        boundary=boundary,
        reduction="sum",
        return_grad=True,
    )
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, prune_range)
    am, lm = rnnt.do_rnnt_pruning(
        model.joiner.encoder_proj(enc), model.joiner.decoder_proj(dec), ranges
    )
    logits = model.joiner(am, lm, project_input=False)
    pruned = rnnt.rnnt_loss_pruned(logits, y_pad, ranges, blank, boundary, reduction="sum")
    return 0.5 * simple + pruned


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
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tokens = load_torch_model(args.model)
    table = TokenTable(tokens)
    short = (c for c in lhotse.load_manifest_lazy(args.train) if c.duration <= args.max_seconds)
    train = encode(model.eval(), itertools.islice(short, args.train_utts))
    test = encode(model, itertools.islice(lhotse.load_manifest_lazy(args.test), args.test_utts))
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
        loss = batch_loss(model, table, [train[i] for i in idx], args.loss)
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
