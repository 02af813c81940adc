"""One writer per run directory (glfnet.eval.runlock): a second writer is refused at once with
the live holder named, a killed run's lock does not block its resume, and the lock goes away
after a run, a failing one included."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import glfnet
from glfnet.config import Config
from glfnet.errors import RunLockedError
from glfnet.eval import runlock, runner
from glfnet.eval.rundir import LOCK, RunDir

FAST = Config(model="ststnet", epochs=1, batch_size=16, seeds=[0], jobs=1, ensemble=1, report=False)

# holds the lock file argv[1] until its stdin closes (or it is killed)
HOLDER = (
    "import sys\n"
    "from glfnet.eval.runlock import hold\n"
    "with hold(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


class Holder:
    """Another process that holds a run directory's lock."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(RunDir(folder).lock_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"
        self.pid = self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, the lock file stays behind."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("", timeout=10)


@pytest.fixture
def holder(tmp_path):
    h = Holder(tmp_path / "run")
    yield h
    h.end()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(folder: Path, pid: int, host: str | None = None) -> Path:
    """A lock file as a process that died without releasing it leaves it (no flock held)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host or socket.gethostname(), "started": "earlier", "command": "glfnet x"}
    path = RunDir(folder).lock_path
    path.write_text(json.dumps(record))
    return path


# ---------------------------------------------------------------------------- a second writer


def test_a_second_loso_into_a_folder_being_written_is_refused_at_once(holder, tmp_path, flat_dir, capsys):
    out = tmp_path / "run"
    code, stdout, err = glfnet(capsys, "loso", flat_dir, "--out", out, "--model", "ststnet", "--epochs", "1")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert f"{out} is being written by another glfnet run" in err
    assert f"pid {holder.pid} on host {socket.gethostname()}" in err and "command: " in err
    assert f"kill {holder.pid}" in err and "another --out" in err  # what to do, in flags
    assert "samples" not in stdout  # refused before the data are read
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing written, the lock kept
    assert json.loads(RunDir(out).lock_path.read_text())["pid"] == holder.pid


def test_every_writer_of_a_run_directory_is_refused(holder, tmp_path, tiny_set, flat_dir, capsys):
    out = tmp_path / "run"
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
        runner.run_protocol(tiny_set, FAST, out, overwrite=True)  # overwrite discards nothing
    from glfnet.eval.menu import parse_menu
    from glfnet.eval.tune import TuneSettings, run_tune

    menu = parse_menu({"recipes": [{"name": "a"}, {"name": "b", "epochs": 2}]}, FAST)
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
        run_tune(tiny_set, FAST, menu, TuneSettings(inner_folds=2), out)
    (out / "metrics.json").write_text("{}")
    code, _, err = glfnet(capsys, "report", out)  # a report would mix a live run's files
    assert code == 2 and f"pid {holder.pid}" in err and "--out" not in err
    code, _, err = glfnet(capsys, "ablate", flat_dir, "--out", out, "--only", "full", "--epochs", "1")
    assert code == 2 and f"pid {holder.pid}" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "metrics.json"]


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    lock = _write_lock(tmp_path / "run", 1, host="elsewhere.example")
    with pytest.raises(RunLockedError, match="another host") as e, RunDir(tmp_path / "run").hold():
        pass
    assert "elsewhere.example" in str(e.value) and f"delete {lock}" in str(e.value)
    assert lock.exists()


# ---------------------------------------------------------------------------- a killed run


def test_a_killed_runs_lock_is_taken_over(tmp_path):
    h = Holder(tmp_path / "run")
    h.kill()
    lock = RunDir(tmp_path / "run").lock_path
    assert json.loads(lock.read_text())["pid"] == h.pid  # left behind
    with RunDir(tmp_path / "run").hold() as taken:
        assert taken is not None and taken.previous is not None and taken.previous.pid == h.pid
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


@pytest.mark.slow
def test_a_killed_run_resumes(tiny_set, tmp_path, monkeypatch):
    """A run killed after three folds (its lock file left behind, its pid gone) resumes."""
    out = tmp_path / "run"
    real, calls = runner.run_folds, []

    def dying(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_folds", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.run_protocol(tiny_set, FAST, out)
    monkeypatch.setattr(runner, "run_folds", real)
    _write_lock(out, _dead_pid())  # as SIGKILL leaves it: no clean-up ran
    steps: list = []
    runner.run_protocol(tiny_set, FAST, out, progress=lambda *s: steps.append(s))
    assert steps[0][0] == 3  # the killed run's folds reused
    assert not RunDir(out).lock_path.exists()


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
    """On a file system without flock, a live recorded pid keeps the folder; a gone one not."""
    monkeypatch.setattr(runlock, "_flock", lambda fd: None)
    _write_lock(tmp_path / "run", os.getppid())  # alive
    with pytest.raises(RunLockedError, match=f"pid {os.getppid()}"), RunDir(tmp_path / "run").hold():
        pass
    _write_lock(tmp_path / "run", _dead_pid())
    with RunDir(tmp_path / "run").hold() as lock:
        assert lock is not None and lock.previous is not None
    assert not RunDir(tmp_path / "run").lock_path.exists()


# ---------------------------------------------------------------------------- release


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_after_a_failing_run(tiny_set, tmp_path, monkeypatch, error):
    out = tmp_path / "run"

    def fails(*args, **kwargs):
        assert json.loads(RunDir(out).lock_path.read_text())["pid"] == os.getpid()  # held meanwhile
        raise error("boom")

    monkeypatch.setattr(runner, "run_folds", fails)
    with pytest.raises(error):
        runner.run_protocol(tiny_set, FAST, out)
    assert not RunDir(out).lock_path.exists()
    assert (out / "config.yaml").exists()  # the run's own files stay
    with RunDir(out).hold() as lock:  # free again, and nothing to take over
        assert lock is not None and lock.previous is None


def test_a_refused_command_leaves_no_folder_behind(tmp_path, copy_flat, capsys):
    (copy_flat / "labels.csv").write_text("not,a,label,file\n")
    code, _, err = glfnet(capsys, "loso", copy_flat, "--out", tmp_path / "a" / "run")
    assert code == 2 and "error: " in err
    assert not (tmp_path / "a").exists()  # the folders the lock made are gone with it


def test_the_lock_is_reentrant_and_not_run_content(tmp_path):
    rd = RunDir(tmp_path / "run")
    with rd.hold() as outer:
        with rd.hold() as inner:  # the command line holds it, the library takes it again
            assert inner is outer and rd.lock_path.exists()
        assert rd.lock_path.exists()  # the inner block does not release it
        (rd.path / "config.yaml").write_text("model: x\n")
        assert not rd.holds_run()  # the lock file is no result
        rd.discard_progress()
        assert rd.lock_path.exists()
    assert not rd.lock_path.exists()
