// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The alliance's coupon book: campaigns of ERC-721 coupons, one contract for all.
/// @notice A merchant (the issuer) creates a campaign with its terms; its relaying account
/// grants coupons one by one or in batches, or signs vouchers (EIP-712) that are minted only
/// when claimed. A holder authorises a redemption by signing it (EIP-712); the accepting
/// merchant relays it. A coupon used at a merchant other than its issuer moves the discount
/// given from the issuer to the acceptor in the Clearing, in the same transaction. A
/// redemption can be rolled back by its acceptor within the registry's refund window.
///
/// A coupon id packs its campaign, the time it was granted and its serial:
/// `campaignId << 72 | grantedAt << 32 | serial` (campaign < 2^64, grantedAt < 2^40,
/// serial < 2^32), so the "N days after grant" window needs no storage per coupon.
interface ICouponBook {
    /// @notice What a coupon gives.
    /// FixedOff: `value` settlement units off the order (at most the order amount);
    /// PercentOff: `value` basis points of the order, at most `maxDiscount` (0: no cap);
    /// Gift: an item worth `value` settlement units, handed over in store.
    enum Kind {
        None,
        FixedOff,
        PercentOff,
        Gift
    }

    /// @notice A campaign's terms as its issuer sets them.
    /// @param issuer the issuing merchant's id
    /// @param kind what a coupon gives
    /// @param value settlement units (FixedOff, Gift) or basis points (PercentOff)
    /// @param maxDiscount PercentOff's cap in settlement units (0: none)
    /// @param minSpend the least order amount a coupon applies to
    /// @param startsAt first second a coupon can be used (0: from its grant)
    /// @param endsAt last second a coupon can be used (0: no absolute end)
    /// @param validDays a coupon expires this many days after its grant (0: no relative end)
    /// @param supplyCap most coupons the campaign may grant (0: no cap)
    /// @param perMemberCap most coupons one member may be granted (0: no cap)
    /// @param budget most discount value (settlement units) all redemptions may give
    /// @param transferable whether holders may transfer coupons
    /// @param stackable whether a coupon may join other stackable coupons on one order
    /// @param allMerchants accepted at every merchant that accepts the issuer in the registry
    ///        (`acceptors` then unused); otherwise at the issuer and the merchants listed
    struct Terms {
        uint256 issuer;
        Kind kind;
        uint256 value;
        uint256 maxDiscount;
        uint256 minSpend;
        uint256 startsAt;
        uint256 endsAt;
        uint256 validDays;
        uint256 supplyCap;
        uint256 perMemberCap;
        uint256 budget;
        bool transferable;
        bool stackable;
        bool allMerchants;
        uint256[] acceptors;
    }

    /// @notice A campaign as stored: terms in two slots, counters in a third.
    struct Campaign {
        uint32 issuer;
        Kind kind;
        bool transferable;
        bool stackable;
        bool allMerchants;
        bool paused;
        uint40 startsAt;
        uint40 endsAt;
        uint32 validDays;
        uint32 supplyCap;
        uint32 perMemberCap;
        uint80 value;
        uint80 maxDiscount;
        uint64 minSpend;
        uint32 granted;
        uint128 budget;
        uint128 budgetUsed;
    }

    /// @notice A holder's redemption, signed by the holder (EIP-712 `RedeemCoupon(address
    /// holder,uint256 couponId,uint256 acceptor,bytes32 orderRef,uint256 orderAmount,uint256
    /// nonce,uint256 deadline)`) and relayed by the acceptor's account.
    struct Redemption {
        uint256 couponId;
        uint256 acceptor;
        bytes32 orderRef;
        uint256 orderAmount;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What a redemption gave, kept for its rollback: the order ref's low 88 bits
    /// (`orderTag`) check the order a rollback names (order refs are hashes). The first
    /// coupon on an order keeps its record inside the order's slot (which the redemption
    /// writes anyway); a further, stacked coupon on the same order gets a slot of its own.
    struct RedemptionRecord {
        uint32 acceptor;
        uint40 redeemedAt;
        uint96 discount;
        uint88 orderTag;
    }

    /// @notice A voucher its issuer's account signs (EIP-712 `Voucher(uint256 campaignId,
    /// uint256 voucherId,uint256 expiresAt)`): whoever holds it may have one coupon of the
    /// campaign minted to them, once, until `expiresAt`, unless the issuer cancelled it.
    struct Voucher {
        uint256 campaignId;
        uint256 voucherId;
        uint256 expiresAt;
    }

    /// @notice What a member id's custodial account key signs (EIP-712 `CouponMove`) to move
    /// the coupons `ids` it holds to the member's own wallet `to` (issue 12's claim).
    struct CouponMove {
        address from;
        address to;
        uint256[] ids;
        uint256 deadline;
    }

    /// @notice Why `validate` says a coupon would not apply (None: it would).
    enum Refusal {
        None,
        Used,
        Paused,
        NotYetValid,
        Expired,
        NotAccepted,
        UnderMinimumSpend,
        BudgetExhausted,
        IssuerSuspended,
        AcceptorSuspended,
        OrderHasCoupon
    }

    /// @dev The caller does not sign for the merchant the call needs.
    error CouponUnauthorized(address caller, uint256 merchantId);
    /// @dev The campaign's terms are not acceptable (the first bad field's name).
    error CouponInvalidTerms(string field);
    /// @dev No such campaign.
    error CouponUnknownCampaign(uint256 campaignId);
    /// @dev No such coupon.
    error CouponUnknownCoupon(uint256 couponId);
    /// @dev The campaign is paused.
    error CouponCampaignPaused(uint256 campaignId);
    /// @dev The campaign is already paused (or not paused, for a resume).
    error CouponCampaignPauseUnchanged(uint256 campaignId, bool paused);
    /// @dev Granting `wanted` coupons would pass the campaign's supply cap.
    error CouponSupplyCapExceeded(uint256 campaignId, uint256 cap, uint256 wanted);
    /// @dev Granting would pass the per-member cap for `member`.
    error CouponMemberCapExceeded(uint256 campaignId, address member, uint256 cap);
    /// @dev A grant to the zero address, or an empty or oversized batch.
    error CouponInvalidGrant();
    /// @dev A redemption batch is empty, over 2000 lines, or not one signature per line.
    error CouponInvalidBatch(uint256 redemptions, uint256 signatures);
    /// @dev The coupon was already used.
    error CouponAlreadyUsed(uint256 couponId);
    /// @dev The coupon cannot be used before `startsAt`.
    error CouponNotYetValid(uint256 couponId, uint256 startsAt);
    /// @dev The coupon could be used until `endedAt`.
    error CouponExpired(uint256 couponId, uint256 endedAt);
    /// @dev `acceptor` does not accept this coupon.
    error CouponNotAccepted(uint256 couponId, uint256 acceptor);
    /// @dev The order is below the campaign's minimum spend.
    error CouponUnderMinimumSpend(uint256 couponId, uint256 minSpend, uint256 orderAmount);
    /// @dev The discount would take the campaign past its budget.
    error CouponBudgetExhausted(uint256 campaignId, uint256 remaining, uint256 discount);
    /// @dev The merchant whose account calls is not active (suspended).
    error CouponMerchantNotActive(uint256 merchantId);
    /// @dev The issuing merchant is not active.
    error CouponIssuerSuspended(uint256 merchantId);
    /// @dev The order already carries a coupon this one cannot stack with.
    error CouponOrderHasCoupon(uint256 acceptor, bytes32 orderRef);
    /// @dev The order amount is zero or past 2^64 - 1.
    error CouponInvalidOrderAmount(uint256 orderAmount);
    /// @dev The coupon has no redemption to roll back (for that order).
    error CouponNotRedeemed(uint256 couponId);
    /// @dev The refund window of the redemption closed at `closedAt`.
    error CouponRefundWindowClosed(uint256 couponId, uint256 closedAt);
    /// @dev The campaign's coupons cannot be transferred.
    error CouponNotTransferable(uint256 couponId);
    /// @dev The voucher was claimed already.
    error CouponVoucherUsed(uint256 campaignId, uint256 voucherId);
    /// @dev The issuer cancelled the voucher.
    error CouponVoucherCancelled(uint256 campaignId, uint256 voucherId);
    /// @dev The voucher expired at `expiresAt`.
    error CouponVoucherExpired(uint256 campaignId, uint256 voucherId, uint256 expiresAt);
    /// @dev The voucher is not signed by its issuer's account.
    error CouponVoucherInvalidSignature(uint256 campaignId, uint256 voucherId);
    /// @dev A coupon move names no coupon, or more than a batch holds.
    error CouponInvalidMoveSize(uint256 count);
    /// @dev A coupon move goes to the zero address or to the account it leaves.
    error CouponInvalidRecipient(address to);
    /// @dev A coupon move names a coupon its `from` does not hold (moved already, burned).
    error CouponNotHeld(uint256 couponId, address from);

    /// @notice A campaign was created; `acceptors` empty with `allMerchants` set means every
    /// merchant accepting the issuer in the registry.
    event CampaignCreated(uint256 indexed campaignId, uint256 indexed issuer, Terms terms);
    /// @notice The issuer paused (true) or resumed (false) a campaign.
    event CampaignPauseSet(uint256 indexed campaignId, bool paused);
    /// @dev Grants emit only ERC-721 Transfer (from zero): campaign and grant time are in the id.
    /// @notice A coupon was used at `acceptor` for `orderRef`, giving `discount`.
    event CouponRedeemed(
        uint256 indexed couponId,
        uint256 indexed acceptor,
        address indexed holder,
        bytes32 orderRef,
        uint256 orderAmount,
        uint256 discount
    );
    /// @notice A redemption was rolled back: `discount` back into the budget, the coupon
    /// usable again while its window lasts.
    event CouponRedemptionRolledBack(
        uint256 indexed couponId, uint256 indexed acceptor, bytes32 orderRef, uint256 discount
    );
    /// @notice A voucher was claimed, minting `couponId`.
    event VoucherClaimed(uint256 indexed campaignId, uint256 indexed voucherId, uint256 couponId);
    /// @notice The issuer cancelled a voucher before it was claimed.
    event VoucherCancelled(uint256 indexed campaignId, uint256 indexed voucherId);
    /// @notice The issuer took back an unused coupon from `holder` (burned; e.g. the order that
    /// earned it was refunded). Its serial stays counted in the campaign's grants.
    event CouponRevoked(uint256 indexed couponId, address indexed holder);
    /// @notice A member's custodial account `from` moved `count` coupons to its wallet `to`
    /// (each with its ERC-721 `Transfer`).
    event CouponsMoved(address indexed from, address indexed to, uint256 count);

    /// @notice Creates a campaign; gives its id (1, 2, ...).
    /// Requirements: caller is the active account of `terms.issuer`; kind set; value > 0
    /// (PercentOff: <= 10000 bp); endsAt 0 or after startsAt and in the future; budget > 0;
    /// every acceptor is a registered merchant; fields fit their stored widths.
    function createCampaign(Terms calldata terms) external returns (uint256 campaignId);

    /// @notice Pauses (no grants, claims or redemptions) or resumes a campaign.
    /// Requirements: caller is the issuer's active account; the state changes.
    function setCampaignPaused(uint256 campaignId, bool paused) external;

    /// @notice Mints one coupon of the campaign to `member` (a receiver contract is called:
    /// `_safeMint`); gives its id.
    /// Requirements: caller is the issuer's active account; campaign not paused; within
    /// supply cap and `member`'s cap; `member` non-zero; not re-entered.
    function grant(uint256 campaignId, address member) external returns (uint256 couponId);

    /// @notice Mints one coupon of the campaign to each of `members` (no receiver call: a
    /// contract member still holds its coupon); gives the first id, the others follow.
    /// Requirements: as `grant`, for every member; 1 <= members <= 2000.
    function grantBatch(uint256 campaignId, address[] calldata members) external returns (uint256 firstId);

    /// @notice Uses the coupon for an order at `r.acceptor`: records the discount, marks it
    /// used, and clears the discount from the issuer to the acceptor if they differ.
    /// Requirements: caller is the acceptor's active account; the holder signed `r`
    /// (nonce unused, deadline within 7 days); the coupon is unused, inside its window, its
    /// campaign not paused, the issuer active, the acceptor accepts it; order amount >= the
    /// minimum spend; the discount fits the remaining budget; the order carries no coupon it
    /// cannot stack with; not re-entered.
    function redeem(Redemption calldata r, bytes calldata signature) external returns (uint256 discount);

    /// @notice Uses several coupons, each as `redeem` would, in one transaction (all or none).
    /// Requirements: 1 <= redemptions <= 2000, one signature per redemption; every line as
    /// `redeem`'s (a line failing reverts the batch with that line's error).
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures)
        external
        returns (uint256 totalDiscount);

    /// @notice Rolls back the coupon's redemption (a refund of the order): the discount back
    /// into the budget and, if cleared, back from the acceptor to the issuer.
    /// Requirements: caller is the acceptor's active account; `orderRef` is the redemption's;
    /// within the refund window.
    function rollback(uint256 couponId, bytes32 orderRef) external;

    /// @notice Mints the voucher's coupon to `to`; gives its id.
    /// Requirements: caller is the issuer's active account; the issuer's account signed the
    /// voucher; not expired, claimed or cancelled; as `grant` otherwise.
    function claimVoucher(Voucher calldata v, address to, bytes calldata signature)
        external
        returns (uint256 couponId);

    /// @notice Takes back (burns) an unused coupon, from whoever holds it: the issuer's remedy
    /// when what earned the coupon is undone (a refunded order). A used coupon stays.
    /// Requirements: caller is the issuer's active account; the coupon exists and is unused.
    function revokeUnused(uint256 couponId) external;

    /// @notice Moves the coupons `m.ids` from the custodial account `m.from` to the member's
    /// wallet `m.to`, transferable or not, used or not (a used coupon keeps its history), each
    /// with a `Transfer`; the per-member grant counts of their campaigns go along. No receiver
    /// hook is called.
    /// Requirements:
    /// - caller is the active account of an alliance merchant (the relayer);
    /// - `m.from` signed `m` (EIP-712 `CouponMove`; ERC-1271 for a contract account);
    /// - `m.deadline` not past and at most 7 days ahead;
    /// - 1 to 2000 ids, each held by `m.from` (so a replay fails: `CouponNotHeld`);
    /// - `m.to` neither zero nor `m.from`.
    function moveCoupons(CouponMove calldata m, bytes calldata signature) external;

    /// @notice Makes a voucher unclaimable.
    /// Requirements: caller is the issuer's active account; the voucher not claimed.
    function cancelVoucher(uint256 campaignId, uint256 voucherId) external;

    /// @notice Whether the coupon would apply to an order of `orderAmount` at `acceptor` now,
    /// and the discount it would give; changes nothing.
    function validate(uint256 couponId, uint256 acceptor, bytes32 orderRef, uint256 orderAmount)
        external
        view
        returns (Refusal refusal, uint256 discount);

    function campaign(uint256 campaignId) external view returns (Campaign memory);
    function campaignCount() external view returns (uint256);
    function acceptsAt(uint256 campaignId, uint256 merchantId) external view returns (bool);
    function isUsed(uint256 couponId) external view returns (bool);
    /// @notice The redemption of `couponId` at `acceptor` for `orderRef` (redeemedAt 0: none).
    function redemptionOf(uint256 couponId, uint256 acceptor, bytes32 orderRef)
        external
        view
        returns (RedemptionRecord memory);
    /// @notice The order's state: bit 0 set once a non-stackable coupon is on it, bits 1-8
    /// the count of coupons on it, above them the record of its first coupon.
    function orderState(uint256 acceptor, bytes32 orderRef) external view returns (uint256);
    function grantedTo(uint256 campaignId, address member) external view returns (uint256);
    /// @notice 0 unused, 1 claimed, 2 cancelled.
    function voucherState(uint256 campaignId, uint256 voucherId) external view returns (uint256);
    function redeemDigest(address holder, Redemption calldata r) external view returns (bytes32);
    function voucherDigest(Voucher calldata v) external view returns (bytes32);
}
