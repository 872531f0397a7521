"""Endpoint (end-of-sentence) detection from decoded blank frames, as in kaldi / sherpa-onnx.

A rule fires when the trailing silence (consecutive blank encoder frames at the end of the best
hypothesis, in seconds) and the utterance length (feature frames decoded since the last reset,
in seconds) pass its thresholds; ``must_contain_nonsilence`` additionally asks for some decoded
text before the silence. The default rules:

* rule1: 2.4 s of silence with nothing decoded (drop a silent segment);
* rule2: 0.6 s of silence after speech. sherpa-onnx uses 1.2 s; a hotline agent screen wants
  the sentence soon after the caller stops, and the encoder is run every 0.32 s anyway, so
  the sentence closes 0.6-0.9 s after its last token. Raise it if pauses inside sentences
  split them;
* rule3: 20 s of utterance, whatever was decoded (bounds the segment length).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EndpointConfig", "EndpointRule", "is_endpoint", "which_rule"]


@dataclass(frozen=True)
class EndpointRule:
    """One rule: all three conditions must hold for it to fire."""

    must_contain_nonsilence: bool
    min_trailing_silence: float
    min_utterance_length: float = 0.0

    def fires(self, trailing_silence: float, utterance_length: float) -> bool:
        contains_nonsilence = utterance_length > trailing_silence
        return (
            (contains_nonsilence or not self.must_contain_nonsilence)
            and trailing_silence >= self.min_trailing_silence
            and utterance_length >= self.min_utterance_length
        )


@dataclass(frozen=True)
class EndpointConfig:
    """The three endpoint rules; ``enabled=False`` turns endpointing off."""

    rule1: EndpointRule = field(default_factory=lambda: EndpointRule(False, 2.4, 0.0))
    rule2: EndpointRule = field(default_factory=lambda: EndpointRule(True, 0.6, 0.0))
    rule3: EndpointRule = field(default_factory=lambda: EndpointRule(False, 0.0, 20.0))
    enabled: bool = True

    @classmethod
    def sherpa_defaults(cls) -> EndpointConfig:
        """sherpa-onnx's defaults (2.4 s, 1.2 s, 20 s)."""
        return cls(rule2=EndpointRule(True, 1.2, 0.0))


def which_rule(
    config: EndpointConfig,
    num_frames_decoded: int,
    trailing_blank_frames: int,
    frame_shift_s: float = 0.01,
    subsampling: int = 4,
) -> int | None:
    """The number (1-3) of the first rule that fires, or ``None``.

    ``num_frames_decoded`` counts feature frames (10 ms) since the last reset;
    ``trailing_blank_frames`` counts encoder output frames (``subsampling`` feature frames each).
    """
    if not config.enabled:
        return None
    # Rounded so that a duration exactly at a threshold passes despite float error.
    utterance_length = round(num_frames_decoded * frame_shift_s, 6)
    trailing_silence = round(trailing_blank_frames * subsampling * frame_shift_s, 6)
    for number, rule in enumerate((config.rule1, config.rule2, config.rule3), start=1):
        if rule.fires(trailing_silence, utterance_length):
            return number
    return None


def is_endpoint(
    config: EndpointConfig,
    num_frames_decoded: int,
    trailing_blank_frames: int,
    frame_shift_s: float = 0.01,
    subsampling: int = 4,
) -> bool:
    """True when any rule fires (see :func:`which_rule`)."""
    return (
        which_rule(config, num_frames_decoded, trailing_blank_frames, frame_shift_s, subsampling)
        is not None
    )
