# syntax=docker/dockerfile:1.7
#
# Images of azure-wi. One build stage compiles the single static (musl) binary; three small images
# take it:
#
#   docker build --target webhook    -t <registry>/azure-wi/webhook:v0.1.0 .
#   docker build --target proxy      -t <registry>/azure-wi/proxy:v0.1.0 .
#   docker build --target proxy-init -t <registry>/azure-wi/proxy-init:v0.1.0 .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target webhook ... (the Alpine
# Rust image builds for its own architecture, and musl binaries are static by default).
#
# Reproducible: dependencies come from Cargo.lock (--locked). The base images are referenced by tag
# here because digests cannot be resolved on the machine that wrote this file; release builds pin
# them by digest, e.g. `FROM rust:1.95-alpine@sha256:<digest>` (`docker buildx imagetools
# inspect rust:1.95-alpine` prints it). The ARGs below take a tag or a tag@digest.
ARG RUST_IMAGE=rust:1.95-alpine
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG IPTABLES_IMAGE=alpine:3.22

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
# ring compiles a little C and assembly: it needs a C compiler and the musl headers. On Alpine the
# Rust target is *-linux-musl, whose binaries are static by default (the runtime images have no libc).
# scripts/release/build lays the code out by the link-order profile (the functions start-up and
# admissions run, placed together: fewer resident pages); it needs python3, binutils (nm, c++filt)
# and lld, whose --symbol-ordering-file it uses.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc python3 binutils lld bash
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/release/build -- -C link-arg=-fuse-ld=lld \
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
