#!/usr/bin/env python3
"""PyTorch's nn.LSTM on the shapes of bench/bench_lstm.cpp, timed at its best. Run it through
bench/peers/run.sh (2 threads, jemalloc, passive OpenMP wait):

    bench/peers/run.sh lstm.py --threads 2

Shapes (B, T, D, H, L), batch first, float32, on the CPU, where torch 2 runs oneDNN's fused RNN
(mkldnn_rnn_layer). LstmFwd: inference (torch.inference_mode). LstmFwdBwd: forward, then
backward of output.sum(), as bench_lstm does. Prints the best of `repeat` means, in ms.
"""
import argparse

import torch
from timing import timeit

SHAPES = [(32, 16, 512, 256, 2), (8, 32, 512, 256, 2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for (B, T, D, H, L) in SHAPES:
        m = torch.nn.LSTM(D, H, num_layers=L, batch_first=True)
        x = torch.randn(B, T, D)

        def fwd():
            with torch.inference_mode():
                m(x)

        xg = x.clone().requires_grad_(True)

        def fwd_bwd():
            out, _ = m(xg)
            out.sum().backward()

        name = f"{B}/{T}/{D}/{H}/{L}"
        print(f"torch LstmFwd/{name}    {timeit(fwd, args.repeat, 0.5, warmup=2) * 1e3:8.2f} ms")
        print(f"torch LstmFwdBwd/{name} {timeit(fwd_bwd, args.repeat, 0.5, warmup=2) * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
