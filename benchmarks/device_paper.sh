#!/usr/bin/env bash
# The prepared GPU run (the honest-judge issue): the paper profile's victim (ResNet-18, the AR paper's 100-epoch
# recipe) on Fashion-MNIST padded to 32x32 as RGB, the closest offline stand-in for CIFAR-10, plus the GPU rows of
# the benchmarks. For a session that is lent the device machine, which has no internet:
#   here:    mkdir -p .device-data && cp /usr/share/datasets/fashion-mnist/*.gz .device-data/
#   device:  run(command="bash benchmarks/device_paper.sh", carry=[".device-data"], timeout_s=600)
# Rows are cached under $UEL_CACHE and the table is rewritten after every row, so a run cut by the time limit
# leaves what it finished under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
export UEL_DATA="$PWD/.device-data" UEL_CACHE="${OUT:-/tmp}/uel-cache" TQDM_MININTERVAL=10
python -m pip install -q -e . 2>/dev/null || true
python benchmarks/bench_judge.py --device cuda --models resnet18 resnet10-w16 --full none | tee "${OUT:-/tmp}/bench_judge.md"
python -m uel_helpers.cli reproduce --dataset fashion-mnist --pad-to 32 --rgb --profile paper --seeds 1 \
  --rows none+none ar+none ar+jpeg cuda+none cuda+rsk+ff em-samplewise+none em-samplewise+grayscale \
  --out "${OUT:-/tmp}/reproduce"
