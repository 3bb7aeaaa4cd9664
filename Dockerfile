# syntax=docker/dockerfile:1.7
#
# Images of azure-wi. One build stage compiles the azure-wi binary (glibc, Debian 12); three small
# images take it:
#
#   docker build --target webhook    -t <registry>/azure-wi/webhook:v0.1.0 .
#   docker build --target proxy      -t <registry>/azure-wi/proxy:v0.1.0 .
#   docker build --target proxy-init -t <registry>/azure-wi/proxy-init:v0.1.0 .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target webhook ... (the Rust
# image builds for its own architecture).
#
# glibc, not a static musl binary: the images run the build that BENCHMARKS.md measures. A musl
# build of the same source spent 3.4x the CPU per admission (musl's allocator;
# bench/results/history.md section 7), and with mimalloc instead it held more memory at idle.
#
# Reproducible: dependencies come from Cargo.lock (--locked). The base images are referenced by tag
# here because digests cannot be resolved on the machine that wrote this file; release builds pin
# them by digest, e.g. `FROM rust:1.95-bookworm@sha256:<digest>` (`docker buildx imagetools
# inspect rust:1.95-bookworm` prints it). The ARGs below take a tag or a tag@digest.
ARG RUST_IMAGE=rust:1.95-bookworm
# glibc and libgcc of Debian 12, as in the build image; no shell, no package manager.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG IPTABLES_IMAGE=alpine:3.22

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
# ring compiles a little C and assembly with the image's gcc.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/release/build \
 && cp target/release/azure-wi /azure-wi \
 && /azure-wi --version

# ---------------------------------------------------------------------------------------------
# The admission webhook: `azure-wi webhook`. No shell, no package manager, UID 65532.
FROM ${RUNTIME_IMAGE} AS webhook
COPY --from=build /azure-wi /azure-wi
USER 65532:65532
EXPOSE 9443 9440 8095
ENTRYPOINT ["/azure-wi"]
CMD ["webhook"]

# ---------------------------------------------------------------------------------------------
# The token proxy sidecar. The binary is installed as /proxy: invoked under that name it runs
# `azure-wi proxy`, so the container spec upstream's webhook injects (args --proxy-port=...,
# postStart `/proxy --probe`) works unchanged. UID 1501 is the PROXY_UID the iptables rules exempt.
FROM ${RUNTIME_IMAGE} AS proxy
COPY --from=build /azure-wi /proxy
USER 1501:1501
ENTRYPOINT ["/proxy"]

# ---------------------------------------------------------------------------------------------
# The init container that redirects the pod's IMDS traffic to the proxy. It needs iptables, so it is
# the one image with a shell; the injected securityContext runs it as root with NET_ADMIN.
FROM ${IPTABLES_IMAGE} AS proxy-init
# hadolint ignore=DL3018
RUN apk add --no-cache bash iptables ip6tables
COPY --chmod=0755 init/init-iptables.sh /bin/init-iptables.sh
USER 65532:65532
ENTRYPOINT ["/bin/init-iptables.sh"]
