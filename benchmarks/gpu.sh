#!/usr/bin/env bash
# DeepChrome on a lent CUDA GPU, in one go (about 5 minutes on an H100/H200; limit 8):
#   1. per-model loop vs stacked ensemble on the same GPU (target: stacked ≥ 20×), fp32 and
#      bf16, with peak GPU memory;
#   2. end to end: 56 simulated epigenomes × 19,802 genes, the paper's protocol (deepchrome
#      split, batch 128, up to 100 epochs, patience 10), wall time, per-stage time, AUROC;
#   3. the gpu-marked tests.
# Fails at once, saying so, when no CUDA GPU is visible to torch.
#   bash benchmarks/gpu.sh            (from the repository root; PY=python to choose one)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"benchmarks/gpu.sh: no CUDA GPU visible to torch {torch.__version__} "
             f"(torch.version.cuda={torch.version.cuda}); this script only runs on a GPU")
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PYEOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
STORE=${STORE:-/tmp/chromestore-gpu-56x19802.zarr}
echo "== 1+2. loop vs stacked; end to end (store $STORE) =="
timeout 390 "$PY" benchmarks/gpu.py --store "$STORE" --epochs "${EPOCHS:-100}"
echo "== 3. gpu-marked tests =="
timeout 90 "$PY" -m pytest -q -m gpu tests
