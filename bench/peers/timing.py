"""The one timing loop of the peer scripts: the best of `repeat` means, each over enough calls
to last about `min_time` seconds, after `warmup` calls (allocator, first-touch pages, oneDNN's
primitive cache); and their common command line."""
import argparse
import time


def shape_args(shapes):
    """A parser with --threads, --repeat and --shapes (indices into `shapes`, all by default),
    the options compare.sh passes. Add more options, then call selected(args, shapes)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shapes", default="",
                    help=f"comma-separated indices into SHAPES (0..{len(shapes) - 1}); all by "
                         "default")
    return ap


def selected(args, shapes):
    return [shapes[int(i)] for i in args.shapes.split(",")] if args.shapes else shapes


def timeit(fn, repeat, min_time=0.3, warmup=1):
    for _ in range(warmup):
        fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 4 or calls >= 1 << 16:
            break
        calls *= 2
    calls = max(1, int(calls * (min_time / max(dt, 1e-9))))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best
