"""Lhotse data pipeline for transducer training: samplers, batches, augmentation.

Features are precomputed (lilcom) by default. With ``augment.on_the_fly: true`` each batch loads
audio instead, applies speed perturbation (lhotse ``perturb_speed``), the telephone channel, noise
and gain (:mod:`training.augment`) and computes fbank with ``serving.features.compute_fbank``.
SpecAugment (lhotse's) applies to both paths during training.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

LOG_EPS = math.log(1e-10)
FEATURE_RATE = 100  # frames per second (10 ms shift)


@dataclass
class SpecAugmentOptions:
    enabled: bool = True
    time_warp_factor: int = 0  # 0 disables time warp (lhotse's default is 80)
    num_feature_masks: int = 2
    features_mask_size: int = 27
    num_frame_masks: int = 10
    frames_mask_size: int = 100
    max_frames_mask_fraction: float = 0.15
    p: float = 0.9


@dataclass
class DataOptions:
    """The ``data`` section of a recipe (paths relative to the project root)."""

    train_cuts: list[str] = field(default_factory=list)
    dev_cuts: list[str] = field(default_factory=list)
    # Mixing weights for several train manifests (e.g. [0.7, 0.3]); equal when empty. The first
    # is used whole; the others' shares are drawn anew each epoch.
    train_weights: list[float] = field(default_factory=list)
    max_duration: float = 60.0  # seconds of audio per batch
    num_buckets: int = 10
    num_workers: int = 0
    shuffle: bool = True
    seed: int = 42
    # Curriculum: the first N epochs go through the cuts shortest-first.
    sort_by_duration_epochs: int = 1
    max_cut_duration: float = 20.0  # drop longer cuts (memory on CPU)
    dev_max_cuts: int = 200  # cap on dev utterances (loss and CER)


@dataclass
class AugmentSection:
    """The ``augment`` section: SpecAugment plus optional on-the-fly audio augmentation."""

    on_the_fly: bool = False
    speed_perturb: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    specaug: SpecAugmentOptions = field(default_factory=SpecAugmentOptions)
    audio: dict[str, Any] = field(default_factory=dict)  # training.augment.AugmentOptions


def _pad_stack(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    out = torch.full((len(feats), int(lens.max()), feats[0].shape[1]), LOG_EPS)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lens


def cut_text(cut) -> str:
    return "".join(s.text or "" for s in cut.supervisions)


def cut_custom(cut) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    for s in cut.supervisions:
        custom.update(s.custom or {})
    return custom


class TransducerDataset(torch.utils.data.Dataset):
    """Turns a ``CutSet`` batch into a dict of padded features and targets.

    Keys: ``features`` (N, T, 80) padded with LOG_EPS, ``feature_lens`` (N,), ``tokens``
    (list of id lists), ``pinyin`` (list of id lists, when a pinyin encoder is given), ``texts``,
    ``cut_ids``, ``customs`` (the supervisions' ``custom`` dicts).
    """

    def __init__(
        self,
        text_to_ids: Callable[[str], list[int]],
        pinyin_to_ids: Callable[[str], list[int]] | None = None,
        specaug: SpecAugmentOptions | None = None,
        on_the_fly: bool = False,
        speed_perturb: list[float] | None = None,
        audio_augment: Callable[[np.ndarray, int, np.random.Generator], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        self.text_to_ids = text_to_ids
        self.pinyin_to_ids = pinyin_to_ids
        self.on_the_fly = on_the_fly
        self.speed_perturb = [f for f in (speed_perturb or []) if f != 1.0]
        self.audio_augment = audio_augment
        self.seed = seed
        self._calls = 0
        self.specaug = None
        if specaug is not None and specaug.enabled:
            from lhotse.dataset import SpecAugment

            self.specaug = SpecAugment(
                time_warp_factor=specaug.time_warp_factor or None,
                num_feature_masks=specaug.num_feature_masks,
                features_mask_size=specaug.features_mask_size,
                num_frame_masks=specaug.num_frame_masks,
                frames_mask_size=specaug.frames_mask_size,
                max_frames_mask_fraction=specaug.max_frames_mask_fraction,
                p=specaug.p,
            )

    def _rng(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        self._calls += 1
        return np.random.default_rng([self.seed, worker, self._calls, torch.initial_seed() % 2**31])

    def _features_on_the_fly(self, cut, rng: np.random.Generator) -> torch.Tensor:
        from serving.audio import resample
        from serving.features import compute_fbank

        if self.speed_perturb and rng.random() < 2 / 3:
            cut = cut.drop_features().perturb_speed(float(rng.choice(self.speed_perturb)))
        audio = cut.load_audio()
        samples = np.asarray(audio[0] if audio.ndim == 2 else audio, dtype=np.float32)
        sr = cut.sampling_rate
        if sr != 16000:
            samples, sr = resample(samples, sr, 16000), 16000
        if self.audio_augment is not None:
            samples = self.audio_augment(samples, sr, rng)
        return torch.from_numpy(np.asarray(compute_fbank(samples, sr), dtype=np.float32))

    def __getitem__(self, cuts) -> dict[str, Any]:
        cuts = cuts.sort_by_duration(ascending=False)
        if self.on_the_fly:
            rng = self._rng()
            feats = [self._features_on_the_fly(c, rng) for c in cuts]
        else:
            feats = [
                torch.from_numpy(np.asarray(c.load_features(), dtype=np.float32)) for c in cuts
            ]
        features, lens = _pad_stack(feats)
        if self.specaug is not None:
            segments = torch.stack(
                [torch.arange(len(feats)), torch.zeros(len(feats), dtype=torch.int64), lens], dim=1
            ).to(torch.int32)
            features = self.specaug(features, segments)
        texts = [cut_text(c) for c in cuts]
        batch = {
            "features": features,
            "feature_lens": lens,
            "tokens": [self.text_to_ids(t) for t in texts],
            "texts": texts,
            "cut_ids": [c.id for c in cuts],
            "customs": [cut_custom(c) for c in cuts],
        }
        if self.pinyin_to_ids is not None:
            batch["pinyin"] = [self.pinyin_to_ids(t) for t in texts]
        return batch


def load_cuts(paths: list[str | Path], root: Path | None = None, max_duration: float | None = None):
    """Read and concatenate cut manifests (relative paths resolve against ``root``)."""
    from lhotse import CutSet

    if not paths:
        raise ValueError(
            "no cut manifests given: set data.train_cuts / data.dev_cuts in the recipe"
        )
    sets = []
    for p in paths:
        p = Path(p)
        if root is not None and not p.is_absolute():
            p = root / p
        if not p.is_file():
            raise FileNotFoundError(
                f"cut manifest {p} is missing: run `hotline-asr data import` and `data fbank` first"
            )
        sets.append(CutSet.from_file(p))
    cuts = sets[0] if len(sets) == 1 else CutSet.from_cuts(c for s in sets for c in s)
    # A desensitized transcript holds a placeholder where the audio still speaks the number:
    # training on (or scoring against) it would teach the wrong text, so such cuts are left out.
    cuts = CutSet.from_cuts(c for c in cuts if not is_desensitized(c))
    if max_duration:
        cuts = CutSet.from_cuts(c for c in cuts if c.duration <= max_duration)
    return cuts.to_eager()


def is_desensitized(cut) -> bool:
    """True when any supervision's transcript had personal data masked at import."""
    return any((s.custom or {}).get("desensitized") for s in cut.supervisions)


class SkipBatches(torch.utils.data.Sampler):
    """Wraps a lhotse sampler and drops its first ``skip`` batches (cheap: no audio is read)."""

    def __init__(self, sampler, skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.skip):
            if next(it, None) is None:
                return
        # Not `yield from it`: iter() on a lhotse sampler restarts it.
        while (batch := next(it, None)) is not None:
            yield batch


class TransducerDataModule:
    """Builds the train and dev ``DataLoader``s; a LightningDataModule via :func:`as_lightning`.

    ``train_dataloader(epoch)`` returns a shortest-first sampler for the curriculum epochs and a
    ``DynamicBucketingSampler`` afterwards; ranks split the cuts themselves (set Lightning's
    ``use_distributed_sampler=False``).
    """

    def __init__(
        self,
        data: DataOptions,
        augment: AugmentSection,
        text_to_ids: Callable[[str], list[int]],
        pinyin_to_ids: Callable[[str], list[int]] | None = None,
        root: Path | None = None,
    ) -> None:
        self.data = data
        self.augment = augment
        self.text_to_ids = text_to_ids
        self.pinyin_to_ids = pinyin_to_ids
        self.root = root
        self._train = None  # (epoch, CutSet)
        self._train_sets = None  # the loaded train manifests
        self._dev = None

    @property
    def train_cuts(self):
        """The train cuts of epoch 0 (see :meth:`train_cuts_for_epoch`)."""
        return self.train_cuts_for_epoch(0)

    def train_cuts_for_epoch(self, epoch: int):
        """The cuts one epoch trains on. With several manifests, the first is used whole and a
        fresh share of each other one is drawn every epoch (the same draw on every rank and on
        a resume), so a fine-tune's base share keeps bringing base cuts it has not seen."""
        if self._train is None or self._train[0] != epoch:
            self._train = (epoch, self._load_train(epoch))
        return self._train[1]

    @property
    def dev_cuts(self):
        if self._dev is None:
            cuts = load_cuts(self.data.dev_cuts, self.root)
            self._dev = cuts.subset(first=min(len(cuts), self.data.dev_max_cuts)).to_eager()
        return self._dev

    def _load_train(self, epoch: int):
        from lhotse import CutSet

        if self._train_sets is None:
            self._train_sets = [
                load_cuts([p], self.root, self.data.max_cut_duration) for p in self.data.train_cuts
            ]
        sets = self._train_sets
        if len(sets) == 1:
            return sets[0]
        weights = self.data.train_weights or [1.0] * len(sets)
        if len(weights) != len(sets):
            raise ValueError(
                f"data.train_weights has {len(weights)} entries for {len(sets)} train manifests"
            )
        # The first manifest keeps its size; every other one is subsampled (or repeated) to its
        # weight relative to the first, e.g. [0.7, 0.3] adds 3/7 as many base cuts, drawn anew
        # for each epoch. Eager, so the curriculum sort and the bucketing see one finite CutSet.
        rng = np.random.default_rng([self.data.seed, epoch])
        parts = list(sets[0])
        for s, w in zip(sets[1:], weights[1:], strict=True):
            n = max(1, round(len(sets[0]) * w / weights[0]))
            items = list(s)
            ids = rng.choice(len(items), size=n, replace=n > len(items))
            for k, i in enumerate(ids):
                c = items[int(i)]
                parts.append(c.with_id(f"{c.id}_mix{k}") if n > len(items) else c)
        return CutSet.from_cuts(parts)

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def train_dataset(self) -> TransducerDataset:
        from training.augment import AudioAugmentor, AugmentOptions

        aug = None
        if self.augment.on_the_fly:
            aug = AudioAugmentor(AugmentOptions.from_dict(self.augment.audio))
        return TransducerDataset(
            self.text_to_ids,
            self.pinyin_to_ids,
            specaug=self.augment.specaug,
            on_the_fly=self.augment.on_the_fly,
            speed_perturb=self.augment.speed_perturb if self.augment.on_the_fly else None,
            audio_augment=aug,
            seed=self.data.seed,
        )

    def train_dataloader(self, epoch: int = 0, skip: int = 0) -> torch.utils.data.DataLoader:
        """The loader for ``epoch``; ``skip`` drops its first batches (a resumed epoch)."""
        from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

        world, rank = self._rank()
        cuts = self.train_cuts_for_epoch(epoch)
        if epoch < self.data.sort_by_duration_epochs:
            sampler = SimpleCutSampler(
                cuts.sort_by_duration(ascending=True),
                max_duration=self.data.max_duration,
                shuffle=False,
                world_size=world,
                rank=rank,
                seed=self.data.seed,
                drop_last=False,  # lhotse then gives every rank the same number of batches
            )
        else:
            sampler = DynamicBucketingSampler(
                cuts,
                max_duration=self.data.max_duration,
                num_buckets=max(1, min(self.data.num_buckets, len(cuts))),
                shuffle=self.data.shuffle,
                world_size=world,
                rank=rank,
                seed=self.data.seed,
                drop_last=False,  # lhotse then gives every rank the same number of batches
            )
        sampler.set_epoch(epoch)
        if skip > 0:
            sampler = SkipBatches(sampler, skip)
        return self._loader(self.train_dataset(), sampler)

    def dev_dataloader(self) -> torch.utils.data.DataLoader:
        from lhotse.dataset import SimpleCutSampler

        world, rank = self._rank()
        sampler = SimpleCutSampler(
            self.dev_cuts, max_duration=self.data.max_duration, world_size=world, rank=rank
        )
        return self._loader(TransducerDataset(self.text_to_ids, self.pinyin_to_ids), sampler)

    def _loader(self, dataset, sampler) -> torch.utils.data.DataLoader:
        workers = min(self.data.num_workers, 2)
        if not workers:
            return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None)
        return StopSignalSafeLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=workers,
            persistent_workers=False,
            worker_init_fn=_ignore_stop_signals,
            multiprocessing_context="fork",  # workers inherit the blocked signal mask
        )

    def as_lightning(self):
        """A ``LightningDataModule`` whose train loader follows the trainer's current epoch
        (use ``reload_dataloaders_every_n_epochs=1`` for the curriculum to switch)."""
        import lightning.pytorch as pl

        core = self

        class _DataModule(pl.LightningDataModule):
            def train_dataloader(self):
                if self.trainer is None:
                    return core.train_dataloader(0)
                epoch = self.trainer.current_epoch
                module = self.trainer.lightning_module
                skip = module.batches_to_skip(epoch) if hasattr(module, "batches_to_skip") else 0
                return core.train_dataloader(epoch, skip)

            def val_dataloader(self):
                return core.dev_dataloader()

        return _DataModule()


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM/SIGINT to the trainer: a ``kill`` of the whole process
    group (systemd, Kubernetes, Ctrl-C) must not kill them mid-step, or the graceful stop in
    ``GracefulStop`` fails with "DataLoader worker ... exited unexpectedly". Workers still exit
    when the trainer shuts them down or dies (their watchdog checks the parent).

    The workers start with both signals blocked (``StopSignalSafeLoader``); a signal that
    arrived since is discarded by ``SIG_IGN`` before they are unblocked."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class StopSignalSafeLoader(torch.utils.data.DataLoader):
    """A DataLoader whose workers cannot be killed by a stop signal while they start.

    torch installs a SIGTERM handler in each worker that re-raises the signal (killing the
    worker) unless the parent sent it, and only later runs ``worker_init_fn``. A process-group
    ``kill`` that lands in between killed the worker, and the trainer then failed with
    "DataLoader worker exited unexpectedly" instead of stopping gracefully; the train loader is
    rebuilt every epoch, so short epochs hit it often. Here the trainer blocks the stop signals
    while it forks the workers (they inherit the mask, and ``_ignore_stop_signals`` unblocks
    them); in the trainer a signal that came meanwhile is delivered when it unblocks them."""

    def _get_iterator(self):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
