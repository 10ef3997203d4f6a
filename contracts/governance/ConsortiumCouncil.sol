// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

import {IConsortiumCouncil} from "../interfaces/IConsortiumCouncil.sol";
import {IConsortiumRegistry} from "../interfaces/IConsortiumRegistry.sol";

/// @title ConsortiumCouncil
/// @notice M-of-N approvals by the registry's active members in front of an OpenZeppelin
/// TimelockController. The council is the timelock's only proposer and canceller; the timelock
/// owns the registry. No vote is hand-rolled beyond counting approvals: scheduling, the delay and
/// execution are the timelock's.
contract ConsortiumCouncil is IConsortiumCouncil {
    struct Proposal {
        address target;
        State state;
        address proposer;
        bytes32 salt;
        bytes data;
    }

    IConsortiumRegistry private immutable _registry;
    TimelockController private immutable _timelock;
    /// @inheritdoc IConsortiumCouncil
    uint16 public minApprovals;

    mapping(bytes32 id => Proposal) private _proposals;
    mapping(bytes32 id => address[]) private _approvers;
    mapping(bytes32 id => mapping(address member => bool)) private _approved;

    /// @param registry_ the registry whose members form the council
    /// @param timelock_ the timelock that owns the registry; this council is its proposer
    constructor(IConsortiumRegistry registry_, TimelockController timelock_) {
        _registry = registry_;
        _timelock = timelock_;
    }

    modifier onlyCouncil() {
        if (!_isCouncil(msg.sender)) revert NotCouncilMember(msg.sender);
        _;
    }

    /// @inheritdoc IConsortiumCouncil
    function propose(address target, bytes calldata data, bytes32 salt) external onlyCouncil returns (bytes32 id) {
        if (target == address(0)) revert InvalidTarget(target);
        id = _timelock.hashOperation(target, 0, data, bytes32(0), salt);
        if (_proposals[id].state != State.None) revert ProposalExists(id);
        _proposals[id] = Proposal({target: target, state: State.Pending, proposer: msg.sender, salt: salt, data: data});
        emit ProposalCreated(id, msg.sender, target, data, salt);
        _approve(id);
    }

    /// @inheritdoc IConsortiumCouncil
    function approve(bytes32 id) external onlyCouncil {
        _expect(id, State.Pending);
        if (_approved[id][msg.sender]) revert AlreadyApproved(id, msg.sender);
        _approve(id);
    }

    /// @inheritdoc IConsortiumCouncil
    function schedule(bytes32 id) external {
        _expect(id, State.Pending);
        (uint256 counting, uint256 needed) = (_counting(id), threshold());
        if (counting < needed) revert ThresholdNotMet(id, counting, needed);
        _schedule(id);
    }

    /// @inheritdoc IConsortiumCouncil
    function execute(bytes32 id) external {
        Proposal storage p = _expect(id, State.Scheduled);
        p.state = State.Executed;
        _timelock.execute(p.target, 0, p.data, bytes32(0), p.salt);
        emit ProposalExecuted(id, msg.sender);
    }

    /// @inheritdoc IConsortiumCouncil
    function cancel(bytes32 id) external {
        Proposal storage p = _proposals[id];
        State s = _state(id);
        if (s != State.Pending && s != State.Scheduled) revert UnexpectedProposalState(id, s);
        if (msg.sender != address(_timelock)) {
            if (msg.sender != p.proposer) revert NotProposer(id, msg.sender);
            if (s != State.Pending) revert UnexpectedProposalState(id, s);
        }
        p.state = State.Cancelled;
        if (s == State.Scheduled) _timelock.cancel(id);
        emit ProposalCancelled(id, msg.sender);
    }

    /// @inheritdoc IConsortiumCouncil
    function setMinApprovals(uint16 minApprovals_) external {
        if (msg.sender != address(_timelock)) revert OnlyTimelock(msg.sender);
        minApprovals = minApprovals_;
        emit MinApprovalsChanged(minApprovals_);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortiumCouncil
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IConsortiumCouncil
    function timelock() external view returns (address) {
        return address(_timelock);
    }

    /// @inheritdoc IConsortiumCouncil
    function isCouncilMember(address account) external view returns (bool) {
        return _isCouncil(account);
    }

    /// @inheritdoc IConsortiumCouncil
    function councilSize() public view returns (uint256 n) {
        uint256 count = _registry.memberCount();
        for (uint256 i = 1; i <= count; ++i) {
            if (_isCouncil(_registry.memberAt(i))) ++n;
        }
    }

    /// @inheritdoc IConsortiumCouncil
    function threshold() public view returns (uint256) {
        uint256 majority = councilSize() / 2 + 1;
        return minApprovals > majority ? minApprovals : majority;
    }

    /// @inheritdoc IConsortiumCouncil
    function proposal(bytes32 id)
        external
        view
        returns (address target, bytes memory data, bytes32 salt, address proposer, State state)
    {
        Proposal storage p = _proposals[id];
        return (p.target, p.data, p.salt, p.proposer, _state(id));
    }

    /// @inheritdoc IConsortiumCouncil
    function approvals(bytes32 id) external view returns (uint256 counting, address[] memory approvers) {
        return (_counting(id), _approvers[id]);
    }

    // ------------------------------------------------------------------ internals

    function _isCouncil(address account) private view returns (bool) {
        IConsortiumRegistry.Member memory m = _registry.member(account);
        return m.status == IConsortiumRegistry.Status.Active && !m.frozen
            && (m.role == IConsortiumRegistry.Role.Platform || m.role == IConsortiumRegistry.Role.Lender
                || m.role == IConsortiumRegistry.Role.Auditor);
    }

    /// @dev Executed and Cancelled as the timelock sees them too: an operation executed directly
    /// on the timelock (anyone may) reads as executed here.
    function _state(bytes32 id) private view returns (State s) {
        s = _proposals[id].state;
        if (s == State.Scheduled && _timelock.isOperationDone(id)) s = State.Executed;
    }

    function _expect(bytes32 id, State want) private view returns (Proposal storage p) {
        p = _proposals[id];
        if (p.state == State.None) revert UnknownProposal(id);
        State s = _state(id);
        if (s != want) revert UnexpectedProposalState(id, s);
    }

    function _counting(bytes32 id) private view returns (uint256 n) {
        address[] storage list = _approvers[id];
        uint256 len = list.length;
        for (uint256 i; i < len; ++i) {
            if (_isCouncil(list[i])) ++n;
        }
    }

    function _approve(bytes32 id) private {
        _approved[id][msg.sender] = true;
        _approvers[id].push(msg.sender);
        (uint256 counting, uint256 needed) = (_counting(id), threshold());
        emit ProposalApproved(id, msg.sender, counting, needed);
        if (counting >= needed) _schedule(id);
    }

    function _schedule(bytes32 id) private {
        Proposal storage p = _proposals[id];
        p.state = State.Scheduled;
        uint256 delay = _timelock.getMinDelay();
        _timelock.schedule(p.target, 0, p.data, bytes32(0), p.salt, delay);
        emit ProposalScheduled(id, _timelock.getTimestamp(id));
    }
}
