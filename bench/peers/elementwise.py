#!/usr/bin/env python3
"""PyTorch on the ops and shapes of bench/bench_elementwise.cpp, timed at its best.

Run it as the README says (2 threads, jemalloc, passive OpenMP wait):

  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
  MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 OMP_WAIT_POLICY=passive \
  /root/torchenv/bin/python bench/peers/elementwise.py --threads 2 --repeat 7

Prints one line per op: the best of `repeat` runs (each the mean over enough calls to last about
0.3 s), in ms, and GB/s counted as bench_elementwise counts it.
"""
import argparse

import torch
from timing import timeit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    n16 = 1 << 24
    resnet = (32, 64, 56, 56)
    gates = (32, 1024)
    g = torch.Generator().manual_seed(0)

    def u(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    a, b = u((n16,), -1, 1), u((n16,), -1, 1)
    x16 = u((n16,), -8, 8)
    xlog = u((n16,), 0.01, 8)
    act = u(resnet, -1, 1)
    gate = u(gates, -8, 8)
    tiny = u((4,), -1, 1)
    sm = u((8192, 1000), -8, 8)
    ce = u((4096, 1000), -8, 8)
    tgt = torch.tensor([(i * 7919) % 1000 for i in range(4096)])
    big = u((4096, 4096), -1, 1)
    copy_src = u((n16,), -1, 1)
    copy_dst = torch.empty(n16)
    roof = torch.empty(n16)
    numel_r = act.numel()

    def ce_fwd_bwd():
        x = ce.detach().requires_grad_()
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(x, tgt)
            loss.backward()
        return x.grad

    cases = [
        ("copy (out=, 16M)", lambda: copy_dst.copy_(copy_src), 2 * 4 * n16),
        ("add 16M", lambda: a + b, 3 * 4 * n16),
        ("sigmoid 16M", lambda: torch.sigmoid(x16), 2 * 4 * n16),
        ("tanh 16M", lambda: torch.tanh(x16), 2 * 4 * n16),
        ("exp 16M", lambda: torch.exp(x16), 2 * 4 * n16),
        ("log 16M", lambda: torch.log(xlog), 2 * 4 * n16),
        ("relu 32x64x56x56", lambda: torch.relu(act), 2 * 4 * numel_r),
        ("sigmoid 32x1024", lambda: torch.sigmoid(gate), 2 * 4 * gate.numel()),
        ("tanh 32x1024", lambda: torch.tanh(gate), 2 * 4 * gate.numel()),
        ("relu 4", lambda: torch.relu(tiny), 2 * 4 * 4),
        ("sum(0,2,3) 32x64x56x56", lambda: act.sum((0, 2, 3)), 4 * numel_r),
        ("softmax 8192x1000", lambda: torch.softmax(sm, 1), 2 * 4 * sm.numel()),
        ("log_softmax 8192x1000", lambda: torch.log_softmax(sm, 1), 2 * 4 * sm.numel()),
        ("cross_entropy 4096x1000",
         lambda: torch.nn.functional.cross_entropy(ce, tgt), 2 * 4 * ce.numel()),
        ("cross_entropy fwd+bwd 4096x1000", ce_fwd_bwd, 4 * 4 * ce.numel()),
        ("transpose 4096x4096", lambda: big.t().contiguous(), 2 * 4 * big.numel()),
        ("permute NHWC 32x64x56x56",
         lambda: act.permute(0, 2, 3, 1).contiguous(), 2 * 4 * numel_r),
    ]
    del roof
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
    for name, fn, nbytes in cases:
        t = timeit(fn, args.repeat)
        print(f"{name:34s} {t * 1e3:9.3f} ms {nbytes / t / 1e9:8.2f} GB/s")


if __name__ == "__main__":
    main()
