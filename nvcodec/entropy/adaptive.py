"""Block-adaptive entropy model: a few density classes per channel, chosen per block and sent
explicitly (forward adaptation).

A factorized prior codes every position with one density per channel, though flat regions need
far fewer bits than textured ones. Here each block of ``block`` x ``block`` latent positions
uses the class whose integer tables code it in the fewest bits. The class map goes first in the
payload, so the decoder knows which tables to use without any floating point, and decoding
stays bit-exact: with four classes each block's class is coded with a fixed table chosen by
the classes of its left and top neighbours (``_CLASS_GIVEN_NEIGHBOURS``), otherwise uniformly
(log2(classes) bits a block). With one class this is exactly the factorized prior, payload
included.

With fitted neighbour contexts (``entropy.context``), the classes code only one position in
4 or 16 (``class_coded``) of the channels the contexts model (the busiest ones), and the
context tables the rest of them.

``encode`` can also choose the symbols: given what a unit of error costs in each channel, it
lowers a symbol's magnitude by one where the bits that saves, under the very tables that code
it, are worth more (rate-distortion optimized quantization; Kodak: BD-rate -7% against the
dead-zone rounding it replaced).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nvcodec.entropy.bottleneck import EntropyBottleneck
from nvcodec.entropy.coder import Decoder, Encoder
from nvcodec.entropy.context import NeighbourContexts, class_coded
from nvcodec.entropy.tables import CdfTables

# Whether any quiet channel (see ``_unmodelled_channels``) is not 0: nearly never.
_QUIET_FLAG = CdfTables.from_probabilities([np.array([63.0, 1.0])])
# A block's class given its left and top neighbours' (row ``_neighbour_row``; 4 = outside the
# tile), for models of four classes ordered flat to busy (as ``block_classes_by_activity``
# starts them): counts on 60 training photos (wikipedia_photos) at levels 2, 3 and 5 with the
# image model of recipe step 16. Kodak, the same levels: an image's class map 96 -> ~74 bytes.
_NEIGHBOUR_CLASSES = 4
_CLASS_GIVEN_NEIGHBOURS = CdfTables.from_probabilities(
    [
        np.array(row, dtype=np.float64)
        for row in (
            (13242, 1328, 416, 370),
            (1662, 1068, 286, 166),
            (526, 278, 268, 162),
            (446, 216, 200, 410),
            (1634, 136, 36, 34),
            (1548, 1248, 292, 204),
            (802, 5900, 474, 304),
            (228, 446, 372, 226),
            (200, 348, 232, 406),
            (140, 674, 58, 26),
            (534, 304, 310, 242),
            (228, 520, 336, 226),
            (158, 284, 560, 342),
            (180, 222, 368, 676),
            (32, 50, 60, 56),
            (450, 242, 224, 574),
            (186, 336, 262, 514),
            (138, 198, 362, 722),
            (280, 312, 580, 3392),
            (36, 24, 46, 198),
            (1638, 278, 100, 126),
            (262, 702, 122, 88),
            (80, 94, 108, 128),
            (90, 104, 118, 382),
            (182, 78, 14, 22),
        )
    ]
)


def _neighbour_row(left: Any, top: Any) -> Any:
    """The row of ``_CLASS_GIVEN_NEIGHBOURS`` for these neighbour classes (ints or arrays)."""
    return left * (_NEIGHBOUR_CLASSES + 1) + top


# Context tables cover values -CONTEXT_RANGE .. CONTEXT_RANGE at most (see ``fit_contexts``).
CONTEXT_RANGE = 31
# Latents the context depth is chosen on. Kodak (12 images, image model before the dead zone):
# depth 2 coded q0-q2 in 3-7% fewer bytes than depth 1, q5-q7 in 1-2% more.
DEPTH_SAMPLE = 32
# The busiest modelled channels, coded first in each context step: the others' contexts see
# their magnitudes at the same position. Kodak, BD-rate vs WebP (payload bytes), image model
# of recipe step 10: none +4.3%, 8 +4.0%, 16 +3.6%, 26 +3.8%; of step 12: none +3.1%, 16
# +2.4%, but encoding at q3 took 10.1-10.7 MP/s instead of 11.5 (the bar is 10): none yet.
CONTEXT_LEADERS = 0


class _Penalties(NamedTuple):
    """The bits each symbol's error would grow by if its magnitude were one lower (C, N),
    float32; only the ``nonzero`` symbols (flat indices, found once) can be lowered."""

    bits: np.ndarray
    nonzero: np.ndarray


class BlockAdaptiveEntropyModel(nn.Module):
    """``classes`` per-channel densities for latents (B, C, H, W); one class per block."""

    def __init__(
        self, channels: int, classes: int = 1, block: int = 4, dead_zone: float = 0.0
    ) -> None:
        super().__init__()
        if classes < 1 or block < 1:
            raise ValueError("need at least one class and a block side of at least 1")
        self.channels = channels
        self.block = block
        # The encoder's dead zone (see ``EntropyBottleneck.finalize``): only the tables use it.
        self.dead_zone = dead_zone
        self.densities = nn.ModuleList(EntropyBottleneck(channels) for _ in range(classes))
        self.contexts = NeighbourContexts(channels)
        self.class_tables = CdfTables.from_probabilities([np.ones(classes)])

    @property
    def classes(self) -> int:
        return len(self.densities)

    def block_sums(self, bits: Tensor) -> Tensor:
        """(B, K, H, W) per-position bits -> (B, K, ceil(H/b), ceil(W/b)) per-block bits."""
        h, w = bits.shape[-2:]
        padded = F.pad(bits, (0, -w % self.block, 0, -h % self.block))
        return F.avg_pool2d(padded, self.block) * self.block**2

    def expand_blocks(self, class_map: Tensor, height: int, width: int) -> Tensor:
        """(B, h, w) block classes -> (B, H, W) class of every latent position."""
        full = class_map.repeat_interleave(self.block, 1).repeat_interleave(self.block, 2)
        return full[:, :height, :width]

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(y_hat, likelihoods) like :class:`EntropyBottleneck`, each block under its best class.

        Training uses noisy values and picks the class with the highest block likelihood (a hard
        assignment, as the encoder will make); gradients flow through the chosen class only.
        """
        if self.classes == 1:
            return self.densities[0](y)
        values = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        likelihoods = torch.stack([d.likelihood(values) for d in self.densities], dim=1)
        with torch.no_grad():
            block_bits = self.block_sums(-torch.log2(likelihoods).sum(dim=2))
            choice = self.expand_blocks(block_bits.argmin(dim=1), *y.shape[-2:])
        index = choice[:, None, None].expand(-1, 1, *likelihoods.shape[2:])
        return values, likelihoods.gather(1, index).squeeze(1)

    def finalize(self) -> None:
        for density in self.densities:
            density.finalize(dead_zone=self.dead_zone)

    def choose_classes(self, y: Tensor) -> Tensor:
        """The class map (B, ceil(H/b), ceil(W/b)) that minimizes the coded size of round(y)."""
        return self._choose(self.densities[0].integer_values(y), y.shape)

    def _choose(self, values: np.ndarray, shape: Sequence[int]) -> Tensor:
        # Weigh classes on the quarter of the channels that carries nearly all the bits (92-99%
        # with the shipped image model; measured on 4 Kodak images, choosing on them instead of
        # all channels changed the size by -0.02% to +0.14%). Choosing is an encoder-only
        # decision: any rule decodes the same.
        # With contexts the classes code only the anchors: weigh those alone.
        entropies = self.densities[0].finalized_tables.entropies
        busiest = np.sort(np.argsort(-entropies)[: max(1, self.channels // 4)])
        spatial = (shape[0], *shape[2:])
        coded = self._anchors(shape) if self.contexts.fitted else slice(None)
        weighed = values[busiest][:, coded]
        bits = np.zeros((shape[0] * shape[2] * shape[3], self.classes), dtype=np.float32)
        for k, density in enumerate(self.densities):
            bits[coded, k] = density.symbol_costs(weighed, busiest).sum(axis=0)
        blocks = bits.reshape(*spatial, self.classes).transpose(0, 3, 1, 2)
        return self.block_sums(torch.from_numpy(np.ascontiguousarray(blocks))).argmin(dim=1)

    def fit_contexts(
        self,
        latents: Iterable[Tensor],
        channels: int,
        depth: int | None = None,
        leaders: int = CONTEXT_LEADERS,
    ) -> None:
        """Count the neighbour-context tables on quantized latents (1, C, H, W) for the
        ``channels`` busiest channels, over the range every class's tables cover, at
        ``depth`` or, by default, the depth that codes the first ``DEPTH_SAMPLE`` latents in
        fewer bytes; the ``leaders`` busiest are coded first in each step (see
        ``NeighbourContexts.fit``)."""
        tables = [d.finalized_tables for d in self.densities]
        offsets = [d.cdf_offsets.numpy().astype(np.int64) for d in self.densities]
        lo = np.min(offsets, axis=0)
        hi = np.max([o + t.lengths - 2 for o, t in zip(offsets, tables, strict=True)], axis=0)
        # Wider ranges escape fewer values; the time they cost is within the machine's noise.
        # Kodak, shipped model (40 channels, dead zone), side by side in one run, BD-rate vs
        # WebP (encode MP/s at q3): -15..15 +21.0% (11.3), -31..31 +19.8% (11.2).
        lo, hi = np.maximum(lo, -CONTEXT_RANGE), np.minimum(hi, CONTEXT_RANGE)
        busiest = np.argsort(-tables[0].entropies, kind="stable")[:channels]
        hi = np.where(np.isin(np.arange(self.channels), busiest), hi, lo)  # others: not modelled
        sample: list[Tensor] = []

        def values() -> Iterator[np.ndarray]:
            for y in latents:
                if len(sample) < DEPTH_SAMPLE:
                    sample.append(y)
                yield self.densities[0].integer_values(y).reshape(-1, *y.shape[-2:])

        leading = busiest[:leaders]
        self.contexts.fit(values(), lo, hi, leading[hi[leading] > lo[leading]])  # depth 2
        if depth is None:
            deep = copy.deepcopy(self.contexts.state_dict())
            deep_size = sum(len(self.compress(y)) for y in sample)
            self.contexts.shallower()
            if deep_size < sum(len(self.compress(y)) for y in sample):
                self.contexts.load_state_dict(deep)
        elif depth == 1:
            self.contexts.shallower()

    def compress(self, y: Tensor) -> bytes:
        """Code round(y): class map, then each class's positions with that class's tables
        (with contexts: the anchors only, then the context-coded rest)."""
        return self.encode(y)[1]

    def encode(self, y: Tensor, error_bits: np.ndarray | None = None) -> tuple[Tensor, bytes]:
        """(symbols, payload) for the latent ``y`` (B, C, H, W): the symbols are round(y), or,
        with ``error_bits`` (C,: the bits the encoder would pay to avoid one unit of squared
        error in each channel), round(y) with each nonzero symbol lowered by one magnitude
        where that saves more bits, under the tables it is coded with, than the error it adds
        is worth: ``error_bits * (1 + 2 (|y| - |round(y)|))``. That is rate-distortion
        optimized quantization, in coding order; decoders need nothing of it."""
        batch, channels, height, width = y.shape
        values = self.densities[0].integer_values(y)  # (C, B*H*W), rounded once
        penalties = None
        if error_bits is not None:  # only nonzero symbols can be lowered: the rest stay 0
            latent = y.detach().cpu().transpose(0, 1).reshape(channels, -1).numpy()
            nonzero = np.flatnonzero(values != 0)
            rounded = np.abs(values.ravel()[nonzero]).astype(np.float32)
            slack = 1 + 2 * (np.abs(latent.ravel()[nonzero]) - rounded)  # float32
            penalties = _Penalties(np.zeros(values.shape, dtype=np.float32), nonzero)
            cost = np.asarray(error_bits, dtype=np.float32)[nonzero // values.shape[1]]
            penalties.bits.ravel()[nonzero] = slack * cost
        payload = self._code(values, penalties, y.shape)
        symbols = values.reshape(channels, batch, height, width).transpose(1, 0, 2, 3)
        return torch.from_numpy(np.ascontiguousarray(symbols)).float(), payload

    def _code(
        self, values: np.ndarray, penalties: _Penalties | None, shape: Sequence[int]
    ) -> bytes:
        """``encode``'s payload; lowers ``values`` (C, B*H*W) in place where ``penalties``
        say so."""
        if self.classes == 1 and not self.contexts.fitted:
            if penalties is not None:
                self._lower(values, penalties, np.zeros(values.shape[1], dtype=np.int64), True)
            return self.densities[0].compress_values(values)
        encoder = Encoder()
        class_map = self._choose(values, shape)
        self._add_classes(encoder, class_map.numpy())
        positions = self.expand_blocks(class_map, *shape[-2:]).numpy().ravel()
        if not self.contexts.fitted:
            if penalties is not None:
                self._lower(values, penalties, positions, True)
            for k, density in enumerate(self.densities):
                density.add_values(encoder, values[:, positions == k])
            return encoder.finish()
        anchors, modelled = self._anchors(shape), self.contexts.modelled
        quiet, plain = self._unmodelled_channels()
        if penalties is not None:
            unmodelled = ~np.isin(np.arange(self.channels), modelled)
            self._lower(values, penalties, positions, unmodelled[:, None] | anchors[None])
        quiet_values = values[quiet]
        # Nearly always all 0 (Kodak, shipped model: all 120 quiet channels at q3 and q7): then
        # a flag says so, in place of 120 x 4096 symbols at ~0 bits each that took the coder a
        # fifth of the encoding time.
        coded = quiet_values.any()
        encoder.add(_QUIET_FLAG, 0, np.array([int(coded)]))
        if coded:
            self.densities[0].add_values(encoder, quiet_values, quiet)
        plain_values, modelled_values = values[plain], values[modelled]
        for k, density in enumerate(self.densities):
            selected = positions == k
            density.add_values(encoder, plain_values[:, selected], plain)
            density.add_values(encoder, modelled_values[:, selected & anchors], modelled)
        batch, channels, height, width = (int(s) for s in shape)
        contexts_penalties = None
        if penalties is not None:
            contexts_penalties = penalties.bits.reshape(channels, batch, height, width)
        self.contexts.add(
            encoder, values.reshape(channels, batch, height, width), contexts_penalties
        )
        return encoder.finish()

    def _add_classes(self, encoder: Encoder, class_map: np.ndarray) -> None:
        """Queue the (B, h, w) class map: in raster order, each class in the context of its
        left and top neighbours' (four classes), or uniformly."""
        if self.classes != _NEIGHBOUR_CLASSES:
            encoder.add(self.class_tables, 0, class_map.ravel())
            return
        padded = np.pad(class_map, ((0, 0), (1, 0), (1, 0)), constant_values=_NEIGHBOUR_CLASSES)
        rows = _neighbour_row(padded[:, 1:, :-1], padded[:, :-1, 1:])
        encoder.add_in_order(_CLASS_GIVEN_NEIGHBOURS, rows.ravel(), class_map.ravel())

    def _read_classes(self, decoder: Decoder, blocks: tuple[int, int, int]) -> np.ndarray:
        """Read the (B, h, w) class map ``_add_classes`` queued (int64): block by block, since
        each context is made of classes decoded before it."""
        if self.classes != _NEIGHBOUR_CLASSES:
            classes = decoder.read(self.class_tables, 0, math.prod(blocks))
            return classes.astype(np.int64).reshape(blocks)
        batch, height, width = blocks
        padded = np.full((batch, height + 1, width + 1), _NEIGHBOUR_CLASSES, dtype=np.int64)
        for b in range(batch):
            for i in range(1, height + 1):
                for j in range(1, width + 1):
                    row = _neighbour_row(int(padded[b, i, j - 1]), int(padded[b, i - 1, j]))
                    padded[b, i, j] = decoder.read(_CLASS_GIVEN_NEIGHBOURS, row, 1)[0]
        return padded[:, 1:, 1:]

    def _lower(
        self,
        values: np.ndarray,
        penalties: _Penalties,
        positions: np.ndarray,
        class_coded: np.ndarray,
    ) -> None:
        """Lower by one magnitude, in place, the nonzero ``values`` (C, N) the classes code,
        where that saves more bits under their position's class tables than its
        ``penalties`` (see ``encode``): each channel's positions in ``class_coded`` (C, N)
        (broadcast). Only the nonzero few are looked at."""
        rows, cols = divmod(penalties.nonzero, values.shape[1])
        keep = np.broadcast_to(class_coded, values.shape)[rows, cols]
        rows, cols = rows[keep], cols[keep]
        for k, density in enumerate(self.densities):
            mine = positions[cols] == k
            row, col = rows[mine], cols[mine]
            current = values[row, col][:, None]
            lowered = current - np.sign(current)
            saved = density.symbol_costs(current, row) - density.symbol_costs(lowered, row)
            lower = saved[:, 0] > penalties.bits[row, col]
            values[row[lower], col[lower]] = lowered[lower, 0]

    def _anchors(self, shape: Sequence[int]) -> np.ndarray:
        """The positions of a (B, C, H, W) latent the classes code in every channel (the
        contexts' ``class_coded`` ones), flattened like the columns of ``integer_values``."""
        batch, _, height, width = (int(s) for s in shape)
        return np.tile(class_coded(height, width, self.contexts.depth).ravel(), batch)

    def _unmodelled_channels(self) -> tuple[np.ndarray, np.ndarray]:
        """The channels the contexts leave to the classes: (quiet ones, whose tables hold only
        the value 0 besides the escape in every class: coded at every position with class 0's
        tables, one coder call each, where any is not 0 (see ``_code``); the rest, coded per
        class)."""
        unmodelled = np.setdiff1d(np.arange(self.channels), self.contexts.modelled)
        lengths = np.array([d.finalized_tables.lengths for d in self.densities])
        offsets = np.array([d.cdf_offsets.numpy() for d in self.densities])
        only_zero = ((lengths == 2) & (offsets == 0)).all(axis=0)
        quiet = only_zero[unmodelled]
        return unmodelled[quiet], unmodelled[~quiet]

    def decompress(self, data: bytes, shape: Sequence[int]) -> Tensor:
        """Rebuild round(y) of ``shape`` exactly; bad data raises BitstreamError."""
        if self.classes == 1 and not self.contexts.fitted:
            return self.densities[0].decompress(data, shape)
        batch, channels, height, width = (int(s) for s in shape)
        if channels != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {channels}")
        contexts = self.contexts.fitted
        decoder = Decoder(data)
        blocks = (batch, math.ceil(height / self.block), math.ceil(width / self.block))
        class_map = self._read_classes(decoder, blocks)
        positions = self.expand_blocks(torch.from_numpy(class_map), height, width).numpy()
        values = np.zeros((channels, batch, height, width), dtype=np.int64)
        if not contexts:
            for k, density in enumerate(self.densities):
                selected = positions == k
                values[:, selected] = density.read_values(decoder, selected.sum())
            decoder.finish()
            return torch.from_numpy(values).float().transpose(0, 1)
        anchors = self._anchors(shape).reshape(batch, height, width)
        (quiet, plain), modelled = self._unmodelled_channels(), self.contexts.modelled
        count = batch * height * width
        if decoder.read(_QUIET_FLAG, 0, 1)[0]:
            quiet_values = self.densities[0].read_values(decoder, count, quiet)
            values[quiet] = quiet_values.reshape(len(quiet), batch, height, width)
        plain_values = np.zeros((len(plain), batch, height, width), dtype=np.int64)
        modelled_values = np.zeros((len(modelled), batch, height, width), dtype=np.int64)
        for k, density in enumerate(self.densities):
            selected = positions == k
            count = int(selected.sum())
            plain_values[:, selected] = density.read_values(decoder, count, plain)
            selected &= anchors
            count = int(selected.sum())
            modelled_values[:, selected] = density.read_values(decoder, count, modelled)
        values[plain], values[modelled] = plain_values, modelled_values
        self.contexts.read(decoder, values)
        decoder.finish()
        return torch.from_numpy(values).float().transpose(0, 1)
