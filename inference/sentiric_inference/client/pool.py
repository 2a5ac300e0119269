"""One channel per endpoint of a target, for calls pinned to an endpoint by a session key.

gRPC's own round_robin policy spreads calls without a session (clients.py), but grpc-python
cannot run a custom LB policy, so a session's endpoint is chosen here: the target is
resolved in Python (again every `refresh_interval`, and at once after a call found its
endpoint unavailable), each endpoint gets its own channel, and rendezvous hashing over the
endpoints that serve picks the session's one.

"Serving" is the endpoint channel's connectivity state. Each endpoint channel runs
round_robin over its single address with gRPC client-side health checking on, so the
channel leaves READY when the connection fails *or* when the server's grpc.health.v1
status turns NOT_SERVING (model loading, draining after SIGTERM). A session whose endpoint
stops serving moves to its runner-up; every other session keeps its own endpoint.

An endpoint that leaves the DNS answer stops getting new calls at once, and its channel is
closed once its calls in flight have finished (closing it earlier would cut their streams).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc

from sentiric_inference.client.rendezvous import rank
from sentiric_inference.client.targets import Resolve, Target, system_resolve
from sentiric_inference.grpc_api.gen import llama_pb2

# The service whose grpc.health.v1 status says whether an endpoint takes calls.
HEALTH_SERVICE = llama_pb2.DESCRIPTOR.services_by_name["LlamaService"].full_name
# A failed re-resolution is retried no sooner than this.
_MIN_RESOLVE_INTERVAL_S = 1.0
_DOWN = frozenset({grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN})


def balanced_service_config(health_service: str = HEALTH_SERVICE) -> str:
    """round_robin over every resolved address, skipping those whose health is not SERVING."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": health_service},
        }
    )


class NoEndpointError(ConnectionError):
    """The target resolved to no endpoint (or not at all) and none was known before."""


@dataclass(frozen=True, slots=True)
class BalancingOptions:
    """How session calls find their endpoints."""

    # Seconds between re-resolutions of a DNS target (a headless Service's records follow
    # its ready pods; CoreDNS answers with a 5 s TTL by default).
    refresh_interval: float = 5.0
    # Seconds an endpoint whose call failed UNAVAILABLE is passed over, whatever its channel
    # says (it may still read READY for a moment after the server went away).
    unavailable_cooldown: float = 2.0
    # host, port -> addresses; the system resolver unless a test or a service mesh says else.
    resolve: Resolve = system_resolve

    def __post_init__(self) -> None:
        if self.refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive")
        if self.unavailable_cooldown < 0:
            raise ValueError("unavailable_cooldown must not be negative")


def endpoint_target(address: str) -> str:
    """The grpc target of one resolved address (no further resolution)."""
    return f"ipv6:{address}" if address.startswith("[") else f"ipv4:{address}"


def endpoint_options(target: Target, tls_name: str | None) -> list[tuple[str, Any]]:
    """Channel arguments of an endpoint channel: health-checked, named like the target."""
    options: list[tuple[str, Any]] = [("grpc.service_config", balanced_service_config())]
    if target.authority is not None:
        # Requests carry the service's name, and TLS checks the certificate against it,
        # not against the pod's IP address the channel connects to.
        options.append(("grpc.default_authority", target.authority))
        if tls_name is None:
            options.append(("grpc.ssl_target_name_override", target.host))
    return options


ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


@dataclass(eq=False)
class Endpoint(Generic[ChannelT]):
    """One resolved address, its channel, and the calls it has in flight."""

    address: str
    channel: ChannelT
    in_flight: int = 0
    retired: bool = False
    down_until: float = 0.0
    # The last connectivity state reported (sync channels report by callback).
    state: grpc.ChannelConnectivity = grpc.ChannelConnectivity.IDLE
    extra: dict[str, Any] = field(default_factory=dict)


class _Membership(Generic[ChannelT]):
    """The endpoint set and the choice of a session's endpoint; no I/O, no locking."""

    def __init__(self, target: Target, options: BalancingOptions) -> None:
        self.target = target
        self.options = options
        self.endpoints: dict[str, Endpoint[ChannelT]] = {}
        self.retired: list[Endpoint[ChannelT]] = []
        self.resolved_at: float | None = None
        self.stale = True

    def due(self, now: float) -> bool:
        if not self.target.is_dns:
            return self.resolved_at is None
        if self.resolved_at is None:
            return True
        age = now - self.resolved_at
        if self.stale:
            return age >= _MIN_RESOLVE_INTERVAL_S
        return age >= self.options.refresh_interval

    def resolve(self) -> list[str]:
        """The target's addresses now (blocking for a DNS target)."""
        if not self.target.is_dns:
            return list(self.target.addresses)
        assert self.target.host is not None and self.target.port is not None
        return list(self.options.resolve(self.target.host, self.target.port))

    def update(
        self,
        addresses: Iterable[str],
        now: float,
        make: Callable[[str], Endpoint[ChannelT]],
    ) -> list[Endpoint[ChannelT]]:
        """Adopt a resolution; returns the endpoints to close now (gone, nothing in flight)."""
        self.resolved_at = now
        self.stale = False
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            # An empty answer (every pod unready for a moment) keeps the last known set:
            # calls then fail on the endpoints themselves, with the server's own status.
            return []
        for address in wanted:
            if address not in self.endpoints:
                self.endpoints[address] = make(address)
        to_close: list[Endpoint[ChannelT]] = []
        for address in [a for a in self.endpoints if a not in wanted]:
            endpoint = self.endpoints.pop(address)
            endpoint.retired = True
            if endpoint.in_flight:
                self.retired.append(endpoint)
            else:
                to_close.append(endpoint)
        return to_close

    def choose(
        self,
        session: str,
        state_of: Callable[[Endpoint[ChannelT]], grpc.ChannelConnectivity],
        exclude: frozenset[str],
        now: float,
    ) -> Endpoint[ChannelT] | None:
        """The session's first-ranked endpoint that serves; None when none is left to try.

        With every remaining endpoint down, the first-ranked one is still returned: its call
        then fails with a status the caller sees, rather than this client inventing one.
        """
        ranked = [a for a in rank(session, self.endpoints) if a not in exclude]
        if not ranked:
            return None
        for address in ranked:
            endpoint = self.endpoints[address]
            if endpoint.down_until <= now and state_of(endpoint) not in _DOWN:
                return endpoint
        return self.endpoints[ranked[0]]

    def release(self, endpoint: Endpoint[ChannelT]) -> bool:
        """One call ended; True when the endpoint is retired and idle (close it now)."""
        endpoint.in_flight -= 1
        if endpoint.retired and endpoint.in_flight == 0 and endpoint in self.retired:
            self.retired.remove(endpoint)
            return True
        return False

    def failed(self, endpoint: Endpoint[ChannelT], now: float) -> None:
        endpoint.down_until = now + self.options.unavailable_cooldown
        # The endpoint may be gone for good: look the name up again on the next pick.
        self.stale = True

    def all_channels(self) -> list[ChannelT]:
        channels = [e.channel for e in self.endpoints.values()]
        channels += [e.channel for e in self.retired]
        self.endpoints.clear()
        self.retired.clear()
        return channels


class EndpointPool:
    """Endpoint channels for the blocking client; thread-safe."""

    def __init__(
        self,
        target: Target,
        channel_factory: Callable[[str], grpc.Channel],
        options: BalancingOptions,
    ) -> None:
        self._members: _Membership[grpc.Channel] = _Membership(target, options)
        self._factory = channel_factory
        self._lock = threading.Lock()
        self._resolving = threading.Lock()

    def _make(self, address: str) -> Endpoint[grpc.Channel]:
        channel = self._factory(endpoint_target(address))
        endpoint = Endpoint(address, channel)

        def on_state(state: grpc.ChannelConnectivity) -> None:
            endpoint.state = state

        # try_to_connect: every endpoint connects (and health-checks) before it is needed.
        channel.subscribe(on_state, try_to_connect=True)
        endpoint.extra["callback"] = on_state
        return endpoint

    @staticmethod
    def _close(endpoint: Endpoint[grpc.Channel]) -> None:
        endpoint.channel.unsubscribe(endpoint.extra["callback"])
        endpoint.channel.close()

    def _refresh(self) -> None:
        with self._lock:
            if not self._members.due(time.monotonic()):
                return
        # One thread resolves; the others go on with the endpoints already known.
        if not self._resolving.acquire(blocking=not self._members.endpoints):
            return
        try:
            try:
                addresses = self._members.resolve()
            except OSError as exc:
                with self._lock:
                    self._members.resolved_at = time.monotonic()
                    if self._members.endpoints:
                        return  # keep serving from the last answer
                raise NoEndpointError(
                    f"cannot resolve {self._members.target.original}: {exc}"
                ) from exc
            with self._lock:
                to_close = self._members.update(addresses, time.monotonic(), self._make)
        finally:
            self._resolving.release()
        for endpoint in to_close:
            self._close(endpoint)

    def acquire(self, session: str, exclude: frozenset[str]) -> Endpoint[grpc.Channel] | None:
        """The session's endpoint, counted as busy until `release`; None: none left to try."""
        self._refresh()
        with self._lock:
            endpoint = self._members.choose(session, _sync_state, exclude, time.monotonic())
            if endpoint is None and not exclude:
                raise NoEndpointError(f"{self._members.target.original} resolved to no endpoint")
            if endpoint is not None:
                endpoint.in_flight += 1
            return endpoint

    def release(self, endpoint: Endpoint[grpc.Channel]) -> None:
        with self._lock:
            idle = self._members.release(endpoint)
        if idle:
            self._close(endpoint)

    def failed(self, endpoint: Endpoint[grpc.Channel]) -> None:
        with self._lock:
            self._members.failed(endpoint, time.monotonic())

    def peek(self, session: str) -> str | None:
        """The address a call of `session` would go to now (None before any resolution)."""
        self._refresh()
        with self._lock:
            endpoint = self._members.choose(session, _sync_state, frozenset(), time.monotonic())
            return None if endpoint is None else endpoint.address

    def close(self) -> None:
        with self._lock:
            channels = self._members.all_channels()
        for channel in channels:
            channel.close()


def _sync_state(endpoint: Endpoint[grpc.Channel]) -> grpc.ChannelConnectivity:
    return endpoint.state


def _aio_state(endpoint: Endpoint[grpc.aio.Channel]) -> grpc.ChannelConnectivity:
    return endpoint.channel.get_state(try_to_connect=True)


class AsyncEndpointPool:
    """Endpoint channels for the asyncio client; used from one event loop."""

    def __init__(
        self,
        target: Target,
        channel_factory: Callable[[str], grpc.aio.Channel],
        options: BalancingOptions,
    ) -> None:
        self._members: _Membership[grpc.aio.Channel] = _Membership(target, options)
        self._factory = channel_factory
        self._resolving = asyncio.Lock()

    def _make(self, address: str) -> Endpoint[grpc.aio.Channel]:
        channel = self._factory(endpoint_target(address))
        channel.get_state(try_to_connect=True)
        return Endpoint(address, channel)

    async def _refresh(self) -> None:
        if not self._members.due(time.monotonic()):
            return
        if self._resolving.locked() and self._members.endpoints:
            return  # another task resolves; go on with the endpoints already known
        async with self._resolving:
            if not self._members.due(time.monotonic()):
                return
            try:
                # getaddrinfo blocks: off the event loop.
                addresses = await asyncio.to_thread(self._members.resolve)
            except OSError as exc:
                self._members.resolved_at = time.monotonic()
                if self._members.endpoints:
                    return
                raise NoEndpointError(
                    f"cannot resolve {self._members.target.original}: {exc}"
                ) from exc
            to_close = self._members.update(addresses, time.monotonic(), self._make)
        for endpoint in to_close:
            await endpoint.channel.close()

    async def acquire(
        self, session: str, exclude: frozenset[str]
    ) -> Endpoint[grpc.aio.Channel] | None:
        await self._refresh()
        endpoint = self._members.choose(session, _aio_state, exclude, time.monotonic())
        if endpoint is None and not exclude:
            raise NoEndpointError(f"{self._members.target.original} resolved to no endpoint")
        if endpoint is not None:
            endpoint.in_flight += 1
        return endpoint

    async def release(self, endpoint: Endpoint[grpc.aio.Channel]) -> None:
        if self._members.release(endpoint):
            await endpoint.channel.close()

    def failed(self, endpoint: Endpoint[grpc.aio.Channel]) -> None:
        self._members.failed(endpoint, time.monotonic())

    async def peek(self, session: str) -> str | None:
        await self._refresh()
        endpoint = self._members.choose(session, _aio_state, frozenset(), time.monotonic())
        return None if endpoint is None else endpoint.address

    async def close(self) -> None:
        for channel in self._members.all_channels():
            await channel.close()
