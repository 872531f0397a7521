from __future__ import annotations

import pytest
import torch

from serving.context_graph import ContextGraph
from training.decode.search import (
    BeamSearcher,
    DecodeResult,
    greedy_search,
    modified_beam_search,
)
from training.decode.streaming import LOG_EPS, StreamingDecoder, pad_for_streaming
from training.model.config import preset
from training.model.transducer import Transducer

torch.set_num_threads(1)
CHUNK, LEFT = 16, 64


@pytest.fixture(scope="module")
def model() -> Transducer:
    """The tiny config, randomly initialised (fixed seed), with the joiner re-scaled so that
    its output depends on the audio: at random init the encoder output barely varies over
    time, so every frame would give the same token. Transcripts are arbitrary but varied."""
    torch.manual_seed(0)
    m = Transducer(preset("tiny", vocab_size=40)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        enc, _ = m.forward_encoder(
            torch.randn(4, 300, 80, generator=g), torch.full((4,), 300), CHUNK, LEFT
        )
        mean, std = enc.mean((0, 1)), enc.std((0, 1))
        j = m.joiner
        w = torch.randn(j.encoder_proj.weight.shape, generator=g) / enc.shape[-1] ** 0.5 / std
        j.encoder_proj.weight.copy_(w)
        j.encoder_proj.bias.copy_(-w @ mean)
        j.decoder_proj.weight.mul_(20)
        out = j.output_linear.weight
        out.copy_(torch.randn(out.shape, generator=g) * 3 / out.shape[1] ** 0.5)
        j.output_linear.bias.zero_()
        j.output_linear.bias[0] = 2.0
    return m


@pytest.fixture(scope="module")
def encoded(model):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 200, 80, generator=g)
    x_lens = torch.tensor([200, 150, 97])
    with torch.no_grad():
        enc, lens = model.forward_encoder(x, x_lens, CHUNK, LEFT)
    return enc, lens


def reference_greedy(model, enc: torch.Tensor, max_sym: int) -> tuple[list[int], list[int]]:
    """One utterance, no batching, written out plainly."""
    c = model.decoder.context_size
    ys = [-1] * (c - 1) + [0]
    frames = []
    proj = model.joiner.encoder_proj(enc)
    with torch.no_grad():
        for t in range(proj.shape[0]):
            for _ in range(max_sym):
                ctx = torch.tensor([ys[-c:]])
                dec = model.joiner.decoder_proj(model.decoder(ctx, need_pad=False))[0, 0]
                y = int(model.joiner(proj[t], dec, project_input=False).argmax())
                if y == 0:
                    break
                ys.append(y)
                frames.append(t)
    return ys[c:], frames


@pytest.mark.parametrize("max_sym", [1, 3])
def test_greedy_batch_matches_plain_loop(model, encoded, max_sym):
    enc, lens = encoded
    results = greedy_search(model, enc, lens, max_sym_per_frame=max_sym, return_timestamps=True)
    assert all(isinstance(r, DecodeResult) for r in results)
    for n in range(enc.shape[0]):
        tokens, frames = reference_greedy(model, enc[n, : lens[n]], max_sym)
        assert results[n].tokens == tokens
        assert results[n].timestamps == frames
        assert all(0 <= f < lens[n] for f in frames)
    assert len(results[0].tokens) > 10 and len(set(results[0].tokens)) > 5  # not degenerate
    if max_sym == 3:
        one = greedy_search(model, enc, lens)
        assert any(len(a) > len(b) for a, b in zip([r.tokens for r in results], one, strict=True))


def test_beam_of_one_is_greedy_and_batching_changes_nothing(model, encoded):
    enc, lens = encoded
    greedy = greedy_search(model, enc, lens)
    assert modified_beam_search(model, enc, lens, beam=1) == greedy
    batched = modified_beam_search(model, enc, lens, beam=4, return_timestamps=True)
    for n in range(enc.shape[0]):
        single = modified_beam_search(
            model, enc[n : n + 1, : lens[n]], lens[n : n + 1], beam=4, return_timestamps=True
        )[0]
        assert single.tokens == batched[n].tokens
        assert single.timestamps == batched[n].timestamps
        assert len(single.timestamps) == len(single.tokens)
        assert single.timestamps == sorted(single.timestamps)  # one symbol per frame
        assert len(set(single.timestamps)) == len(single.timestamps)


def test_beam_search_keeps_distinct_hypotheses(model, encoded):
    enc, lens = encoded
    searcher = BeamSearcher(model, 1, beam=4)
    searcher.step(model.joiner.encoder_proj(enc[:1]), lens[:1])
    hyps = searcher.beams[0]
    assert 1 < len(hyps) <= 4
    assert len({h.ys for h in hyps}) == len(hyps)
    best = searcher.best(0)
    assert best.log_prob / len(best.ys) == max(h.log_prob / len(h.ys) for h in hyps)


def _find_absent_phrase(tokens: list[int]) -> list[int]:
    """Two tokens the model does output, but never one after the other."""
    seen = {tuple(tokens[i : i + 2]) for i in range(len(tokens) - 1)}
    common = sorted(set(tokens), key=tokens.count, reverse=True)
    for a in common:
        for b in common:
            if a != b and (a, b) not in seen:
                return [a, b]
    raise AssertionError("no absent pair")


def test_hot_words_bias_the_beam(model, encoded):
    enc, lens = encoded
    plain = modified_beam_search(model, enc[:1], lens[:1], beam=4)[0]
    phrase = plain[4:7]  # a phrase the model already outputs: biasing keeps it
    graph = ContextGraph([phrase], score=1.0)
    kept = modified_beam_search(model, enc[:1], lens[:1], beam=4, context_graph=graph)[0]
    assert any(kept[i : i + 3] == phrase for i in range(len(kept)))

    target = _find_absent_phrase(plain)
    assert not any(plain[i : i + 2] == target for i in range(len(plain)))
    # some bonus makes the beam produce it (too large a bonus lets hypotheses that sit on a
    # pending partial match crowd the beam, as in icefall)
    found = []
    for score in (1.0, 2.0, 3.0):
        graph = ContextGraph([target], score=score)
        biased = modified_beam_search(model, enc[:1], lens[:1], beam=4, context_graph=graph)[0]
        found.append(sum(biased[i : i + 2] == target for i in range(len(biased))))
    assert max(found) > 0, found

    # a negligible bonus changes nothing
    tiny = ContextGraph([target], score=1e-6)
    assert modified_beam_search(model, enc[:1], lens[:1], beam=4, context_graph=tiny)[0] == plain


def test_partial_hot_word_bonus_is_taken_back_at_the_end(model, encoded):
    enc, lens = encoded
    plain = modified_beam_search(model, enc[:1], lens[:1], beam=4, return_timestamps=True)[0]
    # a phrase whose first token is the last output token but which never completes
    graph = ContextGraph([[plain.tokens[-1], 39, 39, 39]], score=2.0)
    searcher = BeamSearcher(model, 1, beam=4, context_graph=graph)
    searcher.step(model.joiner.encoder_proj(enc[:1]), lens[:1])
    unfinished = searcher.best(0, final=False)
    final = searcher.best(0, final=True)
    assert final.log_prob <= unfinished.log_prob + 1e-6


def test_blank_penalty_emits_more(model, encoded):
    enc, lens = encoded
    base = sum(len(t) for t in greedy_search(model, enc, lens))
    more = sum(len(t) for t in greedy_search(model, enc, lens, blank_penalty=3.0))
    fewer = sum(len(t) for t in modified_beam_search(model, enc, lens, blank_penalty=-5.0))
    assert more > base > fewer


def test_pad_for_streaming_windows():
    x = torch.zeros(157, 80)
    padded, n = pad_for_streaming(x, 16)
    assert n == 7  # ceil((157 + 13 + 30) / 32)
    assert padded.shape == (7 * 32 + 13, 80)
    assert (padded[157:] == LOG_EPS).all() and (padded[:157] == 0).all()


def _masked_reference(model, features: list[torch.Tensor], method: str, **kw):
    """Whole-utterance chunk-masked encoder on the same padded features, then search."""
    out = []
    for f in features:
        padded, n = pad_for_streaming(f, CHUNK)
        with torch.no_grad():
            enc, _ = model.forward_encoder(
                padded.unsqueeze(0), torch.tensor([padded.shape[0]]), CHUNK, LEFT
            )
        enc = enc[:, : n * CHUNK // 2]
        search = greedy_search if method == "greedy" else modified_beam_search
        out.append(search(model, enc, None, return_timestamps=True, **kw)[0])
    return out


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_streaming_equals_chunk_masked_decoding(model, method):
    g = torch.Generator().manual_seed(7)
    features = [torch.randn(180, 80, generator=g), torch.randn(95, 80, generator=g)]
    decoder = StreamingDecoder(model, CHUNK, LEFT, method=method)
    partials = list(decoder.iter_chunks(features))
    final = partials[-1]
    assert len(partials) == pad_for_streaming(features[0], CHUNK)[1]
    expected = _masked_reference(model, features, method)
    for got, ref in zip(final, expected, strict=True):
        assert got.tokens == ref.tokens
        assert got.timestamps == ref.timestamps
    assert len(final[0].tokens) > 5
    if method == "greedy":  # greedy partial results only ever grow
        for a, b in zip(partials, partials[1:], strict=False):
            for x, y in zip(a, b, strict=True):
                assert y.tokens[: len(x.tokens)] == x.tokens
    # a single utterance alone gives the same result as in the batch
    assert decoder.decode(features[1])[0].tokens == final[1].tokens


def test_streaming_with_hot_words_matches_masked(model):
    g = torch.Generator().manual_seed(8)
    features = [torch.randn(150, 80, generator=g)]
    graph = ContextGraph([[5, 6], [7, 8, 9]], score=3.0)
    got = StreamingDecoder(model, CHUNK, LEFT, method="beam", context_graph=graph).decode(features)
    ref = _masked_reference(model, features, "beam", context_graph=graph)
    assert got[0].tokens == ref[0].tokens


def test_streaming_rejects_bad_options(model):
    with pytest.raises(ValueError, match="method"):
        StreamingDecoder(model, method="ctc")
    with pytest.raises(ValueError, match="need method='beam'"):
        StreamingDecoder(model, context_graph=ContextGraph([[3]]))
    with pytest.raises(ValueError, match="even"):
        StreamingDecoder(model, chunk_size=15)


def _fixture_noise() -> torch.Tensor:
    """The fixture README's sherpa-onnx check input: 1 s of N(0, 0.1^2) noise (numpy seed
    1234) and 0.66 s of zeros, at 16 kHz."""
    np = pytest.importorskip("numpy")
    noise = np.random.default_rng(1234).normal(0, 0.1, 16000).astype(np.float32)
    return np.concatenate([noise, np.zeros(int(0.66 * 16000), np.float32)])


def _decode_full_windows(model, features: torch.Tensor, searcher) -> DecodeResult:
    """Feed only complete 45-frame windows, as sherpa-onnx does without tail padding."""
    states = model.get_init_states(1, "cpu", left_context_frames=64)
    with torch.no_grad():
        for k in range((features.shape[0] - 45) // 32 + 1):
            window = features[None, 32 * k : 32 * k + 45]
            out, lens, states = model.streaming_forward_encoder(
                window, torch.tensor([45]), states, 16, 64
            )
            searcher.step(model.joiner.encoder_proj(out), lens)
    return searcher.results()[0]


@pytest.fixture(scope="module")
def fixture_case(icefall_fixture):
    """The icefall fixture model, its tokens, the check audio and its fbank."""
    from serving.features import compute_fbank
    from training.model.checkpoint import load_icefall_checkpoint

    if not (icefall_fixture / "epoch-99.pt").is_file():
        pytest.skip("icefall fixture missing")
    audio = _fixture_noise()
    model, _ = load_icefall_checkpoint(icefall_fixture / "epoch-99.pt")
    tokens = [line.split()[0] for line in open(icefall_fixture / "tokens.txt", encoding="utf-8")]
    return model, tokens, audio, torch.from_numpy(compute_fbank(audio, 16000))


def _sherpa(fixture_dir, audio, method: str, **kw):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
        str(fixture_dir / "tokens.txt"),
        str(fixture_dir / "encoder-chunk-16-left-64.onnx"),
        str(fixture_dir / "decoder-chunk-16-left-64.onnx"),
        str(fixture_dir / "joiner-chunk-16-left-64.onnx"),
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
        decoding_method=method,
        max_active_paths=4,
        **kw,
    )
    stream = recognizer.create_stream()
    stream.accept_waveform(16000, audio)
    stream.input_finished()
    while recognizer.is_ready(stream):
        recognizer.decode_stream(stream)
    return recognizer.get_result_all(stream)


def test_fixture_model_reproduces_sherpa_onnx(icefall_fixture, fixture_case):
    import json

    from training.decode.search import GreedySearcher

    model, tokens, audio, features = fixture_case
    greedy = _decode_full_windows(model, features, GreedySearcher(model, 1))
    recorded = json.loads((icefall_fixture / "onnx-io.json").read_text())["sherpa_onnx_check"]
    assert "".join(tokens[t] for t in greedy.tokens) == recorded["result_text"]

    beam = _decode_full_windows(model, features, BeamSearcher(model, 1, beam=4))
    for method, ours in (("greedy_search", greedy), ("modified_beam_search", beam)):
        result = _sherpa(icefall_fixture, audio, method)
        assert result.text == "".join(tokens[t] for t in ours.tokens), method
        # sherpa-onnx reports seconds: 4 x 10 ms feature frames per encoder frame
        assert [round(s / 0.04) for s in result.timestamps] == ours.timestamps, method


@pytest.mark.parametrize(("words", "score"), [(["上米", "两水"], 3.0), (["就介今"], 1.0)])
def test_fixture_hot_words_match_sherpa_onnx(icefall_fixture, fixture_case, tmp_path, words, score):
    model, tokens, audio, features = fixture_case
    ids = {t: i for i, t in enumerate(tokens)}
    graph = ContextGraph.from_texts(words, lambda text: [ids[c] for c in text], score=score)
    searcher = BeamSearcher(model, 1, beam=4, context_graph=graph)
    _decode_full_windows(model, features, searcher)
    plain = _decode_full_windows(model, features, BeamSearcher(model, 1, beam=4))

    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("".join(" ".join(w) + "\n" for w in words), encoding="utf-8")
    result = _sherpa(
        icefall_fixture,
        audio,
        "modified_beam_search",
        hotwords_file=str(hotwords),
        hotwords_score=score,
    )
    # sherpa-onnx's online result is the best hypothesis without finalize()
    ours = searcher.results(final=False)[0]
    assert result.text == "".join(tokens[t] for t in ours.tokens)
    assert ours.tokens != plain.tokens  # the hot words changed the result
