// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Clearing and settlement between the alliance's merchants.
/// @notice Every cross-merchant act moves value, in settlement units, between two merchants'
/// net positions of the current clearing period, in the same transaction as the act:
/// a redemption of A's points at B or a conversion of A's points into B's makes A owe B.
/// Positions of a period always sum to zero. The operator closes a period (cost grows with
/// the number of merchants, never with the acts in it); each merchant then pays in or receives
/// its net once (multilateral netting), in the settlement token through escrow, or by a
/// creditor confirming an off-chain payment. Creditors pull from escrow (`claim`, O(1) each,
/// paid to the registry's payout address): while debtors are short, each creditor's share is
/// its net pro rata of what debtors paid so far, rounded down; top-ups raise every share.
interface IClearing {
    /// @notice Why value moved: a redemption, a conversion, a refund of a redemption, a
    /// coupon of one merchant used at another, or the rollback of such a coupon redemption.
    enum Kind {
        None,
        Redemption,
        Conversion,
        Refund,
        Coupon,
        CouponRollback
    }

    /// @notice One merchant's standing in one period, in one slot.
    /// @param net what it is owed (positive) or owes (negative)
    /// @param foreignAccepted value of foreign points it accepted this period net of refunds
    ///        made in it (for its cap)
    struct Position {
        int128 net;
        uint128 foreignAccepted;
    }

    /// @notice How much of a closed period's net a merchant has settled.
    /// @param paid what a debtor paid in (escrow deposits and off-chain payments confirmed)
    /// @param received what a creditor received (escrow payouts and off-chain payments confirmed)
    struct Settlement {
        uint128 paid;
        uint128 received;
    }

    /// @notice A closed period.
    /// @param closedAt when it closed (0: still open)
    /// @param merchants how many merchants it has nets for
    /// @param totalOwed the sum of all negative nets (= the sum of all positive ones)
    /// @param totalPaid what debtors paid so far (escrow deposits and off-chain payments)
    /// @param totalReceived what creditors received so far (claims and off-chain payments)
    /// @param escrow settlement tokens deposited for it and not yet claimed
    struct Period {
        uint64 closedAt;
        uint64 merchants;
        uint128 totalOwed;
        uint128 totalPaid;
        uint128 totalReceived;
        uint128 escrow;
    }

    /// @dev The caller is not the point program of `merchantId`.
    error ClearingNotProgram(address caller, uint256 merchantId);
    /// @dev The caller may not do this.
    error ClearingUnauthorized(address caller);
    /// @dev The caller is not the alliance's coupon book.
    error ClearingNotCouponBook(address caller);
    /// @dev The coupon book was already named.
    error ClearingCouponBookAlreadySet();
    /// @dev Accepting this value would take `merchantId` over its per-period foreign cap.
    error ClearingForeignCapExceeded(uint256 merchantId, uint256 cap, uint256 wanted);
    /// @dev A conversion would give the member no points, or fewer than they signed for.
    error ClearingConversionTooSmall(uint256 out, uint256 minOut);
    /// @dev The period is not closed (or does not exist).
    error ClearingPeriodNotClosed(uint256 period);
    /// @dev None of the merchants named can claim anything from the period's escrow now.
    error ClearingNothingToClaim(uint256 period);
    /// @dev The clearing holds no settlement tokens beyond escrow (or no recipient given).
    error ClearingNothingToSweep();
    /// @dev The merchant does not owe (or is not owed) that much in the period.
    error ClearingExceedsOutstanding(uint256 period, uint256 merchantId, uint256 outstanding, uint256 amount);
    /// @dev Zero amount, or a value past what a position can hold.
    error ClearingInvalidAmount(uint256 amount);
    /// @dev Only the settlement token can make deposits, with the period as its data.
    error ClearingInvalidDeposit();
    /// @dev The period already has this merchant's statement anchored.
    error ClearingStatementAlreadyAnchored(uint256 period, uint256 merchantId);
    /// @dev Positions would not sum to zero: can never happen; closing checks it anyway.
    error ClearingImbalance(uint256 period, int256 sum);

    /// @notice `debtor` owes `creditor` `value` more in `period` because of an act of `kind`
    /// over `points` of the program of the merchant whose points they were, at `rate` units
    /// per point: `value` = `points x rate`, except for a conversion, where `points` are those
    /// spent, `rate` the first program's, and `value` = out x the target's rate (<= points x
    /// rate: the rounding remainder stays with the debtor). A refund is logged with debtor and
    /// creditor swapped.
    event Cleared(
        uint256 indexed period,
        uint256 indexed debtor,
        uint256 indexed creditor,
        Kind kind,
        uint256 points,
        uint256 rate,
        uint256 value
    );
    /// @notice Period `period` closed with `merchants` nets summing to zero.
    event PeriodClosed(uint256 indexed period, uint256 merchants, uint256 totalOwed);
    /// @notice One merchant's net in a closed period (emitted by the close for every merchant
    /// whose net is not zero).
    event NetRecorded(uint256 indexed period, uint256 indexed merchantId, int256 net);
    /// @notice A debtor paid `amount` settlement tokens into escrow for `period`.
    event Deposited(uint256 indexed period, uint256 indexed merchantId, uint256 amount);
    /// @notice A creditor was paid `amount` from escrow for `period`, at its payout address.
    event PaidOut(uint256 indexed period, uint256 indexed merchantId, address payout, uint256 amount);
    /// @notice Settlement tokens sent here without a deposit were returned to `to`.
    event StraySwept(address indexed to, uint256 amount);
    /// @notice A creditor confirmed it received `amount` from a debtor off chain.
    event OffChainPaymentConfirmed(
        uint256 indexed period, uint256 indexed debtor, uint256 indexed creditor, uint256 amount
    );
    /// @notice The one coupon book whose cross-merchant coupon redemptions clear here.
    event CouponBookSet(address indexed couponBook);
    /// @notice The statement of `merchantId` for `period` hashes to `statementHash`.
    event StatementAnchored(uint256 indexed period, uint256 indexed merchantId, bytes32 statementHash);

    /// @notice Called by the program of `programMerchant` when `acceptor` took `points` of it:
    /// moves `points x rate` from the program's merchant to the acceptor. Gives the rate.
    /// Requirements: caller is that program; the registry's pair terms hold (both active,
    /// accepted, rates set); the acceptor stays within its foreign cap.
    function recordRedemption(uint256 programMerchant, uint256 acceptor, uint256 points)
        external
        returns (uint256 rate);

    /// @notice What converting `amount` points of `programMerchant` into `acceptor`'s gives:
    /// `out` = floor(amount x rateA / rateB) points of the acceptor, paid for by `spent` =
    /// ceil(out x rateB / rateA) <= amount points (the rest stays with the member), worth
    /// `value` = out x rateB. Value burnt (spent x rateA) is never less than value created.
    function quoteConversion(uint256 programMerchant, uint256 acceptor, uint256 amount)
        external
        view
        returns (uint256 out, uint256 spent, uint256 value);

    /// @notice Called by the program of `programMerchant` after it burnt the member's points:
    /// records the value and credits `out` points of the acceptor's program to `member`,
    /// expiring no later than `expiresAt` (when the burnt points would have; see
    /// IPointProgram.creditConverted).
    /// Requirements: caller is that program; as `recordRedemption`; `out` >= 1.
    function recordConversion(
        uint256 programMerchant,
        uint256 acceptor,
        address member,
        uint256 amount,
        bytes32 conversionId,
        uint256 expiresAt
    ) external returns (uint256 out, uint256 spent);

    /// @notice Called by the program of `programMerchant` when `acceptor` refunded `points`
    /// of a redemption made at `rate`: the value moves back in the current period, and the
    /// acceptor's foreign value accepted in it shrinks by as much (never below zero).
    /// Requirements: caller is that program.
    function recordRefund(uint256 programMerchant, uint256 acceptor, uint256 points, uint256 rate) external;

    /// @notice Names the coupon book allowed to record coupon redemptions, once.
    /// Requirements: caller has the registry's DEFAULT_ADMIN_ROLE (the timelock; the deployer
    /// while it wires the alliance); no coupon book named yet; `couponBook` non-zero.
    function setCouponBook(address couponBook) external;

    /// @notice Called by the coupon book when a coupon of `issuer` gave `value` settlement
    /// units of discount at `acceptor`: moves `value` from the issuer to the acceptor (logged
    /// as `Cleared` of kind Coupon with points = value, rate = 1). Coupons do not count toward
    /// the acceptor's foreign cap (which bounds foreign points accepted).
    /// Requirements: caller is the coupon book; 0 < `value` <= 2^100.
    function recordCouponRedemption(uint256 issuer, uint256 acceptor, uint256 value) external;

    /// @notice Called by the coupon book when `acceptor` rolled back such a redemption: the
    /// value moves back in the current period (logged with debtor and creditor swapped).
    /// Requirements: caller is the coupon book; 0 < `value` <= 2^100.
    function recordCouponRollback(uint256 issuer, uint256 acceptor, uint256 value) external;

    /// @notice Closes the current period; records every merchant's net.
    /// Requirements: caller has the registry's OPERATOR_ROLE.
    function closePeriod() external returns (uint256 period);

    /// @notice Pays each of `merchantIds` what it can claim from the period's escrow, to its
    /// payout address: its net x totalPaid / totalOwed rounded down, less what it received
    /// (escrow and off chain), and never more than the escrow holds. Anyone may call it (the
    /// tokens go only to payout addresses); merchants that can claim nothing are skipped.
    /// Requirements: the period is closed; at least one of them is paid something.
    function claim(uint256 period, uint256[] calldata merchantIds) external returns (uint256 paid);

    /// @notice Sends the settlement tokens held beyond every period's escrow (sent here with a
    /// plain transfer instead of a deposit) to `to`. Escrowed tokens cannot be swept.
    /// Requirements: caller has OPERATOR_ROLE; there are such tokens; `to` is non-zero.
    function sweep(address to) external returns (uint256 amount);

    /// @notice A creditor's account confirms `debtor` paid it `amount` off chain for `period`.
    /// Requirements: caller signs for an active creditor owed at least `amount` in the
    /// period; the debtor owes at least `amount` there.
    function confirmOffChainPayment(uint256 period, uint256 debtor, uint256 amount) external;

    /// @notice The operator records, for a suspended creditor (which can no longer sign),
    /// that `debtor` paid it `amount` off chain for `period`.
    /// Requirements: caller has OPERATOR_ROLE; `creditor` is suspended; as
    /// `confirmOffChainPayment` otherwise.
    function confirmOffChainPaymentFor(uint256 period, uint256 debtor, uint256 creditor, uint256 amount)
        external;

    /// @notice Anchors the hash of a merchant's statement for a closed period.
    /// Requirements: caller has OPERATOR_ROLE; the period is closed; none anchored yet.
    function anchorStatement(uint256 period, uint256 merchantId, bytes32 statementHash) external;

    function currentPeriod() external view returns (uint256);
    function positionOf(uint256 period, uint256 merchantId) external view returns (Position memory);
    function settlementOf(uint256 period, uint256 merchantId) external view returns (Settlement memory);
    function period(uint256 period) external view returns (Period memory);
    function statementHash(uint256 period, uint256 merchantId) external view returns (bytes32);
    function settlementToken() external view returns (address);
    function couponBook() external view returns (address);
    /// @notice What `merchantId` could claim from the period's escrow now.
    function claimable(uint256 period, uint256 merchantId) external view returns (uint256);
    /// @notice Settlement tokens held for all periods' escrow (the rest of the balance is stray).
    function escrowed() external view returns (uint256);
    /// @notice What `merchantId` still owes (negative) or is owed (positive) for a closed period.
    function outstanding(uint256 period, uint256 merchantId) external view returns (int256);
}
