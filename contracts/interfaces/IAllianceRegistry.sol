// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The alliance's register of merchants, their point programs and rates.
/// @notice A merchant is known on chain by a sequential id, the account that signs for it,
/// its status and its point program. Names and any personal data stay off chain; the
/// admission event carries only a hash of the merchant's off-chain record.
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
    /// @dev A rate of zero would make a program's points worthless in clearing.
    error RegistryInvalidRate(uint256 rate);

    event MerchantAdmitted(uint256 indexed merchantId, address indexed account, bytes32 recordHash);
    event MerchantSuspended(uint256 indexed merchantId);
    event MerchantReinstated(uint256 indexed merchantId);
    event MerchantAccountChanged(uint256 indexed merchantId, address indexed previous, address indexed account);
    event ProgramRegistered(uint256 indexed merchantId, address indexed program);
    event RateSet(uint256 indexed merchantId, uint256 rate);
    event FactorySet(address indexed factory);

    /// @notice Admits a merchant whose transactions `account` signs.
    /// @return merchantId the new merchant's id (1, 2, ...).
    /// Requirements:
    /// - caller has OPERATOR_ROLE;
    /// - `account` is non-zero and signs for no other merchant.
    function admitMerchant(address account, bytes32 recordHash) external returns (uint256 merchantId);

    /// @notice Stops a merchant from issuing, redeeming or reversing.
    /// Requirements: caller has OPERATOR_ROLE; the merchant is active.
    function suspendMerchant(uint256 merchantId) external;

    /// @notice Lets a suspended merchant act again.
    /// Requirements: caller has OPERATOR_ROLE; the merchant is suspended.
    function reinstateMerchant(uint256 merchantId) external;

    /// @notice Rotates the account that signs for a merchant.
    /// Requirements: caller has OPERATOR_ROLE; merchant exists; `account` is free and non-zero.
    function setMerchantAccount(uint256 merchantId, address account) external;

    /// @notice Sets a program's value in settlement units (e.g. fen) per point.
    /// Requirements: caller has OPERATOR_ROLE; merchant exists; `rate` > 0.
    function setRate(uint256 merchantId, uint256 rate) external;

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

    /// @notice The account signing for an active merchant.
    /// Requirements: the merchant exists and is active (else the matching registry error).
    function activeAccount(uint256 merchantId) external view returns (address);
}
