"""Neighbour contexts: latent symbols coded with tables chosen by their decoded neighbours.

A factorized prior (even with block classes) codes each symbol blind to the symbols around it,
though neighbours tell both how large a value is likely to be and, in the smooth (low-pass)
channels, what it is likely to be. Here the positions of each latent channel fall in phases on
a 2x2 lattice: anchors (even row, even column) first, then the (odd, odd) positions, each with
the context of its four diagonal neighbours (all anchors), then the rest, each with its four
direct neighbours (anchors and the second phase). At depth 2 the anchors themselves are coded
the same way on their own lattice first (``STEPS``), leaving one position in 16 to the
classes (``BlockAdaptiveEntropyModel``); at depth 1, one in 4. Per channel and step, a weight
w (0..4) chosen when the tables are counted decides how: with w = 0 the context is a bucket of
the neighbours' magnitude sum; with w > 0 the symbol coded is the value minus w/16 of the
neighbours' sum (a prediction: w/4 of their mean), and the bucket is of the neighbours' spread
around their mean. A second choice per channel and step, s (0..4), brings in the other
channels: with s > 0 the bucket is of the sum plus the position's cross activity shifted right
by s - 1 (the summed magnitudes of the channels the classes code, decoded first, plus an eighth
of the modelled channels' neighbour-magnitude buckets: edges and texture show in many channels
at once); the busiest modelled channels, the leaders, are coded first in each step, and the
others' cross activity adds the buckets of the leaders' magnitudes at the same position. All
integers: bit-exact on every machine. Each (channel, step, bucket) has
its own integer table, counted on training latents. Only the busiest channels are modelled
(chosen when the tables are counted; the others carry a range of one value, ``modelled``), and
each step is decoded at once, its symbols grouped by table: one coder call per table in use (a
few hundred a tile), not one per symbol. The encoder may weigh each symbol's bits under the
context it is coded in against its error (``add`` with penalties).

Measured on Kodak with the shipped image model (52 channels modelled; the cross-channel choice
saved 3.5% of the bytes at q3 on 40): weights/README.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from nvcodec.entropy import escape
from nvcodec.entropy.coder import Decoder, Encoder
from nvcodec.entropy.tables import CdfTables, quantize_pmf
from nvcodec.errors import BitstreamError

# Bucket b holds neighbour sums s with THRESHOLDS[b - 1] <= s < THRESHOLDS[b].
THRESHOLDS = np.array([1, 2, 3, 5, 8, 13, 21, 41])
BUCKETS = len(THRESHOLDS) + 1
_BUCKET_OF_SUM = np.searchsorted(THRESHOLDS, np.arange(THRESHOLDS[-1] + 1), side="right")
ANCHOR, DIAGONAL, CROSS = 0, 1, 2
# What the contexts code, in order: (stride, phase) steps, each with its own weight and tables
# per channel. Stride 2 works on the lattice of the anchors (even rows and columns), stride 1
# on all positions. At depth 2 all four steps run and the classes code every fourth row and
# column (``class_coded``); at depth 1 only the stride-1 steps, and the classes the anchors.
STEPS = ((2, DIAGONAL), (2, CROSS), (1, DIAGONAL), (1, CROSS))
_CROSS_SHIFTS = ((0, 1), (2, 1), (1, 0), (1, 2))
# Prediction weights w: a prediction is w/16 of the four neighbours' sum.
WEIGHTS = 5
# Cross-activity choices s: 0 none, s > 0 adds the cross activity >> (s - 1) to the sum.
CROSSES = 5
# Pseudo-counts of a channel's overall distribution mixed into each of its context tables.
PRIOR_WEIGHT = 4.0
_NO_CHANNELS = np.zeros(0, dtype=np.int64)
_BUFFERS = (
    "context_offsets",
    "context_lengths",
    "context_pmf",
    "context_weights",
    "context_crosses",
    "context_depth",
    "context_leaders",
)


@functools.cache
def phase_map(height: int, width: int) -> np.ndarray:
    """(H, W) phase of every latent position: ANCHOR, DIAGONAL or CROSS."""
    row, column = np.meshgrid(np.arange(height) % 2, np.arange(width) % 2, indexing="ij")
    phases = np.where(row == column, np.where(row == 0, ANCHOR, DIAGONAL), CROSS)
    phases.setflags(write=False)
    return phases


@functools.cache
def _positions(height: int, width: int, phase: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the positions of ``phase``, in the order ``[..., selected]`` lists
    them."""
    return np.nonzero(phase_map(height, width) == phase)


def class_coded(height: int, width: int, depth: int) -> np.ndarray:
    """(H, W) mask of the positions contexts of ``depth`` leave to the classes: every
    ``2**depth``-th row and column."""
    stride = 2**depth
    row, column = np.meshgrid(np.arange(height) % stride, np.arange(width) % stride, indexing="ij")
    return (row == 0) & (column == 0)


def _neighbour_activity(
    known: np.ndarray, phase: int, weights: np.ndarray, quiet: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activity, predictions), each (C, B, n), and the positions' cross activity (B, n) at
    the n positions of ``phase`` (DIAGONAL or CROSS), from the four neighbours' ``known``
    values (C, B, H, W int64; 0 where not decoded yet or outside), given each channel's
    prediction weight (C,) and the summed magnitudes of the unmodelled channels, ``quiet``
    (B, H, W). ``_buckets`` turns them into each symbol's bucket."""
    height, width = known.shape[-2:]
    selected = phase_map(height, width) == phase
    shifts = ((0, 0), (0, 2), (2, 0), (2, 2)) if phase == DIAGONAL else _CROSS_SHIFTS

    def around(array: np.ndarray) -> list[np.ndarray]:
        padded = np.pad(array, ((0, 0), (0, 0), (1, 1), (1, 1)))
        return [padded[..., dy : dy + height, dx : dx + width][..., selected] for dy, dx in shifts]

    # Magnitudes clipped where the last bucket starts, as bytes (their sums fit one too):
    # gathering bytes is several times faster than gathering the int64 values.
    first, second, third, fourth = around(
        np.minimum(np.abs(known), THRESHOLDS[-1]).astype(np.uint8)
    )
    activity = (first + second + third + fourth).astype(np.int64)
    # From the magnitudes of every channel, whatever its weight.
    magnitude_buckets = _BUCKET_OF_SUM[np.minimum(activity, THRESHOLDS[-1])]
    across = quiet[..., selected] + magnitude_buckets.sum(axis=0) // 8
    predictions = np.zeros_like(activity)
    predicting = np.nonzero(weights > 0)[0]  # few channels: the rest need no sums or spreads
    if predicting.size:
        near = np.stack(around(known[predicting]))
        total = near.sum(axis=0)
        activity[predicting] = np.abs(4 * near - total).sum(axis=0) // 4
        predictions[predicting] = (weights[predicting].reshape(-1, 1, 1) * total + 8) // 16
    return activity, predictions, across


def _quiet(values: np.ndarray, modelled: np.ndarray) -> np.ndarray:
    """(B, H, W) summed magnitudes of the channels of ``values`` (C, B, H, W) that are not
    ``modelled`` (the classes code them, before the contexts run). Most of those are all 0:
    only the others are summed."""
    others = np.ones(len(values), dtype=bool)
    others[modelled] = False
    others &= values.reshape(len(values), -1).any(axis=1)
    return np.abs(values[others]).sum(axis=0)


def _leading_activity(symbols: np.ndarray) -> np.ndarray:
    """(B, n) the leaders' symbols (L, B, n) as cross activity for the rest: the sum of their
    magnitudes' buckets (large values would swamp the other cross activity)."""
    return _BUCKET_OF_SUM[np.minimum(np.abs(symbols), THRESHOLDS[-1])].sum(axis=0)


def _buckets(activity: np.ndarray, crosses: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Bucket of each channel's activity (C, B, n), plus the cross activity ((B, n), or
    (C, B, n) per channel) shifted right by s - 1 in the channels whose cross choice s is
    not 0."""
    crossing = np.nonzero(crosses > 0)[0]
    if crossing.size:
        activity = activity.copy()
        shifts = (crosses[crossing] - 1).reshape(-1, 1, 1)
        activity[crossing] += np.broadcast_to(across, activity.shape)[crossing] >> shifts
    return _BUCKET_OF_SUM[np.minimum(activity, THRESHOLDS[-1])]


class NeighbourContexts(nn.Module):
    """Per channel and step, a prediction weight, a cross choice and ``BUCKETS`` integer
    tables over the channel's range [offset, offset + length - 2] plus an escape symbol
    (``escape``: any integer stays codable). Empty (no ``fitted`` tables) until ``fit`` runs or
    a state dict with tables loads."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        for name in _BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32))
        self._tables: CdfTables | None = None

    @property
    def fitted(self) -> bool:
        return self.context_lengths.numel() > 0

    @property
    def depth(self) -> int:
        """1 or 2: how many lattice levels the contexts code (see ``STEPS``)."""
        self.tables  # noqa: B018 -- validates the buffers first
        return int(self.context_depth[0])

    @property
    def steps(self) -> tuple[tuple[int, int], ...]:
        return STEPS[len(STEPS) - 2 * self.depth :]

    def fit(
        self,
        latents: Iterable[np.ndarray],
        lo: np.ndarray,
        hi: np.ndarray,
        leaders: np.ndarray = _NO_CHANNELS,
    ) -> None:
        """Count every (channel, step, weight, cross choice, bucket)'s symbols over ``latents``
        ((C, H, W) int64 each) on the range [lo, hi] per channel; keep per channel and step the
        weight and cross choice whose tables cost the fewest bits, each table mixed with its
        channel's overall counts. The ``leaders`` (modelled channels) are coded first in each
        step, and the others' cross activity adds their magnitudes at the same position. The
        contexts have depth 2 after a fit (``shallower`` makes them depth 1)."""
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        lengths = hi - lo + 2
        widest = int(lengths.max())
        choices = WEIGHTS * CROSSES
        # counts[c, step, choice, bucket, symbol] of the modelled channels (the others' tables
        # are never used); symbols past a channel's length stay 0.
        active = np.nonzero(lengths > 2)[0]
        leading = np.isin(active, leaders)
        if not np.isin(leaders, active).all():
            raise ValueError("leaders must be modelled channels")
        counts = np.zeros((len(active), len(STEPS), choices, BUCKETS, widest))
        cells_per_channel = choices * BUCKETS * widest
        channel_base = (np.arange(len(active)) * cells_per_channel).reshape(-1, 1, 1)
        for latent in latents:
            values = latent[active, None]
            quiet = _quiet(latent[:, None], active)
            known = np.where(class_coded(*latent.shape[-2:], depth=2), values, 0)
            for index, (stride, phase) in enumerate(STEPS):
                grid, grid_known = values[..., ::stride, ::stride], known[..., ::stride, ::stride]
                grid_quiet = quiet[..., ::stride, ::stride]
                selected = phase_map(*grid.shape[-2:]) == phase
                same_position = _leading_activity(grid[leading][..., selected])
                cells = []
                for weight in range(WEIGHTS):
                    activity, predictions, across = _neighbour_activity(
                        grid_known, phase, np.full(len(active), weight), grid_quiet
                    )
                    if leading.any():
                        across = np.where(leading[:, None, None], across, across + same_position)
                    residuals = grid[..., selected] - predictions
                    symbols = self._indices(residuals, lo[active], lengths[active])
                    for cross in range(CROSSES):
                        buckets = _buckets(activity, np.full(len(active), cross), across)
                        choice = weight * CROSSES + cross
                        cells.append(channel_base + (choice * BUCKETS + buckets) * widest + symbols)
                counts[:, index] += np.bincount(
                    np.concatenate(cells, axis=None), minlength=len(active) * cells_per_channel
                ).reshape(len(active), choices, BUCKETS, widest)
                grid_known[..., selected] = grid[..., selected]
        with np.errstate(divide="ignore", invalid="ignore"):
            totals = counts.sum(axis=-1, keepdims=True)
            bits = -np.nansum(counts * np.log2(counts / totals), axis=(-2, -1))
        chosen = np.zeros((self.channels, len(STEPS)), dtype=np.int64)
        chosen[active] = bits.argmin(axis=-1)
        rows = []
        for c, length in enumerate(lengths):
            for index in range(len(STEPS)):
                count = np.zeros((BUCKETS, length))
                if c in active:
                    count = counts[np.searchsorted(active, c), index, chosen[c, index], :, :length]
                overall = count.sum(axis=0) + 1
                prior = PRIOR_WEIGHT * overall / overall.sum()
                rows += [quantize_pmf(row + prior) for row in count]
        self.context_offsets = torch.from_numpy(lo.astype(np.int32))
        self.context_lengths = torch.from_numpy(lengths.astype(np.int32))
        self.context_pmf = torch.from_numpy(np.concatenate(rows).astype(np.int32))
        self.context_weights = torch.from_numpy((chosen // CROSSES).astype(np.int32).ravel())
        self.context_crosses = torch.from_numpy((chosen % CROSSES).astype(np.int32).ravel())
        self.context_depth = torch.tensor([2], dtype=torch.int32)
        self.context_leaders = torch.from_numpy(np.unique(leaders).astype(np.int32))
        self._tables = None

    def shallower(self) -> None:
        """Depth 2 -> 1: drop the stride-2 steps' weights and tables (the stride-1 steps'
        tables are the same at either depth: all anchors are known when they run)."""
        if self.depth != 2:
            raise ValueError("only depth-2 contexts can be made shallower")
        lengths = self.context_lengths.numpy().astype(np.int64)
        rows = np.split(self.context_pmf.numpy(), np.cumsum(len(STEPS) * BUCKETS * lengths)[:-1])
        kept = [
            r.reshape(len(STEPS), BUCKETS * length)[2:].ravel()
            for r, length in zip(rows, lengths, strict=True)
        ]
        self.context_pmf = torch.from_numpy(np.concatenate(kept))
        for name in ("context_weights", "context_crosses"):
            choices = getattr(self, name).reshape(self.channels, len(STEPS))[:, 2:]
            setattr(self, name, choices.contiguous().reshape(-1))
        self.context_depth = torch.tensor([1], dtype=torch.int32)
        self._tables = None

    @property
    def tables(self) -> CdfTables:
        """Table ``(c * len(self.steps) + step) * BUCKETS + b`` of channel c, step, bucket b
        (validated on first use, with the weights and depth)."""
        if self._tables is None:
            if not self.fitted:
                raise RuntimeError("NeighbourContexts has no tables: fit or load them first")
            depth = self.context_depth.numpy().tolist()
            if depth not in ([1], [2]):
                raise BitstreamError("context tables: malformed depth")
            steps = 2 * depth[0]
            lengths = self.context_lengths.numpy().astype(np.int64)
            flat = self.context_pmf.numpy()
            weights = self.context_weights.numpy()
            crosses = self.context_crosses.numpy()
            tables_per_channel = steps * BUCKETS
            if lengths.shape != (self.channels,) or lengths.min() < 1:
                raise BitstreamError("context tables: malformed lengths")
            if flat.shape != (tables_per_channel * int(lengths.sum()),):
                raise BitstreamError("context tables: pmf size does not match the lengths")
            if (
                weights.shape != (self.channels * steps,)
                or not ((weights >= 0) & (weights < WEIGHTS)).all()
            ):
                raise BitstreamError("context tables: malformed prediction weights")
            if (
                crosses.shape != (self.channels * steps,)
                or not ((crosses >= 0) & (crosses < CROSSES)).all()
            ):
                raise BitstreamError("context tables: malformed cross choices")
            leaders = self.context_leaders.numpy()
            if leaders.ndim != 1 or not (
                np.isin(leaders, np.nonzero(lengths > 2)[0]).all() and (np.diff(leaders) > 0).all()
            ):
                raise BitstreamError("context tables: malformed leaders")
            row_lengths = np.repeat(lengths, tables_per_channel)
            pmf = np.zeros((row_lengths.size, row_lengths.max()), dtype=np.int32)
            pmf[np.arange(pmf.shape[1]) < row_lengths[:, None]] = flat
            self._tables = CdfTables(pmf, row_lengths.astype(np.int32))
        return self._tables

    def _indices(self, values: np.ndarray, lo: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Symbols of ``values`` (C, ...) per channel; out-of-range values get the escape."""
        shape = (-1,) + (1,) * (values.ndim - 1)
        indices = values - lo.reshape(shape)
        escape_symbol = (lengths - 1).reshape(shape)
        return np.where((indices < 0) | (indices >= escape_symbol), escape_symbol, indices)

    @property
    def modelled(self) -> np.ndarray:
        """The channels the contexts code: those fitted with a range of more than one value."""
        return np.nonzero(self.context_lengths.numpy() > 2)[0]

    def _ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lo, lengths, hi, weights (C, step), cross choices (C, step)) of the modelled
        channels."""
        self.tables  # noqa: B018 -- validates the buffers first
        modelled = self.modelled
        lo = self.context_offsets.numpy().astype(np.int64)[modelled]
        lengths = self.context_lengths.numpy().astype(np.int64)[modelled]
        weights = self.context_weights.numpy().astype(np.int64).reshape(self.channels, -1)
        crosses = self.context_crosses.numpy().astype(np.int64).reshape(self.channels, -1)
        return lo, lengths, lo + lengths - 2, weights[modelled], crosses[modelled]

    def add(
        self, encoder: Encoder, values: np.ndarray, penalties: np.ndarray | None = None
    ) -> None:
        """Queue on ``encoder`` the ``STEPS`` of the modelled channels of ``values``
        (C, B, H, W) int64, given their ``class_coded`` positions (which the caller codes).

        With ``penalties`` (like ``values``, float: the bits each symbol's error would grow by
        if its magnitude were one lower), each nonzero symbol is first lowered where that saves
        more bits than its penalty, under the context it is coded in (the decisions coded
        before it shape it), and ``values`` is updated in place: rate-distortion optimized
        quantization, an encoder-only choice."""
        lo, lengths, hi, weights, crosses = self._ranges()
        modelled, groups = self.modelled, self._groups()
        quiet = _quiet(values, modelled)
        chosen = values[modelled]
        if penalties is not None:
            penalties = penalties[modelled]
        known = np.where(class_coded(*chosen.shape[-2:], self.depth), chosen, 0)
        for index, (stride, phase) in enumerate(self.steps):
            grid, grid_known = chosen[..., ::stride, ::stride], known[..., ::stride, ::stride]
            selected = phase_map(*grid.shape[-2:]) == phase
            activity, predictions, across = _neighbour_activity(
                grid_known, phase, weights[:, index], quiet[..., ::stride, ::stride]
            )
            symbols = grid[..., selected]
            if penalties is not None:
                step_penalties = penalties[..., ::stride, ::stride][..., selected]
            for group in groups:
                if group is not groups[0]:  # the leaders' magnitudes at the same positions
                    across = across + _leading_activity(symbols[groups[0]])
                buckets = _buckets(activity[group], crosses[group, index], across)
                rows = self._rows(buckets, index, modelled[group])
                coded = symbols[group]
                if penalties is not None:
                    bounds = lo[group], hi[group]
                    channel, batch, position = self._lower(
                        coded, step_penalties[group], rows, predictions[group], *bounds
                    )
                    symbols[group[channel], batch, position] = coded[channel, batch, position]
                    row, column = _positions(*grid.shape[-2:], phase)
                    grid[group[channel], batch, row[position], column[position]] = coded[
                        channel, batch, position
                    ]
                residuals = coded - predictions[group]
                indices = self._indices(residuals, lo[group], lengths[group])
                encoder.add_by_table(self.tables, rows, indices)
                escaped = indices == (lengths[group] - 1)[:, None, None]
                if escaped.any():  # rare
                    channel = group[np.nonzero(escaped)[0]]
                    escape.add(encoder, residuals[escaped], lo[channel], hi[channel])
            if index < len(self.steps) - 1:  # the last step's symbols are nobody's context
                grid_known[..., selected] = symbols
        if penalties is not None:
            values[modelled] = chosen

    def _groups(self) -> list[np.ndarray]:
        """The rows of ``modelled`` each step codes in turn: the leaders, then the rest, whose
        cross activity adds the leaders' magnitudes at the same position (decoded just
        before); all at once without leaders."""
        leaders = np.isin(self.modelled, self.context_leaders.numpy())
        if leaders.all() or not leaders.any():
            return [np.arange(len(leaders))]
        return [np.nonzero(leaders)[0], np.nonzero(~leaders)[0]]

    def _lower(
        self,
        symbols: np.ndarray,
        penalties: np.ndarray,
        rows: np.ndarray,
        predictions: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """Lower by one magnitude, in place, the nonzero ``symbols`` (C, B, n) whose lowering
        saves more bits under their table ``rows`` than its ``penalties``; returns where
        (channel, batch, position). Only the nonzero few are looked at."""
        nonzero = np.unravel_index(np.flatnonzero(symbols != 0), symbols.shape)
        channel = nonzero[0]
        value = symbols[nonzero]
        lowered = value - np.sign(value)
        table_rows, predicted = rows[nonzero], predictions[nonzero]
        saved = self._bits(table_rows, value - predicted, lo[channel], hi[channel])
        saved -= self._bits(table_rows, lowered - predicted, lo[channel], hi[channel])
        lower = saved > penalties[nonzero]
        where = tuple(index[lower] for index in nonzero)
        symbols[where] = lowered[lower]
        return where

    def _bits(
        self, rows: np.ndarray, residuals: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> np.ndarray:
        """Ideal bits of each residual under its table row, escapes included (for encoder
        choices only: floating point)."""
        indices = residuals - lo
        escaped = (indices < 0) | (indices > hi - lo)
        bits = self.tables.symbol_bits[rows, np.where(escaped, hi - lo + 1, indices)]
        if escaped.any():
            bits[escaped] += escape.code_lengths(residuals[escaped], lo[escaped], hi[escaped])
        return bits

    def read(self, decoder: Decoder, latent: np.ndarray) -> None:
        """Inverse of ``add``: fill in the context-coded positions of the modelled channels of
        ``latent`` (C, B, H, W) int64, whose ``class_coded`` positions are decoded."""
        lo, lengths, hi, weights, crosses = self._ranges()
        modelled, groups = self.modelled, self._groups()
        quiet = _quiet(latent, modelled)
        values = np.where(class_coded(*latent.shape[-2:], self.depth), latent[modelled], 0)
        for index, (stride, phase) in enumerate(self.steps):
            grid = values[..., ::stride, ::stride]
            selected = phase_map(*grid.shape[-2:]) == phase
            activity, predictions, across = _neighbour_activity(
                grid, phase, weights[:, index], quiet[..., ::stride, ::stride]
            )
            symbols = np.zeros_like(predictions)
            for group in groups:
                if group is not groups[0]:
                    across = across + _leading_activity(symbols[groups[0]])
                buckets = _buckets(activity[group], crosses[group, index], across)
                rows = self._rows(buckets, index, modelled[group])
                indices = decoder.read_by_table(self.tables, rows).reshape(rows.shape)
                residuals = indices.astype(np.int64) + lo[group][:, None, None]
                escaped = indices == (lengths[group] - 1)[:, None, None]
                if escaped.any():  # rare
                    channel = group[np.nonzero(escaped)[0]]
                    residuals[escaped] = escape.read(decoder, lo[channel], hi[channel])
                symbols[group] = residuals + predictions[group]
            grid[..., selected] = symbols
        latent[modelled] = values

    def _rows(self, buckets: np.ndarray, index: int, channels: np.ndarray) -> np.ndarray:
        """Table rows of the buckets (C, ...) of ``channels`` in step ``index``."""
        shape = (-1,) + (1,) * (buckets.ndim - 1)
        first = (channels * len(self.steps) + index) * BUCKETS
        return buckets + first.reshape(shape)

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        *args: Any,
    ) -> None:
        # The buffers' sizes depend on the data the tables were counted on; models without
        # context tables (made before them) load as not fitted.
        for name in _BUFFERS:
            incoming = state_dict.get(prefix + name)
            if incoming is not None and incoming.dtype != torch.int32:
                raise BitstreamError(f"context table {prefix + name} must be int32")
            empty = torch.zeros(0, dtype=torch.int32)
            setattr(self, name, empty if incoming is None else torch.empty_like(incoming))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, *args
        )
        absent = {prefix + name for name in _BUFFERS} - set(state_dict)
        missing_keys[:] = [key for key in missing_keys if key not in absent]
        self._tables = None
