#!/usr/bin/env python3
"""Pairs Google Benchmark runs of reel (--benchmark_format=json) with the lines a peer script
printed ("torch <Name>/<a>/<b>/... <ms> ms ...") by name and argument values, keeps each side's
best time over all the files given, and prints both with PyTorch's time over reel's (above 1:
reel is faster).

    bench/peers/compare.py reel1.json [reel2.json ...] -- torch1.txt [torch2.txt ...]
"""
import json
import re
import sys


def keep_best(table, name, ms):
    table[name] = min(ms, table.get(name, ms))


def reel_times(paths, table):
    for path in paths:
        for b in json.load(open(path))["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            # BM_Conv2dFwd/N:8/C:64/.../real_time -> Conv2dFwd/8/64/...
            parts = b["name"].split("/")
            args = [p.split(":")[-1] for p in parts[1:] if p != "real_time"]
            name = "/".join([parts[0].removeprefix("BM_")] + args)
            unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
            keep_best(table, name, b["real_time"] * unit)


def peer_times(paths, table):
    for path in paths:
        for line in open(path):
            m = re.match(r"torch (\S+)\s+([\d.]+) ms", line)
            if m:
                keep_best(table, m.group(1), float(m.group(2)))


def main():
    args = sys.argv[1:]
    split = args.index("--")
    ours, theirs = {}, {}
    reel_times(args[:split], ours)
    peer_times(args[split + 1:], theirs)
    print(f"{'shape':40} {'reel ms':>9} {'torch ms':>9} {'torch/reel':>10}")
    for name, t in ours.items():
        if name in theirs:
            print(f"{name:40} {t:9.2f} {theirs[name]:9.2f} {theirs[name] / t:10.2f}")


if __name__ == "__main__":
    main()
