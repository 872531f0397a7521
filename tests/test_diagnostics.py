import numpy as np
import torch

from training.diagnostics import diagnose, mean_energy_fraction
from training.model.config import preset
from training.model.transducer import Transducer


def test_mean_energy_fraction_separates_constant_from_varying_frames():
    const = torch.ones(50, 8) * 3.0
    alternating = torch.tensor([[1.0], [-1.0]]).repeat(25, 8)
    assert abs(mean_energy_fraction(const) - 1.0) < 1e-6
    assert mean_energy_fraction(alternating) < 1e-6


class _Sup:
    text = "abca"


class _Cut:
    id = "u1"
    supervisions = [_Sup()]

    def load_features(self) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((300, 80)).astype(np.float32)


def test_diagnose_reports_losses_and_lattice_shape_of_a_random_model():
    torch.manual_seed(0)
    tokens = ["<blk>", "<sos/eos>", "<unk>", "a", "b", "c"]
    # a joiner width unlike the encoder's, so a doubly projected encoder output cannot pass
    model = Transducer(preset("tiny", vocab_size=len(tokens), joiner_dim=40)).eval()
    d = diagnose(model, tokens, _Cut())
    assert d.tokens == 4 and d.frames > 0
    assert d.full_loss > 0 and d.pruned_loss > 0
    assert 0.0 <= d.blank_argmax_fraction <= 1.0
    assert 0.0 <= d.encoder_mean_energy <= 1.0 and d.ref == "abca"
    assert 0.0 < d.fbank_mean_energy < 0.05  # zero-mean random features
    # the hypothesis' own full loss, as Transducer.full_loss gives it (None when it is empty)
    assert (d.hyp_full_loss is None) == (d.hyp == "")
    if d.hyp_full_loss is not None:
        assert d.hyp_full_loss > 0


def test_diagnose_reads_the_character_ctc_head_when_the_model_has_one():
    torch.manual_seed(0)
    tokens = ["<blk>", "<sos/eos>", "<unk>", "a", "b", "c"]
    model = Transducer(preset("tiny", vocab_size=len(tokens), use_ctc=True)).eval()
    head = model.ctc_output[1]
    with torch.no_grad():  # a head that ignores the audio and always says "b"
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, -9, -9, -9, 5.0, -9]))
    d = diagnose(model, tokens, _Cut())
    assert d.ctc_blank_fraction == 0.0 and d.ctc_hyp == "b"  # repeats collapse to one
    with torch.no_grad():  # ... and now always blank
        head.bias.copy_(torch.tensor([5.0, -9, -9, -9, -9, -9]))
    d = diagnose(model, tokens, _Cut())
    assert d.ctc_blank_fraction == 1.0 and d.ctc_hyp == ""
    plain = Transducer(preset("tiny", vocab_size=len(tokens))).eval()
    assert diagnose(plain, tokens, _Cut()).ctc_hyp is None
