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
/// brand, count and recall flag packed). An item is addressed by its key `batchId << 32 |
/// index` and its whole state is one 32-bit lane (status 4 bits | flags 4 bits | holder 24
/// bits) of a word shared by the 8 consecutive items of its batch, so the items of a pallet
/// share their slots: a run of events over consecutive items reads and writes each word once
/// (the loop keeps the word in memory while the key stays in it). Every custody event is that
/// plus one LOG3 with three data words. The location check asks the alliance registry once per
/// run of events at the same location.
contract ItemRegistry is IItemRegistry, MerchantGated, SignedActions {
    uint256 private constant ITEM_RECALLED = 1;
    uint256 private constant ITEM_CLAIMED = 2;
    uint256 private constant ITEM_FLAGGED = 4;
    uint256 private constant LANES_SHIFT = 3; // 8 lanes of 32 bits per word
    uint256 private constant LANE_MASK = 0xFFFFFFFF;
    uint256 private constant MAX_HOLDER = 1 << 24;
    /// @dev Longest list one call takes: 256 custody events are ~1 Mgas, well inside a block.
    uint256 private constant MAX_LIST = 256;
    uint256 private constant GTIN_LIMIT = 1e14;
    bytes32 private constant CLAIM_TYPEHASH =
        keccak256("Claim(address member,bytes32 itemId,uint256 nonce,uint256 deadline)");

    /// @dev Item states: word `key >> 3` holds lanes `key & 7` (see the contract's notes).
    mapping(uint256 wordKey => uint256 lanes) private _lanes;
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

    /// @dev The lane word a loop works on, written back when the loop moves to another word.
    struct WordCache {
        uint256 wordKey;
        uint256 word;
        bool loaded;
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
    function itemKey(uint256 batchId, uint256 index) public pure returns (uint256) {
        return (batchId << 32) | index;
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
        if (merchantId >= MAX_HOLDER) revert ItemNotBrand(merchantId, msg.sender);
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
        bytes32[] calldata itemIds,
        bytes32[] calldata secretHashes,
        bytes32[][] calldata proofs
    ) external {
        uint256 n = events.length;
        _requireCount(n);
        if (itemIds.length != n || secretHashes.length != n || proofs.length != n) revert ItemInvalidCount(n);
        LocationCache memory cache = LocationCache({location: bytes32(0), merchantId: 0});
        WordCache memory w;
        for (uint256 i; i < n; ++i) {
            _activateOne(w, cache, events[i], itemIds[i], secretHashes[i], proofs[i]);
        }
        _flush(w);
    }

    function _activateOne(
        WordCache memory w,
        LocationCache memory cache,
        CustodyEvent calldata e,
        bytes32 itemId,
        bytes32 secretHash,
        bytes32[] calldata proof
    ) private {
        uint256 key = e.item;
        if (e.bizStep != BizStep.Commissioning) revert ItemInvalidTransition(key, ItemStatus.Unknown, e.bizStep);
        if (e.destination != bytes32(0)) revert ItemInvalidDestination(key, e.destination);
        uint256 merchantId = _merchantAt(e.location, cache);
        Batch storage b = _knownItem(key);
        if (uint256(b.gtin) != uint256(itemId) >> 160) revert ItemBatchMismatch(key >> 32, itemId);
        if (uint256(b.brand) != merchantId) revert ItemNotProductOwner(b.gtin, msg.sender);
        uint256 lane = _lane(w, key);
        if (lane & 0xF != uint256(ItemStatus.Unknown)) revert ItemAlreadyActivated(key);
        if (!MerkleProof.verifyCalldata(proof, b.root, _leaf(itemId, uint32(key), secretHash))) {
            revert ItemInvalidProof(itemId, key >> 32);
        }
        // A serial recalled or flagged before its activation keeps its flags.
        _setLane(w, key, (lane & 0xF0) | uint256(ItemStatus.Commissioned) | (merchantId << 8));
        _emitCustody(e, merchantId, itemId);
    }

    /// @inheritdoc IItemRegistry
    function recordEvents(CustodyEvent[] calldata events) external {
        uint256 n = events.length;
        _requireCount(n);
        LocationCache memory cache = LocationCache({location: bytes32(0), merchantId: 0});
        WordCache memory w;
        for (uint256 i; i < n; ++i) {
            CustodyEvent calldata e = events[i];
            uint256 merchantId = _merchantAt(e.location, cache);
            _apply(w, e, merchantId);
            _emitCustody(e, merchantId, e.destination);
        }
        _flush(w);
    }

    /// @inheritdoc IItemRegistry
    function recall(uint256[] calldata batchIds, uint256[] calldata items, bytes32 eventHash) external {
        _requireCount(batchIds.length + items.length);
        for (uint256 i; i < batchIds.length; ++i) {
            uint256 batchId = batchIds[i];
            Batch storage b = _batches[batchId];
            if (b.root == bytes32(0)) revert ItemUnknownBatch(batchId);
            if (_activeAccount(b.brand) != msg.sender) revert ItemNotProductOwner(b.gtin, msg.sender);
            b.recalled = true;
            emit BatchRecalled(batchId, eventHash);
        }
        WordCache memory w;
        uint256 checkedBrand;
        for (uint256 i; i < items.length; ++i) {
            uint256 key = items[i];
            Batch storage b = _knownItem(key);
            uint256 brand = b.brand;
            if (brand != checkedBrand) {
                if (_activeAccount(brand) != msg.sender) revert ItemNotProductOwner(b.gtin, msg.sender);
                checkedBrand = brand;
            }
            _setLane(w, key, _lane(w, key) | (ITEM_RECALLED << 4));
            emit ItemRecalled(key, eventHash);
        }
        _flush(w);
    }

    // ------------------------------------------------------------------
    // Claims and flags
    // ------------------------------------------------------------------

    /// @inheritdoc IItemRegistry
    function claim(
        uint256 key,
        bytes32 itemId,
        bytes32 secret,
        bytes32[] calldata proof,
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        WordCache memory w;
        uint256 lane = _claimable(w, key, itemId, secret, proof);
        _requireDeadline(deadline);
        _requireSignedBy(member, _claimDigest(member, itemId, nonce, deadline), signature);
        _useNonce(member, nonce);
        _setLane(w, key, lane | (ITEM_CLAIMED << 4));
        _flush(w);
        emit ItemClaimed(itemId, member);
    }

    /// @dev The lane of a sold, unclaimed item whose label secret the proof binds to `itemId`.
    function _claimable(WordCache memory w, uint256 key, bytes32 itemId, bytes32 secret, bytes32[] calldata proof)
        private
        returns (uint256 lane)
    {
        lane = _lane(w, key);
        ItemStatus status = ItemStatus(lane & 0xF);
        if (status != ItemStatus.Sold) revert ItemNotSold(key, status);
        if ((lane >> 4) & ITEM_CLAIMED != 0) revert ItemAlreadyClaimed(key);
        bytes32 leaf = _leaf(itemId, uint32(key), keccak256(abi.encode(secret)));
        if (!MerkleProof.verifyCalldata(proof, _batches[key >> 32].root, leaf)) {
            revert ItemInvalidProof(itemId, key >> 32);
        }
    }

    /// @inheritdoc IItemRegistry
    function flag(uint256 key, uint256 reason) external {
        Batch storage b = _knownItem(key);
        if (!_isOperator(msg.sender) && _activeAccount(b.brand) != msg.sender) revert ItemNotFlagger(msg.sender);
        WordCache memory w;
        _setLane(w, key, _lane(w, key) | (ITEM_FLAGGED << 4));
        _flush(w);
        emit ItemFlagged(key, reason);
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
    function item(uint256 key) external view returns (Item memory) {
        uint256 lane = (_lanes[key >> LANES_SHIFT] >> ((key & 7) * 32)) & LANE_MASK;
        return Item({status: ItemStatus(lane & 0xF), flags: uint8(lane >> 4 & 0xF), holder: uint32(lane >> 8)});
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
    function isRecalled(uint256 key) public view returns (bool) {
        return _recalled((_lanes[key >> LANES_SHIFT] >> ((key & 7) * 32)) & LANE_MASK, key);
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    /// @dev The rules of one custody event by `merchantId`, applied to the item's lane.
    function _apply(WordCache memory w, CustodyEvent calldata e, uint256 merchantId) private {
        uint256 key = e.item;
        uint256 lane = _lane(w, key);
        ItemStatus status = ItemStatus(lane & 0xF);
        uint256 holder = lane >> 8;
        BizStep step = e.bizStep;
        if (status == ItemStatus.Unknown) revert ItemUnknown(key);
        ItemStatus next;
        if (step == BizStep.Shipping) {
            uint256 to = _locations[e.destination];
            if (to == 0) revert ItemInvalidDestination(key, e.destination);
            if (status != ItemStatus.Commissioned && status != ItemStatus.InStock) {
                revert ItemInvalidTransition(key, status, step);
            }
            if (holder != merchantId) revert ItemNotCustodian(key, merchantId, holder);
            // In transit the lane's holder is the merchant it was shipped to.
            _setLane(w, key, (lane & 0xF0) | uint256(ItemStatus.InTransit) | (to << 8));
            return;
        }
        if (e.destination != bytes32(0)) revert ItemInvalidDestination(key, e.destination);
        if (step == BizStep.Receiving) {
            if (status != ItemStatus.InTransit) revert ItemInvalidTransition(key, status, step);
            if (holder != merchantId) revert ItemNotShippedToYou(key, merchantId, holder);
            next = ItemStatus.InStock;
        } else {
            // The step must fit the status first (a sale of an item in transit is out of
            // order, whoever asks), then only its holder records it.
            if (step == BizStep.RetailSelling || step == BizStep.Destroying) {
                if (status != ItemStatus.Commissioned && status != ItemStatus.InStock) {
                    revert ItemInvalidTransition(key, status, step);
                }
                next = step == BizStep.RetailSelling ? ItemStatus.Sold : ItemStatus.Destroyed;
            } else if (step == BizStep.Returning) {
                if (status != ItemStatus.Sold) revert ItemInvalidTransition(key, status, step);
                next = ItemStatus.InStock;
            } else if (step != BizStep.Recalling) {
                revert ItemInvalidTransition(key, status, step);
            }
            if (holder != merchantId) revert ItemNotCustodian(key, merchantId, holder);
            if (step == BizStep.Recalling) {
                // The holder's log of taking a recalled item off the shelf: no state changes.
                if (!_recalled(lane, key)) revert ItemInvalidTransition(key, status, step);
                return;
            }
            if (step == BizStep.RetailSelling && _recalled(lane, key)) revert ItemUnderRecall(key);
        }
        _setLane(w, key, (lane & ~uint256(0xF)) | uint256(next));
    }

    /// @dev Whether the item of `lane` is recalled, itself or with its whole batch.
    function _recalled(uint256 lane, uint256 key) private view returns (bool) {
        return (lane >> 4) & ITEM_RECALLED != 0 || _batches[key >> 32].recalled;
    }

    /// @dev The item's 32-bit lane, through the loop's word cache (an earlier word written back).
    function _lane(WordCache memory w, uint256 key) private returns (uint256) {
        uint256 wordKey = key >> LANES_SHIFT;
        if (!w.loaded || w.wordKey != wordKey) {
            _flush(w);
            w.wordKey = wordKey;
            w.word = _lanes[wordKey];
            w.loaded = true;
        }
        return (w.word >> ((key & 7) * 32)) & LANE_MASK;
    }

    /// @dev Sets the item's lane in the cached word (`_lane` of the same key was read before).
    function _setLane(WordCache memory w, uint256 key, uint256 lane) private pure {
        uint256 shift = (key & 7) * 32;
        w.word = (w.word & ~(LANE_MASK << shift)) | (lane << shift);
    }

    /// @dev Writes the cached word back (a word left as it was costs a warm no-op store).
    function _flush(WordCache memory w) private {
        if (w.loaded) _lanes[w.wordKey] = w.word;
    }

    /// @dev The batch of an item key, which must exist and hold the index.
    function _knownItem(uint256 key) private view returns (Batch storage b) {
        uint256 batchId = key >> 32;
        b = _batches[batchId];
        if (b.root == bytes32(0)) revert ItemUnknownBatch(batchId);
        if (uint32(key) >= b.count || key >> 96 != 0) revert ItemUnknown(key);
    }

    function _emitCustody(CustodyEvent calldata e, uint256 merchantId, bytes32 ref) private {
        uint256 packed = uint256(uint8(e.bizStep)) | (uint256(e.disposition) << 8) | (uint256(e.eventTime) << 16)
            | (merchantId << 80);
        emit CustodyRecorded(e.item, e.location, e.eventHash, ref, packed);
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

    /// @dev An OpenZeppelin standard Merkle tree leaf of `(bytes32 itemId, uint256 index,
    /// bytes32 secretHash)` (double hashed, so no inner node can pass as a leaf): the proof binds
    /// the item id to its key in the batch.
    function _leaf(bytes32 itemId, uint256 index, bytes32 secretHash) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(itemId, index, secretHash))));
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
