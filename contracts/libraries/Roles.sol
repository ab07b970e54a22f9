// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Roles
/// @notice The one source of the alliance's role identifiers. The registry holds the roles
/// (OpenZeppelin AccessControl); every other alliance contract asks the registry with these.
library Roles {
    /// @notice Day-to-day operation of the alliance (see the registry and the clearing).
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
}
