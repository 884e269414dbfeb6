#!/usr/bin/env python3
"""A DNS over QUIC client (RFC 9250) on aioquic, for tests/integration/doq.rs.

    python3 tests/doq_client.py --port PORT --ca CA.pem --name dns.test QNAME QTYPE...

Connects to 127.0.0.1:PORT with ALPN "doq", verifying the server's certificate
against CA.pem for --name, sends each question on a stream of its own (message
ID 0, a two-octet length, then FIN), and prints each answer as dnspython's text
form between "--- QNAME QTYPE" lines. Exits 1 if the connection fails or a
stream ends without a whole answer. aioquic and dnspython come from PyPI
(.ci/run installs them).
"""

import argparse
import asyncio
import ssl
import struct
import sys

import dns.message
import dns.rdatatype
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived, StreamReset


class DoqClient(QuicConnectionProtocol):
    """One DoQ connection: a query per stream, the answer when its FIN comes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._received = {}
        self._waiting = {}

    async def query(self, qname, qtype):
        query = dns.message.make_query(qname, dns.rdatatype.from_text(qtype))
        query.id = 0  # RFC 9250 §4.2.1
        wire = query.to_wire()
        stream_id = self._quic.get_next_available_stream_id()
        self._received[stream_id] = b""
        answered = self._loop.create_future()
        self._waiting[stream_id] = answered
        self._quic.send_stream_data(stream_id, struct.pack("!H", len(wire)) + wire, end_stream=True)
        self.transmit()
        data = await asyncio.wait_for(answered, 5)
        (length,) = struct.unpack("!H", data[:2])
        if length != len(data) - 2:
            raise ValueError(f"length field {length}, {len(data) - 2} octets before FIN")
        return dns.message.from_wire(data[2:])

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived) and event.stream_id in self._waiting:
            self._received[event.stream_id] += event.data
            if event.end_stream:
                self._waiting.pop(event.stream_id).set_result(self._received.pop(event.stream_id))
        elif isinstance(event, StreamReset) and event.stream_id in self._waiting:
            self._waiting.pop(event.stream_id).set_exception(
                ConnectionError(f"stream reset with error code {event.error_code}")
            )


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("questions", nargs="+", help="QNAME QTYPE pairs")
    arguments = parser.parse_args()
    if len(arguments.questions) % 2:
        parser.error("questions come in QNAME QTYPE pairs")
    configuration = QuicConfiguration(alpn_protocols=["doq"], is_client=True, server_name=arguments.name)
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(arguments.ca)
    async with connect("127.0.0.1", arguments.port, configuration=configuration,
                       create_protocol=DoqClient, wait_connected=True) as client:
        pairs = zip(arguments.questions[::2], arguments.questions[1::2])
        for qname, qtype in pairs:
            answer = await client.query(qname, qtype)
            print(f"--- {qname} {qtype}")
            print(answer.to_text())


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 10))
    except Exception as error:  # noqa: BLE001 - the test reads the message
        print(f"doq_client: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
