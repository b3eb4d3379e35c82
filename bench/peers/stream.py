#!/usr/bin/env python3
"""PyTorch's streaming inference of reel's reference video model, timed at its best, beside
bench/bench_stream.cpp. Run it through bench/peers/run.sh (2 threads, jemalloc, passive OpenMP
wait):

    bench/peers/run.sh stream.py --threads 2 [--shapes 0,1] [--repeat 5]

The model, float32 on the CPU in eval mode under torch.inference_mode(): torchvision's ResNet-18
at full width (weights=None) with fc replaced by Linear(512, 512), nn.LSTM(512, 256,
num_layers=2, batch_first=True) and Linear(256, 10). One frame x [1, 3, HW, HW] from randn per
call: feats = cnn(x), out, (h, c) = lstm(feats[:, None], (h, c)) with the state carried from the
call before, p = softmax(fc(out[:, -1])). Prints the best of `repeat` means, in ms per frame, as
"torch StreamStep/HW <ms> ms".
"""
import torch
import torchvision
from timing import selected, shape_args, timeit

SHAPES = [(112,), (160,), (224,)]


def make_step(HW):
    cnn = torchvision.models.resnet18(weights=None)
    cnn.fc = torch.nn.Linear(512, 512)
    lstm = torch.nn.LSTM(512, 256, num_layers=2, batch_first=True)
    fc = torch.nn.Linear(256, 10)
    for m in (cnn, lstm, fc):
        m.eval()
    x = torch.randn(1, 3, HW, HW)
    state = [None]

    def step():
        with torch.inference_mode():
            feats = cnn(x)
            out, state[0] = lstm(feats[:, None], state[0])
            p = torch.softmax(fc(out[:, -1]), 1)
        return p

    return step


def main():
    args = shape_args(SHAPES).parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for (HW,) in selected(args, SHAPES):
        t = timeit(make_step(HW), args.repeat, 0.5, warmup=3)
        print(f"torch {f'StreamStep/{HW}':<24} {t * 1e3:10.2f} ms")


if __name__ == "__main__":
    main()
