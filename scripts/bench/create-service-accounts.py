"""Creates COUNT ServiceAccounts sa-<i> in namespaces sa-<i // 1000> (created too), each with two
labels and two annotations (one of them a workload identity client ID), through the API server's
REST API with a bearer token. Used by scripts/bench/webhooks and scripts/bench/ab-service-accounts.

usage: create-service-accounts.py API_URL TOKEN CA_FILE COUNT
"""
import http.client
import json
import ssl
import sys
import urllib.parse

api, token, ca, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlsplit(api)
conn = http.client.HTTPSConnection(u.hostname, u.port, context=ssl.create_default_context(cafile=ca))
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
for ns in range(count // 1000 + 1):
    conn.request("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": f"sa-{ns}"}}), headers)
    r = conn.getresponse()
    r.read()
    assert r.status in (201, 409), r.status
for i in range(count):
    body = {"metadata": {"name": f"sa-{i}", "labels": {"app": f"app-{i}", "team": "bench"},
            "annotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-%012d" % i,
                            "description": "a ServiceAccount created by scripts/bench/webhooks"}}}
    conn.request("POST", f"/api/v1/namespaces/sa-{i // 1000}/serviceaccounts", json.dumps(body), headers)
    r = conn.getresponse()
    r.read()
    assert r.status == 201, (r.status, i)
