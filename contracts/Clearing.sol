// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC1363Receiver} from "@openzeppelin/contracts/interfaces/IERC1363Receiver.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IClearing} from "./interfaces/IClearing.sol";
import {IPointProgram} from "./interfaces/IPointProgram.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title Clearing
/// @notice Net positions between merchants per period, period close, and settlement through
/// an escrow of the settlement token (see IClearing).
/// @dev Positions are kept per (period, merchant) - one slot each, holding the net and the
/// foreign value accepted - so a redemption batch writes two slots whatever its size, and
/// closing a period only reads one slot per merchant: the period's positions are already its
/// record. Nothing in a close or a claim loops over redemptions. Settlement is pulled: each
/// creditor's claim is O(1) (its pro-rata share of what debtors paid so far); only the close
/// reads one slot per merchant.
contract Clearing is IClearing, IERC1363Receiver {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;
    using SafeCast for int256;


    IAllianceRegistry private immutable _registry;
    IERC20 private immutable _token;

    uint256 private _currentPeriod;
    mapping(uint256 period => mapping(uint256 merchantId => Position)) private _positions;
    mapping(uint256 period => mapping(uint256 merchantId => Settlement)) private _settlements;
    mapping(uint256 period => Period) private _periods;
    mapping(uint256 period => mapping(uint256 merchantId => bytes32)) private _statements;
    /// @dev Settlement tokens held for every period's escrow (paid in, not yet claimed).
    uint256 private _escrowed;
    address private _couponBook;

    constructor(IAllianceRegistry registry_, IERC20 token_) {
        _registry = registry_;
        _token = token_;
        _currentPeriod = 1;
    }

    // ------------------------------------------------------------------
    // Called by point programs
    // ------------------------------------------------------------------

    /// @inheritdoc IClearing
    function recordRedemption(uint256 programMerchant, uint256 acceptor, uint256 points)
        external
        returns (uint256 rate)
    {
        IAllianceRegistry.PairTerms memory t = _pairFromProgram(programMerchant, acceptor);
        rate = t.rate;
        _move(programMerchant, acceptor, Kind.Redemption, points, rate, points * rate, t.acceptorForeignCap);
    }

    /// @inheritdoc IClearing
    function quoteConversion(uint256 programMerchant, uint256 acceptor, uint256 amount)
        external
        view
        returns (uint256 out, uint256 spent, uint256 value)
    {
        IAllianceRegistry.PairTerms memory t = _registry.pairTerms(programMerchant, acceptor);
        return _quote(amount, t.rate, t.acceptorRate);
    }

    /// @inheritdoc IClearing
    function recordConversion(
        uint256 programMerchant,
        uint256 acceptor,
        address member,
        uint256 amount,
        bytes32 conversionId,
        uint256 expiresAt
    ) external returns (uint256 out, uint256 spent) {
        IAllianceRegistry.PairTerms memory t = _pairFromProgram(programMerchant, acceptor);
        uint256 value;
        (out, spent, value) = _quote(amount, t.rate, t.acceptorRate);
        if (out == 0) revert ClearingConversionTooSmall(out, 1);
        _move(programMerchant, acceptor, Kind.Conversion, spent, t.rate, value, t.acceptorForeignCap);
        // The acceptor's program credits the member; it checks the caller is this contract.
        IPointProgram(t.acceptorProgram).creditConverted(member, out, programMerchant, conversionId, expiresAt);
    }

    /// @inheritdoc IClearing
    function recordRefund(uint256 programMerchant, uint256 acceptor, uint256 points, uint256 rate) external {
        // The issuer may have been suspended since (the program checked the acceptor relays
        // and is active): a member's refund is not held up by the issuer's status.
        if (_registry.merchant(programMerchant).program != msg.sender) {
            revert ClearingNotProgram(msg.sender, programMerchant);
        }
        uint256 value = points * rate;
        int128 v = _value(value);
        uint256 p = _currentPeriod;
        Position memory acc = _positions[p][acceptor];
        // A refund gives back room under the acceptor's foreign cap of this period.
        uint256 accepted = acc.foreignAccepted;
        _positions[p][acceptor] =
            Position({net: acc.net - v, foreignAccepted: uint128(accepted > value ? accepted - value : 0)});
        _positions[p][programMerchant].net += v;
        emit Cleared(p, acceptor, programMerchant, Kind.Refund, points, rate, value);
    }

    // ------------------------------------------------------------------
    // Called by the coupon book
    // ------------------------------------------------------------------

    /// @inheritdoc IClearing
    function setCouponBook(address couponBook_) external {
        if (!IAccessControl(address(_registry)).hasRole(Roles.ADMIN_ROLE, msg.sender)) {
            revert ClearingUnauthorized(msg.sender);
        }
        if (_couponBook != address(0)) revert ClearingCouponBookAlreadySet();
        if (couponBook_ == address(0)) revert ClearingNotCouponBook(couponBook_);
        _couponBook = couponBook_;
        emit CouponBookSet(couponBook_);
    }

    /// @inheritdoc IClearing
    function recordCouponRedemption(uint256 issuer, uint256 acceptor, uint256 value) external {
        if (msg.sender != _couponBook) revert ClearingNotCouponBook(msg.sender);
        _move(issuer, acceptor, Kind.Coupon, value, 1, value, 0);
    }

    /// @inheritdoc IClearing
    function recordCouponRollback(uint256 issuer, uint256 acceptor, uint256 value) external {
        if (msg.sender != _couponBook) revert ClearingNotCouponBook(msg.sender);
        int128 v = _value(value);
        uint256 p = _currentPeriod;
        _positions[p][acceptor].net -= v;
        _positions[p][issuer].net += v;
        emit Cleared(p, acceptor, issuer, Kind.CouponRollback, value, 1, value);
    }

    function _pairFromProgram(uint256 programMerchant, uint256 acceptor)
        private
        view
        returns (IAllianceRegistry.PairTerms memory t)
    {
        t = _registry.pairTerms(programMerchant, acceptor);
        if (t.program != msg.sender) revert ClearingNotProgram(msg.sender, programMerchant);
    }

    /// @dev out = floor(amount * rateA / rateB); spent = ceil(out * rateB / rateA) <= amount;
    /// value = out * rateB <= spent * rateA: rounding never creates value, the remainder of
    /// `amount` stays with the member in the first program.
    function _quote(uint256 amount, uint256 rateA, uint256 rateB)
        private
        pure
        returns (uint256 out, uint256 spent, uint256 value)
    {
        out = Math.mulDiv(amount, rateA, rateB);
        value = out * rateB;
        spent = Math.mulDiv(out, rateB, rateA, Math.Rounding.Ceil);
    }

    function _move(
        uint256 debtor,
        uint256 creditor,
        Kind kind,
        uint256 points,
        uint256 rate,
        uint256 value,
        uint256 creditorCap
    ) private {
        int128 v = _value(value);
        uint256 p = _currentPeriod;
        Position memory c = _positions[p][creditor];
        uint256 accepted = uint256(c.foreignAccepted) + value;
        if (creditorCap != 0 && accepted > creditorCap) {
            revert ClearingForeignCapExceeded(creditor, creditorCap, accepted);
        }
        _positions[p][creditor] = Position({net: c.net + v, foreignAccepted: accepted.toUint128()});
        _positions[p][debtor].net -= v;
        emit Cleared(p, debtor, creditor, kind, points, rate, value);
    }

    function _value(uint256 value) private pure returns (int128) {
        // 2^100 settlement units is far past any period's trade; the bound keeps nets in int128.
        if (value == 0 || value > 2 ** 100) revert ClearingInvalidAmount(value);
        return int128(int256(value));
    }

    // ------------------------------------------------------------------
    // Operator: close, anchor, sweep; anyone: claim (to the payout address)
    // ------------------------------------------------------------------

    /// @inheritdoc IClearing
    function closePeriod() external returns (uint256 p) {
        _requireOperator();
        p = _currentPeriod;
        uint256 n = _registry.merchantCount();
        int256 sum = 0;
        uint256 owed = 0;
        for (uint256 m = 1; m <= n; ++m) {
            int256 net = _positions[p][m].net;
            // A merchant without acts in the period has nothing to record (net 0).
            if (net == 0) continue;
            sum += net;
            if (net < 0) owed += uint256(-net);
            emit NetRecorded(p, m, net);
        }
        if (sum != 0) revert ClearingImbalance(p, sum);
        // Only the first slot: the settlement counters of a new period are still zero.
        Period storage stored = _periods[p];
        stored.closedAt = uint64(block.timestamp);
        stored.merchants = uint64(n);
        stored.totalOwed = owed.toUint128();
        _currentPeriod = p + 1;
        emit PeriodClosed(p, n, owed);
    }

    /// @inheritdoc IClearing
    function claim(uint256 p, uint256[] calldata merchantIds) external returns (uint256 paid) {
        Period memory info = _closed(p);
        Period storage stored = _periods[p];
        // The escrow pays creditors pro rata of what debtors paid (into escrow or off chain):
        // a creditor's share is floor(net x totalPaid / totalOwed), never above its net, and
        // a claim never takes more than the period's escrow holds. Each payout is booked
        // before its transfer.
        for (uint256 i = 0; i < merchantIds.length; ++i) {
            uint256 m = merchantIds[i];
            uint256 pay = Math.min(_claimable(p, m, info), stored.escrow);
            // slither-disable-next-line incorrect-equality
            if (pay == 0) continue;
            paid += pay;
            _settlements[p][m].received += uint128(pay);
            stored.escrow -= uint128(pay);
            stored.totalReceived += uint128(pay);
            _escrowed -= pay;
            address payout = _registry.payoutOf(m);
            emit PaidOut(p, m, payout, pay);
            _token.safeTransfer(payout, pay);
        }
        // slither-disable-next-line incorrect-equality
        if (paid == 0) revert ClearingNothingToClaim(p);
    }

    /// @inheritdoc IClearing
    function sweep(address to) external returns (uint256 amount) {
        _requireOperator();
        // Only tokens that reached us without a deposit: escrow (paid in, not yet claimed)
        // is counted in _escrowed and never swept.
        amount = _token.balanceOf(address(this)) - _escrowed;
        // slither-disable-next-line incorrect-equality
        if (amount == 0 || to == address(0)) revert ClearingNothingToSweep();
        emit StraySwept(to, amount);
        _token.safeTransfer(to, amount);
    }

    /// @inheritdoc IClearing
    function anchorStatement(uint256 p, uint256 merchantId, bytes32 statementHash_) external {
        _requireOperator();
        _closed(p);
        if (_statements[p][merchantId] != bytes32(0)) revert ClearingStatementAlreadyAnchored(p, merchantId);
        if (merchantId == 0 || merchantId > _registry.merchantCount()) {
            revert IAllianceRegistry.RegistryUnknownMerchant(merchantId);
        }
        _statements[p][merchantId] = statementHash_;
        emit StatementAnchored(p, merchantId, statementHash_);
    }

    // ------------------------------------------------------------------
    // Merchants: deposit, confirm off-chain payment
    // ------------------------------------------------------------------

    /// @notice Takes a debtor's deposit for a closed period: the settlement token's
    /// `transferAndCall(clearing, amount, abi.encode(period))` lands here. Reverting undoes the
    /// transfer, so an overpayment or a deposit by a non-debtor changes nothing.
    function onTransferReceived(address, address from, uint256 amount, bytes calldata data)
        external
        returns (bytes4)
    {
        if (msg.sender != address(_token) || data.length != 32) revert ClearingInvalidDeposit();
        uint256 p = abi.decode(data, (uint256));
        Period memory info = _closed(p);
        uint256 merchantId = _registry.merchantIdOf(from);
        if (merchantId == 0 || merchantId > info.merchants) revert ClearingUnauthorized(from);
        if (amount == 0) revert ClearingInvalidAmount(amount);
        Settlement storage s = _settlements[p][merchantId];
        uint256 owes = _owes(p, merchantId, s);
        if (amount > owes) revert ClearingExceedsOutstanding(p, merchantId, owes, amount);
        s.paid += uint128(amount);
        Period storage stored = _periods[p];
        stored.escrow = uint128(info.escrow + amount);
        stored.totalPaid = uint128(info.totalPaid + amount);
        _escrowed += amount;
        emit Deposited(p, merchantId, amount);
        return IERC1363Receiver.onTransferReceived.selector;
    }

    /// @inheritdoc IClearing
    function confirmOffChainPayment(uint256 p, uint256 debtor, uint256 amount) external {
        uint256 creditor = _registry.merchantIdOf(msg.sender);
        if (creditor == 0 || _registry.activeAccount(creditor) != msg.sender) revert ClearingUnauthorized(msg.sender);
        _confirm(p, debtor, creditor, amount);
    }

    /// @inheritdoc IClearing
    function confirmOffChainPaymentFor(uint256 p, uint256 debtor, uint256 creditor, uint256 amount) external {
        _requireOperator();
        // Only for a creditor that cannot sign any more: an active one confirms for itself.
        if (_registry.merchant(creditor).status != IAllianceRegistry.MerchantStatus.Suspended) {
            revert ClearingUnauthorized(msg.sender);
        }
        _confirm(p, debtor, creditor, amount);
    }

    function _confirm(uint256 p, uint256 debtor, uint256 creditor, uint256 amount) private {
        Period memory info = _closed(p);
        if (creditor > info.merchants) revert ClearingUnauthorized(msg.sender);
        if (amount == 0) revert ClearingInvalidAmount(amount);
        Settlement storage cs = _settlements[p][creditor];
        int256 cNet = _positions[p][creditor].net;
        uint256 due = cNet > 0 ? uint256(cNet) - cs.received : 0;
        if (amount > due) revert ClearingExceedsOutstanding(p, creditor, due, amount);
        Settlement storage ds = _settlements[p][debtor];
        uint256 owes = _owes(p, debtor, ds);
        if (amount > owes) revert ClearingExceedsOutstanding(p, debtor, owes, amount);
        cs.received += uint128(amount);
        ds.paid += uint128(amount);
        Period storage stored = _periods[p];
        stored.totalReceived = uint128(info.totalReceived + amount);
        stored.totalPaid = uint128(info.totalPaid + amount);
        emit OffChainPaymentConfirmed(p, debtor, creditor, amount);
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @inheritdoc IClearing
    function currentPeriod() external view returns (uint256) {
        return _currentPeriod;
    }

    /// @inheritdoc IClearing
    function positionOf(uint256 p, uint256 merchantId) external view returns (Position memory) {
        return _positions[p][merchantId];
    }

    /// @inheritdoc IClearing
    function settlementOf(uint256 p, uint256 merchantId) external view returns (Settlement memory) {
        return _settlements[p][merchantId];
    }

    /// @inheritdoc IClearing
    function period(uint256 p) external view returns (Period memory) {
        return _periods[p];
    }

    /// @inheritdoc IClearing
    function statementHash(uint256 p, uint256 merchantId) external view returns (bytes32) {
        return _statements[p][merchantId];
    }

    /// @inheritdoc IClearing
    function settlementToken() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IClearing
    function couponBook() external view returns (address) {
        return _couponBook;
    }

    /// @inheritdoc IClearing
    function claimable(uint256 p, uint256 merchantId) external view returns (uint256) {
        Period memory info = _periods[p];
        // slither-disable-next-line incorrect-equality
        if (info.closedAt == 0) return 0;
        return Math.min(_claimable(p, merchantId, info), info.escrow);
    }

    /// @inheritdoc IClearing
    function escrowed() external view returns (uint256) {
        return _escrowed;
    }

    /// @inheritdoc IClearing
    function outstanding(uint256 p, uint256 merchantId) external view returns (int256) {
        int256 net = _positions[p][merchantId].net;
        Settlement memory s = _settlements[p][merchantId];
        return net >= 0 ? net - int256(uint256(s.received)) : net + int256(uint256(s.paid));
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    /// @dev A creditor's pro-rata share of what debtors paid so far, less what it received.
    function _claimable(uint256 p, uint256 merchantId, Period memory info) private view returns (uint256) {
        int256 net = _positions[p][merchantId].net;
        if (net <= 0) return 0;
        uint256 share = Math.mulDiv(uint256(net), info.totalPaid, info.totalOwed);
        uint256 received = _settlements[p][merchantId].received;
        return share > received ? share - received : 0;
    }

    function _owes(uint256 p, uint256 merchantId, Settlement storage s) private view returns (uint256) {
        int256 net = _positions[p][merchantId].net;
        return net < 0 ? uint256(-net) - s.paid : 0;
    }

    function _closed(uint256 p) private view returns (Period memory info) {
        info = _periods[p];
        // closedAt is 0 exactly until the close writes the block time: a sentinel, not a balance.
        // slither-disable-next-line incorrect-equality
        if (info.closedAt == 0) revert ClearingPeriodNotClosed(p);
    }

    function _requireOperator() private view {
        if (!IAccessControl(address(_registry)).hasRole(Roles.OPERATOR_ROLE, msg.sender)) {
            revert ClearingUnauthorized(msg.sender);
        }
    }
}
