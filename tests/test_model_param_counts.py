"""Parameter counts: our presets against icefall's published sizes, and against a closed-form
count of icefall's constructor (derived from its module shapes, independent of our code)."""

from __future__ import annotations

import pytest
import torch

from training.model.config import ZipformerConfig, preset
from training.model.transducer import Transducer


def icefall_param_count(c: ZipformerConfig) -> int:
    """Number of parameters icefall's train.get_model() creates for this configuration."""
    total = 0
    # encoder_embed: Conv2dSubsampling(80 -> encoder_dim[0]), channels 8/32/128, ConvNeXt(128)
    d0 = c.per_stack("encoder_dim")[0]
    width = (((c.feature_dim - 1) // 2) - 1) // 2
    total += (1 * 9 * 8 + 8) + (8 * 9 * 32 + 32) + (32 * 9 * 128 + 128)
    total += (128 * 49 + 128) + (128 * 384 + 384) + (384 * 128 + 128)
    total += width * 128 * d0 + d0 + (1 + d0)
    # encoder stacks
    stacks = zip(
        c.per_stack("encoder_dim"),
        c.per_stack("feedforward_dim"),
        c.per_stack("num_heads"),
        c.per_stack("query_head_dim"),
        c.per_stack("value_head_dim"),
        c.per_stack("pos_head_dim"),
        c.per_stack("cnn_module_kernel"),
        c.per_stack("num_encoder_layers"),
        c.downsampling_factor,
        strict=True,
    )
    for dim, ff, h, dq, dv, dp, k, n, ds in stacks:
        layer = 3 * dim  # bypass_scale, bypass.bypass_scale, bypass_mid.bypass_scale
        layer += dim * (2 * dq + dp) * h + (2 * dq + dp) * h + c.pos_dim * h * dp
        layer += 2 * (2 * dim * h * dv + h * dv + dim)  # self_attn1, self_attn2
        for f in ((ff * 3) // 4, ff, (ff * 5) // 4):
            layer += 2 * dim * f + f + dim
        hidden = 3 * dim // 4
        layer += dim * 3 * hidden + 3 * hidden + hidden * dim + dim  # nonlin_attention
        if c.causal:
            depthwise = dim * (k + 1) // 2 + dim + dim * k + dim + 2 * dim * k
        else:
            depthwise = dim * k + dim
        layer += 2 * (2 * dim * dim + 2 * dim + depthwise + dim * dim + dim)  # conv modules
        layer += 1 + dim  # norm
        total += n * layer
        if ds != 1:
            total += ds + dim  # downsample.bias, out_combiner.bypass_scale
    total += 2  # downsample_output.bias
    enc, dec, j, v = c.encoder_output_dim, c.decoder_dim, c.joiner_dim, c.vocab_size
    total += v * dec + (dec * 4 * c.context_size if c.context_size > 1 else 0)  # decoder
    total += enc * j + j + dec * j + j + j * v + v  # joiner
    total += enc * v + v + dec * v + v  # simple_am_proj, simple_lm_proj
    if c.use_ctc:
        total += enc * v + v
    return total


def _count(cfg: ZipformerConfig) -> int:
    with torch.device("meta"):
        model = Transducer(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "causal", "published"),
    [
        ("small", False, 23_285_615),
        ("medium", False, 65_549_011),
        ("large", False, 148_439_574),
        ("medium", True, 66_110_931),
        ("fixture", True, 2_557_098),
    ],
)
def test_published_icefall_sizes(name, causal, published):
    cfg = preset(name, vocab_size=500, causal=causal)
    assert icefall_param_count(cfg) == published
    assert _count(cfg) == published


@pytest.mark.parametrize("name", ["tiny", "xsmall", "small", "medium", "large"])
@pytest.mark.parametrize("vocab", [500, 5000])
@pytest.mark.parametrize("causal", [False, True])
def test_counts_match_closed_form(name, vocab, causal):
    cfg = preset(name, vocab_size=vocab, causal=causal, use_ctc=(name == "tiny"))
    assert _count(cfg) == icefall_param_count(cfg)


def test_size_range_of_presets():
    assert 5_000_000 < _count(preset("xsmall", 500)) < 12_000_000
    assert 60_000_000 < _count(preset("medium", 5000)) < 80_000_000
