"""Why a transducer decodes badly: per-utterance figures that the losses alone do not show.

    .venv/bin/python -m training.diagnostics MODEL CUTS [--num-utts 3]

For the first utterances of a cuts manifest (with features), prints the pruned, simple and
full (unpruned) RNN-T losses in eval mode, how often blank is the joiner's argmax over the
whole (t, u) lattice (a trained model: nearly always, with one peak per token), how much of
the input fbank's, the front end's and the encoder's output energy is the utterance-mean vector (time-invariant),
the greedy hypothesis next to the reference, each with its full loss (a hypothesis the model
scores far cheaper than the reference is a modelling error, not a search error), and, for a model with a character CTC head
(`use_ctc`), how much of that head's greedy output is blank and what it spells. A CTC head that
is ~100 % blank means the encoder does not yet use the audio; real (even wrong) characters are
the first sign that training has left the initial plateau. Full context throughout.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import torch


@dataclass
class UttDiagnostics:
    cut_id: str
    frames: int
    tokens: int
    pruned_loss: float
    simple_loss: float
    full_loss: float
    blank_argmax_fraction: float
    fbank_mean_energy: float
    embed_mean_energy: float
    encoder_mean_energy: float
    ref: str
    hyp: str
    hyp_full_loss: float | None = None  # full_loss of the greedy hypothesis (None: empty)
    ctc_blank_fraction: float | None = None
    ctc_hyp: str | None = None


def mean_energy_fraction(x: torch.Tensor) -> float:
    """Share of the energy of frames x (T, C) that is their mean vector."""
    return float(x.mean(0).pow(2).sum() / x.pow(2).sum(-1).mean())


@torch.no_grad()
def diagnose(model, tokens, cut) -> UttDiagnostics:
    from serving.tokens import TokenTable
    from training.decode.search import greedy_search
    from training.loss import rnnt

    table = TokenTable(tokens)
    x = torch.from_numpy(cut.load_features())[None]
    x_lens = torch.tensor([x.shape[1]])
    ref = cut.supervisions[0].text
    y = table.encode(ref)
    simple, pruned, _ = model(x, x_lens, [y])
    emb, _ = model.encoder_embed(x, x_lens)
    enc, enc_lens = model.forward_encoder(x, x_lens, chunk_size=-1, left_context_frames=-1)
    logits, y_padded, boundary = model.lattice_logits(enc, enc_lens, [y])
    full = rnnt.rnnt_loss(logits.float(), y_padded, model.decoder.blank_id, boundary)
    blank_frac = float((logits.argmax(-1) == model.decoder.blank_id).float().mean())
    hyp = greedy_search(model, enc, enc_lens)[0]  # it applies encoder_proj itself
    # The model's own score of what it decoded: far below the reference's full_loss means the
    # model prefers its hypothesis (a modelling error), not that the search missed the reference.
    hyp_full = float(model.full_loss(enc, enc_lens, [hyp])) if hyp else None
    ctc_blank, ctc_hyp = ctc_greedy(model, enc[0], table) if model.use_ctc else (None, None)
    return UttDiagnostics(
        cut_id=cut.id,
        frames=int(enc_lens[0]),
        tokens=len(y),
        pruned_loss=float(pruned),
        simple_loss=float(simple),
        full_loss=float(full),
        hyp_full_loss=hyp_full,
        blank_argmax_fraction=blank_frac,
        fbank_mean_energy=mean_energy_fraction(x[0]),
        embed_mean_energy=mean_energy_fraction(emb[0]),
        encoder_mean_energy=mean_energy_fraction(enc[0]),
        ref=ref,
        hyp=table.decode(hyp),
        ctc_blank_fraction=ctc_blank,
        ctc_hyp=ctc_hyp,
    )


def ctc_greedy(model, enc: torch.Tensor, table) -> tuple[float, str]:
    """Blank share of the CTC head's per-frame argmax over enc (T, C), and its collapsed text."""
    from training.evaluate import collapse_ctc

    best = model.ctc_output(enc).argmax(-1).tolist()
    blank = model.decoder.blank_id
    ids = collapse_ctc(best, blank)
    return sum(t == blank for t in best) / max(len(best), 1), table.decode(ids)


def main(argv: list[str] | None = None) -> None:
    import lhotse

    from training.evaluate import load_torch_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("cuts")
    ap.add_argument("--num-utts", type=int, default=3)
    args = ap.parse_args(argv)
    model, tokens = load_torch_model(args.model)
    cuts = itertools.islice(lhotse.load_manifest_lazy(args.cuts), args.num_utts)
    print(
        "cut | T | U | pruned | simple | full (nats/utt) | blank argmax | mean energy fbank/embed/encoder"
    )
    for cut in cuts:
        d = diagnose(model, tokens, cut)
        print(
            f"{d.cut_id} | {d.frames} | {d.tokens} | {d.pruned_loss:.2f} | {d.simple_loss:.2f} | "
            f"{d.full_loss:.2f} | {d.blank_argmax_fraction:.3f} | "
            f"{d.fbank_mean_energy:.3f}/{d.embed_mean_energy:.3f}/{d.encoder_mean_energy:.3f}"
        )
        hyp_cost = "-" if d.hyp_full_loss is None else f"{d.hyp_full_loss:.2f}"
        print(f"    ref {d.ref}  (full {d.full_loss:.2f})\n    hyp {d.hyp}  (full {hyp_cost})")
        if d.ctc_hyp is not None:
            print(f"    ctc {d.ctc_hyp}  (blank {d.ctc_blank_fraction:.1%} of frames)")


if __name__ == "__main__":
    main()
