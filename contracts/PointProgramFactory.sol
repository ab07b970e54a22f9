// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IPointProgram} from "./interfaces/IPointProgram.sol";
import {IPointProgramFactory} from "./interfaces/IPointProgramFactory.sol";
import {PointProgram} from "./PointProgram.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title PointProgramFactory
/// @notice Creates merchants' point programs as EIP-1167 clones of one PointProgram, so a new
/// program costs a ~45-byte proxy instead of the whole token's code.
contract PointProgramFactory is IPointProgramFactory {

    IAllianceRegistry private immutable _registry;
    address private immutable _implementation;

    constructor(IAllianceRegistry registry_) {
        _registry = registry_;
        _implementation = address(new PointProgram());
    }

    /// @inheritdoc IPointProgramFactory
    function createProgram(
        uint256 merchantId,
        string calldata name,
        string calldata symbol,
        IPointProgram.Config calldata config
    ) external returns (address program) {
        // The registry, admitting a merchant with its program in one transaction, or the
        // admin (the timelock) for a merchant admitted without one.
        if (
            msg.sender != address(_registry)
                && !IAccessControl(address(_registry)).hasRole(Roles.ADMIN_ROLE, msg.sender)
        ) {
            revert FactoryUnauthorized(msg.sender);
        }
        // Say why before the clone would fail at its taken address.
        if (_registry.merchant(merchantId).program != address(0)) {
            revert IAllianceRegistry.RegistryProgramAlreadySet(merchantId);
        }
        // Clone and initialise in one transaction: nobody can initialise the clone first.
        program = Clones.cloneDeterministic(_implementation, bytes32(merchantId));
        PointProgram(program).initialize(_registry, merchantId, name, symbol, config);
        _registry.registerProgram(merchantId, program);
        emit ProgramCreated(merchantId, program, name, symbol, config);
    }

    /// @inheritdoc IPointProgramFactory
    function programAddress(uint256 merchantId) external view returns (address) {
        return Clones.predictDeterministicAddress(_implementation, bytes32(merchantId));
    }

    /// @inheritdoc IPointProgramFactory
    function implementation() external view returns (address) {
        return _implementation;
    }
}
