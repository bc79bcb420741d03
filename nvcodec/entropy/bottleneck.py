"""Factorized prior of Balle et al. 2018 ("Variational image compression with a scale
hyperprior", appendix 6.1) with a real bitstream.

Training uses a learned, per-channel monotone CDF. For coding, ``finalize`` freezes it into
integer tables (one per channel, plus an ESCAPE symbol for everything outside the table's range)
stored as int32 buffers, so they travel with ``state_dict`` and are all the decoder uses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nvcodec.entropy import escape
from nvcodec.entropy.coder import Decoder, Encoder
from nvcodec.entropy.tables import CdfTables
from nvcodec.errors import BitstreamError

_TABLE_BUFFERS = ("cdf_pmf", "cdf_lengths", "cdf_offsets")
# Table bounds stay well inside int32 so escaped values and their zigzag codes cannot overflow.
_RANGE_LIMIT = 1 << 30
# Largest magnitude ``compress`` accepts; every such value escapes with < 2**34 as its code.
MAX_MAGNITUDE = (1 << 31) - 1
# Values outside their channel's table, with that channel's bounds [lo, hi] (all int64).
_Escapes = tuple[np.ndarray, np.ndarray, np.ndarray]


class _LowerBound(torch.autograd.Function):
    """max(x, bound) that still lets gradients push values up from below the bound."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)), None


class EntropyBottleneck(nn.Module):
    """Per-channel learned density for latents ``y`` of shape (B, C, *): channel axis is dim 1."""

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3),
        init_scale: float = 10.0,
        likelihood_bound: float = 1e-9,
        straight_through: bool = False,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.likelihood_bound = likelihood_bound
        # Decoder path gets rounded values (gradients straight through) instead of noisy ones.
        self.straight_through = straight_through
        widths = (1, *filters, 1)
        # Chosen so the initial density is roughly uniform over [-init_scale, init_scale].
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            init = math.log(math.expm1(1 / scale / fan_out))
            self.matrices.append(nn.Parameter(torch.full((channels, fan_out, fan_in), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, fan_out, 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, fan_out, 1)))
        for name in _TABLE_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32))
        self._tables: CdfTables | None = None

    # -- the continuous model -------------------------------------------------------------

    def _logits_cumulative(self, x: Tensor) -> Tensor:
        """Logit of the CDF at ``x`` (C, 1, N), monotone in x, computed in ``x``'s dtype."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            logits = torch.matmul(F.softplus(matrix).to(x.dtype), logits) + bias.to(x.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]).to(x.dtype) * torch.tanh(logits)
        return logits

    def _bin_probabilities(self, lower: Tensor, upper: Tensor) -> Tensor:
        """P(lower < X < upper) from CDF logits; the sign trick keeps both tails accurate."""
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def likelihood(self, values: Tensor) -> Tensor:
        """Probability of each value's unit bin under the continuous density (lower-bounded)."""
        flat = values.transpose(0, 1).reshape(self.channels, 1, -1)
        p = self._bin_probabilities(
            self._logits_cumulative(flat - 0.5), self._logits_cumulative(flat + 0.5)
        )
        p = _LowerBound.apply(p, self.likelihood_bound)
        return p.reshape(values.transpose(0, 1).shape).transpose(0, 1)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return (y_hat, likelihoods): noisy (or straight-through rounded) in training, else
        rounded. Likelihoods are those of the noisy values in training, of y_hat otherwise."""
        if y.dim() < 2 or y.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels}, ...) latents, got {tuple(y.shape)}")
        if not self.training:
            y_hat = torch.round(y)
            return y_hat, self.likelihood(y_hat)
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_hat = y + (torch.round(y) - y).detach() if self.straight_through else noisy
        return y_hat, self.likelihood(noisy)

    # -- integer tables --------------------------------------------------------------------

    @torch.no_grad()
    def finalize(
        self, tail_mass: float = 1e-9, max_symbols: int = 4096, dead_zone: float = 0.0
    ) -> None:
        """Freeze the density into integer tables, one per channel.

        Channel c covers the integers [lo_c, hi_c] outside of which less than ``tail_mass`` of
        the mass lies (at most ``max_symbols - 1`` of them, trimmed evenly from both ends), plus
        one ESCAPE symbol carrying the remaining mass. Evaluated in float64 on an integer grid,
        so the tables depend only on the parameters. With an encoder ``dead_zone`` (values
        below 0.5 + dead_zone in magnitude coded as 0), symbol 0's bin widens to match.
        """
        if not 0 < tail_mass < 1 or not 2 <= max_symbols <= 1 << 16:
            raise ValueError("need 0 < tail_mass < 1 and 2 <= max_symbols <= 65536")
        half = tail_mass / 2

        def cdf_logits(points: Tensor) -> Tensor:
            return self._logits_cumulative(points.reshape(self.channels, 1, -1)).reshape(
                points.shape
            )

        lo = _last_true(lambda t: torch.sigmoid(cdf_logits(t - 0.5)) < half, self.channels)
        hi = -_last_true(lambda t: torch.sigmoid(-cdf_logits(0.5 - t)) < half, self.channels)
        excess = (hi - lo + 1 - (max_symbols - 1)).clamp_min(0)
        lo, hi = lo + excess // 2, hi - (excess - excess // 2)
        widths = (hi - lo + 1).long()
        edges = lo[:, None] - 0.5 + torch.arange(int(widths.max()) + 1, dtype=torch.float64)
        edges = torch.where(edges.abs() == 0.5, edges.sign() * (0.5 + dead_zone), edges)
        logits = cdf_logits(edges)
        bins = self._bin_probabilities(logits[:, :-1], logits[:, 1:])
        rows = []
        for c, width in enumerate(widths.tolist()):
            tails = torch.sigmoid(logits[c, 0]) + torch.sigmoid(-logits[c, width])
            rows.append(torch.cat([bins[c, :width], tails[None]]).numpy())
        tables = CdfTables.from_probabilities(rows)
        self._set_tables(tables, lo.numpy().astype(np.int32))

    @property
    def finalized(self) -> bool:
        return self.cdf_lengths.numel() > 0

    def export_tables(self) -> dict[str, np.ndarray]:
        """The finalized tables as int32 arrays ``cdf.pmf``, ``cdf.lengths``, ``cdf.offsets``."""
        tables = self._require_tables()
        return {**tables.to_arrays("cdf"), "cdf.offsets": self.cdf_offsets.cpu().numpy().copy()}

    def import_tables(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Load tables written by ``export_tables``; a malformed set raises BitstreamError."""
        if "cdf.offsets" not in arrays:
            raise BitstreamError("entropy tables: missing array 'cdf.offsets'")
        self._set_tables(CdfTables.from_arrays(arrays, "cdf"), arrays["cdf.offsets"])

    def _set_tables(self, tables: CdfTables, offsets: np.ndarray) -> None:
        _check_offsets(tables, offsets, self.channels)
        self.cdf_pmf = torch.from_numpy(tables.pmf.copy())
        self.cdf_lengths = torch.from_numpy(tables.lengths.copy())
        self.cdf_offsets = torch.from_numpy(offsets.copy())
        self._tables = tables

    @property
    def finalized_tables(self) -> CdfTables:
        """The integer tables (raises if ``finalize`` has not run nor tables been loaded)."""
        return self._require_tables()

    def _require_tables(self) -> CdfTables:
        if self._tables is None:
            if not self.finalized:
                raise RuntimeError("EntropyBottleneck.finalize() must run before coding")
            tables = CdfTables(self.cdf_pmf.cpu().numpy(), self.cdf_lengths.cpu().numpy())
            _check_offsets(tables, self.cdf_offsets.cpu().numpy(), self.channels)
            self._tables = tables
        return self._tables

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Table buffers change shape with the data they were fitted on: resize before loading.
        for name in _TABLE_BUFFERS:
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                if incoming.dtype != torch.int32:
                    raise BitstreamError(f"entropy table {prefix + name} must be int32")
                setattr(self, name, torch.empty_like(incoming))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._tables = None
        if self.finalized:
            self._require_tables()

    # -- coding ----------------------------------------------------------------------------

    def integer_values(self, y: Tensor) -> np.ndarray:
        """round(y) as int64, channel-first and flattened to (C, N): what gets coded."""
        if y.dim() < 2 or y.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels}, ...) latents, got {tuple(y.shape)}")
        rounded = torch.round(y.detach()).transpose(0, 1).reshape(self.channels, -1)
        # The largest magnitude, as a Python float, compares exactly against MAX_MAGNITUDE.
        if rounded.numel() and not float(rounded.abs().max()) <= MAX_MAGNITUDE:
            raise ValueError(f"latents must be finite with |round(y)| <= {MAX_MAGNITUDE}")
        return rounded.cpu().to(torch.int64).numpy()

    def _symbols(
        self, values: np.ndarray, channels: np.ndarray | None = None
    ) -> tuple[CdfTables, np.ndarray, _Escapes]:
        """Table indices of integer values (rows: ``channels``, default all) and the escaped
        values with their bounds."""
        tables = self._require_tables()
        channels = np.arange(self.channels) if channels is None else channels
        width = (tables.lengths[channels] - 1).astype(np.int64)[:, None]
        indices = values - self.cdf_offsets.cpu().numpy()[channels][:, None]
        escaped = (indices < 0) | (indices >= width)
        if not escaped.any():
            empty = np.zeros(0, dtype=np.int64)
            return tables, indices, (empty, empty, empty)
        escapes = (values[escaped], *self._bounds(channels[np.nonzero(escaped)[0]]))
        return tables, np.where(escaped, width, indices), escapes

    def _bounds(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi] of the channel of each escaped value."""
        lo = self.cdf_offsets.cpu().numpy().astype(np.int64)
        hi = lo + self.cdf_lengths.cpu().numpy() - 2
        return lo[rows], hi[rows]

    def compress(self, y: Tensor) -> bytes:
        """Round ``y`` and code it with the finalized tables only."""
        return self.compress_values(self.integer_values(y))

    def compress_values(self, values: np.ndarray, channels: np.ndarray | None = None) -> bytes:
        """Code (C, N) integer values (as from ``integer_values``), channel by channel, or the
        rows of the given ``channels`` (len(channels), N), as one payload."""
        encoder = Encoder()
        self.add_values(encoder, values, channels)
        return encoder.finish()

    def add_values(
        self, encoder: Encoder, values: np.ndarray, channels: np.ndarray | None = None
    ) -> None:
        """Queue ``compress_values``'s symbols on an ``encoder`` that may code more."""
        channels = np.arange(self.channels) if channels is None else channels
        tables, indices, escapes = self._symbols(values, channels)
        encoder.add_rows(tables, channels, indices)
        escape.add(encoder, *escapes)

    def decompress_values(
        self, data: bytes, count: int, channels: np.ndarray | None = None
    ) -> np.ndarray:
        """Inverse of ``compress_values``: (len(channels), count) int64 values."""
        decoder = Decoder(data)
        values = self.read_values(decoder, count, channels)
        decoder.finish()
        return values

    def read_values(
        self, decoder: Decoder, count: int, channels: np.ndarray | None = None
    ) -> np.ndarray:
        """Inverse of ``add_values``: (len(channels), count) int64 values."""
        tables = self._require_tables()
        channels = np.arange(self.channels) if channels is None else channels
        indices = np.zeros((len(channels), count), dtype=np.int64)
        for row, c in enumerate(channels):
            indices[row] = decoder.read(tables, c, count)
        width = (tables.lengths[channels] - 1)[:, None]
        escaped = indices == width
        values = indices + self.cdf_offsets.cpu().numpy().astype(np.int64)[channels][:, None]
        values[escaped] = escape.read(decoder, *self._bounds(channels[np.nonzero(escaped)[0]]))
        return values

    def decompress(
        self, data: bytes, shape: Sequence[int], dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Rebuild ``round(y)`` of the given shape exactly; bad data raises BitstreamError."""
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2 or shape[1] != self.channels or min(shape) < 0:
            raise ValueError(f"expected a (B, {self.channels}, ...) shape, got {shape}")
        values = self.decompress_values(data, math.prod(shape) // self.channels)
        channel_first = (self.channels, shape[0], *shape[2:])
        return torch.from_numpy(values).reshape(channel_first).transpose(0, 1).to(dtype)

    def symbol_costs(self, values: np.ndarray, channels: np.ndarray | None = None) -> np.ndarray:
        """Bits each integer value costs under the integer tables (float32), for values of all
        channels (C, N) or of the given ``channels`` (len(channels), N).

        Escaped values count the escape symbol plus their Exp-Golomb length. Only encoders use
        this (to choose among models), so it need not be bit-exact across machines.
        """
        channels = np.arange(self.channels) if channels is None else channels
        tables, indices, (escaped_values, lo, hi) = self._symbols(values, channels)
        rows = channels.astype(np.int64)[:, None] * tables.pmf.shape[1]
        bits = tables.symbol_bits.ravel()[indices + rows]
        if escaped_values.size:
            escaped = indices == (tables.lengths[channels] - 1)[:, None]
            bits[escaped] += escape.code_lengths(escaped_values, lo, hi)
        return bits

    def entropy_estimate_bits(self, y: Tensor) -> float:
        """Ideal code length of ``compress(y)`` under the integer tables (escapes included)."""
        tables, indices, escapes = self._symbols(self.integer_values(y))
        bits = sum(tables.entropy_bits(c, indices[c]) for c in range(self.channels))
        return bits + escape.cost_bits(*escapes)


def fit_density(
    bottleneck: EntropyBottleneck, samples: Tensor, steps: int = 300, lr: float = 0.01
) -> float:
    """Fit the density alone to ``samples`` by minimising their rate with Adam.

    Denormal flushing is switched on for the fit (several times faster on CPU, as tails drive
    values toward zero) and off afterwards; torch has no way to read the previous setting.
    Returns the final rate in bits per element.
    """
    was_training = bottleneck.training
    bottleneck.train()
    optimizer = torch.optim.Adam(bottleneck.parameters(), lr=lr)
    torch.set_flush_denormal(True)
    try:
        rate = torch.zeros(())
        for _ in range(steps):
            _, likelihoods = bottleneck(samples)
            rate = -torch.log2(likelihoods).mean()
            optimizer.zero_grad()
            rate.backward()
            optimizer.step()
    finally:
        torch.set_flush_denormal(False)
        bottleneck.train(was_training)
    return rate.item()


def _last_true(predicate: Callable[[Tensor], Tensor], channels: int) -> Tensor:
    """Per channel, the largest integer t in [-_RANGE_LIMIT, _RANGE_LIMIT] where ``predicate``
    holds, for a predicate that is true and then false as t grows (found by bisection)."""
    low = torch.full((channels,), -float(_RANGE_LIMIT), dtype=torch.float64)
    high = torch.full((channels,), float(_RANGE_LIMIT) + 1, dtype=torch.float64)
    while bool((high - low > 1).any()):
        mid = torch.floor((low + high) / 2)
        holds = predicate(mid)
        low, high = torch.where(holds, mid, low), torch.where(holds, high, mid)
    return low


def _check_offsets(tables: CdfTables, offsets: np.ndarray, channels: int) -> None:
    """Offsets must be int32, one per channel, with every table's range inside the safe limit."""
    if (
        not isinstance(offsets, np.ndarray)
        or offsets.dtype != np.int32
        or offsets.shape != (channels,)
    ):
        raise BitstreamError(f"entropy tables: offsets must be int32 of shape ({channels},)")
    if tables.num_tables != channels or np.any(tables.lengths < 2):
        raise BitstreamError(
            f"entropy tables: need {channels} tables of at least 2 symbols (values + ESCAPE)"
        )
    hi = offsets.astype(np.int64) + tables.lengths - 2
    if np.any(offsets < -_RANGE_LIMIT) or np.any(hi > _RANGE_LIMIT):
        raise BitstreamError(f"entropy tables: a range exceeds +-{_RANGE_LIMIT}")
