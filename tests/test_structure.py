"""The package's shape: no import cycle, and private Keras members touched
only by the optimizers' adapter."""
import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "bert4keras")


def _modules():
    """{dotted module name: file} for every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3]
                parts = rel.split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = os.path.join(folder, name)
    return out


def _imports(module, path, modules):
    """The package modules `module` imports anywhere in its file (lazy
    imports inside functions included: they close a cycle just the same)."""
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != module:
                found.add(target)
    return found


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    ["bert4keras.snippets", "bert4keras.generation", "bert4keras.optimizers",
     "bert4keras.data_generator", "bert4keras.sequences", "bert4keras.tokenizers",
     "bert4keras.tokenizers.vocab", "bert4keras.tokenizers.base",
     "bert4keras.tokenizers.wordpiece", "bert4keras.tokenizers.sentencepiece_tokenizer"],
)
def test_module_imports_alone_in_a_fresh_process(module):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


_PRIVATE_KERAS = re.compile(
    r"\._(get_variable_index|iterations|trainable_variables|clip_gradients|"
    r"check_variables_are_known|learning_rate|use_weight_decay)\b"
)


def test_private_keras_members_only_in_the_adapter():
    folder = os.path.join(PACKAGE, "optimizers")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and name != "_keras.py":
            text = open(os.path.join(folder, name), encoding="utf-8").read()
            assert not _PRIVATE_KERAS.search(text), (name, _PRIVATE_KERAS.search(text).group(0))
