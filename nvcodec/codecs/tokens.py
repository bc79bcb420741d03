"""Token files for language-model pipelines: audio <-> int16 .npy of RVQ indices.

The array has shape (channels, frames, codebooks) at the model's frame rate (75 frames/s for
the shipped 24 kHz model); codebook k refines codebook k-1, so a prefix of the last axis is a
lower bitrate. ``detokenize`` gives audio at the model rate, (frames - 1) * hop samples.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nvcodec.codecs.audio import AudioCodec
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import AudioReader, AudioWriter
from nvcodec.utils.files import atomic_output

MAX_TOKEN_FILE_BYTES = 1 << 31


def tokenize_file(
    source: Path, output: Path, *, codebooks: int, model_id: str, overwrite: bool = False
) -> np.ndarray:
    codec = AudioCodec.load(model_id)
    if codebooks > codec.config.codebooks:
        raise NvcodecError(f"--codebooks must be 1..{codec.config.codebooks}, got {codebooks}")
    with AudioReader(source) as reader:
        packets = list(codec.encode_blocks(reader.blocks(codec.rate), codebooks))
    tokens = np.concatenate(packets, axis=1).astype(np.int16)
    with atomic_output(output, overwrite=overwrite, protect=[source]) as file:
        np.save(file, tokens, allow_pickle=False)
    return tokens


def detokenize_file(source: Path, output: Path, *, model_id: str, overwrite: bool = False) -> None:
    codec = AudioCodec.load(model_id)
    try:
        tokens = _read_tokens(source)
    except (OSError, ValueError) as e:
        raise NvcodecError(f"{source}: not a readable .npy token file ({e})") from None
    if not np.issubdtype(tokens.dtype, np.integer):
        raise NvcodecError(f"{source}: tokens must be integers, got {tokens.dtype}")
    try:
        samples = codec.detokenize(tokens)
    except NvcodecError as e:
        raise NvcodecError(f"{source}: {e}") from None
    with AudioWriter(
        output, rate=codec.rate, channels=samples.shape[0], overwrite=overwrite, protect=(source,)
    ) as writer:
        writer.write(samples)


def _read_tokens(source: Path) -> np.ndarray:
    """The array in a .npy file, its declared size checked against the file's before numpy
    allocates it (np.load trusts the header)."""
    with source.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_TOKEN_FILE_BYTES:
            raise NvcodecError(f"{source}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            raise ValueError(f".npy format {version[0]}.{version[1]} is not supported")
        declared = math.prod(shape) * dtype.itemsize
        if declared > size - file.tell():
            raise NvcodecError(
                f"{source}: declares {shape} {dtype} ({declared} bytes) but holds "
                f"{size - file.tell()}"
            )
        file.seek(0)
        return np.load(file, allow_pickle=False)
