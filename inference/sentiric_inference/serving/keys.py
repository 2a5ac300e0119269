"""API keys from a file: who is calling, checked in constant time, re-read when it changes.

The file (server.auth.apiKeysFile, usually a mounted Kubernetes Secret) holds one key per
line, `name:key` or a bare key; blank lines and `#` comments are ignored. The name is what
metrics and logs show (a bare key is named `key-<first 8 hex digits of its SHA-256>`, stable
and useless for guessing it); the key itself is never logged nor quoted in an error.

Secret rotation needs no restart: at most once a second, a call checks the file with `stat`
(following symlinks, so the kubelet's `..data` swap is seen) and reads it again when its
inode, size or mtime changed. A file that cannot be read or parsed keeps the last good keys
(with one warning per change); a file that parses to no keys refuses every call, since an
empty Secret must never open the API.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sentiric_inference.errors import UnauthenticatedError

log = logging.getLogger(__name__)

# Seconds between two checks of the file for a change.
CHECK_INTERVAL_S = 1.0
# A key file is a few lines; a larger one is a mistake (a wrong path), not a key list.
MAX_FILE_BYTES = 1024 * 1024
# Shorter keys can be guessed; `openssl rand -hex 32` gives 64 characters.
MIN_KEY_CHARS = 16
# Names are Prometheus label values and log fields: short, printable, no spaces.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# What an HTTP header value (and gRPC metadata) can carry without escaping.
_KEY = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the API key's name, or "" when API keys are off."""

    name: str


ANONYMOUS = Caller("")


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the line, never a key."""


def bare_key_name(key: str) -> str:
    """The stable, non-secret name of a key listed without one."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def parse_keys(text: str) -> dict[bytes, str]:
    """SHA-256 digest of each key -> its name; KeyFileError names the first bad line."""
    keys: dict[bytes, str] = {}
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        if not sep:
            name, key = "", line
        name, key = name.strip(), key.strip()
        if sep and not _NAME.match(name):
            raise KeyFileError(
                f"line {number}: the name before ':' must be 1-63 letters, digits, '.', '_' or "
                "'-' (a key that contains ':' needs a name: name:key)"
            )
        if len(key) < MIN_KEY_CHARS or not _KEY.match(key):
            raise KeyFileError(
                f"line {number}: a key must be at least {MIN_KEY_CHARS} printable ASCII "
                "characters without spaces"
            )
        name = name or bare_key_name(key)
        digest = hashlib.sha256(key.encode()).digest()
        if digest in keys:
            raise KeyFileError(f"line {number}: this key is listed twice")
        if name in names:
            raise KeyFileError(f"line {number}: the name {name!r} is used twice")
        keys[digest] = name
        names.add(name)
    return keys


def bearer_token(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` value; None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def _signature(path: Path) -> tuple[int, int, int, int]:
    # os.stat follows symlinks: a Secret volume's file is a link through `..data`.
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class KeyRing:
    """The keys of one file, reloaded on change; `authenticate` maps a key to its Caller."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read the file now; KeyFileError when it cannot be used (the server must not
        start without the keys it was told to require)."""
        self.path = path
        self._check_interval = check_interval
        self._clock = clock
        try:
            signature = _signature(path)
            self._keys = self._read(path)
        except OSError as exc:
            raise KeyFileError(
                f"cannot read the API key file {path} (server.auth.apiKeysFile): {exc.strerror}"
            ) from exc
        except KeyFileError as exc:
            raise KeyFileError(
                f"the API key file {path} (server.auth.apiKeysFile) is invalid: {exc}"
            ) from exc
        self._signature: tuple[int, int, int, int] | None = signature
        # The signature of a file that failed to load, so its warning is logged once.
        self._rejected: tuple[int, int, int, int] | None = None
        self._checked = clock()
        self._announce()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._keys.values())

    def authenticate(self, key: str | None) -> Caller:
        """The caller a key belongs to; UnauthenticatedError for none or an unknown one."""
        self.refresh()
        if key is None:
            raise UnauthenticatedError(
                "This server requires an API key: send it as 'Authorization: Bearer <key>'."
            )
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        # Every configured key is compared, each in constant time, whichever one matches.
        for known, name in self._keys.items():
            if hmac.compare_digest(digest, known):
                found = name
        if found is None:
            raise UnauthenticatedError("The API key is not valid for this server.")
        return Caller(found)

    def refresh(self) -> None:
        """Reload the file if it changed (checked at most every `check_interval` s)."""
        now = self._clock()
        if now - self._checked < self._check_interval:
            return
        self._checked = now
        try:
            signature = _signature(self.path)
        except OSError as exc:
            self._warn(None, f"cannot be read ({exc.strerror})")
            return
        if signature == self._signature or signature == self._rejected:
            return
        try:
            keys = self._read(self.path)
        except (OSError, KeyFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self._warn(signature, reason or "unreadable")
            return
        self._keys = keys
        self._signature = signature
        self._rejected = None
        self._announce(reloaded=True)

    def _read(self, path: Path) -> dict[bytes, str]:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise KeyFileError(f"the file is larger than {MAX_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyFileError("the file is not UTF-8 text") from exc
        return parse_keys(text)

    def _warn(self, signature: tuple[int, int, int, int] | None, reason: str) -> None:
        if signature is not None and signature == self._rejected:
            return
        if signature is None and self._rejected == (-1, -1, -1, -1):
            return
        self._rejected = signature if signature is not None else (-1, -1, -1, -1)
        log.warning(
            "the API key file %s (server.auth.apiKeysFile) %s; keeping the %d key(s) loaded before",
            self.path,
            reason if reason.startswith("cannot") else f"was not loaded: {reason}",
            len(self._keys),
        )

    def _announce(self, *, reloaded: bool = False) -> None:
        verb = "reloaded" if reloaded else "loaded"
        if not self._keys:
            log.warning(
                "API key file %s %s with no keys: every API call is refused (401 / "
                "UNAUTHENTICATED) until keys are added",
                self.path,
                verb,
            )
            return
        log.info("API keys %s from %s: %s", verb, self.path, ", ".join(sorted(self._keys.values())))
