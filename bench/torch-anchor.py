# PyTorch on the same GPU, for bench/gpu.bench.ts: kernel time (CUDA events) and host round trip of the same ops,
# and the grokking step at the paper size. Run: python3 bench/torch-anchor.py (writes $OUT/torch_anchor.json when OUT is set).
import json, os, time, torch
dev = torch.device("cuda")
torch.manual_seed(0)
res = []
def kt(fn, iters=50):
    fn(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters): fn()
    b.record(); b.synchronize()
    return a.elapsed_time(b) / iters * 1000
def wall(fn, iters=20):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters * 1e6
for rows, cols in [(64, 32000), (512, 1024), (4096, 1024), (4096, 64), (1024, 131072)]:
    xh = torch.rand(rows, cols) * 16 - 8
    x = xh.to(dev)
    k = kt(lambda: torch.softmax(x, -1))
    r = wall(lambda: torch.softmax(xh.to(dev), -1).cpu())
    res.append(dict(op="softmax", shape=f"[{rows},{cols}]", kernel_us=round(k, 2), GBs=round(rows*cols*8/(k*1e3)), roundtrip_us=round(r)))
for rows, cols, kk in [(4096, 256, 8), (4096, 64, 6), (4096, 8, 2), (65536, 256, 8), (1024, 4096, 64), (64, 32000, 50)]:
    xh = torch.rand(rows, cols)
    x = xh.to(dev)
    k = kt(lambda: torch.topk(x, kk, -1))
    r = wall(lambda: [t.cpu() for t in torch.topk(xh.to(dev), kk, -1)])
    res.append(dict(op="topk", shape=f"[{rows},{cols}] k={kk}", kernel_us=round(k, 2), roundtrip_us=round(r)))
for n, bs in [(1 << 24, 64), (1 << 24, 4096), (1 << 26, 4096)]:
    xh = torch.rand(n) * 6 - 3
    x = xh.to(dev)
    def q(x=x):
        v = x.view(-1, bs); am = v.abs().amax(1, keepdim=True)
        return torch.round(v * (127 / am)).to(torch.int8), am
    k = kt(q, 20)
    r = wall(lambda: [t.cpu() for t in q(xh.to(dev))], 5)
    res.append(dict(op="absmax_int8", shape=f"n={n} bs={bs}", kernel_us=round(k, 2), GBs=round(n*5/(k*1e3)), roundtrip_us=round(r)))
for rows, cols in [(4096, 32000), (8192, 128)]:
    z = (torch.rand(rows, cols, device=dev) * 8 - 4).requires_grad_()
    y = torch.arange(rows, device=dev) * 7919 % cols
    def ce():
        z.grad = None
        torch.nn.functional.cross_entropy(z, y).backward()
    k = kt(ce, 20)
    res.append(dict(op="crossEntropy (f32, with grad)", shape=f"[{rows},{cols}]", kernel_us=round(k, 2)))
V, n, H = 50257, 16384, 768
idx = torch.tensor([50256 if i % 5 == 0 else (i * 7919) % V for i in range(n)], device=dev)
dout = torch.rand(n, H, device=dev)
k = kt(lambda: torch.ops.aten.embedding_dense_backward(dout, idx, V, -1, False), 10)
res.append(dict(op="embeddingSumBackward", shape=f"{n} tokens, vocab {V}, {H} wide", kernel_us=round(k, 2)))
# grok step at the paper's size: p=113, 40% train (5107 rows), one-hot 2p -> 200 -> 200 -> p, f32, AdamW, full batch
p = 113
pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
perm = torch.randperm(p * p)[: int(0.4 * p * p)]
a, b = pairs[perm, 0].to(dev), pairs[perm, 1].to(dev)
y = (a + b) % p
X = torch.cat([torch.nn.functional.one_hot(a, p), torch.nn.functional.one_hot(b, p)], 1).float()
model = torch.nn.Sequential(torch.nn.Linear(2 * p, 200, bias=False), torch.nn.ReLU(), torch.nn.Linear(200, 200, bias=False), torch.nn.ReLU(), torch.nn.Linear(200, p, bias=False)).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-25, weight_decay=0)
def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward(); opt.step()
    return loss
k = kt(step, 100)
w = wall(lambda: step().item(), 100)
res.append(dict(op="grok_step_p113_2x200", shape="5107 rows", kernel_us=round(k, 1), roundtrip_us=round(w, 1)))
print(json.dumps(res, indent=1))
if os.environ.get("OUT"): open(os.environ["OUT"] + "/torch_anchor.json", "w").write(json.dumps(res, indent=1))
