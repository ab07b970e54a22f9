// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The alliance point standard: what every merchant's point program speaks besides ERC-20.
/// @notice Points have 0 decimals. `balanceOf` is what a member can spend now: pending points
/// (issued inside a refund window) and expired points are not in it. Points are not
/// transferable between members; they leave an account only by redemption, reversal of the
/// order that issued them, or expiry.
interface IPointProgram {
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
    /// @dev The signed redemption's deadline has passed.
    error PointsSignatureExpired(uint256 deadline);
    /// @dev The signature is not the member's (or a contract wallet refused it).
    error PointsInvalidSignature(address member);
    /// @dev Points move only by issue, redemption, reversal and expiry.
    error PointsNonTransferable();
    /// @dev The member already has the most pending orders a program tracks.
    error PointsTooManyPending(address member);
    /// @dev A batch carried no item.
    error PointsEmptyBatch();
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

    /// @notice Points credited to `member` for `orderRef`; pending until day `releaseDay`
    /// (0 when spendable at once), expiring with period `earnPeriod`.
    event PointsIssued(
        address indexed member, bytes32 indexed orderRef, uint256 amount, uint256 earnPeriod, uint256 releaseDay
    );
    /// @notice `amount` of the points `orderRef` issued were taken back (refund).
    event PointsReversed(address indexed member, bytes32 indexed orderRef, uint256 amount);
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
    /// @notice `member` received `amount` points converted from `fromMerchantId`'s program.
    event PointsConvertedIn(
        address indexed member, uint256 indexed fromMerchantId, bytes32 indexed conversionId, uint256 amount
    );
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
    /// order's own period first, then soonest-expiring first.
    /// Requirements: caller signs for this program's active merchant; the order exists here;
    /// 0 < `amount` <= what is left of it; the member still holds enough spendable points.
    function reverse(bytes32 orderRef, uint256 amount) external;

    /// @notice Burns points a member authorised by signature (EIP-712 `Redeem`), spending the
    /// soonest-expiring points first. Relayed by the accepting merchant: the member pays no gas.
    /// At another merchant than the issuer, `amount x rate` moves from the issuer's clearing
    /// position to the acceptor's in the same transaction.
    /// Requirements:
    /// - caller signs for `r.merchantId`, which is active; if it is not the issuer: the issuer
    ///   is active, both have rates, it accepts this program and stays within its foreign cap;
    /// - 0 < `r.amount` < 2^24;
    /// - now <= `r.deadline`; `r.nonce` is the member's next nonce;
    /// - `signature` is the member's (EOA or ERC-1271 contract wallet) over exactly `r`;
    /// - `r.orderRef` was not redeemed against before; the member holds `r.amount` spendable.
    function redeem(Redemption calldata r, bytes calldata signature) external;

    /// @notice Many redemptions relayed by one accepting merchant; all land or none does.
    /// Cleared once for the whole batch. Requirements: as `redeem` for every line, all lines
    /// for the same merchant, one signature per line.
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures) external;

    /// @notice The accepting merchant gives back up to what a redemption took (a refund of its
    /// order): the points return to the member into the lot they were spent from (the oldest,
    /// if several), so they expire when they would have - if that lot has expired meanwhile,
    /// nothing comes back; a cleared redemption's value moves back in the current clearing
    /// period at the original rate either way.
    /// Requirements: caller signs for active `acceptor` or has the registry's OPERATOR_ROLE (for
    /// an acceptor suspended meanwhile); the redemption exists, is not a conversion, is within
    /// the registry's refund window; 0 < `amount` <= what is left of it.
    function refundRedemption(uint256 acceptor, bytes32 orderRef, uint256 amount) external;

    /// @notice Converts a member's points into `c.toMerchantId`'s points (see
    /// IClearing.quoteConversion for the rounding), authorised by the member's signature
    /// (EIP-712 `Convert`) and relayed by that merchant, which takes on the liability: the
    /// issuer owes it the value.
    /// Requirements: as `redeem`, with `c.toMerchantId` another merchant; at least one point
    /// and at least `c.minOut` come out; the target stays within its caps.
    function convert(Conversion calldata c, bytes calldata signature) external;

    /// @notice Credits points converted from another program. Only the Clearing calls it.
    /// Requirements: caller is the registry's clearing; the liability cap holds.
    function creditConverted(address member, uint256 amount, uint256 fromMerchantId, bytes32 conversionId)
        external;

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

    /// @notice Points issued to `member` that are still pending.
    function pendingOf(address member) external view returns (uint256);

    /// @notice The member's live lots: per earn period, the points left in it (pending included).
    function lotsOf(address member) external view returns (uint256[] memory periods, uint256[] memory amounts);

    /// @notice What an order issued and has left after reversals, its member and release day.
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
