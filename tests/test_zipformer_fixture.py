"""Our Zipformer2 transducer against icefall's reference outputs (tolerances from the
fixture README: ~1e-5 on encoder outputs/states, ~1e-6 on decoder/joiner)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

LOG_EPS = -23.025850929940457
ENC_TOL = 1e-5
DEC_TOL = 1e-6
STATE_NAMES = ("cached_key", "cached_nonlin_attn", "cached_val1", "cached_val2")
STATE_NAMES += ("cached_conv1", "cached_conv2")


@pytest.fixture(scope="module")
def ref(icefall_fixture):
    from safetensors.torch import load_file

    path = icefall_fixture / "reference.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return load_file(str(path))


@pytest.fixture(scope="module")
def model(icefall_fixture):
    from training.model.checkpoint import load_icefall_checkpoint

    m, _ = load_icefall_checkpoint(icefall_fixture / "epoch-99.pt")
    return m


def _state_names(num_layers: int) -> list[str]:
    names = [f"{n}_{i}" for i in range(num_layers) for n in STATE_NAMES]
    return names + ["embed_states", "processed_lens"]


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def test_checkpoint_loads_with_config_from_json(model, icefall_fixture):
    from training.model.config import ZipformerConfig, preset

    cfg = ZipformerConfig.from_json(icefall_fixture / "hyper-params.json")
    assert cfg.encoder_dim == (64, 96, 128, 128, 96, 64)
    assert cfg.num_encoder_layers == (2, 1, 1, 1, 1, 1)
    assert cfg.causal and cfg.chunk_size == (16,) and cfg.left_context_frames == (64,)
    assert cfg == preset("fixture")
    assert sum(p.numel() for p in model.parameters()) == 2_557_098
    assert len(model.state_dict()) == 389
    assert not model.training


def test_encoder_embed(model, ref):
    with torch.no_grad():
        out, lens = model.encoder_embed(ref["input.x"], ref["input.x_lens"])
    assert lens.tolist() == ref["embed.out_lens"].tolist()
    assert _maxdiff(out, ref["embed.out"]) < ENC_TOL


@pytest.mark.parametrize("key", ["masked", "masked_decodepy", "masked_full"])
def test_masked_encoder(model, ref, key):
    x, x_lens = ref["input.x"], ref["input.x_lens"]
    if key == "masked_decodepy":  # decode.py's extra 30 frames of LOG_EPS for causal models
        x = torch.nn.functional.pad(x, (0, 0, 0, 30), value=LOG_EPS)
        x_lens = x_lens + 30
    elif key == "masked_full":
        x = ref["stream.x"]
        x_lens = torch.full((2,), x.shape[1], dtype=torch.int64)
    with torch.no_grad():
        out, lens = model.forward_encoder(x, x_lens)
    assert lens.tolist() == ref[f"{key}.encoder_out_lens"].tolist()
    assert _maxdiff(out, ref[f"{key}.encoder_out"]) < ENC_TOL


def test_explicit_chunk_arguments_change_the_mask(model, ref):
    x, x_lens = ref["input.x"], ref["input.x_lens"]
    with torch.no_grad():
        same, _ = model.forward_encoder(x, x_lens, chunk_size=16, left_context_frames=64)
        full, _ = model.forward_encoder(x, x_lens, chunk_size=-1)
    assert _maxdiff(same, ref["masked.encoder_out"]) < ENC_TOL
    assert _maxdiff(full, ref["masked.encoder_out"]) > 1e-3


def test_decoder(model, ref):
    with torch.no_grad():
        out = model.decoder(ref["decoder.y"], need_pad=False)
        assert _maxdiff(out, ref["decoder.out"]) < DEC_TOL
        proj = model.joiner.decoder_proj(out.squeeze(1))
        assert _maxdiff(proj, ref["decoder.out_proj"]) < DEC_TOL
        neg = model.decoder(ref["decoder.y_neg"], need_pad=False)
        assert _maxdiff(neg, ref["decoder.out_neg"]) < DEC_TOL
        seq = model.decoder(ref["decoder.y_seq"], need_pad=True)
        assert _maxdiff(seq, ref["decoder.out_seq_need_pad"]) < DEC_TOL


def test_joiner(model, ref):
    with torch.no_grad():
        logit = model.joiner(
            ref["joiner.encoder_in"], ref["joiner.decoder_in"], project_input=False
        )
        assert _maxdiff(logit, ref["joiner.logit"]) < DEC_TOL
        logit = model.joiner(
            ref["joiner.proj_encoder_in"], ref["joiner.proj_decoder_in"], project_input=True
        )
        assert _maxdiff(logit, ref["joiner.logit_projected"]) < DEC_TOL


def test_init_states_match_icefall_shapes_and_order(model, ref):
    states = model.get_init_states(batch_size=2)
    names = _state_names(7)
    assert len(states) == len(names) == 44
    for name, s in zip(names, states, strict=True):
        r = ref[f"stream.init_state.{name}"]
        assert s.shape == r.shape, name
        assert torch.count_nonzero(s) == 0, name
    assert states[-1].dtype == torch.int64


def test_streaming_chunks_and_states(model, ref):
    names = _state_names(7)
    states = model.get_init_states(batch_size=2)
    x = ref["stream.x"]
    outs = []
    with torch.no_grad():
        for k in range(5):
            window = x[:, 32 * k : 32 * k + 45]
            lens = torch.full((2,), 45, dtype=torch.int64)
            out, out_lens, states = model.streaming_forward_encoder(
                window, lens, states, chunk_size=16, left_context_frames=64
            )
            assert out_lens.tolist() == ref[f"stream.chunk{k}.encoder_out_lens"].tolist()
            assert _maxdiff(out, ref[f"stream.chunk{k}.encoder_out"]) < ENC_TOL, k
            if k == 0:
                for name, s in zip(names, states, strict=True):
                    r = ref[f"stream.state_after_chunk0.{name}"]
                    assert _maxdiff(s, r) < ENC_TOL, name
            outs.append(out)
    for name, s in zip(names, states, strict=True):
        r = ref[f"stream.final_state.{name}"]
        # cached states reach ~15 after 5 chunks: allow 1e-6 relative on top (a few float32
        # ulps), as CPU kernels (AVX2 vs AVX-512) round differently from the fixture's machine
        assert _maxdiff(s, r) < ENC_TOL + 1e-6 * float(r.abs().max()), name
    stream = torch.cat(outs, dim=1)
    assert _maxdiff(stream, ref["stream.encoder_out"]) < ENC_TOL
    with torch.no_grad():
        proj = model.joiner.encoder_proj(stream)
    assert _maxdiff(proj, ref["stream.encoder_out_proj"]) < ENC_TOL
    # Streaming equals the chunk-masked forward on the same, fully valid input.
    assert _maxdiff(stream, ref["masked_full.encoder_out"][:, :40]) < 2e-6


def test_streaming_rejects_wrong_window(model):
    states = model.get_init_states(batch_size=1)
    with pytest.raises(ValueError, match="chunk_size"):
        model.streaming_forward_encoder(
            torch.zeros(1, 40, 80),
            torch.tensor([40]),
            states,
            chunk_size=16,
            left_context_frames=64,
        )
