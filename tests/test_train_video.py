"""`nvcodec train video` end to end on a tiny run: residual start, R-D steps, resume, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from nvcodec.cli.main import app
from nvcodec.codecs.video import VideoCodec
from nvcodec.io.image import read_image, write_image
from nvcodec.io.video import write_video
from nvcodec.models.store import load_model


def test_train_resume_export_and_use(tmp_path: Path, samples_dir: Path) -> None:
    photo = read_image(samples_dir / "kodim23.png")
    clips, photos = tmp_path / "clips", tmp_path / "photos"
    clips.mkdir()
    photos.mkdir()
    pan = [photo[100 + t : 164 + t, 200 + 3 * t : 296 + 3 * t] for t in range(6)]
    write_video(clips / "pan.mp4", pan, 25.0)
    write_image(photos / "a.png", photo[:96, :128])
    out = tmp_path / "run"
    args = ["train", "video", "--clips", str(clips), "--photos", str(photos), "--out", str(out)]
    args += ["--crop", "32", "--batch", "2", "--model-id", "tiny", "--fit-crops", "2"]
    result = CliRunner().invoke(app, [*args, "--steps", "2"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*args, "--steps", "4", "--resume"])
    assert result.exit_code == 0, result.output

    stored = load_model("tiny", search=[out])
    assert stored.manifest.recipe["steps"] == 4
    assert stored.manifest.config["intra_model"] == "image-wavelet"
    codec = VideoCodec(stored)
    encoder, decoder = codec.encoder(3), codec.decoder(64, 96)
    for frame in pan[:3]:
        decoded = decoder.decode(encoder.encode(frame).payload)
        assert np.array_equal(decoded, encoder.reference[:64, :96])
