"""Tests of the Helm chart, the plain manifest, the Dockerfile and the iptables init script.

Run by scripts/test.d/30-chart.sh, which provides HELM (a Helm binary built by scripts/tools/helm),
HADOLINT and SHELLCHECK. Every rendered object is parsed and checked field by field.
"""

import os
import re
import subprocess
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "azure-wi-webhook"
HELM = os.environ["HELM"]
HADOLINT = os.environ["HADOLINT"]
SHELLCHECK = os.environ["SHELLCHECK"]
NS = "azure-workload-identity-system"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SELECTOR_LABELS = {
    "app": "workload-identity-webhook",
    "azure-workload-identity.io/system": "true",
    "chart": "workload-identity-webhook",
    "release": "workload-identity-webhook",
}
MWC = "azure-wi-webhook-mutating-webhook-configuration"
SECRET = "azure-wi-webhook-server-cert"


def helm(*args, check=True):
    proc = subprocess.run([HELM, *args], capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def template_args(sets, tenant=True, values_file=None):
    args = ["template", "workload-identity-webhook", str(CHART), "--namespace", NS]
    if tenant:
        args += ["--set", f"azureTenantID={TENANT}"]
    if values_file:
        args += ["-f", str(values_file)]
    for s in sets:
        args += ["--set", s]
    return args


def render(*sets, values_file=None):
    """Renders the chart; returns {(kind, name): object}."""
    objects = {}
    for d in yaml.safe_load_all(helm(*template_args(sets, values_file=values_file)).stdout):
        if d:
            key = (d["kind"], d["metadata"]["name"])
            assert key not in objects, f"duplicate object {key}"
            objects[key] = d
    return objects


def render_error(*sets, tenant=True):
    """Renders the chart expecting a failure; returns helm's error output."""
    proc = helm(*template_args(sets, tenant=tenant), check=False)
    assert proc.returncode != 0, f"rendering with {sets} should fail but succeeded"
    return proc.stderr


def manager(objects):
    dep = objects[("Deployment", "azure-wi-webhook-controller-manager")]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, container


def args_of(container):
    return container["args"]


class Lint(unittest.TestCase):
    def test_lint_strict_is_clean(self):
        proc = helm("lint", "--strict", str(CHART), "--set", f"azureTenantID={TENANT}")
        self.assertIn("1 chart(s) linted, 0 chart(s) failed", proc.stdout)
        self.assertNotIn("[WARNING]", proc.stdout)

    def test_lint_strict_with_every_option_is_clean(self):
        proc = helm("lint", "--strict", str(CHART), "-f", str(ROOT / "tests/chart/non-default-values.yaml"))
        self.assertIn("0 chart(s) failed", proc.stdout)
        self.assertNotIn("[WARNING]", proc.stdout)


class Validation(unittest.TestCase):
    def test_missing_tenant_fails_with_the_fix(self):
        err = render_error(tenant=False)
        self.assertIn("azureTenantID is required", err)
        self.assertIn("az account show --query tenantId", err)

    def test_typo_in_a_top_level_value_is_rejected_by_name(self):
        err = render_error("azureTenantId=abc")
        self.assertIn("azureTenantId", err)
        self.assertIn("additional properties", err)

    def test_typo_in_a_nested_value_is_rejected_by_name(self):
        err = render_error("service.targetport=8443")
        self.assertIn("targetport", err)

    def test_bad_enum_values_are_rejected(self):
        for bad in ["failurePolicy=Sometimes", "tokenPathLayout=v2", "nativeSidecar=maybe", "tlsMinVersion=1.1",
                    "azureEnvironment=AzureMoonCloud", "timeoutSeconds=31", "service.port=70000"]:
            with self.subTest(bad=bad):
                key = bad.split("=")[0].split(".")[-1]
                self.assertIn(key, render_error(bad))

    def test_every_log_level_and_metrics_backend_the_binary_accepts_renders(self):
        # The webhook's --log-level takes these in any letter case (src/webhook/config.rs), and
        # --metrics-backend takes prometheus in any letter case, as upstream.
        for level in ["", "error", "ERROR", "warning", "WARN", "Info", "debug", "trace", "all"]:
            with self.subTest(level=level):
                _, container = manager(render(f"logLevel={level}"))
                self.assertIn(f"--log-level={level}", args_of(container))
        _, container = manager(render("metricsBackend=Prometheus"))
        self.assertIn("--metrics-backend=Prometheus", args_of(container))
        for bad in ["logLevel=loud", "logLevel=fatal", "metricsBackend=statsd"]:
            with self.subTest(bad=bad):
                self.assertIn(bad.split("=")[0], render_error(bad))

    def test_cloud_names_are_case_insensitive(self):
        cm = render("azureEnvironment=azureusgovernmentcloud")[("ConfigMap", "azure-wi-webhook-config")]
        self.assertEqual(cm["data"]["AZURE_ENVIRONMENT"], "azureusgovernmentcloud")

    def test_reserved_names_are_refused_with_the_fix(self):
        self.assertIn("POD_NAMESPACE is set by the chart", render_error("extraEnv[0].name=POD_NAMESPACE",
                                                                          "extraEnv[0].value=x"))
        self.assertIn('"cert" is used by the chart', render_error("extraVolumes[0].name=cert",
                                                                   "extraVolumes[0].emptyDir.medium=Memory"))
        self.assertIn('"cert" is used by the chart', render_error("extraVolumeMounts[0].name=cert",
                                                                   "extraVolumeMounts[0].mountPath=/x"))

    def test_upstreams_image_values_are_refused_with_what_to_set(self):
        # Upstream's values file as it is, and mirrors of upstream's image path.
        for repo in ["mcr.microsoft.com/oss/azure/workload-identity/webhook",
                     "myregistry.azurecr.io/oss/azure/workload-identity/webhook",
                     "registry.example/workload-identity/webhook"]:
            with self.subTest(repo=repo):
                err = render_error(f"image.repository={repo}", "image.release=v1.6.0")
                self.assertIn(f'image.repository "{repo}" is upstream', err)
                self.assertIn("Set image.repository to ghcr.io/azure-wi/webhook", err)
                self.assertIn("remove image.release", err)
        # Only the repository changed: upstream's release number is not one of our tags.
        err = render_error("image.release=v1.6.0")
        self.assertIn('image.release "v1.6.0" is not a release of this chart', err)
        self.assertIn("Remove image.release", err)
        # Our own tags, a private copy of our image and non-version tags render.
        for sets in [("image.release=v0.1.1",), ("image.repository=registry.example/azure-wi/webhook",),
                     ("image.release=latest",)]:
            with self.subTest(sets=sets):
                render(*sets)

    def test_half_configured_custom_token_endpoint_is_refused(self):
        self.assertIn("audience is empty", render_error("customTokenEndpoint.annotationSuffix=identity-binding"))
        self.assertIn("annotationSuffix is empty",
                      render_error("customTokenEndpoint.audience=api://AKSIdentityBinding"))


class Defaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = render()

    def test_objects_are_upstreams(self):
        self.assertEqual(
            sorted(self.objects),
            sorted([
                ("ClusterRole", "azure-wi-webhook-manager-role"),
                ("ClusterRoleBinding", "azure-wi-webhook-manager-rolebinding"),
                ("ConfigMap", "azure-wi-webhook-config"),
                ("Deployment", "azure-wi-webhook-controller-manager"),
                ("MutatingWebhookConfiguration", MWC),
                ("PodDisruptionBudget", "azure-wi-webhook-controller-manager"),
                ("Role", "azure-wi-webhook-manager-role"),
                ("RoleBinding", "azure-wi-webhook-manager-rolebinding"),
                ("Secret", SECRET),
                ("Service", "azure-wi-webhook-webhook-service"),
                ("ServiceAccount", "azure-wi-webhook-admin"),
            ]),
        )

    def test_every_object_has_upstreams_labels_and_namespace(self):
        for (kind, name), obj in self.objects.items():
            with self.subTest(kind=kind, name=name):
                labels = obj["metadata"]["labels"]
                for k, v in SELECTOR_LABELS.items():
                    self.assertEqual(labels.get(k), v)
                cluster_scoped = kind in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration")
                self.assertEqual(obj["metadata"].get("namespace"), None if cluster_scoped else NS)

    def test_configmap_carries_tenant_cloud_and_proxy_images(self):
        cm = self.objects[("ConfigMap", "azure-wi-webhook-config")]
        self.assertEqual(cm["data"], {
            "AZURE_ENVIRONMENT": "AzurePublicCloud",
            "AZURE_TENANT_ID": TENANT,
            "PROXY_IMAGE": "ghcr.io/azure-wi/proxy:v0.1.0",
            "PROXY_INIT_IMAGE": "ghcr.io/azure-wi/proxy-init:v0.1.0",
        })

    def test_deployment(self):
        dep, c = manager(self.objects)
        spec = dep["spec"]
        self.assertEqual(spec["replicas"], 2)
        self.assertEqual(spec["revisionHistoryLimit"], 10)
        self.assertEqual(spec["selector"]["matchLabels"], SELECTOR_LABELS)
        pod = spec["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "azure-wi-webhook-admin")
        self.assertEqual(pod["priorityClassName"], "system-cluster-critical")
        self.assertEqual(pod["nodeSelector"], {"kubernetes.io/os": "linux"})
        self.assertEqual(c["image"], "ghcr.io/azure-wi/webhook:v0.1.0")
        # Our binary by path: any other image (upstream's runs /manager) fails to start.
        self.assertEqual(c["command"], ["/azure-wi"])
        self.assertEqual(args_of(c), [
            "webhook", "--log-level=info", "--metrics-addr=:8095", "--metrics-backend=prometheus",
            "--health-addr=:9440",
            "--webhook-cert-dir=/certs", "--tls-min-version=1.3", "--token-path-layout=v1.6",
            "--native-sidecar=auto",
        ])
        self.assertEqual(c["envFrom"], [{"configMapRef": {"name": "azure-wi-webhook-config"}}])
        self.assertEqual(c["env"], [{"name": "POD_NAMESPACE", "valueFrom": {
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"webhook-server": 9443, "healthz": 9440, "metrics": 8095})
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "healthz"})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "healthz"})
        self.assertEqual(c["volumeMounts"], [{"name": "cert", "mountPath": "/certs", "readOnly": True}])
        self.assertEqual(pod["volumes"], [{"name": "cert", "secret": {"secretName": SECRET, "defaultMode": 420}}])
        # No CPU limit (throttling turns into admission timeouts); memory is capped.
        self.assertEqual(c["resources"], {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "20Mi"}})

    def test_security_context_is_restricted(self):
        dep, c = manager(self.objects)
        sc = c["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertEqual(sc["runAsUser"], 65532)
        self.assertEqual(sc["runAsGroup"], 65532)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["privileged"], False)
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
        psc = dep["spec"]["template"]["spec"]["securityContext"]
        self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertIs(psc["runAsNonRoot"], True)

    def test_service_maps_443_to_the_webhook_port(self):
        svc = self.objects[("Service", "azure-wi-webhook-webhook-service")]
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        # Unnamed, as upstream's: a renamed port has no endpoints until its EndpointSlice is redone.
        self.assertEqual(svc["spec"]["ports"], [{"port": 443, "targetPort": "webhook-server", "protocol": "TCP"}])
        self.assertEqual(svc["spec"]["selector"], SELECTOR_LABELS)

    def test_mutating_webhook_configuration(self):
        mwc = self.objects[("MutatingWebhookConfiguration", MWC)]
        self.assertNotIn("annotations", mwc["metadata"])
        (wh,) = mwc["webhooks"]
        self.assertNotIn("caBundle", wh["clientConfig"])  # written at run time, never by the chart
        self.assertEqual(wh, {
            "name": "mutation.azure-workload-identity.io",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": NS,
                                         "path": "/mutate-v1-pod", "port": 443}},
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "IfNeeded",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "namespaceSelector": {},
            "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        })

    def test_pdb(self):
        pdb = self.objects[("PodDisruptionBudget", "azure-wi-webhook-controller-manager")]
        self.assertEqual(pdb["spec"], {"minAvailable": 1, "selector": {"matchLabels": SELECTOR_LABELS}})

    def test_pdb_max_unavailable_zero_renders_min_available_as_upstream(self):
        # maxUnavailable 0 would block every node drain; upstream's template skips it.
        for zero in ["podDisruptionBudget.maxUnavailable=0", "podDisruptionBudget.maxUnavailable=0%"]:
            with self.subTest(value=zero):
                pdb = render(zero)[("PodDisruptionBudget", "azure-wi-webhook-controller-manager")]
                self.assertEqual(pdb["spec"], {"minAvailable": 1, "selector": {"matchLabels": SELECTOR_LABELS}})

    def test_pre_created_secret_is_empty(self):
        secret = self.objects[("Secret", SECRET)]
        self.assertNotIn("data", secret)
        self.assertNotIn("stringData", secret)

    def test_rbac_is_exactly_the_minimal_set(self):
        self.assertEqual(self.objects[("ClusterRole", "azure-wi-webhook-manager-role")]["rules"], [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": [MWC], "verbs": ["get", "patch"]},
        ])
        self.assertEqual(self.objects[("Role", "azure-wi-webhook-manager-role")]["rules"], [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET],
             "verbs": ["get", "list", "watch", "update"]},
            # A deleted Secret is recreated; create cannot be restricted by name.
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        ])
        for kind in ("ClusterRoleBinding", "RoleBinding"):
            binding = self.objects[(kind, "azure-wi-webhook-manager-rolebinding")]
            self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "azure-wi-webhook-admin",
                                                    "namespace": NS}])
            self.assertEqual(binding["roleRef"]["name"], "azure-wi-webhook-manager-role")
            self.assertEqual(binding["roleRef"]["kind"], kind.replace("Binding", ""))

    def test_no_wildcards_anywhere_in_rbac(self):
        for key in [("ClusterRole", "azure-wi-webhook-manager-role"), ("Role", "azure-wi-webhook-manager-role")]:
            for rule in self.objects[key]["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    self.assertNotIn("*", rule.get(field, []))


class NonDefaults(unittest.TestCase):
    """Every fix over upstream's chart, from tests/chart/non-default-values.yaml."""

    @classmethod
    def setUpClass(cls):
        cls.objects = render(values_file=ROOT / "tests/chart/non-default-values.yaml")

    def test_service_port_and_target_port_are_honoured(self):
        svc = self.objects[("Service", "azure-wi-webhook-webhook-service")]
        self.assertEqual(svc["spec"]["ports"][0]["port"], 8443)
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "webhook-server")
        _, c = manager(self.objects)
        self.assertIn({"name": "webhook-server", "containerPort": 10250, "protocol": "TCP"}, c["ports"])
        self.assertIn("--webhook-port=10250", args_of(c))
        (wh,) = self.objects[("MutatingWebhookConfiguration", MWC)]["webhooks"]
        self.assertEqual(wh["clientConfig"]["service"]["port"], 8443)

    def test_webhook_settings(self):
        (wh,) = self.objects[("MutatingWebhookConfiguration", MWC)]["webhooks"]
        self.assertEqual(wh["failurePolicy"], "Ignore")
        self.assertEqual(wh["timeoutSeconds"], 5)
        self.assertEqual(wh["namespaceSelector"], {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]})
        # Extended, but the opt-in label stays required even when a values file tries to change it.
        self.assertEqual(wh["objectSelector"], {
            "matchLabels": {"azure.workload.identity/use": "true", "team": "payments"},
            "matchExpressions": [{"key": "azwi-skip", "operator": "DoesNotExist"}],
        })

    def test_flags(self):
        _, c = manager(self.objects)
        args = args_of(c)
        for expected in ["--audience=api://AzureADTokenExchangeUSGov", "--token-path-layout=legacy",
                         "--native-sidecar=false", "--tls-min-version=1.2", "--log-level=debug",
                         "--metrics-addr=:9095", "--health-addr=:9441", "--disable-cert-rotation",
                         "--custom-token-endpoint-annotation-suffix=identity-binding",
                         "--custom-token-endpoint-audience=api://AKSIdentityBinding"]:
            self.assertIn(expected, args)
        self.assertEqual(len(args), len(set(args)))
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["metrics"], 9095)
        self.assertEqual(ports["healthz"], 9441)

    def test_configmap_has_custom_endpoint_and_proxy_images(self):
        data = self.objects[("ConfigMap", "azure-wi-webhook-config")]["data"]
        self.assertEqual(data["PROXY_IMAGE"], "registry.example/azwi/proxy:v9")
        self.assertEqual(data["PROXY_INIT_IMAGE"], "registry.example/azwi/proxy-init:v0.1.0")
        self.assertEqual(data["AZURE_KUBERNETES_TOKEN_PROXY"], "https://kubernetes.default.svc")
        self.assertEqual(data["AZURE_KUBERNETES_CA_CONFIGMAP_NAME"], "kube-root-ca.crt")
        self.assertEqual(data["AZURE_ENVIRONMENT"], "AzureUSGovernmentCloud")
        self.assertNotIn("AZURE_KUBERNETES_CA_DATA", data)

    def test_cert_manager_replaces_self_managed_certificates(self):
        objs = self.objects
        self.assertNotIn(("Secret", SECRET), objs)
        self.assertNotIn(("Role", "azure-wi-webhook-manager-role"), objs)
        self.assertNotIn(("RoleBinding", "azure-wi-webhook-manager-rolebinding"), objs)
        self.assertEqual(objs[("ClusterRole", "azure-wi-webhook-manager-role")]["rules"], [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}])
        issuer = objs[("Issuer", "azure-wi-webhook-selfsigned-issuer")]
        self.assertEqual(issuer["spec"], {"selfSigned": {}})
        cert = objs[("Certificate", "azure-wi-webhook-serving-cert")]["spec"]
        self.assertEqual(cert["secretName"], SECRET)
        self.assertEqual(cert["dnsNames"], [f"azure-wi-webhook-webhook-service.{NS}.svc",
                                            f"azure-wi-webhook-webhook-service.{NS}.svc.cluster.local"])
        self.assertEqual(cert["issuerRef"], {"name": "azure-wi-webhook-selfsigned-issuer", "kind": "Issuer",
                                             "group": "cert-manager.io"})
        mwc = objs[("MutatingWebhookConfiguration", MWC)]
        self.assertEqual(mwc["metadata"]["annotations"], {
            "cert-manager.io/inject-ca-from": f"{NS}/azure-wi-webhook-serving-cert",
            "example.com/owner": "platform",
        })

    def test_cert_manager_with_an_existing_issuer_creates_none(self):
        objs = render("certManager.enabled=true", "certManager.issuerRef.name=corp-ca",
                      "certManager.issuerRef.kind=ClusterIssuer")
        self.assertFalse([k for k in objs if k[0] == "Issuer"])
        cert = objs[("Certificate", "azure-wi-webhook-serving-cert")]["spec"]
        self.assertEqual(cert["issuerRef"], {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})

    def test_service_monitor(self):
        sm = self.objects[("ServiceMonitor", "azure-wi-webhook")]
        self.assertEqual(sm["metadata"]["labels"]["release"], "workload-identity-webhook")
        self.assertEqual(sm["metadata"]["labels"]["prometheus"], "main")
        (ep,) = sm["spec"]["endpoints"]
        self.assertEqual((ep["port"], ep["path"], ep["interval"]), ("metrics", "/metrics", "15s"))
        svc = self.objects[("Service", "azure-wi-webhook-metrics")]
        self.assertEqual(svc["spec"]["ports"][0]["port"], 9095)
        for k, v in sm["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(svc["metadata"]["labels"][k], v)

    def test_pass_throughs(self):
        dep, c = manager(self.objects)
        pod = dep["spec"]["template"]
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertEqual(dep["spec"]["revisionHistoryLimit"], 2)
        self.assertEqual(c["image"], "registry.example/azwi/webhook@sha256:" + "a" * 64)
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertEqual(pod["metadata"]["labels"]["team"], "payments")
        self.assertEqual(pod["metadata"]["annotations"]["example.com/scrape"], "false")
        self.assertIn("checksum/config", pod["metadata"]["annotations"])
        self.assertNotIn("priorityClassName", pod["spec"])
        self.assertEqual(pod["spec"]["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual(pod["spec"]["tolerations"][0]["key"], "CriticalAddonsOnly")
        self.assertEqual(pod["spec"]["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone")
        self.assertIn("podAntiAffinity", pod["spec"]["affinity"])
        self.assertIn({"name": "AZURE_ENVIRONMENT_FILEPATH", "value": "/etc/azure/stack.json"}, c["env"])
        self.assertIn({"name": "stack", "mountPath": "/etc/azure", "readOnly": True}, c["volumeMounts"])
        self.assertIn({"name": "stack", "configMap": {"name": "azure-stack"}}, pod["spec"]["volumes"])
        self.assertEqual(c["resources"], {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "32Mi"}})
        sa = self.objects[("ServiceAccount", "azure-wi-webhook-admin")]
        self.assertEqual(sa["imagePullSecrets"], [{"name": "regcred"}])
        pdb = self.objects[("PodDisruptionBudget", "azure-wi-webhook-controller-manager")]
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", pdb["spec"])

    def test_name_override_changes_the_app_label(self):
        objs = render("nameOverride=wi")
        _, c = manager(objs)
        dep = objs[("Deployment", "azure-wi-webhook-controller-manager")]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"]["app"], "wi")

    def test_native_sidecar_accepts_a_yaml_boolean(self):
        _, c = manager(render("nativeSidecar=true"))
        self.assertIn("--native-sidecar=true", args_of(c))


class Documentation(unittest.TestCase):
    def leaf_keys(self, node, prefix=""):
        keys = []
        for k, v in node.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and v and k not in ("nodeSelector", "resources"):
                keys += self.leaf_keys(v, path + ".")
            else:
                keys.append(path)
        return keys

    def test_every_value_is_in_the_readme_table_and_the_schema(self):
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        readme = (CHART / "README.md").read_text()
        table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
        schema = (CHART / "values.schema.json").read_text()
        keys = self.leaf_keys(values) + ["podDisruptionBudget.maxUnavailable"]
        self.assertGreater(len(keys), 40)
        for key in keys:
            with self.subTest(key=key):
                self.assertIn(key, table_keys, f"{key} is missing from the README's table of values")
                self.assertIn(f'"{key.split(".")[-1]}"', schema, f"{key} is missing from values.schema.json")
        self.assertEqual(sorted(table_keys - set(keys)), [], "the README documents values that do not exist")


class Deploy(unittest.TestCase):
    def test_deploy_manifest_is_up_to_date(self):
        proc = subprocess.run([str(ROOT / "scripts/render-deploy"), "--check"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_deploy_manifest_has_a_restricted_namespace_and_the_tenant_placeholder(self):
        docs = [d for d in yaml.safe_load_all((ROOT / "deploy/azure-wi-webhook.yaml").read_text()) if d]
        self.assertEqual(docs[0]["kind"], "Namespace")
        labels = docs[0]["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            self.assertEqual(labels[f"pod-security.kubernetes.io/{mode}"], "restricted")
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        self.assertEqual(cm["data"]["AZURE_TENANT_ID"], "${AZURE_TENANT_ID}")
        for d in docs[1:]:
            if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"):
                self.assertEqual(d["metadata"]["namespace"], NS)


class Images(unittest.TestCase):
    def test_dockerfile_passes_hadolint(self):
        proc = subprocess.run([HADOLINT, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_dockerfile_targets(self):
        text = (ROOT / "Dockerfile").read_text()
        stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M)
        self.assertEqual(stages, ["build", "webhook", "proxy", "proxy-init"])
        # The binary comes from the release build script, which builds from Cargo.lock (--locked).
        build_step = re.search(r"^RUN --mount.*?(?=\n\S)", text, re.M | re.S).group(0)
        self.assertIn("scripts/release/build", build_step)
        self.assertIn("cargo build --release --locked", (ROOT / "scripts/release/build").read_text())
        self.assertRegex(text, r"COPY --from=build /azure-wi /proxy\n")
        self.assertRegex(text, r"COPY --from=build /azure-wi /azure-wi\n")
        for stage in ("webhook", "proxy"):
            body = text.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
            self.assertNotIn("RUN ", body, f"the {stage} image must not need a shell")
            self.assertRegex(body, r"USER \d+:\d+")
        self.assertIn("USER 1501:1501", text)

    def test_dockerignore_excludes_the_build_directory(self):
        self.assertIn("target/", (ROOT / ".dockerignore").read_text().split())

    def test_shell_scripts_pass_shellcheck(self):
        scripts = ["init/init-iptables.sh", "scripts/tools/helm", "scripts/tools/actionlint", "scripts/render-deploy",
                   "scripts/test.d/30-chart.sh", "scripts/test.d/31-workflows.sh",
                   "scripts/reliability/lib.sh", "scripts/reliability/cert-swap", "scripts/reliability/sigterm",
                   "scripts/reliability/hostile-memory"]
        proc = subprocess.run([SHELLCHECK, *scripts], capture_output=True, text=True, cwd=ROOT)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)


class IptablesRules(unittest.TestCase):
    """The init script against the real iptables, in a private network namespace."""

    def run_in_netns(self, script, env=None):
        proc = subprocess.run(["unshare", "--net", "bash", "-c", script], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, **(env or {})})
        return proc

    def rules(self, output, family):
        return [line for line in output.splitlines() if line.startswith(("-N AZWI", "-A"))
                and f"#{family}" not in line]

    def test_rules_are_upstreams_and_idempotent(self):
        proc = self.run_in_netns("./init/init-iptables.sh >/dev/null && ./init/init-iptables.sh >/dev/null && "
                                 "iptables -t nat -S && echo '#ipv6' && ip6tables -t nat -S",
                                 {"PROXY_PORT": "8123"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        v4, v6 = proc.stdout.split("#ipv6")
        self.assertEqual(self.rules(v4, 4), [
            "-N AZWI_PROXY_OUTPUT",
            "-N AZWI_PROXY_REDIRECT",
            "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j AZWI_PROXY_OUTPUT",
            "-A AZWI_PROXY_OUTPUT -m owner --uid-owner 1501 -j ACCEPT",
            "-A AZWI_PROXY_OUTPUT -j AZWI_PROXY_REDIRECT",
            "-A AZWI_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 8123",
        ])
        self.assertEqual(self.rules(v6, 6), [], "no IPv6 rules unless METADATA_IPV6 is set")

    def test_ipv6_rules(self):
        proc = self.run_in_netns("./init/init-iptables.sh >/dev/null && ip6tables -t nat -S",
                                 {"METADATA_IPV6": "fd00:ec2::254", "PROXY_UID": "2000"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.rules(proc.stdout, 6), [
            "-N AZWI_PROXY_OUTPUT",
            "-N AZWI_PROXY_REDIRECT",
            "-A OUTPUT -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -j AZWI_PROXY_OUTPUT",
            "-A AZWI_PROXY_OUTPUT -m owner --uid-owner 2000 -j ACCEPT",
            "-A AZWI_PROXY_OUTPUT -j AZWI_PROXY_REDIRECT",
            "-A AZWI_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 8000",
        ])

    def test_bad_input_is_refused_before_any_rule(self):
        for env, message in [({"PROXY_PORT": "http"}, "PROXY_PORT must be a port number"),
                             ({"METADATA_PORT": "0"}, "METADATA_PORT must be a port number"),
                             ({"PROXY_UID": "proxy"}, "PROXY_UID must be a numeric UID"),
                             ({"METADATA_IP": "imds"}, "METADATA_IP must be an IPv4 address")]:
            with self.subTest(env=env):
                proc = self.run_in_netns("./init/init-iptables.sh; rc=$?; iptables -t nat -S; exit $rc", env)
                self.assertEqual(proc.returncode, 1)
                self.assertIn(message, proc.stderr)
                self.assertNotIn("AZWI", proc.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
