"""gRPC target parsing and system resolution for the balanced client."""

from __future__ import annotations

import pytest
from sentiric_inference.client.targets import TargetError, parse_target, system_resolve


@pytest.mark.parametrize(
    ("text", "host", "port", "addresses"),
    [
        ("dns:///chat-headless.llm.svc:16071", "chat-headless.llm.svc", 16071, ()),
        ("dns:chat-headless.llm.svc:16071", "chat-headless.llm.svc", 16071, ()),
        ("localhost:16071", "localhost", 16071, ()),
        (
            "ipv4:127.0.0.1:18170,127.0.0.1:18171",
            None,
            None,
            ("127.0.0.1:18170", "127.0.0.1:18171"),
        ),
        ("ipv4:10.0.0.1:1, 10.0.0.2:2", None, None, ("10.0.0.1:1", "10.0.0.2:2")),
        ("ipv6:[::1]:18170,[fd00::2]:18171", None, None, ("[::1]:18170", "[fd00::2]:18171")),
        ("127.0.0.1:16071", None, None, ("127.0.0.1:16071",)),
        ("[::1]:16071", None, None, ("[::1]:16071",)),
    ],
)
def test_targets_parse(
    text: str, host: str | None, port: int | None, addresses: tuple[str, ...]
) -> None:
    target = parse_target(text)
    assert (target.host, target.port, target.addresses) == (host, port, addresses)
    assert target.is_dns == (host is not None)
    assert target.authority == (None if host is None else f"{host}:{port}")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("dns://8.8.8.8/chat:16071", "DNS server authority"),
        ("ipv4:chat:16071", "not an IP address"),
        ("ipv4:10.0.0.1", "no port"),
        ("chat-headless.llm.svc", "no port"),
        ("chat:0", "1-65535"),
        ("chat:http", "1-65535"),
        ("unix:/tmp/grpc.sock", "only dns:"),
        ("http://chat:16071", "only dns:"),
        ("ipv6:[::1:16071", "[ipv6]:port"),
        (":16071", "empty host"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(TargetError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_target(text)


def test_system_resolve_answers_from_the_real_resolver() -> None:
    # localhost comes from /etc/hosts; the loopback address of either family is fine.
    addresses = system_resolve("localhost", 16071)
    assert addresses
    assert set(addresses) <= {"127.0.0.1:16071", "[::1]:16071"}
    with pytest.raises(OSError):
        system_resolve("no-such-name.invalid", 16071)
