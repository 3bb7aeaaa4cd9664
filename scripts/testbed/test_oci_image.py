"""Tests of scripts/testbed/oci_image.py: the images it assembles agree with the Dockerfile.

For each target (webhook, proxy, proxy-init) the Dockerfile's USER, ENTRYPOINT, CMD and EXPOSE
lines are read here independently (plain text, not the assembler's parser) and compared with the
config of the assembled OCI image; the files the Dockerfile copies must be in the image's layer at
the same paths, executable. Instructions the daemonless build cannot reproduce are refused.

usage: python3 scripts/testbed/test_oci_image.py   (run by scripts/test.d/55-node-e2e.sh; downloads
       the Debian packages of the bases into $AZWI_CACHE/testbed/images/debs once)
"""
import importlib.machinery
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOCKERFILE = os.path.join(REPO, "Dockerfile")
SCRIPT = os.path.join(HERE, "oci_image.py")
oci = importlib.machinery.SourceFileLoader("oci_image", SCRIPT).load_module()
DEBS = os.path.join(os.environ.get("AZWI_CACHE", os.path.expanduser("~/.cache/azure-wi")), "testbed/images/debs")
# Any dynamically linked program stands in for the azure-wi binary.
BINARY = "/usr/bin/env"


def dockerfile_stage(target):
    """The lines of a stage, read the simplest way: from its FROM line to the next FROM."""
    lines, inside = [], False
    with open(DOCKERFILE) as f:
        text = f.readlines()
    for line in text:
        if line.startswith("FROM "):
            inside = line.rstrip().endswith(f" AS {target}")
            continue
        if inside and line.strip() and not line.startswith("#"):
            lines.append(line.strip())
    return lines


def read_image(path):
    with tarfile.open(path) as tar:
        blob = lambda d: tar.extractfile("blobs/sha256/" + d.split(":")[1]).read()
        index = json.loads(tar.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layer = tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][0]["digest"])))
        members = {m.name: m for m in layer.getmembers()}
    return index, config, members


class AgreesWithDockerfile(unittest.TestCase):
    def build(self, target):
        out = os.path.join(self.tmp.name, f"{target}.tar")
        subprocess.run(["python3", SCRIPT, "build", "--dockerfile", DOCKERFILE, "--target", target,
                        "--context", REPO, "--artifact", f"/azure-wi={BINARY}", "--debs", DEBS,
                        "--name", f"azwi.test/{target}:t", "--out", out], check=True, stdout=subprocess.DEVNULL)
        return read_image(out)

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_each_target(self):
        for target in ("webhook", "proxy", "proxy-init"):
            with self.subTest(target=target):
                stage = dockerfile_stage(target)
                self.assertTrue(stage, f"no stage {target} in the Dockerfile")
                index, config, members = self.build(target)
                self.assertEqual(index["manifests"][0]["annotations"]["io.containerd.image.name"], f"azwi.test/{target}:t")
                cfg = config["config"]
                for line in stage:
                    keyword, _, rest = line.partition(" ")
                    if keyword == "USER":
                        self.assertEqual(cfg["User"], rest)
                    elif keyword == "ENTRYPOINT":
                        self.assertEqual(cfg["Entrypoint"], json.loads(rest))
                        path = json.loads(rest)[0].lstrip("/")
                        self.assertIn(path, members, f"{target}: entrypoint missing from the layer")
                        self.assertTrue(members[path].mode & 0o111, f"{target}: entrypoint not executable")
                    elif keyword == "CMD":
                        self.assertEqual(cfg["Cmd"], json.loads(rest))
                    elif keyword == "EXPOSE":
                        self.assertEqual(sorted(cfg["ExposedPorts"]), sorted(f"{p}/tcp" for p in rest.split()))
                    elif keyword == "COPY":
                        dest = rest.split()[-1].lstrip("/")
                        self.assertIn(dest, members, f"{target}: {dest} missing")
                        chmod = re.search(r"--chmod=(\d+)", rest)
                        if chmod:
                            self.assertEqual(members[dest].mode & 0o7777, int(chmod.group(1), 8))
                for key in ("Cmd", "ExposedPorts"):
                    if not any(l.startswith({"Cmd": "CMD", "ExposedPorts": "EXPOSE"}[key]) for l in stage):
                        self.assertNotIn(key, cfg, f"{target}: {key} not in the Dockerfile")
                self.assertEqual(members["tmp"].mode & 0o7777, 0o1777)
                self.assertIn("lib/x86_64-linux-gnu/libc.so.6", members)
                if target != "proxy-init":
                    # distroless/cc has the CA bundle; so must the stand-in base.
                    self.assertGreater(members["etc/ssl/certs/ca-certificates.crt"].size, 100_000)
                if target == "proxy-init":
                    for tool in ("bin/bash", "usr/bin/env", "usr/sbin/iptables", "usr/sbin/ip6tables"):
                        self.assertIn(tool, members)


def upstream_module():
    """The directory of upstream's Go module v1.6.0 (its Dockerfiles), downloaded by go if needed."""
    out = subprocess.run(["go", "mod", "download", "-json", "github.com/Azure/azure-workload-identity@v1.6.0"],
                         cwd="/", capture_output=True, text=True,
                         env=dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local"))
    if out.returncode != 0:
        raise AssertionError(f"go mod download of upstream's module failed: {out.stdout}{out.stderr}")
    return json.loads(out.stdout)["Dir"]


class AgreesWithUpstreamDockerfiles(unittest.TestCase):
    """scripts/testbed/upstream-images: upstream's images as its own Dockerfiles describe them."""

    def test_each_image(self):
        src = upstream_module()
        with tempfile.TemporaryDirectory() as tmp:
            for image, binary in (("webhook", "/workspace/manager"), ("proxy", "/workspace/proxy"),
                                  ("proxy-init", None)):
                with self.subTest(image=image):
                    dockerfile = os.path.join(src, "docker", f"{image}.Dockerfile")
                    with open(dockerfile) as f:
                        text = f.read()
                    # The final stage, read the simplest way: after the last FROM line.
                    last = [l.strip() for l in text.split("\nFROM ")[-1].splitlines()[1:]]
                    last = [l for l in last if l and not l.startswith("#")]
                    out = os.path.join(tmp, f"{image}.tar")
                    args = ["python3", SCRIPT, "build", "--dockerfile", dockerfile, "--context", src,
                            "--build-stage", "builder", "--debs", DEBS, "--name", f"azwi.test/up-{image}:t",
                            "--out", out]
                    if binary:
                        args += ["--artifact", f"{binary}={BINARY}"]
                    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
                    _, config, members = read_image(out)
                    cfg = config["config"]
                    for line in last:
                        keyword, _, rest = line.partition(" ")
                        if keyword == "USER":
                            self.assertEqual(cfg["User"], rest)
                        elif keyword == "ENTRYPOINT":
                            entry = json.loads(rest)
                            self.assertEqual(cfg["Entrypoint"], entry)
                            path = os.path.normpath(entry[0]).lstrip("/")
                            self.assertTrue(members[path].mode & 0o111, f"{image}: entrypoint not executable")
                        elif keyword == "WORKDIR":
                            self.assertEqual(cfg["WorkingDir"], rest)
                    if image == "proxy-init":
                        # Its script runs with /bin/sh and iptables (distroless-iptables has both).
                        for tool in ("bin/sh", "usr/sbin/iptables", "bin/init-iptables.sh"):
                            self.assertIn(tool, members)
                    else:
                        self.assertGreater(members["etc/ssl/certs/ca-certificates.crt"].size, 100_000)


class Refusals(unittest.TestCase):
    def derive(self, text, target="t"):
        with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
            f.write(text)
        try:
            return oci.derive(f.name, target)
        finally:
            os.unlink(f.name)

    def test_unknown_instruction_or_package_or_base(self):
        base = "ARG RUNTIME_IMAGE=x\nARG IPTABLES_IMAGE=y\n"
        cases = [
            (base + "FROM ${IPTABLES_IMAGE} AS t\nRUN apt-get install curl\n", "RUN"),
            (base + "FROM ${IPTABLES_IMAGE} AS t\nRUN apk add --no-cache curl\n", "curl"),
            (base + "FROM debian AS t\nUSER 1\n", "FROM debian"),
            (base + "FROM ${RUNTIME_IMAGE} AS t\nENTRYPOINT /bin/x\n", "exec form"),
            (base + "FROM ${RUNTIME_IMAGE} AS t\nHEALTHCHECK CMD x\n", "HEALTHCHECK"),
        ]
        for text, needle in cases:
            with self.subTest(needle=needle):
                with self.assertRaises(oci.DockerfileError) as e:
                    self.derive(text)
                self.assertIn(needle, str(e.exception))

    def test_labels_and_env_are_taken(self):
        image = self.derive("ARG RUNTIME_IMAGE=x\nFROM ${RUNTIME_IMAGE} AS t\nLABEL a=b \"c=d e\"\nENV K=v\n")
        self.assertEqual(image["config"]["Labels"], {"a": "b", "c": "d e"})
        self.assertEqual(image["config"]["Env"], ["K=v"])


class Pause(unittest.TestCase):
    def test_static_and_stops_on_term(self):
        with tempfile.TemporaryDirectory() as tmp:
            binary = os.path.join(tmp, "pause")
            subprocess.run(["gcc", "-static", "-Os", "-o", binary, os.path.join(HERE, "pause.c")], check=True)
            ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
            self.assertIn("not a dynamic executable", ldd.stdout + ldd.stderr)
            p = subprocess.Popen([binary])
            with self.assertRaises(subprocess.TimeoutExpired):
                p.wait(timeout=0.3)
            p.terminate()
            self.assertEqual(p.wait(timeout=5), 0)
            out = os.path.join(tmp, "pause.tar")
            subprocess.run(["python3", SCRIPT, "pause", "--binary", binary, "--name", "azwi.test/pause:t",
                            "--out", out], check=True, stdout=subprocess.DEVNULL)
            _, config, members = read_image(out)
            self.assertEqual(config["config"]["Entrypoint"], ["/pause"])
            self.assertIn("pause", members)


if __name__ == "__main__":
    unittest.main()
