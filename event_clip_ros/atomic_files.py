"""Crash-safe file replacement: write a temporary file, fsync it, rename it over the target.

This is the one atomic-write mechanism of the project (training states, model
checkpoints, reports, the retrieval index's directory); a base module that every
layer may use. Temporary files are named ``.{target}.{pid}.{token}.tmp``
in the target's directory: the writer's process id makes the temporary of an
interrupted write (a kill, a crash, a power loss) recognisable, so the next
write to the same target (:func:`atomic_write_file`) and a training resume
(:func:`remove_stale_temporaries`) delete those whose writer is gone, while a
write still running in another process is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

TMP_SUFFIX = ".tmp"

#: ``.{target}.{pid}.{token}.tmp``: what :func:`temporary_path` names.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
#: ``.{target}.{uuid4 hex}.tmp``: temporaries of earlier versions, which recorded no writer.
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{32}\.tmp$")
#: A process that started this long after a temporary's last change cannot have written it
#: (covers the coarse boot-time clock that process start times are derived from).
_START_SLACK_S = 2.0

_in_flight: set[Path] = set()  # temporaries this process is writing now
_in_flight_lock = threading.Lock()


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name for a write of ``path``: ``.{name}.{pid}.{token}.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def atomic_write_file(path: str | os.PathLike, write_to: Callable[[Path], None]) -> Path:
    """Replace ``path`` with the file ``write_to(tmp)`` creates at the path ``tmp``, all or nothing.

    For writers that take a file name (``safetensors.torch.save_file``). The
    temporary file lives in the target's directory (so ``os.replace`` is an
    atomic rename on POSIX), is fsync'ed before the rename, and the directory is
    fsync'ed after it, so after a crash or power loss ``path`` holds either the
    old or the complete new content. When ``write_to`` raises, the temporary file
    is removed and the old ``path`` is left untouched. Temporaries of earlier
    writes of ``path`` whose writer is gone are deleted first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, target=path.name)
    tmp = temporary_path(path)
    with _in_flight_lock:
        _in_flight.add(tmp)
    try:
        write_to(tmp)
        os.chmod(tmp, _mode_for(path))
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(tmp)
    fsync_dir(path.parent)
    return path


def _mode_for(path: Path) -> int:
    """Permission bits for a new version of ``path``: the current file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it (Linux); 0o022 where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Replace ``path`` with what ``write(file)`` writes to a binary file, all or nothing
    (see :func:`atomic_write_file`)."""

    def write_to(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_write_file(path, write_to)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def remove_stale_temporaries(directory: str | os.PathLike, target: str | None = None) -> list[Path]:
    """Delete the temporaries interrupted writes left in ``directory``; returns them.

    Only those of the file named ``target`` when given. A temporary is stale when
    the process that wrote it has ended (or its id now belongs to a process
    started after the file's last change); temporaries of earlier versions, which
    recorded no writer, are stale too. Temporaries of writes still running are kept.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if _is_stale_temporary(p, target)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _is_stale_temporary(p: Path, target: str | None) -> bool:
    if not p.name.endswith(TMP_SUFFIX):
        return False
    match = _TEMP_NAME.match(p.name) or _LEGACY_TEMP_NAME.match(p.name)
    if match is None or (target is not None and match["target"] != target) or not p.is_file():
        return False
    if match.re is _LEGACY_TEMP_NAME:
        return True  # an earlier version's temporary: nothing can finish or remove it
    try:
        return not _writer_running(int(match["pid"]), p)
    except FileNotFoundError:  # renamed or removed meanwhile: its write ended
        return False


def _writer_running(pid: int, tmp: Path) -> bool:
    """Whether the process ``pid`` may still be writing ``tmp``."""
    if pid == os.getpid():  # also a container restart that reused the dead writer's pid
        with _in_flight_lock:
            return tmp in _in_flight
    if os.name != "posix":
        return True  # no cheap liveness test (os.kill would terminate the process): keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    status = _process_status(pid)
    if status is None:
        return True  # no /proc (macOS): alive is all we know
    state, started = status
    return state not in ("Z", "X") and started <= tmp.stat().st_mtime + _START_SLACK_S


def _process_status(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in epoch seconds) of a process from Linux's /proc, None without it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _fsync_file(path: Path) -> None:
    """Persist the content of ``path`` (flushed by its writer, which closed it)."""
    fd = os.open(path, os.O_RDWR)  # some systems refuse fsync on a read-only descriptor
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


def fsync_file_object(f: IO[Any]) -> None:
    """Flush an open file (binary or text) and persist its content."""
    f.flush()
    os.fsync(f.fileno())


def atomic_replace_dir(new: Path, target: Path, previous_suffix: str = ".previous") -> None:
    """Move the complete directory ``new`` to ``target``, keeping the old one until it is there.

    ``target`` is first moved aside to ``<target><previous_suffix>``; if moving ``new``
    in then fails, it is moved back. A previous directory left by a process that died
    between the two renames is what a reader may fall back to; it is removed once the
    new directory is in place.
    """
    previous = target.with_name(target.name + previous_suffix)
    if target.exists() and previous.exists():
        shutil.rmtree(previous)  # left over after an interrupted clean-up; target is complete
    if target.exists():
        os.rename(target, previous)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(previous, target)
            shutil.rmtree(new, ignore_errors=True)
            raise
    else:
        try:
            os.rename(new, target)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
    fsync_dir(target.parent)
    if previous.exists():
        shutil.rmtree(previous)
