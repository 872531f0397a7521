"""Character n-gram language model (ARPA) for shallow fusion in the transducer beam search.

    lm = NgramLM.from_arpa("exp/lm/lm.arpa", TokenTable.load("exp/onnx/tokens.txt"))
    fusion = LmFusion(lm, scale=DEFAULT_LM_SCALE)

The ARPA file holds characters (one token per character, as the hotline models use); loading
maps them to the model's token ids, so scoring works on ids. ``<s>``/``</s>``/``<unk>`` follow
the ARPA convention; characters missing from the token table are dropped with their n-grams.

Fusion adds ``scale * (log P(w | h) - log P(w))`` to a non-blank token's log-probability: the
LM's gain from the context over its own unigram. Subtracting the unigram keeps the fusion from
taxing every emitted token (plain shallow fusion pushes a transducer towards deletions) and
removes the frequency prior the transducer already has (a density-ratio correction with the
LM's own unigram). Only each hypothesis' ``candidates`` acoustically best tokens are rescored,
which keeps the cost to a few dictionary look-ups per hypothesis and frame.

Pure Python (``LmFusion.top`` calls methods of the numpy array it is given): ``serving``
deploys lean, and the CLI reads ``DEFAULT_LM_SCALE`` without importing numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serving.tokens import TokenTable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BOS", "DEFAULT_LM_SCALE", "EOS", "LmFusion", "NgramLM"]

# the weight of the LM's context gain: 0.5 and 1.0 took the default model's synth-test call
# sentences from 10.2 % to 6.2 and 6.5 % CER (0.5 hurt its random word lists less); see
# recipes/zipformer_synth/RESULTS.md
DEFAULT_LM_SCALE = 0.5

# ids of the sentence markers inside the LM (token ids are >= 0)
BOS = -2
EOS = -3
_LN10 = math.log(10.0)
_CACHE_LIMIT = 1_000_000


class NgramLM:
    """A back-off n-gram model over token ids (natural-log probabilities)."""

    def __init__(
        self,
        order: int,
        entries: dict[tuple[int, ...], tuple[float, float]],
        unk_logp: float,
    ) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self._entries = entries  # n-gram -> (ln P(last | rest), ln back-off of the n-gram)
        self.unk_logp = unk_logp
        self._gain_cache: dict[tuple[tuple[int, ...], int], float] = {}

    @classmethod
    def from_arpa(cls, path: str | Path, tokens: TokenTable) -> NgramLM:
        """Read an ARPA file of characters and map them to ``tokens``' ids."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no language model at {path}; build one with `hotline-asr lm build`"
            )
        ids = {"<s>": BOS, "</s>": EOS, "<unk>": tokens.unk_id}
        entries: dict[tuple[int, ...], tuple[float, float]] = {}
        order = 0
        section = 0
        seen_data = False
        with path.open(encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    seen_data = True
                    continue
                if line == "\\end\\":
                    break
                if line.startswith("ngram "):
                    order = max(order, int(line[6:].split("=")[0]))
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:].split("-")[0])
                    continue
                if not seen_data or section == 0:
                    raise ValueError(f"{path}:{lineno}: not an ARPA file (no \\data\\ header)")
                parts = line.split()
                if len(parts) not in (section + 1, section + 2):
                    raise ValueError(
                        f"{path}:{lineno}: a {section}-gram line needs a log10 probability, "
                        f"{section} tokens and an optional back-off; got {line!r}"
                    )
                words = parts[1 : section + 1]
                key = []
                for w in words:
                    i = ids.get(w)
                    if i is None:
                        i = tokens[w] if w in tokens else None
                    if i is None:
                        break
                    key.append(i)
                else:
                    backoff = float(parts[-1]) * _LN10 if len(parts) == section + 2 else 0.0
                    entries.setdefault(tuple(key), (float(parts[0]) * _LN10, backoff))
        if not any(i >= 0 and i != tokens.unk_id for key in entries for i in key):
            raise ValueError(f"{path} holds no n-grams over this token table's characters")
        unk = entries.get((tokens.unk_id,))
        unk_logp = unk[0] if unk is not None else -99.0 * _LN10
        return cls(order, entries, unk_logp)

    def __len__(self) -> int:
        return len(self._entries)

    def unigram_tokens(self) -> list[int]:
        """Token ids the LM has a unigram for (``<unk>`` included, sentence markers not)."""
        return sorted(k[0] for k in self._entries if len(k) == 1 and k[0] >= 0)

    def logp(self, history: Sequence[int], token: int) -> float:
        """ln P(token | history), backing off through shorter histories."""
        h = tuple(history[-(self.order - 1) :]) if self.order > 1 else ()
        backoff = 0.0
        while True:
            e = self._entries.get(h + (token,))
            if e is not None:
                return backoff + e[0]
            if not h:
                return backoff + self.unk_logp
            b = self._entries.get(h)
            if b is not None:
                backoff += b[1]
            h = h[1:]

    def gain(self, history: tuple[int, ...], token: int) -> float:
        """ln P(token | history) - ln P(token): what the context adds (cached)."""
        key = (history, token)
        g = self._gain_cache.get(key)
        if g is None:
            if len(self._gain_cache) > _CACHE_LIMIT:
                self._gain_cache.clear()
            g = self.logp(history, token) - self.logp((), token)
            self._gain_cache[key] = g
        return g

    def history(self, ys: Sequence[int]) -> tuple[int, ...]:
        """The LM context of a hypothesis' token sequence: its last ``order - 1`` emitted tokens
        (ids > 0; the search's leading -1/blank entries are not tokens), after ``<s>`` when it
        has emitted fewer."""
        n = self.order - 1
        if n <= 0:
            return ()
        out: list[int] = []
        for t in reversed(ys):
            if t > 0:
                out.append(t)
                if len(out) == n:
                    break
        else:
            out.append(BOS)
        return tuple(reversed(out))


@dataclass
class LmFusion:
    """Shallow fusion of an :class:`NgramLM` into modified beam search."""

    lm: NgramLM
    scale: float = DEFAULT_LM_SCALE
    candidates: int = 8  # acoustically best tokens per hypothesis that the LM rescores

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError(f"the LM scale must be >= 0, got {self.scale}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")

    def top(
        self,
        scores: np.ndarray,
        ys: Sequence[Sequence[int]],
        k: int,
        skip: set[int] | frozenset[int],
    ) -> tuple[list[float], list[int]]:
        """The ``k`` best (score, flat index) of ``scores`` (H, V), hypothesis h's history
        ``ys[h]``, after adding the LM gain to the candidates that are not in ``skip``
        (blank, unknown). Sorted best first, like ``topk``."""
        num_hyps, vocab = scores.shape
        m = min(self.candidates, vocab)
        cand = (-scores).argpartition(m - 1, axis=1)[:, :m]
        pairs: list[tuple[float, int]] = []
        for h in range(num_hyps):
            hist = self.lm.history(ys[h])
            row = scores[h]
            for token in cand[h].tolist():
                s = float(row[token])
                if token not in skip:
                    s += self.scale * self.lm.gain(hist, token)
                pairs.append((s, h * vocab + token))
        pairs.sort(key=lambda p: -p[0])
        best = pairs[:k]
        return [p[0] for p in best], [p[1] for p in best]
