// Shared by the runtime smoke tests: a softmax that splits over the worker pool gives the same bits on 3 threads
// as on 1, and the pool really runs 3 (a worker that failed to start would show in backendInfo).
export async function poolSame({ softmax, setThreads, backendInfo }) {
  const big = Float32Array.from({ length: 64 * 32000 }, (_, i) => Math.sin(i));
  setThreads(1);
  const one = softmax(big, { cols: 32000 });
  setThreads(3);
  softmax(big, { cols: 32000 });
  await new Promise((r) => setTimeout(r, 300));
  const three = softmax(big, { cols: 32000 });
  return one.every((v, i) => Object.is(v, three[i])) && backendInfo().threads === 3;
}
