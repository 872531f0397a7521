"""Model folder discovery (fp32 / int8 files) and the metadata the engine reads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from serving.engine.model import OnlineTransducerModel, find_model_files

FILES = {
    "encoder": "encoder-chunk-16-left-64.onnx",
    "decoder": "decoder-chunk-16-left-64.onnx",
    "joiner": "joiner-chunk-16-left-64.onnx",
}


def link_folder(src, dst, names: dict[str, str]):
    dst.mkdir()
    for new, old in names.items():
        os.symlink(src / old, dst / new)
    return dst


def test_finds_fp32_files_and_int8_twins(icefall_fixture, tmp_path):
    names = {"tokens.txt": "tokens.txt"}
    for f in FILES.values():
        names[f] = f
        names[f.replace(".onnx", ".int8.onnx")] = f  # stand-in twins: the same graph
    folder = link_folder(icefall_fixture, tmp_path / "m", names)
    fp32 = find_model_files(folder)
    q = find_model_files(folder, int8=True)
    assert fp32.encoder.name == FILES["encoder"]
    assert q.encoder.name == "encoder-chunk-16-left-64.int8.onnx"
    assert q.joiner.name.endswith(".int8.onnx") and q.decoder.name.endswith(".int8.onnx")


def test_folder_errors_say_what_is_missing(icefall_fixture, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_model_files(tmp_path / "nope")
    no_tokens = link_folder(icefall_fixture, tmp_path / "a", {f: f for f in FILES.values()})
    with pytest.raises(FileNotFoundError, match="tokens.txt"):
        find_model_files(no_tokens)
    no_int8 = link_folder(
        icefall_fixture,
        tmp_path / "b",
        {"tokens.txt": "tokens.txt", **{f: f for f in FILES.values()}},
    )
    with pytest.raises(FileNotFoundError, match="int8"):
        find_model_files(no_int8, int8=True)
    two = link_folder(
        icefall_fixture,
        tmp_path / "c",
        {
            "tokens.txt": "tokens.txt",
            "encoder-a.onnx": FILES["encoder"],
            **{f: f for f in FILES.values()},
        },
    )
    with pytest.raises(ValueError, match="several encoder"):
        find_model_files(two)


def test_metadata_and_init_states_follow_the_export(icefall_fixture):
    m = OnlineTransducerModel.from_folder(icefall_fixture, num_threads=1)
    assert (m.chunk_size, m.chunk_shift, m.subsampling) == (45, 32, 4)
    assert (m.context_size, m.vocab_size, m.joiner_dim, m.feature_dim) == (2, 500, 256, 80)
    assert m.num_encoder_layers == [2, 1, 1, 1, 1, 1]
    states = m.init_states()
    assert len(states) == 6 * 7 + 2
    shapes = {s.name: v.shape for s, v in zip(m.state_specs, states, strict=True)}
    # The fixture's onnx-io.json shapes at N=1.
    assert shapes["cached_key_4"] == (8, 1, 256)
    assert shapes["cached_nonlin_attn_2"] == (1, 1, 32, 72)
    assert shapes["cached_conv1_3"] == (1, 128, 7)
    assert shapes["embed_states"] == (1, 128, 3, 19)
    assert states[-1].dtype == np.int64 and states[-1].shape == (1,)
    assert m.state_bytes() == sum(v.nbytes for v in states)


def test_rejects_a_non_zipformer2_encoder(icefall_fixture, tmp_path):
    # The decoder has no encoder metadata: loading it as an encoder must fail clearly.
    folder = link_folder(
        icefall_fixture,
        tmp_path / "m",
        {
            "tokens.txt": "tokens.txt",
            "encoder.onnx": FILES["decoder"],
            "decoder.onnx": FILES["decoder"],
            "joiner.onnx": FILES["joiner"],
        },
    )
    with pytest.raises(ValueError, match="model_type"):
        OnlineTransducerModel.from_folder(folder)
