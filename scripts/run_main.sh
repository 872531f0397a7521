#!/usr/bin/env bash
# Set everything up on a fresh Debian machine and run the main job end to end on the embedded
# default: make a small generated corpus, import it (normalize + desensitize), compute features,
# print stats, then transcribe a generated two-party call with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
WORK=${HOTLINE_WORK:-data/main}
HOURS=${HOTLINE_SYNTH_HOURS:-0.05}
JOBS=${HOTLINE_JOBS:-$(nproc)}
set -x
hotline-asr data synth --hours "$HOURS" --seed 2026 --out "$WORK/synth" --jobs "$JOBS"
hotline-asr data import "$WORK/synth" --corpus demo --out "$WORK"
hotline-asr data fbank --corpus demo --manifests "$WORK/manifests" --out "$WORK/fbank" --jobs "$JOBS"
hotline-asr data stats --corpus demo --manifests "$WORK/manifests"
# The embedded default model ships as a checkpoint; its ONNX export (what the engine runs) is
# made once, in seconds, into a git-ignored folder.
MODEL=models/default
ONNX=$WORK/default-onnx
if [ ! -f "$ONNX/encoder.onnx" ]; then
  hotline-asr export "$MODEL/model.pt" "$ONNX" --no-int8
fi
hotline-asr data render-call --seed 7 --out "$WORK/call"
# beam search with the default's character 4-gram of call sentences (models/default/README.md)
hotline-asr transcribe --model "$ONNX" --format text --decoding-method modified_beam_search \
  --lm "$MODEL/lm.arpa" "$WORK/call/call7.stereo.wav"
