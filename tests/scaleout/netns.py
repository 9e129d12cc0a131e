"""Two "hosts" on one machine: network namespaces joined by a bridge in the root namespace.

Each namespace gets a veth pair whose outer end is enslaved to a bridge that holds the gateway
address; addresses come from a private /24 under 10.231.0.0/16 that exists only on these links.
Traffic only ever goes to those addresses. Everything is removed afterwards, also on failure.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Hosts:
    gateway: str  # the bridge's address in the root namespace
    namespaces: list[str]
    addresses: list[str]  # the address of each namespace, in order

    def prefix(self, index: int) -> list[str]:
        """The command prefix that runs a program on host `index`."""
        return ["ip", "netns", "exec", self.namespaces[index]]


@contextmanager
def hosts(count: int = 2) -> Iterator[Hosts]:
    if os.geteuid() != 0:
        raise RuntimeError("network namespaces need root (ip netns add)")
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    subnet = f"10.231.{random.randrange(10, 250)}"
    bridge = f"pvbr{tag}"
    namespaces = [f"provisor-{tag}-{i}" for i in range(count)]
    outer = [f"pvo{tag}{i}" for i in range(count)]
    made_bridge = False
    made: list[str] = []
    try:
        ip("link", "add", bridge, "type", "bridge")
        made_bridge = True
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        addresses = []
        for i, ns in enumerate(namespaces):
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "add", outer[i], "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", outer[i], "master", bridge)
            ip("link", "set", outer[i], "up")
            address = f"{subnet}.{10 + i}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            addresses.append(address)
        yield Hosts(f"{subnet}.1", namespaces, addresses)
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # also removes its veth
        if made_bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
