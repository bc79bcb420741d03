"""The standard sets the bench knows: where each comes from and how to check a local copy.

Nothing is ever downloaded: a dataset is found in a local folder (``--data DIR``, or a folder
named after it under a datasets root, see :func:`dataset_roots`), and its item files are checked
against the digest recorded here, so results say whether they were measured on the same bytes.
The digest is that of a ``sha256sum`` listing of the item files (paths relative to the dataset
folder, sorted), reproducible with::

    cd DIR && sha256sum $(find ITEMS -type f | LC_ALL=C sort) | sha256sum
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nvcodec.bench.base import MediaKind
from nvcodec.errors import NvcodecError

# The checkout's root: ``../shared/datasets`` beside it is where this project keeps its copies.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "NVCODEC_DATA"


@dataclass(frozen=True)
class Dataset:
    """A registered set. ``items`` globs the items inside the folder (a folder item is a video
    as frames); ``sha256``/``files``/``total_bytes`` describe the copy the bench was made with."""

    name: str
    kind: MediaKind
    folder: str
    items: str
    description: str
    origin: str
    license: str
    files: int
    total_bytes: int
    sha256: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "kodak",
            "image",
            "kodak",
            "kodim*.png",
            "Kodak PhotoCD: 24 photos, 768x512 PNG (the learned image compression benchmark)",
            "https://r0k.us/graphics/kodak/ (this copy: github.com/Zelex/images @ 0b8a89db, "
            "kodak/)",
            "released by Eastman Kodak for unrestricted use",
            24,
            14_834_479,
            "c70ac296ed6dfddb6b7ff7355181e3ed57b1215d9feb15eef1ed013b8ea57c50",
        ),
        Dataset(
            "wikipedia_photos",
            "image",
            "wikipedia_photos",
            "images/*.png",
            "49 Wikimedia Commons photos downsampled to ~1 MP, lossless PNG (CLIC-like high-res)",
            "github.com/Zelex/images @ 0b8a89db, wikipedia-photos/",
            "mostly Creative Commons (Wikimedia Commons), attribution",
            49,
            87_206_230,
            "2f2eeee593b3c8e667f0ca2c48d9c68071c6ebb4a5910b87420c04c8402e4cce",
        ),
        Dataset(
            "hevc_classD",
            "video",
            "hevc_classD_basketballpass",
            "frames",
            "HEVC CTC class D BasketballPass 416x240, first 100 frames as RGB PNG (50 fps)",
            "JCT-VC test sequence (this copy: github.com/RenYang-home/OpenDVC @ 654e2170, "
            "BasketballPass/)",
            "standardisation/research use only",
            100,
            19_241_619,
            "c89faab68a731cfab928861010a57fe2ae0be532aee7d1210a2f9bef5964f687",
        ),
        Dataset(
            "vimeo90k_sample",
            "video",
            "vimeo90k_septuplet_sample",
            "sequences/*/*",
            "Vimeo-90K: 16 septuplets of 7 frames, 448x256 PNG",
            "http://toflow.csail.mit.edu/ (this copy: github.com/tukilabs/Video-Compression-Net "
            "@ daaf0251, vimeo_septuplet/sequences/)",
            "research use only",
            112,
            13_819_853,
            "1189841141c8cc35f7652ca3a55e4eb07c52731a47b1c953ce12dad61950b927",
        ),
        Dataset(
            "ljspeech",
            "audio",
            "ljspeech_subset",
            "wavs/*.wav",
            "LJSpeech 1.1: 32 utterances of one speaker, 22.05 kHz WAV",
            "https://keithito.com/LJ-Speech-Dataset/ (this copy: github.com/coqui-ai/TTS "
            "@ dbf1a08a, tests/data/ljspeech/wavs/)",
            "public domain",
            32,
            9_780_416,
            "d3965e5536f949ca950b870ae5d4fdce2e5d419a91bc2d10d6a89c5e1736b8b3",
        ),
        Dataset(
            "librispeech_test_other",
            "audio",
            "librispeech_multispeaker",
            "test-other/*/*.flac",
            "LibriSpeech test-other: 10 speakers x 6 utterances, 16 kHz FLAC",
            "https://www.openslr.org/12 (this copy: github.com/resemble-ai/Resemblyzer "
            "@ 15d828ed, audio_data/librispeech_test-other/)",
            "CC BY 4.0",
            60,
            8_491_811,
            "12b054bb01ac0f614475e9a42b57b35005fb5aaf38342e88e8259c69ca22b157",
        ),
        Dataset(
            "vctk",
            "audio",
            "vctk_48k_samples",
            "*/*.flac",
            "VCTK: 21 utterances of 15 speakers, 48 kHz (WAV re-packed losslessly as FLAC)",
            "https://doi.org/10.7488/ds/2645 (this copy: github.com/yl4579/StarGANv2-VC "
            "@ 985df557 and github.com/audiosupervgan/DemoSamples @ 61d1c43a)",
            "CC BY 4.0 (0.92) / ODC-By (0.80)",
            21,
            6_753_406,
            "44bc5065c9864cb263fbfde1019583ea87e8c2929f58293fa0ebb0d33cb49d61",
        ),
        Dataset(
            "music",
            "audio",
            "sonic_pi_samples",
            "samples/*.flac",
            "Sonic Pi samples: 165 instrument, drum and ambient recordings, 44.1 kHz FLAC",
            "Debian package sonic-pi-samples 3.2.2~repack-8 (freesound.org recordings)",
            "CC0 1.0",
            165,
            22_464_790,
            "8bac7e876c847a28f964a8f7a3dbee23258c0f1e795e93dd999e4acc21af62b3",
        ),
        Dataset(
            "sisec2011_music",
            "audio",
            "sisec2011_samples",
            "music/*.wav",
            "SiSEC 2011: 2 produced stereo music mixes, 44.1 kHz WAV",
            "https://sisec.inria.fr/ (this copy: github.com/LCAV/pyroomacoustics @ 4ac8f49e, "
            "examples/input_samples/SiSec2011_Music/)",
            "research use only (Roads: copyrighted; Ultimate NZ Tour: CC BY-NC-SA 3.0)",
            2,
            5_644_896,
            "ee7b49f8e7f28581367e068ad7c3696e0739d0966bca0722967e4e7981485efc",
        ),
    )
}


def dataset_roots() -> list[Path]:
    """Folders searched for ``<root>/<dataset folder>``: ``$NVCODEC_DATA`` (os.pathsep
    separated), then ``../shared/datasets`` from the working directory and from the checkout."""
    roots = [Path(p) for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p]
    roots += [Path.cwd().parent / "shared" / "datasets", _SOURCE_ROOT.parent / "shared/datasets"]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise NvcodecError(f"unknown dataset {name!r} (known: {known})") from None


def locate(dataset: Dataset) -> Path:
    """The first local copy of ``dataset`` on the search path."""
    roots = dataset_roots()
    for root in roots:
        if (root / dataset.folder).is_dir():
            return root / dataset.folder
    where = ", ".join(str(r) for r in roots)
    raise NvcodecError(
        f"dataset {dataset.name!r} not found (looked for {dataset.folder}/ in {where}); "
        f"fetch it from {dataset.origin} and pass --data DIR"
    )


def item_paths(dataset: Dataset, folder: Path) -> list[Path]:
    """The dataset's items in ``folder``, sorted."""
    paths = sorted(folder.glob(dataset.items))
    if not paths:
        raise NvcodecError(f"{folder}: no {dataset.name} items ({dataset.items}) in it")
    return paths


def _files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def digest(paths: Iterable[Path], folder: Path) -> str:
    """sha256 of the ``sha256sum`` listing of the files of ``paths`` (relative to ``folder``)."""
    files = sorted(_files(paths), key=lambda p: p.relative_to(folder).as_posix().encode())
    listing = hashlib.sha256()
    for path in files:
        file_hash = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                file_hash.update(block)
        listing.update(f"{file_hash.hexdigest()}  {path.relative_to(folder).as_posix()}\n".encode())
    return listing.hexdigest()
