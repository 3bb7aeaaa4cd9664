"""Cached get_token cost of Python azure-identity's ManagedIdentityCredential (App Service source)
against a local stand-in endpoint: the reference point of docs/credential.md.

Run with the venv scripts/test.d/20-python-clients.sh creates:
    $AZWI_CACHE/python-clients/bin/python bench/python_cached.py
"""
import json
import os
import threading
import time
import timeit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = "https://vault.azure.net/.default"


class AppService(BaseHTTPRequestHandler):
    def do_GET(self):
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
    best = min(timeit.repeat(lambda: credential.get_token(SCOPE), number=n, repeat=5)) / n
    print(json.dumps({"python_managed_identity_app_service_cached_us": round(best * 1e6, 3)}))
    server.shutdown()


if __name__ == "__main__":
    main()
