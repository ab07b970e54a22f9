// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IItemRegistry} from "./interfaces/IItemRegistry.sol";
import {MerchantGated} from "./abstract/MerchantGated.sol";
import {SignedActions} from "./abstract/SignedActions.sol";
import {Roles} from "./libraries/Roles.sol";

/// @title ItemRegistry
/// @notice Serial-coded goods of the alliance's brands: products, production batches as Merkle
/// roots, compact custody events, recalls, claims by buyers and clone flags (see
/// `IItemRegistry`).
///
/// @dev Cost per item is the point. A batch of any size costs two new slots (its root; gtin,
/// brand, count and recall flag packed). An item costs nothing until it is activated with its
/// proof (one new slot: `Item`, packed into one word); every custody event after that is one
/// warm-or-cold read and one rewrite of that word plus one LOG3 with three data words. The
/// location check asks the alliance registry once per run of events at the same location.
contract ItemRegistry is IItemRegistry, MerchantGated, SignedActions {
    uint8 private constant ITEM_RECALLED = 1;
    uint8 private constant ITEM_CLAIMED = 2;
    uint8 private constant ITEM_FLAGGED = 4;
    /// @dev Longest list one call takes: 256 custody events are ~2 Mgas, well inside a block.
    uint256 private constant MAX_LIST = 256;
    uint256 private constant GTIN_LIMIT = 1e14;
    bytes32 private constant CLAIM_TYPEHASH =
        keccak256("Claim(address member,bytes32 itemId,uint256 nonce,uint256 deadline)");

    mapping(bytes32 itemId => Item) private _items;
    mapping(uint256 batchId => Batch) private _batches;
    mapping(uint256 gtin => uint256 brand) private _products;
    mapping(bytes32 location => uint256 merchantId) private _locations;
    uint256 private _batchCount;

    /// @dev The location last checked in a loop and its merchant: a run of events at one
    /// location asks the registry once.
    struct LocationCache {
        bytes32 location;
        uint256 merchantId;
    }

    constructor(IAllianceRegistry registry_) {
        __MerchantGated_init(registry_, 0);
    }

    // ------------------------------------------------------------------
    // Products, locations, batches
    // ------------------------------------------------------------------

    /// @inheritdoc IItemRegistry
    function itemIdOf(uint256 gtin, bytes20 serial) public pure returns (bytes32) {
        return bytes32((gtin << 160) | uint256(uint160(serial)));
    }

    /// @inheritdoc IItemRegistry
    function registerProduct(uint256 merchantId, uint256 gtin) external {
        _requireBrand(merchantId);
        if (!_validGtin(gtin)) revert ItemInvalidGtin(gtin);
        uint256 owner = _products[gtin];
        if (owner != 0) revert ItemProductTaken(gtin, owner);
        _products[gtin] = merchantId;
        emit ProductRegistered(gtin, merchantId);
    }

    /// @inheritdoc IItemRegistry
    function registerLocations(uint256 merchantId, bytes32[] calldata locations) external {
        if (_activeAccount(merchantId) != msg.sender) revert ItemNotBrand(merchantId, msg.sender);
        _requireCount(locations.length);
        for (uint256 i; i < locations.length; ++i) {
            bytes32 location = locations[i];
            uint256 owner = _locations[location];
            if (owner == merchantId) continue;
            if (owner != 0 || location == bytes32(0)) revert ItemLocationTaken(location, owner);
            _locations[location] = merchantId;
            emit LocationRegistered(location, merchantId);
        }
    }

    /// @inheritdoc IItemRegistry
    function registerBatch(uint256 gtin, bytes32 root, uint256 count) external returns (uint256 batchId) {
        uint256 brand = _requireProductOwner(gtin);
        _requireBrand(brand);
        if (root == bytes32(0) || count == 0 || count > type(uint32).max) revert ItemInvalidBatch(root, count);
        batchId = ++_batchCount;
        _batches[batchId] =
            Batch({root: root, gtin: uint64(gtin), brand: uint64(brand), count: uint32(count), recalled: false});
        emit BatchRegistered(batchId, gtin, root, count);
    }

    // ------------------------------------------------------------------
    // Custody events
    // ------------------------------------------------------------------

    /// @inheritdoc IItemRegistry
    function activate(
        CustodyEvent[] calldata events,
        uint256[] calldata batchIds,
        bytes32[] calldata secretHashes,
        bytes32[][] calldata proofs
    ) external {
        uint256 n = events.length;
        _requireCount(n);
        if (batchIds.length != n || secretHashes.length != n || proofs.length != n) revert ItemInvalidCount(n);
        LocationCache memory cache = LocationCache({location: bytes32(0), merchantId: 0});
        for (uint256 i; i < n; ++i) {
            _activateOne(events[i], batchIds[i], secretHashes[i], proofs[i], cache);
        }
    }

    function _activateOne(
        CustodyEvent calldata e,
        uint256 batchId,
        bytes32 secretHash,
        bytes32[] calldata proof,
        LocationCache memory cache
    ) private {
        bytes32 itemId = e.itemId;
        if (e.bizStep != BizStep.Commissioning) revert ItemInvalidTransition(itemId, ItemStatus.Unknown, e.bizStep);
        if (e.destination != bytes32(0)) revert ItemInvalidDestination(itemId, e.destination);
        uint256 merchantId = _merchantAt(e.location, cache);
        Batch storage b = _batches[batchId];
        bytes32 root = b.root;
        if (root == bytes32(0)) revert ItemUnknownBatch(batchId);
        if (uint256(b.gtin) != uint256(itemId) >> 160) revert ItemBatchMismatch(batchId, itemId);
        if (uint256(b.brand) != merchantId) revert ItemNotProductOwner(b.gtin, msg.sender);
        uint8 flags = _items[itemId].flags;
        if (_items[itemId].status != ItemStatus.Unknown) revert ItemAlreadyActivated(itemId);
        if (!MerkleProof.verifyCalldata(proof, root, _leaf(itemId, secretHash))) {
            revert ItemInvalidProof(itemId, batchId);
        }
        // A serial recalled or flagged before its activation keeps its flags.
        _items[itemId] = Item({
            status: ItemStatus.Commissioned,
            flags: flags,
            custodian: uint64(merchantId),
            destination: 0,
            batchId: uint64(batchId)
        });
        _emitCustody(e, merchantId);
    }

    /// @inheritdoc IItemRegistry
    function recordEvents(CustodyEvent[] calldata events) external {
        uint256 n = events.length;
        _requireCount(n);
        LocationCache memory cache = LocationCache({location: bytes32(0), merchantId: 0});
        for (uint256 i; i < n; ++i) {
            CustodyEvent calldata e = events[i];
            uint256 merchantId = _merchantAt(e.location, cache);
            _apply(e, merchantId);
            _emitCustody(e, merchantId);
        }
    }

    /// @inheritdoc IItemRegistry
    function recall(uint256[] calldata batchIds, bytes32[] calldata itemIds, bytes32 eventHash) external {
        _requireCount(batchIds.length + itemIds.length);
        for (uint256 i; i < batchIds.length; ++i) {
            uint256 batchId = batchIds[i];
            Batch storage b = _batches[batchId];
            if (b.root == bytes32(0)) revert ItemUnknownBatch(batchId);
            if (_activeAccount(b.brand) != msg.sender) revert ItemNotProductOwner(b.gtin, msg.sender);
            b.recalled = true;
            emit BatchRecalled(batchId, eventHash);
        }
        for (uint256 i; i < itemIds.length; ++i) {
            bytes32 itemId = itemIds[i];
            _requireProductOwner(uint256(itemId) >> 160);
            _items[itemId].flags |= ITEM_RECALLED;
            emit ItemRecalled(itemId, eventHash);
        }
    }

    // ------------------------------------------------------------------
    // Claims and flags
    // ------------------------------------------------------------------

    /// @inheritdoc IItemRegistry
    function claim(
        bytes32 itemId,
        bytes32 secret,
        bytes32[] calldata proof,
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        Item memory it = _items[itemId];
        if (it.status != ItemStatus.Sold) revert ItemNotSold(itemId, it.status);
        if (it.flags & ITEM_CLAIMED != 0) revert ItemAlreadyClaimed(itemId);
        bytes32 root = _batches[it.batchId].root;
        if (!MerkleProof.verifyCalldata(proof, root, _leaf(itemId, keccak256(abi.encode(secret))))) {
            revert ItemInvalidProof(itemId, it.batchId);
        }
        _requireDeadline(deadline);
        _requireSignedBy(member, _claimDigest(member, itemId, nonce, deadline), signature);
        _useNonce(member, nonce);
        _items[itemId].flags = it.flags | ITEM_CLAIMED;
        emit ItemClaimed(itemId, member);
    }

    /// @inheritdoc IItemRegistry
    function flag(bytes32 itemId, uint256 reason) external {
        uint256 gtin = uint256(itemId) >> 160;
        uint256 brand = _products[gtin];
        if (brand == 0) revert ItemUnknownProduct(gtin);
        if (!_isOperator(msg.sender) && _activeAccount(brand) != msg.sender) revert ItemNotFlagger(msg.sender);
        _items[itemId].flags |= ITEM_FLAGGED;
        emit ItemFlagged(itemId, reason);
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @inheritdoc IItemRegistry
    function claimDigest(address member, bytes32 itemId, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _claimDigest(member, itemId, nonce, deadline);
    }

    /// @inheritdoc IItemRegistry
    function item(bytes32 itemId) external view returns (Item memory) {
        return _items[itemId];
    }

    /// @inheritdoc IItemRegistry
    function batch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    /// @inheritdoc IItemRegistry
    function productBrand(uint256 gtin) external view returns (uint256) {
        return _products[gtin];
    }

    /// @inheritdoc IItemRegistry
    function locationOwner(bytes32 location) external view returns (uint256) {
        return _locations[location];
    }

    /// @inheritdoc IItemRegistry
    function isRecalled(bytes32 itemId) public view returns (bool) {
        Item memory it = _items[itemId];
        return it.flags & ITEM_RECALLED != 0 || (it.batchId != 0 && _batches[it.batchId].recalled);
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    /// @dev The rules of one custody event by `merchantId`, applied to the item's one slot.
    function _apply(CustodyEvent calldata e, uint256 merchantId) private {
        bytes32 itemId = e.itemId;
        Item memory it = _items[itemId];
        ItemStatus status = it.status;
        BizStep step = e.bizStep;
        if (status == ItemStatus.Unknown) revert ItemUnknown(itemId);
        if (step == BizStep.Shipping) {
            uint256 to = _locations[e.destination];
            if (to == 0) revert ItemInvalidDestination(itemId, e.destination);
            _requireCustodian(it, itemId, merchantId);
            if (status != ItemStatus.Commissioned && status != ItemStatus.InStock) {
                revert ItemInvalidTransition(itemId, status, step);
            }
            it.status = ItemStatus.InTransit;
            it.destination = uint64(to);
        } else {
            if (e.destination != bytes32(0)) revert ItemInvalidDestination(itemId, e.destination);
            if (step == BizStep.Receiving) {
                if (status != ItemStatus.InTransit) revert ItemInvalidTransition(itemId, status, step);
                if (it.destination != merchantId) revert ItemNotShippedToYou(itemId, merchantId, it.destination);
                it.status = ItemStatus.InStock;
                it.custodian = uint64(merchantId);
                it.destination = 0;
            } else if (step == BizStep.RetailSelling) {
                _requireCustodian(it, itemId, merchantId);
                if (status != ItemStatus.Commissioned && status != ItemStatus.InStock) {
                    revert ItemInvalidTransition(itemId, status, step);
                }
                if (it.flags & ITEM_RECALLED != 0 || _batches[it.batchId].recalled) revert ItemUnderRecall(itemId);
                it.status = ItemStatus.Sold;
            } else if (step == BizStep.Returning) {
                _requireCustodian(it, itemId, merchantId);
                if (status != ItemStatus.Sold) revert ItemInvalidTransition(itemId, status, step);
                it.status = ItemStatus.InStock;
            } else if (step == BizStep.Destroying) {
                _requireCustodian(it, itemId, merchantId);
                if (status != ItemStatus.Commissioned && status != ItemStatus.InStock) {
                    revert ItemInvalidTransition(itemId, status, step);
                }
                it.status = ItemStatus.Destroyed;
            } else if (step == BizStep.Recalling) {
                // The holder's log of taking a recalled item off the shelf: no state changes.
                _requireCustodian(it, itemId, merchantId);
                if (!(it.flags & ITEM_RECALLED != 0 || _batches[it.batchId].recalled)) {
                    revert ItemInvalidTransition(itemId, status, step);
                }
                return;
            } else {
                revert ItemInvalidTransition(itemId, status, step);
            }
        }
        _items[itemId] = it;
    }

    function _emitCustody(CustodyEvent calldata e, uint256 merchantId) private {
        uint256 packed = uint256(uint8(e.bizStep)) | (uint256(e.disposition) << 8) | (uint256(e.eventTime) << 16)
            | (merchantId << 80);
        emit CustodyRecorded(e.itemId, e.location, e.eventHash, e.destination, packed);
    }

    function _requireCustodian(Item memory it, bytes32 itemId, uint256 merchantId) private pure {
        if (it.custodian != merchantId) revert ItemNotCustodian(itemId, merchantId, it.custodian);
    }

    /// @dev The merchant owning `location`, checked to be signed for by the caller (cached).
    function _merchantAt(bytes32 location, LocationCache memory cache) private view returns (uint256) {
        if (location == cache.location && location != bytes32(0)) return cache.merchantId;
        uint256 merchantId = _locations[location];
        if (merchantId == 0) revert ItemUnknownLocation(location);
        if (_activeAccount(merchantId) != msg.sender) revert ItemNotLocationOwner(location, msg.sender);
        cache.location = location;
        cache.merchantId = merchantId;
        return merchantId;
    }

    function _requireBrand(uint256 merchantId) private view {
        if (
            _activeAccount(merchantId) != msg.sender
                || !IAccessControl(address(_registry)).hasRole(Roles.BRAND_ROLE, msg.sender)
        ) revert ItemNotBrand(merchantId, msg.sender);
    }

    function _requireProductOwner(uint256 gtin) private view returns (uint256 brand) {
        brand = _products[gtin];
        if (brand == 0) revert ItemUnknownProduct(gtin);
        if (_activeAccount(brand) != msg.sender) revert ItemNotProductOwner(gtin, msg.sender);
    }

    function _requireCount(uint256 n) private pure {
        if (n == 0 || n > MAX_LIST) revert ItemInvalidCount(n);
    }

    /// @dev An OpenZeppelin standard Merkle tree leaf of `(bytes32 itemId, bytes32 secretHash)`
    /// (double hashed, so no inner node can pass as a leaf).
    function _leaf(bytes32 itemId, bytes32 secretHash) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(itemId, secretHash))));
    }

    /// @dev GTIN-14 (shorter GTINs left-padded with zeros) with a valid GS1 mod-10 check digit.
    function _validGtin(uint256 gtin) private pure returns (bool) {
        if (gtin == 0 || gtin >= GTIN_LIMIT) return false;
        uint256 check = gtin % 10;
        uint256 rest = gtin / 10;
        uint256 sum = 0;
        uint256 weight = 3;
        for (uint256 i; i < 13; ++i) {
            sum += (rest % 10) * weight;
            rest /= 10;
            weight = 4 - weight;
        }
        return (10 - (sum % 10)) % 10 == check;
    }

    function _claimDigest(address member, bytes32 itemId, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _typedDataHash(
            _domainSeparator(), keccak256(abi.encode(CLAIM_TYPEHASH, member, itemId, nonce, deadline))
        );
    }

    function _domainNameAndVersion() internal pure override returns (string memory, string memory) {
        return ("Alliance Items", "1");
    }

    function _domainSalt() internal view override returns (bytes32) {
        return bytes32(uint256(uint160(address(_registry))));
    }
}
