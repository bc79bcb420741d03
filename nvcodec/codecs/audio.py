"""The learned audio codec: waveforms <-> RVQ tokens <-> entropy-coded packets.

Every channel is coded on its own (stereo stays stereo) at the model rate (24 kHz); the caller
resamples. The signal is zero-padded to a whole number of hops, giving ``frames`` token rows
per channel. Packets hold ``PACKET_FRAMES`` rows (10 s). The networks are convolutional with
a finite reach, so a packet's frames are computed from a window with ``context`` frames of
the neighbours on each side: streaming encode and decode give the same tokens and samples
as a whole-file pass, with bounded memory and no seam at packet boundaries.

Packet payload: ``<BBH`` (codebooks, channels, frames), then the indices of all channels,
(channels * frames, codebooks) row-major, coded with the model's static index tables.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from nvcodec.container import StreamInfo, StreamKind
from nvcodec.entropy.index_coder import IndexCoder
from nvcodec.errors import BitstreamError, ModelError, NvcodecError
from nvcodec.io.audio import LAYOUT_CHANNELS
from nvcodec.models.audio_codec import ARCHITECTURE, AudioCodecConfig, SpectralAudioCodec
from nvcodec.models.store import StoredModel, load_model, weights_fitting
from nvcodec.utils.threads import one_thread

CODEC_ID = "nvc-audio-rvq"
DEFAULT_MODEL = "audio-rvq"
PACKET_FRAMES = 750
# A decoder's memory grows with the packet (times the channels): 40 s at most.
MAX_PACKET_FRAMES = 4 * PACKET_FRAMES
# Nominal bitrate per channel (bits/s of raw indices) -> codebooks; entropy coding goes below.
BITRATES = {1500: 2, 3000: 4, 6000: 8, 12000: 16}
DEFAULT_BITRATE = 6000
_PACKET_HEADER = struct.Struct("<BBH")
_STREAM_CONFIG = struct.Struct("<BBH")  # version, codebooks, packet frames
MAX_SAMPLE_RATE = 768_000  # above this it is not audio


def parse_bitrate(text: str) -> int:
    """'6k', '1.5k', '6000' -> bits/s; only the model's bitrates are accepted."""
    try:
        value = float(text[:-1]) * 1000 if text.lower().endswith("k") else float(text)
    except ValueError:
        value = -1.0
    if round(value) not in BITRATES:
        choices = ", ".join(f"{b / 1000:g}k" for b in BITRATES)
        raise NvcodecError(f"--bitrate must be one of {choices}, got {text!r}")
    return round(value)


@dataclass(frozen=True)
class AudioStreamConfig:
    """What a decoder needs beyond the StreamInfo fields: codebooks and packet size."""

    codebooks: int
    packet_frames: int = PACKET_FRAMES

    def to_bytes(self) -> bytes:
        return _STREAM_CONFIG.pack(1, self.codebooks, self.packet_frames)

    @classmethod
    def from_bytes(cls, data: bytes) -> AudioStreamConfig:
        if len(data) != _STREAM_CONFIG.size:
            raise BitstreamError(f"audio stream config is {len(data)} bytes, not 4")
        version, codebooks, packet_frames = _STREAM_CONFIG.unpack(data)
        if version != 1 or codebooks == 0 or not 0 < packet_frames <= MAX_PACKET_FRAMES:
            raise BitstreamError(f"audio stream config {data.hex()} is not supported")
        return cls(codebooks, packet_frames)


class AudioCodec:
    """A loaded audio model: tokens, packets and streaming encode/decode at the model rate."""

    def __init__(self, stored: StoredModel) -> None:
        self.manifest = manifest = stored.manifest
        with weights_fitting(stored, ARCHITECTURE):
            tables = {k: v.numpy() for k, v in stored.tensors.items() if k.startswith("index.")}
            weights = {k: v.float() for k, v in stored.tensors.items() if k not in tables}
            self.config = AudioCodecConfig.from_dict(manifest.config)
            self.model = SpectralAudioCodec(self.config)
            self.model.load_state_dict(weights)
            self.index_coder = IndexCoder.import_tables(tables)
        self.model.eval()
        # Decoded indices must fit the codebooks they look up.
        expected = (self.config.codebook_size,) * self.config.codebooks
        if self.index_coder.codebook_sizes != expected:
            raise ModelError(
                f"{stored.path}: index tables for codebooks {self.index_coder.codebook_sizes} "
                f"do not fit {self.config.codebooks} codebooks of {self.config.codebook_size}"
            )

    @classmethod
    def load(
        cls, model_id: str = DEFAULT_MODEL, expected_sha256: bytes | None = None
    ) -> AudioCodec:
        return cls(load_model(model_id, expected_sha256=expected_sha256))

    @property
    def rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def context(self) -> int:
        return self.config.receptive_frames

    def codebooks_for(self, bitrate: int) -> int:
        codebooks = BITRATES[bitrate]
        if codebooks > self.config.codebooks:
            raise NvcodecError(
                f"{bitrate / 1000:g}k needs {codebooks} codebooks; model "
                f"{self.manifest.model_id!r} has {self.config.codebooks}"
            )
        return codebooks

    def frames_for(self, samples: int) -> int:
        """Token rows for ``samples`` model-rate samples (padded to whole hops, at least one)."""
        return max(1, math.ceil(samples / self.hop)) + 1

    def stream_info(
        self,
        sample_rate: int,
        channels: int,
        length: int,
        codebooks: int,
        packet_frames: int = PACKET_FRAMES,
    ) -> StreamInfo:
        """A stream at the source's own rate: pts and duration count source samples."""
        if channels not in LAYOUT_CHANNELS or not 0 < sample_rate <= MAX_SAMPLE_RATE:
            counts = ", ".join(str(n) for n in sorted(LAYOUT_CHANNELS))
            raise NvcodecError(
                f"{channels} channels at {sample_rate} Hz: nvcodec codes {counts} channels "
                f"at up to {MAX_SAMPLE_RATE} Hz"
            )
        return StreamInfo(
            kind=StreamKind.AUDIO,
            codec=CODEC_ID,
            time_base=Fraction(1, sample_rate),
            model_id=self.manifest.model_id,
            model_sha256=self.manifest.sha256_bytes,
            sample_rate=sample_rate,
            channels=channels,
            duration=length,
            config=AudioStreamConfig(codebooks, packet_frames).to_bytes(),
        )

    # Tokens -------------------------------------------------------------------------------

    def _encode_window(self, samples: np.ndarray, codebooks: int) -> torch.Tensor:
        """Indices (C, frames, K) of a window of whole hops (frames = len / hop + 1)."""
        with one_thread(), torch.no_grad():
            return self.model.encode(torch.from_numpy(samples).float(), codebooks)

    def _decode_window(self, indices: np.ndarray) -> np.ndarray:
        """Samples (C, (frames - 1) * hop) of a window of index rows."""
        with one_thread(), torch.no_grad():
            return self.model.decode(torch.from_numpy(indices).long()).numpy()

    def encode_blocks(
        self, blocks: Iterable[np.ndarray], codebooks: int, packet_frames: int = PACKET_FRAMES
    ) -> Iterator[np.ndarray]:
        """Stream (C, n) model-rate blocks in, (C, frames, K) int64 packets out."""
        hop, context, size = self.hop, self.context, packet_frames
        buffer: np.ndarray | None = None
        buffer_start = total = start = 0  # sample index of buffer[0]; samples seen; frame
        for block in blocks:
            block = np.asarray(block, dtype=np.float32)
            buffer = block if buffer is None else np.concatenate([buffer, block], axis=1)
            total += block.shape[1]
            while total >= (start + size + context - 1) * hop:
                yield self._encode_packet(
                    buffer, buffer_start, start, start + size, None, codebooks
                )
                start += size
                drop = max(0, (start - context) * hop) - buffer_start
                buffer, buffer_start = buffer[:, drop:], buffer_start + drop
        if buffer is None or total == 0:
            raise NvcodecError("no audio samples to encode")
        frames = self.frames_for(total)
        padded = (frames - 1) * hop
        buffer = np.pad(buffer, ((0, 0), (0, padded - buffer_start - buffer.shape[1])))
        while start < frames:
            end = min(start + size, frames)
            yield self._encode_packet(buffer, buffer_start, start, end, frames, codebooks)
            start = end

    def _encode_packet(
        self,
        buffer: np.ndarray,
        buffer_start: int,
        start: int,
        end: int,
        frames: int | None,
        codebooks: int,
    ) -> np.ndarray:
        low = max(0, start - self.context)
        high = end + self.context if frames is None else min(frames, end + self.context)
        window = buffer[:, low * self.hop - buffer_start : (high - 1) * self.hop - buffer_start]
        return self._encode_window(window, codebooks)[:, start - low : end - low].numpy()

    def decode_packets(self, packets: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Stream (C, frames, K) packets in, (C, n) model-rate samples out (one block per
        packet, cut at the padded length; the caller trims to the true length)."""
        previous: np.ndarray | None = None
        current: np.ndarray | None = None
        for following in packets:
            if current is not None:
                yield self._decode_packet(previous, current, following)
                previous = current
            current = following
        if current is not None:
            yield self._decode_packet(previous, current, None)

    def _decode_packet(
        self, previous: np.ndarray | None, current: np.ndarray, following: np.ndarray | None
    ) -> np.ndarray:
        context = self.context
        before = previous[:, -context:] if previous is not None else current[:, :0]
        after = following[:, :context] if following is not None else current[:, :0]
        window = np.concatenate([before, current, after], axis=1)
        samples = self._decode_window(window)
        first = before.shape[1] * self.hop
        count = current.shape[1] * self.hop if following is not None else None
        return samples[:, first : None if count is None else first + count]

    def tokenize(self, samples: np.ndarray, codebooks: int) -> np.ndarray:
        """(C, n) model-rate samples -> (C, frames, K) int64 tokens, the same as streaming."""
        return np.concatenate(list(self.encode_blocks([samples], codebooks)), axis=1)

    def detokenize(self, tokens: np.ndarray, length: int | None = None) -> np.ndarray:
        """(C, frames, K) tokens -> (C, n) model-rate samples (n = ``length`` when given)."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 3 or not 0 < tokens.shape[2] <= self.config.codebooks:
            raise NvcodecError(
                f"tokens must have shape (channels, frames, 1..{self.config.codebooks}), "
                f"got {tokens.shape}"
            )
        if tokens.min(initial=0) < 0 or tokens.max(initial=0) >= self.config.codebook_size:
            raise NvcodecError(f"tokens must lie in 0..{self.config.codebook_size - 1}")
        packets = (
            tokens[:, i : i + PACKET_FRAMES] for i in range(0, tokens.shape[1], PACKET_FRAMES)
        )
        samples = np.concatenate(list(self.decode_packets(packets)), axis=1)
        return samples if length is None else samples[:, :length]

    # Packets ------------------------------------------------------------------------------

    def pack(self, indices: np.ndarray) -> bytes:
        channels, frames, codebooks = indices.shape
        rows = indices.reshape(channels * frames, codebooks)
        return _PACKET_HEADER.pack(codebooks, channels, frames) + self.index_coder.encode(rows)

    def stream_config(self, stream: StreamInfo) -> AudioStreamConfig:
        """The stream's config, after checking that this model can decode the stream and that
        its rate and channel count are within the limits (before a decoder allocates by them)."""
        config = AudioStreamConfig.from_bytes(stream.config)
        if config.codebooks > self.config.codebooks:
            raise BitstreamError(
                f"audio stream uses {config.codebooks} codebooks; model "
                f"{self.manifest.model_id!r} has {self.config.codebooks}"
            )
        if stream.channels not in LAYOUT_CHANNELS:
            raise BitstreamError(f"audio stream declares {stream.channels} channels")
        if not 0 < stream.sample_rate <= MAX_SAMPLE_RATE:
            raise BitstreamError(f"audio stream declares a sample rate of {stream.sample_rate} Hz")
        if stream.time_base != Fraction(1, stream.sample_rate):
            raise BitstreamError(
                f"audio stream time base {stream.time_base} is not 1/{stream.sample_rate}"
            )
        return config

    def unpack(self, payload: bytes, stream: StreamInfo) -> np.ndarray:
        """Inverse of ``pack``, checked against what the stream declared."""
        config = self.stream_config(stream)
        channels, codebooks = stream.channels, config.codebooks
        if len(payload) < _PACKET_HEADER.size:
            raise BitstreamError(f"audio packet is {len(payload)} bytes, shorter than its header")
        books, chans, frames = _PACKET_HEADER.unpack_from(payload)
        if books != codebooks or chans != channels or not 0 < frames <= config.packet_frames:
            raise BitstreamError(
                f"audio packet declares {books} codebooks, {chans} channels, {frames} frames; "
                f"the stream has {codebooks}, {channels}, at most {config.packet_frames}"
            )
        rows = self.index_coder.decode(payload[_PACKET_HEADER.size :], chans * frames, books)
        return rows.reshape(chans, frames, books)
