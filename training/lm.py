"""Build a character n-gram language model (interpolated Kneser-Ney) and write it as ARPA.

    sentences = texts_from(["data/fbank/synth_cuts_train.jsonl.gz"], skip_templates={"W"})
    stats = build_arpa(sentences, "exp/lm/lm.arpa", order=4)

The model is over characters, the hotline models' tokens; ``serving.lm.NgramLM`` reads it for
shallow fusion. Inputs are transcripts: lhotse cut/supervision manifests (the corpora the
project imports) or plain text files, one sentence per line (a Kaldi ``text`` file's first
field, the utterance id, is dropped with ``kaldi_text=True``).

Discounting is interpolated Kneser-Ney with one discount per order, ``D = n1 / (n1 + 2 n2)``;
lower orders use continuation counts except for n-grams that start with ``<s>``, as in SRILM
and KenLM. Written as back-off ARPA, the interpolation weights are the back-off weights.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["LmStats", "build_arpa", "kneser_ney", "texts_from"]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


@dataclass
class LmStats:
    """What ``build_arpa`` counted and wrote."""

    sentences: int
    characters: int
    order: int
    ngrams: list[int]  # per order, 1 first
    discounts: list[float]
    path: str

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8")
        if path.suffix == ".gz"
        else path.open(encoding="utf-8")
    )


def texts_from(
    paths: Sequence[str | Path],
    skip_templates: Iterable[str] = (),
    kaldi_text: bool = False,
    fill_seed: int | None = None,
) -> Iterator[str]:
    """Transcripts from lhotse manifests (``*.jsonl`` / ``*.jsonl.gz``: cuts or supervisions)
    or text files; supervisions whose ``custom.template_id`` is in ``skip_templates`` are left
    out (the synth corpus marks its random word lists ``W``). A desensitized text (a
    ``<手机号>``-style placeholder stands where the number was) is left out too, unless
    ``fill_seed`` is given: then each placeholder becomes a random number of its type drawn
    from that seed (``training.data.placeholders``), and only texts with an e-mail
    placeholder are left out."""
    from training.data.placeholders import PLACEHOLDER_RE, fill_placeholders

    rng = random.Random(fill_seed)

    def usable(text: str) -> str | None:
        if not PLACEHOLDER_RE.search(text):
            return text
        return None if fill_seed is None else fill_placeholders(text, rng)

    skip = set(skip_templates)
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"no text source at {p}")
        is_manifest = p.name.endswith((".jsonl", ".jsonl.gz"))
        with _open(p) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if not is_manifest:
                    if kaldi_text:
                        parts = line.split(maxsplit=1)
                        line = parts[1] if len(parts) == 2 else ""
                    if line and (line := usable(line)):
                        yield line
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}:{lineno}: not a JSON line ({e.msg})") from None
                sups = item.get("supervisions", [item])
                for s in sups:
                    if (s.get("custom") or {}).get("template_id") in skip:
                        continue
                    text = s.get("text")
                    if text and (text := usable(text)):
                        yield text


def _sentences(texts: Iterable[str]) -> Iterator[list[str]]:
    for t in texts:
        chars = [c for c in t if not c.isspace()]
        if chars:
            yield [BOS, *chars, EOS]


def kneser_ney(
    texts: Iterable[str], order: int = 4
) -> tuple[list[dict[tuple[str, ...], tuple[float, float | None]]], list[float], int, int]:
    """Interpolated Kneser-Ney over the characters of ``texts``.

    Returns, per order (1 first), ``{ngram: (log10 P, log10 back-off or None)}``, the discount
    of each order, and the numbers of sentences and characters."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts = [Counter() for _ in range(order + 1)]  # counts[k]: k-grams
    n_sent = n_char = 0
    for s in _sentences(texts):
        n_sent += 1
        n_char += len(s) - 2
        for k in range(1, order + 1):
            for i in range(len(s) - k + 1):
                counts[k][tuple(s[i : i + k])] += 1
    if n_sent == 0:
        raise ValueError("no text to build a language model from")
    counts[1].pop((BOS,), None)

    # Kneser-Ney counts: continuation counts below the top order (raw counts after <s>)
    kn: list[Counter] = [Counter() for _ in range(order + 1)]
    kn[order] = counts[order]
    for k in range(order - 1, 0, -1):
        cont: Counter = Counter()
        for g in counts[k + 1]:
            cont[g[1:]] += 1
        for g, c in counts[k].items():
            kn[k][g] = c if g[0] == BOS else cont[g]
    discounts = [0.0]
    for k in range(1, order + 1):
        n1 = sum(1 for c in kn[k].values() if c == 1)
        n2 = sum(1 for c in kn[k].values() if c == 2)
        d = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
        discounts.append(min(max(d, 0.1), 0.9))

    # per history: total count and number of distinct continuations
    totals: list[dict[tuple[str, ...], list[int]]] = [
        defaultdict(lambda: [0, 0]) for _ in range(order + 1)
    ]
    for k in range(1, order + 1):
        for g, c in kn[k].items():
            t = totals[k][g[:-1]]
            t[0] += c
            t[1] += 1

    vocab = [g[0] for g in kn[1]] + ([UNK] if (UNK,) not in kn[1] else [])
    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    gammas: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    total, types = totals[1][()]
    gamma0 = discounts[1] * types / total
    uniform = 1.0 / len(vocab)
    for w in vocab:
        probs[1][(w,)] = max(kn[1].get((w,), 0) - discounts[1], 0) / total + gamma0 * uniform
    for k in range(2, order + 1):
        d = discounts[k]
        for h, (total, types) in totals[k].items():
            gammas[k][h] = d * types / total
        for g, c in kn[k].items():
            h = g[:-1]
            # a seen n-gram's suffix is a seen (k-1)-gram (<s> only ever starts one)
            probs[k][g] = (c - d) / totals[k][h][0] + gammas[k][h] * probs[k - 1][g[1:]]

    table: list[dict[tuple[str, ...], tuple[float, float | None]]] = [{}]
    for k in range(1, order + 1):
        out: dict[tuple[str, ...], tuple[float, float | None]] = {}
        if k == 1:
            g_bos = gammas[2].get((BOS,)) if order > 1 else None
            out[(BOS,)] = (-99.0, math.log10(g_bos) if g_bos else None)
        for g, p in probs[k].items():
            g_next = gammas[k + 1].get(g) if k < order else None
            out[g] = (math.log10(p), math.log10(g_next) if g_next else None)
        table.append(out)
    return table[1:], discounts[1:], n_sent, n_char


def build_arpa(texts: Iterable[str], out: str | Path, order: int = 4) -> LmStats:
    """Count ``texts``, write the ARPA file ``out`` (atomically) and say what it holds."""
    table, discounts, n_sent, n_char = kneser_ney(texts, order)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for k, grams in enumerate(table, 1):
                f.write(f"ngram {k}={len(grams)}\n")
            for k, grams in enumerate(table, 1):
                f.write(f"\n\\{k}-grams:\n")
                for g, (lp, bo) in sorted(grams.items()):
                    words = " ".join(g)
                    f.write(f"{lp:.6f}\t{words}" + (f"\t{bo:.6f}\n" if bo is not None else "\n"))
            f.write("\n\\end\\\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return LmStats(
        sentences=n_sent,
        characters=n_char,
        order=order,
        ngrams=[len(t) for t in table],
        discounts=[round(d, 4) for d in discounts],
        path=str(out),
    )
