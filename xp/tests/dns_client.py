#!/usr/bin/env python3
"""Helpers for xp/tests/wine.sh: DNS traffic the shell and dig cannot make.

  flood HOST PORT COUNT NAME IPV4   COUNT queries at once from COUNT sockets
                                    (half closed right after sending: clients
                                    that went away), every kept one must get
                                    NOERROR with IPV4 and its own ID
  malformed HOST PORT               datagrams that are no query get no reply
  silent PORT                       an upstream on [::1]:PORT that never answers
  servfail PORT                     an upstream on [::1]:PORT answering SERVFAIL
  hold PORT                         holds 127.0.0.1:PORT (UDP and TCP)
  tcp HOST PORT NAME IPV4           two queries on one TCP connection are both
                                    answered; a message of a bad length closes it

Only the 12-byte header and a plain question are built here; the answers are
checked by header fields and by the A record's four bytes at the end.
"""

import os
import select
import socket
import struct
import sys
import signal
import time


def query(name, qtype=1, ident=None):
    ident = ident if ident is not None else int.from_bytes(os.urandom(2), "big")
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.strip(".").split("."))
    return ident, header + labels + b"\0" + struct.pack(">HH", qtype, 1)


def flood(host, port, count, name, ipv4):
    expected = socket.inet_aton(ipv4)
    sockets = {}
    leaving = []
    started = time.monotonic()
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ident, message = query(name)
        sock.sendto(message, (host, port))
        if index % 2 == 1:
            leaving.append(sock)
        else:
            sockets[sock] = ident
    # Every other client goes away before its answer (closed only after all
    # were sent, so no new socket can reuse a closed one's port).
    for sock in leaving:
        sock.close()
    gone = len(leaving)
    answered = 0
    deadline = started + 10
    while sockets and time.monotonic() < deadline:
        ready, _, _ = select.select(list(sockets), [], [], max(0.0, deadline - time.monotonic()))
        for sock in ready:
            reply = sock.recv(4096)
            ident, flags, qd, an = struct.unpack(">HHHH", reply[:8])
            if ident != sockets[sock]:
                sys.exit(f"flood: reply with ID {ident}, expected {sockets[sock]}")
            if flags & 0x8000 == 0 or flags & 0x000F != 0 or an < 1 or reply[-4:] != expected:
                sys.exit(f"flood: bad reply flags={flags:#06x} answers={an} tail={reply[-4:].hex()}")
            answered += 1
            del sockets[sock]
            sock.close()
    elapsed = time.monotonic() - started
    if sockets:
        sys.exit(f"flood: {len(sockets)} of {count - gone} queries unanswered after 10 s")
    print(f"flood: {answered} answered ({gone} clients went away first) in {elapsed * 1000:.0f} ms")


def malformed(host, port):
    _, good = query("www.xp.test")
    response = bytearray(good)
    response[2] |= 0x80
    two_questions = bytearray(good)
    two_questions[5] = 2
    cases = {
        "five bytes": b"\x01\x02\x03\x04\x05",
        "header only": good[:12],
        "a response": bytes(response),
        "two questions": bytes(two_questions),
        "cut question": good[:20],
        "oversized (600 bytes)": good + b"\0" * (600 - len(good)),
        "random 1200 bytes": os.urandom(1200),
    }
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for label, payload in cases.items():
        sock.sendto(payload, (host, port))
    # Then a good query: its answer must be the only datagram that comes back.
    ident, message = query("www.xp.test")
    sock.sendto(message, (host, port))
    deadline = time.monotonic() + 5
    replies = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        replies.append(sock.recv(4096))
        if struct.unpack(">H", replies[-1][:2])[0] == ident:
            break
    if len(replies) != 1 or struct.unpack(">H", replies[0][:2])[0] != ident:
        sys.exit(f"malformed: expected only the good query's answer, got {[r[:4].hex() for r in replies]}")
    print(f"malformed: {len(cases)} malformed datagrams dropped, the next query answered")


def silent(port):
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", port))
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("::1", port))
    tcp.listen(16)
    held = []
    while True:
        ready, _, _ = select.select([udp, tcp], [], [])
        for sock in ready:
            if sock is udp:
                udp.recv(4096)  # and never answer
            else:
                held.append(tcp.accept()[0])


def servfail(port):
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", port))
    while True:
        message, peer = udp.recvfrom(4096)
        if len(message) < 12:
            continue
        reply = bytearray(message)
        reply[2] = 0x80 | (message[2] & 0x01)
        reply[3] = 0x82  # RA, SERVFAIL
        udp.sendto(bytes(reply), peer)


def hold(port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(1)
    signal.pause()


def read_message(sock, deadline):
    data = b""
    while True:
        want = 2 + int.from_bytes(data[:2], "big") if len(data) >= 2 else 2
        if len(data) >= want:
            return data[2:want]
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk


def tcp(host, port, name, ipv4):
    expected = socket.inet_aton(ipv4)
    deadline = time.monotonic() + 10
    sock = socket.create_connection((host, port), timeout=5)
    first_id, first = query(name)
    second_id, second = query(name)
    # Both queries in one write: the relay must answer them in turn.
    sock.sendall(len(first).to_bytes(2, "big") + first + len(second).to_bytes(2, "big") + second)
    for ident in (first_id, second_id):
        reply = read_message(sock, deadline)
        if reply is None:
            sys.exit(f"tcp: connection closed before the answer to {ident}")
        got, flags = struct.unpack(">HH", reply[:4])
        if got != ident or flags & 0x000F != 0 or reply[-4:] != expected:
            sys.exit(f"tcp: bad answer id={got} (expected {ident}) flags={flags:#06x}")
    sock.close()
    bad = socket.create_connection((host, port), timeout=5)
    bad.sendall(b"\x00\x05hello")
    bad.settimeout(5)
    try:
        closed = bad.recv(100) == b""
    except ConnectionResetError:
        closed = True
    if not closed:
        sys.exit("tcp: a 5-byte message got an answer")
    print("tcp: two pipelined queries answered in order; a 5-byte message closed the connection")


def main():
    command, *arguments = sys.argv[1:]
    if command == "flood":
        host, port, count, name, ipv4 = arguments
        flood(host, int(port), int(count), name, ipv4)
    elif command == "malformed":
        malformed(arguments[0], int(arguments[1]))
    elif command == "silent":
        silent(int(arguments[0]))
    elif command == "servfail":
        servfail(int(arguments[0]))
    elif command == "tcp":
        host, port, name, ipv4 = arguments
        tcp(host, int(port), name, ipv4)
    elif command == "hold":
        hold(int(arguments[0]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
