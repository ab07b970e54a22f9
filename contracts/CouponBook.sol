// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {ICouponBook} from "./interfaces/ICouponBook.sol";
import {IClearing} from "./interfaces/IClearing.sol";
import {MerchantGated} from "./abstract/MerchantGated.sol";
import {SignedActions} from "./abstract/SignedActions.sol";

/// @title CouponBook
/// @notice Every campaign's coupons in one ERC-721 (see ICouponBook).
/// @dev Gas choices:
/// - a coupon id carries its campaign and grant time (see ICouponBook), so a grant writes
///   only what ERC-721 must (owner, balance) plus the per-member count where a cap exists;
/// - a batch grant uses `_mint` (no receiver call, no code-size lookup per member) and writes
///   the campaign's counter once;
/// - a used coupon is one bit in a per-campaign bitmap (a word holds 256 serials), not a
///   burn: it stays in its holder's wallet and history;
/// - the redemption record a rollback needs (when, what discount, which coupon) rides in the
///   order's slot, which the redemption writes anyway (a new slot, 22,100 gas): bits 0-8 keep
///   the order's exclusive flag and coupon count, bits 9-48 the time, 49-144 the discount,
///   145-255 the coupon's low 111 bits (a serial is never 0, so a tag is never 0). Only a
///   further, stacked coupon on the same order pays a record slot of its own. This took the
///   record's 22,100 gas off every common redemption (scripts/bench_coupons.py);
/// - the registry and the clearing are immutables (the registry names its clearing once, before
///   the book is deployed): no cold SLOAD of either address, no registry call for the clearing;
/// - the acceptor's status is read once (its account check), the issuer's once.
contract CouponBook is ICouponBook, ERC721, ReentrancyGuardTransient, MerchantGated, SignedActions {
    using SafeCast for uint256;

    bytes32 private constant REDEEM_TYPEHASH = keccak256(
        "RedeemCoupon(address holder,uint256 couponId,uint256 acceptor,bytes32 orderRef,uint256 orderAmount,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant VOUCHER_TYPEHASH =
        keccak256("Voucher(uint256 campaignId,uint256 voucherId,uint256 expiresAt)");
    bytes32 private constant COUPON_MOVE_TYPEHASH =
        keccak256("CouponMove(address from,address to,uint256[] ids,uint256 deadline)");
    uint256 private constant MAX_BATCH = 2000;
    uint256 private constant BPS = 10_000;
    uint256 private constant VOUCHER_CLAIMED = 1;
    uint256 private constant VOUCHER_CANCELLED = 2;
    /// @dev Order slot: bit 0 set once a non-stackable coupon is on the order, the count of
    /// coupons on it above.
    uint256 private constant ORDER_EXCLUSIVE = 1;
    uint256 private constant ORDER_ONE = 2;
    /// @dev The order slot's layout (see the gas notes): count in bits 1-8, then the record of
    /// the order's first coupon.
    uint256 private constant ORDER_LOW = 0x1ff;
    uint256 private constant ORDER_MAX_COUNT = 0xff;
    uint256 private constant AT_SHIFT = 9;
    uint256 private constant DISCOUNT_SHIFT = 49;
    uint256 private constant TAG_SHIFT = 145;
    uint256 private constant TAG_MASK = (1 << 111) - 1;

    /// @dev Copies of MerchantGated's registry and of the registry's clearing (set once, before
    /// the book is deployed; zero if not yet named, then read from the registry).
    IAllianceRegistry private immutable _REGISTRY;
    address private immutable _CLEARING;

    uint256 private _campaignCount;
    string private _base;
    mapping(uint256 campaignId => Campaign) private _campaigns;
    mapping(uint256 campaignId => mapping(uint256 merchantId => bool)) private _acceptors;
    mapping(uint256 campaignId => mapping(address member => uint256)) private _grantedTo;
    mapping(uint256 campaignId => mapping(uint256 word => uint256 bits)) private _used;
    mapping(uint256 couponId => RedemptionRecord) private _redemptions;
    mapping(uint256 acceptor => mapping(bytes32 orderRef => uint256 state)) private _orders;
    mapping(uint256 campaignId => mapping(uint256 voucherId => uint256 state)) private _vouchers;

    constructor(IAllianceRegistry registry_, string memory baseURI_) ERC721("Alliance Coupon", "ACPN") {
        __MerchantGated_init(registry_, 0);
        _REGISTRY = registry_;
        _CLEARING = registry_.clearing();
        _base = baseURI_;
    }

    // ------------------------------------------------------------------
    // Campaigns
    // ------------------------------------------------------------------

    /// @inheritdoc ICouponBook
    function createCampaign(Terms calldata t) external returns (uint256 campaignId) {
        _requireAccount(t.issuer);
        if (t.kind == Kind.None) revert CouponInvalidTerms("kind");
        if (t.value == 0 || (t.kind == Kind.PercentOff && t.value > BPS)) revert CouponInvalidTerms("value");
        if (t.endsAt != 0 && (t.endsAt <= t.startsAt || t.endsAt <= block.timestamp)) {
            revert CouponInvalidTerms("endsAt");
        }
        if (t.budget == 0) revert CouponInvalidTerms("budget");
        if (t.validDays > 3660) revert CouponInvalidTerms("validDays");
        uint256 n = _REGISTRY.merchantCount();
        campaignId = ++_campaignCount;
        for (uint256 i = 0; i < t.acceptors.length; ++i) {
            uint256 m = t.acceptors[i];
            if (m == 0 || m > n) revert CouponInvalidTerms("acceptors");
            _acceptors[campaignId][m] = true;
        }
        _campaigns[campaignId] = Campaign({
            issuer: t.issuer.toUint32(),
            kind: t.kind,
            transferable: t.transferable,
            stackable: t.stackable,
            allMerchants: t.allMerchants,
            paused: false,
            startsAt: t.startsAt.toUint40(),
            endsAt: t.endsAt.toUint40(),
            validDays: uint32(t.validDays),
            supplyCap: t.supplyCap.toUint32(),
            perMemberCap: t.perMemberCap.toUint32(),
            value: t.value.toUint80(),
            maxDiscount: t.maxDiscount.toUint80(),
            minSpend: t.minSpend.toUint64(),
            granted: 0,
            budget: t.budget.toUint128(),
            budgetUsed: 0
        });
        emit CampaignCreated(campaignId, t.issuer, t);
    }

    /// @inheritdoc ICouponBook
    function setCampaignPaused(uint256 campaignId, bool paused) external {
        Campaign storage c = _campaign(campaignId);
        _requireAccount(c.issuer);
        if (c.paused == paused) revert CouponCampaignPauseUnchanged(campaignId, paused);
        c.paused = paused;
        emit CampaignPauseSet(campaignId, paused);
    }

    // ------------------------------------------------------------------
    // Grants and vouchers
    // ------------------------------------------------------------------

    /// @inheritdoc ICouponBook
    function grant(uint256 campaignId, address member) external nonReentrant returns (uint256 couponId) {
        Campaign storage c = _grantable(campaignId);
        _requireAccount(c.issuer);
        couponId = _grantOne(campaignId, c, member);
    }

    /// @inheritdoc ICouponBook
    function grantBatch(uint256 campaignId, address[] calldata members)
        external
        nonReentrant
        returns (uint256 firstId)
    {
        Campaign storage c = _grantable(campaignId);
        _requireAccount(c.issuer);
        uint256 n = members.length;
        if (n == 0 || n > MAX_BATCH) revert CouponInvalidGrant();
        uint256 granted = c.granted;
        uint256 cap = c.supplyCap;
        if (cap == 0) cap = type(uint32).max;
        if (granted + n > cap) revert CouponSupplyCapExceeded(campaignId, cap, granted + n);
        uint256 memberCap = c.perMemberCap;
        firstId = _couponId(campaignId, granted + 1);
        for (uint256 i = 0; i < n; ++i) {
            address member = members[i];
            if (memberCap != 0) _countMember(campaignId, member, memberCap);
            // _mint, not _safeMint: see the contract's gas notes.
            _mint(member, firstId + i);
        }
        c.granted = uint32(granted + n);
    }

    /// @inheritdoc ICouponBook
    function claimVoucher(Voucher calldata v, address to, bytes calldata signature)
        external
        nonReentrant
        returns (uint256 couponId)
    {
        Campaign storage c = _grantable(v.campaignId);
        address issuerAccount = _requireAccount(c.issuer);
        uint256 state = _vouchers[v.campaignId][v.voucherId];
        if (state == VOUCHER_CLAIMED) revert CouponVoucherUsed(v.campaignId, v.voucherId);
        if (state == VOUCHER_CANCELLED) revert CouponVoucherCancelled(v.campaignId, v.voucherId);
        if (block.timestamp > v.expiresAt) revert CouponVoucherExpired(v.campaignId, v.voucherId, v.expiresAt);
        // The issuer's account signs vouchers; a rotated account's old vouchers no longer claim.
        // The third value only details a malformed signature: any error is a forged voucher.
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(_voucherDigest(v), signature);
        if (err != ECDSA.RecoverError.NoError || signer != issuerAccount) {
            revert CouponVoucherInvalidSignature(v.campaignId, v.voucherId);
        }
        _vouchers[v.campaignId][v.voucherId] = VOUCHER_CLAIMED;
        couponId = _grantOne(v.campaignId, c, to);
        emit VoucherClaimed(v.campaignId, v.voucherId, couponId);
    }

    /// @inheritdoc ICouponBook
    function cancelVoucher(uint256 campaignId, uint256 voucherId) external {
        Campaign storage c = _campaign(campaignId);
        _requireAccount(c.issuer);
        uint256 state = _vouchers[campaignId][voucherId];
        if (state == VOUCHER_CLAIMED) revert CouponVoucherUsed(campaignId, voucherId);
        if (state == VOUCHER_CANCELLED) revert CouponVoucherCancelled(campaignId, voucherId);
        _vouchers[campaignId][voucherId] = VOUCHER_CANCELLED;
        emit VoucherCancelled(campaignId, voucherId);
    }

    /// @inheritdoc ICouponBook
    /// @dev Named for its selector (0xf6a4e136): `revoke(uint256)` (0x20c5429b) sat next to
    /// `transferFrom` (0x23b872dd) in the selector dispatch and added 44 gas to every transfer.
    function revokeUnused(uint256 couponId) external {
        address holder = _ownerOf(couponId);
        if (holder == address(0)) revert CouponUnknownCoupon(couponId);
        _requireAccount(_campaigns[couponId >> 72].issuer);
        if (isUsed(couponId)) revert CouponAlreadyUsed(couponId);
        // _burn calls no receiver: nothing to re-enter. The supply counter keeps the serial.
        _burn(couponId);
        emit CouponRevoked(couponId, holder);
    }

    /// @inheritdoc ICouponBook
    /// @dev `ERC721._update` with no `auth`: the holder's signature is the authority, and this
    /// book's own `_update` (which refuses a non-transferable campaign's transfer) is skipped on
    /// purpose - the coupon stays with the same member. No receiver hook: nothing to re-enter.
    function moveCoupons(CouponMove calldata m, bytes calldata signature) external nonReentrant {
        uint256 relayer = _REGISTRY.merchantIdOf(msg.sender);
        if (relayer == 0) revert CouponUnauthorized(msg.sender, 0);
        _requireAccount(relayer);
        uint256 n = m.ids.length;
        if (n == 0 || n > MAX_BATCH) revert CouponInvalidMoveSize(n);
        if (m.to == address(0) || m.to == m.from) revert CouponInvalidRecipient(m.to);
        _requireDeadline(m.deadline);
        _requireSignedBy(m.from, _couponMoveDigest(m), signature);
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = m.ids[i];
            if (ERC721._update(m.to, id, address(0)) != m.from) revert CouponNotHeld(id, m.from);
            uint256 campaignId = id >> 72;
            uint256 had = _grantedTo[campaignId][m.from];
            if (had != 0) {
                _grantedTo[campaignId][m.from] = 0;
                _grantedTo[campaignId][m.to] += had;
            }
        }
        emit CouponsMoved(m.from, m.to, n);
    }

    // ------------------------------------------------------------------
    // Redemption and rollback
    // ------------------------------------------------------------------

    /// @inheritdoc ICouponBook
    function redeem(Redemption calldata r, bytes calldata signature)
        external
        nonReentrant
        returns (uint256 discount)
    {
        discount = _redeem(r, signature);
    }

    /// @inheritdoc ICouponBook
    /// @dev Each line is `redeem`'s, in order: the relayer pays one transaction's base and
    /// calldata setup for the batch, and a line that would revert reverts the whole batch
    /// (the service's outbox then bisects it so only the offending line fails).
    function redeemBatch(Redemption[] calldata rs, bytes[] calldata signatures)
        external
        nonReentrant
        returns (uint256 totalDiscount)
    {
        uint256 n = rs.length;
        if (n == 0 || n > MAX_BATCH || n != signatures.length) revert CouponInvalidBatch(n, signatures.length);
        // Each line's scratch memory (its digest, its checks) is dead once the line is done:
        // given back, so a batch does not pay memory expansion for every earlier line.
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        for (uint256 i = 0; i < n; ++i) {
            totalDiscount += _redeem(rs[i], signatures[i]);
            assembly ("memory-safe") {
                mstore(0x40, scratch)
            }
        }
    }

    /// @dev One redemption (see `redeem`); the caller holds the reentrancy guard.
    function _redeem(Redemption calldata r, bytes calldata signature) private returns (uint256 discount) {
        _requireAccount(r.acceptor);
        uint256 campaignId = r.couponId >> 72;
        address holder = _ownerOf(r.couponId);
        if (holder == address(0)) revert CouponUnknownCoupon(r.couponId);
        _requireDeadline(r.deadline);
        _requireSignedBy(holder, _redeemDigest(holder, r), signature);
        _useNonce(holder, r.nonce);
        Campaign storage c = _campaigns[campaignId];
        Refusal refusal;
        (refusal, discount) = _check(r.couponId, c, r.acceptor, r.orderRef, r.orderAmount, false);
        if (refusal != Refusal.None) _revertFor(refusal, r.couponId, c, r.acceptor, r.orderRef, r.orderAmount, discount);

        // Effects: used bit, order (with the record, if it is the order's first), budget.
        uint256 serial = uint32(r.couponId);
        _used[campaignId][serial >> 8] |= 1 << (serial & 0xff);
        uint256 order = _orders[r.acceptor][r.orderRef];
        if ((order >> 1) & ORDER_MAX_COUNT == ORDER_MAX_COUNT) revert CouponOrderHasCoupon(r.acceptor, r.orderRef);
        order += c.stackable ? ORDER_ONE : ORDER_ONE | ORDER_EXCLUSIVE;
        if (order >> TAG_SHIFT == 0) {
            order = (order & ORDER_LOW) | (block.timestamp << AT_SHIFT) | (discount << DISCOUNT_SHIFT)
                | ((r.couponId & TAG_MASK) << TAG_SHIFT);
        } else {
            _redemptions[r.couponId] = RedemptionRecord({
                acceptor: uint32(r.acceptor),
                redeemedAt: uint40(block.timestamp),
                discount: uint96(discount),
                orderTag: uint88(uint256(r.orderRef))
            });
        }
        _orders[r.acceptor][r.orderRef] = order;
        c.budgetUsed += uint128(discount);
        emit CouponRedeemed(r.couponId, r.acceptor, holder, r.orderRef, r.orderAmount, discount);
        // Interaction: the Clearing (a contract of the alliance, no callback to us).
        uint256 issuer = c.issuer;
        if (issuer != r.acceptor && discount != 0) {
            _clearingOf().recordCouponRedemption(issuer, r.acceptor, discount);
        }
    }

    /// @inheritdoc ICouponBook
    function rollback(uint256 couponId, bytes32 orderRef) external nonReentrant {
        // A stacked coupon's record has its own slot and names its acceptor; the first coupon
        // of an order keeps its record in the slot of the order at the caller's merchant.
        RedemptionRecord memory rec = _redemptions[couponId];
        bool inOrder = rec.redeemedAt == 0;
        if (inOrder) rec = _recordInOrder(couponId, _REGISTRY.merchantIdOf(msg.sender), orderRef);
        // slither-disable-next-line incorrect-equality
        if (rec.redeemedAt == 0 || rec.orderTag != uint88(uint256(orderRef))) revert CouponNotRedeemed(couponId);
        _requireAccount(rec.acceptor);
        uint256 closesAt = uint256(rec.redeemedAt) + _REGISTRY.refundWindow();
        if (block.timestamp > closesAt) revert CouponRefundWindowClosed(couponId, closesAt);
        uint256 campaignId = couponId >> 72;
        Campaign storage c = _campaigns[campaignId];
        uint256 serial = uint32(couponId);
        _used[campaignId][serial >> 8] &= ~(1 << (serial & 0xff));
        uint256 order = _orders[rec.acceptor][orderRef] - ORDER_ONE;
        // The order's exclusive bit goes with its one non-stackable coupon.
        if (!c.stackable || order & (ORDER_MAX_COUNT << 1) == 0) order = order & ~ORDER_EXCLUSIVE;
        if (inOrder) order &= ORDER_LOW;
        else delete _redemptions[couponId];
        _orders[rec.acceptor][orderRef] = order;
        c.budgetUsed -= uint128(rec.discount);
        emit CouponRedemptionRolledBack(couponId, rec.acceptor, orderRef, rec.discount);
        uint256 issuer = c.issuer;
        if (issuer != rec.acceptor && rec.discount != 0) {
            _clearingOf().recordCouponRollback(issuer, rec.acceptor, rec.discount);
        }
    }

    /// @notice As ERC-721's, but not re-enterable: a receiver's hook cannot call back into
    /// grants, claims or redemptions.
    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data)
        public
        override
        nonReentrant
    {
        super.safeTransferFrom(from, to, tokenId, data);
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @inheritdoc ICouponBook
    function validate(uint256 couponId, uint256 acceptor, bytes32 orderRef, uint256 orderAmount)
        external
        view
        returns (Refusal refusal, uint256 discount)
    {
        if (_ownerOf(couponId) == address(0)) revert CouponUnknownCoupon(couponId);
        if (acceptor == 0 || acceptor > _REGISTRY.merchantCount()) {
            revert IAllianceRegistry.RegistryUnknownMerchant(acceptor);
        }
        return _check(couponId, _campaigns[couponId >> 72], acceptor, orderRef, orderAmount, true);
    }

    /// @inheritdoc ICouponBook
    function campaign(uint256 campaignId) external view returns (Campaign memory) {
        return _campaign(campaignId);
    }

    /// @inheritdoc ICouponBook
    function campaignCount() external view returns (uint256) {
        return _campaignCount;
    }

    /// @inheritdoc ICouponBook
    function acceptsAt(uint256 campaignId, uint256 merchantId) external view returns (bool) {
        return _acceptsAt(campaignId, _campaign(campaignId), merchantId);
    }

    /// @inheritdoc ICouponBook
    function isUsed(uint256 couponId) public view returns (bool) {
        uint256 serial = uint32(couponId);
        return _used[couponId >> 72][serial >> 8] & (1 << (serial & 0xff)) != 0;
    }

    /// @inheritdoc ICouponBook
    function redemptionOf(uint256 couponId, uint256 acceptor, bytes32 orderRef)
        external
        view
        returns (RedemptionRecord memory rec)
    {
        rec = _redemptions[couponId];
        // No own slot: the order's slot may hold it (a time is never 0 on chain).
        // slither-disable-next-line incorrect-equality
        if (rec.redeemedAt == 0) rec = _recordInOrder(couponId, acceptor, orderRef);
        if (rec.acceptor != acceptor || rec.orderTag != uint88(uint256(orderRef))) {
            rec = RedemptionRecord({acceptor: 0, redeemedAt: 0, discount: 0, orderTag: 0});
        }
    }

    /// @inheritdoc ICouponBook
    function orderState(uint256 acceptor, bytes32 orderRef) external view returns (uint256) {
        return _orders[acceptor][orderRef];
    }

    /// @inheritdoc ICouponBook
    function grantedTo(uint256 campaignId, address member) external view returns (uint256) {
        return _grantedTo[campaignId][member];
    }

    /// @inheritdoc ICouponBook
    function voucherState(uint256 campaignId, uint256 voucherId) external view returns (uint256) {
        return _vouchers[campaignId][voucherId];
    }

    /// @inheritdoc ICouponBook
    function redeemDigest(address holder, Redemption calldata r) external view returns (bytes32) {
        return _redeemDigest(holder, r);
    }

    /// @inheritdoc ICouponBook
    function voucherDigest(Voucher calldata v) external view returns (bytes32) {
        return _voucherDigest(v);
    }

    function _baseURI() internal view override returns (string memory) {
        return _base;
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    /// @dev The record of `couponId` kept in the slot of `orderRef` at `acceptor` (redeemedAt 0:
    /// the order's first coupon is another, or there is none).
    function _recordInOrder(uint256 couponId, uint256 acceptor, bytes32 orderRef)
        private
        view
        returns (RedemptionRecord memory rec)
    {
        uint256 order = _orders[acceptor][orderRef];
        if (order >> TAG_SHIFT != couponId & TAG_MASK) return rec;
        rec = RedemptionRecord({
            acceptor: uint32(acceptor),
            redeemedAt: uint40(order >> AT_SHIFT),
            discount: uint96(order >> DISCOUNT_SHIFT),
            orderTag: uint88(uint256(orderRef))
        });
    }

    function _clearingOf() private view returns (IClearing) {
        address clearing = _CLEARING;
        return clearing != address(0) ? IClearing(clearing) : IClearing(_REGISTRY.clearing());
    }

    function _campaign(uint256 campaignId) private view returns (Campaign storage c) {
        c = _campaigns[campaignId];
        if (c.kind == Kind.None) revert CouponUnknownCampaign(campaignId);
    }

    function _grantable(uint256 campaignId) private view returns (Campaign storage c) {
        c = _campaign(campaignId);
        if (c.paused) revert CouponCampaignPaused(campaignId);
    }

    /// @dev Reverts unless the caller is the active account of `merchantId`; gives it.
    function _requireAccount(uint256 merchantId) private view returns (address account) {
        IAllianceRegistry.Merchant memory m = _REGISTRY.merchant(merchantId);
        if (m.account != msg.sender) revert CouponUnauthorized(msg.sender, merchantId);
        if (m.status != IAllianceRegistry.MerchantStatus.Active) revert CouponMerchantNotActive(merchantId);
        return m.account;
    }

    function _grantOne(uint256 campaignId, Campaign storage c, address member) private returns (uint256 couponId) {
        uint256 granted = c.granted + 1;
        uint256 cap = c.supplyCap;
        if (cap == 0) cap = type(uint32).max;
        if (granted > cap) revert CouponSupplyCapExceeded(campaignId, cap, granted);
        uint256 memberCap = c.perMemberCap;
        if (memberCap != 0) _countMember(campaignId, member, memberCap);
        c.granted = uint32(granted);
        couponId = _couponId(campaignId, granted);
        _safeMint(member, couponId);
    }

    function _countMember(uint256 campaignId, address member, uint256 cap) private {
        uint256 had = _grantedTo[campaignId][member];
        if (had >= cap) revert CouponMemberCapExceeded(campaignId, member, cap);
        _grantedTo[campaignId][member] = had + 1;
    }

    function _couponId(uint256 campaignId, uint256 serial) private view returns (uint256) {
        return campaignId << 72 | block.timestamp << 32 | serial;
    }

    function _acceptsAt(uint256 campaignId, Campaign storage c, uint256 acceptor) private view returns (bool) {
        uint256 issuer = c.issuer;
        if (acceptor == issuer) return true;
        if (c.allMerchants) return _REGISTRY.accepts(acceptor, issuer);
        return _acceptors[campaignId][acceptor];
    }

    /// @dev The first reason the coupon would not apply, else None and the discount.
    function _check(
        uint256 couponId,
        Campaign storage c,
        uint256 acceptor,
        bytes32 orderRef,
        uint256 orderAmount,
        bool checkAcceptor
    )
        private
        view
        returns (Refusal, uint256 discount)
    {
        uint256 campaignId = couponId >> 72;
        if (orderAmount == 0 || orderAmount > type(uint64).max) revert CouponInvalidOrderAmount(orderAmount);
        if (isUsed(couponId)) return (Refusal.Used, 0);
        if (c.paused) return (Refusal.Paused, 0);
        if (_REGISTRY.merchant(c.issuer).status != IAllianceRegistry.MerchantStatus.Active) {
            return (Refusal.IssuerSuspended, 0);
        }
        if (checkAcceptor && _REGISTRY.merchant(acceptor).status != IAllianceRegistry.MerchantStatus.Active) {
            return (Refusal.AcceptorSuspended, 0);
        }
        if (block.timestamp < c.startsAt) return (Refusal.NotYetValid, 0);
        if (block.timestamp > _endOf(couponId, c)) return (Refusal.Expired, 0);
        if (!_acceptsAt(campaignId, c, acceptor)) return (Refusal.NotAccepted, 0);
        if (orderAmount < c.minSpend) return (Refusal.UnderMinimumSpend, 0);
        uint256 order = _orders[acceptor][orderRef];
        if (order & ORDER_EXCLUSIVE != 0 || (order != 0 && !c.stackable)) return (Refusal.OrderHasCoupon, 0);
        discount = _discount(c, orderAmount);
        if (discount > c.budget - c.budgetUsed) return (Refusal.BudgetExhausted, discount);
        return (Refusal.None, discount);
    }

    function _revertFor(
        Refusal refusal,
        uint256 couponId,
        Campaign storage c,
        uint256 acceptor,
        bytes32 orderRef,
        uint256 orderAmount,
        uint256 discount
    ) private view {
        if (refusal == Refusal.Used) revert CouponAlreadyUsed(couponId);
        if (refusal == Refusal.Paused) revert CouponCampaignPaused(couponId >> 72);
        if (refusal == Refusal.IssuerSuspended) revert CouponIssuerSuspended(c.issuer);
        if (refusal == Refusal.AcceptorSuspended) revert CouponUnauthorized(msg.sender, acceptor);
        if (refusal == Refusal.NotYetValid) revert CouponNotYetValid(couponId, c.startsAt);
        if (refusal == Refusal.Expired) revert CouponExpired(couponId, _endOf(couponId, c));
        if (refusal == Refusal.NotAccepted) revert CouponNotAccepted(couponId, acceptor);
        if (refusal == Refusal.UnderMinimumSpend) revert CouponUnderMinimumSpend(couponId, c.minSpend, orderAmount);
        if (refusal == Refusal.OrderHasCoupon) revert CouponOrderHasCoupon(acceptor, orderRef);
        revert CouponBudgetExhausted(couponId >> 72, c.budget - c.budgetUsed, discount);
    }

    /// @dev The last second the coupon can be used: the earlier of the campaign's end and
    /// `validDays` after its grant (the grant time is in the id).
    function _endOf(uint256 couponId, Campaign storage c) private view returns (uint256 end) {
        end = c.endsAt == 0 ? type(uint256).max : c.endsAt;
        uint256 days_ = c.validDays;
        if (days_ != 0) end = Math.min(end, uint256(uint40(couponId >> 32)) + days_ * 1 days);
    }

    function _discount(Campaign storage c, uint256 orderAmount) private view returns (uint256) {
        Kind kind = c.kind;
        uint256 value = c.value;
        if (kind == Kind.FixedOff) return Math.min(value, orderAmount);
        if (kind == Kind.PercentOff) {
            uint256 d = orderAmount * value / BPS;
            uint256 cap = c.maxDiscount;
            return cap != 0 && d > cap ? cap : d;
        }
        return value; // Gift: the item's value, whatever the order.
    }

    function _redeemDigest(address holder, Redemption calldata r) private view returns (bytes32) {
        return _typedDataHash(
            _domainSeparator(),
            keccak256(
                abi.encode(
                    REDEEM_TYPEHASH, holder, r.couponId, r.acceptor, r.orderRef, r.orderAmount, r.nonce, r.deadline
                )
            )
        );
    }

    function _voucherDigest(Voucher calldata v) private view returns (bytes32) {
        return _typedDataHash(
            _domainSeparator(), keccak256(abi.encode(VOUCHER_TYPEHASH, v.campaignId, v.voucherId, v.expiresAt))
        );
    }

    function _couponMoveDigest(CouponMove calldata m) private view returns (bytes32) {
        return _typedDataHash(
            _domainSeparator(),
            keccak256(
                abi.encode(COUPON_MOVE_TYPEHASH, m.from, m.to, keccak256(abi.encodePacked(m.ids)), m.deadline)
            )
        );
    }

    /// @dev Refuses a transfer (not a mint) of a non-transferable campaign's coupon.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0) && !_campaigns[tokenId >> 72].transferable) {
            revert CouponNotTransferable(tokenId);
        }
    }

    function _domainNameAndVersion() internal pure override returns (string memory, string memory) {
        return ("Alliance Coupons", "1");
    }

    /// @dev The registry's address: coupon books of two alliances never share signatures.
    function _domainSalt() internal view override returns (bytes32) {
        return bytes32(uint256(uint160(address(_REGISTRY))));
    }
}
