// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IConsortiumCouncil
/// @notice The consortium's council: every active, unfrozen platform, lender and auditor of the
/// registry, read at the time of each count. A proposal is one call (target, data, salt); once a
/// majority of the current council has approved it, it is scheduled on the TimelockController
/// (the council is its only proposer and canceller) and anyone may execute it after the delay.
/// An approval counts only while its member is on the council, so a suspended, frozen or removed
/// member's approvals stop counting (a reinstated member's count again).
interface IConsortiumCouncil {
    enum State {
        None,
        Pending,
        Scheduled,
        Executed,
        Cancelled
    }

    /// @notice `proposer` proposed calling `target` with `data`; `id` is the timelock's operation id.
    event ProposalCreated(bytes32 indexed id, address indexed proposer, address target, bytes data, bytes32 salt);
    /// @notice `member` approved `id`; `approvals` of them count now, `threshold` are needed.
    event ProposalApproved(bytes32 indexed id, address indexed member, uint256 approvals, uint256 threshold);
    /// @notice `id` met its threshold and is scheduled on the timelock, executable from `readyAt`.
    event ProposalScheduled(bytes32 indexed id, uint256 readyAt);
    /// @notice `id` was executed through the timelock by `executor`.
    event ProposalExecuted(bytes32 indexed id, address indexed executor);
    /// @notice `id` was cancelled by `by` (its proposer before scheduling, or the timelock).
    event ProposalCancelled(bytes32 indexed id, address indexed by);
    /// @notice The governed floor on approvals changed; the threshold is never below a majority.
    event MinApprovalsChanged(uint256 minApprovals);

    /// @notice `account` is not an active, unfrozen platform, lender or auditor.
    error NotCouncilMember(address account);
    /// @notice No proposal has this id.
    error UnknownProposal(bytes32 id);
    /// @notice A proposal with this id (same target, data and salt) exists already.
    error ProposalExists(bytes32 id);
    /// @notice `member` approved `id` already.
    error AlreadyApproved(bytes32 id, address member);
    /// @notice `id` is in `state`, not the one this call needs.
    error UnexpectedProposalState(bytes32 id, State state);
    /// @notice `id` has `approvals` counting approvals; it needs `threshold`.
    error ThresholdNotMet(bytes32 id, uint256 approvals, uint256 threshold);
    /// @notice Only the proposer (while pending) or the council through the timelock cancels.
    error NotProposer(bytes32 id, address account);
    /// @notice Only the timelock (a council decision) may call this.
    error OnlyTimelock(address account);
    /// @notice A proposal needs a target.
    error InvalidTarget(address target);

    /// @notice Propose one call on `target`; the proposer's own approval is counted at once.
    /// Council members only.
    /// @param target the contract to call (usually the registry)
    /// @param data the ABI-encoded call
    /// @param salt distinguishes otherwise identical proposals
    /// @return id the proposal id, equal to the timelock's hashOperation(target, 0, data, 0, salt)
    function propose(address target, bytes calldata data, bytes32 salt) external returns (bytes32 id);

    /// @notice Approve a pending proposal; schedules it on the timelock when the threshold is met.
    /// Council members only.
    function approve(bytes32 id) external;

    /// @notice Recount a pending proposal's approvals (e.g. after the council shrank) and schedule
    /// it when they meet the threshold. Anyone.
    function schedule(bytes32 id) external;

    /// @notice Execute a scheduled proposal through the timelock once its delay has passed. Anyone.
    function execute(bytes32 id) external;

    /// @notice Cancel a proposal: its proposer while it is pending, or the council (the timelock)
    /// at any time before execution.
    function cancel(bytes32 id) external;

    /// @notice Set the governed floor on approvals; the threshold is the larger of it and a
    /// majority. Timelock only.
    function setMinApprovals(uint16 minApprovals) external;

    /// @notice The registry whose members form the council.
    function registry() external view returns (address);

    /// @notice The TimelockController that owns the registry and runs the council's decisions.
    function timelock() external view returns (address);

    /// @notice The governed floor on approvals.
    function minApprovals() external view returns (uint16);

    /// @notice Whether `account` is on the council now.
    function isCouncilMember(address account) external view returns (bool);

    /// @notice The number of council members now.
    function councilSize() external view returns (uint256);

    /// @notice Approvals needed now: a majority of the council, or minApprovals if larger.
    function threshold() external view returns (uint256);

    /// @notice A proposal's call, proposer and state (Executed and Cancelled as the timelock sees them).
    function proposal(bytes32 id)
        external
        view
        returns (address target, bytes memory data, bytes32 salt, address proposer, State state);

    /// @notice Approvals of `id` counting now, and every approver so far.
    function approvals(bytes32 id) external view returns (uint256 counting, address[] memory approvers);
}
