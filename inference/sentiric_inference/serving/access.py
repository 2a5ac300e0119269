"""Who may call (API keys) and how much (per-key limits), for both API surfaces.

The wire layers hand over the `Authorization` value they received; the serving layer admits
each request of a known caller against its limits and releases it, with the tokens it used,
when it ends. Every count here is labelled with the key's name, never the key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sentiric_inference.config import AuthSettings
from sentiric_inference.errors import RateLimitedError, UnauthenticatedError
from sentiric_inference.metrics import Metrics
from sentiric_inference.serving.keys import ANONYMOUS, Caller, KeyRing, bearer_token
from sentiric_inference.serving.quotas import Quotas

log = logging.getLogger(__name__)

# key_requests_total's outcome for a tokenize / detokenize call that was answered.
OUTCOME_OK = "ok"


class Ticket:
    """One admitted request of one caller; `release` it exactly once (later calls no-op)."""

    __slots__ = ("_access", "_caller", "_released")

    def __init__(self, access: Access | None, caller: Caller) -> None:
        self._access = access
        self._caller = caller
        self._released = access is None

    def release(self, outcome: str, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        if self._released or self._access is None:
            return
        self._released = True
        self._access.released(self._caller, outcome, prompt_tokens, completion_tokens)


class Access:
    """API keys and per-key limits; with no key file, everyone is the anonymous caller."""

    def __init__(
        self,
        settings: AuthSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises KeyFileError when the configured key file cannot be used at start."""
        self._metrics = metrics
        path = settings.api_keys_file
        self.keys: KeyRing | None = KeyRing(path, clock=clock) if path is not None else None
        self.quotas = Quotas(settings.per_key, clock=clock)

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def authenticate(self, authorization: str | None, *, api: str) -> Caller:
        """The caller an `Authorization: Bearer <key>` value names; UnauthenticatedError
        when keys are on and the value is missing or holds no configured key."""
        if self.keys is None:
            return ANONYMOUS
        token = bearer_token(authorization)
        try:
            return self.keys.authenticate(token)
        except UnauthenticatedError:
            reason = "missing" if token is None else "invalid"
            self._metrics.auth_failures_total.labels(api, reason).inc()
            raise

    def admit(self, caller: Caller) -> Ticket:
        """Count a request against its caller's limits, or raise RateLimitedError."""
        if not caller.name:
            return Ticket(None, caller)
        try:
            self.quotas.acquire(caller.name)
        except RateLimitedError as exc:
            self._metrics.key_rejections_total.labels(caller.name, exc.limit).inc()
            self._metrics.key_requests_total.labels(caller.name, "rate_limited").inc()
            log.info("API key %s refused: over %s", caller.name, exc.limit)
            raise
        self._metrics.key_requests_in_flight.labels(caller.name).inc()
        return Ticket(self, caller)

    def released(
        self, caller: Caller, outcome: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        name = caller.name
        self.quotas.release(name, prompt_tokens + completion_tokens)
        metrics = self._metrics
        metrics.key_requests_in_flight.labels(name).dec()
        metrics.key_requests_total.labels(name, outcome).inc()
        if prompt_tokens:
            metrics.key_tokens_total.labels(name, "prompt").inc(prompt_tokens)
        if completion_tokens:
            metrics.key_tokens_total.labels(name, "completion").inc(completion_tokens)
