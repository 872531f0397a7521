"""Start a transducer's joiner from its trained character CTC head.

A transducer whose joiner ignores the prediction network and whose search emits at most one
symbol per frame is a CTC model without repeat merging: on a peaky CTC head (one frame per
token, blank elsewhere) both spell the same text. So when the CTC head reads the encoder well
and the joiner does not (it learned to lean on the prediction network's text prior instead),
the joiner can be rewritten to reproduce the head and then trained on from there:

- ``encoder_proj`` puts ``scale * encoder_out`` on the first ``encoder_dim`` joiner units, where
  ``tanh`` is nearly linear, and ``output_linear`` reads those units with the head's weights
  divided by ``scale`` (and the head's bias), so the joiner's logits start as the head's logits;
- the remaining joiner units carry the trained ``decoder_proj`` rows, read with zero output
  weights: the prediction network contributes nothing at first and gradient brings it back;
- ``simple_am_proj`` becomes the head itself, so the simple loss (and with it the pruning
  ranges) follows the head's alignment from the first step.

The architecture is unchanged (icefall's joiner), so exports and sherpa-onnx are unaffected.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def joiner_from_ctc(model: nn.Module, scale: float = 0.2) -> None:
    """Rewrite ``model``'s joiner and simple acoustic projection from its CTC head, in place.

    ``scale``: the factor on encoder output inside the joiner, small enough that ``tanh`` stays
    near-linear (0.2 keeps the baseline's encoder output, rms ~0.6, at rms ~0.13; measured
    with bench/joiner_probe.py --joiner-from-ctc: the joiner then decodes within a point of
    the head).
    """
    if not getattr(model, "use_ctc", False):
        raise ValueError(
            "joiner_from_ctc needs a model with a character CTC head (model.use_ctc=true); "
            "train one with --set model.overrides.use_ctc=true first"
        )
    head = model.ctc_output[1]
    joiner = model.joiner
    enc_dim = head.in_features
    joiner_dim = joiner.encoder_proj.out_features
    if joiner.encoder_proj.in_features != enc_dim:
        raise ValueError(
            f"the CTC head reads {enc_dim} encoder dims but the joiner's encoder_proj reads "
            f"{joiner.encoder_proj.in_features}"
        )
    if joiner_dim <= enc_dim:
        raise ValueError(
            f"joiner_dim ({joiner_dim}) must exceed encoder_dim ({enc_dim}) so that the CTC "
            "head and the prediction network each get their own joiner units"
        )
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    s = float(scale)
    with torch.no_grad():
        w_e = torch.zeros(joiner_dim, enc_dim)
        w_e[:enc_dim] = s * torch.eye(enc_dim)
        joiner.encoder_proj.weight.copy_(w_e)
        joiner.encoder_proj.bias.zero_()
        joiner.decoder_proj.weight[:enc_dim].zero_()
        joiner.decoder_proj.bias[:enc_dim].zero_()
        w_o = torch.zeros_like(joiner.output_linear.weight)
        w_o[:, :enc_dim] = head.weight / s
        joiner.output_linear.weight.copy_(w_o)
        joiner.output_linear.bias.copy_(head.bias)
        model.simple_am_proj.weight.copy_(head.weight)
        model.simple_am_proj.bias.copy_(head.bias)


def rewrite_model_file(src: str | Path, dst: str | Path, scale: float = 0.2) -> Path:
    """Apply :func:`joiner_from_ctc` to a model file (``save_model`` format) and write the
    result to ``dst``, noting the source and the scale in its ``extra``.

    Use it after training when the trained joiner decodes worse than the CTC head it was
    started from (the prediction network's text prior pulled it away): the rewritten model
    decodes like the head, through the same transducer search and the same ONNX export."""
    from .checkpoint import load_model, save_model

    src, dst = Path(src), Path(dst)
    model, _, tokens = load_model(src)
    joiner_from_ctc(model, scale)
    extra = torch.load(src, map_location="cpu", weights_only=True).get("extra") or {}
    extra = {**extra, "joiner_from_ctc": {"source": str(src), "scale": float(scale)}}
    save_model(dst, model, tokens, extra=extra)
    return dst
