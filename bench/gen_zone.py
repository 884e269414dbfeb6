#!/usr/bin/env python3
"""gen_zone.py - write the zones and query files of the dns64d benchmark.

Output directory (--out, required):
  bench.test.zone        the upstream zone, served by the authoritative NSD
  bench.test.static.zone the same zone with every AAAA a DNS64 server would
                         synthesize under 64:ff9b::/96 written in as static
                         records; a second NSD serves it as the ceiling (the
                         answers a DNS64 cache hit must produce, with zero
                         resolution work)
  warm.txt               dnsperf input: AAAA for the A-only names, shuffled
  mixed.txt              dnsperf input: the realistic mix (see MIX below)
  manifest.json          counts and addresses, for the checks in bench.py

Names in bench.test (TTL 86400 for data, SOA TTL and MINIMUM 3600, so nothing
expires during a run and the negative TTL is 3600):
  v4only-1..N   one A record each, a *global* IPv4 address in 11.0.0.0/8.
                Private, shared, benchmarking and documentation ranges
                (10/8, 100.64/10, 198.18/15, 192.0.2/24, 198.51.100/24,
                203.0.113/24 ...) are never synthesized under the well-known
                prefix 64:ff9b::/96 (RFC 6052 section 3.1), so they would not
                measure synthesis at all.
  dual-1..M     A (11.1.x.y) and a native AAAA: returned as is, no synthesis
  nodata-1..K   TXT only: AAAA and A are both NODATA
  nx-*          absent: NXDOMAIN
  *.miss        wildcard A 11.2.0.1: every fresh name below it is a cache miss
                that costs an upstream AAAA (NODATA) plus an upstream A query
  ns1           the zone's name server, 127.0.0.1 (record data only)

The addresses are record data only: no part of the benchmark ever sends a packet
to them; all traffic stays on 127.0.0.1.
"""
import argparse
import ipaddress
import json
import os
import random

ZONE = "bench.test."
PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
DATA_TTL = 86400
SOA_TTL = 3600
SOA_MINIMUM = 3600
WILDCARD_A = "11.2.0.1"

# The mixed workload: (share, query type, name family). Shares add up to 1.
MIX = [
    (0.50, "AAAA", "v4only"),  # synthesized from cache
    (0.15, "AAAA", "dual"),  # native AAAA from cache
    (0.15, "A", "v4only"),  # plain A from cache
    (0.05, "A", "dual"),
    (0.075, "AAAA", "nodata"),  # NODATA for AAAA and A: negative cache
    (0.075, "AAAA", "nx"),  # NXDOMAIN: negative cache
]


def v4only_addr(n):
    """v4only-N -> 11.0.x.y (N = 1..65535)."""
    return "11.0.%d.%d" % (n >> 8, n & 255)


def dual_addr(n):
    return "11.1.%d.%d" % (n >> 8, n & 255)


def dual_aaaa(n):
    return "2001:db8:1::%x" % n


def synthesize(ipv4):
    """RFC 6052 /96 embedding: 11.0.0.1 -> 64:ff9b::b00:1."""
    v4 = int(ipaddress.IPv4Address(ipv4))
    return str(ipaddress.IPv6Address(int(PREFIX.network_address) | v4))


def zone_text(args, static):
    """The zone; with static=True also the synthesized AAAA records."""
    out = [
        "$ORIGIN %s\n$TTL %d\n" % (ZONE, DATA_TTL),
        "@ %d IN SOA ns1 hostmaster 1 3600 900 604800 %d\n" % (SOA_TTL, SOA_MINIMUM),
        "@ IN NS ns1\n",
        "ns1 IN A 127.0.0.1\n",
    ]
    for n in range(1, args.v4only + 1):
        out.append("v4only-%d IN A %s\n" % (n, v4only_addr(n)))
        if static:
            out.append("v4only-%d IN AAAA %s\n" % (n, synthesize(v4only_addr(n))))
    for n in range(1, args.dual + 1):
        out.append("dual-%d IN A %s\n" % (n, dual_addr(n)))
        out.append("dual-%d IN AAAA %s\n" % (n, dual_aaaa(n)))
    for n in range(1, args.nodata + 1):
        out.append('nodata-%d IN TXT "no address records"\n' % n)
    out.append("*.miss IN A %s\n" % WILDCARD_A)
    if static:
        out.append("*.miss IN AAAA %s\n" % synthesize(WILDCARD_A))
    return "".join(out)


def mixed_queries(args, rnd):
    counts = {"v4only": args.v4only, "dual": args.dual, "nodata": args.nodata, "nx": args.nx}
    lines = []
    for share, qtype, family in MIX:
        for _ in range(round(share * args.mixed_lines)):
            lines.append("%s-%d.%s %s" % (family, rnd.randint(1, counts[family]),
                                          ZONE.rstrip("."), qtype))
    rnd.shuffle(lines)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--v4only", type=int, default=1000, help="A-only names (warm set)")
    ap.add_argument("--dual", type=int, default=200, help="dual-stack names")
    ap.add_argument("--nodata", type=int, default=100, help="NODATA names")
    ap.add_argument("--nx", type=int, default=200, help="distinct NXDOMAIN names in the mix")
    ap.add_argument("--mixed-lines", type=int, default=4000, help="lines of mixed.txt")
    args = ap.parse_args()
    if not 1 <= args.v4only <= 65535 or not 1 <= args.dual <= 65535:
        ap.error("--v4only and --dual must be in 1..65535")
    os.makedirs(args.out, exist_ok=True)
    rnd = random.Random(6147)  # fixed seed: the same query files on every machine

    def write(name, text):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)

    write("bench.test.zone", zone_text(args, static=False))
    write("bench.test.static.zone", zone_text(args, static=True))
    warm = ["v4only-%d.%s AAAA" % (n, ZONE.rstrip(".")) for n in range(1, args.v4only + 1)]
    rnd.shuffle(warm)
    write("warm.txt", "\n".join(warm) + "\n")
    write("mixed.txt", "\n".join(mixed_queries(args, rnd)) + "\n")
    manifest = {
        "zone": ZONE, "prefix": str(PREFIX),
        "counts": {"v4only": args.v4only, "dual": args.dual, "nodata": args.nodata, "nx": args.nx},
        "probe": {"name": "v4only-1." + ZONE, "ipv4": v4only_addr(1),
                  "aaaa": synthesize(v4only_addr(1))},
        "miss_probe": {"aaaa": synthesize(WILDCARD_A)},
        "mix": [{"share": s, "qtype": t, "family": f} for s, t, f in MIX],
    }
    write("manifest.json", json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
