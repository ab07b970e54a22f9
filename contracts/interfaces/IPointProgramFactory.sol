// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IPointProgram} from "./IPointProgram.sol";

/// @title Creates one point program per merchant as a minimal clone of one implementation.
interface IPointProgramFactory {
    /// @dev The caller is neither the registry nor the alliance admin.
    error FactoryUnauthorized(address caller);

    event ProgramCreated(uint256 indexed merchantId, address indexed program, string name, string symbol, IPointProgram.Config config);

    /// @notice Creates `merchantId`'s program at a deterministic address and registers it.
    /// Requirements:
    /// - caller is the registry, or has its DEFAULT_ADMIN_ROLE (the timelock);
    /// - the merchant exists and has no program (else the registry's error);
    /// - `config` is valid (else `PointsInvalidConfig`).
    function createProgram(uint256 merchantId, string calldata name, string calldata symbol, IPointProgram.Config calldata config)
        external
        returns (address program);

    /// @notice The address `merchantId`'s program has (or will have).
    function programAddress(uint256 merchantId) external view returns (address);

    function implementation() external view returns (address);
}
