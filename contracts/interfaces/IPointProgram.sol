// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignedActions} from "./ISignedActions.sol";

/// @title The alliance point standard: what every merchant's point program speaks besides ERC-20.
/// @notice Points have 0 decimals. `balanceOf` is what the ERC-20 `Transfer` logs say a member
/// holds: spendable + pending + expired-but-not-yet-swept points (`spendableOf`, `pendingOf`,
/// `expiredOf` split it). `totalSupply` is the sum of all balances. Expired points leave a
/// balance - with `PointsExpired` and `Transfer(member, 0, amount)` - when anyone sweeps them
/// (`sweepExpired`, which the service calls at each period boundary) or when the member next
/// spends. Points are not transferable between members; they leave an account only by
/// redemption, conversion, reversal of the order that issued them, or expiry.
/// Members sign EIP-712 messages (domain "Alliance Points", version "2", chainId, the program,
/// salt = the registry's address) with unordered nonces (a bitmap, as Uniswap's Permit2).
interface IPointProgram is ISignedActions {
    /// @notice A program's rules, fixed when the factory creates it.
    /// @param periodLength seconds in one expiry period (e.g. 30 days); ignored if `expiryPeriods` is 0
    /// @param expiryPeriods points earned in period p are spendable until the end of period
    ///        p + expiryPeriods; 0 means points never expire; at most 600
    /// @param maxPendingDays the longest refund window an issue may hold points pending for
    struct Config {
        uint32 periodLength;
        uint16 expiryPeriods;
        uint16 maxPendingDays;
    }

    /// @notice One line of a batch issue. `releaseAt` 0 makes the points spendable at once;
    /// otherwise they stay pending until the start of the day (UTC, from the program's origin)
    /// that contains or follows `releaseAt`.
    struct IssueItem {
        address member;
        uint256 amount;
        bytes32 orderRef;
        uint256 releaseAt;
    }

    /// @notice What a member signs (EIP-712 `Redeem`) to spend points at a merchant.
    struct Redemption {
        address member;
        uint256 amount;
        uint256 merchantId;
        bytes32 orderRef;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What a member signs (EIP-712 `Convert`) to turn points of this program into
    /// points of merchant `toMerchantId`'s program, at the two programs' rates; the converted
    /// points must come to at least `minOut`.
    struct Conversion {
        address member;
        uint256 amount;
        uint256 toMerchantId;
        uint256 minOut;
        bytes32 orderRef;
        uint256 nonce;
        uint256 deadline;
    }

    /// @dev The caller does not sign for the merchant the call needs.
    error PointsUnauthorized(address caller, uint256 merchantId);
    /// @dev The order reference already issued points (or was already redeemed against).
    error PointsOrderRefUsed(bytes32 orderRef);
    /// @dev No order with this reference issued points here.
    error PointsUnknownOrder(bytes32 orderRef);
    /// @dev A reversal asked for more than the order has left.
    error PointsReverseExceedsIssued(bytes32 orderRef, uint256 remaining, uint256 requested);
    /// @dev The member cannot spend that many points now.
    error PointsInsufficientBalance(address member, uint256 available, uint256 needed);
    /// @dev Zero, or more than one order may carry (2^48 - 1).
    error PointsInvalidAmount(uint256 amount);
    /// @dev The zero address cannot hold points.
    error PointsInvalidMember(address member);
    /// @dev `releaseAt` is past the program's longest refund window or after the points expire.
    error PointsInvalidRelease(uint256 releaseAt);
    /// @dev Points move only by issue, redemption, reversal and expiry.
    error PointsNonTransferable();
    /// @dev The member already has the most pending orders a program tracks.
    error PointsTooManyPending(address member);
    /// @dev A batch carried no item.
    error PointsEmptyBatch();
    /// @dev A redemption batch carried a different number of signatures than redemptions.
    error PointsBatchLengthMismatch(uint256 redemptions, uint256 signatures);
    /// @dev A redemption batch names more than one accepting merchant.
    error PointsMixedAcceptors(uint256 acceptor, uint256 other);
    /// @dev Points of this program cannot be redeemed at that merchant.
    error PointsNotAccepted(uint256 merchantId);
    /// @dev The program's configuration cannot work.
    error PointsInvalidConfig();
    /// @dev Issuing would take the value of outstanding points past the program's cap.
    error PointsLiabilityCapExceeded(uint256 cap, uint256 value);
    /// @dev A conversion cannot be refunded.
    error PointsNotRefundable(bytes32 orderRef);
    /// @dev The redemption is older than the alliance's refund window.
    error PointsRefundWindowClosed(bytes32 orderRef, uint256 redeemedAt);
    /// @dev Converted points would live longer here than where they came from: they expire at
    /// `expiresAt` and this program has no lot that expires by then and is still live (or
    /// points here never expire).
    error PointsConversionOutlivesSource(uint256 expiresAt);

    /// @notice What a custodial account's key signs (EIP-712 `MoveAccount`) to move all its
    /// points here to the member's own wallet `to`, once.
    struct MoveAuth {
        address from;
        address to;
        uint256 deadline;
    }

    /// @dev `from`'s points here were already moved (to `to`): an account moves once.
    error PointsAccountMoved(address from, address to);

    /// @notice Points credited to `member` for `orderRef`; pending until day `releaseDay`
    /// (0 when spendable at once), expiring with period `earnPeriod`.
    event PointsIssued(
        address indexed member, bytes32 indexed orderRef, uint256 amount, uint256 earnPeriod, uint256 releaseDay
    );
    /// @notice `amount` of the points `orderRef` issued were taken back (refund); `burned` of
    /// them left the member's balance. `burned` is 0 when the order's own lot had expired:
    /// a reversal then takes nothing from the member's other points.
    event PointsReversed(address indexed member, bytes32 indexed orderRef, uint256 amount, uint256 burned);
    /// @notice `member` spent `amount` at `merchantId` for that merchant's `orderRef`.
    event PointsRedeemed(
        address indexed member, uint256 indexed merchantId, bytes32 indexed orderRef, uint256 amount, uint256 nonce
    );
    /// @notice The accepting merchant `merchantId` gave back `amount` points it had taken for
    /// its order `orderRef`.
    event RedemptionRefunded(
        address indexed member, uint256 indexed merchantId, bytes32 indexed orderRef, uint256 amount
    );
    /// @notice `member` turned `spent` points here into `out` points of `toMerchantId` (its order `orderRef`).
    event PointsConverted(
        address indexed member,
        uint256 indexed toMerchantId,
        bytes32 indexed orderRef,
        uint256 spent,
        uint256 out,
        uint256 nonce
    );
    /// @notice `member` received `amount` points converted from `fromMerchantId`'s program,
    /// into its lot of `period` (so they expire no later than the points they came from).
    event PointsConvertedIn(
        address indexed member,
        uint256 indexed fromMerchantId,
        bytes32 indexed conversionId,
        uint256 amount,
        uint256 period
    );
    /// @notice All `amount` points of `from` here - every lot with its earn period, pending
    /// points still pending - now belong to `to` (with `Transfer(from, to, amount)`); orders
    /// issued to `from` are reversed from `to` from now on.
    event PointsMoved(address indexed from, address indexed to, uint256 amount);
    /// @notice The member's points earned in `period` expired unspent and were removed.
    event PointsExpired(address indexed member, uint256 period, uint256 amount);

    /// @notice Issues `amount` points to `member` for the merchant's order `orderRef`.
    /// Requirements:
    /// - caller signs for this program's merchant, which is active;
    /// - `member` non-zero; 0 < `amount` < 2^48; `orderRef` never used here before.
    function issue(address member, uint256 amount, bytes32 orderRef) external;

    /// @notice Issues points that stay pending (not spendable) until `releaseAt`.
    /// Requirements: as `issue`; `releaseAt` within `maxPendingDays` and before the points expire.
    function issuePending(address member, uint256 amount, bytes32 orderRef, uint256 releaseAt) external;

    /// @notice Issues many lines in one transaction; all land or none does.
    /// Requirements: as `issue` for every line; at least one line.
    function issueBatch(IssueItem[] calldata items) external;

    /// @notice Takes back up to what `orderRef` issued and was not yet reversed (a refund).
    /// Pending points of the order go first; spendable points are then taken from the
    /// order's own period first, then soonest-expiring first. Once the order's own lot has
    /// expired nothing is taken (its points are gone): the order's remainder drops by `amount`
    /// and `PointsReversed` says `burned` = 0.
    /// Requirements: caller signs for this program's active merchant; the order exists here;
    /// 0 < `amount` <= what is left of it; unless its lot expired, the member still holds
    /// enough spendable points.
    function reverse(bytes32 orderRef, uint256 amount) external;

    /// @notice Burns points a member authorised by signature (EIP-712 `Redeem`), spending the
    /// soonest-expiring points first. Relayed by the accepting merchant: the member pays no gas.
    /// At another merchant than the issuer, `amount x rate` moves from the issuer's clearing
    /// position to the acceptor's in the same transaction.
    /// Requirements:
    /// - caller signs for `r.merchantId`, which is active; if it is not the issuer: the issuer
    ///   is active, both have rates, it accepts this program and stays within its foreign cap;
    /// - 0 < `r.amount` < 2^24;
    /// - now <= `r.deadline` <= now + 7 days; `r.nonce` unused (see `nonceBitmap`);
    /// - `signature` is the member's (EOA or ERC-1271 contract wallet) over exactly `r`;
    /// - `r.orderRef` was not redeemed against before; the member holds `r.amount` spendable.
    function redeem(Redemption calldata r, bytes calldata signature) external;

    /// @notice Many redemptions relayed by one accepting merchant; all land or none does.
    /// Cleared once for the whole batch. Requirements: as `redeem` for every line, all lines
    /// for the same merchant (else `PointsMixedAcceptors`), one signature per line (else
    /// `PointsBatchLengthMismatch`).
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures) external;

    /// @notice The accepting merchant gives back up to what a redemption took (a refund of its
    /// order): the points return to the member into the lots they were spent from, newest
    /// first up to what each gave (a redemption spanning more than 7 lots counts the points of
    /// its oldest lots as the oldest lot's), so they never live longer than they would have;
    /// points whose lot has expired meanwhile do not come back (`PointsExpired`). A cleared
    /// redemption's value moves back in the current clearing period at the original rate.
    /// Requirements: caller signs for active `acceptor`, or - only for an acceptor that is
    /// suspended - has the registry's OPERATOR_ROLE; the redemption exists, is not a
    /// conversion, is within the registry's refund window; 0 < `amount` <= what is left of it.
    function refundRedemption(uint256 acceptor, bytes32 orderRef, uint256 amount) external;

    /// @notice Converts a member's points into `c.toMerchantId`'s points (see
    /// IClearing.quoteConversion for the rounding), authorised by the member's signature
    /// (EIP-712 `Convert`) and relayed by that merchant, which takes on the liability: the
    /// issuer owes it the value.
    /// Requirements: as `redeem`, with `c.toMerchantId` another merchant; at least one point
    /// and at least `c.minOut` come out; the target stays within its caps.
    function convert(Conversion calldata c, bytes calldata signature) external;

    /// @notice Credits points converted from another program, into the member's newest lot
    /// here that expires no later than `expiresAt` (when the source points expire; the
    /// source's `convert` reports the soonest expiry among the lots it spent;
    /// type(uint256).max: never), so a conversion round trip cannot renew points.
    /// Requirements: caller is the registry's clearing; the liability cap holds; a live lot
    /// expiring by `expiresAt` exists here (else `PointsConversionOutlivesSource`: e.g. points
    /// here never expire but the source's do, or they would arrive already expired).
    function creditConverted(
        address member,
        uint256 amount,
        uint256 fromMerchantId,
        bytes32 conversionId,
        uint256 expiresAt
    ) external;

    /// @notice Moves every point of the custodial account `m.from` (the service holds its key
    /// for a member who had no wallet yet) to the member's wallet `m.to`, once: each lot keeps
    /// its earn period (so its expiry), pending points stay pending until their release day,
    /// and later reversals of `m.from`'s orders take from `m.to`. A lot that had expired
    /// moves expired (a sweep removes it); the move is `Transfer(from, to, amount)` and
    /// `PointsMoved`: the supply does not change. `m.to` may already hold points here: the
    /// lots merge by period. Checking that `m.to` is nobody's custodial account is the
    /// service's job.
    /// Requirements:
    /// - caller signs for this program's merchant, which is active;
    /// - now <= `m.deadline` <= now + 7 days; `signature` is `m.from`'s over exactly `m`;
    /// - `m.to` is neither zero nor `m.from`; `m.from` never moved before
    ///   (`PointsAccountMoved`); the two accounts' pending queues hold at most 32 entries
    ///   together (else `PointsTooManyPending`: released entries leave a queue when its
    ///   member next spends).
    function moveAccount(MoveAuth calldata m, bytes calldata signature) external;

    /// @notice Removes the expired lots of each member (emitting `PointsExpired` and
    /// `Transfer(member, 0, amount)` per lot), so balances rebuilt from logs drop expired
    /// points. Anyone may call it: it only applies the program's rules.
    function sweepExpired(address[] calldata members) external;


    /// @notice The EIP-712 digest a member signs for `r` (for wallets and tests).
    function redemptionDigest(Redemption calldata r) external view returns (bytes32);

    /// @notice The EIP-712 digest a member signs for `c`.
    function conversionDigest(Conversion calldata c) external view returns (bytes32);

    /// @notice A redemption (or conversion) recorded against `acceptor`'s `orderRef`: member,
    /// points not yet refunded, the clearing rate (0: none), when (0: a conversion).
    function redemptionOf(uint256 acceptor, bytes32 orderRef)
        external
        view
        returns (address member, uint256 amount, uint256 rate, uint256 redeemedAt);

    /// @notice Points `member` can spend now (live, not pending).
    function spendableOf(address member) external view returns (uint256);

    /// @notice Points issued to `member` that are still pending.
    function pendingOf(address member) external view returns (uint256);

    /// @notice Points of `member` that expired and were not swept yet (still in `balanceOf`).
    function expiredOf(address member) external view returns (uint256);

    /// @notice The member's live lots: per earn period, the points left in it (pending included).
    function lotsOf(address member) external view returns (uint256[] memory periods, uint256[] memory amounts);

    /// @notice When points earned in `period` expire (unix time; type(uint256).max: never).
    function expiryOf(uint256 period) external view returns (uint256);

    /// @notice What an order issued and has left after reversals (0 once its lot expired),
    /// its member and release day.
    function orderOf(bytes32 orderRef)
        external
        view
        returns (address member, uint256 remaining, uint256 earnPeriod, uint256 releaseDay);

    function merchantId() external view returns (uint256);
    function registry() external view returns (address);
    function config() external view returns (Config memory);
    /// @notice Seconds since the epoch at which period 0 and day 0 began.
    function origin() external view returns (uint256);
    function currentPeriod() external view returns (uint256);
    function currentDay() external view returns (uint256);
    /// @notice Points issued and not yet spendable, across all members.
    function pendingSupply() external view returns (uint256);
}
