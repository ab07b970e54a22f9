// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20Upgradeable} from "@openzeppelin/contracts-upgradeable/token/ERC20/ERC20Upgradeable.sol";
import {EIP712Upgradeable} from "@openzeppelin/contracts-upgradeable/utils/cryptography/EIP712Upgradeable.sol";
import {NoncesUpgradeable} from "@openzeppelin/contracts-upgradeable/utils/NoncesUpgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IPointProgram} from "./interfaces/IPointProgram.sol";
import {IClearing} from "./interfaces/IClearing.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title PointProgram
/// @notice One merchant's points: an ERC-20 with 0 decimals that speaks the alliance standard.
/// Deployed as a minimal clone by the PointProgramFactory, so a program costs one clone, not a
/// full contract.
///
/// @dev Storage design for expiry and pending points, so both stay cheap:
///
/// Time is cut into periods of `periodLength` seconds from `origin` (UTC midnight of the day
/// the program was created); with expiry off every point lives in period 0. A member's points
/// sit in *lots*, one per period in which they were earned, kept as a linked list ordered by
/// period: `_lots[member][p] = {amount, next}` for the older lots, while the newest lot (the
/// *head*) lives inside the member's one-slot `Account` record. Issuing to a member in the
/// same period only rewrites that one slot, so a batch issue writes per line exactly what a
/// plain ERC-20 mint with an order-reference slot writes: the account slot and the order slot.
/// A lot moves out of the account slot once per member per period.
///
/// Spending walks the list from its tail (the oldest lot): lots older than the expiry window
/// are removed there (emitting `PointsExpired`), the rest are spent soonest-expiring first.
/// Only a member's own transaction pays for that walk, and it visits each lot once in its life.
/// `balanceOf` walks the same list read-only, so expired points vanish from balances without a
/// transaction; its length is bounded by the periods a member earned in within the window.
///
/// Pending points (inside a refund window) are in their lot from the start, and the order
/// record says until which day they are pending. A per-member queue names the pending orders;
/// spending leaves the pending part of each lot alone, and the queue is popped lazily once
/// orders are released. The queue holds at most `MAX_PENDING` orders per member.
///
/// Supply is kept per earn period (`_supplyByPeriod`) and pending supply per release day
/// (`_pendingByDay`), so `totalSupply` - live periods minus not-yet-released days - equals the
/// sum of all balances at every moment, expiry included, without touching any account.
///
/// Points are spent at the issuing merchant or at any other active merchant that accepts this
/// program (registry); a redemption elsewhere reports its value to the Clearing in the same
/// transaction (once per batch), and so does a conversion into another program's points.
contract PointProgram is IPointProgram, Initializable, ERC20Upgradeable, EIP712Upgradeable, NoncesUpgradeable {
    bytes32 private constant REDEEM_TYPEHASH = keccak256(
        "Redeem(address member,uint256 amount,uint256 merchantId,bytes32 orderRef,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant CONVERT_TYPEHASH = keccak256(
        "Convert(address member,uint256 amount,uint256 toMerchantId,uint256 minOut,bytes32 orderRef,uint256 nonce,uint256 deadline)"
    );
    uint256 private constant MAX_ORDER_AMOUNT = type(uint48).max;
    uint256 private constant MAX_REDEEM_AMOUNT = type(uint24).max;
    uint256 private constant MAX_PENDING = 32;
    uint256 private constant MAX_EXPIRY_PERIODS = 600;
    uint256 private constant NO_PERIOD = type(uint256).max;

    /// @dev The newest lot and the pending queue's bounds of one member, in one slot.
    struct Account {
        uint64 headAmount;
        uint32 headPeriod;
        uint32 tailPeriod;
        uint32 pendingStart;
        uint32 pendingEnd;
    }

    /// @dev An older lot: what is left of it and the period of the next newer lot.
    struct Lot {
        uint224 amount;
        uint32 next;
    }

    /// @dev One issue, in one slot: to whom, what is left after reversals, when earned, pending till.
    struct Order {
        address member;
        uint48 remaining;
        uint24 earnPeriod;
        uint24 releaseDay;
    }

    /// @dev One redemption (or conversion) against an accepting merchant's order, in one slot:
    /// who, the points not yet refunded, the rate it cleared at (0: at the issuer, no
    /// clearing), when (0 for a conversion, which cannot be refunded), and how many periods
    /// before the redemption the oldest points it spent were earned - a refund puts the points
    /// back in that lot, so refunding never extends their life.
    struct RedemptionRecord {
        address member;
        uint24 amount;
        uint24 rate;
        uint32 redeemedAt;
        uint16 age;
    }

    IAllianceRegistry private _registry;
    uint256 private _merchantId;
    Config private _config;
    uint256 private _origin;

    mapping(address member => Account) private _accounts;
    mapping(address member => mapping(uint256 period => Lot)) private _lots;
    mapping(address member => mapping(uint256 index => bytes32 orderRef)) private _pendingQueue;
    mapping(bytes32 orderRef => Order) private _orders;
    mapping(bytes32 key => RedemptionRecord) private _redemptions;
    mapping(uint256 period => uint256) private _supplyByPeriod;
    mapping(uint256 day => uint256) private _pendingByDay;

    /// @custom:oz-upgrades-unsafe-allow constructor
    constructor() {
        _disableInitializers();
    }

    /// @notice Sets up a clone. Called once, by the factory, in the transaction that creates it.
    /// Requirements: with expiry on, `periodLength` >= 1 hour; `maxPendingDays` <= 366.
    function initialize(
        IAllianceRegistry registry_,
        uint256 merchantId_,
        string calldata name_,
        string calldata symbol_,
        Config calldata config_
    ) external initializer {
        if (config_.expiryPeriods != 0 && config_.periodLength < 1 hours) revert PointsInvalidConfig();
        if (config_.maxPendingDays > 366) revert PointsInvalidConfig();
        // totalSupply and the liability cap sum one slot per live period: keep that bounded.
        if (config_.expiryPeriods > MAX_EXPIRY_PERIODS) revert PointsInvalidConfig();
        __ERC20_init(name_, symbol_);
        __EIP712_init("Alliance Points", "1");
        __Nonces_init();
        _registry = registry_;
        _merchantId = merchantId_;
        _config = config_;
        // UTC midnight of today: days and periods start at midnight (not randomness).
        // slither-disable-next-line weak-prng
        _origin = block.timestamp - (block.timestamp % 1 days);
    }

    // ------------------------------------------------------------------
    // Issue
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function issue(address member, uint256 amount, bytes32 orderRef) external {
        _requireSigner(_merchantId);
        uint256 cur = currentPeriod();
        _issueOne(member, amount, orderRef, 0, cur);
        _addSupply(cur, amount);
    }

    /// @inheritdoc IPointProgram
    function issuePending(address member, uint256 amount, bytes32 orderRef, uint256 releaseAt) external {
        _requireSigner(_merchantId);
        uint256 cur = currentPeriod();
        _issueOne(member, amount, orderRef, releaseAt, cur);
        _addSupply(cur, amount);
    }

    /// @inheritdoc IPointProgram
    function issueBatch(IssueItem[] calldata items) external {
        uint256 n = items.length;
        if (n == 0) revert PointsEmptyBatch();
        _requireSigner(_merchantId);
        uint256 cur = currentPeriod();
        // Supply is summed in memory and written once per batch: one SSTORE instead of n.
        uint256 total = 0;
        for (uint256 i; i < n; ++i) {
            IssueItem calldata it = items[i];
            _issueOne(it.member, it.amount, it.orderRef, it.releaseAt, cur);
            total += it.amount;
        }
        _addSupply(cur, total);
    }

    /// @dev Adds newly issued points to the supply of period `cur`, within the liability cap:
    /// the value of every outstanding point (pending included, expired excluded) may not pass
    /// the cap the operator set in the registry. Read once per transaction, not per line.
    function _addSupply(uint256 cur, uint256 amount) private {
        _supplyByPeriod[cur] += amount;
        IAllianceRegistry.Terms memory t = _registry.termsOf(_merchantId);
        if (t.liabilityCap != 0) {
            uint256 outstanding = 0;
            for (uint256 p = _minLivePeriod(cur); p <= cur; ++p) {
                outstanding += _supplyByPeriod[p];
            }
            uint256 value = outstanding * t.rate;
            if (value > t.liabilityCap) revert PointsLiabilityCapExceeded(t.liabilityCap, value);
        }
    }

    function _issueOne(address member, uint256 amount, bytes32 orderRef, uint256 releaseAt, uint256 cur) private {
        if (member == address(0)) revert PointsInvalidMember(member);
        if (amount == 0 || amount > MAX_ORDER_AMOUNT) revert PointsInvalidAmount(amount);
        if (_orders[orderRef].member != address(0)) revert PointsOrderRefUsed(orderRef);
        Account memory a = _accounts[member];
        uint256 releaseDay = 0;
        if (releaseAt > block.timestamp) {
            releaseDay = _releaseDay(releaseAt, cur);
            if (a.pendingEnd - a.pendingStart >= MAX_PENDING) revert PointsTooManyPending(member);
            _pendingQueue[member][a.pendingEnd] = orderRef;
            ++a.pendingEnd;
            _pendingByDay[releaseDay] += amount;
        }
        _orders[orderRef] = Order({
            member: member,
            remaining: uint48(amount),
            earnPeriod: SafeCast.toUint24(cur),
            releaseDay: uint24(releaseDay)
        });
        _creditHead(member, a, cur, amount);
        _accounts[member] = a;
        emit Transfer(address(0), member, amount);
        emit PointsIssued(member, orderRef, amount, cur, releaseDay);
    }

    /// @dev Adds to the lot of the current period `cur` (>= every period the member holds).
    function _creditHead(address member, Account memory a, uint256 cur, uint256 amount) private {
        uint256 head = a.headPeriod;
        if (cur != head) {
            if (a.headAmount != 0 || a.tailPeriod != head) {
                // The head becomes an older lot linked to the new head (an empty one is
                // kept in the list, since the lot before it points to it; spending drops it).
                _lots[member][head] = Lot({amount: a.headAmount, next: uint32(cur)});
            } else {
                a.tailPeriod = uint32(cur);
            }
            a.headPeriod = uint32(cur);
            a.headAmount = SafeCast.toUint64(amount);
        } else {
            a.headAmount = SafeCast.toUint64(a.headAmount + amount);
        }
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Adds to the lot of period `p` (<= the head's period), creating it in its place in
    /// the list if the member holds none of that period any more. Walks the list (refunds only).
    function _creditLot(address member, Account memory a, uint256 p, uint256 amount) private {
        if (p == a.headPeriod) {
            a.headAmount = SafeCast.toUint64(a.headAmount + amount);
            return;
        }
        uint256 q = a.tailPeriod;
        if (p < q) {
            _lots[member][p] = Lot({amount: uint224(amount), next: uint32(q)});
            a.tailPeriod = uint32(p);
            return;
        }
        while (true) {
            Lot storage l = _lots[member][q];
            if (q == p) {
                l.amount += uint224(amount);
                return;
            }
            uint256 next = l.next;
            if (next > p) {
                _lots[member][p] = Lot({amount: uint224(amount), next: uint32(next)});
                l.next = uint32(p);
                return;
            }
            q = next;
        }
    }

    // slither-disable-end incorrect-equality

    function _releaseDay(uint256 releaseAt, uint256 cur) private view returns (uint256 day) {
        // Round up to a whole day: points are pending "until a date". The day is turned back
        // into its start time below on purpose (divide, then multiply).
        // slither-disable-next-line divide-before-multiply
        day = (releaseAt - _origin + 1 days - 1) / 1 days;
        Config memory c = _config;
        // The window is measured in time from now; rounding to the day comes after.
        if (releaseAt > block.timestamp + uint256(c.maxPendingDays) * 1 days) {
            revert PointsInvalidRelease(releaseAt);
        }
        if (c.expiryPeriods != 0 && _periodAt(_origin + day * 1 days) > cur + c.expiryPeriods) {
            revert PointsInvalidRelease(releaseAt);
        }
    }

    // ------------------------------------------------------------------
    // Reverse and redeem
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function reverse(bytes32 orderRef, uint256 amount) external {
        _requireSigner(_merchantId);
        Order memory o = _orders[orderRef];
        if (o.member == address(0)) revert PointsUnknownOrder(orderRef);
        if (amount == 0) revert PointsInvalidAmount(amount);
        if (amount > o.remaining) revert PointsReverseExceedsIssued(orderRef, o.remaining, amount);
        o.remaining -= uint48(amount);
        _orders[orderRef] = o;
        uint256 today = currentDay();
        if (o.releaseDay > today) {
            // Still pending: the points are in the order's own lot, untouchable by spending.
            Account memory a = _accounts[o.member];
            _reduceLot(o.member, a, o.earnPeriod, amount);
            _accounts[o.member] = a;
            _supplyByPeriod[o.earnPeriod] -= amount;
            _pendingByDay[o.releaseDay] -= amount;
        } else {
            _debit(o.member, amount, o.earnPeriod);
        }
        emit Transfer(o.member, address(0), amount);
        emit PointsReversed(o.member, orderRef, amount);
    }

    /// @inheritdoc IPointProgram
    function redeem(Redemption calldata r, bytes calldata signature) external {
        uint256 rate = _clearRedemptions(r.merchantId, r.amount);
        _redeemOne(r, signature, rate, _domainSeparatorV4());
    }

    /// @inheritdoc IPointProgram
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures) external {
        uint256 n = rs.length;
        if (n == 0 || n != signatures.length) revert PointsEmptyBatch();
        uint256 acceptor = rs[0].merchantId;
        uint256 total = 0;
        for (uint256 i; i < n; ++i) {
            if (rs[i].merchantId != acceptor) revert PointsNotAccepted(rs[i].merchantId);
            total += rs[i].amount;
        }
        uint256 rate = _clearRedemptions(acceptor, total);
        // The domain separator hashes the stored name and version: once per batch, not per line.
        bytes32 domain = _domainSeparatorV4();
        for (uint256 i; i < n; ++i) {
            _redeemOne(rs[i], signatures[i], rate, domain);
        }
    }

    /// @dev Checks the caller relays for `acceptor`; for another merchant, reports the batch's
    /// points to the Clearing once (it checks acceptance, statuses and caps) and gives the rate.
    /// The Clearing is the alliance's own contract named by the registry and calls nothing back.
    function _clearRedemptions(uint256 acceptor, uint256 total) private returns (uint256 rate) {
        _requireSigner(acceptor);
        if (acceptor == _merchantId) return 0;
        if (total == 0 || total > MAX_ORDER_AMOUNT) revert PointsInvalidAmount(total);
        rate = _clearing().recordRedemption(_merchantId, acceptor, total);
    }

    // The clearing call above comes first so every line can record its rate; it is a trusted
    // alliance contract that calls nothing back, and the whole batch reverts on any failure.
    // slither-disable-next-line reentrancy-no-eth,reentrancy-benign,reentrancy-events
    function _redeemOne(Redemption calldata r, bytes calldata signature, uint256 rate, bytes32 domain) private {
        if (block.timestamp > r.deadline) revert PointsSignatureExpired(r.deadline);
        if (r.amount == 0 || r.amount > MAX_REDEEM_AMOUNT) revert PointsInvalidAmount(r.amount);
        bytes32 key = _redemptionKey(r.merchantId, r.orderRef);
        if (_redemptions[key].member != address(0)) revert PointsOrderRefUsed(r.orderRef);
        _useCheckedNonce(r.member, r.nonce);
        _checkSignature(r.member, MessageHashUtils.toTypedDataHash(domain, _redemptionStructHash(r)), signature);
        uint256 cur = currentPeriod();
        uint256 oldest = _debit(r.member, r.amount, NO_PERIOD);
        _redemptions[key] = RedemptionRecord({
            member: r.member,
            amount: uint24(r.amount),
            rate: uint24(rate),
            redeemedAt: uint32(block.timestamp),
            // The debit takes live points only, at most expiryPeriods (<= 600) old.
            age: uint16(cur - oldest)
        });
        emit Transfer(r.member, address(0), r.amount);
        emit PointsRedeemed(r.member, r.merchantId, r.orderRef, r.amount, r.nonce);
    }

    /// @inheritdoc IPointProgram
    function refundRedemption(uint256 acceptor, bytes32 orderRef, uint256 amount) external {
        // The acceptor refunds its own orders; the operator may do it for one that was
        // suspended meanwhile, so its members are not left without their points.
        if (!IAccessControl(address(_registry)).hasRole(Roles.OPERATOR_ROLE, msg.sender)) _requireSigner(acceptor);
        bytes32 key = _redemptionKey(acceptor, orderRef);
        RedemptionRecord memory rec = _redemptions[key];
        if (rec.member == address(0)) revert PointsUnknownOrder(orderRef);
        if (rec.redeemedAt == 0) revert PointsNotRefundable(orderRef);
        if (block.timestamp > uint256(rec.redeemedAt) + _registry.refundWindow()) {
            revert PointsRefundWindowClosed(orderRef, rec.redeemedAt);
        }
        if (amount == 0) revert PointsInvalidAmount(amount);
        if (amount > rec.amount) revert PointsReverseExceedsIssued(orderRef, rec.amount, amount);
        rec.amount -= uint24(amount);
        _redemptions[key] = rec;
        // The points go back into the lot they were spent from (its oldest, if several): they
        // expire when they would have. If that lot has expired meanwhile, so have they.
        uint256 earned = _periodAt(rec.redeemedAt) - rec.age;
        emit RedemptionRefunded(rec.member, acceptor, orderRef, amount);
        if (earned >= _minLivePeriod(currentPeriod())) {
            Account memory a = _accounts[rec.member];
            _creditLot(rec.member, a, earned, amount);
            _accounts[rec.member] = a;
            _supplyByPeriod[earned] += amount;
            emit Transfer(address(0), rec.member, amount);
        } else {
            emit PointsExpired(rec.member, earned, amount);
        }
        if (rec.rate != 0) _clearing().recordRefund(_merchantId, acceptor, amount, rec.rate);
    }

    /// @inheritdoc IPointProgram
    function convert(Conversion calldata c, bytes calldata signature) external {
        _requireSigner(c.toMerchantId);
        if (c.toMerchantId == _merchantId) revert PointsNotAccepted(c.toMerchantId);
        if (block.timestamp > c.deadline) revert PointsSignatureExpired(c.deadline);
        if (c.amount == 0 || c.amount > MAX_REDEEM_AMOUNT) revert PointsInvalidAmount(c.amount);
        bytes32 key = _redemptionKey(c.toMerchantId, c.orderRef);
        if (_redemptions[key].member != address(0)) revert PointsOrderRefUsed(c.orderRef);
        _useCheckedNonce(c.member, c.nonce);
        _checkSignature(c.member, _conversionDigest(c), signature);
        IClearing clearing_ = _clearing();
        // The value is the Clearing's to record; the program needs what it burns and credits.
        // slither-disable-next-line unused-return
        (uint256 out, uint256 spent,) = clearing_.quoteConversion(_merchantId, c.toMerchantId, c.amount);
        if (out == 0 || out < c.minOut) revert IClearing.ClearingConversionTooSmall(out, c.minOut);
        _redemptions[key] = RedemptionRecord({member: c.member, amount: uint24(spent), rate: 0, redeemedAt: 0, age: 0});
        _debit(c.member, spent, NO_PERIOD);
        emit Transfer(c.member, address(0), spent);
        emit PointsConverted(c.member, c.toMerchantId, c.orderRef, spent, out, c.nonce);
        // Same rates in the same transaction: it gives back the (out, spent) quoted above.
        // slither-disable-next-line unused-return
        clearing_.recordConversion(_merchantId, c.toMerchantId, c.member, c.amount, key);
    }

    /// @inheritdoc IPointProgram
    function creditConverted(address member, uint256 amount, uint256 fromMerchantId, bytes32 conversionId)
        external
    {
        if (msg.sender != address(_clearing())) revert PointsUnauthorized(msg.sender, _merchantId);
        if (amount == 0 || amount > MAX_ORDER_AMOUNT) revert PointsInvalidAmount(amount);
        uint256 cur = currentPeriod();
        Account memory a = _accounts[member];
        _creditHead(member, a, cur, amount);
        _accounts[member] = a;
        _addSupply(cur, amount);
        emit Transfer(address(0), member, amount);
        emit PointsConvertedIn(member, fromMerchantId, conversionId, amount);
    }

    /// @inheritdoc IPointProgram
    function conversionDigest(Conversion calldata c) external view returns (bytes32) {
        return _conversionDigest(c);
    }

    function _conversionDigest(Conversion calldata c) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CONVERT_TYPEHASH, c.member, c.amount, c.toMerchantId, c.minOut, c.orderRef, c.nonce, c.deadline
                )
            )
        );
    }

    /// @dev An EOA's signature is recovered first (no code lookup on the hot path); otherwise a
    /// contract wallet is asked through ERC-1271.
    function _checkSignature(address member, bytes32 digest, bytes calldata signature) private view {
        // The third value only details a malformed signature; any error falls through to ERC-1271.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == member) return;
        if (!SignatureChecker.isValidERC1271SignatureNowCalldata(member, digest, signature)) {
            revert PointsInvalidSignature(member);
        }
    }

    function _clearing() private view returns (IClearing) {
        return IClearing(_registry.clearing());
    }

    /// @inheritdoc IPointProgram
    function redemptionOf(uint256 acceptor, bytes32 orderRef)
        external
        view
        returns (address member, uint256 amount, uint256 rate, uint256 redeemedAt)
    {
        RedemptionRecord memory rec = _redemptions[_redemptionKey(acceptor, orderRef)];
        return (rec.member, rec.amount, rec.rate, rec.redeemedAt);
    }

    /// @inheritdoc IPointProgram
    function redemptionDigest(Redemption calldata r) external view returns (bytes32) {
        return _redemptionDigest(r);
    }

    function _redemptionDigest(Redemption calldata r) private view returns (bytes32) {
        return _hashTypedDataV4(_redemptionStructHash(r));
    }

    function _redemptionStructHash(Redemption calldata r) private pure returns (bytes32) {
        return keccak256(abi.encode(REDEEM_TYPEHASH, r.member, r.amount, r.merchantId, r.orderRef, r.nonce, r.deadline));
    }

    function _redemptionKey(uint256 merchantId_, bytes32 orderRef) private pure returns (bytes32) {
        return keccak256(abi.encode(merchantId_, orderRef));
    }

    // ------------------------------------------------------------------
    // Lots
    // ------------------------------------------------------------------

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Burns `amount` spendable points of `member`: first from lot `prefer` (if any), then
    /// soonest-expiring first. Expired lots met on the way are removed. Reverts if short.
    /// Gives the earn period of the oldest lot it took points from.
    function _debit(address member, uint256 amount, uint256 prefer) private returns (uint256 oldest) {
        uint256 minLive = _minLivePeriod(currentPeriod());
        Account memory a = _accounts[member];
        // The common case - one live lot, nothing pending - touches only the account slot and
        // the period's supply: no list walk, no pending scan.
        if (
            prefer == NO_PERIOD && a.tailPeriod == a.headPeriod && a.pendingStart == a.pendingEnd
                && a.headPeriod >= minLive && a.headAmount >= amount
        ) {
            a.headAmount -= uint64(amount);
            _accounts[member] = a;
            _supplyByPeriod[a.headPeriod] -= amount;
            return a.headPeriod;
        }
        oldest = NO_PERIOD;
        (uint256[] memory pPeriods, uint256[] memory pAmounts) = _settlePending(member, a, currentDay());
        uint256 need = amount;
        if (prefer != NO_PERIOD && prefer >= minLive) {
            uint256 held = _lotAmount(member, a, prefer);
            uint256 avail = held - _pendingIn(prefer, pPeriods, pAmounts);
            uint256 take = avail < need ? avail : need;
            if (take != 0) {
                _reduceLot(member, a, prefer, take);
                _supplyByPeriod[prefer] -= take;
                need -= take;
                oldest = prefer;
            }
        }
        uint256 p = a.tailPeriod;
        while (true) {
            bool isHead = p == a.headPeriod;
            Lot memory l = isHead ? Lot({amount: a.headAmount, next: 0}) : _lots[member][p];
            uint256 amt = l.amount;
            if (p < minLive) {
                if (amt != 0) {
                    emit PointsExpired(member, p, amt);
                    emit Transfer(member, address(0), amt);
                }
                amt = 0;
            } else if (need != 0) {
                uint256 avail = amt - _pendingIn(p, pPeriods, pAmounts);
                uint256 take = avail < need ? avail : need;
                if (take != 0) {
                    amt -= take;
                    need -= take;
                    _supplyByPeriod[p] -= take;
                    if (p < oldest) oldest = p;
                }
            }
            if (isHead) {
                // With the tail at the head and nothing in it, the list is empty again.
                a.headAmount = uint64(amt);
                break;
            }
            if (amt == 0 && p == a.tailPeriod) {
                delete _lots[member][p];
                a.tailPeriod = l.next;
            } else if (amt != l.amount) {
                _lots[member][p].amount = uint224(amt);
            }
            if (need == 0 && p >= minLive) break;
            p = l.next;
        }
        if (need != 0) revert PointsInsufficientBalance(member, amount - need, amount);
        _accounts[member] = a;
    }

    // slither-disable-end incorrect-equality

    function _lotAmount(address member, Account memory a, uint256 p) private view returns (uint256) {
        return p == a.headPeriod ? a.headAmount : _lots[member][p].amount;
    }

    function _reduceLot(address member, Account memory a, uint256 p, uint256 amount) private {
        if (p == a.headPeriod) a.headAmount -= uint64(amount);
        else _lots[member][p].amount -= uint224(amount);
    }

    /// @dev Pops released (or fully reversed) orders off the front of the member's pending queue
    /// and returns, per earn period, the points still pending.
    function _settlePending(address member, Account memory a, uint256 today)
        private
        returns (uint256[] memory periods, uint256[] memory amounts)
    {
        uint256 start = a.pendingStart;
        uint256 end = a.pendingEnd;
        periods = new uint256[](end - start);
        amounts = new uint256[](end - start);
        uint256 k;
        bool popping = true;
        for (uint256 i = start; i < end; ++i) {
            Order memory o = _orders[_pendingQueue[member][i]];
            bool live = o.releaseDay > today && o.remaining != 0;
            if (!live) {
                if (popping) {
                    delete _pendingQueue[member][i];
                    a.pendingStart = uint32(i + 1);
                }
                continue;
            }
            popping = false;
            periods[k] = o.earnPeriod;
            amounts[k] = o.remaining;
            ++k;
        }
        assembly ("memory-safe") {
            // Trim both arrays to the k live entries (shrinking a length in place is safe).
            mstore(periods, k)
            mstore(amounts, k)
        }
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    function _pendingIn(uint256 p, uint256[] memory periods, uint256[] memory amounts)
        private
        pure
        returns (uint256 sum)
    {
        for (uint256 i; i < periods.length; ++i) {
            if (periods[i] == p) sum += amounts[i];
        }
    }

    // slither-disable-end incorrect-equality

    /// @dev Points still pending for `member`: orders in its queue not yet released.
    function _pendingLive(address member, Account memory a, uint256 today) private view returns (uint256 sum) {
        for (uint256 i = a.pendingStart; i < a.pendingEnd; ++i) {
            Order memory o = _orders[_pendingQueue[member][i]];
            if (o.releaseDay > today) sum += o.remaining;
        }
    }

    function _requireSigner(uint256 merchantId_) private view {
        if (_registry.activeAccount(merchantId_) != msg.sender) revert PointsUnauthorized(msg.sender, merchantId_);
    }

    // ------------------------------------------------------------------
    // Time
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function currentPeriod() public view returns (uint256) {
        return _periodAt(block.timestamp);
    }

    /// @inheritdoc IPointProgram
    function currentDay() public view returns (uint256) {
        return (block.timestamp - _origin) / 1 days;
    }

    function _periodAt(uint256 t) private view returns (uint256) {
        Config memory c = _config;
        return c.expiryPeriods == 0 ? 0 : (t - _origin) / c.periodLength;
    }

    function _minLivePeriod(uint256 cur) private view returns (uint256) {
        uint256 e = _config.expiryPeriods;
        return (e == 0 || cur < e) ? 0 : cur - e;
    }

    // ------------------------------------------------------------------
    // ERC-20 views and the closed transfer path
    // ------------------------------------------------------------------

    /// @notice Points are whole numbers.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @notice Points `member` can spend now (pending and expired points excluded).
    function balanceOf(address member) public view override returns (uint256 bal) {
        Account memory a = _accounts[member];
        uint256 minLive = _minLivePeriod(currentPeriod());
        uint256 p = a.tailPeriod;
        while (p != a.headPeriod) {
            Lot memory l = _lots[member][p];
            if (p >= minLive) bal += l.amount;
            p = l.next;
        }
        if (p >= minLive) bal += a.headAmount;
        bal -= _pendingLive(member, a, currentDay());
    }

    /// @notice Spendable points across all members: equals the sum of every `balanceOf`.
    function totalSupply() public view override returns (uint256 supply) {
        uint256 cur = currentPeriod();
        for (uint256 p = _minLivePeriod(cur); p <= cur; ++p) {
            supply += _supplyByPeriod[p];
        }
        supply -= pendingSupply();
    }

    /// @inheritdoc IPointProgram
    function pendingSupply() public view returns (uint256 pending) {
        uint256 today = currentDay();
        // A release up to maxPendingDays from now rounds up to at most one day later.
        uint256 last = today + _config.maxPendingDays + 1;
        for (uint256 d = today + 1; d <= last; ++d) {
            pending += _pendingByDay[d];
        }
    }

    /// @inheritdoc IPointProgram
    function pendingOf(address member) external view returns (uint256) {
        return _pendingLive(member, _accounts[member], currentDay());
    }

    /// @inheritdoc IPointProgram
    function lotsOf(address member) external view returns (uint256[] memory periods, uint256[] memory amounts) {
        Account memory a = _accounts[member];
        uint256 minLive = _minLivePeriod(currentPeriod());
        uint256 n = 0;
        uint256 p = a.tailPeriod;
        while (p != a.headPeriod) {
            if (p >= minLive) ++n;
            p = _lots[member][p].next;
        }
        if (a.headAmount != 0 && p >= minLive) ++n;
        periods = new uint256[](n);
        amounts = new uint256[](n);
        uint256 k = 0;
        p = a.tailPeriod;
        while (p != a.headPeriod) {
            Lot memory l = _lots[member][p];
            if (p >= minLive) {
                periods[k] = p;
                amounts[k] = l.amount;
                ++k;
            }
            p = l.next;
        }
        if (a.headAmount != 0 && p >= minLive) {
            periods[k] = p;
            amounts[k] = a.headAmount;
        }
    }

    /// @inheritdoc IPointProgram
    function orderOf(bytes32 orderRef)
        external
        view
        returns (address member, uint256 remaining, uint256 earnPeriod, uint256 releaseDay)
    {
        Order memory o = _orders[orderRef];
        return (o.member, o.remaining, o.earnPeriod, o.releaseDay);
    }

    /// @inheritdoc IPointProgram
    function merchantId() external view returns (uint256) {
        return _merchantId;
    }

    /// @inheritdoc IPointProgram
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IPointProgram
    function config() external view returns (Config memory) {
        return _config;
    }

    /// @inheritdoc IPointProgram
    function origin() external view returns (uint256) {
        return _origin;
    }

    /// @notice Points cannot be approved for transfer: they are not transferable.
    function approve(address, uint256) public pure override returns (bool) {
        revert PointsNonTransferable();
    }

    /// @dev Every ERC-20 transfer path ends here; points move only through the alliance calls.
    function _update(address, address, uint256) internal pure override {
        revert PointsNonTransferable();
    }
}
