"""Sentences in one call: the same sentences decoded each alone, then 5 to a stream with
silence between them, through the serving engine with endpoint resets (as a call is served).

Prints CER and its substitutions/deletions/insertions per gap, and the ratio to "each alone".
The model was trained on single sentences; a call is many in one stream.

    .venv/bin/python bench/call_stream.py --model exp/onnx \
        --data data/fbank/synth2_cuts_test.jsonl.gz --utts 40 --gaps 0.3 1.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.engine.recognizer import Recognizer  # noqa: E402
from training.evaluate import EvalItem, engine_transcript, read_eval_data, select  # noqa: E402
from training.scoring import ScoredUtt, score  # noqa: E402


def run(rec: Recognizer, items: list[EvalItem], per_call: int, gap: float | None):
    """CER of ``items`` each alone (``gap`` None) or ``per_call`` to a stream, ``gap`` s apart."""
    pairs = []
    groups = (
        [[it] for it in items]
        if gap is None
        else [items[k : k + per_call] for k in range(0, len(items), per_call)]
    )
    for group in groups:
        audio = []
        for it in group:
            x, sr = it.samples()
            audio += [x, np.zeros(int((gap or 0) * sr), np.float32)]
        hyp = engine_transcript(rec, np.concatenate(audio), sr)
        pairs.append(ScoredUtt(group[0].id, "".join(it.text for it in group), hyp, {}))
    return score(pairs).overall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="ONNX export folder")
    ap.add_argument("--data", required=True, help="cuts manifest or Kaldi folder")
    ap.add_argument("--only", default="text=sentences", help="KEY=VALUE slice ('' for all)")
    ap.add_argument("--utts", type=int, default=40)
    ap.add_argument("--per-call", type=int, default=5)
    ap.add_argument("--gaps", type=float, nargs="+", default=[0.3, 1.5])
    a = ap.parse_args()
    only = dict([a.only.split("=", 1)]) if a.only else {}
    items = select(read_eval_data(a.data), only, a.data)[: a.utts]
    rec = Recognizer.from_folder(a.model)
    alone = run(rec, items, a.per_call, None)
    print(f"{len(items)} utterances, {alone.ref_chars} reference characters")
    print(f"{'layout':<28}{'CER':>8}{'sub':>6}{'del':>6}{'ins':>6}{'x alone':>9}")
    rows = [("each alone", alone)] + [
        (f"{a.per_call} per stream, {g:g} s apart", run(rec, items, a.per_call, g)) for g in a.gaps
    ]
    for name, o in rows:
        ratio = o.cer / max(alone.cer, 1e-9)
        print(f"{name:<28}{o.cer:>8.2%}{o.sub:>6}{o.del_:>6}{o.ins:>6}{ratio:>9.2f}")


if __name__ == "__main__":
    main()
