"""gRPC target names (dns:///host:port, ipv4:a:p,b:p, host:port) and their resolution.

The balanced client resolves targets itself for session calls (client/pool.py): grpc-python
cannot load a custom LB policy, so session affinity needs the list of endpoints in Python.
Names follow gRPC's naming doc (https://github.com/grpc/grpc/blob/master/doc/naming.md),
so the same string also works as the target of a plain grpc channel.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# host, port -> the endpoint addresses ("10.0.0.7:16071", "[fd00::7]:16071"), in any order.
Resolve = Callable[[str, int], Sequence[str]]


class TargetError(ValueError):
    """A target string the client cannot use; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target: a DNS name to resolve again and again, or a fixed address list."""

    original: str
    # Set for DNS targets (dns:///name:port and bare name:port).
    host: str | None = None
    port: int | None = None
    # Set for ipv4:/ipv6: targets (and bare IP literals): no resolution, ever.
    addresses: tuple[str, ...] = ()

    @property
    def is_dns(self) -> bool:
        return self.host is not None

    @property
    def authority(self) -> str | None:
        """host:port a TLS certificate is checked against for a DNS target's endpoints."""
        return None if self.host is None else f"{self.host}:{self.port}"


def _split_host_port(text: str, original: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise TargetError(f"target {original!r}: expected [ipv6]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise TargetError(f"target {original!r}: {text!r} has no port (host:port)")
    if not host:
        raise TargetError(f"target {original!r}: empty host in {text!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TargetError(f"target {original!r}: port {port_text!r} is not in 1-65535")
    return host, int(port_text)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_target(target: str) -> Target:
    """Parse a gRPC target; raises TargetError naming the problem.

    dns://<server>/name:port (a DNS server of one's own) is refused: this client resolves
    with the system resolver, which cannot be pointed at another server per name.
    """
    text = target.strip()
    if text.startswith(("ipv4:", "ipv6:")):
        scheme, _, rest = text.partition(":")
        addresses = []
        for part in rest.split(","):
            host, port = _split_host_port(part.strip(), target)
            if not _literal(host):
                raise TargetError(f"target {target!r}: {host!r} is not an IP address ({scheme})")
            addresses.append(_address(host, port))
        return Target(original=target, addresses=tuple(addresses))
    if text.startswith("dns:"):
        rest = text[len("dns:") :]
        if rest.startswith("//"):
            server, slash, rest = rest[2:].partition("/")
            if not slash:
                raise TargetError(f"target {target!r}: expected dns:///name:port")
            if server:
                raise TargetError(
                    f"target {target!r}: a DNS server authority is not supported; "
                    "use dns:///name:port (the system resolver)"
                )
        text = rest
    elif "://" in text or text.startswith("unix:"):
        raise TargetError(f"target {target!r}: only dns:, ipv4:, ipv6: and host:port targets")
    host, port = _split_host_port(text, target)
    if _literal(host):
        return Target(original=target, addresses=(_address(host, port),))
    return Target(original=target, host=host, port=port)


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for host (A and AAAA; /etc/hosts included).

    A headless Service's name has one record per ready pod, so this is the list of pods
    that may take traffic now. Raises OSError when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen[_address(str(sockaddr[0]), port)] = None
    return list(seen)
