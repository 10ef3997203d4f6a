// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortiumRegistry} from "./IConsortiumRegistry.sol";

/// @title IConsortiumRegistryErrors
/// @notice The custom errors ConsortiumRegistry reverts with (besides OpenZeppelin's Ownable and
/// Pausable errors).
interface IConsortiumRegistryErrors {
    /// @notice `account` is or was a member already; an address is admitted once.
    error AlreadyMember(address account);
    /// @notice `account` was never admitted.
    error NotMember(address account);
    /// @notice Only Platform, Lender and Auditor can be admitted.
    error InvalidRole(IConsortiumRegistry.Role role);
    /// @notice `account` cannot move from `from` to `to`.
    error InvalidStatusChange(address account, IConsortiumRegistry.Status from, IConsortiumRegistry.Status to);
    /// @notice The governor's record changes only with a governor hand-over.
    error GovernorRecordImmutable(address account);
    /// @notice The display name is longer than `max` bytes.
    error NameTooLong(uint256 length, uint256 max);
    /// @notice Member indices are 16 bits; the registry is full.
    error TooManyMembers();
    /// @notice Only an active lender or guarantor attests capital.
    error NotActiveLender(address account);
    /// @notice `validUntil` is not in the future or further ahead than the policy's maxAttestationAge.
    error InvalidAttestation(uint256 validUntil, uint256 nowTs, uint256 maxAge);
    /// @notice The policy's `field` is zero or out of range.
    error InvalidPolicy(string field);
    /// @notice The policy's `field` is `value`, beyond the hard regulatory `bound` no vote can cross
    /// (R1 <= 200,000 CNY, R2 <= 1,000,000 CNY, R4 >= 30%, R5 <= 25%, R6 <= 50%, R7 <= 365 days;
    /// R3 <= 5 is InvalidPolicy("maxInstitutions")).
    error PolicyOutOfBounds(string field, uint256 value, uint256 bound);
    /// @notice Only an active, unfrozen platform, lender or auditor (or the owner) pauses.
    error NotActiveMember(address account);
    /// @notice No policy has this version number.
    error UnknownPolicyVersion(uint256 version);
    /// @notice A partnership's fee share is outside its disclosed range (or the range above 100%).
    error FeeShareOutOfRange(uint256 feeBps, uint256 minFeeBps, uint256 maxFeeBps);
    /// @notice A validity period that ends before it starts.
    error InvalidPeriod(uint256 validFrom, uint256 validUntil);
    /// @notice The platform's terms differ from what `bank` offered.
    error PartnershipTermsMismatch(address bank, address platform);
    /// @notice `account` is not an active, unfrozen member in `role`.
    error NotActiveInRole(address account, IConsortiumRegistry.Role role);
    /// @notice The consortium always has a governor: ownership cannot be renounced.
    error GovernorRequired();
    /// @notice Servicing moves only away from a suspended or removed platform (`from` is `status`).
    error ServicingNotTransferable(address from, IConsortiumRegistry.Status status);
    /// @notice Servicing moves only to another active, unfrozen platform whose own servicing was
    /// never transferred.
    error InvalidServicer(address to);
    /// @notice `account`'s servicing was transferred: it cannot be reinstated.
    error ServicingWasTransferred(address account, address servicer);
}
