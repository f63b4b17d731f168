#!/usr/bin/env bash
# One prepared run on the lent GPU machine (no Node, Bun or network there): unpack Bun, run the cuda tests and the
# parity suites on cuda (NVRTC cubin, then the shipped PTX), then the GPU bench. Everything lands in $OUT.
# Prepare here, then run it from the repository root with the device tool, carrying .device and build:
#   mkdir -p .git/info .device && echo /.device/ >> .git/info/exclude
#   xz -T2 -6 -c node_modules/bun/bin/bun.exe > .device/bun.xz && npm run build:asm
#   run: bash test/gpu/run-on-device.sh   (carry: [".device", "build"], timeout ~560 s; the steps are capped at 520 s together)
cd "$(dirname "$0")/../.."
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.device/bun.xz'),open('/tmp/bun','wb'))" && chmod +x /tmp/bun
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/nvidia-smi.txt 2>&1
ldconfig -p | grep -E "libcuda|libnvrtc|libcublas" > $OUT/libs.txt 2>&1
export NUMEDGE_TEST_BACKENDS=cuda,wasm
FILES="test/gpu test/cuda-ptx.test.ts test/cuda-cpu.test.ts test/softmax.test.ts test/dense.test.ts test/device.test.ts test/crossentropy.test.ts test/topk.test.ts test/route.test.ts test/quant.parity.test.ts test/nn.test.ts test/adam8bit.test.ts test/fuzz.test.ts"
start=$(date +%s)
timeout 230 /tmp/bun test --timeout 120000 $FILES > $OUT/test-gpu.log 2>&1; echo "rc $? in $(( $(date +%s) - start )) s" >> $OUT/test-gpu.log
tail -5 $OUT/test-gpu.log
grep -E "^\(fail\)|skipped|cuda engine" $OUT/test-gpu.log | head -40
XDG_CACHE_HOME=/tmp/nocache NUMEDGE_NVRTC=none timeout 60 /tmp/bun test --timeout 120000 test/gpu > $OUT/test-gpu-ptx.log 2>&1; echo "rc $?" >> $OUT/test-gpu-ptx.log
tail -4 $OUT/test-gpu-ptx.log; grep -E "^\(fail\)|cuda engine" $OUT/test-gpu-ptx.log | head
timeout 120 /tmp/bun bench/gpu.bench.ts > $OUT/gpu-bench.log 2>&1; echo "rc $?" >> $OUT/gpu-bench.log
cat $OUT/gpu-bench.log
timeout 50 /tmp/bun bench/gpu-profile.ts --steps 30 > $OUT/gpu-profile.log 2>&1; echo "rc $?" >> $OUT/gpu-profile.log
cat $OUT/gpu-profile.log
XDG_CACHE_HOME=/tmp/gc timeout 60 /tmp/bun scripts/gpu-check.ts --engine cuda --reps 3 > $OUT/gpu-check.log 2>&1; echo "rc $?" >> $OUT/gpu-check.log
tail -22 $OUT/gpu-check.log
