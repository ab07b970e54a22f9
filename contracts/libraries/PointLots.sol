// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IPointProgram} from "../interfaces/IPointProgram.sol";

/// @title PointLots
/// @notice A point program's book of points: members' lots by period, the pending queue and
/// expiry, over one storage struct (`Book`), as Uniswap v4's `Pool` library is over a pool's
/// state. Every function is internal, so the compiler inlines it into the program: no
/// DELEGATECALL, no linking. Events and errors are the program's (`IPointProgram`, ERC-20
/// `Transfer`): the program emits them, from its own address, whichever file holds the code.
///
/// @dev Storage design for expiry and pending points, so both stay cheap:
///
/// Time is cut into periods of `periodLength` seconds from `origin` (UTC midnight of the day
/// the program was created); with expiry off every point lives in period 0. A member's points
/// sit in *lots*, one per period in which they were earned, kept as a linked list ordered by
/// period: `lots[member][p] = {amount, next}` for the older lots, while the newest lot (the
/// *head*) lives inside the member's one-slot `Account` record, next to the member's ERC-20
/// balance. Issuing to a member in the same period only rewrites that one slot, so a batch
/// issue writes per line exactly what a plain ERC-20 mint with an order-reference slot writes:
/// the account slot and the order slot. A lot moves out of the account slot once per member
/// per period.
///
/// Balances follow the logs: `balanceOf` is the sum of the member's lots - spendable, pending
/// and expired-but-not-swept - kept in the account slot, and moves exactly when a `Transfer`
/// is emitted; `supply` is its running total. Expired lots leave the list (with
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
/// Functions that take an `Account memory` work on the member's account slot loaded once by
/// the caller (`load`) and written back once (`save`): a transaction touches the slot twice,
/// whatever it does to the member's lots.
library PointLots {
    /// @dev The most points one order may carry (48 bits in its record).
    uint256 internal constant MAX_ORDER_AMOUNT = type(uint48).max;
    /// @dev Live pending orders a member may have at once.
    uint256 internal constant MAX_PENDING = 32;
    /// @dev A member holds at most one live lot per period: this bounds every walk.
    uint256 internal constant MAX_EXPIRY_PERIODS = 600;
    /// @dev "No period": a debit with no preferred lot; a conversion with no period to land in.
    uint256 internal constant NO_PERIOD = type(uint256).max;
    /// @dev Expired lots an issue removes when it opens a member's lot of a new period: enough
    /// that expired lots cannot pile up behind a member who keeps earning (at most one lot
    /// expires per period), few enough that a batch line stays cheap.
    uint256 internal constant PRUNE_ON_NEW_LOT = 2;
    /// @dev Lots a debit reports (newest first; older ones count as the oldest): what a
    /// redemption's refund record can name.
    uint256 internal constant REFUND_LOTS = 7;

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

    /// @dev What a debit took, per lot, oldest first: at most REFUND_LOTS entries, the first
    /// one absorbing what older lots beyond that gave.
    struct Takes {
        uint256[REFUND_LOTS] periods;
        uint256[REFUND_LOTS] amounts;
        uint256 n;
        uint256 expired;
    }

    /// @dev Everything a program knows about its points: the rules and the clock's start, the
    /// running supply, and per member the account slot, the older lots and the pending queue;
    /// per order its record; per day the points released that day.
    struct Book {
        IPointProgram.Config config;
        uint256 origin;
        uint256 supply;
        mapping(address member => Account) accounts;
        mapping(address member => mapping(uint256 period => Lot)) lots;
        mapping(address member => mapping(uint256 index => bytes32 orderRef)) pendingQueue;
        mapping(bytes32 orderRef => Order) orders;
        mapping(uint256 day => uint256) pendingByDay;
        mapping(address from => address to) movedTo;
    }

    // ------------------------------------------------------------------
    // Set-up and time
    // ------------------------------------------------------------------

    /// @dev Sets the rules and starts the clock at UTC midnight of today.
    /// Requirements: with expiry on, `periodLength` >= 1 hour; `maxPendingDays` <= 366;
    /// `expiryPeriods` <= 600.
    function init(Book storage self, IPointProgram.Config calldata config) internal {
        if (config.expiryPeriods != 0 && config.periodLength < 1 hours) revert IPointProgram.PointsInvalidConfig();
        if (config.maxPendingDays > 366) revert IPointProgram.PointsInvalidConfig();
        // A member holds at most one live lot per period: keep that (and so every walk) bounded.
        if (config.expiryPeriods > MAX_EXPIRY_PERIODS) revert IPointProgram.PointsInvalidConfig();
        self.config = config;
        // UTC midnight of today: days and periods start at midnight (not randomness).
        // slither-disable-next-line weak-prng
        self.origin = block.timestamp - (block.timestamp % 1 days);
    }

    function currentPeriod(Book storage self) internal view returns (uint256) {
        return periodAt(self, block.timestamp);
    }

    function currentDay(Book storage self) internal view returns (uint256) {
        return (block.timestamp - self.origin) / 1 days;
    }

    /// @dev When points earned in `period` stop being spendable (never: uint256 max).
    function expiryOf(Book storage self, uint256 period) internal view returns (uint256) {
        IPointProgram.Config memory c = self.config;
        if (c.expiryPeriods == 0) return type(uint256).max;
        return self.origin + (period + c.expiryPeriods + 1) * c.periodLength;
    }

    function periodAt(Book storage self, uint256 t) internal view returns (uint256) {
        IPointProgram.Config memory c = self.config;
        return c.expiryPeriods == 0 ? 0 : (t - self.origin) / c.periodLength;
    }

    /// @dev The oldest period whose points are still live in period `cur`.
    function minLivePeriod(Book storage self, uint256 cur) internal view returns (uint256) {
        uint256 e = self.config.expiryPeriods;
        return (e == 0 || cur < e) ? 0 : cur - e;
    }

    /// @dev The latest period <= `cur` whose points expire no later than `expiresAt`, or
    /// NO_PERIOD if there is none (points here never expire, or expire after `expiresAt` even
    /// in the oldest period).
    function latestPeriodExpiringBy(Book storage self, uint256 expiresAt, uint256 cur)
        internal
        view
        returns (uint256)
    {
        if (expiresAt == type(uint256).max) return cur;
        IPointProgram.Config memory c = self.config;
        if (c.expiryPeriods == 0) return NO_PERIOD;
        // Points of period p expire at origin + (p + expiryPeriods + 1) x periodLength.
        uint256 lead = self.origin + (uint256(c.expiryPeriods) + 1) * c.periodLength;
        if (expiresAt < lead) return NO_PERIOD;
        uint256 p = (expiresAt - lead) / c.periodLength;
        return p < cur ? p : cur;
    }

    // ------------------------------------------------------------------
    // Accounts
    // ------------------------------------------------------------------

    /// @dev One place that unpacks and packs the account slot: the code is emitted once, not
    /// at every use (the program must stay under the 24 KiB code limit).
    function load(Book storage self, address member) internal view returns (Account memory) {
        return self.accounts[member];
    }

    function save(Book storage self, address member, Account memory a) internal {
        self.accounts[member] = a;
    }

    // ------------------------------------------------------------------
    // Credit
    // ------------------------------------------------------------------

    /// @dev Issues one order line to `member` in period `cur` (pending until the day holding
    /// `releaseAt`, if that is ahead) and emits `Transfer` and `PointsIssued`; gives the
    /// expired points removed from the member's list on the way. The caller adds `amount`
    /// less those to the supply.
    /// Requirements: `member` not zero; 0 < `amount` <= MAX_ORDER_AMOUNT; `orderRef` unused;
    /// `releaseAt` within the refund window and before the points expire; a free pending slot.
    function issueOne(
        Book storage self,
        address member,
        uint256 amount,
        bytes32 orderRef,
        uint256 releaseAt,
        uint256 cur,
        uint256 minLive
    ) internal returns (uint256 expired) {
        if (member == address(0)) revert IPointProgram.PointsInvalidMember(member);
        if (amount == 0 || amount > MAX_ORDER_AMOUNT) revert IPointProgram.PointsInvalidAmount(amount);
        if (self.orders[orderRef].member != address(0)) revert IPointProgram.PointsOrderRefUsed(orderRef);
        Account memory a = load(self, member);
        uint256 releaseDay = 0;
        if (releaseAt > block.timestamp) {
            releaseDay = _releaseDay(self, releaseAt, cur);
            if (a.pendingEnd - a.pendingStart >= MAX_PENDING) {
                _compactPending(self, member, a, currentDay(self));
                if (a.pendingEnd - a.pendingStart >= MAX_PENDING) revert IPointProgram.PointsTooManyPending(member);
            }
            self.pendingQueue[member][a.pendingEnd] = orderRef;
            ++a.pendingEnd;
            self.pendingByDay[releaseDay] += amount;
        }
        self.orders[orderRef] = Order({
            member: member,
            remaining: uint48(amount),
            earnPeriod: SafeCast.toUint24(cur),
            releaseDay: uint24(releaseDay)
        });
        expired = _creditHead(self, member, a, cur, amount, minLive);
        save(self, member, a);
        emit IERC20.Transfer(address(0), member, amount);
        emit IPointProgram.PointsIssued(member, orderRef, amount, cur, releaseDay);
    }

    /// @dev Credits `amount` points of period `p` (<= the current period) to `member`: as the
    /// new head if `p` is no older than the member's newest lot, else into its place in the
    /// list. Gives the expired points removed on the way (the caller takes them off the supply).
    function creditAt(Book storage self, address member, uint256 p, uint256 amount, uint256 minLive)
        internal
        returns (uint256 expired)
    {
        Account memory a = load(self, member);
        if (p >= a.headPeriod) expired = _creditHead(self, member, a, p, amount, minLive);
        else _creditLot(self, member, a, p, amount);
        save(self, member, a);
    }

    /// @dev Puts refunded points back into lot `p` if it is still live; gives what went back.
    /// The caller saves `a` and adds what went back to the supply.
    function refundInto(Book storage self, address member, Account memory a, uint256 p, uint256 amount, uint256 minLive)
        internal
        returns (uint256)
    {
        if (p < minLive) {
            // The lot expired meanwhile: so have these points. Nothing enters the balance.
            emit IPointProgram.PointsExpired(member, p, amount);
            return 0;
        }
        _creditLot(self, member, a, p, amount);
        return amount;
    }

    /// @dev Adds to the lot of period `p` (>= every period the member holds), which becomes
    /// the head. Opening a new lot first removes up to PRUNE_ON_NEW_LOT expired lots from the
    /// tail; gives the expired points removed.
    function _creditHead(Book storage self, address member, Account memory a, uint256 p, uint256 amount, uint256 minLive)
        private
        returns (uint256 expired)
    {
        uint256 head = a.headPeriod;
        if (p != head) {
            if (a.tailPeriod < minLive) (expired,) = _pruneExpired(self, member, a, minLive, PRUNE_ON_NEW_LOT);
            head = a.headPeriod;
            if (a.headAmount != 0 || a.tailPeriod != head) {
                // The head becomes an older lot linked to the new head (an empty one is
                // kept in the list, since the lot before it points to it; spending drops it).
                self.lots[member][head] = Lot({amount: a.headAmount, next: uint32(p)});
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

    // Equalities below compare period numbers and counters this library keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Adds to the lot of period `p` (< the head's period, or equal), creating it in its
    /// place in the list if the member holds none of that period any more. Walks the list
    /// (refunds and back-dated conversions only).
    function _creditLot(Book storage self, address member, Account memory a, uint256 p, uint256 amount) private {
        a.balance = SafeCast.toUint64(a.balance + amount);
        if (p == a.headPeriod) {
            a.headAmount = SafeCast.toUint64(a.headAmount + amount);
            return;
        }
        uint256 q = a.tailPeriod;
        if (p < q) {
            self.lots[member][p] = Lot({amount: uint224(amount), next: uint32(q)});
            a.tailPeriod = uint32(p);
            return;
        }
        while (true) {
            Lot storage l = self.lots[member][q];
            if (q == p) {
                l.amount += uint224(amount);
                return;
            }
            uint256 next = l.next;
            if (next > p) {
                self.lots[member][p] = Lot({amount: uint224(amount), next: uint32(next)});
                l.next = uint32(p);
                return;
            }
            q = next;
        }
    }

    // ------------------------------------------------------------------
    // Move
    // ------------------------------------------------------------------

    /// @dev Moves every point of `from` to `to`, once: each lot of `from`, oldest first, goes
    /// into `to`'s lot of the same period (created or merged), so nothing is renewed; a lot
    /// that had expired stays expired (a sweep, or `to`'s pruning on the way, removes it); and
    /// `from`'s pending queue is appended to `to`'s as it is, so pending points stay pending
    /// until their day. Emits `Transfer(from, to, moved)` and `PointsMoved`. Gives the expired
    /// points `to`'s pruning removed on the way, for the caller to take off the supply.
    /// Requirements: `to` neither zero nor `from`; `from` not moved before; the two pending
    /// queues together hold at most MAX_PENDING entries.
    function move(Book storage self, address from, address to) internal returns (uint256 expired) {
        if (to == address(0) || to == from) revert IPointProgram.PointsInvalidMember(to);
        address prior = self.movedTo[from];
        if (prior != address(0)) revert IPointProgram.PointsAccountMoved(from, prior);
        self.movedTo[from] = to;
        uint256 minLive = minLivePeriod(self, currentPeriod(self));
        Account memory a = load(self, from);
        Account memory b = load(self, to);
        // `from`'s pending queue joins `to`'s as it is (released entries included: spending
        // pops them); `from`'s entries stay behind, unreachable once its account is cleared.
        uint256 w = b.pendingEnd;
        if (w - b.pendingStart + a.pendingEnd - a.pendingStart > MAX_PENDING) {
            revert IPointProgram.PointsTooManyPending(to);
        }
        for (uint256 i = a.pendingStart; i < a.pendingEnd; ++i) {
            self.pendingQueue[to][w++] = self.pendingQueue[from][i];
        }
        b.pendingEnd = uint32(w);
        uint256 moved = a.balance;
        // Oldest lot first: each lands at or after `to`'s newest when it can (no walk).
        uint256 p = a.tailPeriod;
        while (moved != 0) {
            uint256 amt = a.headAmount;
            uint256 next = p;
            if (p != a.headPeriod) {
                Lot memory l = self.lots[from][p];
                (amt, next) = (l.amount, l.next);
                delete self.lots[from][p];
            }
            if (amt != 0) {
                if (p >= b.headPeriod) expired += _creditHead(self, to, b, p, amt, minLive);
                else _creditLot(self, to, b, p, amt);
            }
            if (next == p) break;
            p = next;
        }
        delete self.accounts[from];
        save(self, to, b);
        emit IERC20.Transfer(from, to, moved);
        emit IPointProgram.PointsMoved(from, to, moved);
    }

    // ------------------------------------------------------------------
    // Expiry
    // ------------------------------------------------------------------

    /// @dev Removes every expired lot of each of `members` (emitting `PointsExpired` and
    /// `Transfer(member, 0, amount)` for each that held points) and takes them off the supply.
    /// A member with nothing expired costs a read, no write.
    function sweep(Book storage self, address[] calldata members) internal {
        uint256 minLive = minLivePeriod(self, currentPeriod(self));
        uint256 removed = 0;
        for (uint256 i; i < members.length; ++i) {
            address member = members[i];
            Account memory a = load(self, member);
            // Nothing expired: a read, no write.
            if (a.tailPeriod >= minLive) continue;
            (uint256 r, uint256 lots) = _pruneExpired(self, member, a, minLive, type(uint256).max);
            if (lots != 0) save(self, member, a);
            removed += r;
        }
        if (removed != 0) self.supply -= removed;
    }

    /// @dev Removes up to `maxLots` lots older than `minLive` from the tail of the member's
    /// list, emitting `PointsExpired` and `Transfer(member, 0, amount)` for each that held
    /// points. Gives the points removed and how many lots were. Balance updated in `a`.
    function _pruneExpired(Book storage self, address member, Account memory a, uint256 minLive, uint256 maxLots)
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
                Lot memory l = self.lots[member][p];
                amt = l.amount;
                delete self.lots[member][p];
                a.tailPeriod = l.next;
            }
            ++lots;
            if (amt != 0) {
                removed += amt;
                emit IPointProgram.PointsExpired(member, p, amt);
                emit IERC20.Transfer(member, address(0), amt);
            }
        }
        a.balance -= uint64(removed);
    }

    // slither-disable-end incorrect-equality

    // ------------------------------------------------------------------
    // Pending
    // ------------------------------------------------------------------

    function _releaseDay(Book storage self, uint256 releaseAt, uint256 cur) private view returns (uint256 day) {
        uint256 origin = self.origin;
        // Round up to a whole day: points are pending "until a date". The day is turned back
        // into its start time below on purpose (divide, then multiply).
        // slither-disable-next-line divide-before-multiply
        day = (releaseAt - origin + 1 days - 1) / 1 days;
        IPointProgram.Config memory c = self.config;
        // The window is measured in time from now; rounding to the day comes after.
        if (releaseAt > block.timestamp + uint256(c.maxPendingDays) * 1 days) {
            revert IPointProgram.PointsInvalidRelease(releaseAt);
        }
        if (c.expiryPeriods != 0 && periodAt(self, origin + day * 1 days) > cur + c.expiryPeriods) {
            revert IPointProgram.PointsInvalidRelease(releaseAt);
        }
    }

    /// @dev Rewrites the member's pending queue without its released and fully reversed
    /// orders (at most MAX_PENDING entries read; only when an issue finds the queue full).
    function _compactPending(Book storage self, address member, Account memory a, uint256 today) private {
        uint256 w = a.pendingStart;
        uint256 end = a.pendingEnd;
        for (uint256 i = w; i < end; ++i) {
            bytes32 r = self.pendingQueue[member][i];
            Order memory o = self.orders[r];
            if (o.releaseDay > today && o.remaining != 0) {
                if (w != i) self.pendingQueue[member][w] = r;
                ++w;
            }
        }
        for (uint256 i = w; i < end; ++i) {
            delete self.pendingQueue[member][i];
        }
        a.pendingEnd = uint32(w);
    }

    /// @dev Pops released (or fully reversed) orders off the front of the member's pending queue
    /// and returns, per earn period, the points still pending.
    function _settlePending(Book storage self, address member, Account memory a, uint256 today)
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
            Order memory o = self.orders[self.pendingQueue[member][i]];
            bool live = o.releaseDay > today && o.remaining != 0;
            if (!live) {
                if (popping) {
                    delete self.pendingQueue[member][i];
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

    // Equalities below compare period numbers and counters this library keeps, never a
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
    function _pendingLive(Book storage self, address member, Account memory a, uint256 today)
        private
        view
        returns (uint256 sum)
    {
        for (uint256 i = a.pendingStart; i < a.pendingEnd; ++i) {
            Order memory o = self.orders[self.pendingQueue[member][i]];
            if (o.releaseDay > today) sum += o.remaining;
        }
    }

    // ------------------------------------------------------------------
    // Debit
    // ------------------------------------------------------------------

    // Equalities below compare period numbers and counters this library keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev Reverses `amount` points of order `orderRef`: from its own lot while they are
    /// pending, else spendable points of the member, its own lot first; none once its lot
    /// expired. Emits `Transfer(member, 0, burned)` (if any) and `PointsReversed`.
    /// Requirements: the order exists; 0 < `amount` <= what it has left.
    function reverseOrder(Book storage self, bytes32 orderRef, uint256 amount) internal {
        Order memory o = self.orders[orderRef];
        if (o.member == address(0)) revert IPointProgram.PointsUnknownOrder(orderRef);
        if (amount == 0) revert IPointProgram.PointsInvalidAmount(amount);
        if (amount > o.remaining) revert IPointProgram.PointsReverseExceedsIssued(orderRef, o.remaining, amount);
        o.remaining -= uint48(amount);
        self.orders[orderRef] = o;
        uint256 minLive = minLivePeriod(self, currentPeriod(self));
        uint256 burned = amount;
        // The order's points follow a move of its member's account (`move`); the order
        // record keeps the member it was issued to.
        address holder = self.movedTo[o.member];
        if (holder == address(0)) holder = o.member;
        if (o.earnPeriod < minLive) {
            // The order's points expired with their lot: there is nothing of it left to take,
            // and the member's other points are not the order's.
            burned = 0;
        } else if (o.releaseDay > currentDay(self)) {
            // Still pending: the points are in the order's own lot, untouchable by spending.
            Account memory a = load(self, holder);
            _reduceLot(self, holder, a, o.earnPeriod, amount);
            a.balance -= uint64(amount);
            save(self, holder, a);
            self.supply -= amount;
            self.pendingByDay[o.releaseDay] -= amount;
        } else {
            debit(self, holder, amount, o.earnPeriod, minLive);
        }
        if (burned != 0) emit IERC20.Transfer(holder, address(0), burned);
        emit IPointProgram.PointsReversed(holder, orderRef, amount, burned);
    }

    /// @dev Burns `amount` spendable points of `member`: first from lot `prefer` (if any), then
    /// soonest-expiring first. Expired lots met on the way are removed. Both come off the
    /// supply. Gives what it took per lot, oldest first (the lot `prefer` not included).
    /// Requirements: the member has `amount` spendable points.
    function debit(Book storage self, address member, uint256 amount, uint256 prefer, uint256 minLive)
        internal
        returns (Takes memory takes)
    {
        Account memory a = load(self, member);
        // The common case - one live lot, nothing pending - touches only the account slot and
        // the supply: no list walk, no pending scan.
        if (
            prefer == NO_PERIOD && a.tailPeriod == a.headPeriod && a.pendingStart == a.pendingEnd
                && a.headPeriod >= minLive && a.headAmount >= amount
        ) {
            a.headAmount -= uint64(amount);
            a.balance -= uint64(amount);
            save(self, member, a);
            self.supply -= amount;
            takes.periods[0] = a.headPeriod;
            takes.n = 1;
            return takes;
        }
        (uint256[] memory pPeriods, uint256[] memory pAmounts) = _settlePending(self, member, a, currentDay(self));
        uint256 need = amount;
        if (prefer != NO_PERIOD && prefer >= minLive) {
            uint256 held = _lotAmount(self, member, a, prefer);
            uint256 avail = held - _pendingIn(prefer, pPeriods, pAmounts);
            uint256 take = avail < need ? avail : need;
            if (take != 0) {
                _reduceLot(self, member, a, prefer, take);
                need -= take;
            }
        }
        uint256 p = a.tailPeriod;
        while (true) {
            bool isHead = p == a.headPeriod;
            Lot memory l = isHead ? Lot({amount: a.headAmount, next: 0}) : self.lots[member][p];
            uint256 amt = l.amount;
            if (p < minLive) {
                if (amt != 0) {
                    takes.expired += amt;
                    emit IPointProgram.PointsExpired(member, p, amt);
                    emit IERC20.Transfer(member, address(0), amt);
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
                delete self.lots[member][p];
                a.tailPeriod = l.next;
            } else if (amt != l.amount) {
                self.lots[member][p].amount = uint224(amt);
            }
            if (need == 0 && p >= minLive) break;
            p = l.next;
        }
        if (need != 0) revert IPointProgram.PointsInsufficientBalance(member, amount - need, amount);
        a.balance -= uint64(amount + takes.expired);
        save(self, member, a);
        self.supply -= amount + takes.expired;
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

    // Equalities below compare period numbers and counters this library keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    function _lotAmount(Book storage self, address member, Account memory a, uint256 p)
        private
        view
        returns (uint256)
    {
        return p == a.headPeriod ? a.headAmount : self.lots[member][p].amount;
    }

    function _reduceLot(Book storage self, address member, Account memory a, uint256 p, uint256 amount) private {
        if (p == a.headPeriod) a.headAmount -= uint64(amount);
        else self.lots[member][p].amount -= uint224(amount);
    }

    // slither-disable-end incorrect-equality

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @dev Points `member` can spend now: live lots less what is pending.
    function spendableOf(Book storage self, address member) internal view returns (uint256) {
        Account memory a = load(self, member);
        return _liveOf(self, member, a, minLivePeriod(self, currentPeriod(self)))
            - _pendingLive(self, member, a, currentDay(self));
    }

    /// @dev Points of `member` that expired and are still in its balance (not yet swept).
    function expiredOf(Book storage self, address member) internal view returns (uint256) {
        Account memory a = load(self, member);
        return a.balance - _liveOf(self, member, a, minLivePeriod(self, currentPeriod(self)));
    }

    /// @dev Points of `member` still pending.
    function pendingOf(Book storage self, address member) internal view returns (uint256) {
        return _pendingLive(self, member, load(self, member), currentDay(self));
    }

    /// @dev Points of every member still pending (released after today).
    function pendingSupply(Book storage self) internal view returns (uint256 pending) {
        uint256 today = currentDay(self);
        // A release up to maxPendingDays from now rounds up to at most one day later.
        uint256 last = today + self.config.maxPendingDays + 1;
        for (uint256 d = today + 1; d <= last; ++d) {
            pending += self.pendingByDay[d];
        }
    }

    /// @dev What is left of order `orderRef` (nothing once its lot expired), as `orderOf` tells it.
    function orderOf(Book storage self, bytes32 orderRef)
        internal
        view
        returns (address member, uint256 remaining, uint256 earnPeriod, uint256 releaseDay)
    {
        Order memory o = self.orders[orderRef];
        // Points of an expired lot are gone, whatever the order had left.
        remaining = o.earnPeriod < minLivePeriod(self, currentPeriod(self)) ? 0 : o.remaining;
        return (o.member, remaining, o.earnPeriod, o.releaseDay);
    }

    // Equalities below compare period numbers and counters this library keeps, never a
    // balance anyone else can move: exact comparison is what is meant.
    // slither-disable-start incorrect-equality
    /// @dev The member's live lots, oldest first (pending points included; an empty head left out).
    function lotsOf(Book storage self, address member)
        internal
        view
        returns (uint256[] memory periods, uint256[] memory amounts)
    {
        Account memory a = load(self, member);
        uint256 minLive = minLivePeriod(self, currentPeriod(self));
        // At most one live lot per live period: expiryPeriods + 1.
        uint256 cap = uint256(self.config.expiryPeriods) + 1;
        periods = new uint256[](cap);
        amounts = new uint256[](cap);
        uint256 k = 0;
        uint256 p = a.tailPeriod;
        while (true) {
            bool isHead = p == a.headPeriod;
            Lot memory l = isHead ? Lot({amount: a.headAmount, next: 0}) : self.lots[member][p];
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

    /// @dev Points in the member's live lots (pending included).
    function _liveOf(Book storage self, address member, Account memory a, uint256 minLive)
        private
        view
        returns (uint256 sum)
    {
        uint256 p = a.tailPeriod;
        while (p != a.headPeriod) {
            Lot memory l = self.lots[member][p];
            if (p >= minLive) sum += l.amount;
            p = l.next;
        }
        if (p >= minLive) sum += a.headAmount;
    }
}
