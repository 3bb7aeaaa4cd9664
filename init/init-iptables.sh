#!/usr/bin/env bash
# Redirects the pod's traffic for the Azure instance metadata service (IMDS) to the azure-wi proxy
# sidecar. Runs once, as the `azwi-proxy-init` init container, as root with NET_ADMIN, in the pod's
# network namespace (the rules affect only this pod).
#
# Environment (defaults are upstream's):
#   PROXY_PORT     port the proxy listens on, on localhost          (8000)
#   METADATA_IP    IPv4 address of IMDS                             (169.254.169.254)
#   METADATA_PORT  port of IMDS                                     (80)
#   PROXY_UID      UID the proxy runs as; its own traffic to IMDS is not redirected (1501)
#   METADATA_IPV6  IPv6 address of IMDS; when set, the same rules are added with ip6tables,
#                  redirecting to the proxy on [::1] (unset: no IPv6 rules; Azure's IMDS is
#                  IPv4-only, this is for clusters that expose a metadata endpoint over IPv6)
#   IPTABLES, IP6TABLES  the commands to use (iptables, ip6tables)
#
# Chains (nat table):
#   OUTPUT              tcp to METADATA_IP:METADATA_PORT -> AZWI_PROXY_OUTPUT
#   AZWI_PROXY_OUTPUT   traffic of PROXY_UID -> ACCEPT (the proxy may still reach IMDS), then -> AZWI_PROXY_REDIRECT
#   AZWI_PROXY_REDIRECT tcp -> REDIRECT to PROXY_PORT
# Running it again adds nothing: the chains are flushed and the OUTPUT jump is added only once.
set -euo pipefail

PROXY_PORT="${PROXY_PORT:-8000}"
METADATA_IP="${METADATA_IP:-169.254.169.254}"
METADATA_PORT="${METADATA_PORT:-80}"
PROXY_UID="${PROXY_UID:-1501}"
METADATA_IPV6="${METADATA_IPV6:-}"
IPTABLES="${IPTABLES:-iptables}"
IP6TABLES="${IP6TABLES:-ip6tables}"

die() {
  echo "init-iptables: $*" >&2
  exit 1
}

is_port() {
  [[ "$1" =~ ^[0-9]+$ ]] && [[ "$1" -ge 1 && "$1" -le 65535 ]]
}

is_port "$PROXY_PORT" || die "PROXY_PORT must be a port number (1-65535), got '$PROXY_PORT'"
is_port "$METADATA_PORT" || die "METADATA_PORT must be a port number (1-65535), got '$METADATA_PORT'"
[[ "$PROXY_UID" =~ ^[0-9]+$ ]] || die "PROXY_UID must be a numeric UID, got '$PROXY_UID'"
[[ "$METADATA_IP" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "METADATA_IP must be an IPv4 address, got '$METADATA_IP'"
if [[ -n "$METADATA_IPV6" ]] && [[ ! "$METADATA_IPV6" =~ ^[0-9a-fA-F:]+$ ]]; then
  die "METADATA_IPV6 must be an IPv6 address, got '$METADATA_IPV6'"
fi

# install_rules TOOL DESTINATION: the chains and rules for one address family.
install_rules() {
  local tool="$1" destination="$2"
  local chain
  for chain in AZWI_PROXY_OUTPUT AZWI_PROXY_REDIRECT; do
    "$tool" -t nat -N "$chain" 2>/dev/null || true
    "$tool" -t nat -F "$chain"
  done

  "$tool" -t nat -A AZWI_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports "$PROXY_PORT"

  local jump=(-p tcp -d "$destination" --dport "$METADATA_PORT" -j AZWI_PROXY_OUTPUT)
  "$tool" -t nat -C OUTPUT "${jump[@]}" 2>/dev/null || "$tool" -t nat -A OUTPUT "${jump[@]}"

  "$tool" -t nat -A AZWI_PROXY_OUTPUT -m owner --uid-owner "$PROXY_UID" -j ACCEPT
  "$tool" -t nat -A AZWI_PROXY_OUTPUT -j AZWI_PROXY_REDIRECT

  "$tool" -t nat -S
}

echo "init-iptables: redirecting tcp ${METADATA_IP}:${METADATA_PORT} to port ${PROXY_PORT} (except uid ${PROXY_UID})"
install_rules "$IPTABLES" "$METADATA_IP"

if [[ -n "$METADATA_IPV6" ]]; then
  echo "init-iptables: redirecting tcp [${METADATA_IPV6}]:${METADATA_PORT} to port ${PROXY_PORT} (except uid ${PROXY_UID})"
  install_rules "$IP6TABLES" "$METADATA_IPV6"
fi
