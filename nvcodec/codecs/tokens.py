"""Token files for language-model pipelines: audio <-> int16 .npy of RVQ indices.

The array has shape (channels, frames, codebooks) at the model's frame rate (75 frames/s for
the shipped 24 kHz model); codebook k refines codebook k-1, so a prefix of the last axis is a
lower bitrate. ``detokenize`` gives audio at the model rate, (frames - 1) * hop samples.
"""

from __future__ import annotations

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
        if source.stat().st_size > MAX_TOKEN_FILE_BYTES:
            raise NvcodecError(f"{source}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
        tokens = np.load(source, allow_pickle=False)
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
