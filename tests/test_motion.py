"""Block motion: compensation is exact integer arithmetic; estimation finds real motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nvcodec.io.image import read_image
from nvcodec.transforms.motion import compensate, estimate_motion


def _reference_compensate(reference: np.ndarray, vectors: np.ndarray, block: int) -> np.ndarray:
    """Pixel by pixel: the rounded mean of the 1, 2 or 4 pixels around each half-pixel spot."""
    height, width = reference.shape[:2]
    out = np.empty_like(reference)
    ref = reference.astype(np.int64)
    for y in range(height):
        for x in range(width):
            vy, vx = vectors[:, y // block, x // block]
            ys, xs = 2 * y + int(vy), 2 * x + int(vx)
            rows = {min(max(ys // 2, 0), height - 1), min(max((ys + 1) // 2, 0), height - 1)}
            cols = {min(max(xs // 2, 0), width - 1), min(max((xs + 1) // 2, 0), width - 1)}
            if len(rows) == 2 and len(cols) == 2:
                total = sum(ref[r, c] for r in rows for c in cols)
                out[y, x] = (total + 2) // 4
            else:  # one or two distinct neighbours: their rounded mean
                values = [ref[r, c] for r in sorted(rows) for c in sorted(cols)]
                out[y, x] = (sum(values) * (4 // len(values)) + 2) // 4
    return out


def _reference_overlapped(reference: np.ndarray, vectors: np.ndarray, block: int) -> np.ndarray:
    """Pixel by pixel: the four bilinear sums (before rounding) of the pixel's own block's and
    its nearer neighbours' vectors, weighted by distance to their centres out of 2 block per
    axis (none past the frame), rounded once."""
    height, width = reference.shape[:2]
    blocks_y, blocks_x = vectors.shape[1:]
    out = np.empty_like(reference)
    ref = reference.astype(np.int64)
    for y in range(height):
        for x in range(width):
            oy, ox = y % block, x % block
            ny = y // block + (1 if 2 * oy >= block else -1)
            nx = x // block + (1 if 2 * ox >= block else -1)
            wy = abs(2 * oy - (block - 1)) if 0 <= ny < blocks_y else 0
            wx = abs(2 * ox - (block - 1)) if 0 <= nx < blocks_x else 0
            total = np.zeros(3, dtype=np.int64)
            for by, weight_y in ((y // block, 2 * block - wy), (ny, wy)):
                for bx, weight_x in ((x // block, 2 * block - wx), (nx, wx)):
                    if not weight_y * weight_x:
                        continue
                    vy, vx = (int(v) for v in vectors[:, by, bx])
                    ys, xs = 2 * y + vy, 2 * x + vx
                    corners = [
                        ref[min(max(r, 0), height - 1), min(max(c, 0), width - 1)]
                        for r in (ys >> 1, (ys >> 1) + (ys & 1))
                        for c in (xs >> 1, (xs >> 1) + (xs & 1))
                    ]
                    total += weight_y * weight_x * sum(corners)
            shift = 2 + 2 * (2 * block - 1).bit_length()
            out[y, x] = (total + (1 << (shift - 1))) >> shift
    return out


@pytest.fixture(scope="module")
def photo(samples_dir: Path) -> np.ndarray:
    return read_image(samples_dir / "kodim23.png")[100:228, 200:392].copy()


def test_zero_vectors_copy_the_reference(photo: np.ndarray) -> None:
    vectors = np.zeros((2, 8, 12), dtype=np.int16)
    assert np.array_equal(compensate(photo, vectors, 16), photo)


def test_compensation_matches_a_pixel_by_pixel_reference() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    vectors = rng.integers(-9, 10, (2, 4, 6)).astype(np.int16)
    assert np.array_equal(
        compensate(reference, vectors, 4), _reference_compensate(reference, vectors, 4)
    )


def test_overlapped_compensation_matches_a_pixel_by_pixel_reference() -> None:
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    vectors = rng.integers(-9, 10, (2, 4, 5)).astype(np.int16)
    assert np.array_equal(
        compensate(reference, vectors, 4, overlapped=True),
        _reference_overlapped(reference, vectors, 4),
    )


def test_overlapped_compensation_of_a_uniform_field_is_the_plain_one(photo: np.ndarray) -> None:
    vectors = np.zeros((2, 8, 12), dtype=np.int16)
    vectors[0], vectors[1] = 3, -7
    assert np.array_equal(
        compensate(photo, vectors, 16, overlapped=True), compensate(photo, vectors, 16)
    )
    with pytest.raises(ValueError, match="power-of-two"):
        compensate(photo[:96, :96], np.zeros((2, 8, 8), dtype=np.int16), 12, overlapped=True)


def test_whole_pixel_shift_is_found_and_predicts_exactly(photo: np.ndarray) -> None:
    reference = photo
    current = np.roll(reference, (3, -5), axis=(0, 1))  # content moves down 3, left 5
    vectors = estimate_motion(current, reference, 16, 16)
    inner = vectors[:, 1:-1, 1:-1]
    assert np.all(inner[0] == -6) and np.all(inner[1] == 10)  # half pixels, back to the source
    predicted = compensate(reference, vectors, 16)
    assert np.array_equal(predicted[16:-16, 16:-16], current[16:-16, 16:-16])


def test_half_pixel_shift_is_found(photo: np.ndarray) -> None:
    reference = photo
    vectors = np.full((2, 8, 12), 0, dtype=np.int16)
    vectors[1] = 3  # every block reads 1.5 pixels to the right
    current = compensate(reference, vectors, 16)
    found = estimate_motion(current, reference, 16, 16)
    assert np.mean(found[1, 1:-1, 1:-1] == 3) > 0.9
    assert np.mean(found[0, 1:-1, 1:-1] == 0) > 0.9


def test_vectors_stay_within_the_search_range(photo: np.ndarray) -> None:
    current = np.roll(photo, (0, 40), axis=(0, 1))  # further than the search reaches
    vectors = estimate_motion(current, photo, 16, 8)
    assert np.abs(vectors).max() <= 16
    assert vectors.dtype == np.int16
