#!/bin/sh
# Configure and run Tayga in this container's network namespace.
# Environment (defaults in brackets):
#   TAYGA_PREFIX     NAT64 prefix, the same as dns64d's dns64.prefixes [64:ff9b::/96]
#   TAYGA_POOL       IPv4 pool handed to IPv6 clients, routed only inside this container
#                    [192.168.255.0/24]
#   TAYGA_IPV4_ADDR  Tayga's own IPv4 address, inside the pool [192.168.255.1]
#   TAYGA_IPV6_ADDR  Tayga's own IPv6 address (source of its ICMPv6 errors), outside the
#                    prefix [2001:db8:ffff::1, a documentation placeholder]
#   TAYGA_MASQUERADE 1: masquerade the pool behind this container's IPv4 address [1]
#   TAYGA_TUN, TAYGA_CONF, TAYGA_DATA_DIR  [nat64, /run/tayga.conf, /var/lib/tayga]
# Tayga refuses to translate non-global IPv4 (RFC 1918, documentation ranges) under the
# well-known prefix 64:ff9b::/96 (RFC 6052 section 3.1): use a network-specific prefix to
# reach private IPv4 servers.
set -eu
PREFIX=${TAYGA_PREFIX:-64:ff9b::/96}
POOL=${TAYGA_POOL:-192.168.255.0/24}
IPV4_ADDR=${TAYGA_IPV4_ADDR:-192.168.255.1}
IPV6_ADDR=${TAYGA_IPV6_ADDR:-2001:db8:ffff::1}
TUN=${TAYGA_TUN:-nat64}
CONF=${TAYGA_CONF:-/run/tayga.conf}
DATA_DIR=${TAYGA_DATA_DIR:-/var/lib/tayga}
mkdir -p "$DATA_DIR"
cat >"$CONF" <<CONF
tun-device $TUN
ipv4-addr $IPV4_ADDR
ipv6-addr $IPV6_ADDR
prefix $PREFIX
dynamic-pool $POOL
data-dir $DATA_DIR
CONF
tayga --config "$CONF" --mktun
ip link set "$TUN" up
ip route replace "$PREFIX" dev "$TUN"
ip route replace "$POOL" dev "$TUN"
ip route replace "$IPV6_ADDR" dev "$TUN"
if [ "${TAYGA_MASQUERADE:-1}" = 1 ]; then
    iptables -t nat -C POSTROUTING -s "$POOL" -j MASQUERADE 2>/dev/null ||
        iptables -t nat -A POSTROUTING -s "$POOL" -j MASQUERADE
fi
echo "tayga: prefix $PREFIX, pool $POOL, tun $TUN"
# -d: foreground, log to stdout (no syslog in a container); stdbuf: line-buffered
exec stdbuf -oL tayga --config "$CONF" -d
