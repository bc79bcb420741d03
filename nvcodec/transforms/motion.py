"""Block motion: estimation (encoder only) and integer motion compensation (both sides).

A frame is cut into ``block`` x ``block`` squares; each gets one motion vector (dy, dx) in
half pixels into the previous decoded frame. Compensation reads the edge-extended reference
with H.264-style bilinear averages in integer arithmetic, so encoder and decoder build the
same prediction from the same reference on any machine. Overlapped compensation (OBMC, as in
H.263's advanced prediction mode) blends each pixel's prediction with those its neighbouring
blocks' vectors give, weighted by distance, which removes the block edges from the prediction.
Estimation only decides which vectors to send; any rule decodes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# BT.601 luma weights: motion is searched on brightness, where nearly all structure is.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _luma(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 luma."""
    return frame.astype(np.float32) @ _LUMA


def _block_sad(current: torch.Tensor, shifted: torch.Tensor, block: int) -> torch.Tensor:
    """Sum of absolute differences per block: (1, 1, H, W) pair -> (H/block, W/block)."""
    return F.avg_pool2d((current - shifted).abs(), block)[0, 0] * block * block


def _shifts(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def _search(
    current: torch.Tensor,
    reference: torch.Tensor,
    block: int,
    centers: torch.Tensor,
    radius: int,
    penalty: float,
) -> torch.Tensor:
    """Best vector per block within ``radius`` of its center (2, h, w), by SAD plus
    ``penalty`` per pixel of vector length (ties and flat blocks go to short vectors)."""
    h, w = current.shape[-2:]
    pad = int(centers.abs().max()) + radius
    padded = F.pad(reference, (pad, pad, pad, pad), mode="replicate")
    rows = torch.arange(h).reshape(h, 1) + pad
    cols = torch.arange(w).reshape(1, w) + pad
    per_pixel_dy = centers[0].repeat_interleave(block, 0).repeat_interleave(block, 1)
    per_pixel_dx = centers[1].repeat_interleave(block, 0).repeat_interleave(block, 1)
    best_cost = torch.full(centers.shape[1:], float("inf"))
    best = centers.clone()
    for dy, dx in _shifts(radius):
        vy, vx = centers[0] + dy, centers[1] + dx
        shifted = padded[0, 0, rows + per_pixel_dy + dy, cols + per_pixel_dx + dx]
        cost = _block_sad(current, shifted[None, None], block)
        cost = cost + penalty * (vy.abs() + vx.abs()).float()
        better = cost < best_cost
        best_cost = torch.where(better, cost, best_cost)
        best[0] = torch.where(better, vy, best[0])
        best[1] = torch.where(better, vx, best[1])
    return best


@torch.inference_mode()
def estimate_motion(
    current: np.ndarray,
    reference: np.ndarray,
    block: int = 16,
    search: int = 16,
    sad_per_step: float = 4.0,
) -> np.ndarray:
    """Motion vectors (2, H/block, W/block) int16 in half pixels, each component within
    [-2 search, 2 search], for (H, W, 3) uint8 frames whose sides are multiples of ``block``.

    Coarse to fine: a full search at quarter resolution, +-1 refinements at half and full
    resolution, the best of the 8 half-pixel neighbours, then a rate-constrained pass that lets
    blocks follow their neighbours (``_follow_neighbours``): about 110 SAD passes, most of them
    at a sixteenth of the pixels, instead of (2 search + 1)^2 at full resolution.
    ``sad_per_step``: what a half-pixel step of vector difference is worth in luma SAD (the
    lower the quality, the more: bits are dearer there).
    """
    if current.shape != reference.shape or current.shape[0] % block or current.shape[1] % block:
        raise ValueError(f"frames must match and be multiples of {block}: {current.shape}")
    cur_plane, ref_plane = _luma(current), _luma(reference)
    cur, ref = torch.from_numpy(cur_plane)[None, None], torch.from_numpy(ref_plane)[None, None]
    h, w = cur.shape[-2] // block, cur.shape[-1] // block
    vectors = torch.zeros(2, h, w, dtype=torch.int64)
    for scale, radius in ((4, max(1, search // 4)), (2, 1), (1, 1)):
        if block % scale:
            continue
        cur_s = F.avg_pool2d(cur, scale) if scale > 1 else cur
        ref_s = F.avg_pool2d(ref, scale) if scale > 1 else ref
        centers = torch.div(vectors, scale, rounding_mode="floor")
        found = _search(cur_s, ref_s, block // scale, centers, radius, penalty=4.0)
        vectors = (found * scale).clamp(-search, search)
    vectors = _refine_half_pixel(cur_plane, ref_plane, vectors.numpy() * 2, block, search)
    return _follow_neighbours(cur_plane, ref_plane, vectors, block, sad_per_step).astype(np.int16)


def median_prediction(left: np.ndarray, top: np.ndarray, top_right: np.ndarray) -> np.ndarray:
    """The vector a block's own is coded against: the component-wise median of its left, top
    and top-right neighbours (as in H.264), with zero vectors outside the frame."""
    return (
        np.stack([left, top, top_right]).sum(0)
        - np.maximum(np.maximum(left, top), top_right)
        - np.minimum(np.minimum(left, top), top_right)
    )


def _follow_neighbours(
    cur: np.ndarray, ref: np.ndarray, vectors: np.ndarray, block: int, sad_per_step: float
) -> np.ndarray:
    """Rate-constrained choice, in coding order: a block takes its predicted vector (free to
    code) unless its own vector saves more than ``sad_per_step`` luma SAD per half-pixel step
    it differs by. Flat areas, where many vectors match equally, then follow their neighbours
    instead of costing bits for noise."""
    out = vectors.astype(np.int64)
    rows, cols = out.shape[1:]
    plane = _half_pixel_sums(ref) * 0.25
    sad_own = _block_sads(cur, _predict(plane, vectors, block), block)
    zero = np.zeros(2, dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            left = out[:, r, c - 1] if c else zero
            top = out[:, r - 1, c] if r else zero
            top_right = out[:, r - 1, c + 1] if r and c + 1 < cols else zero
            predicted = median_prediction(left, top, top_right)
            steps = int(np.abs(out[:, r, c] - predicted).sum())
            if steps == 0:
                continue
            region = (slice(r * block, (r + 1) * block), slice(c * block, (c + 1) * block))
            predicted_block = _predict_block(plane, r, c, predicted, block)
            sad_predicted = np.abs(cur[region] - predicted_block).sum()
            if sad_predicted <= sad_own[r, c] + sad_per_step * steps:
                out[:, r, c] = predicted
    return out


def _spots(start: int, block: int, shift: int, limit: int) -> slice | np.ndarray:
    """Half-pixel coordinates 2 (start + i) + shift of a block's pixels, clamped to
    [0, limit]: a slice when none needs clamping."""
    first, last = 2 * start + shift, 2 * (start + block - 1) + shift
    if first >= 0 and last <= limit:
        return slice(first, last + 1, 2)
    return np.clip(np.arange(first, last + 1, 2), 0, limit)


def _predict_block(
    plane: np.ndarray, row: int, col: int, vector: np.ndarray, block: int
) -> np.ndarray:
    """Bilinear half-pixel prediction of one block from a plane of half-pixel values."""
    ys = _spots(row * block, block, int(vector[0]), plane.shape[0] - 1)
    xs = _spots(col * block, block, int(vector[1]), plane.shape[1] - 1)
    if isinstance(ys, slice) and isinstance(xs, slice):
        return plane[ys, xs]
    return plane[np.ix_(np.arange(plane.shape[0])[ys], np.arange(plane.shape[1])[xs])]


def _predict(plane: np.ndarray, vectors: np.ndarray, block: int) -> np.ndarray:
    """Bilinear half-pixel prediction of a whole plane from a plane of half-pixel values."""
    rows = np.arange((plane.shape[0] + 1) // 2) // block
    cols = np.arange((plane.shape[1] + 1) // 2) // block
    return _read_spots(plane, vectors, rows, cols)


def _block_sads(cur: np.ndarray, predicted: np.ndarray, block: int) -> np.ndarray:
    """Per-block sums of |cur - predicted|."""
    difference = torch.from_numpy(np.abs(cur - predicted))[None, None]
    return F.avg_pool2d(difference, block)[0, 0].numpy() * block * block


def _refine_half_pixel(
    cur: np.ndarray, ref: np.ndarray, vectors: np.ndarray, block: int, search: int
) -> np.ndarray:
    """Each block's best of its vector and the 8 half-pixel steps around it, by the luma SAD
    of the bilinear prediction (the decoder's, up to its final rounding)."""
    plane = _half_pixel_sums(ref) * 0.25
    best = vectors.copy()
    best_cost = np.full(vectors.shape[1:], np.inf)
    for dy, dx in _shifts(1):
        candidate = np.clip(vectors + np.array([dy, dx]).reshape(2, 1, 1), -2 * search, 2 * search)
        cost = _block_sads(cur, _predict(plane, candidate, block), block)
        cost = cost + 2.0 * (abs(dy) + abs(dx))
        better = cost < best_cost
        best_cost = np.where(better, cost, best_cost)
        best = np.where(better[None], candidate, best)
    return best


def _half_pixel_sums(frame: np.ndarray) -> np.ndarray:
    """(2H - 1, 2W - 1, ...) in ``frame``'s dtype: at half-pixel spot (Y, X) the sum
    a + b + c + d of the four pixels around it (a whole pixel counts four times, a half one
    its two neighbours twice); times 0.25, the bilinear value. A spot past the edge reads the
    nearest one: the same as clamping each pixel (edge extension), as the rows and columns of
    a spot clamp independently."""
    h, w = frame.shape[:2]
    sums = np.empty((2 * h - 1, 2 * w - 1, *frame.shape[2:]), dtype=frame.dtype)
    sums[0::2, 0::2] = 4 * frame
    sums[1::2, 0::2] = 2 * (frame[:-1] + frame[1:])
    sums[0::2, 1::2] = 2 * (frame[:, :-1] + frame[:, 1:])
    sums[1::2, 1::2] = frame[:-1, :-1] + frame[1:, :-1] + frame[:-1, 1:] + frame[1:, 1:]
    return sums


def _read_spots(
    sums: np.ndarray, vectors: np.ndarray, row_block: np.ndarray, col_block: np.ndarray
) -> np.ndarray:
    """``sums`` (``_half_pixel_sums``) at every pixel's spot, 2 (y, x) moved by the vector of
    block (``row_block[y]``, ``col_block[x]``), clamped to the plane: one read per pixel."""
    y = 2 * np.arange(len(row_block), dtype=np.int32)[:, None]
    x = 2 * np.arange(len(col_block), dtype=np.int32)[None, :]
    y = np.clip(y + vectors[0][row_block[:, None], col_block[None, :]], 0, sums.shape[0] - 1)
    x = np.clip(x + vectors[1][row_block[:, None], col_block[None, :]], 0, sums.shape[1] - 1)
    return sums.reshape(-1, *sums.shape[2:])[y * sums.shape[1] + x]


def _overlap_weights(length: int, block: int, blocks: int) -> tuple[np.ndarray, ...]:
    """Along one axis: each pixel's own block, the nearer neighbouring block, and their
    integer weights out of 2 ``block``: the neighbour gets |2 o - (block - 1)| for a pixel at
    offset o in its block (1 at the centre, block - 1 at the edge), none past the frame."""
    index = np.arange(length)
    own, offset = index // block, index % block
    neighbour = np.clip(np.where(2 * offset < block, own - 1, own + 1), 0, blocks - 1)
    weight = np.where(neighbour == own, 0, np.abs(2 * offset - (block - 1)))
    return own, neighbour, 2 * block - weight, weight


def compensate(
    reference: np.ndarray, vectors: np.ndarray, block: int = 16, *, overlapped: bool = False
) -> np.ndarray:
    """The prediction (H, W, 3) uint8: every block read from ``reference`` displaced by its
    vector (half pixels), past the edges as the nearest edge pixel. Half-pixel positions are
    the rounded mean of their 2 or 4 neighbours: (a + b + c + d + 2) >> 2 covers every case
    (a whole-pixel sample counts its one neighbour four times).

    ``overlapped``: each pixel blends the predictions of its block's vector and of the vectors
    of the nearer horizontal, vertical and diagonal neighbours, with separable integer weights
    (``_overlap_weights``) and one rounding at the end; a uniform field predicts as without.
    """
    height, width = reference.shape[:2]
    if overlapped and block & (block - 1):
        raise ValueError(f"overlapped compensation needs a power-of-two block, not {block}")
    sums = _half_pixel_sums(reference.astype(np.uint16))
    field = vectors.astype(np.int32)
    if not overlapped:
        own_rows, own_cols = np.arange(height) // block, np.arange(width) // block
        return ((_read_spots(sums, field, own_rows, own_cols) + 2) >> 2).astype(np.uint8)
    rows = _overlap_weights(height, block, vectors.shape[1])
    cols = _overlap_weights(width, block, vectors.shape[2])
    total = np.zeros(reference.shape, dtype=np.int32)
    for row_block, row_weight in ((rows[0], rows[2]), (rows[1], rows[3])):
        for col_block, col_weight in ((cols[0], cols[2]), (cols[1], cols[3])):
            weight = (row_weight[:, None] * col_weight[None, :]).astype(np.int32)
            total += _read_spots(sums, field, row_block, col_block) * weight[..., None]
    # Weights sum to (2 block)^2 per pixel, times 4 for the bilinear sum.
    shift = 2 + 2 * (2 * block - 1).bit_length()
    return ((total + (1 << (shift - 1))) >> shift).astype(np.uint8)
