"""EIP-712 provenance: the typed data every party signs, identical to the contracts' hashing.

The struct hashes are computed directly (eth_abi + keccak) rather than through eth_account's
generic typed-data encoder: the result is the same (a test checks both, and the contract's
`loanDigest` view), and this path is fast enough for bulk signing and the audit's replay.
Verification mirrors OpenZeppelin's ECDSA: 65-byte signatures, v in {27, 28}, and s in the lower
half of the curve order, so a malleable signature the contract would refuse is refused here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from coincurve import PrivateKey as _PrivateKey
from coincurve import PublicKey as _PublicKey
from eth_abi import encode
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import keccak, to_checksum_address

from ledger.domain import CoLoan, CreditLine, Tranche, keccak256

DOMAIN_NAME = "CoLendingLedger"
DOMAIN_VERSION = "1"

TRANCHE_TYPE = "Tranche(address lender,uint128 amount)"
COLOAN_TYPE = (
    "CoLoan(bytes32 loanId,bytes32 borrowerKey,address platform,uint8 product,uint128 principal,"
    "uint32 aprBps,uint32 termDays,uint8 repayment,bytes32 lineId,bytes32 documentDigest,"
    "bytes32 scheduleDigest,uint64 deadline,Tranche[] tranches)" + TRANCHE_TYPE
)
CREDITLINE_TYPE = (
    "CreditLine(bytes32 lineId,bytes32 borrowerKey,address platform,uint8 product,uint128 limit,"
    "uint64 expiresAt,bytes32 documentDigest,uint64 deadline,Tranche[] shares)" + TRANCHE_TYPE
)
TRANCHE_TYPEHASH = keccak(text=TRANCHE_TYPE)
COLOAN_TYPEHASH = keccak(text=COLOAN_TYPE)
CREDITLINE_TYPEHASH = keccak(text=CREDITLINE_TYPE)
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


class SignatureError(ValueError):
    """A signature that is malformed or not by the expected signer."""

    def __init__(self, signer: str, reason: str) -> None:
        super().__init__(f"signature for {signer}: {reason}")
        self.signer = signer
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one ledger deployment: a signature binds to its chain and address."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION

    @property
    def separator(self) -> bytes:
        return _separator(self.name, self.version, self.chain_id, self.verifying_contract)

    def as_eip712(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


@lru_cache(maxsize=64)
def _separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(text=name),
                keccak(text=version),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return b"\0" * 12 + bytes.fromhex(address[2:])


# Every field of these structs is a static 32-byte word, so the ABI encoding is a plain
# concatenation; building it by hand is several times faster than eth_abi's validating encoder.


def _checksummed(address: bytes) -> str:
    """EIP-55 spelling of a 20-byte address (what eth_utils.to_checksum_address returns)."""
    low = address.hex()
    mask = keccak256(low.encode("ascii")).hex()[:40]
    upper = "89abcdef"
    return "0x" + "".join(c.upper() if m in upper else c for c, m in zip(low, mask, strict=True))


def hash_tranches(tranches: tuple[Tranche, ...]) -> bytes:
    return keccak256(
        b"".join(
            keccak256(TRANCHE_TYPEHASH + _address_word(t.lender) + _word(t.amount))
            for t in tranches
        )
    )


def _hash_record(
    typehash: bytes,
    record_id: bytes,
    record: CoLoan | CreditLine,
    terms: tuple[bytes, ...],
    parties: tuple[Tranche, ...],
    digests: tuple[bytes, ...],
) -> bytes:
    # CoLoan and CreditLine lay out their structs alike: id, borrower key, platform, product,
    # then their own terms, then the digests (document; a loan's schedule too), deadline and the
    # hashed tranches (or shares).
    return keccak256(
        b"".join(
            (
                typehash,
                record_id,
                record.borrower_key,
                _address_word(record.platform),
                _word(int(record.product)),
                *terms,
                *digests,
                _word(record.deadline),
                hash_tranches(parties),
            )
        )
    )


def hash_loan(loan: CoLoan) -> bytes:
    """EIP-712 hashStruct of a co-loan; its first 24 bytes are the on-chain commitment."""
    terms = (
        _word(loan.principal),
        _word(loan.apr_bps),
        _word(loan.term_days),
        _word(int(loan.repayment)),
        loan.line_id,
    )
    digests = (loan.document_digest, loan.schedule_digest)
    return _hash_record(COLOAN_TYPEHASH, loan.loan_id, loan, terms, loan.tranches, digests)


def hash_line(line: CreditLine) -> bytes:
    """EIP-712 hashStruct of a credit line."""
    terms = (_word(line.limit), _word(line.expires_at))
    digests = (line.document_digest,)
    return _hash_record(CREDITLINE_TYPEHASH, line.line_id, line, terms, line.shares, digests)


def digest(domain: Domain, record: CoLoan | CreditLine) -> bytes:
    """The 32-byte EIP-712 digest every party of `record` signs."""
    struct_hash = hash_loan(record) if isinstance(record, CoLoan) else hash_line(record)
    return keccak256(b"\x19\x01" + domain.separator + struct_hash)


@lru_cache(maxsize=16)
def _signing_key(private_key: bytes) -> _PrivateKey:
    # Building one derives the public key, which costs more than a signature; a process signs
    # with a handful of keys (a node with its own, a DEV-ONLY consortium with a few), each
    # already held in memory by its account object.
    return _PrivateKey(private_key)


def sign_digest(private_key: bytes | str, message_digest: bytes) -> bytes:
    """A 65-byte (r, s, v) signature with v in {27, 28} and low s.

    Straight through libsecp256k1 (coincurve), which signs deterministically (RFC 6979) and only
    with low s: the same bytes eth_account gives through eth_keys, at a seventh of the cost."""
    if len(message_digest) != 32:
        raise ValueError(f"a digest is 32 bytes, not {len(message_digest)}")
    if isinstance(private_key, str):
        key = bytes.fromhex(private_key.removeprefix("0x"))
    else:
        key = bytes(private_key)
    sig = _signing_key(key).sign_recoverable(message_digest, hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))


def sign(private_key: bytes | str, domain: Domain, record: CoLoan | CreditLine) -> bytes:
    return sign_digest(private_key, digest(domain, record))


def recover(message_digest: bytes, signature: bytes) -> str:
    """The signer of `signature`, with OpenZeppelin ECDSA's checks. Raises SignatureError."""
    if len(signature) != 65:
        raise SignatureError("?", f"length {len(signature)}, expected 65")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if s > _HALF_N:
        raise SignatureError("?", "malleable signature (s in the upper half of the curve order)")
    if v not in (27, 28):
        raise SignatureError("?", f"invalid v {v}")
    try:
        pub = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(message_digest)
    except (BadSignature, ValueError) as exc:
        raise SignatureError("?", f"unrecoverable ({exc.__class__.__name__})") from None
    return _checksummed(keccak256(pub.to_bytes())[12:])


def recover_address(message_digest: bytes, signature: bytes) -> bytes | None:
    """The signer of `signature` as 20 raw bytes, or None where `recover` raises SignatureError.

    The same checks as `recover`, straight through coincurve and without the EIP-55 spelling: the
    audit recovers thousands of signatures on worker threads (libsecp256k1's call releases the
    GIL) and compares the raw address with the member's.
    """
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    if int.from_bytes(signature[32:64], "big") > _HALF_N:
        return None
    try:
        pub = _PublicKey.from_signature_and_message(
            signature[:64] + bytes((signature[64] - 27,)), message_digest, hasher=None
        )
    except ValueError:
        return None
    return keccak256(pub.format(compressed=False)[1:])[12:]


def verify(domain: Domain, record: CoLoan | CreditLine, signatures: list[bytes]) -> None:
    """Check one signature per tranche (or share), each by that tranche's lender.

    Only EOA signatures are checked here; an ERC-1271 wallet's signature is left to the contract
    (see `verify_with`).
    """
    verify_with(domain, record, signatures, contract_signers=frozenset())


def verify_with(
    domain: Domain,
    record: CoLoan | CreditLine,
    signatures: list[bytes],
    contract_signers: frozenset[str],
    *,
    message_digest: bytes | None = None,
) -> None:
    """Every EOA signer's signature recovers to it; `contract_signers` (ERC-1271 wallets) are
    checked by their contracts instead. `message_digest`: `digest(domain, record)` when the
    caller has it already (a busy node signs and verifies the same record)."""
    signers = record.signers
    if len(signatures) != len(signers):
        raise SignatureError(
            record.platform, f"{len(signatures)} signatures for {len(signers)} signers"
        )
    d = message_digest or digest(domain, record)
    for signer, sig in zip(signers, signatures, strict=True):
        if signer in contract_signers:
            continue
        try:
            got = recover(d, bytes(sig))
        except SignatureError as exc:
            raise SignatureError(signer, exc.reason) from None
        if got != signer:
            raise SignatureError(signer, f"signed by {got}")


def commitment(loan: CoLoan) -> bytes:
    """The 24-byte on-chain commitment to a loan's terms."""
    return hash_loan(loan)[:24]


def typed_data(domain: Domain, record: CoLoan | CreditLine) -> dict:
    """The full EIP-712 JSON (as eth_signTypedData_v4 takes it), for wallets and cross-checks."""
    tranche_fields = [{"name": "lender", "type": "address"}, {"name": "amount", "type": "uint128"}]
    domain_fields = [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ]
    if isinstance(record, CoLoan):
        primary = "CoLoan"
        fields = [
            ("loanId", "bytes32"),
            ("borrowerKey", "bytes32"),
            ("platform", "address"),
            ("product", "uint8"),
            ("principal", "uint128"),
            ("aprBps", "uint32"),
            ("termDays", "uint32"),
            ("repayment", "uint8"),
            ("lineId", "bytes32"),
            ("documentDigest", "bytes32"),
            ("scheduleDigest", "bytes32"),
            ("deadline", "uint64"),
            ("tranches", "Tranche[]"),
        ]
        message = {
            "loanId": record.loan_id,
            "borrowerKey": record.borrower_key,
            "platform": record.platform,
            "product": int(record.product),
            "principal": record.principal,
            "aprBps": record.apr_bps,
            "termDays": record.term_days,
            "repayment": int(record.repayment),
            "lineId": record.line_id,
            "documentDigest": record.document_digest,
            "scheduleDigest": record.schedule_digest,
            "deadline": record.deadline,
            "tranches": [{"lender": t.lender, "amount": t.amount} for t in record.tranches],
        }
    else:
        primary = "CreditLine"
        fields = [
            ("lineId", "bytes32"),
            ("borrowerKey", "bytes32"),
            ("platform", "address"),
            ("product", "uint8"),
            ("limit", "uint128"),
            ("expiresAt", "uint64"),
            ("documentDigest", "bytes32"),
            ("deadline", "uint64"),
            ("shares", "Tranche[]"),
        ]
        message = {
            "lineId": record.line_id,
            "borrowerKey": record.borrower_key,
            "platform": record.platform,
            "product": int(record.product),
            "limit": record.limit,
            "expiresAt": record.expires_at,
            "documentDigest": record.document_digest,
            "deadline": record.deadline,
            "shares": [{"lender": t.lender, "amount": t.amount} for t in record.shares],
        }
    return {
        "types": {
            "EIP712Domain": domain_fields,
            primary: [{"name": n, "type": t} for n, t in fields],
            "Tranche": tranche_fields,
        },
        "primaryType": primary,
        "domain": domain.as_eip712(),
        "message": message,
    }


def pack_signatures(signatures: Sequence[bytes]) -> bytes:
    """The signature list as the ledger takes and logs it: each signature as a 2-byte big-endian
    length, then its bytes, in tranche order (an ERC-1271 wallet's may be any length)."""
    out = bytearray()
    for sig in signatures:
        sig = bytes(sig)
        if len(sig) > 0xFFFF:
            raise ValueError(f"a signature of {len(sig)} bytes is longer than 65,535")
        out += len(sig).to_bytes(2, "big") + sig
    return bytes(out)


def unpack_signatures(packed: bytes) -> list[bytes]:
    """The signatures of a packed list (see pack_signatures); ValueError if it is malformed."""
    packed = bytes(packed)
    out, at = [], 0
    while at < len(packed):
        if at + 2 > len(packed):
            raise ValueError("truncated signature list")
        end = at + 2 + int.from_bytes(packed[at : at + 2], "big")
        if end > len(packed):
            raise ValueError("truncated signature list")
        out.append(packed[at + 2 : end])
        at = end
    return out
