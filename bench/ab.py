#!/usr/bin/env python3
"""bench/ab.py - interleaved A/B of two dns64d binaries on the warm workload
(AAAA for 1000 A-only names, every answer synthesized from the fast path's
cache), each listening on 127.0.0.1 and on the wildcard 0.0.0.0 (where
pktinfo is on), and with LISTENS="127.0.0.1,0.0.0.0,::1,::" on IPv6 too. Prints queries per server CPU-second and qps per run, the
medians with their range, and the per-repeat ratios B/A.

    python3 bench/gen_zone.py --out /tmp/ab/zone
    cp OLD/target/release/dns64d /tmp/ab/dns64d-base
    cp NEW/target/release/dns64d /tmp/ab/dns64d-mine
    sudo unshare --net sh -c 'ip link set lo up && AB_DIR=/tmp/ab python3 bench/ab.py'

The upstream is dns64d-base serving zone/bench.test.zone as a local zone on
127.0.0.1:5400 (CPU 0, with dnsperf); the server under test runs on CPU 1
at nice -10 on port 5402. REPEATS (5) and DURATION (8 s) set the rounds;
the order within a round alternates. Needs dnsperf and taskset; run it in
a network namespace of its own (unshare --net) so nothing leaves loopback.

WORKLOAD=tcp sends the warm workload over persistent TCP connections
(dnsperf -m tcp), WORKLOAD=tcpN over 64 connections with a new one every
N queries (dnsperf -O num-queries-per-conn=N); for tcp1 also run
`sysctl -w net.ipv4.tcp_max_tw_buckets=1024 net.ipv4.ip_local_port_range="1024 65535"`
in the namespace, or the ports left in TIME_WAIT run out.

WORKLOAD=miss measures cache misses instead: every query is a fresh name
below the zone's *.miss wildcard (A only), so each costs an AAAA and an A
lookup upstream and a synthesis; the names are new in every run. BASE and
MINE name other binaries than dns64d-base and dns64d-mine in AB_DIR."""
import os, re, signal, socket, statistics, subprocess, sys, time

HERE = os.environ.get("AB_DIR", os.getcwd())
BINS = {"base": os.path.join(HERE, os.environ.get("BASE", "dns64d-base")),
        "mine": os.path.join(HERE, os.environ.get("MINE", "dns64d-mine"))}
WORKLOAD = os.environ.get("WORKLOAD", "warm")
# MINE_ENV="DNS64D_CACHE__PREFETCH=false DNS64D_COOKIES__ENABLED=false": settings for mine only.
MINE_ENV = dict(item.split("=", 1) for item in os.environ.get("MINE_ENV", "").split())
REPEATS = int(os.environ.get("REPEATS", "5"))
DURATION = int(os.environ.get("DURATION", "8"))
WARM = os.path.join(HERE, "zone/warm.txt")
# The listen addresses compared (LISTENS="127.0.0.1,0.0.0.0,::1,::" adds IPv6);
# a wildcard is queried on the loopback address of its family.
LISTENS = os.environ.get("LISTENS", "127.0.0.1,0.0.0.0").split(",")
TARGET = {"0.0.0.0": "127.0.0.1", "::": "::1"}

def target(listen):
    return TARGET.get(listen, listen)

def socket_address(listen, port):
    return ("[%s]:%d" if ":" in listen else "%s:%d") % (listen, port)

def cpu(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")

def wait_ready(port, address="127.0.0.1"):
    # An A query for ns1.bench.test until answered (deadline 10 s).
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x03ns1\x05bench\x04test\x00\x00\x01\x00\x01"
    deadline = time.time() + 10
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            s.sendto(q, (address, port))
            s.recvfrom(4096)
            return
        except OSError:
            pass
    sys.exit("server on %d not ready" % port)

def load_arguments():
    # dnsperf's arguments for the measured run of WORKLOAD (see the top).
    if WORKLOAD == "tcp":
        return ["-m", "tcp", "-c", "4", "-q", "256"]
    if WORKLOAD.startswith("tcp") and WORKLOAD[3:].isdigit():
        return ["-m", "tcp", "-O", "num-queries-per-conn=" + WORKLOAD[3:], "-c", "64", "-q", "256"]
    return ["-c", "4", "-q", "256"]

def miss_names(run):
    # Fresh names for one run: more than the run can send, so none repeats.
    path = os.path.join(HERE, "miss-%d.txt" % run)
    with open(path, "w") as f:
        for i in range(DURATION * 60000):
            f.write("m%d-%d.miss.bench.test AAAA\n" % (run, i))
    return path

def dnsperf(port, extra, address="127.0.0.1", names=WARM):
    out = subprocess.run(["taskset", "-c", "0", "nice", "-n", "-10", "dnsperf", "-s", address,
                          "-p", str(port), "-d", names, "-T", "1"] + extra,
                         capture_output=True, text=True).stdout
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    return completed, lost, out

upstream_conf = os.path.join(HERE, "upstream.toml")
with open(upstream_conf, "w") as f:
    f.write('listen = ["127.0.0.1:5400"]\n[upstream]\nservers = ["127.0.0.1:9"]\n'
            '[[zones]]\nname = "bench.test"\nfile = "%s/zone/bench.test.zone"\ndns64 = false\n' % HERE)
upstream = subprocess.Popen(["taskset", "-c", "0", BINS["base"], "--config", upstream_conf],
                            stderr=subprocess.DEVNULL)
wait_ready(5400)
results = {}
runs = 0
try:
    for repeat in range(REPEATS):
        pair = ["base", "mine"] if repeat % 2 == 0 else ["mine", "base"]
        order = [(name, listen) for listen in LISTENS for name in pair]
        for name, listen in order:
            server = subprocess.Popen(["taskset", "-c", "1", "nice", "-n", "-10", BINS[name],
                                       "--listen", socket_address(listen, 5402), "--upstream", "127.0.0.1:5400",
                                       "--prefix", "64:ff9b::/96"], stderr=subprocess.DEVNULL,
                                      env=dict(os.environ, **(MINE_ENV if name == "mine" else {})))
            try:
                wait_ready(5402, target(listen))
                runs += 1
                if WORKLOAD == "miss":
                    names = miss_names(runs)
                else:
                    names = WARM
                    dnsperf(5402, ["-n", "2", "-c", "1", "-q", "64"], target(listen))  # fill the cache
                before = cpu(server.pid)
                completed, lost, _ = dnsperf(5402, ["-l", str(DURATION)] + load_arguments(), target(listen), names)
                used = cpu(server.pid) - before
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait()
            row = (completed / used, completed / DURATION, lost)
            results.setdefault((name, listen), []).append(row)
            print("repeat %d %-4s %-9s q/CPU-s %8.0f  qps %8.0f  lost %d" % ((repeat + 1, name, listen) + row), flush=True)
finally:
    upstream.send_signal(signal.SIGTERM)
    upstream.wait()

print("\n%s: %s (base) vs %s (mine)" % (WORKLOAD, BINS["base"], BINS["mine"]))
print("medians (min..max) over %d repeats of %d s:" % (REPEATS, DURATION))
for listen in LISTENS:
    med = {}
    for name in ["base", "mine"]:
        rows = results[(name, listen)]
        qc = [r[0] for r in rows]; qps = [r[1] for r in rows]
        med[name] = statistics.median(qc)
        print("%-4s %-9s q/CPU-s %8.0f (%.0f..%.0f)  qps %8.0f (%.0f..%.0f)" % (
            name, listen, statistics.median(qc), min(qc), max(qc), statistics.median(qps), min(qps), max(qps)))
    print("     %-9s mine/base q/CPU-s = %.3f" % (listen, med["mine"] / med["base"]))
    pairs = [m[0] / b[0] for b, m in zip(results[("base", listen)], results[("mine", listen)])]
    print("     %-9s per-repeat ratios: %s" % (listen, " ".join("%.3f" % p for p in pairs)))
