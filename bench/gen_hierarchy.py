#!/usr/bin/env python3
"""gen_hierarchy.py - a DNS hierarchy for the recursive benchmark (bench/recursive.sh).

Writes, under --out:
  root.zone               the root: one NS per TLD, glue on the TLD server's address
  tld/tN.zone             one zone per TLD: a delegation (NS + glue) per second-level zone
  sld/sJ.tN.zone          one zone per second-level name: v4 (A only), dual (A + AAAA),
                          a wildcard A for new leaf names, and NS + SOA
  root.hints              named.root format: the root server's name and address
  nsd-root.list, nsd-tld.list, nsd-sld.list   the zone: blocks of each NSD instance
  cold.txt                AAAA v4.sJ.tN for every second-level zone once, shuffled
  warm.txt                AAAA for a new leaf name under every zone of cold.txt, shuffled
  cached.txt              the names of cold.txt again (answered from the cache)
  manifest.json           addresses, counts and a probe name with its expected answer

Three NSD instances serve the three levels, each on addresses of its own, so every
resolution follows real referrals: root (127.0.1.1) -> TLD server (127.0.2.1) -> one of
SLD_ADDRESSES second-level servers (127.0.3.1..). The IPv4 data addresses are global
ones (11.0.0.0/8), as a DNS64 server never embeds non-global addresses under
64:ff9b::/96; they are record data only: nothing sends packets to them.
"""
import argparse
import json
import os
import random

ROOT_ADDRESS = "127.0.1.1"
TLD_ADDRESS = "127.0.2.1"
SOA = "@ 3600 IN SOA ns.%s hostmaster.%s 1 3600 900 604800 300\n"


def sld_address(index, count):
    return "127.0.3.%d" % (1 + index % count)


def data_ipv4(index):
    number = index + 1  # 11.0.0.1 for the first zone
    return "11.%d.%d.%d" % (number >> 16 & 255, number >> 8 & 255, number & 255)


def synthesized(ipv4):
    a, b, c, d = (int(x) for x in ipv4.split("."))
    return "64:ff9b::%x:%x" % (a << 8 | b, c << 8 | d)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tlds", type=int, default=20)
    ap.add_argument("--slds", type=int, default=20000, help="second-level zones in all")
    ap.add_argument("--sld-addresses", type=int, default=50,
                    help="addresses the second-level NSD listens on")
    ap.add_argument("--ttl", type=int, default=86400, help="TTL of delegations and data")
    ap.add_argument("--seed", type=int, default=6147)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    out = args.out
    os.makedirs(os.path.join(out, "tld"), exist_ok=True)
    os.makedirs(os.path.join(out, "sld"), exist_ok=True)
    ttl = args.ttl

    tlds = ["t%d" % i for i in range(args.tlds)]
    with open(os.path.join(out, "root.zone"), "w") as f:
        f.write("$ORIGIN .\n")
        f.write(". 86400 IN SOA a.root-servers.test. hostmaster.root. 1 3600 900 604800 300\n")
        f.write(". 518400 IN NS a.root-servers.test.\n")
        for tld in tlds:
            f.write("%s. %d IN NS ns.%s.\n" % (tld, ttl, tld))
            f.write("ns.%s. %d IN A %s\n" % (tld, ttl, TLD_ADDRESS))
        # the root server's own name lives in the test. TLD: glue here keeps it resolvable
        f.write("test. %d IN NS ns.test.\nns.test. %d IN A %s\n" % (ttl, ttl, TLD_ADDRESS))
        f.write("a.root-servers.test. 518400 IN A %s\n" % ROOT_ADDRESS)
    with open(os.path.join(out, "root.hints"), "w") as f:
        f.write(".                        3600000      NS    a.root-servers.test.\n")
        f.write("a.root-servers.test.     3600000      A     %s\n" % ROOT_ADDRESS)

    slds = []  # (zone name, index)
    per_tld = {tld: [] for tld in tlds}
    for index in range(args.slds):
        tld = tlds[index % len(tlds)]
        zone = "s%d.%s" % (index, tld)
        slds.append((zone, index))
        per_tld[tld].append((zone, index))

    tld_list = []
    for tld in tlds + ["test"]:
        path = os.path.join(out, "tld", tld + ".zone")
        with open(path, "w") as f:
            f.write("$ORIGIN %s.\n" % tld)
            f.write(SOA % (tld + ".", tld + "."))
            f.write("@ %d IN NS ns\nns %d IN A %s\n" % (ttl, ttl, TLD_ADDRESS))
            if tld == "test":
                f.write("a.root-servers %d IN A %s\n" % (ttl, ROOT_ADDRESS))
            for zone, index in per_tld.get(tld, []):
                label = zone[: -len(tld) - 1]
                f.write("%s %d IN NS ns.%s\n" % (label, ttl, label))
                f.write("ns.%s %d IN A %s\n" % (label, ttl, sld_address(index, args.sld_addresses)))
        tld_list.append('zone:\n    name: "%s."\n    zonefile: "%s"\n' % (tld, path))

    sld_list = []
    for zone, index in slds:
        path = os.path.join(out, "sld", zone + ".zone")
        ipv4 = data_ipv4(index)
        with open(path, "w") as f:
            f.write("$ORIGIN %s.\n" % zone)
            f.write(SOA % (zone + ".", zone + "."))
            f.write("@ %d IN NS ns\nns %d IN A %s\n" % (ttl, ttl,
                                                         sld_address(index, args.sld_addresses)))
            f.write("v4 %d IN A %s\n" % (ttl, ipv4))
            f.write("dual %d IN A %s\ndual %d IN AAAA 2001:db8:2::%x\n" % (ttl, ipv4, ttl,
                                                                       index + 1))
            f.write("* %d IN A %s\n" % (ttl, ipv4))
        sld_list.append('zone:\n    name: "%s."\n    zonefile: "%s"\n' % (zone, path))

    with open(os.path.join(out, "nsd-root.list"), "w") as f:
        f.write('zone:\n    name: "."\n    zonefile: "%s"\n' % os.path.join(out, "root.zone"))
    with open(os.path.join(out, "nsd-tld.list"), "w") as f:
        f.write("".join(tld_list))
    with open(os.path.join(out, "nsd-sld.list"), "w") as f:
        f.write("".join(sld_list))

    order = list(slds)
    rnd.shuffle(order)
    with open(os.path.join(out, "cold.txt"), "w") as f:
        f.write("".join("v4.%s AAAA\n" % zone for zone, _ in order))
    leaves = list(slds)
    rnd.shuffle(leaves)
    with open(os.path.join(out, "warm.txt"), "w") as f:
        f.write("".join("leaf-%d.%s AAAA\n" % (rnd.getrandbits(32), zone)
                        for zone, _ in leaves))
    rnd.shuffle(order)
    with open(os.path.join(out, "cached.txt"), "w") as f:
        f.write("".join("v4.%s AAAA\n" % zone for zone, _ in order))

    probe_zone, probe_index = slds[0]
    manifest = {
        "root": ROOT_ADDRESS, "tld": TLD_ADDRESS,
        "sld": [sld_address(i, args.sld_addresses) for i in range(min(args.slds,
                                                                      args.sld_addresses))],
        "tlds": len(tlds), "slds": len(slds),
        "probe": {"name": "probe." + probe_zone,
                  "aaaa": synthesized(data_ipv4(probe_index)), "ipv4": data_ipv4(probe_index)},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
