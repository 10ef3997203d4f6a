"""Compile the Solidity contracts from Python, byte-for-byte like Hardhat does.

Deploying from Python must put exactly the runtime code on chain that Hardhat (and anyone
verifying against Hardhat's build-info) expects. The CBOR metadata suffix of the bytecode hashes
every source and the compiler settings, so "the same" means the same standard-JSON input: the
same source unit names and contents, and the same settings. This module rebuilds that input from
the repository the way Hardhat 2's resolver does, and compiles it with py-solc-x. No native solc
can be downloaded on our machines, so py-solc-x drives the npm solc-js through a small generated
shell wrapper, unless a native solc of the pinned version happens to be on PATH.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CompilationError",
    "CompiledContract",
    "CompiledContracts",
    "CompilerUnavailableError",
    "compile_contracts",
    "hardhat_artifacts",
    "project_root",
    "standard_json_input",
]

ROOT_MARKER = "hardhat.config.js"
ROOT_ENV_VAR = "LEDGER_ROOT"
SOURCES_DIR = "contracts"
COMPILER_CONFIG = "contracts/compiler.json"
CACHE_FILE = "build/compiled.json"
WRAPPER_FILE = "build/solcjs-wrapper"

# Bump when the cache layout changes, so an old build/compiled.json is never misread.
_CACHE_FORMAT = 2

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

_NODE_MODULES = "node_modules"


class CompilationError(Exception):
    """solc rejected the sources (or an import could not be resolved).

    ``errors`` holds solc's error objects, ``files`` the source unit names they point at.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        self.files = sorted(
            {
                e["sourceLocation"]["file"]
                for e in errors
                if isinstance(e.get("sourceLocation"), dict) and "file" in e["sourceLocation"]
            }
        )
        messages = "\n".join(
            str(e.get("formattedMessage") or e.get("message") or e).rstrip() for e in errors
        )
        super().__init__(f"Solidity compilation failed:\n{messages}")


class CompilerUnavailableError(RuntimeError):
    """No usable compiler: node or npm solc missing, wrong solc version, or the compiler crashed."""


@dataclass(frozen=True)
class CompiledContract:
    name: str
    source: str  # source unit name, e.g. "contracts/Ledger.sol"
    abi: list[dict[str, Any]]
    bytecode: str  # "0x…"; may hold __$…$__ library placeholders that need linking
    deployed_bytecode: str
    method_identifiers: dict[str, str]
    kind: str  # "contract", "interface" or "library"
    abstract: bool
    # immutable variable id -> [{"start", "length"}] byte ranges in deployed_bytecode that the
    # constructor fills in; an audit masks them when comparing with the code on chain
    immutable_references: dict[str, list[dict[str, int]]] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def deployable(self) -> bool:
        return self.kind != "interface" and not self.abstract

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "methodIdentifiers": self.method_identifiers,
            "kind": self.kind,
            "abstract": self.abstract,
            "immutableReferences": self.immutable_references,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompiledContract:
        return cls(
            name=data["name"],
            source=data["source"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            method_identifiers=data["methodIdentifiers"],
            kind=data["kind"],
            abstract=data["abstract"],
            immutable_references=data.get("immutableReferences", {}),
        )


class CompiledContracts(Mapping[str, CompiledContract]):
    """Contract name -> compiled contract, for every contract in the compilation.

    Deploy code looks contracts up by bare name, so names must be unambiguous; a contract of
    ours may shadow a same-named one from a dependency, anything else is an error.
    """

    def __init__(
        self, contracts: Iterable[CompiledContract], *, input_hash: str, solc_version: str
    ) -> None:
        self.input_hash = input_hash
        self.solc_version = solc_version
        self.by_fqn: dict[str, CompiledContract] = {}
        by_name: dict[str, CompiledContract] = {}
        for contract in contracts:
            self.by_fqn[contract.fully_qualified_name] = contract
            other = by_name.get(contract.name)
            ours = _is_project_unit(contract.source)
            if other is None or (ours and not _is_project_unit(other.source)):
                by_name[contract.name] = contract
            elif ours == _is_project_unit(other.source):
                raise ValueError(
                    f"two contracts are named {contract.name!r}: "
                    f"{other.fully_qualified_name} and {contract.fully_qualified_name}"
                )
        self._by_name = by_name

    def __getitem__(self, name: str) -> CompiledContract:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def project(self) -> dict[str, CompiledContract]:
        """The contracts defined under contracts/ (not the ones pulled in from node_modules)."""
        return {n: c for n, c in self._by_name.items() if _is_project_unit(c.source)}


def _is_project_unit(source_name: str) -> bool:
    return source_name.startswith(SOURCES_DIR + "/")


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


def _load_compiler_config(root: Path) -> tuple[str, dict[str, Any]]:
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
    _, settings = _load_compiler_config(root)
    files = _resolve_sources(root)
    sources = {name: {"content": files[name].content} for name in _hardhat_order(list(files))}
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
        for imported in _import_paths(source.content):
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
    if not importer.library and f"{_NODE_MODULES}/" in imported:
        # `import "../node_modules/lib/x.sol"` becomes the library import "lib/x.sol".
        return joined[joined.index(f"{_NODE_MODULES}/") + len(_NODE_MODULES) + 1 :]
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
        and f"{_NODE_MODULES}/" not in imported
    )
    if relative_local or _is_local_source_name(root_entries, name):
        path = root / name
        if not path.is_file():
            raise _import_error(importer, imported, f"{path} does not exist")
        return _read_source(name, path, library=False)
    return _read_source(name, _library_file(root, name, importer, imported), library=True)


def _is_local_source_name(root_entries: set[str], name: str) -> bool:
    # isLocalSourceName(): local when its first segment exists in the project root (any case).
    if _NODE_MODULES in name or name == "hardhat/console.sol":
        return False
    return name.split("/", 1)[0].lower() in root_entries


def _library_file(root: Path, name: str, importer: _SourceFile, imported: str) -> Path:
    name = name.removeprefix(f"{_NODE_MODULES}/")
    parts = name.split("/")
    package = "/".join(parts[:2] if name.startswith("@") else parts[:1])
    # Node's resolution from the project root: the nearest node_modules/<package> upwards.
    for directory in (root, *root.parents):
        modules = directory / _NODE_MODULES
        if (modules / package / "package.json").is_file():
            path = modules / name
            if not path.is_file():
                raise _import_error(importer, imported, f"{path} does not exist")
            return path.resolve()
    raise _import_error(importer, imported, f"npm package {package!r} is not installed")


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


def _import_paths(content: str) -> list[str]:
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


def _hardhat_order(names: list[str]) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# Compiling
# --------------------------------------------------------------------------------------------


def compile_contracts(root: Path | None = None, *, use_cache: bool = True) -> CompiledContracts:
    """Compile every contract of the project; cached in build/compiled.json by input hash."""
    root = Path(root).absolute() if root is not None else project_root()
    version, _ = _load_compiler_config(root)
    input_json = standard_json_input(root)
    key = _input_hash(input_json, version)
    cache = root / CACHE_FILE
    if use_cache:
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
    output = _run_solc(root, version, input_json)
    result = CompiledContracts(_contracts(output), input_hash=key, solc_version=version)
    _write_cache(cache, result)
    return result


def _input_hash(input_json: Mapping[str, Any], version: str) -> str:
    # The version is not in the input but changes the output, so it is part of the key.
    blob = json.dumps(
        {"format": _CACHE_FORMAT, "solcVersion": version, "input": input_json},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _read_cache(cache: Path, key: str) -> CompiledContracts | None:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("format") != _CACHE_FORMAT or data.get("key") != key:
            return None
        contracts = [CompiledContract.from_json(c) for c in data["contracts"]]
        return CompiledContracts(contracts, input_hash=key, solc_version=data["solcVersion"])
    except (OSError, ValueError, KeyError, TypeError):
        # A missing, stale or half-written cache just means compiling again.
        return None


def _write_cache(cache: Path, result: CompiledContracts) -> None:
    data = {
        "format": _CACHE_FORMAT,
        "key": result.input_hash,
        "solcVersion": result.solc_version,
        "contracts": [c.to_json() for c in result.by_fqn.values()],
    }
    _write_atomically(cache, json.dumps(data, separators=(",", ":")), mode=0o644)


def _write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    # Parallel test workers share build/: a reader must never see a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run_solc(root: Path, version: str, input_json: dict[str, Any]) -> dict[str, Any]:
    import solcx  # deferred: a cache hit should not pay for importing py-solc-x
    from solcx.exceptions import SolcError

    binary = _solc_binary(root, version)
    try:
        output: dict[str, Any] = solcx.compile_standard(
            input_json, solc_binary=binary, allow_empty=True
        )
    except SolcError as exc:
        if exc.error_dict:
            errors = [e for e in exc.error_dict if e.get("severity") == "error"]
            raise CompilationError(errors) from None
        raise CompilerUnavailableError(
            f"{binary} failed (exit {exc.return_code}): {exc.stderr_data or exc.stdout_data}"
        ) from exc
    except ValueError as exc:  # py-solc-x could not parse the compiler's stdout as JSON
        raise CompilerUnavailableError(f"{binary} printed no standard-JSON output: {exc}") from exc
    return output


def _solc_binary(root: Path, version: str) -> Path:
    native = shutil.which("solc")
    if (
        native is not None
        and not _is_solc_select_shim(Path(native))
        and _binary_version(Path(native)) == version
    ):
        return Path(native)
    return _solcjs_wrapper(root, version)


def _is_solc_select_shim(path: Path) -> bool:
    """solc-select (installed with Slither) puts a `solc` script on PATH that downloads compilers
    from binaries.soliditylang.org when asked for its version: never ask it."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"solc_select" in head


def _binary_version(binary: Path) -> str | None:
    from solcx.exceptions import SolcError
    from solcx.wrapper import get_solc_version

    try:
        return str(get_solc_version(binary))
    except (OSError, subprocess.SubprocessError, SolcError, ValueError):
        return None


# py-solc-x runs `<binary> --version` and then `<binary> --standard-json` with the input on
# stdin; solcjs needs three work-arounds to behave like that (see the comments inside).
_WRAPPER_TEMPLATE = """\
#!/usr/bin/env bash
# Generated by ledger.chain.compiler: makes solc-js look like a native solc to py-solc-x.
set -euo pipefail
node={node}
solcjs={solcjs}
for arg in "$@"; do
  if [ "$arg" = --version ]; then
    # py-solc-x greps "<x.y.z>+commit.<hash>" out of this, as from a native solc.
    version=$("$node" "$solcjs" --version)
    echo "solc, the solidity compiler commandline interface"
    echo "Version: $version"
    exit 0
  fi
done
if [ "$*" != --standard-json ]; then
  echo "solcjs-wrapper: only --version and --standard-json are supported, got: $*" >&2
  exit 2
fi
tmp=$(mktemp -d "${{TMPDIR:-/tmp}}/solcjs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# solcjs reads stdin with readFileSync(0), which fails with EAGAIN on a pipe: hand it a file.
cat > "$tmp/input.json"
# solcjs calls process.exit() right after console.log(), which truncates a piped stdout at
# 64 KiB; writes to a regular file are synchronous, so they complete.
"$node" "$solcjs" --standard-json < "$tmp/input.json" > "$tmp/output.txt"
# solcjs prefixes its JSON with notes such as ">>> Cannot retry compilation with SMT ...".
sed '/^>>>/d' "$tmp/output.txt"
"""


def _solcjs_wrapper(root: Path, version: str) -> Path:
    node = shutil.which("node")
    if node is None:
        raise CompilerUnavailableError("node is not on PATH and no native solc matches")
    package = _find_package(root, "solc")
    if package is None:
        raise CompilerUnavailableError(f"npm package solc is not installed under {root}")
    installed = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != version:
        raise CompilerUnavailableError(
            f"npm solc is {installed}, {COMPILER_CONFIG} pins {version}; run npm ci"
        )
    text = _WRAPPER_TEMPLATE.format(
        node=shlex.quote(node), solcjs=shlex.quote(str(package / "solc.js"))
    )
    wrapper = root / WRAPPER_FILE
    try:
        current = wrapper.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != text or not os.access(wrapper, os.X_OK):
        _write_atomically(wrapper, text, mode=0o755)
    return wrapper


def _find_package(root: Path, package: str) -> Path | None:
    for directory in (root, *root.parents):
        candidate = directory / _NODE_MODULES / package
        if (candidate / "package.json").is_file():
            return candidate
    return None


def _contracts(output: Mapping[str, Any]) -> list[CompiledContract]:
    # The AST is the only place solc says whether a contract is an interface or abstract.
    kinds: dict[tuple[str, str], tuple[str, bool]] = {}
    for source, unit in output.get("sources", {}).items():
        for node in unit.get("ast", {}).get("nodes", []):
            if node.get("nodeType") == "ContractDefinition":
                kinds[source, node["name"]] = (node["contractKind"], bool(node["abstract"]))
    contracts = []
    for source, by_name in output.get("contracts", {}).items():
        for name, compiled in by_name.items():
            evm = compiled.get("evm", {})
            kind, abstract = kinds.get((source, name), ("contract", False))
            contracts.append(
                CompiledContract(
                    name=name,
                    source=source,
                    abi=compiled.get("abi", []),
                    bytecode="0x" + evm.get("bytecode", {}).get("object", ""),
                    deployed_bytecode="0x" + evm.get("deployedBytecode", {}).get("object", ""),
                    method_identifiers=evm.get("methodIdentifiers", {}),
                    kind=kind,
                    abstract=abstract,
                    immutable_references=evm.get("deployedBytecode", {}).get(
                        "immutableReferences", {}
                    ),
                )
            )
    return contracts


# --------------------------------------------------------------------------------------------
# Hardhat's side, for comparison
# --------------------------------------------------------------------------------------------


def hardhat_artifacts(root: Path) -> dict[str, str]:
    """Contract name -> deployedBytecode from Hardhat's artifacts/contracts/**.json."""
    result: dict[str, str] = {}
    where: dict[str, Path] = {}
    for path in sorted((Path(root) / "artifacts" / SOURCES_DIR).rglob("*.json")):
        if path.name.endswith(".dbg.json"):
            continue
        artifact = json.loads(path.read_text(encoding="utf-8"))
        name = artifact["contractName"]
        if name in result:
            raise ValueError(f"two Hardhat artifacts for {name!r}: {where[name]} and {path}")
        result[name] = artifact["deployedBytecode"]
        where[name] = path
    return result
