"""Exporting icefall's fixture checkpoint gives ONNX files interchangeable with icefall's own:
same IO names, dtypes, shapes and metadata, same outputs as the torch reference and as icefall's
ONNX files, and sherpa-onnx decodes them to the same text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.export import ExportOptions, export_checkpoint
from training.export_runtime import OnnxTransducer

ICEFALL = {k: f"{k}-chunk-16-left-64.onnx" for k in ("encoder", "decoder", "joiner")}


@pytest.fixture(scope="module")
def exported(icefall_fixture, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export")
    # icefall's reference files are chunk 16, left context 64 (our served default is 128)
    options = ExportOptions(chunk_size=16, left_context=64)
    result = export_checkpoint(icefall_fixture / "epoch-99.pt", out, options)
    print(f"export of epoch-99.pt took {result.seconds:.1f} s")
    return result


@pytest.fixture(scope="module")
def io_spec(icefall_fixture):
    return json.loads((icefall_fixture / "onnx-io.json").read_text())


@pytest.fixture(scope="module")
def reference(icefall_fixture):
    from safetensors.numpy import load_file

    return load_file(icefall_fixture / "reference.safetensors")


def _describe(path):
    import onnx

    m = onnx.load(str(path))
    dtype = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.INT64: "int64"}

    def one(v):
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "dtype": dtype[v.type.tensor_type.elem_type], "shape": dims}

    meta = {p.key: p.value for p in m.metadata_props}
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    return [one(v) for v in m.graph.input], [one(v) for v in m.graph.output], meta, opset


@pytest.mark.parametrize("kind", ["encoder", "decoder", "joiner"])
def test_io_and_metadata_match_icefall(exported, io_spec, kind):
    inputs, outputs, meta, opset = _describe(getattr(exported, kind))
    spec = io_spec[kind]
    assert inputs == spec["inputs"]  # names, dtypes and shapes, incl. the symbolic batch "N"
    assert meta == spec["metadata_props"]
    assert opset == {"ai.onnx": 13}
    assert [o["name"] for o in outputs] == [o["name"] for o in spec["outputs"]]
    assert [o["dtype"] for o in outputs] == [o["dtype"] for o in spec["outputs"]]
    for ours, theirs in zip(outputs, spec["outputs"], strict=True):
        assert len(ours["shape"]) == len(theirs["shape"]), ours["name"]
        for a, b in zip(ours["shape"], theirs["shape"], strict=True):
            if b == "N" or isinstance(b, int):  # other symbolic names are exporter-chosen
                assert a == b, (ours["name"], ours["shape"], theirs["shape"])


def test_metadata_is_what_the_export_reports(exported, icefall_fixture):
    *_, meta, _ = _describe(icefall_fixture / ICEFALL["encoder"])
    assert exported.encoder_metadata == meta
    assert exported.decoder_metadata == {"context_size": "2", "vocab_size": "500"}
    assert exported.joiner_metadata == {"joiner_dim": "256"}
    assert exported.tokens.read_text() == (icefall_fixture / "tokens.txt").read_text()


def test_runtime_shapes_batch_2(exported, io_spec):
    m = OnnxTransducer.from_dir(exported.out_dir)
    x = np.zeros((2, m.window, 80), np.float32)
    out, states = m.run_encoder(x, m.init_states(2))
    shapes = {"encoder_out": list(out.shape)}
    shapes.update({f"new_{k}": list(v.shape) for k, v in states.items()})
    want = dict(io_spec["encoder_runtime_shapes_N2"])
    want.pop("x")
    assert shapes == want


def test_encoder_matches_torch_reference(exported, reference):
    m = OnnxTransducer.from_dir(exported.out_dir)
    first = m.stream_encoder(reference["stream.x"][:, : m.window])
    for name, value in first.states.items():
        ref = reference[f"stream.state_after_chunk0.{name}"]
        np.testing.assert_allclose(value, ref, atol=1e-5, rtol=0, err_msg=name)
    run = m.stream_encoder(reference["stream.x"])
    assert run.num_chunks == 5
    np.testing.assert_allclose(run.encoder_out, reference["stream.encoder_out_proj"], atol=1e-5)
    for name, value in run.states.items():
        ref = reference[f"stream.final_state.{name}"]
        assert value.dtype == (np.int64 if name == "processed_lens" else np.float32)
        # rtol: cached states reach ~15; CPU kernels differ by a few float32 ulps there
        np.testing.assert_allclose(value, ref, atol=1e-5, rtol=1e-6, err_msg=name)


def test_decoder_and_joiner_match_torch_reference(exported, reference):
    m = OnnxTransducer.from_dir(exported.out_dir)
    np.testing.assert_allclose(
        m.run_decoder(reference["decoder.y"]), reference["decoder.out_proj"], atol=1e-6, rtol=0
    )
    logit = m.run_joiner(reference["joiner.encoder_in"], reference["joiner.decoder_in"])
    np.testing.assert_allclose(logit, reference["joiner.logit"], atol=1e-5, rtol=0)


def test_same_outputs_as_icefall_onnx(exported, icefall_fixture):
    ours = OnnxTransducer.from_dir(exported.out_dir)
    theirs = OnnxTransducer(*(icefall_fixture / ICEFALL[k] for k in ICEFALL))
    rng = np.random.default_rng(7)
    feats = rng.standard_normal((3, 3 * ours.shift + ours.window, 80), dtype=np.float32)
    a, b = ours.stream_encoder(feats), theirs.stream_encoder(feats)
    np.testing.assert_allclose(a.encoder_out, b.encoder_out, atol=1e-5, rtol=0)
    for name in a.states:
        np.testing.assert_allclose(a.states[name], b.states[name], atol=1e-5, err_msg=name)
    y = np.array([[-1, 0], [3, 4], [499, 17]], np.int64)
    np.testing.assert_allclose(ours.run_decoder(y), theirs.run_decoder(y), atol=1e-6, rtol=0)
    e, d = a.encoder_out[:, 0], ours.run_decoder(y)
    np.testing.assert_allclose(ours.run_joiner(e, d), theirs.run_joiner(e, d), atol=1e-5, rtol=0)
    assert ours.greedy_search(a.encoder_out[0]) == theirs.greedy_search(b.encoder_out[0])


def _sherpa_decode(tokens, encoder, decoder, joiner) -> str:
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    rec = sherpa_onnx.OnlineRecognizer.from_transducer(
        str(tokens),
        str(encoder),
        str(decoder),
        str(joiner),
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
    )
    stream = rec.create_stream()
    noise = np.random.default_rng(1234).standard_normal(16000) * 0.1
    stream.accept_waveform(16000, noise.astype(np.float32))
    stream.accept_waveform(16000, np.zeros(int(0.66 * 16000), np.float32))
    stream.input_finished()
    while rec.is_ready(stream):
        rec.decode_stream(stream)
    return rec.get_result(stream)


def test_sherpa_onnx_decodes_like_icefall_export(exported, icefall_fixture, io_spec):
    ours = _sherpa_decode(exported.tokens, exported.encoder, exported.decoder, exported.joiner)
    d = icefall_fixture
    theirs = _sherpa_decode(d / "tokens.txt", *(d / ICEFALL[k] for k in ICEFALL))
    assert ours == theirs
    assert ours == io_spec["sherpa_onnx_check"]["result_text"]


def test_int8_files_load_and_run(exported, reference):
    import onnx

    assert set(exported.int8) == {"encoder", "decoder", "joiner"}
    for kind, path in exported.int8.items():
        fp32 = getattr(exported, kind)
        assert path.stat().st_size < fp32.stat().st_size
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops, kind
        if kind == "decoder":  # the embedding table is quantized too (Gather), as icefall does
            assert "DequantizeLinear" in ops
    m = OnnxTransducer.from_dir(exported.out_dir, int8=True)
    q = OnnxTransducer.from_dir(exported.out_dir)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((2, 2 * m.shift + m.window, 80), dtype=np.float32)
    a, b = m.stream_encoder(feats), q.stream_encoder(feats)
    assert a.encoder_out.shape == b.encoder_out.shape
    assert np.isfinite(a.encoder_out).all()
    # quantization error is visible but bounded relative to the signal
    err = np.abs(a.encoder_out - b.encoder_out).max()
    assert 0 < err < 0.1 * np.abs(b.encoder_out).max()
    dec = m.run_decoder(reference["decoder.y"])
    assert dec.shape == (3, 256) and np.isfinite(dec).all()
    assert m.run_joiner(a.encoder_out[:, 0], dec[:2]).shape == (2, 500)
