#!/usr/bin/env bash
# Ring attention on a machine with several NVIDIA GPUs: builds libumfa with its CUDA backend,
# runs the ring checks with NCCL (bindings/python/tests/_ring_worker.py: every configuration of
# the CPU tests, one process per GPU), then the scaling benchmark (bench/ring/ring_bench.py) for
# 1, 2, 4 and 8 GPUs (as many as there are), and writes the table.
#
#   bash bench/ring/run_gpus.sh                      # everything
#   STAGES="bench table" BENCH_ARGS="--seq-per-gpu 8192" bash bench/ring/run_gpus.sh
#
# Results: bench/ring/results/w<N>.json and bench/ring/results/scaling.md; logs in
# bench/ring/results/logs. NVLink multicast stays off (NCCL_NVLS_ENABLE=0 and friends).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
STAGES=${STAGES:-"build check bench table"}
OUT_DIR=${OUT_DIR:-$root/bench/ring/results}
LOG_DIR=$OUT_DIR/logs
mkdir -p "$LOG_DIR"
export UMFA_LIB_DIR=${UMFA_LIB_DIR:-$root/dist/native/linux-x64/lib}
export PYTHONPATH="$root/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
has() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
gpus=$(nvidia-smi -L | grep -c '^GPU')
worlds=""
for w in 1 2 4 8; do [ "$w" -le "$gpus" ] && worlds="$worlds $w"; done
echo "GPUs: $gpus; world sizes:$worlds"
status=0

if has build; then
  echo "=== build"
  UMFA_JOBS=${UMFA_JOBS:-16} UMFA_CMAKE_ARGS="-DUMFA_CUDA_ARCHITECTURES=${UMFA_CUDA_ARCHS:-90-real}" \
    bash core/scripts/build.sh > "$LOG_DIR/build.log" 2>&1 || { echo "build failed"; exit 1; }
fi

if has check; then
  for w in $worlds; do
    [ "$w" -lt 2 ] && continue
    echo "=== check: $w ranks, NCCL"
    timeout 900 python3 bindings/python/tests/_ring_worker.py --world "$w" --backend nccl \
      > "$LOG_DIR/check_w$w.log" 2>&1 || { echo "check with $w ranks FAILED"; status=1; }
    tail -1 "$LOG_DIR/check_w$w.log"
  done
fi

if has bench; then
  for w in $worlds; do
    echo "=== bench: $w GPUs"
    timeout 1800 torchrun --standalone --nproc-per-node "$w" bench/ring/ring_bench.py \
      --out "$OUT_DIR/w$w.json" ${BENCH_ARGS:-} > "$LOG_DIR/bench_w$w.log" 2>&1 \
      || { echo "bench with $w GPUs FAILED"; status=1; }
    tail -1 "$LOG_DIR/bench_w$w.log"
  done
fi

if has table; then
  python3 bench/ring/ring_bench.py --table "$OUT_DIR"/w*.json | tee "$OUT_DIR/scaling.md"
fi
exit $status
