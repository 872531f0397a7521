"""training.model.ctc_joiner: a joiner rewritten from the CTC head reproduces the head."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

from training.model.config import preset  # noqa: E402
from training.model.ctc_joiner import joiner_from_ctc  # noqa: E402
from training.model.transducer import Transducer  # noqa: E402


def _model(use_ctc: bool = True, joiner_dim: int = 96) -> Transducer:
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=40, use_ctc=use_ctc, joiner_dim=joiner_dim)
    return Transducer(cfg).eval()


def test_rewritten_joiner_gives_the_heads_logits_whatever_the_decoder_says():
    model = _model()
    head = model.ctc_output[1]
    enc = 0.6 * torch.randn(2, 7, head.in_features)
    dec = model.decoder(torch.tensor([[0, 5], [3, 9]]), need_pad=False)  # two contexts, (2, 1, D)
    before = model.joiner(enc, dec[:1].expand(2, 7, -1))
    joiner_from_ctc(model, 0.05)
    want = head(enc)
    for ctx in range(2):
        got = model.joiner(enc, dec[ctx : ctx + 1].expand(2, 7, -1))
        # tanh(0.05 x) / 0.05 = x within 0.1 % for |0.05 x| < 0.05
        assert torch.allclose(got, want, atol=2e-3 * want.abs().max().item()), ctx
    assert not torch.allclose(before, want, atol=1e-1)
    assert torch.equal(model.simple_am_proj.weight, head.weight)


def test_greedy_transducer_spells_a_peaky_ctc_heads_text():
    from training.decode.search import greedy_search
    from training.evaluate import ctc_greedy_ids

    model = _model()
    head = model.ctc_output[1]
    # An encoder output whose CTC argmax is peaky: one frame per token, blank between.
    tokens = [7, 3, 12, 3, 25]
    enc = torch.zeros(1, 2 * len(tokens) + 1, head.in_features)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = 1.0  # blank by default
        for i, t in enumerate(tokens):
            head.weight[t, i] = 4.0
            enc[0, 2 * i + 1, i] = 1.0
    lens = torch.tensor([enc.shape[1]])
    assert ctc_greedy_ids(model, enc, lens)[0] == tokens
    joiner_from_ctc(model)
    assert greedy_search(model, enc, lens)[0] == tokens


def test_models_without_a_ctc_head_or_a_small_joiner_are_explained():
    with pytest.raises(ValueError, match="use_ctc=true"):
        joiner_from_ctc(_model(use_ctc=False))
    with pytest.raises(ValueError, match=r"joiner_dim \(64\) must exceed encoder_dim \(64\)"):
        joiner_from_ctc(_model(joiner_dim=64))
    with pytest.raises(ValueError, match="scale must be > 0"):
        joiner_from_ctc(_model(), 0.0)


def test_cli_rewrites_a_model_file_and_records_where_it_came_from(tmp_path):
    from typer.testing import CliRunner

    from hotline_asr.cli import app
    from training.model.checkpoint import load_model, save_model

    model = _model()
    src, dst = tmp_path / "averaged.pt", tmp_path / "served.pt"
    save_model(src, model, [f"t{i}" for i in range(40)], extra={"averaged": ["step-2.ckpt"]})
    result = CliRunner().invoke(app, ["joiner-from-ctc", str(src), str(dst), "--scale", "0.1"])
    assert result.exit_code == 0, result.output
    rewritten, _, tokens = load_model(dst)
    joiner_from_ctc(model, 0.1)
    for name, value in model.state_dict().items():
        assert torch.equal(rewritten.state_dict()[name], value), name
    assert tokens == [f"t{i}" for i in range(40)]
    extra = torch.load(dst, weights_only=True)["extra"]
    assert extra == {
        "averaged": ["step-2.ckpt"],
        "joiner_from_ctc": {"source": str(src), "scale": 0.1},
    }
    # a model without a CTC head: a clear error, no file written
    save_model(src, _model(use_ctc=False), None)
    bad = CliRunner().invoke(app, ["joiner-from-ctc", str(src), str(tmp_path / "x.pt")])
    assert bad.exit_code == 1 and "use_ctc=true" in bad.output
    assert not (tmp_path / "x.pt").exists()
