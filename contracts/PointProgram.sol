// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20Upgradeable} from "@openzeppelin/contracts-upgradeable/token/ERC20/ERC20Upgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IPointProgram} from "./interfaces/IPointProgram.sol";
import {IClearing} from "./interfaces/IClearing.sol";
import {MerchantGated} from "./abstract/MerchantGated.sol";
import {SignedActions} from "./abstract/SignedActions.sol";
import {PointLots} from "./libraries/PointLots.sol";

/// @title PointProgram
/// @notice One merchant's points: an ERC-20 with 0 decimals that speaks the alliance standard.
/// Deployed as a minimal clone by the PointProgramFactory, so a program costs one clone, not a
/// full contract.
///
/// @dev The points themselves - members' lots by period, the pending queue, expiry, the
/// supply - are a `PointLots.Book` (see the library for the storage design). This contract
/// holds what surrounds them: who may act (registry), what members sign (EIP-712), the
/// liability cap, and the records of redemptions and conversions that let a refund put points
/// back into the lots they came from.
///
/// Points are spent at the issuing merchant or at any other active merchant that accepts this
/// program (registry); a redemption elsewhere reports its value to the Clearing in the same
/// transaction (once per batch), and so does a conversion into another program's points.
contract PointProgram is IPointProgram, Initializable, ERC20Upgradeable, MerchantGated, SignedActions {
    using PointLots for PointLots.Book;

    bytes32 private constant REDEEM_TYPEHASH = keccak256(
        "Redeem(address member,uint256 amount,uint256 merchantId,bytes32 orderRef,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant CONVERT_TYPEHASH = keccak256(
        "Convert(address member,uint256 amount,uint256 toMerchantId,uint256 minOut,bytes32 orderRef,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant MOVE_TYPEHASH = keccak256("MoveAccount(address from,address to,uint256 deadline)");
    uint256 private constant MAX_REDEEM_AMOUNT = type(uint24).max;

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

    PointLots.Book private _book;
    mapping(bytes32 key => RedemptionRecord) private _redemptions;
    mapping(bytes32 key => uint256 packed) private _refundLots;

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
        _book.init(config_);
        __ERC20_init(name_, symbol_);
        __MerchantGated_init(registry_, merchantId_);
    }

    // ------------------------------------------------------------------
    // Issue
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function issue(address member, uint256 amount, bytes32 orderRef) external {
        _requireSigner(_merchantId);
        uint256 cur = _book.currentPeriod();
        uint256 expired = _book.issueOne(member, amount, orderRef, 0, cur, _book.minLivePeriod(cur));
        _addSupply(amount, expired);
    }

    /// @inheritdoc IPointProgram
    function issuePending(address member, uint256 amount, bytes32 orderRef, uint256 releaseAt) external {
        _requireSigner(_merchantId);
        uint256 cur = _book.currentPeriod();
        uint256 expired = _book.issueOne(member, amount, orderRef, releaseAt, cur, _book.minLivePeriod(cur));
        _addSupply(amount, expired);
    }

    /// @inheritdoc IPointProgram
    function issueBatch(IssueItem[] calldata items) external {
        uint256 n = items.length;
        if (n == 0) revert PointsEmptyBatch();
        _requireSigner(_merchantId);
        uint256 cur = _book.currentPeriod();
        uint256 minLive = _book.minLivePeriod(cur);
        // Supply is summed in memory and written once per batch: one SSTORE instead of n.
        uint256 total = 0;
        uint256 expired = 0;
        // Each line's account, loaded into memory, is dead once the line is saved: its memory
        // is given back, as in `redeemBatch`.
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        for (uint256 i; i < n; ++i) {
            IssueItem calldata it = items[i];
            expired += _book.issueOne(it.member, it.amount, it.orderRef, it.releaseAt, cur, minLive);
            total += it.amount;
            assembly ("memory-safe") {
                mstore(0x40, scratch)
            }
        }
        _addSupply(total, expired);
    }

    /// @dev Adds newly credited points to the supply (less `expired` points removed on the
    /// way), within the liability cap: the value of every point in a balance may not pass the
    /// cap the operator set in the registry. Expired points not yet swept still count - a
    /// running total costs one slot, where excluding them meant summing a slot per live
    /// period; `sweepExpired` (anyone may call it) frees that room. Read once per transaction.
    function _addSupply(uint256 amount, uint256 expired) private {
        uint256 supply = _book.supply + amount - expired;
        _book.supply = supply;
        IAllianceRegistry.Terms memory t = _registry.termsOf(_merchantId);
        if (t.liabilityCap != 0) {
            uint256 value = supply * t.rate;
            if (value > t.liabilityCap) revert PointsLiabilityCapExceeded(t.liabilityCap, value);
        }
    }

    // ------------------------------------------------------------------
    // Reverse and redeem
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function reverse(bytes32 orderRef, uint256 amount) external {
        _requireSigner(_merchantId);
        _book.reverseOrder(orderRef, amount);
    }
    /// @inheritdoc IPointProgram
    function redeem(Redemption calldata r, bytes calldata signature) external {
        uint256 rate = _clearRedemptions(r.merchantId, r.amount);
        uint256 cur = _book.currentPeriod();
        _redeemOne(r, signature, rate, _domainSeparator(), cur, _book.minLivePeriod(cur));
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
        uint256 cur = _book.currentPeriod();
        uint256 minLive = _book.minLivePeriod(cur);
        // Each line's scratch (hashes, the lots it takes) is dead once the line is done:
        // its memory is given back, so a batch does not pay for 200 lines' worth of it.
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        for (uint256 i; i < n; ++i) {
            _redeemOne(rs[i], signatures[i], rate, domain, cur, minLive);
            assembly ("memory-safe") {
                mstore(0x40, scratch)
            }
        }
    }

    /// @dev Checks the caller relays for `acceptor`; for another merchant, reports the batch's
    /// points to the Clearing once (it checks acceptance, statuses and caps) and gives the rate.
    /// The Clearing is the alliance's own contract named by the registry and calls nothing back.
    function _clearRedemptions(uint256 acceptor, uint256 total) private returns (uint256 rate) {
        _requireSigner(acceptor);
        if (acceptor == _merchantId) return 0;
        if (total == 0 || total > PointLots.MAX_ORDER_AMOUNT) revert PointsInvalidAmount(total);
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
        PointLots.Takes memory takes = _book.debit(r.member, r.amount, PointLots.NO_PERIOD, minLive);
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
        uint256 redeemedIn = _book.periodAt(rec.redeemedAt);
        uint256 minLive = _book.minLivePeriod(_book.currentPeriod());
        PointLots.Account memory a = _book.load(rec.member);
        uint256 credited = 0;
        uint256 packed = _refundLots[key];
        if (packed == 0) {
            credited = _book.refundInto(rec.member, a, redeemedIn - rec.age, amount, minLive);
        } else {
            // Newest lot first, up to what each gave: never a point into a later lot than
            // the one it came from.
            uint256 left = amount;
            for (uint256 i = PointLots.REFUND_LOTS; i > 0 && left != 0; --i) {
                uint256 shift = (i - 1) * 36;
                uint256 gave = (packed >> shift) & 0xffffff;
                if (gave == 0) continue;
                uint256 take = gave < left ? gave : left;
                uint256 age = (packed >> (shift + 24)) & 0xfff;
                credited += _book.refundInto(rec.member, a, redeemedIn - age, take, minLive);
                left -= take;
                packed -= take << shift;
            }
            _refundLots[key] = packed;
        }
        _book.save(rec.member, a);
        if (credited != 0) {
            _book.supply += credited;
            emit Transfer(address(0), rec.member, credited);
        }
        if (rec.rate != 0) _clearing().recordRefund(_merchantId, acceptor, amount, rec.rate);
    }

    /// @dev Packs a debit's takes for the refund record: entry i (oldest first) in bits
    /// [36 i, 36 i + 36): 24 bits of points (a redemption is < 2^24), 12 bits of age in
    /// periods before the redemption (<= 600).
    function _packTakes(PointLots.Takes memory takes, uint256 cur) private pure returns (uint256 packed) {
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
        PointLots.Takes memory takes = _book.debit(c.member, spent, PointLots.NO_PERIOD, _book.minLivePeriod(_book.currentPeriod()));
        emit Transfer(c.member, address(0), spent);
        emit PointsConverted(c.member, c.toMerchantId, c.orderRef, spent, out, c.nonce);
        // The converted points expire no later than the soonest-expiring points they came from.
        // Same rates in the same transaction: it gives back the (out, spent) quoted above.
        // slither-disable-next-line unused-return
        clearing_.recordConversion(_merchantId, c.toMerchantId, c.member, c.amount, key, _book.expiryOf(takes.periods[0]));
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
        if (amount == 0 || amount > PointLots.MAX_ORDER_AMOUNT) revert PointsInvalidAmount(amount);
        uint256 cur = _book.currentPeriod();
        uint256 minLive = _book.minLivePeriod(cur);
        uint256 p = _book.latestPeriodExpiringBy(expiresAt, cur);
        if (p == PointLots.NO_PERIOD || p < minLive) revert PointsConversionOutlivesSource(expiresAt);
        uint256 expired = _book.creditAt(member, p, amount, minLive);
        _addSupply(amount, expired);
        emit Transfer(address(0), member, amount);
        emit PointsConvertedIn(member, fromMerchantId, conversionId, amount, p);
    }

    // slither-disable-end incorrect-equality

    /// @inheritdoc IPointProgram
    function moveAccount(MoveAuth calldata m, bytes calldata signature) external {
        _requireSigner(_merchantId);
        _requireDeadline(m.deadline);
        _requireSignedBy(m.from, _typedDataHash(_domainSeparator(), keccak256(abi.encode(MOVE_TYPEHASH, m))), signature);
        _book.supply -= _book.move(m.from, m.to);
    }

    /// @inheritdoc IPointProgram
    function sweepExpired(address[] calldata members) external {
        _book.sweep(members);
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

    /// @dev keccak256(abi.encode(REDEEM_TYPEHASH, r.member, r.amount, r.merchantId, r.orderRef,
    /// r.nonce, r.deadline)): the struct's six static words copied as they are, above the free
    /// memory pointer, nothing allocated. A member address with dirty high bits never gets
    /// here (reading `r.member` reverts first) and would only hash to a digest no one signed.
    function _redemptionStructHash(Redemption calldata r) private pure returns (bytes32 h) {
        bytes32 typehash = REDEEM_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), r, 0xc0)
            h := keccak256(m, 0xe0)
        }
    }

    /// @dev keccak256(abi.encode(merchantId_, orderRef)), in the scratch space.
    function _redemptionKey(uint256 merchantId_, bytes32 orderRef) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0x00, merchantId_)
            mstore(0x20, orderRef)
            key := keccak256(0x00, 0x40)
        }
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


    function _requireSigner(uint256 merchantId_) private view {
        if (_activeAccount(merchantId_) != msg.sender) revert PointsUnauthorized(msg.sender, merchantId_);
    }

    // ------------------------------------------------------------------
    // Time
    // ------------------------------------------------------------------

    /// @inheritdoc IPointProgram
    function currentPeriod() external view returns (uint256) {
        return _book.currentPeriod();
    }

    /// @inheritdoc IPointProgram
    function currentDay() external view returns (uint256) {
        return _book.currentDay();
    }

    /// @inheritdoc IPointProgram
    function expiryOf(uint256 period) external view returns (uint256) {
        return _book.expiryOf(period);
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
        return _book.accounts[member].balance;
    }

    /// @notice The sum of every `balanceOf`.
    function totalSupply() public view override returns (uint256) {
        return _book.supply;
    }

    /// @inheritdoc IPointProgram
    function spendableOf(address member) external view returns (uint256) {
        return _book.spendableOf(member);
    }

    /// @inheritdoc IPointProgram
    function expiredOf(address member) external view returns (uint256) {
        return _book.expiredOf(member);
    }

    /// @inheritdoc IPointProgram
    function pendingSupply() external view returns (uint256 pending) {
        return _book.pendingSupply();
    }

    /// @inheritdoc IPointProgram
    function pendingOf(address member) external view returns (uint256) {
        return _book.pendingOf(member);
    }

    /// @inheritdoc IPointProgram
    function lotsOf(address member) external view returns (uint256[] memory periods, uint256[] memory amounts) {
        return _book.lotsOf(member);
    }

    /// @inheritdoc IPointProgram
    function orderOf(bytes32 orderRef)
        external
        view
        returns (address member, uint256 remaining, uint256 earnPeriod, uint256 releaseDay)
    {
        return _book.orderOf(orderRef);
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
        return _book.config;
    }

    /// @inheritdoc IPointProgram
    function origin() external view returns (uint256) {
        return _book.origin;
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
