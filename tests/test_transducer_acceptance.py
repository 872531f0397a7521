"""Acceptance tests of the whole transducer stack on real (espeak-ng) speech.

A tiny streaming Zipformer2 is trained from scratch on four short utterances until greedy
search reproduces every transcript (CER 0). Snapshots taken earlier, when beam search still
misses a listed term, show that hot-word biasing in ``modified_beam_search`` recovers terms
without producing a listed phrase that is not spoken.

Recipe notes (what made the overfit fast and reliable on one CPU thread):
- one fixed chunk (16 frames at 50 Hz, the streaming setting) with full left context, in
  training and decoding;
- a CTC head (weight 1) next to the transducer losses: without it the encoder stays blind for
  long and the decoder, a perfect LM over four sentences, gives one sentence for every
  utterance (this recipe without CTC: CER 0.33 after 250 steps);
- ``prune_range=2``: at most one symbol per frame in the pruned lattice, as the searches emit.
  The model emits a memorised sentence in a burst at its start and spreads the last symbol
  over the remaining frames, never above blank on any one frame, so greedy search drops final
  characters until that sharpens (with the default 5: CER 0 at step 190 instead of 150);
- ScaledAdam at a high rate (0.12), the model's schedules set past their warm-up (20000).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from serving.context_graph import ContextGraph  # noqa: E402
from serving.features import compute_fbank  # noqa: E402
from serving.tokens import TokenTable  # noqa: E402
from training.decode.search import greedy_search, modified_beam_search  # noqa: E402
from training.model.config import preset  # noqa: E402
from training.model.scaling import set_batch_count  # noqa: E402
from training.model.transducer import Transducer  # noqa: E402
from training.optim import Eden, ScaledAdam  # noqa: E402
from training.scoring import ScoredUtt, hotword_recall, score  # noqa: E402

TEXTS = ["市民热线你好", "我要投诉噪音", "社保卡怎么办", "公积金怎么取"]
HOT_WORDS = ["噪音", "怎么取"]
ABSENT_WORD = "热线投诉"  # every character is in the token table; the phrase is never spoken
HOT_WORD_SCORE = 0.5  # bonus per token; at 1.5 whole memorised sentences get swapped
CHUNK = 16  # 50 Hz frames
MAX_STEPS = 400
CHECK_EVERY = 10
MAX_SNAPSHOTS = 3
LOG_EPS = float(np.log(1e-10))


@dataclass
class Trained:
    model: Transducer  # overfitted: greedy CER 0
    early: list[tuple[int, Transducer]]  # (step, snapshot): CER <= 0.3, beam misses a term
    steps: int
    table: TokenTable
    x: torch.Tensor
    x_lens: torch.Tensor
    history: list[tuple[int, float, list[str]]]


def _batch(table: TokenTable) -> tuple[torch.Tensor, torch.Tensor]:
    from training.synth.espeak import VoiceSettings, espeak_binary, synthesize

    try:
        espeak_binary()
    except RuntimeError as e:
        pytest.skip(str(e))
    voice = VoiceSettings(variant="m3", speed=200, pitch=50)
    feats = [
        torch.from_numpy(compute_fbank(synthesize(t, voice, keep_silence_s=0.05), 16000))
        for t in TEXTS
    ]
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=LOG_EPS)
    return x, torch.tensor([f.shape[0] for f in feats])


def _decode(
    model: Transducer,
    table: TokenTable,
    x: torch.Tensor,
    x_lens: torch.Tensor,
    beam: int = 0,
    graph: ContextGraph | None = None,
) -> list[str]:
    """Greedy search (beam=0) or modified beam search, with the training chunk size."""
    model.eval()
    with torch.no_grad():
        enc, lens = model.forward_encoder(x, x_lens)
        if beam:
            hyps = modified_beam_search(model, enc, lens, beam=beam, context_graph=graph)
        else:
            hyps = greedy_search(model, enc, lens)
    return [table.decode(h) for h in hyps]


def _cer(refs: list[str], hyps: list[str]) -> float:
    report = score(ScoredUtt(str(i), r, h) for i, (r, h) in enumerate(zip(refs, hyps, strict=True)))
    return report.overall.cer


def _recall(hyps: list[str], words: list[str] = HOT_WORDS) -> float:
    """Share of the hot-word occurrences in TEXTS that ``hyps`` reproduce."""
    stats = hotword_recall(zip(TEXTS, hyps, strict=True), words).values()
    return sum(s["found"] for s in stats) / sum(s["ref"] for s in stats)


@pytest.fixture(scope="module")
def trained() -> Trained:
    random.seed(0)
    torch.manual_seed(0)
    table = TokenTable.from_texts(TEXTS)
    x, x_lens = _batch(table)
    y = [table.encode(t) for t in TEXTS]
    model = Transducer(
        preset(
            "tiny",
            vocab_size=len(table),
            chunk_size=(CHUNK,),
            left_context_frames=(-1,),
            use_ctc=True,
        )
    )
    opt = ScaledAdam(model.named_parameters(), lr=0.12, clipping_scale=2.0)
    sched = Eden(opt, lr_batches=1000, lr_epochs=100, warmup_batches=1)
    history: list[tuple[int, float, list[str]]] = []
    early: list[tuple[int, Transducer]] = []
    for step in range(1, MAX_STEPS + 1):
        model.train()
        set_batch_count(model, 20000 + step)
        simple, pruned, ctc = model(x, x_lens, y, prune_range=2)
        loss = 0.5 * simple + pruned + ctc
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step_batch()
        if step % CHECK_EVERY:
            continue
        hyps = _decode(model, table, x, x_lens)
        cer = _cer(TEXTS, hyps)
        history.append((step, cer, hyps))
        # Hot-word snapshots: close to the transcripts, yet beam search misses a term.
        if len(early) < MAX_SNAPSHOTS and cer <= 0.3:
            if _recall(_decode(model, table, x, x_lens, beam=4)) < 1:
                early.append((step, copy.deepcopy(model)))
        if cer == 0:
            break
    return Trained(model, early, step, table, x, x_lens, history)


def test_tiny_model_overfits_to_cer_zero(trained: Trained):
    hyps = _decode(trained.model, trained.table, trained.x, trained.x_lens)
    cer = _cer(TEXTS, hyps)
    print(f"CER {cer} after {trained.steps} steps; history: {trained.history}")
    assert cer == 0.0, (hyps, trained.history)
    assert hyps == TEXTS


def test_hotword_biasing_raises_recall(trained: Trained):
    """On the snapshots that still miss a term, biasing toward the spoken terms recovers more
    of them; the unspoken listed phrase never appears, and the sentences without a term lose
    little. Summed over up to three snapshots, so that one borderline model does not decide."""
    assert trained.early, f"no snapshot where beam search missed a term: {trained.history}"
    table, x, x_lens = trained.table, trained.x, trained.x_lens
    graph = ContextGraph.from_texts([*HOT_WORDS, ABSENT_WORD], table.encode, score=HOT_WORD_SCORE)
    free = [i for i, t in enumerate(TEXTS) if not any(w in t for w in HOT_WORDS)]
    assert free, "keep at least one utterance without a hot word"
    refs = [TEXTS[i] for i in free]
    before = after = 0.0
    cer_rise = []
    for step, m in trained.early:
        plain = _decode(m, table, x, x_lens, beam=4)
        biased = _decode(m, table, x, x_lens, beam=4, graph=graph)
        before, after = before + _recall(plain), after + _recall(biased)
        absent = hotword_recall(zip(TEXTS, biased, strict=True), [ABSENT_WORD])[ABSENT_WORD]
        assert absent["hyp"] == 0, (step, biased)
        cer_rise.append(
            _cer(refs, [biased[i] for i in free]) - _cer(refs, [plain[i] for i in free])
        )
        print(f"step {step}: recall {_recall(plain)} -> {_recall(biased)}")
        print(f"  plain {plain}\n  biased {biased}")
    print(f"recall summed: {before} -> {after}; CER rise without hot words: {cer_rise}")
    assert after > before
    assert sum(cer_rise) / len(cer_rise) <= 0.1, cer_rise
