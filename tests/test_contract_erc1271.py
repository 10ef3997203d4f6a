"""A bank that signs through an ERC-1271 contract wallet."""

from __future__ import annotations

from eth_utils import to_checksum_address

from ledger.chain.artifacts import load_artifacts
from ledger.chain.errors import ContractRevert
from ledger.domain import Role
from ledger.provenance import sign


def _wallet(cx, owner):
    art = load_artifacts()["TestWallet1271"]
    owner_client = cx.client(owner)
    w3 = owner_client.w3
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = {
        "from": owner.address,
        "data": factory.constructor(owner.address).data_in_transaction,
        "nonce": owner_client.nonces.take(),
        "chainId": cx.deployment.chain_id,
        "gas": 1_000_000,
        **owner_client.fees(),
    }
    receipt = owner_client.wait(owner_client.send_raw(owner_client.sign(tx)))
    address = to_checksum_address(receipt.raw["contractAddress"])
    return w3.eth.contract(address=address, abi=art.abi)


def test_contract_wallet_lender_signs_through_erc1271(cx):
    owner = cx.auditor  # any key; it only owns the wallet
    wallet = _wallet(cx, owner)
    cx.gov.admit_member(wallet.address, Role.LENDER, "Bank W (contract wallet)")
    until = cx.now() + 86_400
    data = cx.plat.registry.encode_abi("attestCapital", args=[10**12, 10**13, until])
    cx.client(owner).transact(wallet, "execute", cx.deployment.registry, data)

    loan = cx.loan(1_000_000, [(cx.platform, 400_000), (wallet.address, 600_000)])
    sigs = [
        sign(
            cx.platform.key if t.lender == cx.platform.address else owner.key, cx.plat.domain, loan
        )
        for t in loan.tranches
    ]
    cx.plat.originate(loan, sigs)
    assert cx.plat.lender_usage(wallet.address, cx.platform.address)["total"] == 600_000

    # the wallet refuses a signature by anyone but its owner
    other = cx.loan(1_000_000, [(cx.platform, 400_000), (wallet.address, 600_000)])
    bad = [
        sign(
            cx.platform.key if t.lender == cx.platform.address else cx.lenders[0].key,
            cx.plat.domain,
            other,
        )
        for t in other.tranches
    ]
    try:
        cx.plat.originate(other, bad)
    except ContractRevert as exc:
        assert exc.code == "InvalidSignature"
        assert exc.values["signer"] == wallet.address
    else:
        raise AssertionError("a signature not from the wallet's owner was accepted")
