"""What compiling the contracts produces, and how it fails.

ledger.chain.compiler builds these; the Python side deploys and decodes with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Source unit names of the project's own contracts start with this directory.
SOURCES_DIR = "contracts"


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
    # immutable variable id -> "Contract.variable" (from the AST), so an audit can substitute
    # the value each immutable must hold instead of masking it
    immutable_names: dict[str, str] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def deployable(self) -> bool:
        return self.kind != "interface" and not self.abstract

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, attr) for attr, key in _JSON_KEYS.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompiledContract:
        # A missing required key raises TypeError; immutableReferences came later (default {}).
        return cls(**{attr: data[key] for attr, key in _JSON_KEYS.items() if key in data})


# CompiledContract attribute -> its key in build/compiled.json (solc's spelling).
_JSON_KEYS = {
    "name": "name",
    "source": "source",
    "abi": "abi",
    "bytecode": "bytecode",
    "deployed_bytecode": "deployedBytecode",
    "method_identifiers": "methodIdentifiers",
    "kind": "kind",
    "abstract": "abstract",
    "immutable_references": "immutableReferences",
    "immutable_names": "immutableNames",
}


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
            ours = is_project_unit(contract.source)
            if other is None or (ours and not is_project_unit(other.source)):
                by_name[contract.name] = contract
            elif ours == is_project_unit(other.source):
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
        return {n: c for n, c in self._by_name.items() if is_project_unit(c.source)}


def is_project_unit(source_name: str) -> bool:
    return source_name.startswith(SOURCES_DIR + "/")
