"""A stand-in for Microsoft Entra's token endpoint, for the proxy interop tests.

It checks the client-assertion exchange as Entra would (tenant, grant type, assertion type, the
assertion equal to the federated token file, a client id, a .default scope), answers
`entra-<n>-<client_id>-<scope>` tokens valid for an hour, and counts exchanges. It binds
127.0.0.1:0 and writes its port to the file given as the first argument.

usage: entra_standin.py PORT_FILE TENANT ASSERTION_FILE
"""

import http.server
import json
import sys
import threading
import urllib.parse

PORT_FILE, TENANT, ASSERTION_FILE = sys.argv[1:4]
ASSERTION = open(ASSERTION_FILE).read().strip()
lock = threading.Lock()
exchanges = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/exchanges":
            return self.reply(200, {"exchanges": exchanges})
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        global exchanges
        length = int(self.headers.get("content-length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if self.path != f"/{TENANT}/oauth2/v2.0/token":
            return self.reply(404, {"error": "invalid_request", "error_description": f"AADSTS90002: {self.path}"})
        checks = [
            (form.get("grant_type") == "client_credentials", "grant_type"),
            (form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion_type"),
            (form.get("client_assertion") == ASSERTION, "client_assertion"),
            (bool(form.get("client_id")), "client_id"),
            (form.get("scope", "").endswith("/.default"), "scope"),
        ]
        for ok, name in checks:
            if not ok:
                return self.reply(400, {"error": "invalid_request", "error_description": f"AADSTS900144: bad {name}"})
        with lock:
            exchanges += 1
            n = exchanges
        token = f"entra-{n}-{form['client_id']}-{form['scope']}"
        self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os

os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
