"""Files that are whole or absent: every file the harness writes goes to a temporary file beside
it, is flushed to disk and then renamed over the target (rename is atomic on POSIX and NTFS).
A full disk, a signal or a crash leaves the old file (or none), never half of a new one; the
error names the path in one line. Folders are created atomically with a suffix on conflict."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class WriteFailed(OSError):
    """Writing `path` failed; str() is one line naming the path and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@contextmanager
def replacing(path: Path | str, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed.
    The temporary name keeps the suffix, so tools that infer a format from it (pandas' .csv.gz,
    matplotlib's .png) still do. `durable`: flushed to the disk before the rename (results);
    scratch state that dies with the machine anyway can skip that."""
    path = Path(path)
    tmp = path.with_name(f".{secrets.token_hex(4)}.{path.name}")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDWR)  # Windows commits only writable handles
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailed):
            raise WriteFailed(path, _reason(exc)) from None
        raise


def write_atomic(path: Path | str, data: str | bytes, durable: bool = True) -> Path:
    path = Path(path)
    with replacing(path, durable) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    return path


def make_unique_dir(parent: Path, name: str) -> Path:
    """parent/name, or parent/name-2, -3, ... if another process took it first (mkdir is atomic)."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteFailed(parent, _reason(exc)) from None
    suffix = 1
    while True:
        path = parent / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1
        except OSError as exc:
            raise WriteFailed(path, _reason(exc)) from None
