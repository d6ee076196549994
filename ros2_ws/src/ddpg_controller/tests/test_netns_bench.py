"""bench/netns.py, the two "computers" of the cross-machine benchmark: two network namespaces
joined by a veth. Needs root, iproute2 and the repository's bench/ (run from the repository
root); skipped otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest

netns = pytest.importorskip("bench.netns")

RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 47000))
s.settimeout(10)
print("ready", flush=True)
print(s.recvfrom(100)[0].decode(), flush=True)
"""
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", ("192.0.2.1", 47000))  # TEST-NET-1: anywhere but the other namespace
    print("outside reachable")
except OSError as exc:
    print(f"outside: errno {exc.errno}")
for _ in range(10):
    s.sendto(b"hello from A", (sys.argv[1], 47000))
"""


def _namespaces() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


def test_datagrams_cross_the_veth_only_to_the_other_namespace_which_goes_away_afterwards() -> None:
    if netns.unavailable_reason():
        pytest.skip(netns.unavailable_reason())
    names: list[str] = []
    try:
        with pytest.raises(KeyboardInterrupt), netns.veth_namespaces() as link:
            names = [link.a.namespace, link.b.namespace]
            assert set(names) <= set(_namespaces())
            before = link.a.counters()
            receiver = subprocess.Popen(
                link.b.exec_argv([sys.executable, "-c", RECEIVE, link.b.address]),
                stdout=subprocess.PIPE,
                text=True,
            )
            assert receiver.stdout.readline().strip() == "ready"  # bound to B's address
            sender = subprocess.run(
                link.a.exec_argv([sys.executable, "-c", SEND, link.b.address]),
                capture_output=True,
                text=True,
                timeout=30,
            )
            received = receiver.communicate(timeout=30)[0]  # the first datagram
            after = link.a.counters()
            assert received.strip() == "hello from A"
            assert sender.stdout.startswith("outside: errno 101"), sender.stdout  # ENETUNREACH
            assert after["tx_bytes"] - before["tx_bytes"] >= 10 * len("hello from A")
            raise KeyboardInterrupt  # Ctrl-C inside the block: the namespaces still go
    except netns.NetnsUnavailableError as exc:  # root without CAP_SYS_ADMIN (a container)
        pytest.skip(str(exc))
    assert names
    assert not set(names) & set(_namespaces())
