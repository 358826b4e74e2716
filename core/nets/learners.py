"""Parameter learners for the VIC-type model (Li & Lu 2023; Tsai et al. 2021) and the learner
contract every network of HydroLens implements.

The learner contract: a learner is an ``nn.Module`` built as ``cls(n_dynamic, n_static,
n_out, **hyper)`` (input sizes from the dataset, ``n_out`` read from the backbone's
``parameter_specs`` × ``nmul``) whose ``forward(x_dyn, x_static)`` returns ``LearnerOutput``:
raw static outputs ``[site, n_out]`` (and, for per-day learners, raw dynamic outputs). "Raw"
means in the normalised parameter space: the model maps them to [0, 1] (a sigmoid for the δ
models; a clamp after the range-boundary loss for the ParaFormer family, Li & Lu 2023 eq. 13-14)
and ``ParamSpec.scale`` gives physical units.

Learners here (``LEARNERS``), with the paper's sizes as defaults:

- ``FFN_A`` (Tsai et al. 2021 g_A for static parameters): attributes -> MLP -> θ.
- ``LSTM_Z`` (Tsai et al. 2021 g_z): an LSTM over a window of (forcing, SMAP, mask, attributes)
  -> θ from its last hidden state; hidden 256, dropout 0.5.
- ``ParaFormer_A``: one token per attribute (h_j = a_j·w_j + b_j), N = 2 transformer encoder
  layers (d_model 128, 4 heads, ReLU feed-forward, residuals, LayerNorm), mean-pool, Linear.
- ``ParaFormer_Z``: one token per day of a window (H_Z = [x_t, z_t, m_t]·W + sinusoidal position
  encoding; N = 2 encoder layers, d_model 256, 8 heads); attribute tokens pass self-attention
  and give the queries Q_A; cross-attention O_Z = Attn(Q_A, K_Z, V_Z);
  θ = Linear(FFN(O_Z + Q_A) + O_Z + Q_A) (eq. 12), mean over the attribute tokens.

Shapes: ``x_dyn [time, site, n_dynamic]`` (normalised forcing, target and its mask; ignored by
the A-learners, may be None) and ``x_static [site, n_static]`` (normalised attributes).
Missing target days enter ``x_dyn`` as 0 with a mask channel = 0 (doc **[default]**).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .dropout import Dropout


@dataclass
class LearnerOutput:
    """What a learner returns.

    Attributes:
        static: raw static outputs [site, n_out] (normalised parameter space, unbounded).
        dynamic: raw per-day outputs [time, site, n_dynamic_out], or None for static learners.
    """

    static: torch.Tensor
    dynamic: torch.Tensor | None = None


def _check_inputs(name: str, x_dyn, x_static, n_dynamic: int, n_static: int, needs_dyn: bool):
    if x_static.ndim != 2 or x_static.shape[1] != n_static:
        raise ValueError(f"{name}: x_static must be [site, {n_static}], got {tuple(x_static.shape)}")
    bad = torch.nonzero(~torch.isfinite(x_static).all(-1)).flatten().tolist()
    if bad:
        raise ValueError(f"{name}: x_static is not finite at site index {bad[:10]}")
    if needs_dyn:
        if x_dyn is None or x_dyn.ndim != 3 or x_dyn.shape[1:] != (x_static.shape[0], n_dynamic):
            got = None if x_dyn is None else tuple(x_dyn.shape)
            raise ValueError(f"{name}: x_dyn must be [time, {x_static.shape[0]}, {n_dynamic}], got {got}")
        where = torch.nonzero(~torch.isfinite(x_dyn).all(-1))
        if where.numel():
            t, s = where[0].tolist()
            raise ValueError(f"{name}: x_dyn is not finite (day {t} of the window, site index {s}); "
                             "missing target days must enter as 0 with the mask channel at 0")


class FFN_A(nn.Module):
    """Multilayer perceptron attributes -> θ (the static dPL learner of Tsai et al. 2021).

    Args:
        n_dynamic: unused (kept for the common constructor); n_static: attributes;
        n_out: raw outputs (parameters × nmul); hidden: width of each hidden layer (256
        [default]); layers: hidden layers (3 [default]); dropout: between hidden layers (0.1
        [default]).
    """

    uses_dynamic = False

    def __init__(self, n_dynamic: int, n_static: int, n_out: int, hidden: int = 256,
                 layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.n_dynamic, self.n_static, self.n_out = n_dynamic, n_static, n_out
        mods, width = [], n_static
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.ReLU(), Dropout(dropout)]
            width = hidden
        mods.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*mods)

    def forward(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor) -> LearnerOutput:
        _check_inputs("FFN_A", x_dyn, x_static, self.n_dynamic, self.n_static, False)
        return LearnerOutput(self.net(x_static))


class LSTM_Z(nn.Module):
    """LSTM over a window of (forcing, target, mask) with the attributes repeated each day ->
    θ from the last hidden state (the g_z of Tsai et al. 2021).

    Args: n_dynamic, n_static, n_out; hidden (256); dropout (0.5, on the last hidden state
    [default]). A Linear + ReLU input layer precedes the LSTM, as in the δ models' g_A [default].
    """

    uses_dynamic = True

    def __init__(self, n_dynamic: int, n_static: int, n_out: int, hidden: int = 256,
                 dropout: float = 0.5):
        super().__init__()
        self.n_dynamic, self.n_static, self.n_out = n_dynamic, n_static, n_out
        self.linear_in = nn.Linear(n_dynamic + n_static, hidden)
        self.lstm = nn.LSTM(hidden, hidden)
        self.dropout = Dropout(dropout)
        self.linear_out = nn.Linear(hidden, n_out)

    def forward(self, x_dyn: torch.Tensor, x_static: torch.Tensor) -> LearnerOutput:
        _check_inputs("LSTM_Z", x_dyn, x_static, self.n_dynamic, self.n_static, True)
        x = torch.cat([x_dyn, x_static.unsqueeze(0).expand(x_dyn.shape[0], -1, -1)], -1)
        h, _ = self.lstm(torch.relu(self.linear_in(x)))
        return LearnerOutput(self.linear_out(self.dropout(h[-1])))


class AttributeTokens(nn.Module):
    """One token per attribute: h_j = a_j·w_j + b_j (Li & Lu 2023, ParaFormer_A): [site, na] ->
    [site, na, d_model]."""

    def __init__(self, n_static: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_static, d_model) / math.sqrt(d_model))
        self.bias = nn.Parameter(torch.zeros(n_static, d_model))

    def forward(self, x_static: torch.Tensor) -> torch.Tensor:
        return x_static.unsqueeze(-1) * self.weight + self.bias


class Attention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (same parameters, state dict and arguments) whose scaled
    dot-product step runs in fp32 on CPU under bf16 autocast, projections staying in bf16.

    Why: PyTorch's CPU flash-attention backward is slower in bf16 than in fp32 (measured on
    100 cells × 8 heads × 240 days × 32: fwd + bwd 302 ms bf16 vs 150 ms fp32, Xeon with AMX;
    docs/performance.md). Masks, ``need_weights`` and other devices take the parent's path.
    Shapes: batch_first ``[batch, tokens, d_model]``.
    """

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if (need_weights or key_padding_mask is not None or attn_mask is not None or is_causal
                or query.device.type != "cpu" or not self.batch_first or not self._qkv_same_embed_dim
                or self.in_proj_bias is None or key is not value):
            return super().forward(query, key, value, key_padding_mask=key_padding_mask,
                                   need_weights=need_weights, attn_mask=attn_mask,
                                   average_attn_weights=average_attn_weights, is_causal=is_causal)
        d, h = self.embed_dim, self.num_heads
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key:
            q, k, v = nn.functional.linear(query, w, b).chunk(3, -1)
        else:
            q = nn.functional.linear(query, w[:d], b[:d])
            k, v = nn.functional.linear(key, w[d:], b[d:]).chunk(2, -1)

        dt = torch.promote_types(q.dtype, torch.float32)  # bf16 -> fp32; fp32, fp64 kept

        def heads(t):  # [batch, tokens, d] -> [batch, heads, tokens, d / heads]
            return t.to(dt).unflatten(-1, (h, d // h)).transpose(1, 2)

        with torch.autocast("cpu", enabled=False):
            o = nn.functional.scaled_dot_product_attention(
                heads(q), heads(k), heads(v), dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(o.transpose(1, 2).flatten(-2)), None


def _encoder(d_model: int, heads: int, layers: int, ff: int, dropout: float,
             attn_dropout: float | None = None) -> nn.TransformerEncoder:
    """``layers`` post-norm encoder layers (``nn.TransformerEncoderLayer``, ReLU feed-forward)
    with :class:`Attention` and :class:`Dropout` in place of PyTorch's (same state dict);
    ``dropout`` on the residual branches and in the feed-forward, ``attn_dropout`` (default:
    ``dropout``) on the attention weights."""
    layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=dropout,
                                       activation="relu", batch_first=True)
    layer.self_attn = Attention(d_model, heads, dropout=dropout if attn_dropout is None else float(attn_dropout),
                                batch_first=True)
    for name in ("dropout", "dropout1", "dropout2"):
        setattr(layer, name, Dropout(dropout))
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def sinusoidal_encoding(n: int, d_model: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Vaswani et al. (2017) position encoding [n, d_model]: sin on even, cos on odd features."""
    pos = torch.arange(n, device=device, dtype=dtype)[:, None]
    i = torch.arange(0, d_model, 2, device=device, dtype=dtype)
    angle = pos / torch.pow(torch.tensor(10000.0, device=device, dtype=dtype), i / d_model)
    pe = torch.zeros(n, d_model, device=device, dtype=dtype)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


class ParaFormer_A(nn.Module):
    """Transformer over attribute tokens -> θ (Li & Lu 2023, sec. 2.3.1).

    Args: n_dynamic (unused), n_static, n_out; d_model (128), heads (4), layers (N = 2),
    ff (feed-forward width, 256 [default]), dropout (0.1 [default]).
    """

    uses_dynamic = False

    def __init__(self, n_dynamic: int, n_static: int, n_out: int, d_model: int = 128,
                 heads: int = 4, layers: int = 2, ff: int = 256, dropout: float = 0.1):
        super().__init__()
        self.n_dynamic, self.n_static, self.n_out = n_dynamic, n_static, n_out
        self.tokens = AttributeTokens(n_static, d_model)
        self.encoder = _encoder(d_model, heads, layers, ff, dropout)
        self.out = nn.Linear(d_model, n_out)

    def forward(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor) -> LearnerOutput:
        _check_inputs("ParaFormer_A", x_dyn, x_static, self.n_dynamic, self.n_static, False)
        h = self.encoder(self.tokens(x_static))          # [site, na, d]
        return LearnerOutput(self.out(h.mean(1)))


class ParaFormer_Z(nn.Module):
    """Transformer over daily (forcing, target, mask) tokens, queried by the attribute tokens
    through cross-attention -> θ (Li & Lu 2023, sec. 2.3.2, eq. 12).

    Args: n_dynamic (per-day inputs incl. target and mask), n_static, n_out; d_model (256),
    heads (8), layers (N = 2 for the day tokens; 1 self-attention layer for the attribute
    tokens [default]), ff (512 [default]), dropout (0.1 [default], residual branches and
    feed-forward), attn_dropout (0 [default], on the attention weights). The "pool over
    tokens" of the paper is a mean over the attribute tokens [default].

    Why no attention dropout by default (measured, 2 threads, 100 cells × 240 days, forward +
    backward): drawing the dropout masks of the [cell, head, 240, 240] attention weights
    took 1.5 of 4.2 s in fp32; without them the step is 2.6 s (fp32) and 2.2 s (bf16), and
    attention runs in PyTorch's fused flash-attention kernel. The residual dropout masks and the
    bf16 attention backward were the next costs: :class:`Dropout` and :class:`Attention`
    (docs/performance.md).
    """

    uses_dynamic = True

    def __init__(self, n_dynamic: int, n_static: int, n_out: int, d_model: int = 256,
                 heads: int = 8, layers: int = 2, ff: int = 512, dropout: float = 0.1,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.n_dynamic, self.n_static, self.n_out = n_dynamic, n_static, n_out
        self.d_model = d_model
        self.embed_z = nn.Linear(n_dynamic, d_model)
        self.encoder_z = _encoder(d_model, heads, layers, ff, dropout, attn_dropout)
        self.tokens = AttributeTokens(n_static, d_model)
        self.encoder_a = _encoder(d_model, heads, 1, ff, dropout, attn_dropout)
        self.cross = Attention(d_model, heads, dropout=attn_dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, ff), nn.ReLU(), nn.Linear(ff, d_model))
        self.out = nn.Linear(d_model, n_out)

    def forward(self, x_dyn: torch.Tensor, x_static: torch.Tensor) -> LearnerOutput:
        _check_inputs("ParaFormer_Z", x_dyn, x_static, self.n_dynamic, self.n_static, True)
        z = self.embed_z(x_dyn.transpose(0, 1))                          # [site, time, d]
        z = z + sinusoidal_encoding(z.shape[1], self.d_model, z.device, z.dtype)
        k = self.encoder_z(z)                                            # K_Z = V_Z
        q = self.encoder_a(self.tokens(x_static))                        # Q_A [site, na, d]
        o, _ = self.cross(q, k, k, need_weights=False)                   # O_Z
        s = o + q
        theta = self.out(self.ffn(s) + s)                                # eq. 12
        return LearnerOutput(theta.mean(1))


#: Learners by config/CLI name.
LEARNERS: dict[str, type[nn.Module]] = {
    "FFN_A": FFN_A, "LSTM_Z": LSTM_Z, "ParaFormer_A": ParaFormer_A, "ParaFormer_Z": ParaFormer_Z,
}


def make_learner(name: str, n_dynamic: int, n_static: int, n_out: int, **hyper) -> nn.Module:
    """Build the learner called ``name`` (``LEARNERS``), sized by the caller from the dataset
    (``n_dynamic``, ``n_static``) and the backbone's spec (``n_out``).

    Raises:
        ValueError: unknown name (lists the known ones) or an unknown hyper-parameter.
    """
    try:
        cls = LEARNERS[name]
    except KeyError:
        raise ValueError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}") from None
    try:
        return cls(n_dynamic, n_static, n_out, **hyper)
    except TypeError as e:
        raise ValueError(f"learner {name}: {e}") from None
