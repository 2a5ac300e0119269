"""The endpoint set behind session calls: re-resolution, retirement, choice (no I/O)."""

from __future__ import annotations

from typing import Any

import grpc
from sentiric_inference.client.pool import BalancingOptions, Endpoint, _Membership
from sentiric_inference.client.rendezvous import rank
from sentiric_inference.client.targets import parse_target

READY = grpc.ChannelConnectivity.READY
FAILING = grpc.ChannelConnectivity.TRANSIENT_FAILURE
A, B, C = "10.0.0.1:16071", "10.0.0.2:16071", "10.0.0.3:16071"


def _members(refresh: float = 5.0) -> _Membership[Any]:
    target = parse_target("dns:///chat-headless.llm.svc:16071")
    return _Membership(target, BalancingOptions(refresh_interval=refresh))


def _make(address: str) -> Endpoint[Any]:
    # The channel is never touched by the membership; a marker object stands in for it.
    return Endpoint(address, channel=object())


def _ready(endpoint: Endpoint[Any]) -> grpc.ChannelConnectivity:
    return READY


def test_a_dns_target_is_due_again_after_the_interval_and_soon_after_a_failure() -> None:
    members = _members(refresh=5.0)
    assert members.due(0.0)
    members.update([A, B], now=100.0, make=_make)
    assert not members.due(104.0) and members.due(105.0)
    members.failed(members.endpoints[A], now=101.0)
    assert not members.due(100.5) and members.due(101.0)  # at most once a second


def test_a_fixed_list_is_resolved_once() -> None:
    members: _Membership[Any] = _Membership(parse_target(f"ipv4:{A},{B}"), BalancingOptions())
    assert members.due(0.0)
    assert members.resolve() == [A, B]
    members.update(members.resolve(), now=0.0, make=_make)
    assert not members.due(10_000.0)


def test_a_gone_endpoint_with_calls_in_flight_is_closed_when_they_end() -> None:
    members = _members()
    members.update([A, B], now=0.0, make=_make)
    busy, idle = members.endpoints[A], members.endpoints[B]
    busy.in_flight = 2
    # Both left the answer: the idle one is closed now, the busy one when its calls end.
    assert members.update([C], now=10.0, make=_make) == [idle]
    assert set(members.endpoints) == {C}
    assert busy.retired and idle.retired
    assert members.release(busy) is False
    assert members.release(busy) is True  # the last call ended: close it now


def test_an_idle_gone_endpoint_is_closed_at_once_and_an_empty_answer_keeps_the_set() -> None:
    members = _members()
    members.update([A, B], now=0.0, make=_make)
    gone = members.endpoints[B]
    assert members.update([A], now=10.0, make=_make) == [gone]
    assert members.update([], now=20.0, make=_make) == []
    assert set(members.endpoints) == {A}


def test_the_session_goes_to_its_first_serving_endpoint() -> None:
    members = _members()
    members.update([A, B, C], now=0.0, make=_make)
    first, second, _ = rank("call-1", [A, B, C])
    assert members.choose("call-1", _ready, frozenset(), now=1.0) is members.endpoints[first]

    def first_failing(endpoint: Endpoint[Any]) -> grpc.ChannelConnectivity:
        return FAILING if endpoint.address == first else READY

    assert members.choose("call-1", first_failing, frozenset(), 1.0) is members.endpoints[second]
    # A call that just failed UNAVAILABLE passes the endpoint over for the cooldown.
    members.failed(members.endpoints[first], now=1.0)
    assert members.choose("call-1", _ready, frozenset(), 2.0) is members.endpoints[second]
    assert members.choose("call-1", _ready, frozenset(), 3.5) is members.endpoints[first]
    # Excluded (already tried) endpoints are skipped; none left: None.
    assert members.choose("call-1", _ready, frozenset({A, B, C}), 4.0) is None


def test_with_every_endpoint_failing_the_first_ranked_one_is_still_tried() -> None:
    members = _members()
    members.update([A, B], now=0.0, make=_make)
    chosen = members.choose("call-1", lambda e: FAILING, frozenset(), 1.0)
    assert chosen is members.endpoints[rank("call-1", [A, B])[0]]
