"""``gdyn download``: fetch one file over HTTP(S), resumable, retried, checksummed, atomic.

The body is streamed to ``OUT.part``; after a dropped connection the next attempt asks for
the rest with an HTTP ``Range`` request. Attempts are retried with exponential backoff.
The finished ``.part`` is md5-verified (against ``--md5``, or the md5 listed by the
Materials Cloud / InvenioRDM record the URL points into); a ``.npz`` must also load and
pass the trajectory validator (an HTML error page served with status 200, or a body cut
short by a server that sent no Content-Length, is caught even when no md5 is known). Only
then is it renamed to ``OUT``, so ``OUT`` exists only when complete and verified. A
``.part`` left by a dropped connection is kept so that a rerun resumes instead of starting
over; one that fails a check is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from gdyn.errors import InputError
from gdyn.files import atomic_path
from gdyn.trajectory import (
    copy_npz_uncompressed,
    is_compressed_npz,
    load_trajectory,
    validate_trajectory,
)

__all__ = [
    "CHUNK_BYTES",
    "describe_received",
    "download",
    "listed_md5",
    "md5_file",
    "normalise_md5",
    "parse_listing",
    "part_path",
    "record_listing",
    "short_reason",
]

log = logging.getLogger(__name__)

# Small enough that a dropped connection loses little (the partial chunk being read is
# discarded by urllib3), large enough to keep Python overhead negligible.
CHUNK_BYTES = 1 << 16
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
# https://host/records/<id>/files/<name>[?download=1]: an InvenioRDM (Materials Cloud
# Archive) file link; its record's file listing is https://host/api/records/<id>/files.
_RECORD_FILE_RE = re.compile(r"^(https?://[^/]+)/records/([^/?#]+)/files/([^?#]+)")


class _Retryable(Exception):
    """A transient failure: try again (resuming what is already in the .part file)."""


class _Fatal(Exception):
    """A failure that retrying cannot fix (404, 403, malformed URL)."""


def part_path(out: str | os.PathLike[str]) -> Path:
    """The ``.part`` file a download into ``out`` streams to."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def md5_file(path: str | os.PathLike[str]) -> str:
    """Hex md5 digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def normalise_md5(md5: str, where: str = "--md5") -> str:
    """Lower-case 32-digit hex md5 (an ``md5:`` prefix is accepted); InputError otherwise."""
    value = md5.strip().lower().removeprefix("md5:")
    if not _MD5_RE.match(value):
        raise InputError(f"{where}: expected 32 hexadecimal digits, got {md5!r}")
    return value


def record_listing(url: str) -> tuple[str, str] | None:
    """(file-listing API URL, file name) for an InvenioRDM record file URL, else None."""
    m = _RECORD_FILE_RE.match(url)
    if not m:
        return None
    host, record, name = m.groups()
    return f"{host}/api/records/{record}/files", unquote(name)


def parse_listing(listing: Any, name: str) -> tuple[str | None, int | None]:
    """(md5, size) of file ``name`` in an InvenioRDM file listing (``entries`` list or dict)."""
    entries = listing.get("entries", []) if isinstance(listing, dict) else []
    if isinstance(entries, dict):
        entries = [dict(v, key=v.get("key", k)) for k, v in entries.items()]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("key") == name:
            checksum = str(entry.get("checksum") or "")
            md5 = None
            if checksum.lower().startswith("md5:"):
                md5 = normalise_md5(checksum, f"file listing entry {name!r} checksum")
            size = entry.get("size")
            return md5, int(size) if isinstance(size, int) else None
    return None, None


def listed_md5(session: Any, url: str, timeout: float) -> tuple[str | None, int | None]:
    """md5 and size of ``url``'s file from its record's listing; (None, None) when unknown."""
    import requests

    found = record_listing(url)
    if found is None:
        return None, None
    api, name = found
    try:
        r = session.get(api, timeout=(timeout, timeout), headers={"Accept": "application/json"})
        r.raise_for_status()
        md5, size = parse_listing(r.json(), name)
    except (requests.RequestException, ValueError) as exc:
        log.warning("could not read the md5 of %s from %s (%s)", name, api,
                    short_reason(exc, timeout))
        return None, None
    if md5 is None:
        log.warning("the file listing %s gives no md5 for %s", api, name)
    return md5, size


def short_reason(exc: BaseException, timeout: float) -> str:
    """One short phrase for a requests failure (urllib3's messages run to several lines)."""
    import requests

    kind = type(exc).__name__
    if isinstance(exc, requests.Timeout):
        return f"{kind}: no answer within {timeout:g} s"
    m = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    if m:
        return f"{kind}: {m.group(0).strip()}"
    text = " ".join(str(exc).split())
    return f"{kind}: {text[:200]}"


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` header."""
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not m:
        return None, None
    total = None if m.group(2) == "*" else int(m.group(2))
    return int(m.group(1)), total


def _fetch_once(session: Any, url: str, part: Path, timeout: float, progress: bool) -> None:
    """One attempt: stream (the rest of) ``url`` into ``part``. Raises _Retryable/_Fatal."""
    import requests
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    # identity: Content-Length and Range must count the bytes we write, not gzip'd ones
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    total = None
    try:
        with session.get(url, stream=True, timeout=(timeout, timeout), headers=headers) as r:
            if r.status_code == 416 and have:
                m = re.match(r"bytes\s+\*/(\d+)", r.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    return  # the .part already holds the whole file
                part.unlink(missing_ok=True)
                raise _Retryable(f"HTTP 416 for a resume at byte {have}; starting over")
            if r.status_code in (408, 425, 429) or r.status_code >= 500:
                raise _Retryable(f"HTTP {r.status_code} {r.reason}")
            if r.status_code >= 400:
                raise _Fatal(f"HTTP {r.status_code} {r.reason}")
            mode = "wb"
            if have and r.status_code == 206:
                start, _ = _content_range_start(r.headers.get("Content-Range"))
                if start != have:
                    part.unlink(missing_ok=True)
                    raise _Retryable(f"server resumed at byte {start}, not {have}; starting over")
                mode = "ab"
            else:
                have = 0  # server ignored the Range: it sends the whole file again
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            with open(part, mode) as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), file=sys.stderr, disable=not progress,
            ) as bar:
                for chunk in r.iter_content(CHUNK_BYTES):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise _Fatal(f"invalid URL ({exc})") from None
    except requests.RequestException as exc:
        raise _Retryable(short_reason(exc, timeout)) from None
    got = part.stat().st_size if part.exists() else 0
    if total is not None and got < total:
        raise _Retryable(f"connection closed after {got} of {total} bytes")


def download(url: str, out: str | os.PathLike[str], md5: str | None = None, *,
             timeout: float = 30.0, retries: int = 5, backoff: float = 2.0,
             use_listing: bool = True, progress: bool = True, session: Any = None) -> str:
    """Download ``url`` to ``out`` atomically; return the md5 of the downloaded file.

    A compressed ``.npz`` is verified as downloaded, then stored uncompressed at ``out``
    (memory-mappable), so ``out``'s own md5 then differs from the returned one. An ``out``
    ending in ``.npz`` must hold a valid trajectory (:func:`gdyn.trajectory
    .validate_trajectory`); otherwise nothing is left and the error says what arrived.

    ``timeout`` is the connect and the read timeout (s); ``retries`` the number of extra
    attempts after a transient failure, waiting ``backoff * 2**i`` s before attempt i+1.
    ``md5`` (hex) is checked if given; otherwise, when ``use_listing`` and the URL is an
    InvenioRDM record file link, the md5 listed by the record is checked. Every failure
    raises :class:`InputError` naming the URL and the path to put the file by hand.
    """
    import requests

    out = Path(out)
    part = part_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_hand = f"download it by hand and put it at {out}, then rerun"
    expected = normalise_md5(md5) if md5 else None
    expected_size = None
    own_session = session is None
    session = session or requests.Session()
    try:
        if expected is None and use_listing:
            expected, expected_size = listed_md5(session, url, timeout)
        reason = ""
        for attempt in range(retries + 1):
            if attempt:
                wait = backoff * 2 ** (attempt - 1)
                log.warning("attempt %d of %d failed (%s); retrying in %.3g s",
                            attempt, retries + 1, reason, wait)
                time.sleep(wait)
            try:
                _fetch_once(session, url, part, timeout, progress)
                break
            except _Fatal as exc:
                _drop_empty(part)
                raise InputError(f"could not download {url}: {exc}; {by_hand}") from None
            except _Retryable as exc:
                reason = str(exc)
            except OSError as exc:  # writing the .part (disk full, ...): not retried; the
                # bytes kept there are resumed by the rerun once there is room
                raise OSError(exc.errno, exc.strerror or str(exc),
                              exc.filename or str(part)) from None
        else:
            _drop_empty(part)
            kept = f" ({part.stat().st_size} bytes kept in {part} for resuming)" if part.exists() else ""
            raise InputError(
                f"could not download {url} after {retries + 1} attempts ({reason}){kept}; "
                f"if this machine is offline, {by_hand}"
            )
    finally:
        if own_session:
            session.close()

    got = md5_file(part)
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise InputError(
            f"{url}: size: expected {expected_size} bytes (record listing), got {size}; "
            f"the download was discarded; rerun, or {by_hand}"
        )
    if expected is not None and got != expected:
        part.unlink()
        raise InputError(
            f"{url}: md5: expected {expected}, got {got} ({size} bytes); the download was "
            f"discarded; rerun, or {by_hand}"
        )
    if expected is None:
        log.warning("no md5 known for %s: not verified (its md5 is %s; pin it in the config)",
                    url, got)
    if out.suffix != ".npz":
        os.replace(part, out)
        return got
    # A trajectory must load and validate before it takes the final path: without a known
    # md5 nothing else catches an error page served with status 200, or a body cut short
    # by a server that sent no Content-Length.
    what = describe_received(part)
    if not zipfile.is_zipfile(part):
        part.unlink()
        raise InputError(
            f"could not download {url}: received {what}, not a .npz trajectory; the download "
            f"was discarded; {by_hand}"
        )
    try:
        if is_compressed_npz(part):
            # compressed members cannot be memory-mapped: store them once, uncompressed, so
            # that every later stage reads only the frames it needs (and validate that copy)
            log.info("%s is a compressed .npz: storing it uncompressed", out)
            with atomic_path(out, suffix=".npz") as tmp:
                copy_npz_uncompressed(part, tmp)
                _validate(tmp, url)
            part.unlink()
        else:
            _validate(part, url)
            os.replace(part, out)
    except InputError as exc:
        part.unlink(missing_ok=True)
        raise InputError(
            f"could not download {url}: received {what}, which is not a valid trajectory "
            f"({exc}); the download was discarded; {by_hand}"
        ) from None
    return got


def _validate(path: Path, url: str) -> None:
    """Load ``path`` memory-mapped and run the trajectory validator (InputError if bad)."""
    traj = load_trajectory(path, mmap=True, validate=False)
    validate_trajectory(traj, "the file")
    del traj  # release the memory maps before the file is renamed or removed


def describe_received(path: str | os.PathLike[str]) -> str:
    """What a downloaded file is, in a few words: "an HTML page, 39 bytes", "a zip archive
    of 1234 bytes", ... (for messages about a download that is not what was asked for)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(512)
    text = head.lstrip().lower()
    if size == 0:
        return "an empty file (0 bytes)"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<body" in text:
        return f"an HTML page, {size} bytes"
    if text.startswith(b"<?xml") or text.startswith(b"<"):
        return f"an XML/markup document, {size} bytes"
    if text.startswith((b"{", b"[")):
        return f"a JSON/text document, {size} bytes"
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return f"a truncated or corrupt zip archive of {size} bytes (no zip directory)"
        return f"a .npz (zip) archive of {size} bytes"
    return f"{size} bytes starting with {head[:16]!r}"


def _drop_empty(part: Path) -> None:
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
