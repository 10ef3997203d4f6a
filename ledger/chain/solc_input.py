"""The standard-JSON input Hardhat builds for a full compile, rebuilt the way Hardhat 2 does it.

The CBOR metadata suffix of the bytecode hashes every source and the compiler settings, so
compiling "the same" as Hardhat means handing solc the same input: the same source unit names,
in the same order, with the same contents, and the same settings. This module finds the project,
resolves settings like Hardhat's config resolution and sources like Hardhat's resolver.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.chain.compiled import SOURCES_DIR, CompilationError, CompilerUnavailableError

ROOT_MARKER = "hardhat.config.js"
ROOT_ENV_VAR = "LEDGER_ROOT"
COMPILER_CONFIG = "contracts/compiler.json"
NODE_MODULES = "node_modules"

# Hardhat's defaultSolcOutputSelection (hardhat/internal/core/config/default-config.js). It is
# merged into the user's settings, so it is part of the input Hardhat hands to solc.
_HARDHAT_OUTPUT_SELECTION: dict[str, dict[str, list[str]]] = {
    "*": {
        "*": [
            "abi",
            "evm.bytecode",
            "evm.deployedBytecode",
            "evm.methodIdentifiers",
            "metadata",
        ],
        "": ["ast"],
    },
}


# --------------------------------------------------------------------------------------------
# Locating the project and its configuration
# --------------------------------------------------------------------------------------------


def project_root() -> Path:
    """The repository root: $LEDGER_ROOT, else the nearest directory with hardhat.config.js
    above the working directory, else above this file (so an installed CLI works anywhere)."""
    override = os.environ.get(ROOT_ENV_VAR)
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / ROOT_MARKER).is_file():
            raise FileNotFoundError(f"${ROOT_ENV_VAR}={override} has no {ROOT_MARKER}")
        return root
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / ROOT_MARKER).is_file():
                return candidate
    raise FileNotFoundError(
        f"no {ROOT_MARKER} above {Path.cwd()} or {Path(__file__).parent}; set ${ROOT_ENV_VAR}"
    )


def load_compiler_config(root: Path) -> tuple[str, dict[str, Any]]:
    """(solc version, settings exactly as Hardhat resolves them from contracts/compiler.json)."""
    config = json.loads((root / COMPILER_CONFIG).read_text(encoding="utf-8"))
    version: str = config["solcVersion"]
    return version, _hardhat_settings(version, config.get("settings") or {})


def _hardhat_settings(version: str, user: Mapping[str, Any]) -> dict[str, Any]:
    # Mirrors resolveCompiler() in hardhat/internal/core/config/config-resolution.js, including
    # where keys land: the bytes of the input depend on key order, so added keys go at the end
    # and overridden ones keep their place, exactly as the JS object operations do.
    settings = copy.deepcopy(dict(user))
    if _semver(version) >= (0, 8, 20):
        evm = settings.get("evmVersion")
        settings["evmVersion"] = "paris" if evm is None else evm
    optimizer: dict[str, Any] = {"enabled": False, "runs": 200}
    optimizer.update(settings.get("optimizer") or {})
    settings["optimizer"] = optimizer
    if "outputSelection" not in settings:
        settings["outputSelection"] = {}
    selection = settings["outputSelection"]
    for file, contracts in _HARDHAT_OUTPUT_SELECTION.items():
        per_file = selection.setdefault(file, {})
        for contract, outputs in contracts.items():
            wanted = per_file.setdefault(contract, [])
            wanted.extend(o for o in outputs if o not in wanted)
    return settings


def _semver(version: str) -> tuple[int, ...]:
    core = re.match(r"\d+(?:\.\d+)*", version)
    if core is None:
        raise ValueError(f"not a solc version: {version!r}")
    return tuple(int(part) for part in core.group().split("."))


# --------------------------------------------------------------------------------------------
# Building the standard-JSON input like Hardhat's resolver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceFile:
    name: str
    path: Path
    content: str
    library: bool


def standard_json_input(root: Path) -> dict[str, Any]:
    """The standard-JSON input Hardhat builds for a full compile of ``root``.

    Every .sol file under contracts/ plus everything they import, transitively; serialised with
    ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` it equals Hardhat's
    ``JSON.stringify(input)``.
    """
    # Absolute but symlinks kept: source names are relative to the root as given.
    root = Path(root).absolute()
    _, settings = load_compiler_config(root)
    files = _resolve_sources(root)
    sources = {name: {"content": files[name].content} for name in hardhat_order(list(files))}
    return {"language": "Solidity", "sources": sources, "settings": settings}


def _project_source_names(root: Path) -> list[str]:
    # Hardhat's getAllFilesMatching: stat() follows symlinks and nothing is hidden or skipped.
    names = []
    for dirpath, _dirs, filenames in os.walk(root / SOURCES_DIR, followlinks=True):
        for filename in filenames:
            if filename.endswith(".sol"):
                names.append((Path(dirpath) / filename).relative_to(root).as_posix())
    # Hardhat looks source names up case-insensitively, so of two files differing only in case
    # it silently compiles one, twice; refuse rather than disagree with it.
    seen: dict[str, str] = {}
    for name in sorted(names):
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise _source_error(
                name, f"{other} and {name} differ only in case; Hardhat would mix them up"
            )
    return names


def _resolve_sources(root: Path) -> dict[str, _SourceFile]:
    root_entries = {entry.lower() for entry in os.listdir(root)}
    resolved = {
        name: _read_source(name, root / name, library=False) for name in _project_source_names(root)
    }
    pending = list(resolved.values())
    while pending:
        source = pending.pop()
        for imported in import_paths(source.content):
            name = _resolve_import(source, imported)
            if name not in resolved:
                resolved[name] = _resolve_source_name(root, root_entries, name, source, imported)
                pending.append(resolved[name])
    return resolved


def _read_source(name: str, path: Path, *, library: bool) -> _SourceFile:
    # Bytes, not text mode: universal newlines would turn CRLF into LF and change the hash.
    content = path.read_bytes().decode("utf-8", errors="replace")
    return _SourceFile(name=name, path=path, content=content, library=library)


def _resolve_import(importer: _SourceFile, imported: str) -> str:
    """Source unit name of ``imported`` as seen from ``importer`` (Resolver.resolveImport)."""
    if "\\" in imported or imported.startswith("/") or re.search(r"[a-zA-Z]+://", imported):
        raise _import_error(importer, imported, "Hardhat rejects absolute, URL and \\ imports")
    if not imported.startswith(("./", "../")):
        return _normalize(imported)
    joined = _normalize(posixpath.join(posixpath.dirname(importer.name), imported))
    if not importer.library and f"{NODE_MODULES}/" in imported:
        # `import "../node_modules/lib/x.sol"` becomes the library import "lib/x.sol".
        return joined[joined.index(f"{NODE_MODULES}/") + len(NODE_MODULES) + 1 :]
    if not importer.library and joined.startswith("../"):
        raise _import_error(importer, imported, "it points outside the project")
    if importer.library and not joined.startswith(importer.name.split("/", 1)[0]):
        raise _import_error(importer, imported, "a library may not reach into another package")
    return joined


def _resolve_source_name(
    root: Path, root_entries: set[str], name: str, importer: _SourceFile, imported: str
) -> _SourceFile:
    # A relative import from one of our files stays local even if its first segment is not
    # in the root (Hardhat's special case), unless it walks into node_modules.
    relative_local = (
        not importer.library
        and imported.startswith(("./", "../"))
        and f"{NODE_MODULES}/" not in imported
    )
    if relative_local or _is_local_source_name(root_entries, name):
        path = root / name
        if not path.is_file():
            raise _import_error(importer, imported, f"{path} does not exist")
        return _read_source(name, path, library=False)
    return _read_source(name, _library_file(root, name, importer, imported), library=True)


def _is_local_source_name(root_entries: set[str], name: str) -> bool:
    # isLocalSourceName(): local when its first segment exists in the project root (any case).
    if NODE_MODULES in name or name == "hardhat/console.sol":
        return False
    return name.split("/", 1)[0].lower() in root_entries


def _library_file(root: Path, name: str, importer: _SourceFile, imported: str) -> Path:
    name = name.removeprefix(f"{NODE_MODULES}/")
    parts = name.split("/")
    package = "/".join(parts[:2] if name.startswith("@") else parts[:1])
    directory = find_package(root, package)
    if directory is None:
        raise _import_error(importer, imported, f"npm package {package!r} is not installed")
    path = directory / name.removeprefix(package + "/")
    if not path.is_file():
        raise _import_error(importer, imported, f"{path} does not exist")
    return path.resolve()


def find_package(root: Path, package: str) -> Path | None:
    """Node's resolution from the project root: the nearest node_modules/<package> upwards."""
    for directory in (root, *root.parents):
        candidate = directory / NODE_MODULES / package
        if (candidate / "package.json").is_file():
            return candidate
    return None


def _import_error(importer: _SourceFile, imported: str, reason: str) -> CompilationError:
    return _source_error(importer.name, f"cannot resolve import {imported!r}: {reason}")


def _source_error(file: str, reason: str) -> CompilationError:
    # Shaped like a solc error so callers handle resolver and compiler failures alike.
    message = f"{file}: {reason}"
    return CompilationError(
        [
            {
                "severity": "error",
                "type": "SourceError",
                "message": message,
                "formattedMessage": message,
                "sourceLocation": {"file": file},
            }
        ]
    )


def _normalize(name: str) -> str:
    # Node's path.normalize() minus its "." for an empty result; that never names a file.
    normalized = posixpath.normpath(name)
    return normalized[1:] if normalized.startswith("//") else normalized


# Comments and strings are tokens of their own so that an "import" inside them is not one.
_TOKENS = re.compile(
    r"""
      //[^\n]*
    | /\*.*?\*/
    | "(?:[^"\\\n]|\\.)*"
    | '(?:[^'\\\n]|\\.)*'
    | [A-Za-z_$][A-Za-z0-9_$]*
    | ;
    """,
    re.DOTALL | re.VERBOSE,
)


def import_paths(content: str) -> list[str]:
    """The path of every import directive; each form has exactly one string literal, the path."""
    paths = []
    in_import = False
    for match in _TOKENS.finditer(content):
        token = match.group()
        if token == "import":
            in_import = True
        elif token == ";":
            in_import = False
        elif in_import and token[0] in "\"'":
            paths.append(token[1:-1])
            in_import = False
    return paths


# CLDR root collation of printable ASCII. Hardhat sorts source names with localeCompare, which
# is this order under the C, POSIX and en_US locales our machines run with.
_COLLATION = (
    " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789"
    "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStTuUvVwWxXyYzZ"
)
_PRIMARY = {c: _COLLATION.index(c.lower()) for c in _COLLATION}


def hardhat_order(names: list[str]) -> list[str]:
    """Source names in Hardhat's order (`a.sourceName.localeCompare(b.sourceName)`)."""
    if all(c in _PRIMARY for name in names for c in name):
        # Case only decides once the whole case-blind comparison ties: "aB" < "Ab" < "ac".
        return sorted(
            names,
            key=lambda n: ([_PRIMARY[c] for c in n], [c.isupper() for c in n]),
        )
    # Beyond plain ASCII, ask the same ICU Hardhat uses rather than reimplement it.
    script = (
        "const n = JSON.parse(process.argv[1]);"
        "process.stdout.write(JSON.stringify(n.sort((a, b) => a.localeCompare(b))));"
    )
    node = shutil.which("node")
    if node is None:
        raise CompilerUnavailableError("node is needed to order non-ASCII source names")
    out = subprocess.run(
        [node, "-e", script, json.dumps(names)], capture_output=True, check=True, text=True
    )
    ordered: list[str] = json.loads(out.stdout)
    return ordered
