"""The cluster DNS server (CoreDNS's place): UDP and TCP on one address and port.

It answers from `ClusterRecords` (informer caches) in threads of the kbox
process: one thread reads UDP datagrams and answers each in place (an answer
is a few dictionary lookups), one thread accepts TCP connections and a short
thread per connection reads length-prefixed queries until the client closes
or goes quiet.

On the wire, as CoreDNS does:
- answers are authoritative inside the cluster domain, with the question's own
  spelling of the name (lookups are case-insensitive);
- a UDP answer bigger than the client's buffer (512 bytes, or its EDNS size)
  keeps the records that fit and sets TC, so the client retries over TCP;
- a packet that is not a DNS query is answered FORMERR when its header can be
  read, dropped otherwise; an opcode other than QUERY gets NOTIMP; a zone
  transfer or a class other than IN gets REFUSED;
- nothing is ever forwarded: names outside the cluster are REFUSED.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kbox.dns.records import A, AAAA, ClusterRecords

log = logging.getLogger(__name__)

UDP_MIN = 512                   # a client without EDNS takes this much over UDP
EDNS_PAYLOAD = 1232             # what we advertise and the most we send over UDP (DNS flag day 2020)
TCP_IDLE_SECONDS = 10.0         # a quiet TCP client is closed (CoreDNS: 10 s read timeout)
TCP_MAX_CONNECTIONS = 64


class DnsServer:
    """`DnsServer(records, host, port).start()`; `port` 0 picks a free one (see `.port`)."""

    def __init__(self, records: ClusterRecords, host: str = "127.0.0.1", port: int = 0, *,
                 shuffle: bool = True) -> None:
        self.records = records
        self.host = host
        self.port = port
        self.shuffle = shuffle       # CoreDNS's loadbalance: address records in random order
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.queries = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> "DnsServer":
        self._bind()
        for target, name in ((self._serve_udp, "dns-udp"), (self._serve_tcp, "dns-tcp")):
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        log.info("cluster DNS listening on %s (udp, tcp)", self.address)
        return self

    def _bind(self) -> None:
        """UDP and TCP on the same port; with port 0, a port free for both."""
        last: OSError | None = None
        for _ in range(20 if self.port == 0 else 1):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, self.port))
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(64)
            except OSError as e:
                udp.close()
                tcp.close()
                last = e
                continue
            self._udp, self._tcp = udp, tcp
            self.port = udp.getsockname()[1]
            return
        raise OSError(f"cluster DNS: cannot listen on {self.host}:{self.port} (udp and tcp): {last}")

    def stop(self) -> None:
        self._stop.set()
        for s in (self._udp, self._tcp):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)

    # ---- transports ----------------------------------------------------------------------
    def _serve_udp(self) -> None:
        assert self._udp is not None
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except OSError:
                return                       # closed by stop()
            try:
                reply = self.handle(data, udp=True)
                if reply is not None:
                    self._udp.sendto(reply, peer)
            except OSError:
                if self._stop.is_set():
                    return
            except Exception:               # never let one packet end the server
                log.exception("cluster DNS: answering %d bytes from %s failed", len(data), peer)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        while not self._stop.is_set():
            try:
                conn, peer = self._tcp.accept()
            except OSError:
                return
            with self._conns_lock:
                if len(self._conns) >= TCP_MAX_CONNECTIONS:
                    conn.close()
                    continue
                self._conns.add(conn)
            threading.Thread(target=self._tcp_client, args=(conn,), daemon=True,
                             name="dns-tcp-client").start()

    def _tcp_client(self, conn: socket.socket) -> None:
        conn.settimeout(TCP_IDLE_SECONDS)
        try:
            while not self._stop.is_set():
                head = _recv_exactly(conn, 2)
                if head is None:
                    return
                (length,) = struct.unpack("!H", head)
                data = _recv_exactly(conn, length)
                if data is None:
                    return
                reply = self.handle(data, udp=False)
                if reply is None:
                    return                 # not DNS: hang up, as for garbage over UDP
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, socket.timeout):
            return
        except Exception:
            log.exception("cluster DNS: a TCP client's query failed")
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    # ---- one query ---------------------------------------------------------------------
    def handle(self, data: bytes, *, udp: bool) -> bytes | None:
        """The answer's wire form for one query's wire form (None: drop it)."""
        self.queries += 1
        try:
            query = dns.message.from_wire(data)
        except dns.message.ShortHeader:
            return None                                    # not even an ID to answer to
        except (dns.exception.DNSException, ValueError, UnicodeError, IndexError, struct.error):
            return _header_only(data, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None                                    # a response, not a query: ignore
        if query.opcode() != dns.opcode.QUERY:
            return _header_only(data, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return _header_only(data, dns.rcode.FORMERR)
        response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.flags &= ~dns.flags.RA                    # a recursive server we are not
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN or q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        ans = self.records.answer(q.name, q.rdtype)
        response.set_rcode(ans.rcode)
        if ans.authoritative:
            response.flags |= dns.flags.AA
        for rrset in ans.answer:
            if self.shuffle and rrset.rdtype in (A, AAAA) and len(rrset) > 1:
                items = list(rrset)
                random.shuffle(items)
                rrset = _with_items(rrset, items)
            response.answer.append(rrset)
        response.authority.extend(ans.authority)
        response.additional.extend(ans.additional)
        if not udp:
            return response.to_wire()
        limit = max(UDP_MIN, min(query.payload, EDNS_PAYLOAD)) if query.edns >= 0 else UDP_MIN
        return _fit(response, limit)


def _fit(response: dns.message.Message, limit: int) -> bytes:
    """The response in at most `limit` bytes: drop the additional section first, then answer
    records from the end, setting TC when answers had to go (RFC 2181 9)."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.additional = []
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    response.flags |= dns.flags.TC
    response.authority = []
    records = [(rrset, item) for rrset in response.answer for item in rrset]
    keep = len(records)
    while keep > 0:
        keep = keep // 2 if keep > 8 else keep - 1      # coarse, then one by one
        response.answer = _regroup(records[:keep])
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            continue
    response.answer = []
    return response.to_wire(max_size=limit)


def _regroup(records: list[tuple[Any, Any]]) -> list[Any]:
    out: list[Any] = []
    for rrset, item in records:
        if not out or out[-1].name != rrset.name or out[-1].rdtype != rrset.rdtype:
            out.append(_with_items(rrset, []))
        out[-1].add(item, rrset.ttl)
    return out


def _with_items(rrset: Any, items: list[Any]) -> Any:
    import dns.rrset
    new = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    for item in items:
        new.add(item, rrset.ttl)
    return new


def _header_only(data: bytes, rcode: int) -> bytes | None:
    """An answer with just a header (the query's ID and opcode) and `rcode`."""
    if len(data) < 12:
        return None
    (qid, flags) = struct.unpack("!HH", data[:4])
    if flags & 0x8000:
        return None                       # a response: never answer one
    opcode_and_rd = flags & 0x7900        # opcode and RD copied, as RFC 1035 asks
    return struct.pack("!HHHHHH", qid, 0x8000 | opcode_and_rd | (rcode & 0xF), 0, 0, 0, 0)


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


__all__ = ["DnsServer", "EDNS_PAYLOAD", "UDP_MIN"]
