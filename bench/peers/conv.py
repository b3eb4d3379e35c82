#!/usr/bin/env python3
"""PyTorch's conv2d on the shapes of reel's conv benchmark (ResNet's convolutions), timed at its
best. Run it through bench/peers/run.sh (2 threads, jemalloc, passive OpenMP wait):

    bench/peers/run.sh conv.py --threads 2 [--shapes 0,2] [--repeat 5]

Shapes (N, C, H, W, K, R, stride): float32 on the CPU, NCHW, weight [K, C, R, R], padding R // 2,
no bias, where torch 2 runs oneDNN's convolution when mkldnn is available. Conv2dFwd: inference
(torch.inference_mode). Conv2dFwdBwd: forward, then out.backward(gout) with a fixed gout, x and w
requiring grad (data and weight gradients). Prints the best of `repeat` means, in ms, and
GFLOP/s counting 2*N*K*P*Q*C*R*R for the forward and three times that for forward+backward.
"""
import torch
import torch.nn.functional as F
from timing import selected, shape_args, timeit

SHAPES = [(8, 64, 56, 56, 64, 3, 1), (32, 64, 56, 56, 64, 3, 1), (8, 3, 112, 112, 64, 7, 2),
          (8, 64, 28, 28, 128, 3, 2), (8, 128, 14, 14, 128, 3, 1), (8, 128, 14, 14, 256, 3, 2),
          (8, 256, 7, 7, 256, 3, 1), (8, 256, 7, 7, 512, 3, 2), (8, 512, 4, 4, 512, 3, 1),
          # a training step of the video model: ResNet-18 on 32 frames of 112x112
          (32, 3, 112, 112, 64, 7, 2), (32, 64, 28, 28, 64, 3, 1), (32, 64, 28, 28, 128, 3, 2),
          (32, 64, 28, 28, 128, 1, 2), (32, 128, 14, 14, 128, 3, 1), (32, 128, 14, 14, 256, 3, 2),
          (32, 256, 7, 7, 256, 3, 1), (32, 256, 7, 7, 512, 3, 2), (32, 512, 4, 4, 512, 3, 1)]


def main():
    ap = shape_args(SHAPES)
    args = ap.parse_args()
    shapes = selected(args, SHAPES)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for (N, C, H, W, K, R, stride) in shapes:
        pad = R // 2
        x = torch.randn(N, C, H, W)
        w = torch.randn(K, C, R, R) / (C * R * R) ** 0.5
        P = (H + 2 * pad - R) // stride + 1
        Q = (W + 2 * pad - R) // stride + 1
        flops = 2.0 * N * K * P * Q * C * R * R

        def fwd():
            with torch.inference_mode():
                F.conv2d(x, w, None, stride, pad)

        xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        gout = torch.randn(N, K, P, Q)

        def fwd_bwd():
            xg.grad = wg.grad = None
            F.conv2d(xg, wg, None, stride, pad).backward(gout)

        name = f"{N}/{C}/{H}/{W}/{K}/{R}/{stride}"
        for label, fn, f in (("Conv2dFwd", fwd, flops), ("Conv2dFwdBwd", fwd_bwd, 3 * flops)):
            t = timeit(fn, args.repeat, 0.5, warmup=2)
            print(f"torch {label + '/' + name:<36} {t * 1e3:9.3f} ms {f / t * 1e-9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
