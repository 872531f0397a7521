"""Convolutional front end: 100 Hz fbank -> 50 Hz embeddings, `(T - 7) // 2` frames."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.model.scaling import (
    Balancer,
    BiasNorm,
    ScaleGrad,
    ScheduledFloat,
    SharedDropout,
    SwooshL,
    SwooshR,
    Whiten,
)


class ConvNeXt(nn.Module):
    """Residual block: 7x7 depthwise conv, 1x1 conv up (x3), SwooshL, 1x1 conv down.

    The time axis uses symmetric padding of 3 frames, i.e. 3 frames of look-ahead; in
    streaming the left 3 frames come from a cache and the right 3 are real input.
    """

    def __init__(self, channels: int, hidden_ratio: int = 3, kernel_size: int = 7):
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.padding = (pad, pad)
        hidden = channels * hidden_ratio
        self.layerdrop_rate = ScheduledFloat((0.0, 0.2), (20000.0, 0.015))
        self.depthwise_conv = nn.Conv2d(
            channels, channels, kernel_size, padding=self.padding, groups=channels
        )
        self.pointwise_conv1 = nn.Conv2d(channels, hidden, 1)
        self.hidden_balancer = Balancer(
            hidden, channel_dim=1, min_positive=0.3, max_positive=1.0, min_abs=0.75, max_abs=5.0
        )
        self.activation = SwooshL()
        self.pointwise_conv2 = nn.Conv2d(hidden, channels, 1)
        with torch.no_grad():
            self.pointwise_conv2.weight.mul_(0.01)
            self.pointwise_conv2.bias.uniform_(-0.001, 0.001)
        self.out_balancer = Balancer(
            channels, channel_dim=1, min_positive=0.4, max_positive=0.6, min_abs=1.0, max_abs=6.0
        )
        self.out_whiten = Whiten(
            num_groups=1, whitening_limit=5.0, prob=(0.025, 0.25), grad_scale=0.01
        )

    def _branch(self, x: Tensor) -> Tensor:
        x = self.pointwise_conv1(x)
        x = self.hidden_balancer(x)
        x = self.activation(x)
        return self.pointwise_conv2(x)

    def _branch_channels_last(self, x: Tensor) -> Tensor:
        """`_branch` for a channels-last x: the 1x1 convs as matmuls over a (N, T, F, C) view,
        without copies (torch runs 1x1 convs through its slow im2col path on CPU)."""
        c1, c2 = self.pointwise_conv1, self.pointwise_conv2
        h = x.permute(0, 2, 3, 1)
        h = nn.functional.linear(h, c1.weight.flatten(1), c1.bias)
        h = self.hidden_balancer(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        h = nn.functional.linear(self.activation(h), c2.weight.flatten(1), c2.bias)
        return h.permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, F) -> same shape."""
        if self.training:
            # Training runs channels-last: oneDNN's depthwise conv is ~2x faster that way and
            # the 1x1 convs become plain matmuls. Eval keeps the reference layout and ops,
            # which reproduce icefall bit for bit.
            x = x.contiguous(memory_format=torch.channels_last)
            y = self._branch_channels_last(self.depthwise_conv(x))
        else:
            y = self._branch(self.depthwise_conv(x))
        if self.training:
            rate = float(self.layerdrop_rate)
            if rate != 0.0:
                keep = torch.rand((x.shape[0], 1, 1, 1), device=x.device) > rate
                y = y * keep.to(y.dtype)
        x = x + y
        x = self.out_balancer(x)
        if x.requires_grad and self.training:
            x = self.out_whiten(x.transpose(1, 3)).transpose(1, 3)
        return x

    def streaming_forward(self, x: Tensor, cached_left_pad: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, C, T + 3, F), the last 3 frames being look-ahead. Returns (N, C, T, F)
        and the new left-pad cache (N, C, 3, F)."""
        lp = self.padding[0]
        if cached_left_pad.shape[2] != lp:
            raise ValueError(
                f"ConvNeXt cache must have {lp} frames, got {cached_left_pad.shape[2]}"
            )
        t = x.shape[2] - lp
        residual = x[:, :, :t]
        full = torch.cat([cached_left_pad, x], dim=2)
        new_cache = full[:, :, t : t + lp]
        conv = self.depthwise_conv
        y = nn.functional.conv2d(
            full, conv.weight, conv.bias, padding=(0, self.padding[1]), groups=conv.groups
        )
        return residual + self._branch(y), new_cache


class Conv2dSubsampling(nn.Module):
    """(N, T, F) fbank -> (N, (T - 7) // 2, out_channels), as icefall's Zipformer2 front end.

    Three 3x3 convs (the second strides 2 in time and frequency, the third 2 in frequency),
    a ConvNeXt block, a linear projection and a BiasNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        layer1_channels: int = 8,
        layer2_channels: int = 32,
        layer3_channels: int = 128,
        dropout: float | ScheduledFloat = 0.1,
    ):
        super().__init__()
        if in_channels < 7:
            raise ValueError(
                f"Conv2dSubsampling needs at least 7 input features, got {in_channels}"
            )
        # Indices 0, 4 and 7 hold parameters; they match icefall's state_dict keys.
        self.conv = nn.Sequential(
            nn.Conv2d(1, layer1_channels, 3, padding=(0, 1)),
            ScaleGrad(0.2),
            Balancer(layer1_channels, channel_dim=1, max_abs=1.0),
            SwooshR(),
            nn.Conv2d(layer1_channels, layer2_channels, 3, stride=2),
            Balancer(layer2_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
            nn.Conv2d(layer2_channels, layer3_channels, 3, stride=(1, 2)),
            Balancer(layer3_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
        )
        self.convnext = ConvNeXt(layer3_channels, kernel_size=7)
        self.out_width = (((in_channels - 1) // 2) - 1) // 2
        self.layer3_channels = layer3_channels
        self.out = nn.Linear(self.out_width * layer3_channels, out_channels)
        self.out_whiten = Whiten(
            num_groups=1,
            whitening_limit=ScheduledFloat((0.0, 4.0), (20000.0, 8.0), default=4.0),
            prob=(0.025, 0.25),
            grad_scale=0.02,
        )
        self.out_norm = BiasNorm(out_channels)
        self.dropout = SharedDropout(dropout, shared_dim=1)

    def _project(self, x: Tensor) -> Tensor:
        n, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(n, t, c * f))

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, T, F); returns ((N, (T-7)//2, C), (x_lens - 7) // 2)."""
        if x.shape[1] < 9:
            raise ValueError(
                f"the front end needs at least 9 feature frames (90 ms), got {x.shape[1]}"
            )
        x = self.convnext(self.conv(x.unsqueeze(1)))
        x = self._project(x)
        x = self.out_whiten(x)
        x = self.out_norm(x)
        x = self.dropout(x)
        return x, torch.div(x_lens - 7, 2, rounding_mode="floor")

    def streaming_forward(
        self, x: Tensor, x_lens: Tensor, cached_left_pad: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One streaming window of T features; returns (N, (T-7)//2 - 3, C) frames, their
        lengths and the new ConvNeXt cache."""
        x = self.conv(x.unsqueeze(1))
        x, cached_left_pad = self.convnext.streaming_forward(x, cached_left_pad)
        x = self.out_norm(self._project(x))
        lp = self.convnext.padding[0]
        return x, torch.div(x_lens - 7, 2, rounding_mode="floor") - lp, cached_left_pad

    def get_init_states(self, batch_size: int = 1, device: torch.device | str = "cpu") -> Tensor:
        """Zero ConvNeXt left-pad cache, (N, layer3_channels, 3, out_width)."""
        lp = self.convnext.padding[0]
        return torch.zeros(batch_size, self.layer3_channels, lp, self.out_width, device=device)
