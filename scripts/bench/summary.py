"""What the benchmark summaries share (summarize-webhooks.py, summarize-proxies.py, ab-webhooks):
number formatting, a median [min-max] cell, and the rows of one open-loop fixed rate."""
import statistics


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def cell(values):
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def fixed_rate_figures(rate):
    """(label, extractor) for one fixed rate of a result line's `rates`, in table order."""
    def field(*path):
        def get(r):
            value = r["rates"][rate]
            for key in path:
                value = value[key]
            return value
        return get
    return [
        (f"{rate} req/s: achieved (req/s)", field("achieved_rps")),
        (f"{rate} req/s: p50 (ms)", field("latency_ms", "p50")),
        (f"{rate} req/s: p99 (ms)", field("latency_ms", "p99")),
        (f"{rate} req/s: p99.9 (ms)", field("latency_ms", "p99_9")),
        (f"{rate} req/s: client send lag p99 (ms)", field("send_lag_ms", "p99")),
    ]
