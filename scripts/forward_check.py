#!/usr/bin/env python3
"""Cross-checks `reel forward` against torchvision on a full-width ResNet-18: makes a model with
torchvision (seeded random weights; BatchNorm statistics perturbed so that they matter), writes
its state_dict, an input and an upstream gradient as safetensors, runs reel on them, and prints
the largest relative difference of the output, the input gradient and the worst parameter
gradient (REEL_CHECK_ALL=1 lists every parameter), each against torchvision in float64, beside
torch's own float32 run.

    bench/peers/run.sh ../../scripts/forward_check.py [--reel build/apps/reel] [--train]

Needs torch and torchvision (the venv that bench/peers/run.sh makes); reel itself never needs
Python.
"""
import argparse
import copy
import json
import os
import struct
import subprocess
import tempfile

import torch
import torchvision


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dtype = "I64" if t.dtype == torch.int64 else "F32"
        data = t.to(torch.int64 if dtype == "I64" else torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e["shape"])
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--reel", default=os.path.join(here, "..", "build", "apps", "reel"))
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train(args.train)
    x = torch.randn(args.batch, 3, args.size, args.size, requires_grad=True)
    g = torch.randn(args.batch, 10)
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda n: os.path.join(tmp, n)
        write(p("w.safetensors"), model.state_dict())
        write(p("x.safetensors"), {"input": x, "grad_output": g})
        with open(p("model.json"), "w") as f:
            json.dump({"arch": "resnet18", "num_classes": 10, "width": 64}, f)
        cmd = [args.reel, "forward", "--model", p("model.json"), "--weights", p("w.safetensors"),
               "--input", p("x.safetensors"), "--output", p("y.safetensors"), "--grad"]
        if args.train:
            cmd.append("--train")
        print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        y = read(p("y.safetensors"))
    # The reference is torchvision in float64; torch's own float32 run is shown beside reel's.
    # Both round, and where a ReLU input lies within rounding of 0 either may take the other
    # side: that element's gradient then differs in full (in training mode, through BatchNorm's
    # batch statistics, in its whole channel), so a float32 run can be 1e-2 off float64 there.
    m64 = copy.deepcopy(model).double()
    x64 = x.detach().double().requires_grad_(True)
    out64 = m64(x64)
    out64.backward(g.double())
    out = model(x)
    out.backward(g)
    rel = lambda a, b: ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()
    p32, p64 = dict(model.named_parameters()), dict(m64.named_parameters())
    print(f"torchvision resnet18 ({'train' if args.train else 'eval'}), input {list(x.shape)}: "
          f"max |a - torch float64| / max |torch float64|")
    print(f"  {'':24} {'reel':>9} {'torch f32':>10}")
    print(f"  {'output':24} {rel(y['output'], out64.detach()):9.2e} "
          f"{rel(out.detach(), out64.detach()):10.2e}")
    print(f"  {'grad.input':24} {rel(y['grad.input'], x64.grad):9.2e} {rel(x.grad, x64.grad):10.2e}")
    errs = sorted(((rel(y["grad." + n], p64[n].grad), rel(p32[n].grad, p64[n].grad), n)
                   for n in p64), reverse=True)
    if os.environ.get("REEL_CHECK_ALL"):  # every parameter, worst first
        for e, t, n in errs:
            print(f"    {n:22} {e:9.2e} {t:10.2e}")
    worst_torch = max(t for _, t, _ in errs)
    print(f"  {'worst of ' + str(len(errs)) + ' parameters':24} {errs[0][0]:9.2e} "
          f"{worst_torch:10.2e}   (reel's worst: {errs[0][2]})")


if __name__ == "__main__":
    main()
