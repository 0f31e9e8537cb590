#!/usr/bin/env bash
# Rebuild the built-in model (core/assets/model) from the data the model card names.
#
#   bash train/builtin/train_builtin.sh WORKDIR
#
# Needs: the Bandai-Namco dataset 1 (BANDAI=/path/to/bandai-namco-1, default ../shared/data/
# bandai-namco-1), Debian's assimp-testmodels (CMU 01_01, 01_03), and the DeepMimic clips that
# `python tests/fetch_test_data.py` fetches from the pybullet wheel. CPU only: about an hour on
# 2 cores. Writes WORKDIR/data (the dataset), WORKDIR/run (the run), then copies the weights
# (float16) and config into core/assets/model and prints the evaluation on the held-out styles.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${1:?usage: train_builtin.sh WORKDIR}"
BANDAI="${BANDAI:-../shared/data/bandai-namco-1}"
DEEPMIMIC="${DEEPMIMIC:-$HOME/.cache/motionclip-testdata/deepmimic}"
MC=.venv/bin/motionclip
rm -rf "$WORK/data"
# Bandai-Namco split by style: whole styles are held out for validation and test.
$MC data import "$BANDAI/data" --out "$WORK/data" --split-by style --quiet
$MC data import "$DEEPMIMIC" /usr/share/assimp/models/BVH/01_01.bvh /usr/share/assimp/models/BVH/01_03.bvh \
    --out "$WORK/data" --quiet
$MC data synth --out "$WORK/data" --clips 300 --seed 0 --quiet
$MC data info "$WORK/data"
$MC train autoencoder --data "$WORK/data" --out "$WORK/run" --config builtin ${RESUME:+--resume}
$MC export-run "$WORK/run" --out core/assets/model --float16
$MC eval --checkpoint core/assets/model --data "$WORK/data" --split test --source bandai-namco
