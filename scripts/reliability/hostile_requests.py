#!/usr/bin/env python3
"""Request-shaped hostile input for scripts/reliability/hostile-input (issue 15).

    hostile_requests.py ADDR CA big-pod CONTAINERS SECONDS   one review with CONTAINERS containers, repeated
    hostile_requests.py ADDR CA namespaces COUNT             COUNT reviews, each in an invented namespace
    hostile_requests.py ADDR CA echoes                       a 3 MB expiration annotation and a 1 MB uid

Sends over one keep-alive TLS connection to the webhook at ADDR (loopback only, trusting CA) and
prints one JSON line: requests sent, the largest answer, and the statuses seen.
"""
import http.client
import json
import ssl
import sys
import time

HOST = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc"


def review(namespace="bench", uid="00000000-0000-0000-0000-000000000015", containers=None, annotations=None):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "workload-", "labels": {"azure.workload.identity/use": "true"},
                     "annotations": annotations or {}},
        "spec": {"serviceAccountName": "workload",
                 "containers": containers or [{"name": "app", "image": "registry.example/app:1"}]},
    }
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": namespace, "operation": "CREATE", "object": pod},
    }).encode()


class Client:
    def __init__(self, addr, ca):
        host, port = addr.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            sys.exit("ADDR must be a loopback address")
        context = ssl.create_default_context(cafile=ca)
        self.connect = lambda: http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
        self.connection = self.connect()
        self.context = context
        self.statuses = {}
        self.largest = 0
        self.sent = 0

    def post(self, body):
        for attempt in (1, 2):
            try:
                self.connection.putrequest("POST", "/mutate-v1-pod", skip_host=True)
                self.connection.putheader("Host", HOST)
                self.connection.putheader("Content-Type", "application/json")
                self.connection.putheader("Content-Length", str(len(body)))
                self.connection.endheaders(body)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = self.connect()
                if attempt == 2:
                    raise
        self.sent += 1
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        self.largest = max(self.largest, len(data))
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
            self.connection = self.connect()
        return response.status, data


def main():
    addr, ca, mode = sys.argv[1:4]
    client = Client(addr, ca)
    # The server name the certificate was issued for, whatever address is dialled.
    client.context.check_hostname = False
    report = {"mode": mode}
    if mode == "big-pod":
        containers, seconds = int(sys.argv[4]), float(sys.argv[5])
        body = review(containers=[{"name": f"c{i}", "image": "busybox"} for i in range(containers)])
        report.update(containers=containers, request_bytes=len(body))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status, data = client.post(body)
            report["allowed"] = json.loads(data)["response"]["allowed"] if status == 200 else None
    elif mode == "namespaces":
        count = int(sys.argv[4])
        for i in range(count):
            client.post(review(namespace=f"invented-{i:05d}"))
        report["namespaces"] = count
    elif mode == "echoes":
        annotation = {"azure.workload.identity/service-account-token-expiration": "9" * 3_000_000}
        status, data = client.post(review(annotations=annotation))
        report["annotation_answer_bytes"] = len(data)
        status, data = client.post(review(uid="u" * 1_000_000))
        report["uid_answer_bytes"] = len(data)
        report["uid_status"] = status
    else:
        sys.exit(f"unknown mode {mode}")
    report.update(requests=client.sent, largest_answer_bytes=client.largest,
                  statuses={str(k): v for k, v in client.statuses.items()})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
