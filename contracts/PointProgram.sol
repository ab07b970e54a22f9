// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20Upgradeable} from "@openzeppelin/contracts-upgradeable/token/ERC20/ERC20Upgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IPointProgram} from "./interfaces/IPointProgram.sol";
import {IClearing} from "./interfaces/IClearing.sol";
import {MerchantGated} from "./abstract/MerchantGated.sol";
import {SignedActions} from "./abstract/SignedActions.sol";

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
/// *head*) lives inside the member's one-slot `Account` record, next to the member's ERC-20
/// balance. Issuing to a member in the same period only rewrites that one slot, so a batch
/// issue writes per line exactly what a plain ERC-20 mint with an order-reference slot writes:
/// the account slot and the order slot. A lot moves out of the account slot once per member
/// per period.
///
/// Balances follow the logs: `balanceOf` is the sum of the member's lots - spendable, pending
/// and expired-but-not-swept - kept in the account slot, and moves exactly when a `Transfer`
/// is emitted; `totalSupply` is its running total. Expired lots leave the list (with
/// `PointsExpired` and `Transfer(member, 0, amount)`) when anyone calls `sweepExpired` (the
/// service does at each period boundary), when the member spends (the walk meets them first),
/// and two at a time when the member earns in a new period - so a member's list holds at
/// most its live lots (<= expiryPeriods + 1 <= 601, one per period) plus expired lots that
/// this pruning has not reached yet, and walks stay bounded (see the tests' worst case).
///
/// Spending walks the list from its tail (the oldest lot), soonest-expiring first.
/// Pending points (inside a refund window) are in their lot from the start, and the order
/// record says until which day they are pending. A per-member queue names the pending orders;
/// spending leaves the pending part of each lot alone. The queue holds at most `MAX_PENDING`
/// live pending orders per member: released and fully reversed ones are popped when the
/// member spends, and compacted away when an issue finds the queue full.
///
/// Points are spent at the issuing merchant or at any other active merchant that accepts this
/// program (registry); a redemption elsewhere reports its value to the Clearing in the same
/// transaction (once per batch), and so does a conversion into another program's points.
contract PointProgram is IPointProgram, Initializable, ERC20Upgradeable, MerchantGated, SignedActions {
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
    /// @dev Expired lots an issue removes when it opens a member's lot of a new period: enough
    /// that expired lots cannot pile up behind a member who keeps earning (at most one lot
    /// expires per period), few enough that a batch line stays cheap.
    uint256 private constant PRUNE_ON_NEW_LOT = 2;
    /// @dev Lots a redemption's refund record names (newest first; older ones count as the oldest).
    uint256 private constant REFUND_LOTS = 7;

    /// @dev The newest lot, the pending queue's bounds and the ERC-20 balance of one member,
    /// in one slot (64 + 32 + 32 + 32 + 32 + 64 bits).
    struct Account {
        uint64 headAmount;
        uint32 headPeriod;
        uint32 tailPeriod;
        uint32 pendingStart;
        uint32 pendingEnd;
        uint64 balance;
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
    /// before the redemption the oldest points it spent were earned. A redemption that spent
    /// from several lots also has a `_refundLots` slot naming them (see `_packTakes`).
    struct RedemptionRecord {
        address member;
        uint24 amount;
        uint24 rate;
        uint32 redeemedAt;
        uint16 age;
    }

    /// @dev What a debit took, per lot, oldest first: at most REFUND_LOTS entries, the first
    /// one absorbing what older lots beyond that gave.
    struct Takes {
        uint256[REFUND_LOTS] periods;
        uint256[REFUND_LOTS] amounts;
        uint256 n;
        uint256 expired;
    }

    Config private _config;
    uint256 private _origin;
    uint256 private _supply;

    mapping(address member => Account) private _accounts;
    mapping(address member => mapping(uint256 period => Lot)) private _lots;
    mapping(address member => mapping(uint256 index => bytes32 orderRef)) private _pendingQueue;
    mapping(bytes32 orderRef => Order) private _orders;
    mapping(bytes32 key => RedemptionRecord) private _redemptions;
    mapping(bytes32 key => uint256 packed) private _refundLots;
    mapping(uint256 day => uint256) private _pendingByDay;

    /// @custom:oz-upgrades-unsafe-allow constructor
    constructor() {
        _disableInitializers();
    }

    /// @notice Sets up a clone. Called once, by the factory, in the transaction that creates it.
    /// Requirements: with expiry on, `periodLength` >= 1 hour; `maxPendingDays` <= 366;
    /// `expiryPeriods` <= 600.
    function initialize(
        IAllianceRegistry registry_,
        uint256 merchantId_,
        string calldata name_,
        string calldata symbol_,
        Config calldata config_
    ) external initializer {
        if (config_.expiryPeriods != 0 && config_.periodLength < 1 hours) revert PointsInvalidConfig();
        if (config_.maxPendingDays > 366) revert PointsInvalidConfig();
        // A member holds at most one live lot per period: keep that (and so every walk) bounded.
        if (config_.expiryPeriods > MAX_EXPIRY_PERIODS) revert PointsInvalidConfig();
        __ERC20_init(name_, symbol_);
        __MerchantGated_init(registry_, merchantId_);
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
        uint256 expired = _issueOne(member, amount, orderRef, 0, cur, _minLivePeriod(cur));
        _addSupply(amount, expired);
    }

    /// @inheritdoc IPointProgram
    function issuePending(address member, uint256 amount, bytes32 orderRef, uint256 releaseAt) external {
        _requireSigner(_merchantId);
        uint256 cur = currentPeriod();
        uint256 expired = _issueOne(member, amount, orderRef, releaseAt, cur, _minLivePeriod(cur));
        _addSupply(amount, expired);
    }

    /// @inheritdoc IPointProgram
    function issueBatch(IssueItem[] calldata items) external {
        uint256 n = items.length;
        if (n == 0) revert PointsEmptyBatch();
        _requireSigner(_merchantId);
        uint256 cur = currentPeriod();
        uint256 minLive = _minLivePeriod(cur);
        // Supply is summed in memory and written once per batch: one SSTORE instead of n.
        uint256 total = 0;
        uint256 expired = 0;
        for (uint256 i; i < n; ++i) {
            IssueItem calldata it = items[i];
            expired += _issueOne(it.member, it.amount, it.orderRef, it.releaseAt, cur, minLive);
            total += it.amount;
        }
        _addSupply(total, expired);
    }

    /// @dev Adds newly credited points to the supply (less `expired` points removed on the
    /// way), within the liability cap: the value of every point in a balance may not pass the
    /// cap the operator set in the registry. Expired points not yet swept still count - a
    /// running total costs one slot, where excluding them meant summing a slot per live
    /// period; `sweepExpired` (anyone may call it) frees that room. Read once per transaction.
    function _addSupply(uint256 amount, uint256 expired) private {
        uint256 supply = _supply + amount - expired;
        _supply = supply;
        IAllianceRegistry.Terms memory t = _registry.termsOf(_merchantId);
        if (t.liabilityCap != 0) {
            uint256 value = supply * t.rate;
            if (value > t.liabilityCap) revert PointsLiabilityCapExceeded(t.liabilityCap, value);
        }
    }

    /// @dev Issues one line; gives the expired points removed from the member's list on the way.
    function _issueOne(
        address member,
        uint256 amount,
        bytes32 orderRef,
        uint256 releaseAt,
        uint256 cur,
        uint256 minLive
    ) private returns (uint256 expired) {
        if (member == address(0)) revert PointsInvalidMember(member);
        if (amount == 0 || amount > MAX_ORDER_AMOUNT) revert PointsInvalidAmount(amount);
        if (_orders[orderRef].member != address(0)) revert PointsOrderRefUsed(orderRef);
        Account memory a = _account(member);
        uint256 releaseDay = 0;
        if (releaseAt > block.timestamp) {
            releaseDay = _releaseDay(releaseAt, cur);
            if (a.pendingEnd - a.pendingStart >= MAX_PENDING) {
                _compactPending(member, a, currentDay());
                if (a.pendingEnd - a.pendingStart >= MAX_PENDING) revert PointsTooManyPending(member);
            }
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
        expired = _creditHead(member, a, cur, amount, minLive);
        _saveAccount(member, a);
        emit Transfer(address(0), member, amount);
        emit PointsIssued(member, orderRef, amount, cur, releaseDay);
    }

    /// @dev Adds to the lot of period `p` (>= every period the member holds), which becomes
    /// the head. Opening a new lot first removes up to PRUNE_ON_NEW_LOT expired lots from the
    /// tail; gives the expired points removed.
    function _creditHead(address member, Account memory a, uint256 p, uint256 amount, uint256 minLive)
        private
        returns (uint256 expired)
    {
        uint256 head = a.headPeriod;
        if (p != head) {
            if (a.tailPeriod < minLive) (expired,) = _pruneExpired(member, a, minLive, PRUNE_ON_NEW_LOT);
            head = a.headPeriod;
            if (a.headAmount != 0 || a.tailPeriod != head) {
                // The head becomes an older lot linked to the new head (an empty one is
                // kept in the list, since the lot before it points to it; spending drops it).
                _lots[member][head] = Lot({amount: a.headAmount, next: uint32(p)});
            } else {
                a.tailPeriod = uint32(p);
            }
            a.headPeriod = uint32(p);
            a.headAmount = SafeCast.toUint64(amount);
        } else {
            a.headAmount = SafeCast.toUint64(a.headAmount + amount);
        }
        a.balance = SafeCast.toUint64(a.balance + amount);
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Adds to the lot of period `p` (< the head's period, or equal), creating it in its
    /// place in the list if the member holds none of that period any more. Walks the list
    /// (refunds and back-dated conversions only).
    function _creditLot(address member, Account memory a, uint256 p, uint256 amount) private {
        a.balance = SafeCast.toUint64(a.balance + amount);
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

    /// @dev Removes up to `maxLots` lots older than `minLive` from the tail of the member's
    /// list, emitting `PointsExpired` and `Transfer(member, 0, amount)` for each that held
    /// points. Gives the points removed and how many lots were. Balance updated in `a`.
    function _pruneExpired(address member, Account memory a, uint256 minLive, uint256 maxLots)
        private
        returns (uint256 removed, uint256 lots)
    {
        while (lots < maxLots) {
            uint256 p = a.tailPeriod;
            if (p >= minLive) break;
            uint256 amt;
            if (p == a.headPeriod) {
                // The last lot: the list is empty afterwards (tail at head, nothing in it).
                amt = a.headAmount;
                if (amt == 0) break;
                a.headAmount = 0;
            } else {
                Lot memory l = _lots[member][p];
                amt = l.amount;
                delete _lots[member][p];
                a.tailPeriod = l.next;
            }
            ++lots;
            if (amt != 0) {
                removed += amt;
                emit PointsExpired(member, p, amt);
                emit Transfer(member, address(0), amt);
            }
        }
        a.balance -= uint64(removed);
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

    /// @dev Rewrites the member's pending queue without its released and fully reversed
    /// orders (at most MAX_PENDING entries read; only when an issue finds the queue full).
    function _compactPending(address member, Account memory a, uint256 today) private {
        uint256 w = a.pendingStart;
        uint256 end = a.pendingEnd;
        for (uint256 i = w; i < end; ++i) {
            bytes32 r = _pendingQueue[member][i];
            Order memory o = _orders[r];
            if (o.releaseDay > today && o.remaining != 0) {
                if (w != i) _pendingQueue[member][w] = r;
                ++w;
            }
        }
        for (uint256 i = w; i < end; ++i) {
            delete _pendingQueue[member][i];
        }
        a.pendingEnd = uint32(w);
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
        uint256 minLive = _minLivePeriod(currentPeriod());
        uint256 burned = amount;
        if (o.earnPeriod < minLive) {
            // The order's points expired with their lot: there is nothing of it left to take,
            // and the member's other points are not the order's.
            burned = 0;
        } else if (o.releaseDay > currentDay()) {
            // Still pending: the points are in the order's own lot, untouchable by spending.
            Account memory a = _account(o.member);
            _reduceLot(o.member, a, o.earnPeriod, amount);
            a.balance -= uint64(amount);
            _saveAccount(o.member, a);
            _supply -= amount;
            _pendingByDay[o.releaseDay] -= amount;
        } else {
            _debit(o.member, amount, o.earnPeriod, minLive);
        }
        if (burned != 0) emit Transfer(o.member, address(0), burned);
        emit PointsReversed(o.member, orderRef, amount, burned);
    }

    /// @inheritdoc IPointProgram
    function redeem(Redemption calldata r, bytes calldata signature) external {
        uint256 rate = _clearRedemptions(r.merchantId, r.amount);
        uint256 cur = currentPeriod();
        _redeemOne(r, signature, rate, _domainSeparator(), cur, _minLivePeriod(cur));
    }

    /// @inheritdoc IPointProgram
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures) external {
        uint256 n = rs.length;
        if (n == 0) revert PointsEmptyBatch();
        if (n != signatures.length) revert PointsBatchLengthMismatch(n, signatures.length);
        uint256 acceptor = rs[0].merchantId;
        uint256 total = 0;
        for (uint256 i; i < n; ++i) {
            if (rs[i].merchantId != acceptor) revert PointsMixedAcceptors(acceptor, rs[i].merchantId);
            total += rs[i].amount;
        }
        uint256 rate = _clearRedemptions(acceptor, total);
        // The domain separator and the period: once per batch, not per line.
        bytes32 domain = _domainSeparator();
        uint256 cur = currentPeriod();
        uint256 minLive = _minLivePeriod(cur);
        for (uint256 i; i < n; ++i) {
            _redeemOne(rs[i], signatures[i], rate, domain, cur, minLive);
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
    function _redeemOne(
        Redemption calldata r,
        bytes calldata signature,
        uint256 rate,
        bytes32 domain,
        uint256 cur,
        uint256 minLive
    ) private {
        _requireDeadline(r.deadline);
        if (r.amount == 0 || r.amount > MAX_REDEEM_AMOUNT) revert PointsInvalidAmount(r.amount);
        bytes32 key = _redemptionKey(r.merchantId, r.orderRef);
        if (_redemptions[key].member != address(0)) revert PointsOrderRefUsed(r.orderRef);
        _useNonce(r.member, r.nonce);
        _requireSignedBy(r.member, _typedDataHash(domain, _redemptionStructHash(r)), signature);
        Takes memory takes = _debit(r.member, r.amount, NO_PERIOD, minLive);
        _redemptions[key] = RedemptionRecord({
            member: r.member,
            amount: uint24(r.amount),
            rate: uint24(rate),
            redeemedAt: uint32(block.timestamp),
            // The debit takes live points only, at most expiryPeriods (<= 600) old.
            age: uint16(cur - takes.periods[0])
        });
        // One lot (the common case) needs no more than the age above.
        if (takes.n > 1) _refundLots[key] = _packTakes(takes, cur);
        emit Transfer(r.member, address(0), r.amount);
        emit PointsRedeemed(r.member, r.merchantId, r.orderRef, r.amount, r.nonce);
    }

    /// @inheritdoc IPointProgram
    function refundRedemption(uint256 acceptor, bytes32 orderRef, uint256 amount) external {
        // The acceptor refunds its own orders; the operator may do it only for one that is
        // suspended, so its members are not left without their points. One registry read
        // decides the common case; anyone else gets the error `_requireSigner` gives.
        IAllianceRegistry.Merchant memory acc = _registry.merchant(acceptor);
        bool byAcceptor = acc.status == IAllianceRegistry.MerchantStatus.Active && acc.account == msg.sender;
        if (!byAcceptor && !(acc.status == IAllianceRegistry.MerchantStatus.Suspended && _isOperator(msg.sender))) {
            _requireSigner(acceptor);
        }
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
        emit RedemptionRefunded(rec.member, acceptor, orderRef, amount);
        uint256 redeemedIn = _periodAt(rec.redeemedAt);
        uint256 minLive = _minLivePeriod(currentPeriod());
        Account memory a = _account(rec.member);
        uint256 credited = 0;
        uint256 packed = _refundLots[key];
        if (packed == 0) {
            credited = _refundInto(rec.member, a, redeemedIn - rec.age, amount, minLive);
        } else {
            // Newest lot first, up to what each gave: never a point into a later lot than
            // the one it came from.
            uint256 left = amount;
            for (uint256 i = REFUND_LOTS; i > 0 && left != 0; --i) {
                uint256 shift = (i - 1) * 36;
                uint256 gave = (packed >> shift) & 0xffffff;
                if (gave == 0) continue;
                uint256 take = gave < left ? gave : left;
                uint256 age = (packed >> (shift + 24)) & 0xfff;
                credited += _refundInto(rec.member, a, redeemedIn - age, take, minLive);
                left -= take;
                packed -= take << shift;
            }
            _refundLots[key] = packed;
        }
        _saveAccount(rec.member, a);
        if (credited != 0) {
            _supply += credited;
            emit Transfer(address(0), rec.member, credited);
        }
        if (rec.rate != 0) _clearing().recordRefund(_merchantId, acceptor, amount, rec.rate);
    }

    /// @dev Puts refunded points back into lot `p` if it is still live; gives what went back.
    function _refundInto(address member, Account memory a, uint256 p, uint256 amount, uint256 minLive)
        private
        returns (uint256)
    {
        if (p < minLive) {
            // The lot expired meanwhile: so have these points. Nothing enters the balance.
            emit PointsExpired(member, p, amount);
            return 0;
        }
        _creditLot(member, a, p, amount);
        return amount;
    }

    /// @dev Packs a debit's takes for the refund record: entry i (oldest first) in bits
    /// [36 i, 36 i + 36): 24 bits of points (a redemption is < 2^24), 12 bits of age in
    /// periods before the redemption (<= 600).
    function _packTakes(Takes memory takes, uint256 cur) private pure returns (uint256 packed) {
        for (uint256 i; i < takes.n; ++i) {
            packed |= (takes.amounts[i] | ((cur - takes.periods[i]) << 24)) << (36 * i);
        }
    }

    /// @inheritdoc IPointProgram
    function convert(Conversion calldata c, bytes calldata signature) external {
        _requireSigner(c.toMerchantId);
        if (c.toMerchantId == _merchantId) revert PointsNotAccepted(c.toMerchantId);
        _requireDeadline(c.deadline);
        if (c.amount == 0 || c.amount > MAX_REDEEM_AMOUNT) revert PointsInvalidAmount(c.amount);
        bytes32 key = _redemptionKey(c.toMerchantId, c.orderRef);
        if (_redemptions[key].member != address(0)) revert PointsOrderRefUsed(c.orderRef);
        _useNonce(c.member, c.nonce);
        _requireSignedBy(c.member, _conversionDigest(c), signature);
        IClearing clearing_ = _clearing();
        // The value is the Clearing's to record; the program needs what it burns and credits.
        // slither-disable-next-line unused-return
        (uint256 out, uint256 spent,) = clearing_.quoteConversion(_merchantId, c.toMerchantId, c.amount);
        if (out == 0 || out < c.minOut) revert IClearing.ClearingConversionTooSmall(out, c.minOut);
        _redemptions[key] = RedemptionRecord({member: c.member, amount: uint24(spent), rate: 0, redeemedAt: 0, age: 0});
        Takes memory takes = _debit(c.member, spent, NO_PERIOD, _minLivePeriod(currentPeriod()));
        emit Transfer(c.member, address(0), spent);
        emit PointsConverted(c.member, c.toMerchantId, c.orderRef, spent, out, c.nonce);
        // The converted points expire no later than the soonest-expiring points they came from.
        // Same rates in the same transaction: it gives back the (out, spent) quoted above.
        // slither-disable-next-line unused-return
        clearing_.recordConversion(_merchantId, c.toMerchantId, c.member, c.amount, key, expiryOf(takes.periods[0]));
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @inheritdoc IPointProgram
    function creditConverted(
        address member,
        uint256 amount,
        uint256 fromMerchantId,
        bytes32 conversionId,
        uint256 expiresAt
    ) external {
        if (msg.sender != address(_clearing())) revert PointsUnauthorized(msg.sender, _merchantId);
        if (amount == 0 || amount > MAX_ORDER_AMOUNT) revert PointsInvalidAmount(amount);
        uint256 cur = currentPeriod();
        uint256 minLive = _minLivePeriod(cur);
        uint256 p = _latestPeriodExpiringBy(expiresAt, cur);
        if (p == NO_PERIOD || p < minLive) revert PointsConversionOutlivesSource(expiresAt);
        Account memory a = _account(member);
        uint256 expired = 0;
        if (p >= a.headPeriod) expired = _creditHead(member, a, p, amount, minLive);
        else _creditLot(member, a, p, amount);
        _saveAccount(member, a);
        _addSupply(amount, expired);
        emit Transfer(address(0), member, amount);
        emit PointsConvertedIn(member, fromMerchantId, conversionId, amount, p);
    }

    // slither-disable-end incorrect-equality

    /// @dev The latest period <= `cur` whose points expire no later than `expiresAt`, or
    /// NO_PERIOD if there is none (points here never expire, or expire after `expiresAt` even
    /// in the oldest period).
    function _latestPeriodExpiringBy(uint256 expiresAt, uint256 cur) private view returns (uint256) {
        if (expiresAt == type(uint256).max) return cur;
        Config memory c = _config;
        if (c.expiryPeriods == 0) return NO_PERIOD;
        // Points of period p expire at origin + (p + expiryPeriods + 1) x periodLength.
        uint256 lead = _origin + (uint256(c.expiryPeriods) + 1) * c.periodLength;
        if (expiresAt < lead) return NO_PERIOD;
        uint256 p = (expiresAt - lead) / c.periodLength;
        return p < cur ? p : cur;
    }

    /// @inheritdoc IPointProgram
    function sweepExpired(address[] calldata members) external {
        uint256 minLive = _minLivePeriod(currentPeriod());
        uint256 removed = 0;
        for (uint256 i; i < members.length; ++i) {
            address member = members[i];
            Account memory a = _account(member);
            // Nothing expired: a read, no write.
            if (a.tailPeriod >= minLive) continue;
            (uint256 r, uint256 lots) = _pruneExpired(member, a, minLive, type(uint256).max);
            if (lots != 0) _saveAccount(member, a);
            removed += r;
        }
        if (removed != 0) _supply -= removed;
    }

    /// @inheritdoc IPointProgram
    function conversionDigest(Conversion calldata c) external view returns (bytes32) {
        return _conversionDigest(c);
    }

    function _conversionDigest(Conversion calldata c) private view returns (bytes32) {
        return _typedDataHash(
            _domainSeparator(),
            keccak256(
                abi.encode(
                    CONVERT_TYPEHASH, c.member, c.amount, c.toMerchantId, c.minOut, c.orderRef, c.nonce, c.deadline
                )
            )
        );
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
        return _typedDataHash(_domainSeparator(), _redemptionStructHash(r));
    }

    function _redemptionStructHash(Redemption calldata r) private pure returns (bytes32) {
        return keccak256(abi.encode(REDEEM_TYPEHASH, r.member, r.amount, r.merchantId, r.orderRef, r.nonce, r.deadline));
    }

    function _redemptionKey(uint256 merchantId_, bytes32 orderRef) private pure returns (bytes32) {
        return keccak256(abi.encode(merchantId_, orderRef));
    }

    /// @dev Alliance Points, version 2 (the salt and unordered nonces came with it).
    function _domainNameAndVersion() internal pure override returns (string memory, string memory) {
        return ("Alliance Points", "2");
    }

    /// @dev The registry's address: programs of two alliances never share signatures, even
    /// at the same clone address.
    function _domainSalt() internal view override returns (bytes32) {
        return bytes32(uint256(uint160(address(_registry))));
    }

    // ------------------------------------------------------------------
    // Lots
    // ------------------------------------------------------------------

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Burns `amount` spendable points of `member`: first from lot `prefer` (if any), then
    /// soonest-expiring first. Expired lots met on the way are removed. Reverts if short.
    /// Gives what it took per lot, oldest first (the lot `prefer` not included).
    function _debit(address member, uint256 amount, uint256 prefer, uint256 minLive)
        private
        returns (Takes memory takes)
    {
        Account memory a = _account(member);
        // The common case - one live lot, nothing pending - touches only the account slot and
        // the supply: no list walk, no pending scan.
        if (
            prefer == NO_PERIOD && a.tailPeriod == a.headPeriod && a.pendingStart == a.pendingEnd
                && a.headPeriod >= minLive && a.headAmount >= amount
        ) {
            a.headAmount -= uint64(amount);
            a.balance -= uint64(amount);
            _saveAccount(member, a);
            _supply -= amount;
            takes.periods[0] = a.headPeriod;
            takes.n = 1;
            return takes;
        }
        (uint256[] memory pPeriods, uint256[] memory pAmounts) = _settlePending(member, a, currentDay());
        uint256 need = amount;
        if (prefer != NO_PERIOD && prefer >= minLive) {
            uint256 held = _lotAmount(member, a, prefer);
            uint256 avail = held - _pendingIn(prefer, pPeriods, pAmounts);
            uint256 take = avail < need ? avail : need;
            if (take != 0) {
                _reduceLot(member, a, prefer, take);
                need -= take;
            }
        }
        uint256 p = a.tailPeriod;
        while (true) {
            bool isHead = p == a.headPeriod;
            Lot memory l = isHead ? Lot({amount: a.headAmount, next: 0}) : _lots[member][p];
            uint256 amt = l.amount;
            if (p < minLive) {
                if (amt != 0) {
                    takes.expired += amt;
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
                    _recordTake(takes, p, take);
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
        a.balance -= uint64(amount + takes.expired);
        _saveAccount(member, a);
        _supply -= amount + takes.expired;
    }

    // slither-disable-end incorrect-equality

    /// @dev Appends a take (periods ascending); past REFUND_LOTS entries the oldest entry
    /// absorbs the next oldest, so the newest entries stay exact.
    function _recordTake(Takes memory takes, uint256 p, uint256 amount) private pure {
        uint256 n = takes.n;
        if (n == REFUND_LOTS) {
            takes.amounts[0] += takes.amounts[1];
            for (uint256 i = 1; i < REFUND_LOTS - 1; ++i) {
                takes.periods[i] = takes.periods[i + 1];
                takes.amounts[i] = takes.amounts[i + 1];
            }
            n = REFUND_LOTS - 1;
        }
        takes.periods[n] = p;
        takes.amounts[n] = amount;
        takes.n = n + 1;
    }

    /// @dev One place that unpacks and packs the account slot: the code is emitted once, not
    /// at every use (the contract must stay under the 24 KiB code limit).
    function _account(address member) private view returns (Account memory) {
        return _accounts[member];
    }

    function _saveAccount(address member, Account memory a) private {
        _accounts[member] = a;
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    function _lotAmount(address member, Account memory a, uint256 p) private view returns (uint256) {
        return p == a.headPeriod ? a.headAmount : _lots[member][p].amount;
    }

    function _reduceLot(address member, Account memory a, uint256 p, uint256 amount) private {
        if (p == a.headPeriod) a.headAmount -= uint64(amount);
        else _lots[member][p].amount -= uint224(amount);
    }

    // slither-disable-end incorrect-equality

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

    /// @dev Points in the member's live lots (pending included).
    function _liveOf(address member, Account memory a, uint256 minLive) private view returns (uint256 sum) {
        uint256 p = a.tailPeriod;
        while (p != a.headPeriod) {
            Lot memory l = _lots[member][p];
            if (p >= minLive) sum += l.amount;
            p = l.next;
        }
        if (p >= minLive) sum += a.headAmount;
    }

    function _requireSigner(uint256 merchantId_) private view {
        if (_activeAccount(merchantId_) != msg.sender) revert PointsUnauthorized(msg.sender, merchantId_);
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

    /// @inheritdoc IPointProgram
    function expiryOf(uint256 period) public view returns (uint256) {
        Config memory c = _config;
        if (c.expiryPeriods == 0) return type(uint256).max;
        return _origin + (period + c.expiryPeriods + 1) * c.periodLength;
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

    /// @notice What the `Transfer` logs say `member` holds: spendable + pending + expired but
    /// not yet swept (see `spendableOf`, `pendingOf`, `expiredOf`).
    function balanceOf(address member) public view override returns (uint256) {
        return _accounts[member].balance;
    }

    /// @notice The sum of every `balanceOf`.
    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    /// @inheritdoc IPointProgram
    function spendableOf(address member) external view returns (uint256) {
        Account memory a = _account(member);
        return _liveOf(member, a, _minLivePeriod(currentPeriod())) - _pendingLive(member, a, currentDay());
    }

    /// @inheritdoc IPointProgram
    function expiredOf(address member) external view returns (uint256) {
        Account memory a = _account(member);
        return a.balance - _liveOf(member, a, _minLivePeriod(currentPeriod()));
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
        return _pendingLive(member, _account(member), currentDay());
    }

    // Equalities below compare period numbers and counters this contract keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @inheritdoc IPointProgram
    function lotsOf(address member) external view returns (uint256[] memory periods, uint256[] memory amounts) {
        Account memory a = _account(member);
        uint256 minLive = _minLivePeriod(currentPeriod());
        // At most one live lot per live period: expiryPeriods + 1.
        uint256 cap = uint256(_config.expiryPeriods) + 1;
        periods = new uint256[](cap);
        amounts = new uint256[](cap);
        uint256 k = 0;
        uint256 p = a.tailPeriod;
        while (true) {
            bool isHead = p == a.headPeriod;
            Lot memory l = isHead ? Lot({amount: a.headAmount, next: 0}) : _lots[member][p];
            if (p >= minLive && (l.amount != 0 || !isHead)) {
                periods[k] = p;
                amounts[k] = l.amount;
                ++k;
            }
            if (isHead) break;
            p = l.next;
        }
        assembly ("memory-safe") {
            // Trim both arrays to the k lots found (shrinking a length in place is safe).
            mstore(periods, k)
            mstore(amounts, k)
        }
    }

    // slither-disable-end incorrect-equality

    /// @inheritdoc IPointProgram
    function orderOf(bytes32 orderRef)
        external
        view
        returns (address member, uint256 remaining, uint256 earnPeriod, uint256 releaseDay)
    {
        Order memory o = _orders[orderRef];
        // Points of an expired lot are gone, whatever the order had left.
        remaining = o.earnPeriod < _minLivePeriod(currentPeriod()) ? 0 : o.remaining;
        return (o.member, remaining, o.earnPeriod, o.releaseDay);
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
