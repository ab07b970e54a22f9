// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Roles
/// @notice The one source of the alliance's role identifiers. The registry holds the roles
/// (OpenZeppelin AccessControl); every other alliance contract asks the registry with these.
/// The admin role is OpenZeppelin's DEFAULT_ADMIN_ROLE (0x00), held by the alliance's
/// TimelockController: every admin action is scheduled before it takes effect.
library Roles {
    /// @notice OpenZeppelin's DEFAULT_ADMIN_ROLE: the timelock's (changes of terms).
    bytes32 internal constant ADMIN_ROLE = 0x00;
    /// @notice Day-to-day operation of the alliance (see the registry and the clearing).
    bytes32 internal constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Mints settlement tokens against cash received (the SettlementToken's role).
    bytes32 internal constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice A merchant account that registers products and serials (the ItemRegistry's).
    bytes32 internal constant BRAND_ROLE = keccak256("BRAND_ROLE");
}
