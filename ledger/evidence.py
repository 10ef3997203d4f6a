"""Evidence for one loan, and its offline check.

`collect(rpc_url, deployment, loan_id)` gathers what proves the record: the transaction (raw, so
its hash can be recomputed), the block header, the receipt and the log, the signatures with the
signers recovered from them, the document digest, and an `eth_getProof` Merkle proof of the
borrower's exposure word in the ledger's storage at that block.

`verify(evidence)` needs no node: it re-hashes the header into the block hash, walks the account
and storage proofs from the header's state root, re-hashes the raw transaction, finds the log in
the receipt, decodes the terms from the log and recovers every signer from the EIP-712 digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp
from eth_utils import keccak

from ledger.chain.abi import canonical
from ledger.chain.artifacts import load_artifacts
from ledger.chain.deployment import Deployment
from ledger.chain.events import EventDecoder
from ledger.chain.rpc import Rpc, RpcError
from ledger.domain import CoLoan, id_platform, to_hex
from ledger.provenance import Domain, SignatureError, digest, recover

FORMAT = "joint-lending-evidence/1"
# Storage slot of CoLendingLedger._books (after EIP712's two string fallbacks and four mappings);
# a test reads the word at this slot and compares it with the contract's view.
BOOKS_SLOT = 5
_HEADER_FIELDS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot",
    "logsBloom", "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData",
    "mixHash", "nonce", "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas",
    "parentBeaconBlockRoot", "requestsHash",
)  # fmt: skip
_QUANTITIES = {
    "difficulty",
    "number",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "baseFeePerGas",
    "blobGasUsed",
    "excessBlobGas",
}


class EvidenceError(ValueError):
    """The evidence cannot be gathered (unknown loan) or does not hold up."""


def books_slot(borrower_key: bytes) -> bytes:
    return keccak(borrower_key + BOOKS_SLOT.to_bytes(32, "big"))


def collect(rpc_url: str, deployment: Deployment, loan_id: bytes) -> dict[str, Any]:
    art = load_artifacts()
    decoder = _decoder(deployment)
    topic = to_hex(keccak(text=_loan_originated_signature(art["CoLendingLedger"].abi)))
    rpc = Rpc(rpc_url)
    try:
        logs = rpc.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(deployment.deployment_block),
                    "toBlock": "latest",
                    "address": deployment.ledger,
                    "topics": [topic, to_hex(loan_id)],
                }
            ],
        )
        if not logs:
            raise EvidenceError(f"no loan 0x{loan_id.hex()} on this ledger")
        log = logs[0]
        event = decoder.decode(log)
        assert event is not None
        loan = CoLoan.from_abi(event.args["loan"])
        tx_hash, block_hex = log["transactionHash"], log["blockNumber"]
        block = rpc.call("eth_getBlockByNumber", [block_hex, False])
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        tx = rpc.call("eth_getTransactionByHash", [tx_hash])
        try:
            raw_tx = rpc.call("eth_getRawTransactionByHash", [tx_hash])
        except RpcError:  # Hardhat node: rebuild the signed envelope from its fields
            raw_tx = to_hex(_raw_transaction(tx))
        slot = books_slot(loan.borrower_key)
        proof = rpc.call("eth_getProof", [deployment.ledger, [to_hex(slot)], block_hex])
    finally:
        rpc.close()
    domain = Domain(deployment.chain_id, deployment.ledger)
    d = digest(domain, loan)
    signatures = []
    for t, sig in zip(loan.tranches, event.args["signatures"], strict=True):
        try:
            recovered = recover(d, bytes(sig))
        except SignatureError as exc:
            recovered = f"unrecoverable: {exc.reason}"
        signatures.append({"signer": t.lender, "signature": to_hex(sig), "recovered": recovered})
    word = int(proof["storageProof"][0]["value"], 16)
    return {
        "format": FORMAT,
        "loan_id": to_hex(loan_id),
        "deployment": deployment.to_json(),
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "eip712_digest": to_hex(d),
        "transaction": {"hash": tx_hash, "raw": raw_tx, "from": tx["from"], "to": tx["to"]},
        "block": {k: block[k] for k in ("hash", *_HEADER_FIELDS) if k in block},
        "receipt": {
            k: receipt[k]
            for k in ("transactionHash", "blockHash", "blockNumber", "status", "gasUsed", "logs")
        },
        "log": {k: log[k] for k in ("address", "topics", "data", "logIndex", "transactionHash")},
        "loan": {
            "borrower_key": to_hex(loan.borrower_key),
            "platform": loan.platform,
            "principal": loan.principal,
            "product": int(loan.product),
            "tranches": [{"lender": t.lender, "amount": t.amount} for t in loan.tranches],
            "policy_version": event.args["policyVersion"],
        },
        "signatures": signatures,
        "document_digest": to_hex(loan.document_digest),
        "exposure_proof": {
            "slot": to_hex(slot),
            "value": hex(word),
            "consumer_exposure": word & ((1 << 48) - 1),
            "business_exposure": (word >> 48) & ((1 << 48) - 1),
            "account_proof": proof["accountProof"],
            "storage_proof": proof["storageProof"][0]["proof"],
            "storage_hash": proof["storageHash"],
        },
    }


@dataclass(slots=True)
class Verdict:
    ok: bool
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def verify(evidence: dict[str, Any]) -> Verdict:
    """Check a piece of evidence offline; every check must hold."""
    v = Verdict(ok=True)

    def check(name: str, ok: bool, problem: str) -> None:
        v.checks[name] = ok
        if not ok:
            v.ok = False
            v.problems.append(problem)

    if evidence.get("format") != FORMAT:
        check("format", False, f"unknown evidence format {evidence.get('format')!r}")
        return v
    block = evidence["block"]
    check(
        "block_hash",
        _header_hash(block) == _b(block["hash"]),
        "the block header does not hash to the block hash",
    )
    tx = evidence["transaction"]
    check(
        "transaction_hash",
        keccak(_b(tx["raw"])) == _b(tx["hash"]),
        "the raw transaction does not hash to the transaction hash",
    )
    receipt, log = evidence["receipt"], evidence["log"]
    in_receipt = any(
        (lg["topics"], lg["data"], lg["logIndex"]) == (log["topics"], log["data"], log["logIndex"])
        for lg in receipt["logs"]
    )
    check(
        "log_in_receipt",
        in_receipt
        and receipt["transactionHash"] == tx["hash"]
        and receipt["blockHash"] == block["hash"]
        and int(receipt["status"], 16) == 1,
        "the log is not in a successful receipt of this transaction and block",
    )
    dep = Deployment.from_json(evidence["deployment"])
    check(
        "log_address",
        log["address"].lower() == dep.ledger.lower(),
        "the log was not emitted by the ledger",
    )
    # decoded as the ledger's whatever its address says (that is the check above)
    event = _decoder(dep).decode(
        {
            **log,
            "address": dep.ledger,
            "blockNumber": receipt["blockNumber"],
            "blockHash": receipt["blockHash"],
            "transactionIndex": "0x0",
        }
    )
    if event is None or event.name != "LoanOriginated":
        check("log_decodes", False, "the log is not a LoanOriginated event")
        return v
    loan = CoLoan.from_abi(event.args["loan"])
    # ids belong to their platform: the loan's id starts with its platform's address
    check(
        "loan_id",
        to_hex(loan.loan_id) == evidence["loan_id"] and id_platform(loan.loan_id) == loan.platform,
        "the log is for another loan, or its id is outside its platform's namespace",
    )
    domain = Domain(evidence["domain"]["chainId"], evidence["domain"]["verifyingContract"])
    check(
        "domain",
        (domain.chain_id, domain.verifying_contract.lower()) == (dep.chain_id, dep.ledger.lower()),
        "the EIP-712 domain is not this deployment's",
    )
    d = digest(domain, loan)
    sig_ok = len(event.args["signatures"]) == len(loan.tranches)
    for t, sig in zip(loan.tranches, event.args["signatures"], strict=False):
        try:
            sig_ok &= recover(d, bytes(sig)) == t.lender
        except SignatureError:
            sig_ok = False  # an ERC-1271 wallet's signature needs the chain: not offline
    check("signatures", sig_ok, "a signature does not recover to its tranche's lender")
    check(
        "document_digest",
        to_hex(loan.document_digest) == evidence["document_digest"],
        "the document digest differs from the one in the log",
    )
    ep = evidence["exposure_proof"]
    account = _walk(
        _b(block["stateRoot"]), keccak(_b(dep.ledger)), [_b(n) for n in ep["account_proof"]]
    )
    storage_root = rlp.decode(account)[2] if account else None
    check(
        "account_proof",
        storage_root == _b(ep["storage_hash"]),
        "the ledger's account is not proven under the block's state root",
    )
    value = _walk(
        _b(ep["storage_hash"]), keccak(_b(ep["slot"])), [_b(n) for n in ep["storage_proof"]]
    )
    proven = int.from_bytes(rlp.decode(value), "big") if value else 0
    check(
        "storage_proof",
        proven == int(ep["value"], 16) and ep["slot"] == to_hex(books_slot(loan.borrower_key)),
        "the exposure word is not proven under the ledger's storage root",
    )
    return v


def _raw_transaction(tx: dict[str, Any]) -> bytes:
    """The signed transaction's bytes (EIP-2718 envelope) from the node's JSON fields."""
    q = lambda k: int(tx[k], 16)  # noqa: E731
    to = _b(tx["to"]) if tx.get("to") else b""
    data = _b(tx["input"])
    tx_type = int(tx.get("type", "0x0"), 16)
    r, s = q("r"), q("s")
    if tx_type == 0:
        return rlp.encode([q("nonce"), q("gasPrice"), q("gas"), to, q("value"), data, q("v"), r, s])
    access = [
        [_b(a["address"]), [_b(k) for k in a["storageKeys"]]] for a in tx.get("accessList", [])
    ]
    y = int(tx.get("yParity", tx.get("v")), 16)
    if tx_type == 1:
        fees = [q("gasPrice")]
    elif tx_type == 2:
        fees = [q("maxPriorityFeePerGas"), q("maxFeePerGas")]
    else:
        raise EvidenceError(f"transaction type {tx_type} is not supported in evidence")
    body = [q("chainId"), q("nonce"), *fees, q("gas"), to, q("value"), data, access, y, r, s]
    return bytes([tx_type]) + rlp.encode(body)


def _b(h: str) -> bytes:
    return bytes.fromhex(h[2:] if h.startswith("0x") else h)


def _header_hash(block: dict[str, Any]) -> bytes:
    fields = []
    for name in _HEADER_FIELDS:
        if name not in block:
            continue
        value = block[name]
        if name in _QUANTITIES:
            fields.append(int(value, 16))
        else:
            fields.append(_b(value))
    return keccak(rlp.encode(fields))


def _nibbles(key: bytes) -> list[int]:
    return [n for b in key for n in (b >> 4, b & 0x0F)]


def _walk(root: bytes, key: bytes, proof: list[bytes]) -> bytes | None:
    """Follow a Merkle-Patricia proof for `key` (already hashed) from `root`; the value or None.
    Raises EvidenceError if a node does not hash to what its parent points at."""
    path = _nibbles(key)
    by_hash = {keccak(n): n for n in proof}
    node: Any = root
    while True:
        if isinstance(node, bytes):
            if node == b"":
                return None
            if len(node) == 32:
                if node not in by_hash:
                    raise EvidenceError("proof is missing a node")
                node = rlp.decode(by_hash[node])
            else:
                node = rlp.decode(node)
        if len(node) == 17:
            if not path:
                return node[16] or None
            node, path = node[path[0]], path[1:]
            continue
        prefix = _nibbles(node[0])
        flag = prefix[0]
        prefix = prefix[2:] if flag in (0, 2) else prefix[1:]
        if flag in (2, 3):  # leaf
            return node[1] if prefix == path else None
        if path[: len(prefix)] != prefix:
            return None
        node, path = node[1], path[len(prefix) :]


def _decoder(deployment: Deployment) -> EventDecoder:
    return EventDecoder(deployment.registry, deployment.ledger, native=True)


def _loan_originated_signature(abi: list[dict]) -> str:
    item = next(i for i in abi if i.get("type") == "event" and i["name"] == "LoanOriginated")
    return f"LoanOriginated({','.join(canonical(i) for i in item['inputs'])})"
