// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title AllianceTimelock
/// @notice OpenZeppelin's TimelockController, unchanged: it holds the registry's and the
/// settlement token's DEFAULT_ADMIN_ROLE, so every admin action (admissions, rates, caps,
/// acceptance, refund window, account and payout changes, reinstatement) is announced by
/// `schedule` at least `minDelay` seconds before anyone can `execute` it.
contract AllianceTimelock is TimelockController {
    /// @param minDelay seconds between scheduling and executing (0 on a dev chain)
    /// @param admin the admin key: the only proposer, canceller and executor
    constructor(uint256 minDelay, address admin)
        TimelockController(minDelay, _one(admin), _one(admin), address(0))
    {}

    function _one(address a) private pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }
}
