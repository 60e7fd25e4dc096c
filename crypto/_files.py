"""Private-file helpers: exclusive 0600 creation, permission-checked reads
and atomic replacement. Standard library only; no plaintext goes through here,
only key material and keyring metadata."""

from __future__ import annotations

import os
import stat
import tempfile

__all__ = ["InsecureFileError", "create_private", "read_private", "replace_private"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_MAX_PRIVATE_FILE = 4 * 1024 * 1024


class InsecureFileError(Exception):
    """A key file is not a regular file, is accessible to group/others, or is
    unreasonably large."""


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def create_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Create ``path`` exclusively with mode 0600 and write ``data``.

    Raises FileExistsError if anything (including a dangling symlink) is
    already there. The file never exists with wider permissions.
    """
    path = os.fspath(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exact mode, whatever the umask
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:  # pragma: no cover
            pass
        raise
    os.close(fd)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def read_private(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """Read a private file, refusing it unless it is a regular file with no
    group/other permission bits. Returns its content and its fstat result."""
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InsecureFileError(f"{path}: not a regular file")
        if st.st_mode & 0o077:
            raise InsecureFileError(
                f"{path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open; "
                "the file must not be accessible to group or others (chmod 600)"
            )
        if st.st_size > _MAX_PRIVATE_FILE:
            raise InsecureFileError(f"{path}: file is too large")
        chunks = []
        remaining = _MAX_PRIVATE_FILE + 1
        while remaining > 0:
            chunk = os.read(fd, min(65536, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > _MAX_PRIVATE_FILE:
            raise InsecureFileError(f"{path}: file is too large")
        return data, st
    finally:
        os.close(fd)


def replace_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` (its symlink target, if it is one) with
    ``data``: a 0600 temporary file in the same directory, fsync, rename,
    fsync of the directory. Readers see the old or the new file, never a mix."""
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=directory
    )
    try:
        os.fchmod(fd, 0o600)
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
