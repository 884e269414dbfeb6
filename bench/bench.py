#!/usr/bin/env python3
"""bench.py - the measuring half of the dns64d benchmark (run.sh starts the servers).

Python 3 standard library only. Subcommands:

  probe      send one DNS query over UDP to 127.0.0.1:PORT, optionally wait until the
             server answers and check that the answer holds an expected address
  workloads  run the workloads against the given servers, interleaved and repeated,
             and write every measurement to a JSON file
  memcheck   send N unique names (the miss workload at full speed, in chunks) to one
             server and record its RSS and the cache entries it holds after each chunk
  report     turn the JSON files into results/bench-STAMP.txt and .json: medians,
             ratios to the reference server (Unbound), the issue's targets

A server is given as NAME=PORT:PID. Its CPU time is utime+stime from /proc/PID/stat,
summed over PID and every process it forked (NSD runs its work in a child); all the
threads of a process are included. Its memory is VmHWM / VmRSS from /proc/PID/status,
summed the same way.
"""
import argparse
import ipaddress
import json
import os
import platform
import random
import re
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
ZONE = "bench.test"
QTYPES = {"A": 1, "NS": 2, "SOA": 6, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


# ------------------------------------------------------------------ a tiny DNS client
def build_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1, one question
    qname = b"".join(bytes([len(label)]) + label.encode()
                     for label in name.rstrip(".").split(".")) + b"\0"
    return header + qname + struct.pack("!HH", QTYPES[qtype], 1)


def skip_name(msg, pos):
    """Offset just past the (possibly compressed) domain name at pos."""
    while True:
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def parse_response(msg):
    """(rcode name, [(type, rdata text)]) for A/AAAA answers; other types by number."""
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        pos = skip_name(msg, pos) + 4
    answers = []
    for _ in range(an):
        pos = skip_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        rdata = msg[pos + 10:pos + 10 + rdlen]
        pos += 10 + rdlen
        if rtype == 1 and rdlen == 4:
            answers.append(("A", ".".join(str(b) for b in rdata)))
        elif rtype == 28 and rdlen == 16:
            answers.append(("AAAA", str(ipaddress.IPv6Address(rdata))))
        else:
            answers.append((str(rtype), rdata.hex()))
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


def query(port, name, qtype, timeout=1.0):
    qid = random.getrandbits(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(build_query(qid, name, qtype), ("127.0.0.1", port))
        deadline = time.time() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.time()))
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                return parse_response(msg)


def cmd_probe(args):
    deadline = time.time() + args.wait
    while True:
        try:
            rcode, answers = query(args.port, args.name, args.qtype)
            break
        except OSError:  # timeout or refused: not up yet
            if args.pid and not os.path.exists("/proc/%d" % args.pid):
                print("probe: the server (pid %d) has exited" % args.pid)
                return 1
            if time.time() >= deadline:
                print("probe: no answer from 127.0.0.1:%d within %.0f s" % (args.port, args.wait))
                return 1
            time.sleep(0.2)
    text = ", ".join("%s %s" % a for a in answers) or "(no answer records)"
    print("probe 127.0.0.1:%d %s %s -> %s %s" % (args.port, args.name, args.qtype, rcode, text))
    if args.expect and args.expect not in [a[1] for a in answers]:
        print("probe: expected %s in the answer" % args.expect)
        return 1
    if args.rcode and rcode != args.rcode:
        print("probe: expected rcode %s" % args.rcode)
        return 1
    return 0


# ------------------------------------------------------------------ /proc readings
def process_tree(pid):
    """pid and all its descendants (from the ppid field of /proc/*/stat)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def memory_kb(pids):
    """{'VmHWM': kB, 'VmRSS': kB, 'Threads': n} summed over pids."""
    out = {"VmHWM": 0, "VmRSS": 0, "Threads": 0}
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in out:
                        out[key] += int(line.split()[1])
        except OSError:
            pass
    return out


def cpu_times():
    """{cpu number: {"task": user+nice+system, "sirq": irq+softirq, "steal": steal}} in
    seconds, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) / CLK_TCK for x in vals[:8]]
                out[int(name[3:])] = {"task": v[0] + v[1] + v[2], "sirq": v[5] + v[6],
                                      "steal": v[7]}
    return out


def udp_counters():
    """Kernel UDP counters of this network namespace (drops show up as RcvbufErrors)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))
    except (OSError, IndexError):
        return {}


# ------------------------------------------------------------------ dnsperf
def run_dnsperf(argv, timeout):
    """Run dnsperf; return (exit code, output, dnsperf's own CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.returncode, p.stdout, cpu


def parse_dnsperf(out):
    def grab(pattern, cast, default):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default
    return {
        "sent": grab(r"Queries sent:\s+(\d+)", int, 0),
        "completed": grab(r"Queries completed:\s+(\d+)", int, 0),
        "lost": grab(r"Queries lost:\s+(\d+)", int, 0),
        "qps": grab(r"Queries per second:\s+([\d.]+)", float, 0.0),
        "runtime_s": grab(r"Run time \(s\):\s+([\d.]+)", float, 0.0),
        "avg_latency_ms": 1000 * grab(r"Average Latency \(s\):\s+([\d.]+)", float, 0.0),
        "rcodes": grab(r"Response codes:\s+(.*)", str, "").strip(),
        "response_bytes": grab(r"Average packet size:.*response (\d+)", int, None),
        "end_of_file": "(end of file)" in out,
    }


def percentile(values, p):
    """Linear interpolation between closest ranks; values sorted."""
    if not values:
        return None
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def write_miss_file(path, lines):
    """`lines` AAAA queries for unique names under *.miss: a random salt per file
    makes every file's names new to every server, whatever ran before."""
    salt = "%012x" % random.SystemRandom().getrandbits(48)
    with open(path, "w") as f:
        for start in range(0, lines, 100000):
            f.write("".join("m%s-%d.miss.%s AAAA\n" % (salt, i, ZONE)
                            for i in range(start, min(lines, start + 100000))))
    return path


def parse_server(spec):
    name, rest = spec.split("=", 1)
    port, pid = rest.split(":", 1)
    return {"name": name, "port": int(port), "pid": int(pid)}


class Dnsperf:
    """dnsperf command lines, pinned to the load generator's CPU."""

    def __init__(self, args):
        self.args = args
        self.prefix = (["nice", "-n", args.nice] if args.nice else []) + (
            ["taskset", "-c", args.client_cpu] if args.client_cpu else []) + [
            "dnsperf", "-s", "127.0.0.1", "-T", "1", "-t", str(args.timeout)]

    def full_load(self, port, qfile, once, extra=()):
        a = self.args
        clients = [] if "-c" in extra else ["-c", str(a.clients)]
        argv = self.prefix + ["-p", str(port), "-d", qfile, "-l", str(a.duration),
                              "-q", str(a.outstanding)] + clients + list(extra)
        return argv + (["-n", "1"] if once else [])

    def fixed_rate(self, port, qfile, once, extra=()):
        a = self.args
        argv = self.prefix + ["-p", str(port), "-d", qfile, "-v", "-l", str(a.lat_duration),
                              "-c", "1", "-q", "100", "-Q", str(a.lat_rate)] + list(extra)
        return argv + (["-n", "1"] if once else [])

    def cpu_at_rate(self, port, qfile, rate):
        """A fixed rate below saturation, for CPU per answered query (no -v: printing
        every latency would load dnsperf's CPU, not the server's)."""
        a = self.args
        return self.prefix + ["-p", str(port), "-d", qfile, "-l", str(a.duration),
                              "-c", "1", "-q", "500", "-Q", str(rate)]

    def warm_up(self, port, qfile):
        return self.prefix + ["-p", str(port), "-d", qfile, "-n", "1", "-c", "1", "-q", "64"]


# ------------------------------------------------------------------ workloads
def workload_kind(workload):
    """What a workload name asks for: (kind, query file stem, extra dnsperf arguments).

    warm, mixed, miss: UDP at full load (then latency at LAT_RATE);
    tcp: the warm set over persistent TCP connections; tcpN: a new TCP connection
    every N queries (dnsperf -O num-queries-per-conn=N);
    rateN: the warm set over UDP at a fixed N qps, below saturation, for the CPU
    each answered query costs when the server is not busy (no latency run)."""
    if workload.startswith("rate") and workload[4:].isdigit():
        return "rate", "warm", []
    if workload == "tcp":
        return "full", "warm", ["-m", "tcp"]
    if workload.startswith("tcp") and workload[3:].isdigit():
        # dnsperf stalls about 100 ms on each reconnect: 64 connections keep the server busy
        return "full", "warm", ["-m", "tcp", "-O", "num-queries-per-conn=%s" % workload[3:],
                                "-c", "64"]
    return "full", workload, []


def measure(args, perf, server, workload, rep, qdir):
    port = server["port"]
    miss = workload == "miss"
    kind, stem, extra = workload_kind(workload)
    row = {"rep": rep, "server": server["name"], "workload": workload}
    if miss:
        qfile = write_miss_file(os.path.join(qdir, "miss-run.txt"), args.miss_lines)
    else:
        qfile = os.path.join(args.zone_dir, stem + ".txt")
        rc, out, _ = run_dnsperf(perf.warm_up(port, qfile), 120)
        row["warmup"] = parse_dnsperf(out)

    # 1. full load: as fast as the server answers. A server without a cache (the static
    # ceiling) may see the miss names more than once: for it they are all alike.
    once = miss and server["name"] not in args.static
    tree = process_tree(server["pid"])
    cpu0, udp0, sys0, wall0 = cpu_seconds(tree), udp_counters(), cpu_times(), time.time()
    if kind == "rate":
        argv = perf.cpu_at_rate(port, qfile, int(workload[4:]))
    else:
        argv = perf.full_load(port, qfile, once, extra)
    rc, out, gen_cpu = run_dnsperf(argv, args.duration + 60)
    wall = time.time() - wall0
    srv_cpu = cpu_seconds(tree) - cpu0
    udp1, sys1 = udp_counters(), cpu_times()
    st = parse_dnsperf(out)
    if rc != 0 or st["completed"] == 0:
        print("dnsperf failed for %s/%s (exit %d):\n%s" % (
            server["name"], workload, rc, out[-1500:]), file=sys.stderr)
    row.update(st)
    # dnsperf's own run time: the wall time above also holds its start and the wait for
    # late answers at the end, when the server has nothing to do
    span = st["runtime_s"] or wall
    row["wall_s"] = wall
    row["lost_pct"] = 100.0 * st["lost"] / max(1, st["sent"])
    row["srv_cpu_s"] = srv_cpu
    row["srv_cpu_pct"] = 100.0 * srv_cpu / span
    row["gen_cpu_pct"] = 100.0 * gen_cpu / wall  # dnsperf spins while it waits at the end
    # whole-CPU view (/proc/stat) of the server's CPU, where only the server should run:
    # softirq time is network-stack work the kernel charges to no process, "foreign" is
    # any other process that ran there (a busy machine), steal is time the VM lost
    cpu = int(args.server_cpu) if args.server_cpu.isdigit() else None
    if cpu is not None and cpu in sys0:
        d = {k: sys1[cpu][k] - sys0[cpu][k] for k in sys0[cpu]}
        row["server_cpu_sirq_s"] = d["sirq"]
        row["server_cpu_sirq_pct"] = 100.0 * d["sirq"] / span
        row["server_cpu_foreign_pct"] = max(0.0, 100.0 * (d["task"] - srv_cpu) / wall)
        row["server_cpu_steal_pct"] = 100.0 * d["steal"] / wall
        row["cpu_sirq_us_per_query"] = (1e6 * (srv_cpu + d["sirq"]) / st["completed"]
                                        if st["completed"] else None)
    row["cpu_us_per_query"] = 1e6 * srv_cpu / st["completed"] if st["completed"] else None
    row["queries_per_cpu_s"] = st["completed"] / srv_cpu if srv_cpu > 0 else None
    row["udp_rcvbuf_errors"] = udp1.get("RcvbufErrors", 0) - udp0.get("RcvbufErrors", 0)
    if miss and st["end_of_file"]:
        row["warning"] = "ran out of the %d unique names; raise MISS_LINES" % args.miss_lines
        print("WARNING: %s: %s" % (server["name"], row["warning"]), file=sys.stderr)

    if kind == "rate":
        row.update({k: v for k, v in memory_kb(process_tree(server["pid"])).items()})
        return row

    # 2. latency at a fixed moderate rate (-v prints every answer's latency)
    if miss:
        qfile = write_miss_file(qfile, args.lat_rate * args.lat_duration + 1000)
    rc, out, _ = run_dnsperf(perf.fixed_rate(port, qfile, miss, extra), args.lat_duration + 60)
    lat = sorted(1000 * float(m.group(1))
                 for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M))
    lst = parse_dnsperf(out)
    row.update({"lat_samples": len(lat), "lat_lost": lst["lost"],
                "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                "lat_max_ms": lat[-1] if lat else None})
    if miss:
        os.unlink(qfile)
    row.update({k: v for k, v in memory_kb(process_tree(server["pid"])).items()})
    return row


def cmd_workloads(args):
    servers = [parse_server(s) for s in args.server]
    perf = Dnsperf(args)
    qdir = args.tmp_dir
    os.makedirs(qdir, exist_ok=True)
    rows = []
    load_avg = [os.getloadavg()]  # before and after: a busy machine makes noisy figures
    t0 = time.time()
    for rep in range(1, args.repeats + 1):
        for workload in args.workloads.split(","):
            # interleaved: every server once per workload and repeat, order rotated
            k = (rep - 1) % len(servers)
            for server in servers[k:] + servers[:k]:
                row = measure(args, perf, server, workload, rep, qdir)
                rows.append(row)
                print("[%4.0fs] rep %d %-6s %-10s qps %8.0f lost %5.2f%% cpu %5.2f us/q "
                      "(srv %3.0f%% sirq %3.0f%% foreign %3.0f%% gen %3.0f%%) "
                      "| @%d qps p50 %.3f p99 %.3f ms" % (
                          time.time() - t0, rep, workload, server["name"], row["qps"],
                          row["lost_pct"], row["cpu_us_per_query"] or 0, row["srv_cpu_pct"],
                          row.get("server_cpu_sirq_pct", 0), row.get("server_cpu_foreign_pct", 0),
                          row["gen_cpu_pct"],
                          args.lat_rate, row.get("p50_ms") or 0, row.get("p99_ms") or 0), flush=True)
    final = {s["name"]: memory_kb(process_tree(s["pid"])) for s in servers}
    procs = {s["name"]: process_tree(s["pid"]) for s in servers}
    load_avg.append(os.getloadavg())
    keys = ("duration", "repeats", "workloads", "clients", "outstanding", "timeout",
            "lat_rate", "lat_duration", "miss_lines", "client_cpu", "server_cpu", "static")
    settings = {k: getattr(args, k) for k in keys}
    settings["full_load_cmd"] = " ".join(perf.full_load("PORT", "FILE", False))
    settings["fixed_rate_cmd"] = " ".join(perf.fixed_rate("PORT", "FILE", False))
    with open(args.out, "w") as f:
        json.dump({"settings": settings, "servers": servers, "runs": rows,
                   "memory_after": final, "processes": procs, "load_avg": load_avg,
                   "seconds": time.time() - t0}, f, indent=1)
    return 0


# ------------------------------------------------------------------ memory check
def cache_entries(args):
    """The answers the server's cache holds now, and what else it reports about its
    cache: {'entries': n, ...}; {} when the server gives no way to ask. dns64d: the
    metrics endpoint (`dns64d_cache_entries`, `dns64d_cache_bytes`); Unbound:
    `unbound-control stats_noreset` (`msg.cache.count`, its cached answers, and
    `rrset.cache.count`)."""
    if args.metrics_url:
        import urllib.request
        with urllib.request.urlopen(args.metrics_url, timeout=10) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("dns64d_cache_entries", "dns64d_cache_bytes"):
                values[parts[0]] = int(float(parts[1]))
        return {"entries": values.get("dns64d_cache_entries", 0),
                "estimated_bytes": values.get("dns64d_cache_bytes", 0)}
    if args.unbound_control:
        out = subprocess.run(["unbound-control", "-c", args.unbound_control, "stats_noreset"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        stats = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {"entries": int(stats.get("msg.cache.count", 0)),
                "rrsets": int(stats.get("rrset.cache.count", 0))}
    return {}


def cmd_memcheck(args):
    server = parse_server(args.server)
    perf = Dnsperf(args)
    os.makedirs(args.tmp_dir, exist_ok=True)
    qfile = os.path.join(args.tmp_dir, "memcheck.txt")
    tree = process_tree(server["pid"])
    steps = [{"names": 0, "answered": 0, **memory_kb(tree), **cache_entries(args)}]
    sent = answered = 0
    t0 = time.time()
    cpu0 = cpu_seconds(tree)
    chunk = -(-args.names // args.chunks)
    while sent < args.names:
        n = min(chunk, args.names - sent)
        write_miss_file(qfile, n)
        argv = perf.prefix + ["-p", str(server["port"]), "-d", qfile, "-n", "1",
                              "-l", "3600", "-c", str(args.clients), "-q", str(args.outstanding)]
        rc, out, _ = run_dnsperf(argv, 3700)
        st = parse_dnsperf(out)
        sent += st["sent"]
        answered += st["completed"]
        step = {"names": sent, "answered": answered, "qps": st["qps"],
                "lost": st["lost"], **memory_kb(tree), **cache_entries(args)}
        steps.append(step)
        print("[%4.0fs] %s: %8d unique names sent (%d answered, %.0f qps): VmRSS %.1f MB, "
              "VmHWM %.1f MB" % (time.time() - t0, server["name"], sent, answered, st["qps"],
                                 step["VmRSS"] / 1024, step["VmHWM"] / 1024), flush=True)
        if st["sent"] == 0:
            print("memcheck: dnsperf sent nothing:\n%s" % out[-1500:], file=sys.stderr)
            break
    os.unlink(qfile)
    with open(args.out, "w") as f:
        json.dump({"server": server, "names": args.names, "steps": steps,
                   "cpu_s": cpu_seconds(tree) - cpu0, "seconds": time.time() - t0,
                   "note": args.note}, f, indent=1)
    return 0


# ------------------------------------------------------------------ recursive phases
def upstream_queries(commands):
    """Queries the hierarchy's NSD instances have received so far: the sum of
    num.queries over `nsd-control ... stats_noreset` of each."""
    total = 0
    for command in commands:
        out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
        m = re.search(r"^num\.queries=(\d+)$", out.stdout, re.M)
        if not m:
            raise RuntimeError("no num.queries from %r: %s" % (command, out.stdout + out.stderr))
        total += int(m.group(1))
    return total


def cmd_phases(args):
    """One fresh server through the recursive phases, in order: each phase is a query
    file sent once at full load (cold, warm) or for --duration seconds (cached)."""
    server = parse_server(args.server)
    perf = Dnsperf(args)
    tree = process_tree(server["pid"])
    rows = []
    for spec in args.phase:
        name, qfile, mode = spec.split(":", 2)
        once = mode == "once"
        argv = perf.prefix + ["-p", str(server["port"]), "-d", qfile, "-c", str(args.clients),
                              "-q", str(args.outstanding)]
        argv += ["-n", "1", "-l", "3600"] if once else ["-l", str(args.duration)]
        upstream0 = upstream_queries(args.nsd_control)
        cpu0, wall0 = cpu_seconds(tree), time.time()
        rc, out, _ = run_dnsperf(argv, 3700)
        srv_cpu = cpu_seconds(tree) - cpu0
        st = parse_dnsperf(out)
        upstream = upstream_queries(args.nsd_control) - upstream0
        if rc != 0 or st["completed"] == 0:
            print("dnsperf failed for %s/%s (exit %d):\n%s" % (
                server["name"], name, rc, out[-1500:]), file=sys.stderr)
        row = {"rep": args.rep, "server": server["name"], "workload": name, **st,
               "wall_s": time.time() - wall0, "srv_cpu_s": srv_cpu,
               "lost_pct": 100.0 * st["lost"] / max(1, st["sent"]),
               "cpu_us_per_query": 1e6 * srv_cpu / st["completed"] if st["completed"] else None,
               "queries_per_cpu_s": st["completed"] / srv_cpu if srv_cpu > 0 else None,
               "upstream_queries": upstream,
               "upstream_per_name": upstream / st["completed"] if st["completed"] else None,
               **memory_kb(tree)}
        rows.append(row)
        print("rep %d %-8s %-7s qps %8.0f lost %5.2f%% cpu %7.1f us/q  upstream %.2f/name  "
              "VmRSS %.1f MB  rcodes %s" % (
                  args.rep, server["name"], name, st["qps"], row["lost_pct"],
                  row["cpu_us_per_query"] or 0, row["upstream_per_name"] or 0,
                  row["VmRSS"] / 1024, st["rcodes"]), flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


def cmd_recursive_report(args):
    rows = []
    for path in args.phases_json:
        with open(path) as f:
            rows.extend(json.load(f))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    phases = list(dict.fromkeys(r["workload"] for r in rows))
    ref, cand = args.ref, args.candidate
    info = machine_info(args)
    lines = []
    emit = lines.append
    emit("dns64d recursive benchmark  %s" % args.stamp)
    emit("machine: %s, %s, kernel %s, %d CPUs (%s), %.0f GB RAM" % (
        info["host"], info["os"], info["kernel"], info["cpus"], info["cpu_model"],
        info["memory_gb"]))
    for k in ("dns64d", "unbound", "nsd", "dnsperf"):
        emit("%-8s %s" % (k + ":", info[k]))
    emit("hierarchy: %s" % args.hierarchy)
    emit("pinning: %s" % args.pinning)
    emit("servers: %s" % args.server_notes)
    emit("repeats: %d (a fresh process per server and repeat, order rotated); medians" % (
        max(r["rep"] for r in rows)))
    emit("")
    figures = [("qps", "qps", 0), ("lost_pct", "lost%", 2), ("cpu_us_per_query", "CPU us/q", 1),
               ("queries_per_cpu_s", "q/CPU-s", 0), ("upstream_per_name", "upstream/q", 2),
               ("VmRSS", "RSS MB", 1)]
    summary = {}
    for phase in phases:
        emit("== %s" % phase)
        emit("%-16s" % "server" + "".join("%12s" % t for _, t, _ in figures)
             + "   q/CPU-s per repeat")
        summary[phase] = {}
        for s in servers:
            these = [r for r in rows if r["workload"] == phase and r["server"] == s]
            entry = {k: median([r.get(k) for r in these]) for k, _, _ in figures}
            if entry["VmRSS"] is not None:
                entry["VmRSS"] /= 1024
            entry["rcodes"] = these[-1]["rcodes"] if these else ""
            summary[phase][s] = entry
            emit("%-16s" % s + "".join(fmt(entry[k], d, 12) for k, _, d in figures) + "   "
                 + "/".join(fmt(r.get("queries_per_cpu_s")) for r in these))
        if ref in summary[phase] and cand in summary[phase]:
            e, b = summary[phase][cand], summary[phase][ref]
            emit("%-16s" % ("%s/%s" % (cand, ref)) + "".join(
                fmt(ratio(e[k], b[k]), 2, 12) for k, _, _ in figures))
        for s in servers:
            emit("  rcodes %-8s %s" % (s + ":", summary[phase][s]["rcodes"]))
        emit("")
    targets = []
    for phase, goal in (("cold", 1.2), ("warm", 1.2), ("cached", 1.5)):
        if phase in summary and ref in summary[phase] and cand in summary[phase]:
            r = ratio(summary[phase][cand]["queries_per_cpu_s"],
                      summary[phase][ref]["queries_per_cpu_s"])
            targets.append(("%s q/CPU-s >= %.1fx %s" % (phase, goal, ref), r,
                            r is not None and r >= goal))
    last = phases[-1] if phases else None
    if last and ref in summary[last] and cand in summary[last]:
        r = ratio(summary[last][cand]["VmRSS"], summary[last][ref]["VmRSS"])
        targets.append(("RSS after all phases <= 1.0x %s" % ref, r, r is not None and r <= 1.0))
    for phase in ("cold", "warm"):
        if phase in summary and ref in summary[phase] and cand in summary[phase]:
            r = ratio(summary[phase][cand]["upstream_per_name"],
                      summary[phase][ref]["upstream_per_name"])
            targets.append(("%s upstream queries per name <= 1.0x %s" % (phase, ref), r,
                            r is not None and r <= 1.0))
    emit("== targets (%s/%s)" % (cand, ref))
    for text, value, ok in targets:
        emit("  %-50s %6s   %s" % (text, fmt(value, 2), "met" if ok else "NOT met"))
    text = "\n".join(lines) + "\n"
    with open(args.out + ".txt", "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump({"stamp": args.stamp, "machine": info, "summary": summary,
                   "targets": [{"target": t, "value": v, "met": ok} for t, v, ok in targets],
                   "runs": rows}, f, indent=1)
    sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------ report
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=0, width=0):
    text = "-" if v is None else ("%%.%df" % digits) % v
    return text.rjust(width) if width else text


# (key in a run row, column title, digits, better when) for the workload tables
FIGURES = [
    ("qps", "qps", 0, "higher"),
    ("lost_pct", "lost%", 2, "lower"),
    ("p50_ms", "p50 ms", 3, "lower"),
    ("p99_ms", "p99 ms", 3, "lower"),
    ("cpu_us_per_query", "CPU us/q", 2, "lower"),
    ("queries_per_cpu_s", "q/CPU-s", 0, "higher"),
    ("cpu_sirq_us_per_query", "+sirq us/q", 2, "lower"),
    ("srv_cpu_pct", "srv%", 0, None),
    ("server_cpu_sirq_pct", "sirq%", 0, None),
    ("gen_cpu_pct", "gen%", 0, None),
]

WORKLOAD_TITLES = {
    "warm": "warm: AAAA for %s fixed A-only names, every answer synthesized from cache",
    "mixed": "mixed: 50% AAAA A-only, 15% AAAA dual-stack, 20% A, 7.5% NODATA, 7.5% NXDOMAIN "
             "(all cached)",
    "miss": "miss: AAAA for unique names under *.miss (each costs an upstream AAAA + A)",
    "tcp": "tcp: the warm set over persistent TCP connections (dnsperf -m tcp)",
}


def workload_title(workload, warm_names):
    if workload.startswith("rate") and workload[4:].isdigit():
        return ("%s: the warm set at a fixed %s qps over UDP, below saturation: CPU per "
                "answered query when the server is not busy" % (workload, workload[4:]))
    if workload.startswith("tcp") and workload[3:].isdigit():
        return ("%s: the warm set over TCP, a new connection every %s queries "
                "(dnsperf -m tcp -O num-queries-per-conn=%s)" % (workload, workload[3:],
                                                                  workload[3:]))
    title = WORKLOAD_TITLES.get(workload, workload)
    return title % warm_names if "%s" in title else title


def version(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine_info(args):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    os_name = "?"
    try:
        with open("/etc/os-release") as f:
            os_name = next(line.split("=", 1)[1].strip().strip('"') for line in f
                           if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    git = version("git -C %s rev-parse --short HEAD" % args.repo)
    dirty = version("git -C %s status --porcelain -- src Cargo.toml Cargo.lock | wc -l" % args.repo)
    return {
        "host": platform.node(), "os": os_name, "kernel": platform.release(),
        "cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_gb, 1),
        "dns64d": "%s (git %s%s)" % (
            version("%s --version" % args.dns64d), git,
            ", with uncommitted changes in src/" if dirty not in ("0", "?") else ""),
        "unbound": version("unbound -V"),
        "nsd": version("nsd -v"),
        "dnsperf": version("dnsperf -h 2>&1 | grep -m1 Version"),
    }


def summarize(runs, servers, workloads):
    """{workload: {server: {figure: median, figure+'_runs': [...]}}}"""
    out = {}
    for wl in workloads:
        out[wl] = {}
        for s in servers:
            rows = [r for r in runs if r["workload"] == wl and r["server"] == s]
            entry = {}
            for key, _, _, _ in FIGURES:
                vals = [r.get(key) for r in rows]
                entry[key] = median(vals)
                entry[key + "_runs"] = vals
            for key in ("server_cpu_foreign_pct", "server_cpu_steal_pct"):
                entry[key] = max([r.get(key) or 0 for r in rows] or [0])
            entry["warnings"] = sorted({r["warning"] for r in rows if r.get("warning")})
            entry["rcodes"] = rows[-1]["rcodes"] if rows else ""
            entry["response_bytes"] = rows[-1].get("response_bytes") if rows else None
            entry["udp_rcvbuf_errors"] = sum(r.get("udp_rcvbuf_errors", 0) for r in rows)
            entry["lat_lost"] = sum(r.get("lat_lost", 0) for r in rows)
            out[wl][s] = entry
    return out


def cmd_report(args):
    with open(args.workloads_json) as f:
        wl_data = json.load(f)
    mem_data = []
    for path in args.memcheck_json or []:
        if os.path.exists(path):
            with open(path) as f:
                mem_data.append(json.load(f))
    servers = [s["name"] for s in wl_data["servers"]]
    workloads = wl_data["settings"]["workloads"].split(",")
    ref, cand = args.ref, args.candidate
    summary = summarize(wl_data["runs"], servers, workloads)
    info = machine_info(args)
    st = wl_data["settings"]
    lines = []
    emit = lines.append

    emit("dns64d benchmark  %s" % args.stamp)
    emit("machine: %s, %s, kernel %s, %d CPUs (%s), %.0f GB RAM" % (
        info["host"], info["os"], info["kernel"], info["cpus"], info["cpu_model"],
        info["memory_gb"]))
    for k in ("dns64d", "unbound", "nsd", "dnsperf"):
        emit("%-8s %s" % (k + ":", info[k]))
    emit("load average before/after the workloads: %s" % " / ".join(
        "%.2f %.2f %.2f" % tuple(avg) for avg in wl_data.get("load_avg", [])))
    emit("pinning: %s" % args.pinning)
    emit("network: %s" % args.network)
    emit("servers: %s" % args.server_notes)
    emit("full load:  %s" % st["full_load_cmd"])
    emit("fixed rate: %s" % st["fixed_rate_cmd"])
    emit("repeats: %d, interleaved (every server once per workload and repeat, order rotated); "
         "figures are medians over the repeats; ratios are %s/%s of those medians" % (
             st["repeats"], cand, ref))
    emit("")
    for wl in workloads:
        emit("== " + workload_title(wl, args.warm_names))
        head = "%-18s" % "server" + "".join("%11s" % t for _, t, _, _ in FIGURES)
        head += "   qps per repeat; q/CPU-s min-max"
        emit(head)
        for s in servers:
            e = summary[wl][s]
            spread = [v for v in e["queries_per_cpu_s_runs"] if v is not None]
            emit("%-18s" % s + "".join(fmt(e[k], d, 11) for k, _, d, _ in FIGURES)
                 + "   " + "/".join(fmt(v) for v in e["qps_runs"])
                 + ("; %s-%s" % (fmt(min(spread)), fmt(max(spread))) if spread else ""))
        base = summary[wl].get(ref)
        for s in servers:
            if s == ref or not base:
                continue
            e = summary[wl][s]
            emit("%-18s" % ("%s/%s" % (s, ref)) + "".join(
                fmt(ratio(e[k], base[k]) if better else None, 2, 11)
                for k, _, _, better in FIGURES))
        for s in servers:
            for w in summary[wl][s]["warnings"]:
                emit("  WARNING %s: %s" % (s, w))
            e = summary[wl][s]
            if e["server_cpu_foreign_pct"] >= 5 or e["server_cpu_steal_pct"] >= 5:
                emit("  NOISE  %-10s other processes took up to %s%% of the server CPU, VM steal "
                     "up to %s%%: its figures are disturbed" % (
                         s + ":", fmt(e["server_cpu_foreign_pct"]), fmt(e["server_cpu_steal_pct"])))
            if e["lat_lost"]:
                emit("  note %s: %d queries lost in the fixed-rate latency runs" % (
                    s, e["lat_lost"]))
            drops = e["udp_rcvbuf_errors"]
            if drops:
                emit("  note %s: %d UDP receive-buffer drops in the kernel during its runs" % (
                    s, drops))
            emit("  rcodes %-10s %s; average response %s bytes" % (
                s + ":", e["rcodes"], fmt(e["response_bytes"])))
        emit("")

    emit("== peak RSS after the benchmark (VmHWM, MB; summed over the server's processes)")
    mem = wl_data["memory_after"]
    wl_procs = wl_data.get("processes", {})
    for s in servers:
        emit("%-18s %8s MB   (VmRSS at the end %s MB; processes %d, threads %d)" % (
            s, fmt(mem[s]["VmHWM"] / 1024, 1), fmt(mem[s]["VmRSS"] / 1024, 1),
            len(wl_procs.get(s, [])) or 1, mem[s].get("Threads", 0)))
    for s in servers:
        if s != ref and ref in mem:
            r = ratio(mem[s]["VmHWM"], mem[ref]["VmHWM"])
            emit("%-18s %8s" % ("%s/%s" % (s, ref), fmt(r, 2)))
    emit("")

    mem_summary = {}
    for m in mem_data:
        name = m["server"]["name"]
        emit("== memory check: %s, fresh process, %d unique names at full load (miss workload)%s"
             % (name, m["names"], "; " + m["note"] if m.get("note") else ""))
        emit("%12s %12s %10s %10s %10s %12s" % ("names sent", "answered", "qps", "VmRSS MB",
                                                "VmHWM MB", "cached"))
        for step in m["steps"]:
            emit("%12d %12d %10s %10s %10s %12s" % (
                step["names"], step["answered"], fmt(step.get("qps")),
                fmt(step["VmRSS"] / 1024, 1), fmt(step["VmHWM"] / 1024, 1),
                fmt(step.get("entries"))))
        first, last = m["steps"][0], m["steps"][-1]
        if last.get("entries"):
            # RSS growth since the fresh start, over the answers held at the end.
            last = dict(last, bytes_per_answer=(last["VmRSS"] - first["VmRSS"]) * 1024
                        / last["entries"])
            emit("bytes per cached answer: %s (VmRSS growth %s MB over %d cached answers%s)" % (
                fmt(last["bytes_per_answer"]), fmt((last["VmRSS"] - first["VmRSS"]) / 1024, 1),
                last["entries"],
                "; dns64d's own estimate %s bytes each" % fmt(last["estimated_bytes"] / last["entries"])
                if last.get("estimated_bytes") else
                "; plus %d RRsets" % last["rrsets"] if last.get("rrsets") else ""))
        mem_summary[name] = last
        emit("")
    if cand in mem_summary and ref in mem_summary:
        emit("memory check %s/%s: VmHWM %s, VmRSS %s" % (
            cand, ref, fmt(ratio(mem_summary[cand]["VmHWM"], mem_summary[ref]["VmHWM"]), 2),
            fmt(ratio(mem_summary[cand]["VmRSS"], mem_summary[ref]["VmRSS"]), 2)))
        if mem_summary[cand].get("bytes_per_answer") and mem_summary[ref].get("bytes_per_answer"):
            emit("bytes per cached answer %s/%s: %s" % (cand, ref, fmt(ratio(
                mem_summary[cand]["bytes_per_answer"], mem_summary[ref]["bytes_per_answer"]), 2)))
        emit("")

    # issue 5's targets, each with the figure that decides it
    def get(wl, s, k):
        return summary.get(wl, {}).get(s, {}).get(k)
    targets = []

    def target(text, value, ok):
        targets.append({"target": text, "value": value, "met": ok})

    if "warm" in workloads:
        r = ratio(get("warm", cand, "queries_per_cpu_s"), get("warm", ref, "queries_per_cpu_s"))
        target("warm q/CPU-s >= 1.5x %s" % ref, r, r is not None and r >= 1.5)
        r = ratio(get("warm", cand, "qps"), get("warm", ref, "qps"))
        target("warm qps >= 1.0x %s" % ref, r, r is not None and r >= 1.0)
    if "miss" in workloads:
        r = ratio(get("miss", cand, "qps"), get("miss", ref, "qps"))
        target("miss qps >= 1.2x %s" % ref, r, r is not None and r >= 1.2)
        r = ratio(get("miss", cand, "p99_ms"), get("miss", ref, "p99_ms"))
        target("miss p99 <= 1.0x %s" % ref, r, r is not None and r <= 1.0)
    for wl in workloads:
        kind, _, _ = workload_kind(wl)
        if kind == "rate" or wl == "tcp" or wl.startswith("tcp"):
            goal = 1.5 if kind == "rate" else 1.3
            r = ratio(get(wl, cand, "queries_per_cpu_s"), get(wl, ref, "queries_per_cpu_s"))
            target("%s q/CPU-s >= %.1fx %s" % (wl, goal, ref), r, r is not None and r >= goal)
            ceiling = args.ceiling
            if kind == "rate" and ceiling in servers:
                r = ratio(get(wl, cand, "queries_per_cpu_s"),
                          get(wl, ceiling, "queries_per_cpu_s"))
                target("%s q/CPU-s >= 0.9x %s" % (wl, ceiling), r, r is not None and r >= 0.9)
    if cand in mem and ref in mem:
        r = ratio(mem[cand]["VmHWM"], mem[ref]["VmHWM"])
        target("peak RSS after the benchmark <= 1.0x %s" % ref, r, r is not None and r <= 1.0)
    for m in mem_data:
        if m["server"]["name"] != cand or len(m["steps"]) < 3:
            continue
        # bounded = RSS levels off: it grows little over the second half of the flood
        steps, last = m["steps"], m["steps"][-1]
        mid = min(steps[1:], key=lambda st: abs(st["names"] - last["names"] / 2))
        growth = ratio(last["VmRSS"] - mid["VmRSS"], mid["VmRSS"])
        target("RSS growth %dk -> %dk names, fraction <= 0.10" % (
            mid["names"] // 1000, last["names"] // 1000), growth,
            growth is not None and growth <= 0.10)
    if (mem_summary.get(cand, {}).get("bytes_per_answer")
            and mem_summary.get(ref, {}).get("bytes_per_answer")):
        r = ratio(mem_summary[cand]["bytes_per_answer"], mem_summary[ref]["bytes_per_answer"])
        target("bytes per cached answer <= 1.0x %s" % ref, r, r is not None and r <= 1.0)
    emit("== targets (%s/%s, from the medians above)" % (cand, ref))
    for t in targets:
        verdict = "met" if t["met"] else "NOT met"
        emit("  %-50s %6s   %s" % (t["target"], fmt(t["value"], 2), verdict))
    if cand in mem_summary:
        emit("  %s after %d unique names: VmRSS %s MB (cache.max_entries at its default)" % (
            cand, mem_summary[cand]["names"], fmt(mem_summary[cand]["VmRSS"] / 1024, 1)))
    emit("")
    emit("How to read: qps = answers/s at full load (a load-generator-bound run, gen% near 100,")
    emit("gives a lower bound); CPU us/q and q/CPU-s = server CPU time per answered query, which")
    emit("still compares servers when dnsperf is the limit; p50/p99 at the fixed %d qps;"
         % st["lat_rate"])
    emit("see bench/README.md. Ratios above 1 mean 'more' (good for qps and q/CPU-s, bad for")
    emit("the rest). NOISE: other processes shared the server's CPU; qps and p99 suffer most.")

    text = "\n".join(lines) + "\n"
    with open(args.out + ".txt", "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump({"stamp": args.stamp, "machine": info, "pinning": args.pinning,
                   "network": args.network, "reference": ref, "candidate": cand,
                   "settings": st, "summary": summary, "targets": targets,
                   "memory_after": mem, "memcheck": mem_data, "runs": wl_data["runs"]},
                  f, indent=1)
    sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("probe", help="one DNS query to 127.0.0.1:PORT")
    p.add_argument("port", type=int)
    p.add_argument("name")
    p.add_argument("qtype", choices=sorted(QTYPES))
    p.add_argument("--expect", help="an address that must be in the answer")
    p.add_argument("--rcode", help="the rcode the answer must have")
    p.add_argument("--wait", type=float, default=0, help="retry for this many seconds")
    p.add_argument("--pid", type=int, help="stop waiting when this process has exited")

    def load_options(p):
        p.add_argument("--clients", type=int, default=4, help="dnsperf -c")
        p.add_argument("--outstanding", type=int, default=256, help="dnsperf -q")
        p.add_argument("--timeout", type=int, default=2, help="dnsperf -t: later = lost")
        p.add_argument("--client-cpu", default="", help="taskset -c for dnsperf ('' = none)")
        p.add_argument("--server-cpu", default="", help="the servers' CPU (for /proc/stat)")
        p.add_argument("--nice", default="", help="nice -n for dnsperf ('' = none)")
        p.add_argument("--tmp-dir", required=True, help="for generated query files")
        p.add_argument("--out", required=True, help="JSON output")

    p = sub.add_parser("workloads", help="run the workloads")
    p.add_argument("--server", action="append", required=True, help="NAME=PORT:PID")
    p.add_argument("--zone-dir", required=True, help="gen_zone.py output (warm.txt, mixed.txt)")
    p.add_argument("--workloads", default="warm,mixed,miss")
    p.add_argument("--duration", type=int, default=10, help="seconds per full-load run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lat-rate", type=int, default=1000, help="qps of the latency run")
    p.add_argument("--lat-duration", type=int, default=5, help="seconds of the latency run")
    p.add_argument("--miss-lines", type=int, default=1000000,
                   help="unique names per miss run (must exceed qps x duration)")
    p.add_argument("--static", action="append", default=[],
                   help="a server without a cache (may see miss names twice)")
    load_options(p)

    p = sub.add_parser("memcheck", help="RSS after N unique names")
    p.add_argument("--server", required=True, help="NAME=PORT:PID")
    p.add_argument("--names", type=int, default=1000000)
    p.add_argument("--chunks", type=int, default=4, help="RSS is read after each chunk")
    p.add_argument("--note", default="")
    p.add_argument("--metrics-url", help="dns64d's metrics endpoint: its cache entries")
    p.add_argument("--unbound-control", metavar="CONF",
                   help="Unbound's configuration: its cache entries through unbound-control")
    load_options(p)

    p = sub.add_parser("report", help="write results/bench-STAMP.txt and .json")
    p.add_argument("--workloads-json", required=True)
    p.add_argument("--memcheck-json", action="append")
    p.add_argument("--out", required=True, help="path without .txt/.json")
    p.add_argument("--stamp", required=True)
    p.add_argument("--ref", default="unbound")
    p.add_argument("--candidate", default="dns64d")
    p.add_argument("--ceiling", default="nsd-static", help="the practical ceiling's name")
    p.add_argument("--repo", required=True)
    p.add_argument("--dns64d", required=True, help="the dns64d binary (for --version)")
    p.add_argument("--warm-names", default="1000")
    p.add_argument("--pinning", default="")
    p.add_argument("--network", default="")
    p.add_argument("--server-notes", default="")

    p = sub.add_parser("phases", help="recursive mode: one fresh server through the phases")
    p.add_argument("--server", required=True, help="NAME=PORT:PID")
    p.add_argument("--phase", action="append", required=True,
                   help="NAME:QUERYFILE:once (sent once) or NAME:QUERYFILE:duration")
    p.add_argument("--duration", type=int, default=10, help="seconds of a duration phase")
    p.add_argument("--rep", type=int, default=1)
    p.add_argument("--nsd-control", action="append", required=True,
                   help="a command printing an NSD instance's num.queries")
    load_options(p)

    p = sub.add_parser("recursive-report", help="results/recursive-STAMP.txt and .json")
    p.add_argument("--phases-json", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stamp", required=True)
    p.add_argument("--ref", default="unbound")
    p.add_argument("--candidate", default="dns64d")
    p.add_argument("--repo", required=True)
    p.add_argument("--dns64d", required=True)
    p.add_argument("--hierarchy", default="")
    p.add_argument("--pinning", default="")
    p.add_argument("--server-notes", default="")

    args = ap.parse_args()
    return {"probe": cmd_probe, "workloads": cmd_workloads, "memcheck": cmd_memcheck,
            "report": cmd_report, "phases": cmd_phases,
            "recursive-report": cmd_recursive_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
