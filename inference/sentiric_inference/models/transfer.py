"""One resumable transfer attempt: append the file's missing bytes to a partial file.

The partial file lives next to the destination on the cache volume, so a pod killed halfway
resumes where it stopped (HTTP Range) instead of starting a multi-GB download over.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from sentiric_inference.models.errors import DiskFullError, TransientError
from sentiric_inference.models.hub import HubFile, RemoteFile, describe_failure, open_stream
from sentiric_inference.models.progress import ProgressLog, human_bytes

logger = logging.getLogger(__name__)


def _disk_full(path: Path, needed: int | None) -> DiskFullError:
    want = f"; {human_bytes(needed)} more are needed" if needed else ""
    return DiskFullError(
        f"no space left on the cache volume writing {path}{want}: raise spec.model.cache.size"
    )


def fetch_into(
    partial: Path,
    remote: RemoteFile,
    source: HubFile,
    *,
    token: str | None,
    timeout: float,
    progress: ProgressLog,
) -> None:
    """Download what `partial` still lacks; raises TransientError (retryable) on network trouble."""
    offset = partial.stat().st_size if partial.exists() else 0
    if remote.size is not None and offset > remote.size:
        logger.warning("partial file %s is larger than the remote file; starting over", partial)
        offset = 0
        partial.unlink()
    if remote.size is not None and offset == remote.size:
        return
    if offset:
        logger.info("resuming %s at %s", source, human_bytes(offset))
    written = 0
    try:
        with open_stream(remote, source, offset=offset, token=token, timeout=timeout) as response:
            if offset and response.status_code != 206:
                # The server ignored the Range header and sends the whole file again.
                logger.warning("server ignored the Range request for %s; starting over", source)
                offset = 0
            progress.restart(offset)
            with partial.open("ab" if offset else "wb") as out:
                # No chunk_size: httpx would buffer up to it and lose the buffer on a reset;
                # writing each network read as it arrives keeps every received byte resumable.
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
                    progress.advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            needed = None if remote.size is None else remote.size - offset - written
            raise _disk_full(partial, needed) from exc
        raise describe_failure(exc, source, progressed=written > 0) from exc
    except Exception as exc:
        raise describe_failure(exc, source, progressed=written > 0) from exc
    size = partial.stat().st_size
    if remote.size is not None and size != remote.size:
        raise TransientError(
            f"short transfer for {source}: have {size} of {remote.size} bytes",
            progressed=written > 0,
        )
