// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC1363} from "@openzeppelin/contracts/token/ERC20/extensions/ERC1363.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title SettlementToken
/// @notice The deposit token merchants settle in: one token is one settlement unit (e.g. one
/// fen), minted by the settlement minter against cash the alliance holds in escrow and burnt by its holder when
/// redeemed for cash. ERC-1363 lets a debtor pay into the clearing in one transaction
/// (`transferAndCall(clearing, amount, abi.encode(period))`).
contract SettlementToken is ERC20, ERC1363, ERC20Burnable, AccessControl {
    /// @notice May mint against cash received.
    bytes32 public constant MINTER_ROLE = Roles.MINTER_ROLE;

    /// @param admin receives DEFAULT_ADMIN_ROLE (the alliance's timelock)
    /// @param minter receives MINTER_ROLE (the settlement minter's own key)
    constructor(address admin, address minter, string memory name_, string memory symbol_)
        ERC20(name_, symbol_)
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
    }

    /// @notice Mints `amount` units to `to` against cash the alliance received.
    /// Requirements: caller has MINTER_ROLE.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @notice Settlement units are whole minor units.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @inheritdoc ERC1363
    function supportsInterface(bytes4 interfaceId) public view override(AccessControl, ERC1363) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
