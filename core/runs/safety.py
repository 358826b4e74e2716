"""Safety of a run store shared between processes and users.

* :func:`validate_name`: run ids, run names and prediction names are single path components
  (letters, digits, ``_ . -``; no separators, no ``..``, not absolute), so no argument can
  reach outside the store or onto a run's own result files.
* :class:`RunLock`: an advisory ``flock`` on ``<run>/.lock`` held while a process trains,
  evaluates or predicts with a run. The kernel drops it when the process ends, even on
  ``kill -9``, so a lock never goes stale; a second process gets :class:`RunBusyError`
  naming the holder's pid. Re-entrant within one process.
* :func:`remove_stale_temporaries`: the ``.<name>.*.tmp`` files an interrupted atomic write
  (core.runs.io) leaves behind are removed the next time a process takes the run's lock.
* :func:`this_process` / :func:`process_alive`: the identity a status or job file records of
  the process working on it (pid, host, start time), and whether that process still runs
  (psutil: a zombie is not alive, and a pid the system reused for another process is not ours).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import re
import socket
import stat
import threading
import time
from pathlib import Path

import psutil

#: A safe single path component: starts with a letter or digit, then letters, digits, _ . -
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Longest run name: the run id is ``<YYYYmmdd-HHMMSS>-<name>[-<n>]`` and must stay ≤ 128 characters.
MAX_RUN_NAME = 100
LOCK_FILE = ".lock"
_TRIES = 5  # exclusive-lock attempts, 50 ms apart
#: Temporary files of core.runs.io.atomic_write: ``.<target name>.<random>.tmp``.
TEMP_PATTERN = ".*.tmp"


def this_process() -> dict:
    """The identity of this process as status.json and job.json record it: ``pid``, ``host``
    and ``pid_started`` (its start time, seconds since the epoch, so a reused pid is told apart)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_started": psutil.Process().create_time()}


def process_started(pid: int) -> float | None:
    """Start time of process ``pid`` (seconds since the epoch), or None when it does not exist."""
    try:
        return psutil.Process(int(pid)).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def process_alive(pid: int | None, *, host: str | None = None, started: float | None = None,
                  cmdline_has: str | None = None) -> bool:
    """Whether the process ``pid`` that a file recorded still runs (psutil).

    Args:
        pid: the recorded pid (None or 0: not alive).
        host: the recorded host; a process on another host cannot be checked and counts as alive.
        started: the recorded start time (``this_process()["pid_started"]``): a process with
            another start time is a reused pid, not ours. Files written before this field existed
            have none; then ``cmdline_has`` is the check.
        cmdline_has: text the process's command line must contain (e.g. ``core.jobs``).

    Returns:
        False for a pid that does not exist, a zombie, a reused pid; True otherwise.
    """
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        proc = psutil.Process(int(pid))
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if started is not None and abs(proc.create_time() - float(started)) > 1.0:
            return False
        # the start time identifies the process; the command line is only checked for files
        # without one (it is the parent's between fork and exec, so it would misjudge a new child)
        if started is None and cmdline_has is not None and cmdline_has not in " ".join(proc.cmdline()):
            return False
        return True
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, ValueError):
        return True  # it exists, but is not ours to inspect


class InvalidNameError(ValueError):
    """A user-supplied run id or name is not a safe single path component."""


class RunBusyError(RuntimeError):
    """Another live process holds the run's lock (the message names the run and the pid)."""


def validate_name(value, what: str = "run id", max_len: int = 128) -> str:
    """Return ``value`` if it is a safe single path component, else raise.

    Allowed: 1-``max_len`` characters from ``A-Z a-z 0-9 _ . -``, starting with a letter or
    digit. That excludes ``/`` and ``\\``, ``.`` and ``..``, absolute paths, empty names and
    hidden files.

    Raises:
        InvalidNameError: names ``what``, the value and the rule.
    """
    text = value if isinstance(value, str) else None
    if text is None or not NAME_PATTERN.fullmatch(text) or len(text) > max_len:
        raise InvalidNameError(
            f"invalid {what} {value!r}: expected 1-{max_len} characters from A-Z a-z 0-9 _ . - "
            "starting with a letter or digit (no path separators, no '..', not an absolute path)")
    return text


# ------------------------------------------------------------------------------------ lock
_HELD: dict[Path, list] = {}          # run path -> [fd, depth, purpose] for locks this process holds
_HELD_GUARD = threading.Lock()


def _holder_text(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info.get("pid"):
        return "by another process"
    what = info.get("purpose", "in use")
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    since = f" since {info['since']}" if info.get("since") else ""
    return f"(pid {info['pid']}{where}, {what}{since})"


def _open_lock_file(lock_path: Path, flags: int) -> int:
    """Open the lock file without following a symlink or blocking on a FIFO; only a regular file
    is accepted (a planted link must not make the lock truncate someone else's file).

    Raises:
        OSError: the path is a symlink (ELOOP), a FIFO or another non-regular file.
    """
    try:
        fd = os.open(lock_path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{lock_path} is a symbolic link, not HydroLens' lock file; "
                          "remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{lock_path} is not a regular file; remove it")
    return fd


def lock_holder(run_path: str | os.PathLike) -> str | None:
    """A description of the process holding the run's lock (``"(pid 123, training since …)"``),
    or None when nobody holds it. Never creates or changes a file."""
    run_path = Path(run_path)
    held = _HELD.get(run_path.resolve())
    if held is not None:
        return f"(pid {os.getpid()}, {held[2]}; this process)"
    lock_path = run_path / LOCK_FILE
    try:
        fd = _open_lock_file(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _holder_text(lock_path)
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """Context manager: hold ``<run>/.lock`` exclusively for ``purpose`` (training, evaluating…).

    Re-entrant in one process (nested ``with`` blocks of the same run share one lock). On first
    acquisition it removes temporaries of interrupted atomic writes (see module docstring).

    Raises:
        RunBusyError: another process holds the lock (non-blocking; names its pid).
    """

    def __init__(self, run_path: str | os.PathLike, purpose: str, run_id: str | None = None):
        self.path = Path(run_path).resolve()
        self.purpose = purpose
        self.run_id = run_id or self.path.name
        self.removed: list[Path] = []

    def __enter__(self) -> "RunLock":
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is not None:
                held[1] += 1
                return self
            lock_path = self.path / LOCK_FILE
            fd = _open_lock_file(lock_path, os.O_RDWR | os.O_CREAT)
            try:
                # a few tries: lock_holder()'s brief shared probe (a listing) must not read as busy
                for attempt in range(_TRIES):
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as e:
                        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                            raise
                        if attempt == _TRIES - 1:
                            raise RunBusyError(f"run {self.run_id} is busy {_holder_text(lock_path)}; "
                                               "wait for it to finish or stop that process") from None
                        time.sleep(0.05)
                info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            except BaseException:
                os.close(fd)  # closing drops the flock too
                raise
            _HELD[self.path] = [fd, 1, self.purpose]
        try:
            self.removed = remove_stale_temporaries(self.path)
        except OSError:
            self.removed = []
        return self

    def __exit__(self, *exc) -> None:
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del _HELD[self.path]
                fd = held[0]
                try:
                    os.ftruncate(fd, 0)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)


def remove_stale_temporaries(run_path: str | os.PathLike) -> list[Path]:
    """Delete leftovers of interrupted atomic writes in a run directory (its own files,
    ``checkpoints/`` and ``predictions/*/``). Call only while holding the run's lock.

    Returns:
        the removed paths.
    """
    run_path = Path(run_path)
    removed = []
    for folder in (run_path, run_path / "checkpoints", *sorted((run_path / "predictions").glob("*"))):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for p in folder.glob(TEMP_PATTERN):
            try:
                if p.is_symlink() or p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
            except OSError:  # e.g. another user's leftover: not ours to remove, not fatal
                continue
    return removed
