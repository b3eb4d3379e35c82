#!/usr/bin/env python3
"""Pairs a Google Benchmark run of reel (--benchmark_format=json) with the lines a peer script
printed ("torch <Name>/<a>/<b>/... <ms> ms ...") by name and argument values, and prints both
times and PyTorch's time over reel's (above 1: reel is faster).

    build/bench/bench_conv --benchmark_format=json > reel.json
    bench/peers/run.sh conv.py > torch.txt
    bench/peers/compare.py reel.json torch.txt
"""
import json
import re
import sys


def reel_times(path):
    out = {}
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        # BM_Conv2dFwd/N:8/C:64/.../real_time -> Conv2dFwd/8/64/...
        parts = b["name"].split("/")
        name = parts[0].removeprefix("BM_")
        args = [p.split(":")[-1] for p in parts[1:] if p not in ("real_time",)
                and not p.startswith(("min_time", "repeats"))]
        ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        out["/".join([name] + args).split("_")[0]] = ms
    return out


def peer_times(path):
    out = {}
    for line in open(path):
        m = re.match(r"torch (\S+)\s+([\d.]+) ms", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def main():
    ours, theirs = reel_times(sys.argv[1]), peer_times(sys.argv[2])
    print(f"{'shape':44} {'reel ms':>9} {'torch ms':>9} {'torch/reel':>10}")
    for name, t in ours.items():
        if name in theirs:
            print(f"{name:44} {t:9.2f} {theirs[name]:9.2f} {theirs[name] / t:10.2f}")


if __name__ == "__main__":
    main()
