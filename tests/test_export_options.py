"""Export of our own model files, other chunk sizes, the parity check (it passes on a faithful
export and fails on a tampered model), the CLI and the error messages."""

from __future__ import annotations

import pytest
import torch

from training.export import (
    ExportOptions,
    export_checkpoint,
    export_transducer,
    load_for_export,
    read_tokens,
)
from training.export_check import check_export
from training.export_runtime import OnnxTransducer
from training.model.checkpoint import save_model
from training.model.config import preset
from training.model.transducer import Transducer

TOKENS = ["<blk>", "<sos/eos>", "<unk>", *"一二三四五六七八九十市民热线投诉建议咨询"]


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=len(TOKENS), chunk_size=(32,), left_context_frames=(128,))
    return Transducer(cfg).eval()


@pytest.fixture(scope="module")
def tiny_export(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    save_model(d / "model.pt", tiny_model, tokens=TOKENS)
    options = ExportOptions(chunk_size=32, left_context=128, int8=False)
    return export_checkpoint(d / "model.pt", d / "onnx", options)


def test_own_format_with_chunk_32_left_128(tiny_export, tiny_model):
    meta = tiny_export.encoder_metadata
    assert meta["decode_chunk_len"] == "64" and meta["T"] == "77"
    assert meta["left_context_len"] == "128,64,32,16,32,64"
    assert meta["encoder_dims"] == "32,48,64,64,48,32"
    assert meta["num_encoder_layers"] == "1,1,1,1,1,1"
    assert tiny_export.decoder_metadata["vocab_size"] == str(len(TOKENS))
    assert read_tokens(tiny_export.tokens) == TOKENS
    assert tiny_export.int8 == {}
    assert not list(tiny_export.out_dir.glob("*.int8.onnx"))
    m = OnnxTransducer.from_dir(tiny_export.out_dir)
    assert m.window == 77 and m.shift == 64
    assert m.state_names[0] == "cached_key_0" and len(m.state_names) == 6 * 6 + 2
    assert m.init_states(3)["cached_key_0"].shape == (128, 3, 2 * 16)


def test_check_passes_on_faithful_export(tiny_export, tiny_model):
    report = check_export(tiny_model, tiny_export.out_dir, num_chunks=3, batch_size=3)
    assert report.ok, report.table()
    assert report.num_chunks == 3 and report.batch_size == 3
    assert report.encoder_out_max_abs_diff < 1e-4
    assert report.state_max_abs_diff < 1e-4
    assert report.transcripts_agree and len(report.torch_hyps) == 3
    assert report.int8_hyps is None and report.int8_token_error_rate is None
    table = report.table()
    assert "encoder_out max |torch - onnx|" in table and table.rstrip().endswith("yes")


def test_check_fails_when_torch_model_differs(tiny_export, tiny_model):
    import copy

    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        other.joiner.encoder_proj.bias.add_(0.01)
        other.encoder.encoders[0].layers[0].norm.bias.add_(0.5)
    report = check_export(other, tiny_export.out_dir, num_chunks=2)
    assert not report.ok
    assert report.encoder_out_max_abs_diff > 1e-3
    assert report.state_max_abs_diff > 1e-3  # the layer norm feeds the cached keys
    assert "NO" in report.table().splitlines()[-1]


def test_errors_say_what_to_do(tiny_model, icefall_fixture, tmp_path):
    with pytest.raises(ValueError, match="vocab_size is 23"):
        export_transducer(tiny_model, tmp_path, TOKENS[:-1], ExportOptions(int8=False))
    with pytest.raises(ValueError, match="left_context=60"):
        export_transducer(tiny_model, tmp_path, TOKENS, ExportOptions(left_context=60))
    non_causal = Transducer(preset("tiny", vocab_size=len(TOKENS), causal=False))
    with pytest.raises(ValueError, match="causal"):
        export_transducer(non_causal, tmp_path, TOKENS)
    # an icefall checkpoint without tokens.txt beside it
    (tmp_path / "epoch-1.pt").symlink_to(icefall_fixture / "epoch-99.pt")
    (tmp_path / "hyper-params.json").symlink_to(icefall_fixture / "hyper-params.json")
    with pytest.raises(FileNotFoundError, match="--tokens"):
        load_for_export(tmp_path / "epoch-1.pt")
    model, table = load_for_export(tmp_path / "epoch-1.pt", icefall_fixture / "tokens.txt")
    assert len(table) == model.decoder.vocab_size == 500
    (tmp_path / "bad.txt").write_text("<blk> 0\na 2\n")
    with pytest.raises(ValueError, match="without gaps"):
        read_tokens(tmp_path / "bad.txt")
