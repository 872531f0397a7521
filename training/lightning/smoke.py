"""A tiny real corpus and recipe for smoke runs, tests and benchmarks.

Takes the first utterances of Kaldi-style split folders (e.g. ``../shared/datasets/
neural-voice-zh/{train,dev}``), imports and featurizes them with the project's own pipeline
(``training.data``), builds a token table and writes a recipe ``config.yaml`` using the ``tiny``
model preset. Audio stays where it is (the subset's ``wav.scp`` holds absolute paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class SmokeCorpus:
    root: Path
    train_cuts: Path
    dev_cuts: Path
    tokens: Path
    kaldi_dev: Path  # the dev subset as a Kaldi folder (for eval)


def subset_kaldi_dir(src: Path, dst: Path, n: int, shortest: bool = True) -> Path:
    """Copy the listing files of ``n`` utterances of ``src`` into ``dst`` (absolute wav paths).
    With ``shortest``, the ``n`` shortest by ``meta.jsonl`` duration (when available)."""
    src, dst = Path(src), Path(dst)
    texts = dict(
        line.split(maxsplit=1) for line in (src / "text").read_text("utf-8").splitlines() if line
    )
    wavs = dict(
        line.split(maxsplit=1) for line in (src / "wav.scp").read_text("utf-8").splitlines() if line
    )
    meta: dict[str, dict[str, Any]] = {}
    if (src / "meta.jsonl").is_file():
        for line in (src / "meta.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                meta[item["utt_id"]] = item
    ids = sorted(texts)
    if shortest and meta:
        ids.sort(key=lambda u: (meta.get(u, {}).get("duration_s", 1e9), u))
    ids = sorted(ids[:n])
    dst.mkdir(parents=True, exist_ok=True)

    def absolute(p: str) -> str:
        q = Path(p.strip())
        return str(q if q.is_absolute() else (src / q).resolve())

    (dst / "wav.scp").write_text("".join(f"{u} {absolute(wavs[u])}\n" for u in ids), "utf-8")
    (dst / "text").write_text("".join(f"{u} {texts[u].strip()}\n" for u in ids), "utf-8")
    if meta:
        (dst / "meta.jsonl").write_text(
            "".join(json.dumps(meta[u], ensure_ascii=False) + "\n" for u in ids if u in meta),
            "utf-8",
        )
    return dst


def make_smoke_corpus(
    train_src: Path,
    dev_src: Path,
    out: Path,
    n_train: int = 6,
    n_dev: int = 3,
    corpus: str = "smoke",
    common_chars: int = 0,
) -> SmokeCorpus:
    """Import ``n_train``/``n_dev`` utterances into ``out/data`` with features and tokens."""
    from training.data.fbank import compute_fbank_for_corpus
    from training.data.importers import import_corpus
    from training.data.manifests import fbank_cuts_path
    from training.lightning.tokens import build_token_table

    out = Path(out)
    kaldi = out / "kaldi"
    subset_kaldi_dir(train_src, kaldi / "train", n_train)
    subset_kaldi_dir(dev_src, kaldi / "dev", n_dev)
    data = out / "data"
    import_corpus(kaldi, corpus, fmt="kaldi", out_dir=data, jobs=1)
    compute_fbank_for_corpus(corpus, manifests=data / "manifests", out=data / "fbank", jobs=1)
    train = fbank_cuts_path(data / "fbank", corpus, "train")
    dev = fbank_cuts_path(data / "fbank", corpus, "dev")
    tokens = data / "lang" / "tokens.txt"
    build_token_table([train, dev], tokens, common_chars)
    return SmokeCorpus(out, train, dev, tokens, kaldi / "dev")


def write_smoke_recipe(
    recipe_dir: Path, corpus: SmokeCorpus, overrides: dict[str, Any] | None = None
) -> Path:
    """A ``config.yaml`` for the tiny preset on ``corpus``; ``overrides`` are merged per section."""
    cfg: dict[str, Any] = {
        "name": Path(recipe_dir).name,
        "model": {"preset": "tiny", "chunk_size": [16, -1], "left_context_frames": [64]},
        "tokens": {"file": str(corpus.tokens)},
        "data": {
            "train_cuts": [str(corpus.train_cuts)],
            "dev_cuts": [str(corpus.dev_cuts)],
            "max_duration": 30,
            "num_workers": 0,
            "sort_by_duration_epochs": 1,
        },
        "augment": {"specaug": {"enabled": False}},
        "loss": {"warm_step": 50},
        "optim": {"lr_batches": 1000, "lr_epochs": 100, "warmup_batches": 10},
        "valid": {"cer_max_utts": 3},
        "trainer": {"max_epochs": 1000, "log_every_n_steps": 1, "num_threads": 1},
        "checkpoint": {"every_n_steps": 2, "every_minutes": 0, "keep_last": 3, "average_last": 2},
        "mlflow": {"enabled": False},
    }
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    recipe_dir = Path(recipe_dir)
    recipe_dir.mkdir(parents=True, exist_ok=True)
    (recipe_dir / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return recipe_dir
