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
    /// @dev 12 lanes of 21 bits per word: status 3 bits | flags 3 bits | holder 15 bits.
    uint256 private constant LANES = 12;
    uint256 private constant LANE_BITS = 21;
    uint256 private constant LANE_MASK = (1 << 21) - 1;
    uint256 private constant STATUS_MASK = 7;
    uint256 private constant FLAGS_SHIFT = 3;
    uint256 private constant HOLDER_SHIFT = 6;
    uint256 private constant FLAG_BITS = 7 << 3;
    uint256 private constant MAX_HOLDER = 1 << 15;
    /// @dev Longest list one call takes: 256 custody events are ~1 Mgas, well inside a block.
    uint256 private constant MAX_LIST = 256;
    uint256 private constant GTIN_LIMIT = 1e14;
    /// @dev `CustodyRecorded.selector` as a literal, for `_recordFast`'s `log3` (checked
    /// against the selector in the constructor).
    bytes32 private constant CUSTODY_RECORDED = 0x8fb56ae10789934009b542aa0a5e139b1428ef8fb3ca41e46855fa92ddc4a153;
    bytes32 private constant CLAIM_TYPEHASH =
        keccak256("Claim(address member,bytes32 itemId,uint256 nonce,uint256 deadline)");

    /// @dev Item states: the word `batchId << 32 | index / 12` holds lane `index % 12` (see
    /// the contract's notes and `_wordOf`).
    mapping(uint256 wordKey => uint256 lanes) private _lanes;
    mapping(uint256 batchId => Batch) private _batches;
    mapping(uint256 gtin => uint256 brand) private _products;
    mapping(bytes32 location => uint256 merchantId) private _locations;
    uint256 private _batchCount;

    /// @dev What a loop over items keeps across them: the location last checked and its
    /// merchant (a run at one location asks the registry once), the destination last looked up
    /// and its merchant, the word of lanes it works on (written back when it moves on), and
    /// `saleBatch`: 1 + the batch last found not recalled by a sale (0: none). `_recordFast`
    /// reads these fields by their memory offsets (0x00 ... 0xe0): keep their order.
    struct Run {
        bytes32 location;
        uint256 merchantId;
        bytes32 destination;
        uint256 destinationMerchant;
        uint256 wordKey;
        uint256 word;
        bool loaded;
        uint256 saleBatch;
    }

    constructor(IAllianceRegistry registry_) {
        assert(CUSTODY_RECORDED == CustodyRecorded.selector);
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
        if (merchantId >= MAX_HOLDER) revert ItemMerchantOutOfRange(merchantId);
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
        Run memory cache = _newRun();
        Run memory w = _newRun();
        for (uint256 i; i < n; ++i) {
            _activateOne(w, cache, events[i], itemIds[i], secretHashes[i], proofs[i]);
        }
        _flush(w);
    }

    function _activateOne(
        Run memory w,
        Run memory cache,
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
        if (lane & STATUS_MASK != uint256(ItemStatus.Unknown)) revert ItemAlreadyActivated(key);
        if (!MerkleProof.verifyCalldata(proof, b.root, _leaf(itemId, uint32(key), secretHash))) {
            revert ItemInvalidProof(itemId, key >> 32);
        }
        // A serial recalled or flagged before its activation keeps its flags.
        _setLane(w, key, (lane & (7 << FLAGS_SHIFT)) | uint256(ItemStatus.Commissioned) | (merchantId << HOLDER_SHIFT));
        _emitCustody(e, merchantId, itemId);
    }

    /// @inheritdoc IItemRegistry
    /// @dev The hot path, kept lean on purpose: code besides the log and the calldata was
    /// ~2,800 gas per event through decoded structs and small helpers, ~1,100 with `_record`
    /// alone, ~740 with `_recordFast` taking the events after the first at a location (see
    /// the gas test). Each event's seven words are read straight from calldata and range
    /// checked here as the ABI decoder would; the word of lanes stays in `run` while the
    /// keys stay in it (one SLOAD and one SSTORE per 12 consecutive items); the log is
    /// written with `log3` past the free memory pointer (nothing allocated).
    function recordEvents(CustodyEvent[] calldata events) external {
        uint256 n = events.length;
        _requireCount(n);
        Run memory run = _newRun();
        uint256 i;
        while (i < n) {
            // The full rules take an event whenever the fast path cannot (the first of a run,
            // a new location or destination, any refusal: they name it); the fast path takes
            // the events after it for as long as it can prove them valid.
            _record(run, events[i]);
            i = _recordFast(run, events, i + 1);
        }
        if (run.loaded) _lanes[run.wordKey] = run.word;
    }

    /// @dev The fast path of `recordEvents`: from event `i` on, records each event that what
    /// `run` holds proves valid (the same location, its merchant already checked; a shipment
    /// to the destination already looked up; a sale in a batch already found not recalled) and
    /// stops at the first it cannot prove, which `_record` then takes with the full rules.
    /// Every case it accepts is a case `_next` accepts with the same new lane (see the tests
    /// of each rule, which go through both paths); it never refuses, so every refusal keeps
    /// its named error. Per event: seven calldata words, the lane in the cached word (one
    /// SLOAD and one SSTORE per 12 consecutive items, as in `_record`), the log. Returns the
    /// index of the first event not taken.
    function _recordFast(Run memory run, CustodyEvent[] calldata events, uint256 i) private returns (uint256) {
        assembly ("memory-safe") {
            // run.location: zero until `_record` checked one (so nothing is taken before it).
            if mload(run) {
                let wk := not(0) // no word loaded (no word key has its low 32 bits all set)
                if mload(add(run, 0xc0)) { wk := mload(add(run, 0x80)) }
                let word := mload(add(run, 0xa0))
                for {} lt(i, events.length) { i := add(i, 1) } {
                    let e := add(events.offset, mul(i, 0xe0))
                    // The same location as checked; disposition and eventTime in range.
                    if iszero(eq(calldataload(add(e, 0x40)), mload(run))) { break }
                    if or(gt(calldataload(add(e, 0xa0)), 0xff), gt(calldataload(add(e, 0xc0)), 0xffffffffffffffff)) {
                        break
                    }
                    let key := calldataload(e)
                    let shift := and(key, 0xffffffff) // the index, then its lane's offset
                    {
                        let k := or(shl(32, shr(32, key)), div(shift, 12))
                        if iszero(eq(k, wk)) {
                            mstore(0x20, _lanes.slot)
                            if iszero(eq(wk, not(0))) {
                                mstore(0, wk)
                                sstore(keccak256(0, 0x40), word)
                            }
                            wk := k
                            mstore(0, k)
                            word := sload(keccak256(0, 0x40))
                        }
                    }
                    shift := mul(mod(shift, 12), 21)
                    let lane := and(shr(shift, word), 0x1fffff)
                    let next := 0 // 0: not proven here
                    // The item's custodian is the merchant of the location (holder field).
                    if eq(shr(6, lane), mload(add(run, 0x20))) {
                        switch calldataload(add(e, 0x80))
                        case 1 {
                            // Shipping a Commissioned (1) or InStock (3) item to the destination
                            // `_next` last looked up (registered: its merchant is not zero).
                            if and(
                                or(eq(and(lane, 7), 1), eq(and(lane, 7), 3)),
                                and(eq(calldataload(add(e, 0x60)), mload(add(run, 0x40))), gt(mload(add(run, 0x60)), 0))
                            ) { next := or(or(and(lane, 0x38), 2), shl(6, mload(add(run, 0x60)))) }
                        }
                        case 2 {
                            // Receiving what was shipped to this merchant (InTransit, 2).
                            if and(eq(and(lane, 7), 2), iszero(calldataload(add(e, 0x60)))) {
                                next := or(and(lane, not(7)), 3)
                            }
                        }
                        case 3 {
                            // Retail selling a stockable item, not recalled itself (flag 8)
                            // and of the batch `_next` last found not recalled.
                            if and(
                                and(or(eq(and(lane, 7), 1), eq(and(lane, 7), 3)), iszero(calldataload(add(e, 0x60)))),
                                and(iszero(and(lane, 8)), eq(mload(add(run, 0xe0)), add(shr(32, key), 1)))
                            ) { next := or(and(lane, not(7)), 4) }
                        }
                        case 4 {
                            // Returning a sold (4) item to its seller.
                            if and(eq(and(lane, 7), 4), iszero(calldataload(add(e, 0x60)))) {
                                next := or(and(lane, not(7)), 3)
                            }
                        }
                        case 6 {
                            // Destroying a stockable item.
                            if and(or(eq(and(lane, 7), 1), eq(and(lane, 7), 3)), iszero(calldataload(add(e, 0x60)))) {
                                next := or(and(lane, not(7)), 5)
                            }
                        }
                    }
                    if iszero(next) { break }
                    // Clears the lane (xor with its own bits), then sets the new one.
                    word := or(xor(word, shl(shift, lane)), shl(shift, next))
                    let p := mload(0x40)
                    mstore(p, calldataload(add(e, 0x20))) // eventHash
                    mstore(add(p, 0x20), calldataload(add(e, 0x60))) // ref: the destination
                    mstore(
                        add(p, 0x40),
                        or(
                            or(calldataload(add(e, 0x80)), shl(8, calldataload(add(e, 0xa0)))),
                            or(shl(16, calldataload(add(e, 0xc0))), shl(80, mload(add(run, 0x20))))
                        )
                    )
                    log3(p, 0x60, CUSTODY_RECORDED, key, mload(run))
                }
                if iszero(eq(wk, not(0))) {
                    mstore(add(run, 0x80), wk)
                    mstore(add(run, 0xa0), word)
                    mstore(add(run, 0xc0), 1)
                }
            }
        }
        return i;
    }

    function _record(Run memory run, CustodyEvent calldata e) private {
        uint256 key;
        bytes32 location;
        uint256 packed;
        bool bad;
        assembly ("memory-safe") {
            key := calldataload(e)
            location := calldataload(add(e, 0x40))
            let step := calldataload(add(e, 0x80))
            let disposition := calldataload(add(e, 0xa0))
            let eventTime := calldataload(add(e, 0xc0))
            bad := or(gt(step, 6), or(gt(disposition, 0xff), gt(eventTime, 0xffffffffffffffff)))
            packed := or(step, or(shl(8, disposition), shl(16, eventTime)))
        }
        if (bad) revert ItemInvalidEvent(key);
        uint256 merchantId =
            (location == run.location && location != bytes32(0)) ? run.merchantId : _merchantAt(location, run);
        uint256 shift;
        {
            uint256 wordKey;
            unchecked {
                uint256 index = key & 0xFFFFFFFF;
                wordKey = ((key >> 32) << 32) | (index / LANES);
                shift = (index % LANES) * LANE_BITS;
            }
            if (wordKey != run.wordKey || !run.loaded) {
                if (run.loaded) _lanes[run.wordKey] = run.word;
                run.wordKey = wordKey;
                run.word = _lanes[wordKey];
                run.loaded = true;
            }
        }
        uint256 word = run.word;
        run.word = (word & ~(LANE_MASK << shift))
            | (_next(run, key, (word >> shift) & LANE_MASK, packed & 0xFF, merchantId, e.destination) << shift);
        packed |= merchantId << 80;
        bytes32 topic = CustodyRecorded.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, calldataload(add(e, 0x20))) // eventHash
            mstore(add(p, 0x20), calldataload(add(e, 0x60))) // ref: the destination
            mstore(add(p, 0x40), packed)
            log3(p, 0x60, topic, key, location)
        }
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
        Run memory w = _newRun();
        uint256 checkedBrand = 0;
        for (uint256 i; i < items.length; ++i) {
            uint256 key = items[i];
            Batch storage b = _knownItem(key);
            uint256 brand = b.brand;
            if (brand != checkedBrand) {
                if (_activeAccount(brand) != msg.sender) revert ItemNotProductOwner(b.gtin, msg.sender);
                checkedBrand = brand;
            }
            _setLane(w, key, _lane(w, key) | (ITEM_RECALLED << FLAGS_SHIFT));
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
        Run memory w = _newRun();
        uint256 lane = _claimable(w, key, itemId, secret, proof);
        _requireDeadline(deadline);
        _requireSignedBy(member, _claimDigest(member, itemId, nonce, deadline), signature);
        _useNonce(member, nonce);
        _setLane(w, key, lane | (ITEM_CLAIMED << FLAGS_SHIFT));
        _flush(w);
        emit ItemClaimed(itemId, member);
    }

    /// @dev The lane of a sold, unclaimed item whose label secret the proof binds to `itemId`.
    function _claimable(Run memory w, uint256 key, bytes32 itemId, bytes32 secret, bytes32[] calldata proof)
        private
        returns (uint256 lane)
    {
        lane = _lane(w, key);
        ItemStatus status = ItemStatus(lane & STATUS_MASK);
        if (status != ItemStatus.Sold) revert ItemNotSold(key, status);
        if ((lane >> FLAGS_SHIFT) & ITEM_CLAIMED != 0) revert ItemAlreadyClaimed(key);
        bytes32 leaf = _leaf(itemId, uint32(key), keccak256(abi.encode(secret)));
        if (!MerkleProof.verifyCalldata(proof, _batches[key >> 32].root, leaf)) {
            revert ItemInvalidProof(itemId, key >> 32);
        }
    }

    /// @inheritdoc IItemRegistry
    function flag(uint256 key, uint256 reason) external {
        Batch storage b = _knownItem(key);
        if (!_isOperator(msg.sender) && _activeAccount(b.brand) != msg.sender) revert ItemNotFlagger(msg.sender);
        Run memory w = _newRun();
        _setLane(w, key, _lane(w, key) | (ITEM_FLAGGED << FLAGS_SHIFT));
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
        uint256 lane = _storedLane(key);
        return Item({
            status: ItemStatus(lane & STATUS_MASK),
            flags: uint8((lane >> FLAGS_SHIFT) & 7),
            holder: uint32(lane >> HOLDER_SHIFT)
        });
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
        return _recalled(_storedLane(key), key);
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    /// @dev The rules of one custody event (`step`) by `merchantId` on the item's `lane`: the
    /// new lane, or the named refusal.
    function _next(Run memory run, uint256 key, uint256 lane, uint256 step, uint256 merchantId, bytes32 destination)
        private
        view
        returns (uint256)
    {
        uint256 status = lane & STATUS_MASK;
        uint256 holder = lane >> HOLDER_SHIFT;
        if (status == uint256(ItemStatus.Unknown)) revert ItemUnknown(key);
        bool stockable = status == uint256(ItemStatus.Commissioned) || status == uint256(ItemStatus.InStock);
        if (step == uint256(BizStep.Shipping)) {
            if (destination != run.destination || destination == bytes32(0)) {
                run.destination = destination;
                run.destinationMerchant = _locations[destination];
            }
            uint256 to = run.destinationMerchant;
            if (to == 0) revert ItemInvalidDestination(key, destination);
            if (!stockable) revert ItemInvalidTransition(key, ItemStatus(status), BizStep.Shipping);
            if (holder != merchantId) revert ItemNotCustodian(key, merchantId, holder);
            // In transit the lane's holder is the merchant it was shipped to.
            return (lane & FLAG_BITS) | uint256(ItemStatus.InTransit) | (to << HOLDER_SHIFT);
        }
        if (destination != bytes32(0)) revert ItemInvalidDestination(key, destination);
        uint256 next = 0;
        if (step == uint256(BizStep.Receiving)) {
            if (status != uint256(ItemStatus.InTransit)) {
                revert ItemInvalidTransition(key, ItemStatus(status), BizStep.Receiving);
            }
            if (holder != merchantId) revert ItemNotShippedToYou(key, merchantId, holder);
            return (lane & ~STATUS_MASK) | uint256(ItemStatus.InStock);
        }
        // The step must fit the status first (a sale of an item in transit is out of order,
        // whoever asks), then only its holder records it.
        if (step == uint256(BizStep.RetailSelling) || step == uint256(BizStep.Destroying)) {
            if (!stockable) revert ItemInvalidTransition(key, ItemStatus(status), BizStep(step));
            next = step == uint256(BizStep.RetailSelling) ? uint256(ItemStatus.Sold) : uint256(ItemStatus.Destroyed);
        } else if (step == uint256(BizStep.Returning)) {
            if (status != uint256(ItemStatus.Sold)) {
                revert ItemInvalidTransition(key, ItemStatus(status), BizStep.Returning);
            }
            next = uint256(ItemStatus.InStock);
        } else if (step != uint256(BizStep.Recalling)) {
            revert ItemInvalidTransition(key, ItemStatus(status), BizStep(step));
        }
        if (holder != merchantId) revert ItemNotCustodian(key, merchantId, holder);
        if (step == uint256(BizStep.Recalling)) {
            // The holder's log of taking a recalled item off the shelf: no state changes.
            if (!_recalled(lane, key)) revert ItemInvalidTransition(key, ItemStatus(status), BizStep.Recalling);
            return lane;
        }
        if (step == uint256(BizStep.RetailSelling)) {
            if (_recalled(lane, key)) revert ItemUnderRecall(key);
            run.saleBatch = (key >> 32) + 1; // its batch is not recalled (`_recordFast`)
        }
        return (lane & ~STATUS_MASK) | next;
    }

    /// @dev A fresh loop state: nothing cached, no word loaded.
    function _newRun() private pure returns (Run memory) {
        return Run({
            location: bytes32(0),
            merchantId: 0,
            destination: bytes32(0),
            destinationMerchant: 0,
            wordKey: 0,
            word: 0,
            loaded: false,
            saleBatch: 0
        });
    }

    /// @dev Whether the item of `lane` is recalled, itself or with its whole batch.
    function _recalled(uint256 lane, uint256 key) private view returns (bool) {
        return (lane >> FLAGS_SHIFT) & ITEM_RECALLED != 0 || _batches[key >> 32].recalled;
    }

    /// @dev The item's 32-bit lane, through the loop's word cache (an earlier word written back).
    function _lane(Run memory w, uint256 key) private returns (uint256) {
        (uint256 wordKey, uint256 shift) = _wordOf(key);
        if (!w.loaded || w.wordKey != wordKey) {
            _flush(w);
            w.wordKey = wordKey;
            w.word = _lanes[wordKey];
            w.loaded = true;
        }
        return (w.word >> shift) & LANE_MASK;
    }

    /// @dev Sets the item's lane in the cached word (`_lane` of the same key was read before).
    function _setLane(Run memory w, uint256 key, uint256 lane) private pure {
        (, uint256 shift) = _wordOf(key);
        w.word = (w.word & ~(LANE_MASK << shift)) | (lane << shift);
    }

    /// @dev The word holding the item of `key`, and its lane's offset in it.
    function _wordOf(uint256 key) private pure returns (uint256 wordKey, uint256 shift) {
        unchecked {
            uint256 index = key & 0xFFFFFFFF;
            wordKey = ((key >> 32) << 32) | (index / LANES);
            shift = (index % LANES) * LANE_BITS;
        }
    }

    /// @dev The item's lane as stored (views).
    function _storedLane(uint256 key) private view returns (uint256) {
        (uint256 wordKey, uint256 shift) = _wordOf(key);
        return (_lanes[wordKey] >> shift) & LANE_MASK;
    }

    /// @dev Writes the cached word back (a word left as it was costs a warm no-op store).
    function _flush(Run memory w) private {
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
    function _merchantAt(bytes32 location, Run memory cache) private view returns (uint256) {
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
