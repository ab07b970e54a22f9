// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IPointProgram} from "./IPointProgram.sol";

/// @title The alliance's register of merchants, their point programs and rates.
/// @notice A merchant is known on chain by a sequential id, the account that signs for it,
/// its status, its point program and its payout address (where the clearing pays it; never
/// its signing account). Names and any personal data stay off chain; the admission event
/// carries only a hash of the merchant's off-chain record.
/// Changes of terms need DEFAULT_ADMIN_ROLE, held by the alliance's timelock, so they are
/// announced before they take effect; the operator (OPERATOR_ROLE) may only suspend.
interface IAllianceRegistry {
    enum MerchantStatus {
        None,
        Active,
        Suspended
    }

    struct Merchant {
        address account;
        MerchantStatus status;
        address program;
    }

    /// @notice The operator's terms for one merchant, in one slot.
    /// @param rate settlement units (e.g. fen) one of its points is worth; 0 until set
    /// @param liabilityCap most its outstanding points may be worth in settlement units (0: no cap)
    /// @param foreignCap most value in foreign points it may accept per clearing period (0: no cap)
    struct Terms {
        uint32 rate;
        uint112 liabilityCap;
        uint112 foreignCap;
    }

    /// @notice Everything one admission sets, in one transaction: the merchant, its payout
    /// address, its rate and its point program.
    struct Admission {
        address account;
        address payout;
        bytes32 recordHash;
        uint256 rate;
        string name;
        string symbol;
        IPointProgram.Config config;
    }

    /// @notice What clearing needs to move value from a program's merchant to an accepting one.
    struct PairTerms {
        address program;
        uint256 rate;
        address acceptorProgram;
        uint256 acceptorRate;
        uint256 acceptorForeignCap;
    }

    /// @dev `merchantId` is not a registered merchant.
    error RegistryUnknownMerchant(uint256 merchantId);
    /// @dev `account` is zero or already signs for another merchant.
    error RegistryInvalidAccount(address account);
    /// @dev The merchant is not in the status the call needs.
    error RegistryInvalidStatus(uint256 merchantId, MerchantStatus status);
    /// @dev The merchant already has a program.
    error RegistryProgramAlreadySet(uint256 merchantId);
    /// @dev Only the factory may register programs.
    error RegistryNotFactory(address caller);
    /// @dev The factory was already set.
    error RegistryFactoryAlreadySet();
    /// @dev A rate of zero would make a program's points worthless in clearing; above 2^24 - 1
    /// it would not fit the redemption record.
    error RegistryInvalidRate(uint256 rate);
    /// @dev The merchant's program has no rate yet, so its points cannot be cleared.
    error RegistryRateNotSet(uint256 merchantId);
    /// @dev `acceptor` does not accept the points of `programMerchant`.
    error RegistryNotAccepted(uint256 acceptor, uint256 programMerchant);
    /// @dev The clearing contract was already set.
    error RegistryClearingAlreadySet();
    /// @dev A refund window must be between one hour and 366 days.
    error RegistryInvalidRefundWindow(uint256 window);
    /// @dev A payout address must be non-zero and not a merchant's signing account.
    error RegistryInvalidPayout(address payout);

    event MerchantAdmitted(uint256 indexed merchantId, address indexed account, bytes32 recordHash);
    event MerchantSuspended(uint256 indexed merchantId);
    event MerchantReinstated(uint256 indexed merchantId);
    event MerchantAccountChanged(uint256 indexed merchantId, address indexed previous, address indexed account);
    event ProgramRegistered(uint256 indexed merchantId, address indexed program);
    event RateSet(uint256 indexed merchantId, uint256 rate);
    event FactorySet(address indexed factory);
    event ClearingSet(address indexed clearing);
    event AcceptanceSet(uint256 indexed acceptor, uint256 indexed programMerchant, bool accepted);
    event CapsSet(uint256 indexed merchantId, uint256 liabilityCap, uint256 foreignCap);
    event RefundWindowSet(uint256 window);
    event PayoutChanged(uint256 indexed merchantId, address indexed previous, address indexed payout);

    /// @notice Admits a merchant whose transactions `account` signs and whom the clearing
    /// pays at `payout` (no program or rate yet: see `admitMerchantWithProgram`).
    /// @return merchantId the new merchant's id (1, 2, ...).
    /// Requirements:
    /// - caller has DEFAULT_ADMIN_ROLE (the timelock);
    /// - `account` is non-zero and signs for no other merchant;
    /// - `payout` is non-zero, not `account` and signs for no merchant.
    function admitMerchant(address account, address payout, bytes32 recordHash)
        external
        returns (uint256 merchantId);

    /// @notice Admits a merchant, sets its rate and creates its point program, all or nothing.
    /// Requirements: as `admitMerchant`, `setRate` and the factory's `createProgram`.
    function admitMerchantWithProgram(Admission calldata admission)
        external
        returns (uint256 merchantId, address program);

    /// @notice Stops a merchant from issuing, redeeming or reversing (immediate: the
    /// operator's emergency brake).
    /// Requirements: caller has OPERATOR_ROLE or DEFAULT_ADMIN_ROLE; the merchant is active.
    function suspendMerchant(uint256 merchantId) external;

    /// @notice Lets a suspended merchant act again.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; the merchant is suspended.
    function reinstateMerchant(uint256 merchantId) external;

    /// @notice Rotates the account that signs for a merchant.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; merchant exists; `account` is free,
    /// non-zero and not the merchant's payout address.
    function setMerchantAccount(uint256 merchantId, address account) external;

    /// @notice Changes where the clearing pays a merchant.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; merchant exists; `payout` is non-zero, not
    /// the merchant's account and signs for no merchant.
    function setPayout(uint256 merchantId, address payout) external;

    /// @notice Sets a program's value in settlement units (e.g. fen) per point.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; merchant exists; 0 < `rate` < 2^24.
    function setRate(uint256 merchantId, uint256 rate) external;

    /// @notice Sets a merchant's caps in settlement units: the value its outstanding points may
    /// reach (issuing beyond it reverts) and the value of foreign points it may accept per
    /// clearing period. 0 lifts a cap.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; merchant exists; each cap < 2^112.
    function setCaps(uint256 merchantId, uint256 liabilityCap, uint256 foreignCap) external;

    /// @notice Whether `acceptor` takes the points of `programMerchant` (default: yes).
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; both merchants exist.
    function setAcceptance(uint256 acceptor, uint256 programMerchant, bool accepted) external;

    /// @notice How long after a redemption the accepting merchant may refund it.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; 1 hour <= `window` <= 366 days.
    function setRefundWindow(uint256 window) external;

    /// @notice Names the one clearing contract programs report cross-merchant value to.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; no clearing set yet.
    function setClearing(address clearing) external;

    /// @notice Records the program the factory created for a merchant.
    /// Requirements: caller is the factory; merchant exists and has no program yet.
    function registerProgram(uint256 merchantId, address program) external;

    /// @notice Names the one factory allowed to register programs.
    /// Requirements: caller has DEFAULT_ADMIN_ROLE; no factory set yet.
    function setFactory(address factory) external;

    function merchant(uint256 merchantId) external view returns (Merchant memory);
    function merchantCount() external view returns (uint256);
    function merchantIdOf(address account) external view returns (uint256);
    function rateOf(uint256 merchantId) external view returns (uint256);
    function settlementUnit() external view returns (string memory);
    function termsOf(uint256 merchantId) external view returns (Terms memory);
    function accepts(uint256 acceptor, uint256 programMerchant) external view returns (bool);
    function refundWindow() external view returns (uint256);
    function clearing() external view returns (address);
    /// @notice Where the clearing pays `merchantId` (never its signing account).
    function payoutOf(uint256 merchantId) external view returns (address);

    /// @notice The terms for clearing `programMerchant`'s points at `acceptor`.
    /// Requirements (else the matching registry error): both merchants exist and are active,
    /// both have a program and a rate, and `acceptor` accepts `programMerchant`'s points.
    function pairTerms(uint256 programMerchant, uint256 acceptor) external view returns (PairTerms memory);

    /// @notice The account signing for an active merchant.
    /// Requirements: the merchant exists and is active (else the matching registry error).
    function activeAccount(uint256 merchantId) external view returns (address);
}
