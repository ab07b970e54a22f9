// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title The alliance's register of serial-coded items ("one item, one code").
/// @notice A brand (a merchant whose account holds the registry's BRAND_ROLE) registers its
/// products (GTIN, check digit validated) and whole production batches as one Merkle root of
/// an OpenZeppelin standard Merkle tree whose leaves are `(bytes32 itemId, bytes32 secretHash)`:
/// `itemId` packs the GTIN and the serial (see `itemIdOf`), `secretHash` is
/// `keccak256(secret)` of the random secret printed only on the physical label, `index` the
/// serial's position in its batch. On chain an item is addressed by its key `batchId << 32 |
/// index` (see `itemKey`); its activation (commissioning, with its proof) binds the item id to
/// the key and logs the id. A serial appears on chain individually only when something happens
/// to it, and its state is a 32-bit lane of a word shared by 8 consecutive items of its batch,
/// so a custody event is a log plus a share of one slot's update.
///
/// Custody events speak EPCIS 2.0 (CBV) bizSteps and carry the event's EPCIS hash ID (CBV 2.0
/// canonical event hash), so any EPCIS repository can match its document to the chain. Rules
/// enforced here: only active alliance merchants record events, each at its own locations; no
/// selling a recalled, destroyed or already sold item; no receiving what was not shipped to
/// you. A claim links a sold item to a wallet address (never a person), once.
interface IItemRegistry {
    /// @notice CBV 2.0 business steps the rules know (values fixed: the service encodes them).
    enum BizStep {
        Commissioning,
        Shipping,
        Receiving,
        RetailSelling,
        Returning,
        Recalling,
        Destroying
    }

    /// @notice Where an item stands, as far as the rules need.
    enum ItemStatus {
        Unknown,
        Commissioned,
        InTransit,
        InStock,
        Sold,
        Destroyed
    }

    /// @notice One custody event as recorded by a merchant. `item` is the item's key (`itemKey`);
    /// `disposition` the service's code of the CBV disposition (informational); `eventTime`
    /// unix seconds; `destination` the location shipped to (shipping only, else zero);
    /// `eventHash` the EPCIS event hash.
    struct CustodyEvent {
        uint256 item;
        bytes32 eventHash;
        bytes32 location;
        bytes32 destination;
        BizStep bizStep;
        uint8 disposition;
        uint64 eventTime;
    }

    /// @notice An item's state (a 21-bit lane of a word shared by 12 consecutive items of its
    /// batch: status 3 bits, flags 3 bits, holder 15 bits).
    /// @param status where it stands
    /// @param flags ITEM_RECALLED (1) | ITEM_CLAIMED (2) | ITEM_FLAGGED (4) bits
    /// @param holder merchant holding it (the seller once sold; while in transit, the merchant
    /// it was shipped to, the only one who may act on it next)
    struct Item {
        ItemStatus status;
        uint8 flags;
        uint32 holder;
    }

    /// @notice A production batch: one Merkle root for `count` serials of one GTIN.
    struct Batch {
        bytes32 root;
        uint64 gtin;
        uint64 brand;
        uint32 count;
        bool recalled;
    }

    /// @dev The GTIN is not 14 digits (GTIN-8/12/13 left-padded) with a valid check digit.
    error ItemInvalidGtin(uint256 gtin);
    /// @dev The GTIN is already registered (to `brand`).
    error ItemProductTaken(uint256 gtin, uint256 brand);
    /// @dev No brand registered this GTIN.
    error ItemUnknownProduct(uint256 gtin);
    /// @dev The caller is not the active account of `merchantId`, or the merchant is no brand.
    error ItemNotBrand(uint256 merchantId, address caller);
    /// @dev The caller does not sign for `brand`, the owner of the product.
    error ItemNotProductOwner(uint256 gtin, address caller);
    /// @dev A batch needs a non-zero root and 1 <= count <= 2^32 - 1.
    error ItemInvalidBatch(bytes32 root, uint256 count);
    /// @dev No such batch.
    error ItemUnknownBatch(uint256 batchId);
    /// @dev The batch is of another GTIN than the item.
    error ItemBatchMismatch(uint256 batchId, bytes32 itemId);
    /// @dev The Merkle proof does not prove `(itemId, secretHash)` in the batch's root.
    error ItemInvalidProof(bytes32 itemId, uint256 batchId);
    /// @dev The item was activated before.
    error ItemAlreadyActivated(uint256 item);
    /// @dev The item was never activated (no event happened to it yet), or its key names no
    /// serial of a batch.
    error ItemUnknown(uint256 item);
    /// @dev The location belongs to another merchant.
    error ItemLocationTaken(bytes32 location, uint256 owner);
    /// @dev The location is not registered.
    error ItemUnknownLocation(bytes32 location);
    /// @dev The caller does not sign for the merchant owning `location`.
    error ItemNotLocationOwner(bytes32 location, address caller);
    /// @dev The merchant recording is not the item's custodian.
    error ItemNotCustodian(uint256 item, uint256 merchantId, uint256 holder);
    /// @dev This business step cannot follow the item's current status.
    error ItemInvalidTransition(uint256 item, ItemStatus status, BizStep bizStep);
    /// @dev A recalled item cannot be sold.
    error ItemUnderRecall(uint256 item);
    /// @dev Receiving at a merchant the item was not shipped to.
    error ItemNotShippedToYou(uint256 item, uint256 merchantId, uint256 destination);
    /// @dev A shipping event needs a registered destination; other steps must not name one.
    error ItemInvalidDestination(uint256 item, bytes32 destination);
    /// @dev The item was claimed before.
    error ItemAlreadyClaimed(uint256 item);
    /// @dev Only a sold item can be claimed.
    error ItemNotSold(uint256 item, ItemStatus status);
    /// @dev Only the operator or the item's brand may flag it.
    error ItemNotFlagger(address caller);
    /// @dev A merchant id that does not fit an item's 15-bit holder field (>= 32,768) cannot
    /// register locations here.
    error ItemMerchantOutOfRange(uint256 merchantId);
    /// @dev A custody event's bizStep, disposition or eventTime is out of its type's range.
    error ItemInvalidEvent(uint256 item);
    /// @dev An empty list, or one longer than the batch bound.
    error ItemInvalidCount(uint256 count);

    event ProductRegistered(uint256 indexed gtin, uint256 indexed brand);
    event LocationRegistered(bytes32 indexed location, uint256 indexed merchantId);
    event BatchRegistered(uint256 indexed batchId, uint256 indexed gtin, bytes32 root, uint256 count);
    /// @notice A custody event of the item with key `item`. `packed` = bizStep | disposition <<
    /// 8 | eventTime << 16 | merchantId << 80 (one word instead of four). `ref`: shipping, the
    /// destination location; commissioning, the item id its proof bound to the key; else zero.
    event CustodyRecorded(
        uint256 indexed item, bytes32 indexed location, bytes32 eventHash, bytes32 ref, uint256 packed
    );
    event BatchRecalled(uint256 indexed batchId, bytes32 eventHash);
    event ItemRecalled(uint256 indexed item, bytes32 eventHash);
    event ItemClaimed(bytes32 indexed itemId, address indexed member);
    event ItemFlagged(uint256 indexed item, uint256 reason);

    /// @notice `itemId` of (gtin, serial): `gtin << 160 | serial`, the serial (GS1 AI 21, at
    /// most 20 characters) as ASCII left-aligned in 20 bytes, zero-padded. Reversible; no hash.
    function itemIdOf(uint256 gtin, bytes20 serial) external pure returns (bytes32);

    /// @notice The key of the serial at `index` of batch `batchId`: `batchId << 32 | index`.
    function itemKey(uint256 batchId, uint256 index) external pure returns (uint256);

    /// @notice Registers product `gtin` to brand `merchantId`.
    /// Requirements: caller is the active account of `merchantId` and holds BRAND_ROLE; `gtin`
    /// is a valid GTIN-14; not registered before.
    function registerProduct(uint256 merchantId, uint256 gtin) external;

    /// @notice Registers locations (e.g. keccak256 of a GLN or a store id) of `merchantId`.
    /// Requirements: caller is the active account of `merchantId`; merchantId < 32,768 (an
    /// item's holder field); each location is new or already its own; 1 <= length <= 256.
    function registerLocations(uint256 merchantId, bytes32[] calldata locations) external;

    /// @notice Registers a production batch of `count` serials of `gtin` as one Merkle root.
    /// Requirements: caller signs for the product's brand (active, BRAND_ROLE); root non-zero;
    /// 1 <= count < 2^32. A single serial is a batch of one (root = its leaf, empty proof).
    function registerBatch(uint256 gtin, bytes32 root, uint256 count) external returns (uint256 batchId);

    /// @notice Activates (commissions) items with their proofs at a location of the brand.
    /// Requirements: caller signs for the brand owning each item's batch and for the merchant
    /// of each event's location; each proof proves `(itemIds[i], index, secretHashes[i])` in
    /// the root of the batch of `events[i].item`; each item new; `events[i].bizStep` is
    /// Commissioning; 1 <= length <= 256.
    function activate(
        CustodyEvent[] calldata events,
        bytes32[] calldata itemIds,
        bytes32[] calldata secretHashes,
        bytes32[][] calldata proofs
    ) external;

    /// @notice Records custody events (shipping, receiving, retail selling, returning,
    /// destroying, recalling as a log of a holder), each by the merchant of its location.
    /// Requirements: caller signs (active) for each event's location's merchant, who is the
    /// item's custodian (receiving: its destination); the step may follow the item's status;
    /// no selling a recalled item; 1 <= length <= 256. All or nothing.
    function recordEvents(CustodyEvent[] calldata events) external;

    /// @notice Recalls whole batches and single items of the caller's brand, in one transaction.
    /// Requirements: caller signs for the brand owning each batch / item's batch; each item key
    /// names a serial of a known batch; 1 <= batches + items <= 256.
    function recall(uint256[] calldata batchIds, uint256[] calldata items, bytes32 eventHash) external;

    /// @notice Claims a sold item for `member`, who signed EIP-712
    /// `Claim(address member,bytes32 itemId,uint256 nonce,uint256 deadline)` in this contract's
    /// domain ("Alliance Items", "1", salt = the alliance registry); `secret` is the label's.
    /// Requirements: item `key` sold, not claimed; `proof` proves `(itemId, index,
    /// keccak256(secret))` in its batch; signature valid; nonce unused; now <= deadline <= now +
    /// 7 days.
    function claim(
        uint256 key,
        bytes32 itemId,
        bytes32 secret,
        bytes32[] calldata proof,
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Flags a suspected clone (`reason`: the service's code).
    /// Requirements: caller has OPERATOR_ROLE or signs for the item's brand; the key names a
    /// serial of a known batch.
    function flag(uint256 key, uint256 reason) external;

    /// @notice The EIP-712 digest a member signs to claim.
    function claimDigest(address member, bytes32 itemId, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32);

    function item(uint256 key) external view returns (Item memory);
    function batch(uint256 batchId) external view returns (Batch memory);
    function productBrand(uint256 gtin) external view returns (uint256);
    function locationOwner(bytes32 location) external view returns (uint256);
    /// @notice Whether the item is recalled (itself, or its whole batch).
    function isRecalled(uint256 key) external view returns (bool);
}
