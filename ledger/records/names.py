"""The wire names of the records' enums: "consumer"/"business", "bullet"/"instalment", and a
loan's status in lower case ("active", "written_off", ...)."""

from __future__ import annotations

from typing import Literal

from ledger.domain import LoanStatus, Product, RepaymentType

ProductName = Literal["consumer", "business"]
RepaymentName = Literal["bullet", "instalment"]


def product_of(name: str) -> Product:
    return Product.CONSUMER if name == "consumer" else Product.BUSINESS


def product_name(p: Product | int) -> ProductName:
    return "consumer" if int(p) == Product.CONSUMER else "business"


def repayment_of(name: str) -> RepaymentType:
    return RepaymentType.BULLET if name == "bullet" else RepaymentType.INSTALMENT


def repayment_name(r: RepaymentType | int) -> RepaymentName:
    return "bullet" if int(r) == RepaymentType.BULLET else "instalment"


def status_name(s: LoanStatus | int) -> str:
    return LoanStatus(s).name.lower()
