"""The fbank stage: features for every cut, computed by the serving code itself.

:class:`HotlineFbank` is a Lhotse ``FeatureExtractor`` whose ``extract`` is
:func:`serving.features.compute_fbank`, configured by the very same
:class:`serving.features.FbankConfig`: whatever the model is trained on, the ONNX engine computes
too (including the resampling of 8 kHz audio to 16 kHz). Features are stored lossy-compressed
with lilcom (``LilcomChunkyWriter``; about 0.016 absolute error on log-mel values).

:func:`compute_fbank_for_corpus` reads ``{manifests}/{corpus}_cuts_{split}_raw.jsonl.gz`` and
writes ``{out}/{corpus}_feats_{split}/`` and ``{out}/{corpus}_cuts_{split}.jsonl.gz``. Features
go to a temporary folder first; the old folder and manifest are replaced only on success.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lhotse.features.base import FeatureExtractor, register_extractor
from lhotse.utils import fastcopy

from serving.features import FbankConfig, compute_fbank
from training.data.manifests import (
    AtomicWriter,
    check_name,
    fbank_cuts_path,
    feats_dir,
    find_splits,
    raw_cuts_path,
)

__all__ = [
    "FbankStageResult",
    "HotlineFbank",
    "compute_fbank_for_corpus",
    "compute_fbank_for_split",
]


@dataclass(frozen=True)
class HotlineFbankConfig(FbankConfig):
    """:class:`serving.features.FbankConfig` with the (de)serialization lhotse expects."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> HotlineFbankConfig:
        return HotlineFbankConfig(**data)


@register_extractor
class HotlineFbank(FeatureExtractor):
    """80-dim log-mel fbank exactly as the serving engine computes it (kaldi-native-fbank)."""

    name = "hotline-fbank"
    config_type = HotlineFbankConfig

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        x = np.asarray(samples)
        if x.ndim == 2:
            if x.shape[0] != 1:
                raise ValueError(
                    f"HotlineFbank takes mono audio, got {x.shape[0]} channels; "
                    "pick a channel in the cut first"
                )
            x = x[0]
        return compute_fbank(x, sampling_rate, self.config)

    @property
    def frame_shift(self) -> float:
        return self.config.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        return self.config.num_bins

    @staticmethod
    def compute_energy(features: np.ndarray) -> float:
        return float(np.sum(np.exp(features)))

    @staticmethod
    def mix(
        features_a: np.ndarray, features_b: np.ndarray, energy_scaling_factor_b: float
    ) -> np.ndarray:
        return np.log(np.exp(features_a) + energy_scaling_factor_b * np.exp(features_b)).astype(
            np.float32
        )


@dataclass
class FbankStageResult:
    corpus: str
    split: str
    cuts: int
    frames: int
    hours: float
    seconds: float  # wall-clock time
    manifest: str


def compute_fbank_for_split(
    corpus: str,
    split: str,
    *,
    manifests: str | Path = "data/manifests",
    out: str | Path = "data/fbank",
    jobs: int = 1,
    config: FbankConfig | None = None,
) -> FbankStageResult:
    """Compute and store features for one split's raw cuts; see the module docstring."""
    from lhotse import CutSet, LilcomChunkyWriter, load_manifest

    start_time = time.perf_counter()
    src = raw_cuts_path(Path(manifests), corpus, split)
    if not src.is_file():
        raise FileNotFoundError(f"{src} is missing; run `hotline-asr data import` first")
    cuts = load_manifest(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    final_dir = feats_dir(out, corpus, split)
    tmp_dir = final_dir.with_name(final_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)

    extractor = HotlineFbank(HotlineFbankConfig(**asdict(config or FbankConfig())))
    jobs = max(1, min(int(jobs), len(cuts)))
    try:
        if jobs > 1:
            # Warm up in the parent (imports scipy.signal, designs the resampling filters):
            # forked workers inherit that instead of each paying seconds for it.
            for rate in sorted({c.sampling_rate for c in cuts}):
                extractor.extract(np.zeros(rate // 10, dtype=np.float32), rate)
            # fork: the workers inherit the imported modules instead of re-importing torch.
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                with_feats = cuts.compute_and_store_features(
                    extractor=extractor,
                    storage_path=tmp_dir,
                    num_jobs=jobs,
                    storage_type=LilcomChunkyWriter,
                    executor=pool,
                    progress_bar=False,
                )
        else:
            with_feats = cuts.compute_and_store_features(
                extractor=extractor,
                storage_path=tmp_dir / "feats-0",
                storage_type=LilcomChunkyWriter,
                progress_bar=False,
            )
        by_id = {c.id: c for c in with_feats}
        lost = [c.id for c in cuts if c.id not in by_id]
        if lost:
            raise RuntimeError(
                f"{len(lost)} cut(s) of {src} lost their audio while computing features "
                f"(first: {lost[:5]}); re-run `hotline-asr data import` to check the audio"
            )
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise

    def moved(cut):
        sp = cut.features.storage_path
        assert sp.startswith(str(tmp_dir)), sp
        feats = fastcopy(cut.features, storage_path=str(final_dir) + sp[len(str(tmp_dir)) :])
        return fastcopy(cut, features=feats)

    ordered = CutSet.from_cuts(moved(by_id[c.id]) for c in cuts)

    # Swap the feature folder, then write the manifest that points into it.
    old_dir = final_dir.with_name(final_dir.name + ".old")
    shutil.rmtree(old_dir, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(old_dir)
    tmp_dir.rename(final_dir)
    dst = fbank_cuts_path(out, corpus, split)
    with AtomicWriter() as w:
        w.manifest(ordered, dst)
    shutil.rmtree(old_dir, ignore_errors=True)

    return FbankStageResult(
        corpus=corpus,
        split=split,
        cuts=len(ordered),
        frames=sum(c.num_frames for c in ordered),
        hours=sum(c.duration for c in ordered) / 3600,
        seconds=time.perf_counter() - start_time,
        manifest=str(dst),
    )


def compute_fbank_for_corpus(
    corpus: str,
    *,
    manifests: str | Path = "data/manifests",
    out: str | Path = "data/fbank",
    jobs: int = 1,
    splits: list[str] | None = None,
) -> list[FbankStageResult]:
    """Features for every split of ``corpus`` that has raw cuts in ``manifests``."""
    check_name("corpus", corpus)
    available = [
        s
        for s in find_splits(Path(manifests), corpus, "supervisions")
        if raw_cuts_path(Path(manifests), corpus, s).is_file()
    ]
    if not available:
        raise FileNotFoundError(
            f"no {corpus}_cuts_<split>_raw.jsonl.gz in {manifests}; "
            "run `hotline-asr data import` first"
        )
    if splits:
        missing = [s for s in splits if s not in available]
        if missing:
            raise FileNotFoundError(
                f"split(s) {', '.join(missing)} of {corpus} not in {manifests}; "
                f"found {', '.join(available)}"
            )
        available = list(splits)
    return [
        compute_fbank_for_split(corpus, s, manifests=manifests, out=out, jobs=jobs)
        for s in available
    ]
