from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import load_manifest
from lhotse.features.base import FeatureExtractor
from typer.testing import CliRunner

from hotline_asr.cli import app
from serving.audio import load_audio
from serving.features import FbankConfig, compute_fbank
from training.data.fbank import HotlineFbank, HotlineFbankConfig, compute_fbank_for_corpus
from training.data.importers import import_corpus
from training.data.manifests import fbank_cuts_path, feats_dir

torch.set_num_threads(1)
LILCOM_MAX_ERROR = 2.0**-6 + 1e-6  # LilcomChunkyWriter's default tick power is -5


def _corpus(root: Path, sr: int, n: int = 4) -> Path:
    d = root / "train"
    d.mkdir(parents=True)
    rng = np.random.default_rng(sr)
    scp, text = [], []
    for i in range(n):
        secs = 0.6 + 0.37 * i
        t = np.arange(int(secs * sr)) / sr
        x = 0.2 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(d / f"u{i}.wav", x.astype(np.float32), sr, subtype="PCM_16")
        scp.append(f"u{i} u{i}.wav")
        text.append(f"u{i} 第{i + 1}句话")
    (d / "wav.scp").write_text("\n".join(scp) + "\n")
    (d / "text").write_text("\n".join(text) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("sr,jobs", [(16000, 1), (8000, 2)])
def test_stored_features_equal_compute_fbank(tmp_path: Path, sr: int, jobs: int) -> None:
    import_corpus(_corpus(tmp_path / "src", sr), "tiny", out_dir=tmp_path / "data")
    (res,) = compute_fbank_for_corpus(
        "tiny",
        manifests=tmp_path / "data" / "manifests",
        out=tmp_path / "data" / "fbank",
        jobs=jobs,
    )
    assert res.cuts == 4
    cuts = load_manifest(fbank_cuts_path(tmp_path / "data" / "fbank", "tiny", "train"))
    assert [c.id for c in cuts] == ["u0", "u1", "u2", "u3"]
    store = feats_dir(tmp_path / "data" / "fbank", "tiny", "train")
    assert len(list(store.glob("*.lca"))) == jobs
    assert sorted(p.name for p in (tmp_path / "data" / "fbank").iterdir()) == [
        "tiny_cuts_train.jsonl.gz",
        "tiny_feats_train",
    ]
    for cut in cuts:
        assert cut.features.type == "hotline-fbank" and cut.num_features == 80
        assert cut.features.storage_path.startswith(str(store))
        stored = cut.load_features()
        x, file_sr = load_audio(cut.recording.sources[0].source)
        assert file_sr == sr
        direct = compute_fbank(x, sr)
        assert stored.shape == direct.shape == (round(cut.duration * 100), 80)
        assert np.abs(stored - direct).max() <= LILCOM_MAX_ERROR
    assert res.frames == sum(c.num_frames for c in cuts)


def test_extractor_is_registered_and_round_trips() -> None:
    ex = HotlineFbank()
    again = FeatureExtractor.from_dict(ex.to_dict())
    assert isinstance(again, HotlineFbank) and again.config == HotlineFbankConfig()
    assert asdict(again.config) == asdict(FbankConfig())
    assert ex.frame_shift == 0.01 and ex.feature_dim(8000) == 80
    x = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    np.testing.assert_array_equal(ex.extract(x[None, :], 8000), compute_fbank(x, 8000))
    with pytest.raises(ValueError, match="mono"):
        ex.extract(np.stack([x, x]), 8000)


def test_cli_fbank_reruns_and_explains_missing_input(tmp_path: Path) -> None:
    import_corpus(_corpus(tmp_path / "src", 8000, n=2), "tiny", out_dir=tmp_path / "data")
    runner = CliRunner()
    args = [
        "data",
        "fbank",
        "--corpus",
        "tiny",
        "--manifests",
        str(tmp_path / "data" / "manifests"),
    ]
    args += ["--out", str(tmp_path / "data" / "fbank")]
    for _ in range(2):  # a second run replaces the first one's features
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "tiny/train: 2 cuts" in res.output
    store = feats_dir(tmp_path / "data" / "fbank", "tiny", "train")
    assert [p.name for p in store.iterdir()] == ["feats-0.lca"]
    assert not list((tmp_path / "data" / "fbank").glob("*.tmp")) and not list(
        (tmp_path / "data" / "fbank").glob("*.old")
    )
    res = runner.invoke(app, [*args[:3], "other", *args[4:]])
    assert res.exit_code == 1 and "run `hotline-asr data import` first" in res.output
