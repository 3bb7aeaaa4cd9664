#!/usr/bin/env python3
"""Assembles the Dockerfile's image targets (webhook, proxy, proxy-init) without a container daemon.

The Dockerfile is the one definition: this script reads the target stage and takes from it the
image configuration (USER, ENTRYPOINT, CMD, EXPOSE, ENV, WORKDIR, LABEL) and the files (COPY), and
refuses any instruction it does not understand. What it cannot reproduce offline is the base image
(no registry is reachable here): the base is built from Debian packages instead (`apt-get download`
+ `dpkg-deb -x`):

  gcr.io/distroless/cc-debian12  ->  libc6 libgcc-s1 (the libraries the glibc binary links), the
                                     CA bundle of ca-certificates, /etc/passwd and /etc/group
  alpine + `apk add bash iptables ip6tables`  ->  the Debian packages of the same programs

Upstream's Dockerfiles (azure-workload-identity's docker/{webhook,proxy,proxy-init}.Dockerfile, read
from its Go module; scripts/testbed/upstream-images) are read the same way: their final stage is the
image (no --target), their literal base images stand in as Debian packages too (UPSTREAM_BASES), and
`RUN chmod +x FILE` is applied to the copied file.

Every program the image runs is executed in a chroot of the result before the image is written
(a missing library fails here, not in a pod). The output is an OCI image layout tar, one
uncompressed layer, deterministic (sorted entries, mtime 0, uid/gid 0 unless the Dockerfile says
otherwise), that `ctr images import` loads.

usage:
  oci_image.py build --dockerfile Dockerfile --target webhook --context . \\
      --artifact /azure-wi=target/release/azure-wi --debs DIR --name REF --out image.tar
  oci_image.py pause --binary pause --name REF --out pause.tar
  oci_image.py config --dockerfile Dockerfile --target webhook   (prints the derived config, JSON)
"""

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile

# Base images of the Dockerfile -> the Debian packages that stand in for them here.
BASES = {
    "RUNTIME_IMAGE": ["libc6", "libgcc-s1", "ca-certificates"],
    # Alpine's busybox provides /usr/bin/env, which the proxy-init script's `#!` line runs.
    "IPTABLES_IMAGE": ["coreutils", "libacl1", "libattr1", "libselinux1", "libgmp10", "libpcre2-8-0", "libc6"],
}
# Upstream's (azure-workload-identity v1.6.0) literal base images -> Debian packages with what the
# images use from them. Its webhook and proxy are static Go binaries (CGO_ENABLED=0) on a distroless
# base: only the CA bundle and the passwd files matter. Its proxy-init runs `#!/bin/sh` and iptables
# (distroless-iptables is a Debian image with iptables; dash provides /bin/sh).
UPSTREAM_BASES = {
    "mcr.microsoft.com/cbl-mariner/distroless/minimal:2.0-nonroot": ["ca-certificates"],
    "registry.k8s.io/build-image/distroless-iptables:v0.9.3": [
        "dash", "iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0",
        "libnetfilter-conntrack3", "libnfnetlink0", "libc6"],
}
# Programs of those bases run in the chroot check (see CHECKS).
UPSTREAM_BASE_CHECKS = {"registry.k8s.io/build-image/distroless-iptables:v0.9.3": ["sh", "iptables"]}
# Alpine packages the Dockerfile's RUN installs -> Debian packages with the same programs (and the
# libraries they link, listed explicitly; the chroot check below proves the list complete).
APK_TO_DEBIAN = {
    "bash": ["bash", "libtinfo6", "libc6"],
    "iptables": ["iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0",
                 "libnetfilter-conntrack3", "libnfnetlink0", "libc6"],
    "ip6tables": ["iptables"],
}
# Commands run in a chroot of each assembled root file system, per program the image needs.
CHECKS = {
    "sh": [["/bin/sh", "-c", "true"]],
    "bash": [["/bin/bash", "-c", "true"]],
    "iptables": [["/usr/sbin/iptables", "--version"]],
    "ip6tables": [["/usr/sbin/ip6tables", "--version"]],
}


class DockerfileError(Exception):
    pass


def parse_dockerfile(path):
    """Returns {stage name: {"from": str, "instructions": [(KEYWORD, text)]}} (in order; an unnamed
    stage is named by its index, as `docker build` does) and the global ARGs."""
    lines, buf = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (line.lstrip().startswith("#") or not line.strip()):
                continue
            if line.lstrip().startswith("#"):
                continue  # a comment inside a continued instruction
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            lines.append(buf + line)
            buf = ""
    stages, args, current = {}, {}, None
    for line in lines:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            # `--platform=...` selects the build's platform: the image is built for this machine's.
            m = re.fullmatch(r"(?:--[a-z]+=\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            if not m:
                raise DockerfileError(f"FROM not understood: {line!r}")
            current = {"from": m.group(1), "instructions": []}
            stages[m.group(2) or str(len(stages))] = current
        elif current is None:
            if keyword != "ARG":
                raise DockerfileError(f"{keyword} before the first FROM")
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            current["instructions"].append((keyword, rest))
    return stages, args


def exec_form(text, what):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise DockerfileError(f"{what} must be in exec form (a JSON array), got {text!r}")
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise DockerfileError(f"{what} must be a JSON array of strings, got {text!r}")
    return value


def derive(dockerfile, target=None):
    """The image a target stage (default: the last one) describes: base, config, files to copy,
    packages to install, modes to change."""
    stages, _ = parse_dockerfile(dockerfile)
    if target is None:
        target = list(stages)[-1]
    if target not in stages:
        raise DockerfileError(f"no stage {target!r} in {dockerfile} (stages: {', '.join(stages)})")
    stage = stages[target]
    m = re.fullmatch(r"\$\{(\w+)\}", stage["from"])
    if m and m.group(1) in BASES:
        base, debs, checks = m.group(1), BASES[m.group(1)], []
    elif stage["from"] in UPSTREAM_BASES:
        base, debs, checks = stage["from"], UPSTREAM_BASES[stage["from"]], UPSTREAM_BASE_CHECKS.get(stage["from"], [])
    else:
        known = ", ".join([f"${{{b}}}" for b in BASES] + list(UPSTREAM_BASES))
        raise DockerfileError(f"stage {target} starts FROM {stage['from']}; known bases: {known}")
    image = {"base": base, "debs": list(debs), "checks": list(checks), "config": {}, "copies": [],
             "packages": [], "chmods": []}
    config = image["config"]
    workdir = "/"
    for keyword, text in stage["instructions"]:
        if keyword == "USER":
            config["User"] = text
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = exec_form(text, "ENTRYPOINT")
        elif keyword == "CMD":
            config["Cmd"] = exec_form(text, "CMD")
        elif keyword == "WORKDIR":
            config["WorkingDir"] = text
            workdir = os.path.join(workdir, text)
        elif keyword == "EXPOSE":
            for port in text.split():
                config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif keyword in ("ENV", "LABEL"):
            pairs = shlex.split(text)
            if not pairs or any("=" not in p for p in pairs):
                raise DockerfileError(f"{keyword} must use key=value pairs, got {text!r}")
            for pair in pairs:
                key, _, value = pair.partition("=")
                if keyword == "ENV":
                    config.setdefault("Env", []).append(f"{key}={value}")
                else:
                    config.setdefault("Labels", {})[key] = value
        elif keyword == "COPY":
            words = text.split()
            opts = {w[2:].split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--")}
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) != 2 or set(opts) - {"from", "chmod"}:
                raise DockerfileError(f"COPY supports one source, one destination, --from and --chmod: {text!r}")
            # A destination relative to WORKDIR, or a directory (`/bin/`, `.`): the file keeps its name.
            dest = os.path.join(workdir, paths[1])
            if paths[1].endswith("/") or paths[1] in (".", "./"):
                dest = os.path.join(dest, os.path.basename(paths[0]))
            image["copies"].append({"from": opts.get("from"), "src": paths[0], "dest": os.path.normpath(dest),
                                    "chmod": int(opts["chmod"], 8) if "chmod" in opts else None})
        elif keyword == "RUN" and re.fullmatch(r"chmod \+x /\S+", text):
            path = text.split()[2]
            if not any(c["dest"] == path for c in image["copies"]):
                raise DockerfileError(f"stage {target}: RUN {text!r} changes a file no COPY before it wrote")
            image["chmods"].append(path)
        elif keyword == "RUN":
            m = re.fullmatch(r"apk add --no-cache ((?:[a-z0-9-]+\s*)+)", text)
            if not m:
                raise DockerfileError(
                    f"stage {target}: RUN {text!r} is neither `apk add --no-cache PKG...` nor `chmod +x FILE`")
            for pkg in m.group(1).split():
                if pkg not in APK_TO_DEBIAN:
                    raise DockerfileError(f"apk package {pkg} has no Debian equivalent in APK_TO_DEBIAN")
                image["packages"].append(pkg)
        else:
            raise DockerfileError(f"stage {target}: {keyword} is not supported by the daemonless build")
    return image


def debian_packages(image):
    pkgs = list(image["debs"])
    for p in image["packages"]:
        pkgs += APK_TO_DEBIAN[p]
    return sorted(set(pkgs))


_apt_lists_updated = False


def apt_download(pkg, debs_dir):
    """apt-get download PKG; a fresh machine has no package lists yet: update them once, retry."""
    global _apt_lists_updated
    cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg]
    if subprocess.run(cmd, cwd=debs_dir, stdout=subprocess.DEVNULL).returncode == 0:
        return
    if _apt_lists_updated:
        raise SystemExit(f"apt-get download {pkg} failed (see above)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    _apt_lists_updated = True
    subprocess.run(cmd, cwd=debs_dir, check=True, stdout=subprocess.DEVNULL)


def download_debs(pkgs, debs_dir):
    """The .deb of each package in debs_dir (downloaded with apt-get once, then reused)."""
    os.makedirs(debs_dir, exist_ok=True)
    found = {}
    for pkg in pkgs:
        matches = [f for f in os.listdir(debs_dir) if f.startswith(pkg + "_") and f.endswith(".deb")]
        if not matches:
            apt_download(pkg, debs_dir)
            matches = [f for f in os.listdir(debs_dir) if f.startswith(pkg + "_") and f.endswith(".deb")]
        if len(matches) != 1:
            raise SystemExit(f"expected one {pkg}_*.deb in {debs_dir}, found {matches}")
        found[pkg] = os.path.join(debs_dir, matches[0])
    return found


def base_rootfs(root, image, debs_dir):
    for path in sorted(download_debs(debian_packages(image), debs_dir).values()):
        subprocess.run(["dpkg-deb", "-x", path, root], check=True)
    # Debian's packages leave the alternatives to postinst scripts, which do not run here.
    sbin = os.path.join(root, "usr/sbin")
    if os.path.exists(os.path.join(sbin, "xtables-nft-multi")):
        for tool in ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                     "ip6tables-restore"):
            os.symlink("xtables-nft-multi", os.path.join(sbin, tool))
    etc = os.path.join(root, "etc")
    os.makedirs(etc, exist_ok=True)
    # ca-certificates' postinst writes the bundle; here it is the concatenation it would write.
    mozilla = os.path.join(root, "usr/share/ca-certificates/mozilla")
    if os.path.isdir(mozilla):
        os.makedirs(os.path.join(etc, "ssl/certs"), exist_ok=True)
        with open(os.path.join(etc, "ssl/certs/ca-certificates.crt"), "w") as bundle:
            for name in sorted(os.listdir(mozilla)):
                with open(os.path.join(mozilla, name)) as cert:
                    bundle.write(cert.read().strip() + "\n")
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write("root:x:0:\nnonroot:x:65532:\n")
    for d, mode in (("tmp", 0o1777), ("home/nonroot", 0o700), ("root", 0o700)):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, d), mode)
    if image["base"] == "RUNTIME_IMAGE":
        os.chown(os.path.join(root, "home/nonroot"), 65532, 65532)
    # The documentation and the package database are not needed at run time.
    for d in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale"):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def add_copies(root, image, context, artifacts):
    for c in image["copies"]:
        if c["from"] is not None:
            key = f"{c['from']}:{c['src']}"
            if key not in artifacts:
                raise SystemExit(f"COPY --from={c['from']} {c['src']}: pass --artifact {c['src']}=PATH")
            src = artifacts[key]
        else:
            src = os.path.join(context, c["src"])
        dest = os.path.join(root, c["dest"].lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)
        if c["chmod"] is not None:
            os.chmod(dest, c["chmod"])
    for path in image["chmods"]:
        path = os.path.join(root, path.lstrip("/"))
        os.chmod(path, os.stat(path).st_mode | 0o111)


def check_rootfs(root, image):
    for pkg in image["checks"] + image["packages"]:
        for cmd in CHECKS.get(pkg, []):
            r = subprocess.run(["chroot", root] + cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} does not run in the assembled image: {r.stderr.strip()}")
    entry = image["config"].get("Entrypoint", [])
    # A relative entrypoint (upstream's `./bin/init-iptables.sh`) starts from the working directory.
    workdir = image["config"].get("WorkingDir", "/")
    path = os.path.join(root, os.path.join(workdir, entry[0]).lstrip("/")) if entry else None
    if not path or not os.path.exists(path):
        raise SystemExit(f"the image has no entrypoint, or its entrypoint {entry} is not in it")
    with open(path, "rb") as f:
        first = f.readline(200)
    if first.startswith(b"#!"):
        # A script: its interpreter must start in the image (e.g. `/usr/bin/env bash`).
        cmd = first[2:].decode().split() + ["-c", "true"]
        r = subprocess.run(["chroot", root] + cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{entry[0]}'s interpreter ({' '.join(cmd[:-2])}) does not run in the image: {r.stderr.strip()}")


def layer_tar(root):
    """An uncompressed, reproducible tar of root (sorted, mtime 0, numeric owners kept)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, root))
                info.mtime = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def write_layout(out, name, layer, config):
    """Writes an OCI image layout tar holding one image named `name`."""
    blobs = {}

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    layer_digest = blob(layer)
    config_json = json.dumps({
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "scripts/testbed/oci_image.py"}],
    }, sort_keys=True).encode()
    config_digest = blob(config_json)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config_json)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(layer)}],
    }, sort_keys=True).encode()
    manifest_digest = blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
    }, sort_keys=True).encode()
    tmp = out + ".partial"
    with tarfile.open(tmp, "w") as tar:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for digest in sorted(blobs):
            add("blobs/sha256/" + digest.split(":")[1], blobs[digest])
    os.replace(tmp, out)
    return manifest_digest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dockerfile", required=True)
    b.add_argument("--target", help="the stage to build (default: the last one, as docker build)")
    b.add_argument("--context", default=".")
    b.add_argument("--artifact", action="append", default=[], help="PATH_IN_BUILD_STAGE=LOCAL_PATH")
    b.add_argument("--build-stage", default="build")
    b.add_argument("--debs", required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--extra-ca", help="a PEM file appended to /etc/ssl/certs/ca-certificates.crt")
    p = sub.add_parser("pause")
    p.add_argument("--binary", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    c = sub.add_parser("config")
    c.add_argument("--dockerfile", required=True)
    c.add_argument("--target")
    args = parser.parse_args()

    if args.command == "config":
        print(json.dumps(derive(args.dockerfile, args.target), indent=2, sort_keys=True))
        return
    with tempfile.TemporaryDirectory(prefix="azwi-oci-") as tmp:
        root = os.path.join(tmp, "rootfs")
        os.makedirs(root)
        if args.command == "pause":
            shutil.copy2(args.binary, os.path.join(root, "pause"))
            config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
        else:
            image = derive(args.dockerfile, args.target)
            artifacts = {}
            for a in args.artifact:
                src, _, local = a.partition("=")
                artifacts[f"{args.build_stage}:{src}"] = local
            base_rootfs(root, image, args.debs)
            add_copies(root, image, args.context, artifacts)
            if args.extra_ca:
                # A private CA trusted by the image (a test variant; also how a user with a
                # private PKI, e.g. Azure Stack, extends the bundle).
                path = os.path.join(root, "etc/ssl/certs/ca-certificates.crt")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(args.extra_ca) as ca, open(path, "a") as bundle:
                    bundle.write(ca.read().strip() + "\n")
            check_rootfs(root, image)
            config = image["config"]
        digest = write_layout(args.out, args.name, layer_tar(root), config)
    print(f"{args.name} {digest} {args.out}")


if __name__ == "__main__":
    try:
        main()
    except DockerfileError as e:
        sys.exit(f"oci_image.py: {e}")
