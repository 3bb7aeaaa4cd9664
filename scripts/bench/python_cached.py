"""Python azure-identity's ManagedIdentityCredential (App Service source) against a local stand-in
endpoint: cached get_token cost (median/min/max of 5 runs), cold acquisition (a new credential and
its first token, median of 200), and the wire requests that 1,000 concurrent callers (threads) of
one cold credential cause. The reference point of BENCHMARKS.md and docs/credential.md.

Run with the venv scripts/test.d/20-python-clients.sh creates:
    $AZWI_CACHE/python-clients/bin/python scripts/bench/python_cached.py
"""
import json
import os
import statistics
import threading
import time
import timeit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = "https://vault.azure.net/.default"


REQUESTS = [0]
LOCK = threading.Lock()


class AppService(BaseHTTPRequestHandler):
    def do_GET(self):
        with LOCK:
            REQUESTS[0] += 1
        body = json.dumps({
            "access_token": "py-token",
            "expires_on": str(int(time.time()) + 3600),
            "resource": "https://vault.azure.net",
            "token_type": "Bearer",
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AppService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["IDENTITY_ENDPOINT"] = "http://127.0.0.1:%d/msi/token" % server.server_address[1]
    os.environ["IDENTITY_HEADER"] = "bench-header"
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential()
    credential.get_token(SCOPE)
    n = 50_000
    runs = sorted(t / n * 1e9 for t in timeit.repeat(lambda: credential.get_token(SCOPE), number=n, repeat=5))
    cold = []
    for _ in range(200):
        start = time.perf_counter()
        ManagedIdentityCredential().get_token(SCOPE)
        cold.append((time.perf_counter() - start) * 1e6)
    cold.sort()
    fresh = ManagedIdentityCredential()
    before = REQUESTS[0]
    barrier = threading.Barrier(1000)
    ok = [0]

    def caller():
        barrier.wait()
        try:
            fresh.get_token(SCOPE)
            with LOCK:
                ok[0] += 1
        except Exception:  # counted as not succeeded
            pass

    threads = [threading.Thread(target=caller) for _ in range(1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({
        "python_managed_identity_cached_ns": {"median": round(statistics.median(runs), 1),
                                              "min": round(runs[0], 1), "max": round(runs[-1], 1)},
        "python_managed_identity_cold_us": {"median": round(statistics.median(cold), 1),
                                            "min": round(cold[0], 1), "max": round(cold[-1], 1)},
        "python_1000_concurrent_cold_callers": {"callers": 1000, "succeeded": ok[0],
                                                "wire_requests": REQUESTS[0] - before},
    }))
    server.shutdown()


if __name__ == "__main__":
    main()
