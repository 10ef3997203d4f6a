"""Compile the Solidity contracts from Python, byte-for-byte like Hardhat does.

Deploying from Python must put exactly the runtime code on chain that Hardhat (and anyone
verifying against Hardhat's build-info) expects. The pieces:

- ledger.chain.solc_input: the project root, and the standard-JSON input Hardhat's resolver and
  config resolution would build (same source names, order, contents and settings);
- ledger.chain.solc_run: py-solc-x over a native solc of the pinned version or, usually, the
  npm solc-js behind a generated wrapper;
- ledger.chain.compiled: the result types and errors;
- this module: compile_contracts() with its cache in build/compiled.json, the parsing of solc's
  output, and Hardhat's artifacts for comparison. Its public names are the package's API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.chain import solc_run
from ledger.chain.compiled import (
    SOURCES_DIR,
    CompilationError,
    CompiledContract,
    CompiledContracts,
    CompilerUnavailableError,
)
from ledger.chain.solc_input import load_compiler_config, project_root, standard_json_input

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

CACHE_FILE = "build/compiled.json"

# Bump when the cache layout changes, so an old build/compiled.json is never misread.
_CACHE_FORMAT = 3


def compile_contracts(root: Path | None = None, *, use_cache: bool = True) -> CompiledContracts:
    """Compile every contract of the project; cached in build/compiled.json by input hash."""
    root = Path(root).absolute() if root is not None else project_root()
    version, _ = load_compiler_config(root)
    input_json = standard_json_input(root)
    key = _input_hash(input_json, version)
    cache = root / CACHE_FILE
    if use_cache:
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
    output = solc_run.run_solc(root, version, input_json)
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
    solc_run.write_atomically(cache, json.dumps(data, separators=(",", ":")), mode=0o644)


def _contracts(output: Mapping[str, Any]) -> list[CompiledContract]:
    # The AST is the only place solc says whether a contract is an interface or abstract.
    # ...and the only place that names an immutable (immutableReferences is keyed by AST id).
    kinds: dict[tuple[str, str], tuple[str, bool]] = {}
    immutables: dict[str, str] = {}
    for source, unit in output.get("sources", {}).items():
        for node in unit.get("ast", {}).get("nodes", []):
            if node.get("nodeType") == "ContractDefinition":
                kinds[source, node["name"]] = (node["contractKind"], bool(node["abstract"]))
                for member in node.get("nodes", []):
                    if member.get("mutability") == "immutable":
                        immutables[str(member["id"])] = f"{node['name']}.{member['name']}"
    contracts = []
    for source, by_name in output.get("contracts", {}).items():
        for name, compiled in by_name.items():
            evm = compiled.get("evm", {})
            kind, abstract = kinds.get((source, name), ("contract", False))
            refs = evm.get("deployedBytecode", {}).get("immutableReferences", {})
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
                    immutable_references=refs,
                    immutable_names={i: immutables.get(i, f"#{i}") for i in refs},
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
