"""The import graph of the suite's own code, read from the source with ast
(nothing is imported): no cycle between modules, and every import goes down
the layers

    bench -> analysis -> protocol        bench -> remote -> protocol
    agent -> protocol

(remote/protocol is `protocol`, remote/agent is `agent`, the rest of
remote/ is `remote`).  The agent runs on the target with its siblings and
the package `protocol` next to it; it and the protocol import nothing else
but the standard library.  Imports inside functions count: they run too.
"""
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent

# Who may import whom (a layer always imports itself).
ALLOWED = {
    "bench": {"analysis", "remote", "protocol"},
    "analysis": {"protocol"},
    "remote": {"protocol"},
    "agent": {"protocol"},
    "protocol": set(),
}

# Outside the standard library, what the agent may import on the target:
# pyperf is shipped next to it in the payload (remote/agent_client.py,
# payload()); bcc is the target distribution's, tried only by the bpf
# collector (bpfprobe.py, started by bpfmethod.py).
AGENT_TARGET_PACKAGES = {"pyperf", "bcc"}



def layer(module):
    for package, name in (("remote.protocol", "protocol"), ("remote.agent", "agent")):
        if module == package or module.startswith(package + "."):
            return name
    return module.split(".")[0]


def modules():
    """{dotted name: path} of every module of bench, analysis and remote
    (a package is its __init__.py)."""
    out = {}
    for top in ("bench", "analysis", "remote"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _package(module, path):
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imported_names(module, path):
    """Every name an import statement in the file asks for, as absolute
    dotted names (for `from X import a`, both X.a and X: a may be a module
    or a name in X)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(module, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                if node.module:
                    base += node.module.split(".")
                base = ".".join(base)
            else:
                base = node.module
            yield node.lineno, [f"{base}.{a.name}" for a in node.names] + [base]


def _as_agent_sees_it(module, name):
    """The agent (and the protocol) on the target: siblings are top-level
    modules (`import tracefs`), the protocol is the package `protocol`."""
    if layer(module) not in ("agent", "protocol"):
        return name
    top = name.split(".")[0]
    if top == "protocol":
        return "remote." + name
    agent = ROOT / "remote" / "agent"
    if layer(module) == "agent" and ((agent / f"{top}.py").exists() or (agent / top / "__init__.py").exists()):
        return "remote.agent." + name
    return name


def _resolve(name, known):
    """The longest known module that name is or lies in; None when the
    name is outside the suite."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def graph():
    """({module: {imported module}}, {module: {(line, outside top-level name)}})."""
    known = modules()
    edges, outside = {m: set() for m in known}, {m: set() for m in known}
    for module, path in known.items():
        for line, names in _imported_names(module, path):
            names = [_as_agent_sees_it(module, n) for n in names]
            targets = {_resolve(n, known) for n in names} - {None}
            if targets:
                # `from X import a`: a is the module X.a when there is one.
                targets = {t for t in targets if t != names[-1]} or targets
                edges[module] |= {t for t in targets if t != module}
            else:
                outside[module].add((line, names[-1].split(".")[0]))
    return edges, outside


def _cycles(edges):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_walk_finds_the_imports_it_checks():
    """The walk itself: relative, flat agent and `protocol` imports resolve,
    imports inside functions and try/except count."""
    edges, outside = graph()
    assert "analysis.bundle" in edges["analysis.load"]            # from .bundle import ...
    assert "analysis.stats" in edges["analysis.load"]             # from . import stats
    assert "remote.agent.tracefs" in edges["remote.agent.agent"]  # import tracefs as tracefs_mod
    assert "remote.agent.tracefs" in edges["remote.agent.facts"]  # inside a function
    assert "remote.protocol.tracefs_text" in edges["remote.agent.tracefs"]  # protocol / remote.protocol
    assert "remote.hosts" in edges["bench.cli"]                   # from remote.hosts import ..., in a function
    assert {name for _, name in outside["remote.agent.workload"]} == {"os", "sys", "pyperf"}


def test_no_import_cycle():
    cycles = _cycles(graph()[0])
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_go_down_the_layers():
    upward = sorted((m, t) for m, ts in graph()[0].items() for t in ts
                    if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)])
    assert upward == [], "imports against the layers (importer, imported): " + repr(upward)


def test_the_agent_and_the_protocol_import_only_the_standard_library():
    edges, outside = graph()
    stdlib = set(sys.stdlib_module_names)
    wrong = sorted((m, line, name) for m, names in outside.items() for line, name in names
                   if layer(m) in ("agent", "protocol") and name not in stdlib
                   and not (layer(m) == "agent" and name in AGENT_TARGET_PACKAGES))
    assert wrong == [], "outside the standard library (module, line, import): " + repr(wrong)


def test_test_files_have_unique_names_across_tiers():
    """pytest imports test files by basename (the tier folders are not
    packages): two files of one name in two tiers make the whole session
    fail to collect one of them, which only a run of every tier shows."""
    tests = pathlib.Path(__file__).resolve().parents[1]
    seen = {}
    for path in sorted(tests.glob("*/test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    clashes = {name: where for name, where in seen.items() if len(where) > 1}
    assert not clashes, f"test files with one name in several tiers: {clashes}; rename one"
