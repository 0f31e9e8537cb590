#!/usr/bin/env bash
# Rebuild the built-in model (core/assets/model) from the data its model card names, and print the
# figures that say whether it moves.
#
#   bash train/builtin/train_builtin.sh WORKDIR                          # from scratch
#   INIT=core/assets/model bash train/builtin/train_builtin.sh WORKDIR   # continue training the shipped model
#   RESUME=1 bash train/builtin/train_builtin.sh WORKDIR                 # resume WORKDIR/run after an interruption
#
# Needs: Bandai-Namco dataset 1 (BANDAI1, default ../shared/data/bandai-namco-1), dataset 2 as its folder or
# its .tar.xz (BANDAI2, default ../shared/data/bandai-namco-2-train.tar.xz; unpacked into WORKDIR), Debian's
# assimp-testmodels (CMU 01_01, 01_03), and the DeepMimic clips that `python tests/fetch_test_data.py` fetches
# from the pybullet wheel. EPOCHS (default: the `builtin` preset's 120) sets the length: on a 2-core CPU an
# epoch of the full data takes about 35 s. DEVICE (default auto) picks the GPU when there is one.
#
# Writes WORKDIR/data (the dataset, 20 fps), WORKDIR/run (the run), WORKDIR/evaluator (the independent
# evaluator, trained once on the train split), then exports the weights (float16) and config into
# core/assets/model (the model card stays), prints the evaluation on the held-out styles (WORKDIR/eval) and
# renders the README gallery (docs/gallery).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${1:?usage: train_builtin.sh WORKDIR}"
BANDAI1="${BANDAI1:-../shared/data/bandai-namco-1}"
BANDAI2="${BANDAI2:-../shared/data/bandai-namco-2-train.tar.xz}"
DEEPMIMIC="${DEEPMIMIC:-$HOME/.cache/motionclip-testdata/deepmimic}"
MC="${MC:-.venv/bin/motionclip}"
DEVICE="${DEVICE:-auto}"
mkdir -p "$WORK"

if [ ! -f "$WORK/data/index.json" ] || [ -z "${RESUME:-}" ]; then
    rm -rf "$WORK/data"
    if [ -f "$BANDAI2" ]; then  # the shared archive: unpack once, outside the repository
        [ -d "$WORK/bandai-namco-2/data" ] || { mkdir -p "$WORK/bandai-namco-2" && tar xJf "$BANDAI2" -C "$WORK/bandai-namco-2"; }
        BANDAI2="$WORK/bandai-namco-2"
    fi
    # Bandai-Namco split by style: whole styles are held out. Dataset 1 (15 styles): val angry, not-confident;
    # test happy. Dataset 2 (5 styles here; split seed 35): val masculine, test exhausted.
    $MC data import "$BANDAI1/data" --out "$WORK/data" --fps 20 --split-by style --quiet
    $MC data import "$BANDAI2/data" --out "$WORK/data" --fps 20 --split-by style --split-seed 35 --quiet
    $MC data import "$DEEPMIMIC" /usr/share/assimp/models/BVH/01_01.bvh /usr/share/assimp/models/BVH/01_03.bvh \
        --out "$WORK/data" --fps 20 --quiet
    $MC data synth --out "$WORK/data" --clips 300 --seed 0 --fps 20 --quiet
fi
$MC data info "$WORK/data"

$MC train autoencoder --data "$WORK/data" --out "$WORK/run" --config builtin ${EPOCHS:+--epochs "$EPOCHS"} \
    ${INIT:+--init "$INIT"} ${RESUME:+--resume}
$MC export-run "$WORK/run" --out core/assets/model --float16

# The independent judge: a text-motion matching model trained on the real train split only (never the model's
# own latent space), kept across continuations so that figures stay comparable.
[ -f "$WORK/evaluator/model.safetensors" ] || $MC train evaluator --data "$WORK/data" --out "$WORK/evaluator" --quiet
$MC eval --checkpoint core/assets/model --data "$WORK/data" --split test --source bandai-namco \
    --evaluator "$WORK/evaluator" --device "$DEVICE" --out "$WORK/eval"
$MC gallery --out docs/gallery --readme README.md --device "$DEVICE"
