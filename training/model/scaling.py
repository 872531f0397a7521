"""Building blocks of the Zipformer2 encoder: normalisation, activations and the
training-time regularisers (Balancer, Whiten, scheduled dropout, gradient scaling).

In eval mode every regulariser here is the identity, so inference numerics depend only on
`BiasNorm`, the Swoosh activations, the linear layers and `ChunkCausalDepthwiseConv1d`.
"""

from __future__ import annotations

import math
import random
from itertools import pairwise

import torch
from torch import Tensor, nn

__all__ = [
    "ScheduledFloat",
    "FloatLike",
    "set_batch_count",
    "BiasNorm",
    "Balancer",
    "Whiten",
    "ScaleGrad",
    "SharedDropout",
    "SwooshL",
    "SwooshR",
    "swoosh_l",
    "swoosh_r",
    "ActivationDropoutAndLinear",
    "ChunkCausalDepthwiseConv1d",
    "depthwise_conv1d",
    "scaled_linear",
    "convert_num_channels",
    "limit_param_value",
    "penalize_abs_values_gt",
]


# --------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------


class ScheduledFloat(nn.Module):
    """A float that follows a piecewise-linear schedule over the training batch count.

    It is an `nn.Module` (without parameters) so that `set_batch_count(model, n)` can find
    every schedule through `model.modules()`, and so that it follows `model.train()` /
    `model.eval()`: outside training, or before a batch count is set, it is `default`.
    Use it with `float(schedule)`.
    """

    def __init__(self, *points: tuple[float, float], default: float = 0.0):
        super().__init__()
        if not points:
            raise ValueError("ScheduledFloat needs at least one (batch_count, value) point")
        xs = [float(p[0]) for p in points]
        if any(b <= a for a, b in pairwise(xs)):
            raise ValueError(f"ScheduledFloat points must have increasing x: {points}")
        self.points = [(float(x), float(y)) for x, y in points]
        self.default = float(default)
        self.batch_count: float | None = None

    def value_at(self, batch_count: float) -> float:
        pts = self.points
        if batch_count <= pts[0][0]:
            return pts[0][1]
        if batch_count >= pts[-1][0]:
            return pts[-1][1]
        for (x0, y0), (x1, y1) in pairwise(pts):
            if x0 <= batch_count <= x1:
                return y0 + (y1 - y0) * (batch_count - x0) / (x1 - x0)
        raise AssertionError("unreachable")

    def __float__(self) -> float:
        if self.batch_count is None or not self.training or _exporting():
            return self.default
        return self.value_at(self.batch_count)

    def extra_repr(self) -> str:
        return f"points={self.points}, default={self.default}, batch_count={self.batch_count}"


FloatLike = float | ScheduledFloat


def set_batch_count(model: nn.Module, batch_count: float) -> None:
    """Tell every `ScheduledFloat` in `model` the current training batch index."""
    for m in model.modules():
        if isinstance(m, ScheduledFloat):
            m.batch_count = float(batch_count)


def _exporting() -> bool:
    return torch.jit.is_scripting() or torch.jit.is_tracing()


def _active(module: nn.Module, x: Tensor) -> bool:
    """Whether a gradient-only regulariser should act on this call."""
    return module.training and x.requires_grad and not _exporting()


# --------------------------------------------------------------------------------------
# Parameter-gradient helpers
# --------------------------------------------------------------------------------------


class _LimitParamValue(torch.autograd.Function):
    """Identity; in backward flips gradients that would push x further out of [lo, hi]."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: float, hi: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        flip = ((x < ctx.lo) & (grad > 0)) | ((x > ctx.hi) & (grad < 0))
        return torch.where(flip, -grad, grad), None, None


def limit_param_value(
    x: Tensor, min: float, max: float, prob: float = 0.6, training: bool = True
) -> Tensor:
    """Keep a parameter (mostly) inside [min, max] by adjusting its gradient sign."""
    if training and random.random() < prob:
        return _LimitParamValue.apply(x, min, max)
    return x


class _PenalizeAbsValues(torch.autograd.Function):
    """Identity; in backward adds `penalty * sign(x)` where |x| > limit."""

    @staticmethod
    def forward(ctx, x: Tensor, limit: float, penalty: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.limit, ctx.penalty = limit, penalty
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        extra = (x.abs() > ctx.limit).to(grad.dtype) * x.sign().to(grad.dtype) * ctx.penalty
        return grad + extra, None, None


def penalize_abs_values_gt(x: Tensor, limit: float, penalty: float) -> Tensor:
    """Return x; its gradient gets an extra L1 pull on the elements with |x| > limit."""
    return _PenalizeAbsValues.apply(x, limit, penalty)


class _ScaleGradFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.alpha, None


class ScaleGrad(nn.Module):
    """Identity in the forward pass; multiplies the gradient by `alpha` in training."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or _exporting():
            return x
        return _ScaleGradFn.apply(x, self.alpha)


# --------------------------------------------------------------------------------------
# BiasNorm
# --------------------------------------------------------------------------------------


def _bias_norm_scales(x: Tensor, bias: Tensor, log_scale: Tensor, dim: int) -> Tensor:
    return torch.mean((x - bias) ** 2, dim=dim, keepdim=True) ** -0.5 * log_scale.exp()


class _BiasNormFn(torch.autograd.Function):
    """BiasNorm that keeps only its input for backward and recomputes the rest."""

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, log_scale: Tensor, dim: int) -> Tensor:
        ctx.dim = dim
        ctx.save_for_backward(x, bias, log_scale)
        return x * _bias_norm_scales(x, bias, log_scale, dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, bias, log_scale = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            b = bias.detach().requires_grad_(True)
            s = log_scale.detach().requires_grad_(True)
            y = x * _bias_norm_scales(x, b, s, ctx.dim)
            gx, gb, gs = torch.autograd.grad(y, (x, b, s), grad)
        return gx, gb, gs, None


class BiasNorm(nn.Module):
    """LayerNorm replacement: y = x / rms(x - bias) * exp(log_scale), over `channel_dim`.

    The learned bias only enters the scale, not the output, which stops one large constant
    channel from defeating the normalisation.
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int = -1,
        log_scale: float = 1.0,
        log_scale_min: float = -1.5,
        log_scale_max: float = 1.5,
    ):
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.log_scale = nn.Parameter(torch.tensor(log_scale))
        self.bias = nn.Parameter(torch.empty(num_channels).normal_(0.0, 1e-4))
        self.log_scale_min = log_scale_min
        self.log_scale_max = log_scale_max

    def _bias_view(self, ndim: int) -> tuple[Tensor, int]:
        dim = self.channel_dim % ndim
        return self.bias.reshape((-1,) + (1,) * (ndim - 1 - dim)), dim

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[self.channel_dim] != self.num_channels:
            raise ValueError(
                f"BiasNorm expects {self.num_channels} channels on dim {self.channel_dim}, "
                f"got shape {tuple(x.shape)}"
            )
        bias, dim = self._bias_view(x.ndim)
        if not self.training or _exporting():
            return x * _bias_norm_scales(x, bias, self.log_scale, dim)
        log_scale = limit_param_value(self.log_scale, self.log_scale_min, self.log_scale_max)
        return _BiasNormFn.apply(x, bias, log_scale, dim)


# --------------------------------------------------------------------------------------
# Balancer: per-channel constraints on sign balance and magnitude, enforced via gradients
# --------------------------------------------------------------------------------------


def _positive_fraction_to_mean(p: float) -> float:
    """Mean/stddev ratio at which a Gaussian is positive a fraction `p` of the time
    (a cheap erf^-1 approximation, accurate enough for a soft constraint)."""
    z = 2.0 * p - 1.0
    eps = 1.0e-10
    atanh = 0.5 * (math.log(1.0 + z + eps) - math.log(1.0 - z + eps))
    return 0.8139535143 * atanh


def _abs_to_rms(a: float) -> float:
    # For a Gaussian, E|x| * sqrt(pi/2) = rms.
    return math.sqrt(math.pi / 2.0) * a


class _BalancerFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, limits: tuple[float, float, float, float, float], dim: int):
        ctx.limits, ctx.dim = limits, dim
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        min_mean, max_mean, min_rms, max_rms, grad_scale = ctx.limits
        dims = [d for d in range(x.ndim) if d != ctx.dim]
        with torch.enable_grad():
            xf = x.detach().float().requires_grad_(True)
            sq_mean = (xf**2).mean(dim=dims, keepdim=True)
            mean = xf.mean(dim=dims, keepdim=True)
            std = (sq_mean - mean * mean).clamp(min=1e-20).sqrt()
            rms = sq_mean.clamp(min=1e-20).sqrt()
            ratio = mean / std
            mean_violation = (ratio - ratio.clamp(min=min_mean, max=max_mean)).abs()
            rms_violation = (rms.clamp(min=min_rms, max=max_rms) / rms).log().abs()
            (g,) = torch.autograd.grad((mean_violation + rms_violation).sum(), xf)
        g_rms = (g**2).mean(dim=dims, keepdim=True).sqrt().clamp(min=1e-20)
        g = g * (grad_scale / g_rms)
        gf = grad.float()
        return (gf + gf.abs() * g).to(grad.dtype), None, None


class Balancer(nn.Module):
    """Identity in the forward pass. In training, with probability `prob`, nudges the
    gradient so that each channel stays positive between `min_positive` and
    `max_positive` of the time and keeps its mean |x| between `min_abs` and `max_abs`."""

    def __init__(
        self,
        num_channels: int,
        channel_dim: int,
        min_positive: FloatLike = 0.05,
        max_positive: FloatLike = 0.95,
        min_abs: FloatLike = 0.2,
        max_abs: FloatLike = 100.0,
        grad_scale: FloatLike = 0.04,
        prob: FloatLike | None = None,
    ):
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.min_positive = min_positive
        self.max_positive = max_positive
        self.min_abs = min_abs
        self.max_abs = max_abs
        self.grad_scale = grad_scale
        self.prob = (
            ScheduledFloat((0.0, 0.5), (8000.0, 0.125), default=0.4) if prob is None else prob
        )

    def forward(self, x: Tensor) -> Tensor:
        if not _active(self, x) or random.random() >= float(self.prob):
            return x
        limits = (
            _positive_fraction_to_mean(float(self.min_positive)),
            _positive_fraction_to_mean(float(self.max_positive)),
            _abs_to_rms(float(self.min_abs)),
            _abs_to_rms(float(self.max_abs)),
            float(self.grad_scale),
        )
        return _BalancerFn.apply(x, limits, self.channel_dim % x.ndim)


# --------------------------------------------------------------------------------------
# Whiten: keeps the feature covariance from collapsing onto a few directions
# --------------------------------------------------------------------------------------


def whitening_metric(x: Tensor, num_groups: int) -> Tensor:
    """>= 1; equals 1 when, within each channel group, the centred covariance is a multiple
    of the identity (with the same multiple for all groups)."""
    x = x.reshape(-1, x.shape[-1])
    frames, channels = x.shape
    per_group = channels // num_groups
    x = x.reshape(frames, num_groups, per_group).transpose(0, 1)
    x = x - x.mean(dim=1, keepdim=True)
    cov = torch.matmul(x.transpose(1, 2), x)  # (groups, c, c)
    mean_diag = torch.diagonal(cov, dim1=1, dim2=2).mean()
    mean_diag_of_square = (cov**2).sum() / (num_groups * per_group)
    return mean_diag_of_square / (mean_diag**2 + 1e-20)


class _WhitenFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, module: Whiten) -> Tensor:
        ctx.module = module
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        w: Whiten = ctx.module
        with torch.enable_grad():
            xf = x.detach().float().requires_grad_(True)
            metric = whitening_metric(xf, w.num_groups)
            if metric.item() < float(w.whitening_limit):
                w.prob = w.min_prob
                return grad, None
            w.prob = w.max_prob
            (g,) = torch.autograd.grad(metric, xf)
        scale = float(w.grad_scale) * grad.float().norm() / (g.norm() + 1e-20)
        return grad + (g * scale).to(grad.dtype), None


class Whiten(nn.Module):
    """Identity in the forward pass. In training, sometimes adds a gradient term that pushes
    the whitening metric of x (per group of channels) below `whitening_limit`."""

    def __init__(
        self,
        num_groups: int,
        whitening_limit: FloatLike,
        prob: float | tuple[float, float],
        grad_scale: FloatLike,
    ):
        super().__init__()
        if num_groups < 1 or float(whitening_limit) < 1 or float(grad_scale) < 0:
            raise ValueError("Whiten needs num_groups >= 1, whitening_limit >= 1, grad_scale >= 0")
        self.num_groups = num_groups
        self.whitening_limit = whitening_limit
        self.grad_scale = grad_scale
        self.min_prob, self.max_prob = (prob, prob) if isinstance(prob, float) else prob
        self.prob = self.max_prob

    def forward(self, x: Tensor) -> Tensor:
        if not _active(self, x) or float(self.grad_scale) == 0 or random.random() > self.prob:
            return x
        return _WhitenFn.apply(x, self)


# --------------------------------------------------------------------------------------
# Dropout with a mask shared along one dimension
# --------------------------------------------------------------------------------------


class SharedDropout(nn.Module):
    """Dropout with a scheduled rate whose mask is shared along `shared_dim`
    (e.g. the time axis), which is cheaper than a full-size mask."""

    def __init__(self, p: FloatLike, shared_dim: int):
        super().__init__()
        self.p = p
        self.shared_dim = shared_dim

    def forward(self, x: Tensor) -> Tensor:
        p = float(self.p)
        if not self.training or p == 0.0 or _exporting():
            return x
        shape = list(x.shape)
        shape[self.shared_dim] = 1
        mask = (torch.rand(shape, device=x.device) > p).to(x.dtype) * (1.0 / (1.0 - p))
        return x * mask


# --------------------------------------------------------------------------------------
# Swoosh activations
# --------------------------------------------------------------------------------------

# swoosh(x) = log(1 + exp(x - shift)) - 0.08 x - offset
_SWOOSH = {"SwooshL": (4.0, 0.035), "SwooshR": (1.0, 0.313261687)}


def _swoosh_eval(x: Tensor, shift: float, offset: float) -> Tensor:
    """k2's forward kernel formula: log1p(exp(x - shift)), falling back to x - shift
    where that overflows."""
    z = x - shift
    soft = torch.log1p(torch.exp(z))
    soft = torch.where(torch.isinf(soft), z, soft)
    return soft - 0.08 * x - offset


def _swoosh_linear_form(x: Tensor, shift: float, offset: float) -> Tensor:
    """The form used inside icefall's ActivationDropoutAndLinear in eval: log(1 + exp(.))."""
    z = x - shift
    soft = (1.0 + z.exp()).log()
    soft = torch.where(soft == float("inf"), z, soft)
    return soft - 0.08 * x - offset


def _swoosh_fast(x: Tensor, shift: float, offset: float) -> Tensor:
    """Training form: one fused softplus kernel (~3x faster; within 1 ulp of the above)."""
    return nn.functional.softplus(x - shift) - 0.08 * x - offset


def _swoosh_onnx(x: Tensor, shift: float, offset: float) -> Tensor:
    """Exportable form without inf handling problems: logaddexp(0, z) written out."""
    z = x - shift
    soft = torch.clamp(z, min=0.0) + torch.log1p(torch.exp(-z.abs()))
    return soft - 0.08 * x - offset


def _swoosh_deriv(x: Tensor, shift: float) -> Tensor:
    return torch.sigmoid(x - shift) - 0.08


class _SwooshFn(torch.autograd.Function):
    """Swoosh that stores only its input; the derivative is recomputed in backward."""

    @staticmethod
    def forward(ctx, x: Tensor, shift: float, offset: float) -> Tensor:
        ctx.shift = shift
        ctx.save_for_backward(x)
        return _swoosh_fast(x, shift, offset)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * _swoosh_deriv(x, ctx.shift), None, None


def _swoosh(x: Tensor, name: str) -> Tensor:
    shift, offset = _SWOOSH[name]
    if _exporting():
        return _swoosh_onnx(x, shift, offset)
    if x.requires_grad:
        return _SwooshFn.apply(x, shift, offset)
    return _swoosh_eval(x, shift, offset)


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + exp(x - 4)) - 0.08 x - 0.035."""
    return _swoosh(x, "SwooshL")


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + exp(x - 1)) - 0.08 x - 0.313261687."""
    return _swoosh(x, "SwooshR")


class SwooshL(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return swoosh_l(x)


class SwooshR(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return swoosh_r(x)


# --------------------------------------------------------------------------------------
# Linear layers
# --------------------------------------------------------------------------------------


def scaled_linear(
    in_features: int, out_features: int, bias: bool = True, initial_scale: float = 1.0
) -> nn.Linear:
    """An `nn.Linear` whose default initial weights are multiplied by `initial_scale`
    and whose bias is U(-0.1, 0.1) * `initial_scale`."""
    lin = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        lin.weight.mul_(initial_scale)
        if lin.bias is not None:
            lin.bias.uniform_(-0.1 * initial_scale, 0.1 * initial_scale)
    return lin


class _ActDropLinearFn(torch.autograd.Function):
    """swoosh -> dropout -> linear, storing only the input (and a small dropout mask)."""

    @staticmethod
    def forward(ctx, x, weight, bias, name: str, mask):
        shift, offset = _SWOOSH[name]
        ctx.shift, ctx.offset = shift, offset
        ctx.save_for_backward(x, weight, mask)
        ctx.has_bias = bias is not None
        y = _swoosh_fast(x, shift, offset)
        if mask is not None:
            y = y * mask
        return torch.nn.functional.linear(y, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mask = ctx.saved_tensors
        # Under autocast the forward ran in a lower precision than the parameters; do the
        # backward in the gradient's dtype and hand back each gradient in its input's dtype.
        dt = grad.dtype
        y = _swoosh_fast(x, ctx.shift, ctx.offset)
        if mask is not None:
            y = y * mask
        out_ch, in_ch = weight.shape
        g2 = grad.reshape(-1, out_ch)
        grad_w = g2.t().matmul(y.reshape(-1, in_ch).to(dt)).to(weight.dtype)
        grad_b = g2.sum(dim=0).to(weight.dtype) if ctx.has_bias else None
        grad_x = grad.matmul(weight.to(dt)) * _swoosh_deriv(x, ctx.shift)
        if mask is not None:
            grad_x = grad_x * mask
        return grad_x.to(x.dtype), grad_w, grad_b, None, None


class ActivationDropoutAndLinear(nn.Module):
    """SwooshL/SwooshR, then dropout (mask shared along `dropout_shared_dim`), then a linear
    layer; memory-efficient in training. Parameters are `weight` and `bias` as in icefall."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        activation: str = "SwooshL",
        dropout_p: FloatLike = 0.0,
        dropout_shared_dim: int | None = -1,
        initial_scale: float = 1.0,
    ):
        super().__init__()
        if activation not in _SWOOSH:
            raise ValueError(f"activation must be one of {list(_SWOOSH)}, got {activation!r}")
        lin = scaled_linear(in_channels, out_channels, bias=bias, initial_scale=initial_scale)
        self.weight = lin.weight
        self.register_parameter("bias", lin.bias)
        self.activation = activation
        self.dropout_p = dropout_p
        self.dropout_shared_dim = dropout_shared_dim

    def forward(self, x: Tensor) -> Tensor:
        shift, offset = _SWOOSH[self.activation]
        if _exporting():
            return torch.nn.functional.linear(
                _swoosh_onnx(x, shift, offset), self.weight, self.bias
            )
        if not self.training:
            y = _swoosh_linear_form(x, shift, offset)
            return torch.nn.functional.linear(y, self.weight, self.bias)
        p = float(self.dropout_p)
        mask = None
        if p != 0.0:
            shape = list(x.shape)
            if self.dropout_shared_dim is not None:
                shape[self.dropout_shared_dim] = 1
            mask = (torch.rand(shape, device=x.device) > p).to(x.dtype) * (1.0 / (1.0 - p))
        return _ActDropLinearFn.apply(x, self.weight, self.bias, self.activation, mask)


# --------------------------------------------------------------------------------------
# Chunk-causal depthwise convolution
# --------------------------------------------------------------------------------------


def depthwise_conv1d(x: Tensor, conv: nn.Conv1d, fast: bool = False) -> Tensor:
    """`conv(x)` for a depthwise Conv1d. With `fast`, computed as a channels-last 2-D conv,
    which oneDNN runs (forward and backward) 2-3x faster on CPU; equal up to float rounding."""
    if not fast:
        return conv(x)
    x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    y = nn.functional.conv2d(
        x4, conv.weight.unsqueeze(2), conv.bias, padding=(0, conv.padding[0]), groups=conv.groups
    )
    return y.squeeze(2)


class ChunkCausalDepthwiseConv1d(nn.Module):
    """Depthwise conv that never looks past the end of the current chunk.

    It is the sum of a causal depthwise conv of width (k+1)/2 (left context from earlier
    chunks) and a full-width depthwise conv applied inside each chunk only, scaled per
    position by `1 + chunkwise_conv_scale[0] (left edge) + chunkwise_conv_scale[1]
    (right edge)` so the model can compensate for the zero padding at chunk edges.
    """

    def __init__(self, channels: int, kernel_size: int, initial_scale: float = 1.0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.causal_conv = nn.Conv1d(
            channels, channels, (kernel_size + 1) // 2, groups=channels, bias=True
        )
        self.chunkwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=True
        )
        self.chunkwise_conv_scale = nn.Parameter(torch.zeros(2, channels, kernel_size))
        with torch.no_grad():
            self.causal_conv.weight.mul_(initial_scale)
            self.chunkwise_conv.weight.mul_(initial_scale)
            self.causal_conv.bias.uniform_(-0.1 * initial_scale, 0.1 * initial_scale)

    @property
    def left_pad(self) -> int:
        return self.kernel_size // 2

    def chunk_scale(self, chunk_size: int) -> Tensor:
        """(channels, chunk_size) multiplier for the within-chunk convolution."""
        left, right = self.chunkwise_conv_scale[0], self.chunkwise_conv_scale[1]
        k = self.kernel_size
        if chunk_size < k:
            return 1.0 + (left[:, :chunk_size] + right[:, k - chunk_size :])
        extra = chunk_size - k
        left = nn.functional.pad(left, (0, extra))
        right = nn.functional.pad(right, (extra, 0))
        return 1.0 + (left + right)

    def forward(self, x: Tensor, chunk_size: int = -1) -> Tensor:
        """x: (batch, channels, time). chunk_size < 0 means one chunk spanning x."""
        batch, channels, seq_len = x.shape
        if chunk_size < 0 or chunk_size > seq_len:
            chunk_size = seq_len
        right_pad = -seq_len % chunk_size
        lp = self.left_pad
        fast = self.training and not _exporting()
        x = nn.functional.pad(x, (lp, right_pad))
        causal = depthwise_conv1d(x[..., : lp + seq_len], self.causal_conv, fast)
        num_chunks = (seq_len + right_pad) // chunk_size
        chunks = (
            x[..., lp:]
            .reshape(batch, channels, num_chunks, chunk_size)
            .transpose(1, 2)
            .reshape(batch * num_chunks, channels, chunk_size)
        )
        chunks = depthwise_conv1d(chunks, self.chunkwise_conv, fast) * self.chunk_scale(chunk_size)
        chunks = (
            chunks.reshape(batch, num_chunks, channels, chunk_size)
            .transpose(1, 2)
            .reshape(batch, channels, num_chunks * chunk_size)
        )
        return chunks[..., :seq_len] + causal

    def streaming_forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """x: (batch, channels, chunk) is one whole chunk; cache: (batch, channels, k//2)."""
        lp = self.left_pad
        if cache.shape[-1] != lp:
            raise ValueError(f"conv cache must have {lp} frames, got {cache.shape[-1]}")
        seq_len = x.shape[-1]
        full = torch.cat([cache, x], dim=2)
        causal = self.causal_conv(full)
        chunk = self.chunkwise_conv(x) * self.chunk_scale(seq_len)
        return chunk + causal, full[..., -lp:]


def convert_num_channels(x: Tensor, num_channels: int) -> Tensor:
    """Truncate or zero-pad the last dimension of x to `num_channels`."""
    have = x.shape[-1]
    if num_channels <= have:
        return x[..., :num_channels]
    return nn.functional.pad(x, (0, num_channels - have))
