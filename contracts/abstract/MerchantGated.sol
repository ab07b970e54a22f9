// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAllianceRegistry} from "../interfaces/IAllianceRegistry.sol";
import {IClearing} from "../interfaces/IClearing.sol";
import {Roles} from "../libraries/Roles.sol";

/// @title MerchantGated
/// @notice A contract that belongs to one merchant of the alliance and asks the registry who
/// may act: the merchant's active account, the operator, the clearing. Lookups only - the
/// concrete contract decides what to allow and which error to raise.
abstract contract MerchantGated {
    IAllianceRegistry internal _registry;
    uint256 internal _merchantId;

    function __MerchantGated_init(IAllianceRegistry registry_, uint256 merchantId_) internal {
        _registry = registry_;
        _merchantId = merchantId_;
    }

    /// @dev The account that signs for `merchantId_`; reverts (registry) unless it is active.
    function _activeAccount(uint256 merchantId_) internal view returns (address) {
        return _registry.activeAccount(merchantId_);
    }

    /// @dev Whether `account` has the registry's OPERATOR_ROLE.
    function _isOperator(address account) internal view returns (bool) {
        return IAccessControl(address(_registry)).hasRole(Roles.OPERATOR_ROLE, account);
    }

    function _clearing() internal view returns (IClearing) {
        return IClearing(_registry.clearing());
    }
}
