#!/bin/bash
# Audio-codec training on a lent GPU (the `device` tool), in one call of under 10 minutes.
#
#   scripts/gpu_train_audio.sh prepare   # here: training clips and the wheels the GPU lacks
#   scripts/gpu_train_audio.sh run       # there: carry [".gpu", ".whl"]; models land in $OUT
#
# The GPU machine has torch but neither PyAV nor the data, and receives at most 64 MiB with the
# repository. `prepare` decodes the recipe's training sets (weights/README.md) at 24 kHz with
# nvcodec's reader and packs them as 16-bit FLAC (44 MB: move the image and video weights and
# samples/ out of the checkout for the call; they are not needed there), with the first 4 files
# of LibriSpeech test-other for validation. `run` times a step of each configuration side by
# side, sizes every run to BUDGET seconds of training, runs them side by side, and returns each
# exported model split in two (files from $OUT are at most 16 MiB; `cat NAME.part-* >
# audio-rvq.safetensors` joins one) with the logs and manifests in logs.tar.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    rm -rf .gpu .whl && mkdir -p .gpu/audio/train .gpu/audio/val .whl
    .venv/bin/python - <<'PY'
from pathlib import Path

import numpy as np
import soundfile

from nvcodec.training.audio import audio_paths, load_clips

data = Path("../shared/datasets")
sets = {
    "train": audio_paths([data / "librispeech_multispeaker/train-clean-100",
                          data / "ljspeech_subset", data / "sonic_pi_samples"]),
    "val": audio_paths([data / "librispeech_multispeaker/test-other"])[:4],
}
for split, paths in sets.items():
    for number, path in enumerate(paths):
        for channel, clip in enumerate(load_clips([path], 24000)):
            pcm = np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)
            name = f".gpu/audio/{split}/{number:03d}-{path.stem}-{channel}.flac"
            soundfile.write(name, pcm, 24000, subtype="PCM_16", compression_level=1.0)
PY
    constriction=$(.venv/bin/pip show constriction | awk '/^Version/ {print $2}')
    soundfile=$(.venv/bin/pip show soundfile | awk '/^Version/ {print $2}')
    cffi=$(.venv/bin/pip show cffi | awk '/^Version/ {print $2}')
    pycparser=$(.venv/bin/pip show pycparser | awk '/^Version/ {print $2}')
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "constriction==$constriction" \
        "soundfile==$soundfile" "cffi==$cffi" "pycparser==$pycparser"
    du -sh .gpu .whl
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
    BUDGET=${BUDGET:-450} DEVICE=${DEVICE:-cuda}
    # NAME BATCH LR: the shipped model trained on, side by side.
    runs=("b128 128 5e-4" "b256 256 5e-4" "b128-lr1e-3 128 1e-3")
    for run in "${runs[@]}"; do
        set -- $run
        python3 scripts/gpu_train_audio.py probe "$2" "$DEVICE" > "/tmp/probe-$1" &
    done
    for run in "${runs[@]}"; do wait -n; done
    pids=()
    for run in "${runs[@]}"; do
        set -- $run
        seconds=$(cat "/tmp/probe-$1")
        steps=$(python3 -c "print(max(20, int($BUDGET / ($seconds * 1.15))))")
        echo "$1: $seconds s a step side by side -> $steps steps"
        ( python3 scripts/gpu_train_audio.py train --data .gpu/audio/train --val .gpu/audio/val \
            --val-every 1000 --init audio-rvq --device "$DEVICE" --batch "$2" --lr "$3" \
            --steps "$steps" --out "/tmp/runs/$1" > "/tmp/runs-$1.log" 2>&1
          split -b 9000000 "/tmp/runs/$1/audio-rvq.safetensors" "$OUT/$1.part-" ) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done  # only these: never a bare `wait`
    mkdir -p /tmp/logs && cp /tmp/runs-*.log /tmp/logs/
    for run in "${runs[@]}"; do
        set -- $run
        cp "/tmp/runs/$1/audio-rvq.json" "/tmp/logs/$1.json" 2>/dev/null || true
    done
    tar -C /tmp/logs -cf "$OUT/logs.tar" .
    grep -h "val\|sha256\|Error" /tmp/runs-*.log | tail -40
    ls -la "$OUT"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
