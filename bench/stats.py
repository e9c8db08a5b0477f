#!/usr/bin/env python3
"""Small number crunching for bench/run (stdlib only).

  stats.py pct  < seconds      -> "n p50_ms p99_ms min_ms max_ms"   (nearest-rank p99)
  stats.py agg  < values       -> "median min max n"                 (across runs)
"""
import math
import statistics
import sys


def nearest_rank(sorted_vals, q):
    k = max(1, math.ceil(q * len(sorted_vals)))
    return sorted_vals[k - 1]


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "pct"
    vals = []
    for line in sys.stdin:
        for tok in line.split():
            try:
                vals.append(float(tok))
            except ValueError:
                pass
    if not vals:
        print("0 - - - -" if mode == "pct" else "- - - 0")
        return
    vals.sort()
    if mode == "pct":
        ms = [v * 1000.0 for v in vals]
        print(f"{len(ms)} {statistics.median(ms):.3f} {nearest_rank(ms, 0.99):.3f} "
              f"{ms[0]:.3f} {ms[-1]:.3f}")
    elif mode == "agg":
        print(f"{statistics.median(vals):.6g} {vals[0]:.6g} {vals[-1]:.6g} {len(vals)}")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
