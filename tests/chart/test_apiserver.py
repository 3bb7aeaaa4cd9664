"""The chart and deploy/ on a real Kubernetes API server (etcd + kube-apiserver, no kubelet).

- The plain manifest is applied object by object (server-side apply). Every object must be accepted.
- The webhook's pod template must pass Pod Security Admission `restricted` in the manifest's
  namespace. A privileged pod there must be refused, which shows that the check is really enforced.
- The API server's own authorizer is asked (SubjectAccessReview) what the webhook's ServiceAccount
  may do. That must be exactly the minimal set, and nothing more.
- Helm adopts the plain-manifest install (`--take-ownership`, the migration path), uninstalls it
  cleanly, installs it again with non-default values (stored as rendered), upgrades that release
  in place, and uninstalls it leaving nothing behind.

Binaries: KUBE_APISERVER and ETCD, from scripts/testbed/build; HELM from scripts/tools/helm.
"""

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "azure-wi-webhook"
NS = "azure-workload-identity-system"
SA_USER = f"system:serviceaccount:{NS}:azure-wi-webhook-admin"
SA_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
MWC = "azure-wi-webhook-mutating-webhook-configuration"
SECRET = "azure-wi-webhook-server-cert"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
MISSING = [name for name in ("KUBE_APISERVER", "ETCD", "HELM") if not os.environ.get(name)]

# kind -> (API prefix, plural, namespaced)
RESOURCES = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    """etcd and kube-apiserver on loopback ports, with a static admin token."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="azwi-chart-apiserver-"))
        self.token = secrets.token_hex(16)
        self.procs = []
        etcd_port, peer_port = free_port(), free_port()
        self.procs.append(self._spawn("etcd", [
            os.environ["ETCD"], "--name=chart", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=chart=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",
        ]))
        key, pub = self.dir / "sa.key", self.dir / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                       capture_output=True)
        (self.dir / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        self.port = free_port()
        self.procs.append(self._spawn("kube-apiserver", [
            os.environ["KUBE_APISERVER"], f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--cert-dir={self.dir / 'certs'}", "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pub}", f"--service-account-signing-key-file={key}",
            "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=RBAC",
            f"--token-auth-file={self.dir / 'tokens.csv'}", "--profiling=false",
            # Loopback only: no endpoint reconciler for the kubernetes Service.
            "--endpoint-reconciler-type=none",
        ]))
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "chart",
            "clusters": [{"name": "chart", "cluster": {"server": f"https://127.0.0.1:{self.port}",
                                                       "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "chart", "context": {"cluster": "chart", "user": "admin"}}],
        }))
        self._wait_ready()

    def _spawn(self, name, argv):
        with open(self.dir / f"{name}.log", "wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self):
        # Start-up wait, not a timed assertion: gives up only if the server never becomes ready.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise AssertionError(f"{proc.args[0]} exited: {self.logs()}")
            status, _ = self.request("GET", "/readyz", raw=True)
            if status == 200:
                # The bootstrap priority classes and RBAC roles are created just after /readyz.
                status, _ = self.request("GET", "/apis/scheduling.k8s.io/v1/priorityclasses/system-cluster-critical")
                if status == 200:
                    return
            time.sleep(0.5)
        raise AssertionError(f"kube-apiserver not ready: {self.logs()}")

    def logs(self):
        return "\n".join((p.read_text(errors="replace")[-3000:]) for p in self.dir.glob("*.log"))

    def request(self, method, path, body=None, content_type="application/json", raw=False):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as resp:
                text = resp.read().decode()
                return resp.status, (text if raw else json.loads(text or "{}"))
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text
        except (urllib.error.URLError, OSError):
            return 0, None

    def apply(self, obj):
        """Server-side apply of one object; returns (status, stored object)."""
        prefix, plural, namespaced = RESOURCES[obj["kind"]]
        ns = obj["metadata"].get("namespace")
        path = f"{prefix}/namespaces/{ns}/{plural}" if namespaced else f"{prefix}/{plural}"
        return self.request("PATCH", f"{path}/{obj['metadata']['name']}?fieldManager=chart-test&force=true",
                            obj, "application/apply-patch+yaml")

    def can(self, verb, resource, group="", name=None, namespace=None):
        attrs = {"verb": verb, "resource": resource, "group": group}
        if name:
            attrs["name"] = name
        if namespace:
            attrs["namespace"] = namespace
        status, review = self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": SA_USER, "groups": SA_GROUPS, "resourceAttributes": attrs}})
        assert status == 201, review
        return review["status"].get("allowed", False)

    def helm(self, *args):
        proc = subprocess.run([os.environ["HELM"], "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def stop(self):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipIf(MISSING, f"no test bed binaries ({', '.join(MISSING)} unset): scripts/testbed/build is missing")
class OnTheApiServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cp = ControlPlane()
        text = (ROOT / "deploy/azure-wi-webhook.yaml").read_text().replace("${AZURE_TENANT_ID}", TENANT)
        cls.manifest = [d for d in yaml.safe_load_all(text) if d]
        cls.applied = [(d["kind"], d["metadata"]["name"], *cls.cp.apply(d)) for d in cls.manifest]

    @classmethod
    def tearDownClass(cls):
        cls.cp.stop()

    def test_1_every_object_of_the_manifest_is_accepted(self):
        self.assertEqual(len(self.applied), 12)
        for kind, name, status, body in self.applied:
            with self.subTest(kind=kind, name=name):
                self.assertIn(status, (200, 201), body)
        status, cm = self.cp.request("GET", f"/api/v1/namespaces/{NS}/configmaps/azure-wi-webhook-config")
        self.assertEqual(cm["data"]["AZURE_TENANT_ID"], TENANT)

    def pod_from_template(self, name, mutate=None):
        dep = next(d for d in self.manifest if d["kind"] == "Deployment")
        template = json.loads(json.dumps(dep["spec"]["template"]))
        if mutate:
            mutate(template["spec"])
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NS, "labels": template["metadata"]["labels"]},
                "spec": template["spec"]}

    def test_2_the_webhook_pod_passes_pod_security_restricted(self):
        status, body = self.cp.request("POST", f"/api/v1/namespaces/{NS}/pods?dryRun=All",
                                       self.pod_from_template("webhook-psa"))
        self.assertEqual(status, 201, body)
        self.assertEqual(body["spec"]["containers"][0]["securityContext"]["runAsUser"], 65532)

    def test_3_the_same_pod_without_its_security_context_is_refused(self):
        def unconfined(spec):
            del spec["securityContext"]
            del spec["containers"][0]["securityContext"]
        status, body = self.cp.request("POST", f"/api/v1/namespaces/{NS}/pods?dryRun=All",
                                       self.pod_from_template("unconfined", unconfined))
        self.assertEqual(status, 403, body)
        self.assertIn('violates PodSecurity "restricted', body["message"])
        for field in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile"):
            self.assertIn(field, body["message"])

    def test_4_the_service_account_may_do_exactly_what_it_needs(self):
        allowed = [
            ("get", "serviceaccounts", "", None, "team-a"),
            ("list", "serviceaccounts", "", None, None),
            ("watch", "serviceaccounts", "", None, None),
            ("get", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", MWC, None),
            ("patch", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", MWC, None),
            ("get", "secrets", "", SECRET, NS),
            ("update", "secrets", "", SECRET, NS),
            # The Secret's watch (field selector metadata.name), and re-creating it when deleted.
            ("list", "secrets", "", SECRET, NS),
            ("watch", "secrets", "", SECRET, NS),
            ("create", "secrets", "", None, NS),
        ]
        denied = [
            ("update", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", MWC, None),
            ("patch", "secrets", "", SECRET, NS),
            ("create", "serviceaccounts", "", None, "team-a"),
            ("get", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", "someone-else", None),
            ("patch", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", "someone-else", None),
            ("list", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", None, None),
            ("delete", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", MWC, None),
            ("patch", "validatingwebhookconfigurations", "admissionregistration.k8s.io", None, None),
            ("get", "secrets", "", "another-secret", NS),
            ("list", "secrets", "", None, NS),
            ("watch", "secrets", "", None, NS),
            ("list", "secrets", "", "another-secret", NS),
            ("update", "secrets", "", "another-secret", NS),
            ("create", "secrets", "", None, "kube-system"),
            ("delete", "secrets", "", SECRET, NS),
            ("get", "secrets", "", SECRET, "kube-system"),
            ("get", "pods", "", None, NS),
            ("get", "configmaps", "", "azure-wi-webhook-config", NS),
        ]
        for verb, resource, group, name, namespace in allowed:
            with self.subTest(allowed=(verb, resource, name, namespace)):
                self.assertTrue(self.cp.can(verb, resource, group, name, namespace))
        for verb, resource, group, name, namespace in denied:
            with self.subTest(denied=(verb, resource, name, namespace)):
                self.assertFalse(self.cp.can(verb, resource, group, name, namespace))

    def get(self, path):
        status, body = self.cp.request("GET", path)
        self.assertEqual(status, 200, body)
        return body

    def test_5_helm_adopts_the_manifest_install(self):
        # Helm 4 applies server-side: the fields the manifest's applier owns must be taken over.
        force = ["--force-conflicts"] if self.cp.helm("version", "--template", "{{.Version}}").startswith("v4") else []
        self.cp.helm("install", "workload-identity-webhook", str(CHART), "--namespace", NS,
                     "--take-ownership", *force, "--set", f"azureTenantID={TENANT}")
        for path in (f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MWC}",
                     f"/apis/apps/v1/namespaces/{NS}/deployments/azure-wi-webhook-controller-manager",
                     f"/api/v1/namespaces/{NS}/secrets/{SECRET}"):
            with self.subTest(path=path):
                meta = self.get(path)["metadata"]
                self.assertEqual(meta["annotations"]["meta.helm.sh/release-name"], "workload-identity-webhook")
                self.assertEqual(meta["labels"]["app.kubernetes.io/managed-by"], "Helm")

    def test_6_uninstall_then_install_with_options(self):
        self.cp.helm("uninstall", "workload-identity-webhook", "--namespace", NS, "--wait")
        for path in (f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MWC}",
                     "/apis/rbac.authorization.k8s.io/v1/clusterroles/azure-wi-webhook-manager-role"):
            with self.subTest(gone=path):
                self.assertEqual(self.cp.request("GET", path)[0], 404)
        self.cp.helm("install", "workload-identity-webhook", str(CHART), "--namespace", NS,
                     "--set", f"azureTenantID={TENANT}", "--set", "service.port=8443",
                     "--set", "service.targetPort=10250", "--set", "failurePolicy=Ignore",
                     "--set", "timeoutSeconds=5", "--set", "mutatingWebhookObjectSelector.matchLabels.team=a",
                     "--set", "mutatingWebhookNamespaceSelector.matchLabels.azwi=on",
                     "--set", "audience=api://AzureADTokenExchangeUSGov",
                     "--set", "podDisruptionBudget.maxUnavailable=1", "--set", "tokenPathLayout=legacy")
        (wh,) = self.get(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MWC}")["webhooks"]
        self.assertEqual(wh["clientConfig"]["service"], {"name": "azure-wi-webhook-webhook-service",
                                                         "namespace": NS, "path": "/mutate-v1-pod", "port": 8443})
        self.assertEqual((wh["failurePolicy"], wh["timeoutSeconds"]), ("Ignore", 5))
        self.assertEqual(wh["objectSelector"]["matchLabels"], {"azure.workload.identity/use": "true", "team": "a"})
        self.assertEqual(wh["namespaceSelector"], {"matchLabels": {"azwi": "on"}})
        svc = self.get(f"/api/v1/namespaces/{NS}/services/azure-wi-webhook-webhook-service")
        self.assertEqual([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]], [(8443, "webhook-server")])
        dep = self.get(f"/apis/apps/v1/namespaces/{NS}/deployments/azure-wi-webhook-controller-manager")
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertIn("--webhook-port=10250", container["args"])
        self.assertIn("--audience=api://AzureADTokenExchangeUSGov", container["args"])
        self.assertIn("--token-path-layout=legacy", container["args"])
        pdb = self.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/azure-wi-webhook-controller-manager")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        status, body = self.cp.request("POST", f"/api/v1/namespaces/{NS}/pods?dryRun=All", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "webhook-psa-2", "namespace": NS},
            "spec": dep["spec"]["template"]["spec"]})
        self.assertEqual(status, 201, body)

    def test_7_upgrade_changes_the_release_in_place(self):
        self.cp.helm("upgrade", "workload-identity-webhook", str(CHART), "--namespace", NS,
                     "--reuse-values", "--set", "timeoutSeconds=7", "--set", "failurePolicy=Fail",
                     "--set", "logLevel=debug")
        (wh,) = self.get(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MWC}")["webhooks"]
        self.assertEqual((wh["failurePolicy"], wh["timeoutSeconds"]), ("Fail", 7))
        # Values given at install time survive an upgrade that reuses them.
        self.assertEqual(wh["clientConfig"]["service"]["port"], 8443)
        dep = self.get(f"/apis/apps/v1/namespaces/{NS}/deployments/azure-wi-webhook-controller-manager")
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertIn("--log-level=debug", container["args"])
        self.assertIn("--webhook-port=10250", container["args"])
        history = self.cp.helm("history", "workload-identity-webhook", "--namespace", NS, "-o", "json")
        self.assertEqual([r["revision"] for r in json.loads(history)], [1, 2])

    def test_8_uninstall_removes_every_object(self):
        self.cp.helm("uninstall", "workload-identity-webhook", "--namespace", NS, "--wait")
        for path in (f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MWC}",
                     f"/apis/apps/v1/namespaces/{NS}/deployments/azure-wi-webhook-controller-manager",
                     f"/api/v1/namespaces/{NS}/services/azure-wi-webhook-webhook-service",
                     "/apis/rbac.authorization.k8s.io/v1/clusterroles/azure-wi-webhook-manager-role"):
            with self.subTest(gone=path):
                self.assertEqual(self.cp.request("GET", path)[0], 404)

if __name__ == "__main__":
    unittest.main(verbosity=2)
