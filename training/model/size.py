"""How many parameters a transducer has, by part: what RESULTS.md and MLflow quote."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

# parameter-name prefix -> part; the first match wins
_PARTS = (
    ("encoder_embed.", "encoder"),
    ("encoder.", "encoder"),
    ("decoder.", "decoder"),
    ("joiner.", "joiner"),
    ("simple_am_proj.", "simple_proj"),
    ("simple_lm_proj.", "simple_proj"),
    ("ctc_output.", "ctc_head"),
)


@dataclass
class ParameterCount:
    """Parameter counts of a `Transducer`. ``served`` is what an ONNX export holds (encoder,
    decoder, joiner); ``simple_proj`` (the pruned loss's projections) and ``ctc_head`` only
    train, or are folded into the joiner by `joiner-from-ctc`."""

    encoder: int = 0
    decoder: int = 0
    joiner: int = 0
    simple_proj: int = 0
    ctc_head: int = 0
    other: int = 0
    trainable: int = 0

    @property
    def served(self) -> int:
        return self.encoder + self.decoder + self.joiner

    @property
    def total(self) -> int:
        return self.served + self.simple_proj + self.ctc_head + self.other

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "served": self.served, "total": self.total}

    def format_table(self) -> str:
        rows = [(k, v) for k, v in self.to_dict().items() if k != "other" or v]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>12,}" for k, v in rows)


def count_parameters(model: nn.Module) -> ParameterCount:
    """Sum ``numel()`` of ``model``'s parameters by part (names as in `Transducer`)."""
    count = ParameterCount()
    for name, p in model.named_parameters():
        part = next((part for prefix, part in _PARTS if name.startswith(prefix)), "other")
        setattr(count, part, getattr(count, part) + p.numel())
        if p.requires_grad:
            count.trainable += p.numel()
    return count
