"""Summarises scripts/bench/proxies' JSON lines as a Markdown table: median [min-max] per proxy over
the rounds, the ratio of the medians (ours / upstream), and the per-round ratios (each round runs
both proxies within the same minute) as median [min-max].

usage: summarize-proxies.py RESULTS.jsonl
"""
import json
import statistics
import sys

from summary import cell, fixed_rate_figures

FIGURES = [
    ("throughput at saturation (req/s)", lambda r: r["throughput_rps"]),
    ("saturation p50 (ms)", lambda r: r["sat_latency_ms"]["p50"]),
    ("saturation p99 (ms)", lambda r: r["sat_latency_ms"]["p99"]),
    ("saturation p99.9 (ms)", lambda r: r["sat_latency_ms"]["p99_9"]),
    ("CPU s per 1,000 requests", lambda r: r["cpu_s_per_1000"]),
    ("RSS idle, cache warm (MiB)", lambda r: r["rss_idle_mib"]),
    ("RSS peak under load (MiB)", lambda r: r["rss_under_load_mib"]),
    ("start to ready (ms)", lambda r: r["ready_ms"]),
]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by = {impl: {r["round"]: r for r in rows if r["impl"] == impl} for impl in ("ours", "upstream")}
    rounds = sorted(set(by["ours"]) & set(by["upstream"]))
    if not rounds:
        sys.exit("no round has results for both proxies")
    figures = list(FIGURES)
    at = 4  # the fixed-rate figures go after the saturation latencies
    if all(r.get("wrk_throughput_rps") for r in rows):
        figures.insert(1, ("throughput at saturation, wrk (req/s)", lambda r: r["wrk_throughput_rps"]))
        at += 1
    for rate in reversed(list(rows[0]["rates"])):
        figures[at:at] = fixed_rate_figures(rate)
    print(f"{len(rounds)} rounds each; median [min-max]\n")
    print("| figure | azure-wi | upstream v1.6.0 | ratio of medians (ours/upstream) | per-round ratio |")
    print("| --- | --- | --- | --- | --- |")
    for label, get in figures:
        ours = [get(by["ours"][n]) for n in rounds]
        theirs = [get(by["upstream"][n]) for n in rounds]
        per_round = [o / t for o, t in zip(ours, theirs) if t]
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"| {label} | {cell(ours)} | {cell(theirs)} | {ratio:.3g} | "
              f"{statistics.median(per_round):.3g} [{min(per_round):.3g}-{max(per_round):.3g}] |")
    selected = [by[i][n] for i in by for n in rounds]
    print(f"\nfailed requests in all runs: {sum(r['failures'] for r in selected)}; exchanges with the "
          "Entra stand-in per proxy run (the warming request included): "
          + ", ".join(f"{r['impl']} {r['entra_exchanges']}" for r in selected)
          + "; stand-in CPU seconds during the saturation runs: "
          + ", ".join(f"{r['entra_cpu_s_during_saturation']:g}" for r in selected)
          + "; load averages: " + ", ".join(r["loadavg"].split()[0] for r in selected))


if __name__ == "__main__":
    main()
