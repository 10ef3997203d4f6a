"""Domain values shared by every layer: the signed records, their enums and integer-fen amounts.

Field order follows the EIP-712 structs in contracts/libraries/LedgerTypes.sol exactly, so
`as_abi()` is what the contract's calldata tuple expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

from Crypto.Hash import keccak as _keccak_mod
from eth_utils import to_checksum_address as _to_checksum_address

MAX_AMOUNT = (1 << 48) - 1


@lru_cache(maxsize=65_536)
def to_checksum_address(address: str) -> str:
    """EIP-55 form; cached because a consortium has few members and this is on hot paths
    (each tranche of each loan in a request, each party in each event)."""
    return _to_checksum_address(address)


def keccak256(data: bytes) -> bytes:
    """keccak-256 through pycryptodome directly (eth-hash's own backend): eth_utils' argument
    handling around the same call cost as much as the hash itself, on paths that hash each
    loan's id, tranches and digest several times."""
    return _keccak_mod.new(digest_bits=256, data=data).digest()


ZERO32 = b"\x00" * 32


class Product(IntEnum):
    CONSUMER = 0
    BUSINESS = 1


class RepaymentType(IntEnum):
    BULLET = 0
    INSTALMENT = 1


class LoanStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    OVERDUE = 2
    DEFAULTED = 3
    WRITTEN_OFF = 4
    REPAID = 5


class LineStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    CLOSED = 2
    EXPIRED = 3


class Role(IntEnum):
    NONE = 0
    GOVERNOR = 1
    PLATFORM = 2
    LENDER = 3
    AUDITOR = 4
    GUARANTOR = 5


class MemberStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2
    REMOVED = 3


ROLE_NAMES = {
    Role.NONE: "none",
    Role.GOVERNOR: "governor",
    Role.PLATFORM: "platform",
    Role.LENDER: "lender",
    Role.AUDITOR: "auditor",
    Role.GUARANTOR: "guarantor",
}

# The roles the council admits, by the name the CLI and the API take.
ADMISSIBLE_ROLES = {
    "platform": Role.PLATFORM,
    "lender": Role.LENDER,
    "auditor": Role.AUDITOR,
    "guarantor": Role.GUARANTOR,
}


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """The registry's record of one address (ConsortiumRegistry.Member), as of one block."""

    address: str
    role: Role
    status: MemberStatus
    frozen: bool
    index: int
    tier1_capital: int = 0
    total_loan_balance: int = 0
    attested_at: int = 0
    attested_until: int = 0

    @classmethod
    def from_abi(cls, address: str, value: tuple | list) -> MemberInfo:
        """From `registry.member(address)`: (role, status, frozen, index, tier1Capital,
        totalLoanBalance, attestedAt, attestedUntil). The one place that knows its order."""
        role, status, frozen, index, tier1, balance, at, until = value
        return cls(
            address, Role(role), MemberStatus(status), bool(frozen), int(index),
            int(tier1), int(balance), int(at), int(until),
        )  # fmt: skip

    @property
    def role_name(self) -> str:
        """The role as the API names it: platform, lender, auditor, governor or none."""
        return ROLE_NAMES.get(self.role, "none")

    @property
    def active(self) -> bool:
        return self.status == MemberStatus.ACTIVE

    @property
    def known(self) -> bool:
        """Registered at all (whatever its status now)."""
        return self.status != MemberStatus.NONE


def to_hex(value: bytes | bytearray | memoryview) -> str:
    """0x-prefixed lower-case hex: the one spelling of bytes in JSON, logs and problem details."""
    return "0x" + bytes(value).hex()


def as_bytes32(value: bytes | str) -> bytes:
    """A 32-byte value from bytes or 0x-hex."""
    if isinstance(value, str):
        raw = bytes.fromhex(value.removeprefix("0x"))
    else:
        raw = bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def record_id(platform: str, client_id: str | bytes) -> bytes:
    """The on-chain id of a loan, line or repayment a platform names `client_id`: the platform's
    20 address bytes, then the first 12 bytes of keccak256 of the client's id (its UTF-8 text,
    or its bytes). Ids belong to their platform: the ledger refuses a record whose id does not
    start with its platform (a repayment's: the submitting platform), so no member can use up
    another's ids (IdOutsideNamespace)."""
    raw = client_id.encode() if isinstance(client_id, str) else bytes(client_id)
    return bytes.fromhex(platform.removeprefix("0x")) + keccak256(raw)[:12]


def id_platform(record_id_: bytes) -> str:
    """The platform whose namespace an on-chain id is in (its first 20 bytes), checksummed."""
    return to_checksum_address("0x" + bytes(record_id_)[:20].hex())


@dataclass(frozen=True, slots=True)
class Tranche:
    lender: str
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "lender", to_checksum_address(self.lender))

    def as_abi(self) -> tuple[str, int]:
        return (self.lender, self.amount)


def sort_tranches(tranches: list[Tranche] | tuple[Tranche, ...]) -> tuple[Tranche, ...]:
    """Tranches in the contract's canonical order: ascending lender address."""
    return tuple(sorted(tranches, key=lambda t: int(t.lender, 16)))


@dataclass(frozen=True, slots=True)
class CoLoan:
    loan_id: bytes
    borrower_key: bytes
    platform: str
    product: Product
    principal: int
    apr_bps: int
    term_days: int
    repayment: RepaymentType
    deadline: int
    tranches: tuple[Tranche, ...]
    line_id: bytes = ZERO32
    document_digest: bytes = ZERO32
    schedule_digest: bytes = ZERO32  # ledger.schedule.digest of the repayment schedule
    # The instalment words themselves (Instalment.word()), not signed and not in `as_abi`: they
    # travel beside the terms to the contract, which checks them against schedule_digest, the
    # principal and the declared APR. Empty when there is no digest, or when the loan was read
    # back from the chain (events carry only the digest).
    schedule: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "loan_id", as_bytes32(self.loan_id))
        object.__setattr__(self, "borrower_key", as_bytes32(self.borrower_key))
        object.__setattr__(self, "line_id", as_bytes32(self.line_id))
        object.__setattr__(self, "document_digest", as_bytes32(self.document_digest))
        object.__setattr__(self, "schedule_digest", as_bytes32(self.schedule_digest))
        object.__setattr__(self, "platform", to_checksum_address(self.platform))
        object.__setattr__(self, "product", Product(self.product))
        object.__setattr__(self, "repayment", RepaymentType(self.repayment))
        object.__setattr__(self, "tranches", tuple(self.tranches))
        object.__setattr__(self, "schedule", tuple(int(w) for w in self.schedule))

    def as_abi(self) -> tuple:
        return (
            self.loan_id,
            self.borrower_key,
            self.platform,
            int(self.product),
            self.principal,
            self.apr_bps,
            self.term_days,
            int(self.repayment),
            self.line_id,
            self.document_digest,
            self.schedule_digest,
            self.deadline,
            [t.as_abi() for t in self.tranches],
        )

    @classmethod
    def from_abi(cls, value: tuple | dict) -> CoLoan:
        """From the contract's CoLoan struct: a tuple in field order, or a dict by ABI name."""
        return cls(**_fields(value, _COLOAN_ABI, "tranches"))

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(t.lender for t in self.tranches)


@dataclass(frozen=True, slots=True)
class CreditLine:
    line_id: bytes
    borrower_key: bytes
    platform: str
    product: Product
    limit: int
    expires_at: int
    deadline: int
    shares: tuple[Tranche, ...]
    document_digest: bytes = ZERO32

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_id", as_bytes32(self.line_id))
        object.__setattr__(self, "borrower_key", as_bytes32(self.borrower_key))
        object.__setattr__(self, "document_digest", as_bytes32(self.document_digest))
        object.__setattr__(self, "platform", to_checksum_address(self.platform))
        object.__setattr__(self, "product", Product(self.product))
        object.__setattr__(self, "shares", tuple(self.shares))

    def as_abi(self) -> tuple:
        return (
            self.line_id,
            self.borrower_key,
            self.platform,
            int(self.product),
            self.limit,
            self.expires_at,
            self.document_digest,
            self.deadline,
            [t.as_abi() for t in self.shares],
        )

    @classmethod
    def from_abi(cls, value: tuple | dict) -> CreditLine:
        """From the contract's CreditLine struct: a tuple in field order, or a dict by ABI
        name."""
        return cls(**_fields(value, _LINE_ABI, "shares"))

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(t.lender for t in self.shares)


def _tranche(t: tuple | dict) -> Tranche:
    if isinstance(t, dict):
        return Tranche(t["lender"], t["amount"])
    return Tranche(t[0], t[1])


# (field, ABI name) in the structs' order (contracts/libraries/LedgerTypes.sol).
_COLOAN_ABI = (
    ("loan_id", "loanId"), ("borrower_key", "borrowerKey"), ("platform", "platform"),
    ("product", "product"), ("principal", "principal"), ("apr_bps", "aprBps"),
    ("term_days", "termDays"), ("repayment", "repayment"), ("line_id", "lineId"),
    ("document_digest", "documentDigest"), ("schedule_digest", "scheduleDigest"),
    ("deadline", "deadline"), ("tranches", "tranches"),
)  # fmt: skip
_LINE_ABI = (
    ("line_id", "lineId"), ("borrower_key", "borrowerKey"), ("platform", "platform"),
    ("product", "product"), ("limit", "limit"), ("expires_at", "expiresAt"),
    ("document_digest", "documentDigest"), ("deadline", "deadline"), ("shares", "shares"),
)  # fmt: skip


def _fields(value: tuple | dict, abi: tuple[tuple[str, str], ...], parts: str) -> dict:
    """Keyword arguments from an ABI struct (tuple in order or dict by ABI name); `parts`, the
    field holding the tranches, as Tranches."""
    values = [value[name] for _f, name in abi] if isinstance(value, dict) else value
    out = dict(zip((f for f, _n in abi), values, strict=True))
    out[parts] = tuple(_tranche(t) for t in out[parts])
    return out


@dataclass(frozen=True, slots=True)
class Policy:
    """One version of the governed lending policy (R0-R9). Caps in fen, shares in basis points."""

    consumer_cap: int = 200_000 * 100
    business_cap: int = 1_000_000 * 100
    max_institutions: int = 3
    min_platform_share_bps: int = 3_000
    max_partner_capital_bps: int = 2_500
    max_joint_loan_bps: int = 5_000
    max_consumer_bullet_days: int = 365
    max_attestation_age: int = 90 * 86_400
    effective_block: int = field(default=0, compare=False)
    min_bank_tranches: int = 1  # R0: bank tranches every loan and line carries, >= 1
    max_all_in_apr_bps: int = 2_400  # R9: the all-in APR (IRR, annualised) cap, <= 3,600
    max_guarantee_multiple: int = 10  # R10: guarantees outstanding <= this x net assets
    special_mention_max_dpd: int = 90  # the five-category floor (ledger.economics.Floor)
    substandard_max_dpd: int = 270
    doubtful_max_dpd: int = 360

    def as_abi(self) -> tuple:
        return (
            self.consumer_cap,
            self.business_cap,
            self.max_institutions,
            self.min_platform_share_bps,
            self.max_partner_capital_bps,
            self.max_joint_loan_bps,
            self.max_consumer_bullet_days,
            self.max_attestation_age,
            self.effective_block,
            self.min_bank_tranches,
            self.max_all_in_apr_bps,
            self.max_guarantee_multiple,
            self.special_mention_max_dpd,
            self.substandard_max_dpd,
            self.doubtful_max_dpd,
        )

    @classmethod
    def from_abi(cls, v: tuple | dict) -> Policy:
        if isinstance(v, dict):
            v = (
                v["consumerCap"],
                v["businessCap"],
                v["maxInstitutions"],
                v["minPlatformShareBps"],
                v["maxPartnerCapitalBps"],
                v["maxJointLoanBps"],
                v["maxConsumerBulletDays"],
                v["maxAttestationAge"],
                v["effectiveBlock"],
                v["minBankTranches"],
                v["maxAllInAprBps"],
                v["maxGuaranteeMultiple"],
                v["specialMentionMaxDpd"],
                v["substandardMaxDpd"],
                v["doubtfulMaxDpd"],
            )
        return cls(*v)

    def cap(self, product: Product) -> int:
        return self.consumer_cap if product == Product.CONSUMER else self.business_cap


DEFAULT_POLICY = Policy()
