"""The ingest service's layers, read from its import statements: protocol code (`codec/`) imports
no sources, CLIs, metrics or I/O libraries, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "ingest"
# What pure protocol code must not import: the other layers and anything doing I/O.
NOT_IN_CODEC = (
    *("services.ingest.sources", "services.ingest.cli", "services.ingest.metrics"),
    *("services.ingest.publisher", "services.ingest.settings", "serial", "redis"),
    *("prometheus_client", "asyncio", "socket", "pathlib"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports (relative imports resolved; `from x import y` gives x and
    x.y, so importing a submodule by name counts)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else node.module or base
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules} for name, path in modules.items()}


def test_codec_imports_no_io_and_no_other_layer() -> None:
    for path in (PACKAGE / "codec").rglob("*.py"):
        bad = {
            m
            for m in imports(path)
            for banned in NOT_IN_CODEC
            if m.split(".")[0] == banned or m == banned or m.startswith(banned + ".")
        }
        assert not bad, (module_name(path), sorted(bad))


def test_no_import_cycles() -> None:
    edges = graph()
    # a package imports its own submodules through __init__: only module-to-module edges count
    for name in edges:
        edges[name] = {m for m in edges[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in edges[name]:
            assert state.get(target) != 1, " -> ".join([*path, name, target])
            if target not in state:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    assert "services.ingest.codec.identify" in edges and len(edges) > 30


def test_the_publisher_takes_the_raw_stream_fields_and_ids_from_shared() -> None:
    """Field names of the raw stream are defined once (shared/raw_stream.py) and ids parsed once
    (shared/stream_id.py): the publisher spells neither out itself, not even in its Lua."""
    from services.ingest import publisher

    path = PACKAGE / "publisher.py"
    strings = [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for name in ("raw", "result", "received"):
        assert all(f"'{name}'" not in s and s != name for s in strings), name
    assert "shared.raw_stream.FIELDS" in imports(path)
    assert "shared.stream_id.StreamId" in imports(path)
    assert not hasattr(publisher, "_parse_id")
