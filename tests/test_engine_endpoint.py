"""Endpoint rules on synthetic decoded-frame sequences (blank = silence, token = speech)."""

from __future__ import annotations

import pytest

from serving.engine.endpoint import EndpointConfig, EndpointRule, is_endpoint, which_rule

CHUNK = 8  # encoder frames per decoded chunk (32 feature frames of 10 ms, subsampling 4)


def first_endpoint(pattern: str, config: EndpointConfig) -> tuple[int, float] | None:
    """Decode ``pattern`` ('.' blank, 'x' token) chunk by chunk as the recognizer does;
    return (rule, seconds decoded) at the first chunk where a rule fires."""
    trailing = 0
    for end in range(CHUNK, len(pattern) + 1, CHUNK):
        for c in pattern[end - CHUNK : end]:
            trailing = trailing + 1 if c == "." else 0
        rule = which_rule(config, num_frames_decoded=end * 4, trailing_blank_frames=trailing)
        if rule is not None:
            return rule, end * 0.04
    return None


def test_rule1_fires_after_long_silence_with_nothing_decoded():
    config = EndpointConfig()
    # 2.4 s = 60 encoder frames; checked at chunk ends: 64 frames = 2.56 s.
    assert first_endpoint("." * 200, config) == (1, pytest.approx(2.56))
    # 2.2 s of silence is not enough.
    assert first_endpoint("." * 55, config) is None


def test_rule2_short_pause_after_speech():
    config = EndpointConfig()  # rule2: 0.6 s = 15 blank frames after a token
    pattern = "." * 10 + "x" * 6 + "." * 100
    rule, t = first_endpoint(pattern, config)
    assert rule == 2
    # Token at frame 15; 15 trailing blanks reached at frame 31, i.e. the chunk ending at 32.
    assert t == pytest.approx(32 * 0.04)
    # sherpa-onnx's 1.2 s needs 30 blanks: chunk ending at frame 48.
    rule, t = first_endpoint(pattern, EndpointConfig.sherpa_defaults())
    assert rule == 2 and t == pytest.approx(48 * 0.04)


def test_rule2_does_not_fire_on_pauses_shorter_than_the_threshold():
    # Speech with 0.4 s pauses (10 frames) for 12 s: only rule3 may end it, at 20 s.
    pattern = ("x" * 6 + "." * 10) * 40
    assert first_endpoint(pattern[: 12 * 25], EndpointConfig()) is None


def test_rule3_bounds_utterance_length_even_while_speaking():
    pattern = "x" * 600  # 24 s of tokens, no silence
    rule, t = first_endpoint(pattern, EndpointConfig())
    assert rule == 3
    assert t == pytest.approx(20.16)  # first chunk end at or past 20 s


def test_rule_with_must_contain_nonsilence_needs_speech():
    rule = EndpointRule(must_contain_nonsilence=True, min_trailing_silence=0.5)
    assert not rule.fires(trailing_silence=3.0, utterance_length=3.0)  # all silence
    assert rule.fires(trailing_silence=0.5, utterance_length=3.0)
    assert not rule.fires(trailing_silence=0.4, utterance_length=3.0)


def test_disabled_config_never_fires():
    config = EndpointConfig(enabled=False)
    assert not is_endpoint(config, num_frames_decoded=5000, trailing_blank_frames=1000)
    assert first_endpoint("." * 300, config) is None


def test_exact_threshold_counts_despite_float_rounding():
    # 15 blank frames * 4 * 0.01 s is 0.6000000000000001 or 0.6 depending on order of ops;
    # the rule must fire at exactly its threshold.
    config = EndpointConfig(rule1=EndpointRule(False, 99.0), rule3=EndpointRule(False, 0.0, 99.0))
    assert which_rule(config, num_frames_decoded=200, trailing_blank_frames=15) == 2
    assert which_rule(config, num_frames_decoded=200, trailing_blank_frames=14) is None
