#!/bin/bash
# Image-codec training on a lent GPU (the `device` tool), in one call of under 10 minutes.
#
#   scripts/gpu_train_image.sh prepare     # here: data and wheels the GPU machine lacks
#   scripts/gpu_train_image.sh run         # there: carry [".gpu", ".whl"]; models land in $OUT
#
# The GPU machine has torch but not constriction, and receives at most 64 MiB with the
# repository (whose weights take ~36 MB), so `prepare` packs bsds500's training half (JPEG, as
# published) and a 512x512 crop of each Wikipedia photo at full resolution (JPEG quality 95
# without chroma subsampling, where PNG would take 23 MB): about 26 MB with 4 Kodak images.
# `run` trains RUNS side by side (default: the shipped model fine-tuned), each validating on
# four Kodak images every 500 steps, and exports each model into $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    mkdir -p .gpu/data .whl
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    rm -rf .gpu/data/* && mkdir -p .gpu/data/bsds500 && cp -r ../shared/datasets/bsds500/train .gpu/data/bsds500/
    mkdir -p .gpu/data/wiki_crops .gpu/data/kodak
    cp ../shared/datasets/kodak/kodim0[1-4].png .gpu/data/kodak/
    .venv/bin/python - <<'PY'
import random
from pathlib import Path
from PIL import Image
random.seed(0)
for path in sorted(Path("../shared/datasets/wikipedia_photos/images").iterdir()):
    image = Image.open(path).convert("RGB")
    if min(image.size) < 512:
        continue
    left, top = random.randrange(image.width - 511), random.randrange(image.height - 511)
    crop = image.crop((left, top, left + 512, top + 512))
    crop.save(f".gpu/data/wiki_crops/{path.stem}.jpg", quality=95, subsampling=0)
PY
    version=$(.venv/bin/python -c "import constriction; print(constriction.__version__)" 2>/dev/null \
        || .venv/bin/pip show constriction | awk '/^Version/ {print $2}')
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_17_x86_64 -d .whl "constriction==$version"
    du -sh .gpu .whl
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
    STEPS=${STEPS:-6000}
    common=(--data .gpu/data/bsds500 --data .gpu/data/wiki_crops --val .gpu/data/kodak
        --val-every 500 --init image-wavelet --classes 1 --crop 256 --device cuda
        --gains 0.41,0.649,1.01,1.47,2.14,3.30,5.46,8.83
        --lmbdas 0.000094,0.000274,0.00077,0.00186,0.00448,0.0123,0.0401,0.123)
    train() {  # NAME ARGS...: one run, its log and model into $OUT
        local name=$1; shift
        python3 -c "import sys; from nvcodec.cli.train import train_app; sys.argv[0] = 'nvcodec train'; train_app()" \
            image "${common[@]}" --out "/tmp/runs/$name" --steps "$STEPS" "$@" > "$OUT/$name.log" 2>&1
        cp "/tmp/runs/$name/image-wavelet.safetensors" "$OUT/$name.safetensors"
        cp "/tmp/runs/$name/image-wavelet.json" "$OUT/$name.json"
    }
    pids=()
    train finetune --batch 16 --lr 1e-4 & pids+=($!)
    train refiner128x6 --batch 16 --lr 1e-4 --decoder-width 128 --decoder-blocks 6 & pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid"; done  # only these: never a bare `wait`
    grep -h "val" "$OUT"/*.log | tail -20
    ls -la "$OUT"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
