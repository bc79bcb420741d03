"""The learned audio codec end to end with the shipped model: streaming equals whole-file,
exact lengths and rates restored, deterministic bytes, damage handled, tokens for LMs."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from nvcodec.codecs.audio import AudioCodec, parse_bitrate
from nvcodec.codecs.files import decode_file, encode_file
from nvcodec.container import ContainerReader
from nvcodec.errors import BitstreamError, FormatError, ModelError, NvcodecError
from nvcodec.io.audio import Audio, read_audio, resample, write_audio
from nvcodec.models.store import load_model, save_model


@pytest.fixture(scope="module")
def codec() -> AudioCodec:
    return AudioCodec.load()


@pytest.fixture(scope="module")
def speech(samples_dir: Path, codec: AudioCodec) -> np.ndarray:
    """15 s of real speech at the model rate (the LJSpeech sample three times)."""
    once = read_audio(samples_dir / "LJ001-0004.wav", codec.rate).samples
    return np.concatenate([once, once, once], axis=1)


def whole_window(codec: AudioCodec, samples: np.ndarray, codebooks: int) -> np.ndarray:
    padded = (codec.frames_for(samples.shape[1]) - 1) * codec.hop
    window = np.pad(samples, ((0, 0), (0, padded - samples.shape[1])))
    return codec._encode_window(window, codebooks).numpy()


def test_streaming_equals_a_whole_file_pass(codec: AudioCodec, speech: np.ndarray) -> None:
    """Packets of 100 frames fed in odd-sized blocks: the same tokens as one window over the
    whole recording, and samples within float rounding of a one-window decode (no seams)."""
    whole = whole_window(codec, speech, 8)
    blocks = [speech[:, i : i + 3001] for i in range(0, speech.shape[1], 3001)]
    packets = list(codec.encode_blocks(blocks, 8, packet_frames=100))
    assert len(packets) == 12 and all(p.shape[1] <= 100 for p in packets)
    assert np.array_equal(np.concatenate(packets, axis=1), whole)
    streamed = np.concatenate(list(codec.decode_packets(packets)), axis=1)
    reference = codec._decode_window(whole)
    assert streamed.shape == reference.shape
    assert np.abs(streamed - reference).max() < 1e-5


@pytest.mark.parametrize("length", [0, 1, 319, 320, 321, 5000])
def test_any_length_round_trips(codec: AudioCodec, length: int) -> None:
    samples = np.random.default_rng(length).normal(0, 0.1, (1, length)).astype(np.float32)
    if length == 0:
        with pytest.raises(NvcodecError, match="no audio samples"):
            codec.tokenize(samples, 8)
        return
    tokens = codec.tokenize(samples, 4)
    assert tokens.shape == (1, codec.frames_for(length), 4)
    assert codec.detokenize(tokens, length).shape == (1, length)


def test_packets_round_trip_and_code_below_the_raw_index_rate(
    codec: AudioCodec, speech: np.ndarray
) -> None:
    tokens = codec.tokenize(speech, 8)
    stream = codec.stream_info(codec.rate, 1, speech.shape[1], 8, packet_frames=tokens.shape[1])
    payload = codec.pack(tokens)
    assert np.array_equal(codec.unpack(payload, stream), tokens)
    assert len(payload) * 8 < tokens.size * 10  # 10 bits per raw index


def test_damaged_packets_raise_bitstream_errors_only(codec: AudioCodec, speech: np.ndarray) -> None:
    stream = codec.stream_info(codec.rate, 1, speech.shape[1], 8)
    payload = codec.pack(codec.tokenize(speech[:, :48000], 8))
    with pytest.raises(BitstreamError, match="declares 8 codebooks, 2 channels"):
        codec.unpack(payload[:1] + b"\x02" + payload[2:], stream)
    rng = np.random.default_rng(0)
    for _ in range(50):
        damaged = bytearray(payload)
        damaged[rng.integers(4, len(damaged))] ^= 1 << int(rng.integers(8))
        with contextlib.suppress(BitstreamError):  # or decodes to other valid indices
            codec.unpack(bytes(damaged), stream)


@pytest.mark.parametrize(
    ("name", "rate", "channels"), [("mono.wav", 22050, 1), ("stereo.flac", 44100, 2)]
)
def test_files_keep_rate_channels_and_exact_length(
    tmp_path: Path, speech: np.ndarray, name: str, rate: int, channels: int
) -> None:
    source = tmp_path / name
    mono = speech[:, : 24000 * 3]
    stereo = np.concatenate([mono, 0.5 * mono[:, ::-1]])[:channels]
    write_audio(source, Audio(stereo, 24000))  # 24 kHz first, then to the test's rate:
    write_audio(source, read_audio(source, rate), overwrite=True)
    original = read_audio(source)
    report = encode_file(source, tmp_path / "a.nvc", bitrate=6000)
    assert "6k (8 codebooks)" in report.setting
    with ContainerReader(tmp_path / "a.nvc") as reader:
        (summary,) = reader.summaries()
        assert summary.end_pts == original.samples.shape[1]
        assert reader.streams[0].sample_rate == rate
    decode_file(tmp_path / "a.nvc", tmp_path / f"back{source.suffix}")
    back = read_audio(tmp_path / f"back{source.suffix}")
    assert back.rate == rate and back.samples.shape == original.samples.shape


def test_video_audio_track_is_encoded(tmp_path: Path, samples_dir: Path) -> None:
    encode_file(
        samples_dir / "bigbuckbunny_360p.mp4", tmp_path / "v.nvc", bitrate=3000, audio_only=True
    )
    decode_file(tmp_path / "v.nvc", tmp_path / "v.wav")
    source, back = read_audio(samples_dir / "bigbuckbunny_360p.mp4"), read_audio(tmp_path / "v.wav")
    assert back.rate == source.rate and back.samples.shape == source.samples.shape


def test_bytes_and_samples_do_not_depend_on_threads_or_runs(
    tmp_path: Path, samples_dir: Path
) -> None:
    source = samples_dir / "LJ001-0004.wav"
    outputs = []
    for run, threads in enumerate((1, 2, 1)):
        torch.set_num_threads(threads)
        try:
            encode_file(source, tmp_path / f"{run}.nvc")
            decode_file(tmp_path / f"{run}.nvc", tmp_path / f"{run}.wav")
        finally:
            torch.set_num_threads(1)
        outputs.append(
            ((tmp_path / f"{run}.nvc").read_bytes(), read_audio(tmp_path / f"{run}.wav"))
        )
    for data, audio in outputs[1:]:
        assert data == outputs[0][0]
        assert np.array_equal(audio.samples, outputs[0][1].samples)


def test_a_cut_file_decodes_up_to_the_cut(tmp_path: Path, speech: np.ndarray) -> None:
    """25 s = two packets; cut inside the second: the first 10 s decode, the loss is reported."""
    source = tmp_path / "long.wav"
    write_audio(source, Audio(np.concatenate([speech, speech[:, : 24000 * 10]], axis=1), 24000))
    encode_file(source, tmp_path / "a.nvc")
    data = (tmp_path / "a.nvc").read_bytes()
    with ContainerReader(tmp_path / "a.nvc") as reader:
        second = list(reader.packets())[1].offset
    (tmp_path / "cut.nvc").write_bytes(data[: second + 40])
    report = decode_file(tmp_path / "cut.nvc", tmp_path / "cut.wav")
    assert report.damage is not None and "decoded up to there" in report.damage
    decoded = read_audio(tmp_path / "cut.wav").samples
    assert 10 * 24000 - 320 <= decoded.shape[1] <= 10 * 24000  # the last hop needs the next packet
    (tmp_path / "cut.nvc").write_bytes(data[: second - 10])
    with pytest.raises(FormatError):
        decode_file(tmp_path / "cut.nvc", tmp_path / "none.wav", overwrite=True)
    (tmp_path / "first.nvc").write_bytes(data[:200])
    with pytest.raises(FormatError):
        decode_file(tmp_path / "first.nvc", tmp_path / "none.wav")
    assert not (tmp_path / "none.wav").exists()


@pytest.mark.parametrize(("text", "value"), [("6k", 6000), ("1.5k", 1500), ("12000", 12000)])
def test_bitrates_parse(text: str, value: int) -> None:
    assert parse_bitrate(text) == value


def test_unknown_bitrate_is_refused() -> None:
    with pytest.raises(NvcodecError, match=r"--bitrate must be one of 1\.5k, 3k, 6k, 12k"):
        parse_bitrate("7k")


def test_tokens_out_of_range_are_refused(codec: AudioCodec) -> None:
    with pytest.raises(NvcodecError, match=r"tokens must lie in 0\.\.1023"):
        codec.detokenize(np.full((1, 10, 8), 1024))
    with pytest.raises(NvcodecError, match="shape"):
        codec.detokenize(np.zeros((10, 8), np.int64))


@pytest.mark.parametrize("channels", [8, 15, 25])
def test_channel_counts_pyav_cannot_write_are_refused(tmp_path: Path, channels: int) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, (2400, channels))
    soundfile.write(tmp_path / "many.wav", noise, 24000)  # PyAV cannot write these
    with pytest.raises(NvcodecError, match=rf"many\.wav: {channels} audio channels"):
        encode_file(tmp_path / "many.wav", tmp_path / "many.nvc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.wav"]


def test_index_tables_that_do_not_fit_the_codebooks_are_a_model_error(tmp_path: Path) -> None:
    stored = load_model("audio-rvq")
    tensors = dict(stored.tensors)
    tensors["index.lengths"] = tensors["index.lengths"][:4].clone()
    tensors["index.pmf"] = tensors["index.pmf"][:4].clone()
    save_model(tmp_path, "short", stored.manifest.architecture, stored.manifest.config, tensors)
    with pytest.raises(ModelError, match="do not fit 16 codebooks of 1024"):
        AudioCodec(load_model("short", search=[tmp_path]))


@pytest.mark.parametrize("damage", ["bit flip", "missing range"])
def test_damage_in_the_middle_loses_that_packet_only(
    tmp_path: Path, codec: AudioCodec, speech: np.ndarray, damage: str
) -> None:
    """25.4 s = packets of 10, 10 and 5.4 s; damage in the second: its 10 s become silence,
    the third decodes as before (after a few frames without left context). A bit flip leaves
    the packets' places, so the length is exact; a cut moves them, so the decoded length
    stands. Either way the index is still found (the trailer gives its length, not its place)."""
    source = tmp_path / "long.wav"
    write_audio(source, Audio(np.concatenate([speech, speech[:, : 24000 * 10]], axis=1), 24000))
    encode_file(source, tmp_path / "a.nvc")
    decode_file(tmp_path / "a.nvc", tmp_path / "intact.wav")
    data = bytearray((tmp_path / "a.nvc").read_bytes())
    with ContainerReader(tmp_path / "a.nvc") as reader:
        middle = list(reader.packets())[1].offset
    if damage == "bit flip":
        data[middle + 500] ^= 0x10
    else:
        del data[middle + 100 : middle + 400]
    (tmp_path / "hurt.nvc").write_bytes(data)
    report = decode_file(tmp_path / "hurt.nvc", tmp_path / "hurt.wav")
    assert report.damage is not None
    assert "(1 damaged part(s): 10.01 s of audio lost, silence in its place)" in report.damage
    intact = read_audio(tmp_path / "intact.wav").samples
    hurt = read_audio(tmp_path / "hurt.wav").samples
    assert 0 <= hurt.shape[1] - intact.shape[1] <= (0 if damage == "bit flip" else codec.hop)
    second = 24000
    assert np.abs(hurt[:, : 9 * second] - intact[:, : 9 * second]).max() < 1e-3
    assert not hurt[:, 11 * second : 19 * second].any()
    end = intact.shape[1]
    assert np.abs(hurt[:, 21 * second : end] - intact[:, 21 * second :]).max() < 1e-3
    with pytest.raises(FormatError, match=r"CRC mismatch|trailer places the index"):
        decode_file(tmp_path / "hurt.nvc", tmp_path / "strict.wav", strict=True)
    assert not (tmp_path / "strict.wav").exists()


def test_a_length_of_whole_packets_is_kept_exactly(tmp_path: Path, speech: np.ndarray) -> None:
    """10 s at 24 kHz is 750 hops: the last packet holds only the closing frame, at the end."""
    write_audio(tmp_path / "ten.wav", Audio(speech[:, : 24000 * 10], 24000))
    encode_file(tmp_path / "ten.wav", tmp_path / "ten.nvc")
    with ContainerReader(tmp_path / "ten.nvc") as reader:
        assert [(p.pts, p.duration) for p in reader.packets()] == [(0, 240000), (240000, 0)]
    decode_file(tmp_path / "ten.nvc", tmp_path / "back.wav")
    assert read_audio(tmp_path / "back.wav").samples.shape == (1, 240000)


@pytest.mark.parametrize("length", [159920, 160000, 160080])
def test_a_last_packet_of_padding_keeps_the_exact_length(
    tmp_path: Path, speech: np.ndarray, length: int
) -> None:
    """At 16 kHz, 10 s = 750 frames: just short of it, the closing frame's packet starts past
    the source's end; its time is clamped so the index still gives the exact length."""
    source = tmp_path / "ten.wav"
    write_audio(source, read_audio_at(speech, 24000, 16000, length))
    encode_file(source, tmp_path / "a.nvc")
    with ContainerReader(tmp_path / "a.nvc") as reader:
        assert reader.summaries()[0].end_pts == length
        assert [p.pts for p in reader.packets()][-1] <= length
    decode_file(tmp_path / "a.nvc", tmp_path / "back.wav")
    assert read_audio(tmp_path / "back.wav").samples.shape == (1, length)


def read_audio_at(samples: np.ndarray, rate: int, target: int, length: int) -> Audio:
    """``samples`` resampled to ``target`` Hz and cut or looped to ``length``."""
    resampled = resample(Audio(samples, rate), target).samples
    return Audio(np.resize(resampled, (1, length)).astype(np.float32), target)
