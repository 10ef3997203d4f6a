// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title TestGasBurner1271
/// @notice TEST ONLY: a hostile bank's contract wallet whose ERC-1271 check burns every unit of
/// gas it is given, and which forwards its owner's calls (so it can attest capital as a lender).
contract TestGasBurner1271 is IERC1271 {
    address public immutable owner;

    error NotOwner();
    error CallFailed(bytes reason);

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice ERC-1271: never answers; spins until its gas runs out.
    function isValidSignature(bytes32 hash, bytes calldata) external view returns (bytes4) {
        uint256 x = uint256(hash);
        while (gasleft() > 0) {
            x = uint256(keccak256(abi.encode(x, owner)));
        }
        return bytes4(uint32(x));
    }

    /// @notice Forward a call from the owner.
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        if (msg.sender != owner) revert NotOwner();
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) revert CallFailed(ret);
        return ret;
    }
}
