// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IPointProgramFactory} from "./interfaces/IPointProgramFactory.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title AllianceRegistry
/// @notice The merchants of the alliance, their signing accounts, statuses, point programs,
/// rates in the settlement unit, caps, which programs each merchant accepts, payout
/// addresses, and the clearing.
/// @dev Two roles: DEFAULT_ADMIN_ROLE (held by the alliance's TimelockController, so every
/// change of terms is scheduled before it takes effect) admits merchants, changes accounts,
/// payout addresses, rates, caps, acceptance and the refund window, and reinstates;
/// OPERATOR_ROLE runs the day-to-day (suspending in an emergency, closing periods, anchoring,
/// settling, sweeping stray tokens) and cannot change anyone's terms or act as a merchant.
contract AllianceRegistry is IAllianceRegistry, AccessControl {
    /// @notice Day-to-day operation: suspends merchants (an emergency brake, immediate).
    bytes32 public constant OPERATOR_ROLE = Roles.OPERATOR_ROLE;

    string private _settlementUnit;
    address private _factory;
    uint256 private _merchantCount;
    mapping(uint256 merchantId => Merchant) private _merchants;
    mapping(address account => uint256 merchantId) private _merchantIdOf;
    mapping(uint256 merchantId => Terms) private _terms;
    mapping(uint256 acceptor => mapping(uint256 programMerchant => bool)) private _refused;
    address private _clearing;
    uint256 private _refundWindow;
    mapping(uint256 merchantId => address payout) private _payouts;

    /// @param admin receives DEFAULT_ADMIN_ROLE (wires factory and clearing, then hands the
    /// role to the timelock)
    /// @param operator receives OPERATOR_ROLE
    /// @param settlementUnit_ the integer minor currency unit rates are expressed in, e.g. "CNY-fen"
    constructor(address admin, address operator, string memory settlementUnit_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, operator);
        _settlementUnit = settlementUnit_;
        _refundWindow = 30 days;
    }

    // ------------------------------------------------------------------
    // Admin actions (through the timelock)
    // ------------------------------------------------------------------

    /// @inheritdoc IAllianceRegistry
    function admitMerchant(address account, address payout, bytes32 recordHash)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint256 merchantId)
    {
        return _admit(account, payout, recordHash);
    }

    /// @inheritdoc IAllianceRegistry
    function admitMerchantWithProgram(Admission calldata a)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint256 merchantId, address program)
    {
        merchantId = _admit(a.account, a.payout, a.recordHash);
        _setRate(merchantId, a.rate);
        // The factory checks the config, clones, and registers the program back here.
        program = IPointProgramFactory(_factory).createProgram(merchantId, a.name, a.symbol, a.config);
    }

    /// @inheritdoc IAllianceRegistry
    function suspendMerchant(uint256 merchantId) external {
        // The emergency brake: immediate for the operator (and the admin).
        if (!hasRole(OPERATOR_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, OPERATOR_ROLE);
        }
        Merchant storage m = _existing(merchantId);
        if (m.status != MerchantStatus.Active) revert RegistryInvalidStatus(merchantId, m.status);
        m.status = MerchantStatus.Suspended;
        emit MerchantSuspended(merchantId);
    }

    /// @inheritdoc IAllianceRegistry
    function reinstateMerchant(uint256 merchantId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Merchant storage m = _existing(merchantId);
        if (m.status != MerchantStatus.Suspended) revert RegistryInvalidStatus(merchantId, m.status);
        m.status = MerchantStatus.Active;
        emit MerchantReinstated(merchantId);
    }

    /// @inheritdoc IAllianceRegistry
    function setMerchantAccount(uint256 merchantId, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Merchant storage m = _existing(merchantId);
        _requireFreeAccount(account);
        if (account == _payouts[merchantId]) revert RegistryInvalidAccount(account);
        address previous = m.account;
        delete _merchantIdOf[previous];
        _merchantIdOf[account] = merchantId;
        m.account = account;
        emit MerchantAccountChanged(merchantId, previous, account);
    }

    /// @inheritdoc IAllianceRegistry
    function setPayout(uint256 merchantId, address payout) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Merchant storage m = _existing(merchantId);
        _requireValidPayout(payout, m.account);
        address previous = _payouts[merchantId];
        _payouts[merchantId] = payout;
        emit PayoutChanged(merchantId, previous, payout);
    }

    /// @inheritdoc IAllianceRegistry
    function setRate(uint256 merchantId, uint256 rate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _existing(merchantId);
        _setRate(merchantId, rate);
    }

    /// @inheritdoc IAllianceRegistry
    function setCaps(uint256 merchantId, uint256 liabilityCap, uint256 foreignCap)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _existing(merchantId);
        Terms storage t = _terms[merchantId];
        t.liabilityCap = SafeCast.toUint112(liabilityCap);
        t.foreignCap = SafeCast.toUint112(foreignCap);
        emit CapsSet(merchantId, liabilityCap, foreignCap);
    }

    /// @inheritdoc IAllianceRegistry
    function setAcceptance(uint256 acceptor, uint256 programMerchant, bool accepted)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _existing(acceptor);
        _existing(programMerchant);
        _refused[acceptor][programMerchant] = !accepted;
        emit AcceptanceSet(acceptor, programMerchant, accepted);
    }

    /// @inheritdoc IAllianceRegistry
    function setRefundWindow(uint256 window) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (window < 1 hours || window > 366 days) revert RegistryInvalidRefundWindow(window);
        _refundWindow = window;
        emit RefundWindowSet(window);
    }

    /// @inheritdoc IAllianceRegistry
    function setClearing(address clearing_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_clearing != address(0)) revert RegistryClearingAlreadySet();
        _clearing = clearing_;
        emit ClearingSet(clearing_);
    }

    /// @inheritdoc IAllianceRegistry
    function setFactory(address factory_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_factory != address(0)) revert RegistryFactoryAlreadySet();
        _factory = factory_;
        emit FactorySet(factory_);
    }

    /// @inheritdoc IAllianceRegistry
    function registerProgram(uint256 merchantId, address program) external {
        if (msg.sender != _factory) revert RegistryNotFactory(msg.sender);
        Merchant storage m = _existing(merchantId);
        if (m.program != address(0)) revert RegistryProgramAlreadySet(merchantId);
        m.program = program;
        emit ProgramRegistered(merchantId, program);
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @inheritdoc IAllianceRegistry
    function merchant(uint256 merchantId) external view returns (Merchant memory) {
        return _existing(merchantId);
    }

    /// @inheritdoc IAllianceRegistry
    function merchantCount() external view returns (uint256) {
        return _merchantCount;
    }

    /// @inheritdoc IAllianceRegistry
    function merchantIdOf(address account) external view returns (uint256) {
        return _merchantIdOf[account];
    }

    /// @inheritdoc IAllianceRegistry
    function rateOf(uint256 merchantId) external view returns (uint256) {
        _existing(merchantId);
        return _terms[merchantId].rate;
    }

    /// @inheritdoc IAllianceRegistry
    function termsOf(uint256 merchantId) external view returns (Terms memory) {
        _existing(merchantId);
        return _terms[merchantId];
    }

    /// @inheritdoc IAllianceRegistry
    function accepts(uint256 acceptor, uint256 programMerchant) external view returns (bool) {
        return !_refused[acceptor][programMerchant];
    }

    /// @inheritdoc IAllianceRegistry
    function refundWindow() external view returns (uint256) {
        return _refundWindow;
    }

    /// @inheritdoc IAllianceRegistry
    function clearing() external view returns (address) {
        return _clearing;
    }

    /// @inheritdoc IAllianceRegistry
    function pairTerms(uint256 programMerchant, uint256 acceptor) external view returns (PairTerms memory t) {
        (address program, uint256 rate) = _activeProgram(programMerchant);
        (address acceptorProgram, uint256 acceptorRate) = _activeProgram(acceptor);
        if (_refused[acceptor][programMerchant]) revert RegistryNotAccepted(acceptor, programMerchant);
        t = PairTerms({
            program: program,
            rate: rate,
            acceptorProgram: acceptorProgram,
            acceptorRate: acceptorRate,
            acceptorForeignCap: _terms[acceptor].foreignCap
        });
    }

    /// @inheritdoc IAllianceRegistry
    function settlementUnit() external view returns (string memory) {
        return _settlementUnit;
    }

    /// @notice The factory allowed to register programs.
    function factory() external view returns (address) {
        return _factory;
    }

    /// @inheritdoc IAllianceRegistry
    function payoutOf(uint256 merchantId) external view returns (address) {
        _existing(merchantId);
        return _payouts[merchantId];
    }

    /// @inheritdoc IAllianceRegistry
    function activeAccount(uint256 merchantId) external view returns (address) {
        Merchant storage m = _existing(merchantId);
        if (m.status != MerchantStatus.Active) revert RegistryInvalidStatus(merchantId, m.status);
        return m.account;
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    function _existing(uint256 merchantId) private view returns (Merchant storage m) {
        m = _merchants[merchantId];
        if (m.status == MerchantStatus.None) revert RegistryUnknownMerchant(merchantId);
    }

    function _activeProgram(uint256 merchantId) private view returns (address program, uint256 rate) {
        Merchant storage m = _existing(merchantId);
        if (m.status != MerchantStatus.Active) revert RegistryInvalidStatus(merchantId, m.status);
        rate = _terms[merchantId].rate;
        program = m.program;
        if (rate == 0 || program == address(0)) revert RegistryRateNotSet(merchantId);
    }

    function _admit(address account, address payout, bytes32 recordHash) private returns (uint256 merchantId) {
        _requireFreeAccount(account);
        _requireValidPayout(payout, account);
        merchantId = ++_merchantCount;
        _merchants[merchantId] = Merchant({account: account, status: MerchantStatus.Active, program: address(0)});
        _merchantIdOf[account] = merchantId;
        _payouts[merchantId] = payout;
        emit MerchantAdmitted(merchantId, account, recordHash);
        emit PayoutChanged(merchantId, address(0), payout);
    }

    function _setRate(uint256 merchantId, uint256 rate) private {
        if (rate == 0 || rate > type(uint24).max) revert RegistryInvalidRate(rate);
        _terms[merchantId].rate = uint32(rate);
        emit RateSet(merchantId, rate);
    }

    /// @dev A payout address receives settlement tokens: never zero, never a relaying key.
    function _requireValidPayout(address payout, address account) private view {
        if (payout == address(0) || payout == account || _merchantIdOf[payout] != 0) {
            revert RegistryInvalidPayout(payout);
        }
    }

    function _requireFreeAccount(address account) private view {
        if (account == address(0) || _merchantIdOf[account] != 0) revert RegistryInvalidAccount(account);
    }
}
