"""One writer per run directory: a run holds a lock file in its folder for as long as it
writes there; a second writer is refused at once (:class:`~glfnet.errors.RunLockedError`).

**Mechanism: ``fcntl.flock`` on the lock file, which also records who holds it.** The lock
file (named by :mod:`glfnet.eval.rundir`) is opened, locked with ``flock(LOCK_EX | LOCK_NB)``
and then filled with JSON ``{pid, host, started, command}``; the holder removes it when it
ends, on errors and Ctrl-C included. Why ``flock`` and not an ``O_CREAT | O_EXCL`` file
checked with ``os.kill(pid, 0)``:

* the kernel releases a ``flock`` when the process dies, however it dies (SIGKILL, the OOM
  killer, a crash): a killed run's lock is taken over by the next run on the same host, with
  no guessing from a pid;
* so pid reuse cannot fool it: a recorded pid that now belongs to another process does not
  keep the folder locked, and a live holder is never judged dead. The JSON only serves the
  message (who holds the folder, since when, running what);
* taking over a stale lock is atomic: whoever gets the ``flock`` owns the file, where two
  processes that both found an ``O_EXCL`` file stale could both delete and recreate it.

Removing the file on release opens one race, closed the usual way: a process that opened the
file just before its holder removed it gets the ``flock`` of a file no longer in the folder;
after locking, it checks that the path still names the file it locked, else starts over.

**Another host.** A lock file written on another host (the ``host`` it records differs) is
never taken over: on a network file system ``flock`` may not reach across hosts, so a live run
there cannot be told from a dead one; the message says to delete the file if that run is gone.
**File systems without ``flock``** (``ENOLCK``, ``EOPNOTSUPP``): the lock falls back to the
recorded pid, alive per ``os.kill(pid, 0)`` on the same host (pid reuse can then keep a dead
run's lock: refused, with the file to delete named).

The lock is re-entrant within a process (the command line holds it for the whole command and
the library functions it calls take it again), and belongs to the process that runs the
protocol: with ``--backend ray`` the driver, which writes the run directory; workers (local or
Ray) write nothing and never touch it. The file descriptor is not inherited by started
processes (Python opens files non-inheritable).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from glfnet.errors import GlfnetError, RunLockedError

try:
    import fcntl
except ImportError:  # not POSIX: the recorded pid decides (see the module docstring)
    fcntl = None  # type: ignore[assignment]

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _command() -> str:
    """This process's command line as a user typed it (``glfnet loso ...``)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return shlex.join(["glfnet" if name == "__main__.py" else name, *sys.argv[1:]])


@dataclass
class Holder:
    """What a lock file records of the process holding it."""

    pid: int
    host: str = field(default_factory=socket.gethostname)
    started: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))
    command: str = field(default_factory=_command)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder in a lock file's text; None when it is empty or not a holder's JSON."""
        try:
            d = json.loads(text)
            return cls(int(d["pid"]), str(d["host"]), str(d.get("started", "?")), str(d.get("command", "?")))
        except (ValueError, TypeError, KeyError):
            return None

    def __str__(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started}, command: {self.command}"

    def alive(self) -> bool:
        """Whether the pid (of this host) names a live process other than this one, for file
        systems without ``flock`` (:func:`os.kill` with signal 0 checks, sends nothing)."""
        if self.pid == os.getpid():
            return False  # this process holds no lock here: one it left (see ``_HELD``)
        if os.name != "posix":
            return True  # no safe check there: keep the lock, the message names the file
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True


@dataclass
class RunLock:
    """A lock held by this process: its file, this process's record, and the record of a
    dead holder it took over (None when the folder was free)."""

    path: Path
    holder: Holder
    previous: Holder | None
    fd: int
    created: list[Path]  # folders the lock created (removed again when left empty)
    depth: int = 1


_HELD: dict[Path, RunLock] = {}


@contextlib.contextmanager
def hold(lock_file: str | Path, what: str = "", create: bool = True) -> Iterator[RunLock | None]:
    """Hold ``lock_file`` (in the folder it names, created with ``create`` and removed again
    if it stays empty) while the block runs; re-entrant within this process. Yields the
    :class:`RunLock`; None when ``create`` is off and the folder does not exist (nothing to
    protect). Raises :class:`RunLockedError` naming the live holder; ``what`` is appended to
    its advice (e.g. "or write to another `out`")."""
    path = Path(lock_file).absolute()
    key = Path(os.path.realpath(path))
    if key in _HELD:
        _HELD[key].depth += 1
        try:
            yield _HELD[key]
        finally:
            _HELD[key].depth -= 1
        return
    if not create and not path.parent.is_dir():
        yield None
        return
    lock = _acquire(path, what)
    _HELD[key] = lock
    try:
        yield lock
    finally:
        del _HELD[key]
        _release(lock)


def _made_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, innermost first."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GlfnetError(f"cannot create the run directory {folder}: {e.strerror or e}") from None
    return missing


def _acquire(path: Path, what: str) -> RunLock:
    created = _made_dirs(path.parent)
    me = Holder(os.getpid())
    try:
        while True:
            fd = _open(path)
            try:
                locked = _flock(fd)
                if locked and not _same_file(fd, path):
                    os.close(fd)  # its holder removed it as we locked it: start over
                    continue
                old = _read(fd, wait=locked is False)
                if locked is False:
                    raise RunLockedError(_busy(path, old, what))
                if old is not None and old.host != me.host:
                    raise RunLockedError(_foreign(path, old))
                if locked is None and old is not None and old.alive():
                    raise RunLockedError(_busy(path, old, what))
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps(asdict(me)).encode())
            except BaseException:
                os.close(fd)
                raise
            return RunLock(path, me, old, fd, created)
    except BaseException:
        _remove_empty(created)
        raise


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise GlfnetError(f"cannot create the lock file {path}: {e.strerror or e}") from None


def _flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: no ``flock`` here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            return None
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read(fd: int, wait: bool) -> Holder | None:
    """The holder recorded in the file; with ``wait`` (a live holder) a moment's patience
    for one that has just locked and not yet written."""
    for _ in range(20 if wait else 1):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        holder = Holder.parse(text) if text else None
        if holder is not None or not wait:
            return holder
        time.sleep(0.05)
    return None


def _busy(path: Path, holder: Holder | None, what: str) -> str:
    who = f" ({holder})" if holder else ""
    advice = f" (kill {holder.pid})" if holder and holder.host == socket.gethostname() else ""
    return (
        f"{path.parent} is being written by another glfnet run{who}. Two writers in one run "
        f"directory would repeat each other's work: wait for that run to end or stop it{advice}, "
        f"then run this command again{', ' + what if what else ''}."
    )


def _foreign(path: Path, holder: Holder) -> str:
    return (
        f"{path.parent} is locked by a glfnet run on another host ({holder}); from "
        f"{socket.gethostname()} glfnet cannot tell whether it still runs. If it does not, delete "
        f"{path} and run this command again."
    )


def _release(lock: RunLock) -> None:
    """Remove the file while still locked (a waiting opener sees it gone), then unlock."""
    try:
        if _same_file(lock.fd, lock.path):
            lock.path.unlink(missing_ok=True)
    finally:
        os.close(lock.fd)
    _remove_empty(lock.created)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: the run wrote something, keep it (and its parents)
