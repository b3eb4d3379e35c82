#!/usr/bin/env python3
"""PyTorch's training step of reel's reference video model, timed at its best. Run it through
bench/peers/run.sh (2 threads, jemalloc, passive OpenMP wait):

    bench/peers/run.sh train_step.py --threads 2 [--shapes 0,2] [--repeat 5]
    bench/peers/run.sh train_step.py --memory 8,8,112 [--steps 3]

The model, float32 on the CPU in train mode: torchvision's ResNet-18 at full width (weights=None)
with fc replaced by Linear(512, 512) on every frame, nn.LSTM(512, 256, num_layers=2,
batch_first=True) over the frames, and Linear(256, 10) on the last step's output (fusion "last",
every clip full length, so no packing). Shapes (B, T, HW): x [B, T, 3, HW, HW] from randn and
targets y [B] in 0..9, both fixed. One step: opt.zero_grad(set_to_none=True), logits = model(x),
F.cross_entropy(logits, y).backward(), opt.step() with SGD(lr=0.01, momentum=0.9). Prints the best
of `repeat` means, in ms per step, as "torch TrainStep/B/T/HW <ms> ms".

--memory B,T,HW runs `steps` steps at that one shape in this fresh process and prints
"torch peak_rss_mib B/T/HW <MiB>", the process's peak resident set (ru_maxrss) after them; the
difference of two such runs over their difference in B*T frames is the marginal memory per frame.
"""
import resource

import torch
import torch.nn.functional as F
import torchvision
from timing import selected, shape_args, timeit

SHAPES = [(4, 8, 112), (2, 16, 112), (8, 8, 64), (8, 8, 112), (2, 8, 112)]


class VideoModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = torchvision.models.resnet18(weights=None)
        self.cnn.fc = torch.nn.Linear(512, 512)
        self.lstm = torch.nn.LSTM(512, 256, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):  # x [B, T, 3, HW, HW]
        B, T = x.shape[:2]
        feats = self.cnn(x.flatten(0, 1)).view(B, T, -1)
        out, _ = self.lstm(feats)
        return self.fc(out[:, -1])


def make_step(B, T, HW):
    model = VideoModel().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(B, T, 3, HW, HW)
    y = torch.randint(0, 10, (B,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def main():
    ap = shape_args(SHAPES)
    ap.add_argument("--memory", default="",
                    help="B,T,HW: run --steps steps at this shape only and print the peak RSS")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory:
        B, T, HW = (int(v) for v in args.memory.split(","))
        step = make_step(B, T, HW)
        for _ in range(args.steps):
            step()
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(f"torch peak_rss_mib {B}/{T}/{HW} {peak_kib / 1024:.1f}")
        return
    shapes = selected(args, SHAPES)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for (B, T, HW) in shapes:
        t = timeit(make_step(B, T, HW), args.repeat, 0.5, warmup=2)
        print(f"torch {f'TrainStep/{B}/{T}/{HW}':<24} {t * 1e3:10.1f} ms")


if __name__ == "__main__":
    main()
