"""The import layering: glfnet's imports point down and go round no circle
(tools/import_graph.py is the contract), and the checker itself catches an import that points
up, sideways or between CLI commands, and a circle between modules."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "import_graph.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("glfnet_import_graph", TOOL)
    assert spec and spec.loader, TOOL
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


graph = _load_tool()


def _tree(root: Path, files: dict[str, str]) -> Path:
    """A fake ``src/glfnet`` package under ``root``; returns the ``src`` folder."""
    src = root / "src"
    for rel, text in files.items():
        path = src / "glfnet" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return src


# A small package that keeps every rule: each module imports its own layer or lower ones.
CLEAN = {
    "__init__.py": "from glfnet.cli import main\n",  # the facade may import anything
    "errors.py": "",
    "data/__init__.py": "",
    "data/naming.py": "",
    "data/flowsets.py": "from . import naming\nfrom ..errors import DataError\n",
    "models/__init__.py": "",
    "models/net.py": "from glfnet.data import naming\n",
    "train/__init__.py": "",
    "train/trainer.py": "from glfnet.models import net\n",
    "eval/__init__.py": "",
    "eval/runner.py": "from glfnet.train import trainer\n",
    "infer.py": "from glfnet.models import net\n",
    "cli/__init__.py": "",
    "cli/messages.py": "",
    "cli/options.py": "from glfnet.cli import messages\n",
    "cli/train_cmd.py": "from glfnet.cli import messages, options\nfrom glfnet.eval import runner\n",
    "cli/main.py": "from glfnet.cli import train_cmd\n",
}


def test_glfnet_imports_point_down():
    _, problems = graph.check()
    assert problems == [], "\n".join(problems)


def test_layer_of_ranks_the_most_specific_prefix():
    assert graph.layer_of("glfnet.errors") == (0, "glfnet.errors")
    assert graph.layer_of("glfnet.data.readers.base") == (1, "glfnet.data")
    assert graph.layer_of("glfnet.config") == (4, "glfnet.config")
    assert graph.layer_of("glfnet.infer") == (5, "glfnet.infer")
    assert graph.layer_of("glfnet.cli.main") == (7, "glfnet.cli")
    assert graph.layer_of("glfnet") == (8, "glfnet")
    ranks = [
        graph.layer_of(m)[0]
        for m in (
            "glfnet.metrics",
            "glfnet.data.pipeline",
            "glfnet.preprocess.face",
            "glfnet.models.glfnet",
            "glfnet.train.trainer",
            "glfnet.eval.runner",
            "glfnet.report.build",
            "glfnet.cli.options",
        )
    ]
    assert ranks == sorted(ranks) == list(range(8))


def test_checker_passes_a_clean_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(graph, "SRC", _tree(tmp_path, CLEAN))
    edges, problems = graph.check()
    assert problems == []
    assert ("glfnet.train", "glfnet.models") in edges
    assert ("glfnet.data", "glfnet.errors") in edges  # a relative import resolves


@pytest.mark.parametrize(
    "rel, text, expected",
    [
        # a lazy (in-function) import of a higher layer counts
        (
            "data/flowsets.py",
            "def f():\n    from glfnet.train import trainer\n",
            "glfnet.data.flowsets (data) imports glfnet.train.trainer (train), a higher layer",
        ),
        # a relative import that climbs out of the package is resolved before it is ranked
        (
            "models/net.py",
            "from ..eval import runner\n",
            "glfnet.models.net (models) imports glfnet.eval.runner (eval), a higher layer",
        ),
        (
            "errors.py",
            "import glfnet.data.naming\n",
            "glfnet.errors (foundation) imports glfnet.data.naming (data), a higher layer",
        ),
        # eval and infer sit side by side: neither may import the other
        (
            "infer.py",
            "from glfnet.eval.runner import x\n",
            "glfnet.infer imports glfnet.eval.runner: two packages of the eval layer",
        ),
        # a command module calls the library, not another command
        (
            "cli/train_cmd.py",
            "from glfnet.cli import main\n",
            "glfnet.cli.train_cmd imports glfnet.cli.main: command modules call the library",
        ),
        (
            "cli/train_cmd.py",
            "from glfnet.cli.predict_cmd import predict\n",
            "glfnet.cli.train_cmd imports glfnet.cli.predict_cmd: command modules call the library",
        ),
        # a shared module of the command line (options, messages, ...) imports no command
        (
            "cli/options.py",
            "from glfnet.cli import train_cmd\n",
            "glfnet.cli.options imports glfnet.cli.train_cmd: the shared modules of the command line",
        ),
    ],
)
def test_checker_catches_a_broken_rule(tmp_path, monkeypatch, capsys, rel, text, expected):
    monkeypatch.setattr(graph, "SRC", _tree(tmp_path, {**CLEAN, rel: text}))
    _, problems = graph.check()
    rules = [p for p in problems if "import circle" not in p]  # (an upward import may close one)
    assert len(rules) == 1 and expected in rules[0], problems
    assert rules[0].startswith(f"src/glfnet/{rel}:")
    assert graph.main([]) == 1  # the command's exit status fails CI
    assert f"{len(problems)} rule(s) broken" in capsys.readouterr().out


@pytest.mark.parametrize(
    "files, expected",
    [
        # two modules of one package, one of them importing lazily (the circle 75f388f had)
        (
            {
                "train/batched.py": "from glfnet.train import trainer\n",
                "train/trainer.py": "def f():\n    from glfnet.train.batched import g\n",
            },
            "src/glfnet/train/batched.py:1: import circle glfnet.train.batched -> "
            "glfnet.train.trainer -> glfnet.train.batched (src/glfnet/train/batched.py:1, "
            "src/glfnet/train/trainer.py:2)",
        ),
        # three modules, a relative import among them
        (
            {
                "data/a.py": "from . import b\n",
                "data/b.py": "import glfnet.data.c\n",
                "data/c.py": "\n\nfrom glfnet.data.a import x\n",
            },
            "import circle glfnet.data.a -> glfnet.data.b -> glfnet.data.c -> glfnet.data.a "
            "(src/glfnet/data/a.py:1, src/glfnet/data/b.py:1, src/glfnet/data/c.py:3)",
        ),
    ],
)
def test_checker_catches_an_import_circle(tmp_path, monkeypatch, files, expected):
    monkeypatch.setattr(graph, "SRC", _tree(tmp_path, {**CLEAN, **files}))
    _, problems = graph.check()
    assert len(problems) == 1 and expected in problems[0], problems
    assert graph.main([]) == 1
