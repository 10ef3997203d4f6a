"""The code at the deployment's addresses against what contracts/ compiles to, immutables included.

The constructor writes each immutable into the runtime code, so the compiled code has zeros
there. Masking those ranges would let a ledger wired to another registry (a shadow registry one
member owns) pass, so instead the value each immutable must hold is derived from the deployment
file (the registry the ledger is wired to, the ledger's own address, the chain id and the EIP-712
domain), written into the compiled code, and the result compared byte for byte. An immutable the
audit has no expected value for is itself a violation (`UnverifiedImmutable`): adding one to a
contract means adding its expectation here. Libraries are internal (the code has no link
placeholders); a placeholder would be a `BytecodeMismatch`.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_utils import keccak

from ledger.audit.report import AuditReport, CheckResult
from ledger.chain.compiled import CompiledContract
from ledger.chain.deployment import Deployment
from ledger.provenance import Domain


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address.removeprefix("0x"))


def _short_string(text: str) -> bytes:
    """OpenZeppelin ShortStrings: the UTF-8 bytes left-aligned, their length in the last byte."""
    raw = text.encode()
    return raw.ljust(31, b"\0") + bytes([len(raw)])


def expected_immutables(name: str, deployment: Deployment) -> dict[str, bytes]:
    """ "Contract.variable" -> the 32-byte word it must hold in `name`'s runtime code."""
    if name == "ConsortiumCouncil":
        return {
            "ConsortiumCouncil._registry": _address_word(deployment.registry),
            "ConsortiumCouncil._timelock": _address_word(deployment.timelock),
        }
    if name == "LoanServicing":
        return {
            "LoanServicing.registry": _address_word(deployment.registry),
            "LoanServicing.ledger": _address_word(deployment.ledger),
        }
    if name != "CoLendingLedger":
        return {}
    domain = Domain(deployment.chain_id, deployment.ledger)
    return {
        "CoLendingLedger.registry": _address_word(deployment.registry),
        "EIP712._cachedDomainSeparator": domain.separator,
        "EIP712._cachedChainId": deployment.chain_id.to_bytes(32, "big"),
        "EIP712._cachedThis": _address_word(deployment.ledger),
        "EIP712._hashedName": keccak(domain.name.encode()),
        "EIP712._hashedVersion": keccak(domain.version.encode()),
        "EIP712._name": _short_string(domain.name),
        "EIP712._version": _short_string(domain.version),
    }


def compare_code(
    report: AuditReport,
    name: str,
    address: str,
    onchain: bytes,
    compiled: CompiledContract,
    expected_values: Mapping[str, bytes],
) -> None:
    """Report every way `onchain` differs from `compiled` with `expected_values` substituted."""
    try:
        expected = bytearray(bytes.fromhex(compiled.deployed_bytecode[2:]))
    except ValueError:  # an unlinked library placeholder
        report.add(
            "bytecode",
            "BytecodeMismatch",
            f"{name} compiles to code with unlinked library placeholders",
            details={"contract": name, "address": address},
        )
        return
    same_length = len(onchain) == len(expected)
    where = {"contract": name, "address": address}
    for ident, refs in compiled.immutable_references.items():
        var = compiled.immutable_names.get(ident, f"#{ident}")
        value = expected_values.get(var)
        for r in refs:
            start, length = r["start"], r["length"]
            found = onchain[start : start + length] if same_length else b""
            if value is None:
                # no expectation: say so, and compare the rest of the code around it
                expected[start : start + length] = found.ljust(length, b"\0")
                continue
            expected[start : start + length] = value[-length:]
            if same_length and found != value[-length:]:
                report.add(
                    "bytecode",
                    "ImmutableMismatch",
                    f"{var} in the code at {address} is 0x{found.hex()}, the deployment file "
                    f"implies 0x{value[-length:].hex()}",
                    details={**where, "immutable": var, "onchain": "0x" + found.hex(),
                             "expected": "0x" + value[-length:].hex()},
                )  # fmt: skip
                break  # once per immutable, however many places it is read
        if value is None:
            report.add(
                "bytecode",
                "UnverifiedImmutable",
                f"{name}'s immutable {var} has no expected value in the audit",
                details={**where, "immutable": var},
            )
    if not same_length:
        report.add(
            "bytecode",
            "BytecodeMismatch",
            f"code at {address} is not what contracts/ compiles to for {name} "
            f"({len(onchain)} bytes on chain, {len(expected)} compiled)",
            details=where,
        )
        return
    if bytes(expected) != onchain:
        # differences outside the immutables (those are reported above)
        masked = bytearray(onchain)
        for refs in compiled.immutable_references.values():
            for r in refs:
                masked[r["start"] : r["start"] + r["length"]] = expected[
                    r["start"] : r["start"] + r["length"]
                ]
        if bytes(masked) != bytes(expected):
            report.add(
                "bytecode",
                "BytecodeMismatch",
                f"code at {address} is not what contracts/ compiles to for {name} "
                f"({len(onchain)} bytes on chain, {len(expected)} compiled)",
                details=where,
            )


def check_bytecode(
    report: AuditReport, onchain: Mapping[str, bytes], art: Mapping[str, CompiledContract],
    deployment: Deployment,
) -> None:  # fmt: skip
    """`onchain`: contract name -> the code at its address in the deployment."""
    pairs = contracts_of(deployment)
    for name, address, recorded_hash in pairs:
        code = onchain[name]
        compare_code(report, name, address, code, art[name], expected_immutables(name, deployment))
        if recorded_hash and "0x" + keccak(code).hex() != recorded_hash.lower():
            report.add(
                "bytecode",
                "CodeHashMismatch",
                f"code at {address} differs from the hash in the deployment file",
                details={"contract": name, "address": address},
            )
    report.checks["bytecode"] = CheckResult(
        "bytecode", True, len(pairs),
        "recompiled and compared, every immutable against the deployment",
    )  # fmt: skip


def contracts_of(deployment: Deployment) -> list[tuple[str, str, str]]:
    """(contract name, address, recorded code hash or "") of every contract the deployment names:
    the council and its timelock too, which the file records without a hash."""
    pairs = [
        ("ConsortiumRegistry", deployment.registry, deployment.registry_code_hash),
        ("CoLendingLedger", deployment.ledger, deployment.ledger_code_hash),
    ]
    if deployment.council:
        pairs += [
            ("ConsortiumCouncil", deployment.council, ""),
            ("TimelockController", deployment.timelock, ""),
        ]
    if deployment.servicing:
        pairs.append(("LoanServicing", deployment.servicing, ""))
    return pairs
