// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ERC-5192: minimal soulbound NFTs.
/// @notice A wallet reads `locked` to know a token cannot move; `Locked` is emitted when a
/// token is minted locked. Interface id 0xb45a3c0e.
interface IERC5192 {
    /// @notice `tokenId` became locked (here: at its mint; it never unlocks).
    event Locked(uint256 tokenId);
    /// @notice `tokenId` became transferable (never emitted here).
    event Unlocked(uint256 tokenId);

    /// @notice Whether `tokenId` is locked (always, for an existing card).
    function locked(uint256 tokenId) external view returns (bool);
}

/// @title The alliance's membership cards: non-transferable ERC-721 tokens.
/// @notice One card per member per merchant, or one alliance-wide card per member (merchant
/// id 0, issued by the registry's operator). A card carries a tier and an expiry; the
/// merchant's account issues it against an off-chain payment reference (or the reference of
/// the points redemption that paid for it), each reference usable once per merchant, and
/// renews it (the expiry only moves later). A card never moves: transfers and approvals
/// are refused (ERC-5192 `locked`).
///
/// A card's id is `merchantId << 160 | member`, so the card of a member at a merchant is
/// found without a lookup and a second card for the same pair cannot exist.
interface IMembershipCards is IERC5192 {
    /// @notice A card as stored, in one slot.
    /// @param merchantId the issuing merchant (0: alliance-wide)
    /// @param tier the card's tier (1..255)
    /// @param issuedAt when the card was first issued
    /// @param expiresAt the last second the card is valid
    struct Card {
        uint32 merchantId;
        uint8 tier;
        uint40 issuedAt;
        uint40 expiresAt;
    }

    /// @dev `caller` does not sign for `merchantId` (merchant 0: is not an operator).
    error MembershipUnauthorized(address caller, uint256 merchantId);
    /// @dev `merchantId` is suspended (or unknown to the registry).
    error MembershipMerchantNotActive(uint256 merchantId);
    /// @dev Cards never move: a transfer, a burn or an approval of `tokenId` was attempted.
    error MembershipNonTransferable(uint256 tokenId);
    /// @dev `paymentRef` already paid for a card or a renewal at `merchantId`.
    error MembershipPaymentRefUsed(uint256 merchantId, bytes32 paymentRef);
    /// @dev The member already holds card `tokenId` of this merchant (renew it instead).
    error MembershipCardExists(uint256 tokenId);
    /// @dev No card `tokenId`.
    error MembershipUnknownCard(uint256 tokenId);
    /// @dev `expiresAt` is not in the future (a renewal: not later than the card's expiry).
    error MembershipInvalidExpiry(uint256 expiresAt);
    /// @dev `tier` is 0 or above 255.
    error MembershipInvalidTier(uint256 tier);
    /// @dev The payment reference is zero.
    error MembershipInvalidPaymentRef();

    /// @notice `member` received card `tokenId` of `merchantId`, paid by `paymentRef`.
    event CardIssued(
        uint256 indexed tokenId,
        uint256 indexed merchantId,
        address indexed member,
        uint256 tier,
        uint256 expiresAt,
        bytes32 paymentRef
    );
    /// @notice Card `tokenId` now expires at `expiresAt` with `tier`, paid by `paymentRef`.
    event CardRenewed(uint256 indexed tokenId, uint256 indexed merchantId, uint256 tier, uint256 expiresAt, bytes32 paymentRef);

    /// @notice Issue `member` a card of `merchantId` with `tier`, valid until `expiresAt`.
    /// Requirements:
    /// - the caller is `merchantId`'s account and the merchant is active (merchant 0: the
    ///   caller has the registry's OPERATOR_ROLE);
    /// - `member` holds no card of `merchantId` yet; `member` is not the zero address;
    /// - `tier` is 1..255, `expiresAt` is in the future and below 2^40;
    /// - `paymentRef` is not zero and not used before at `merchantId`.
    function issue(uint256 merchantId, address member, uint256 tier, uint256 expiresAt, bytes32 paymentRef)
        external
        returns (uint256 tokenId);

    /// @notice Renew card `tokenId` until `expiresAt`, now with `tier`.
    /// Requirements:
    /// - the card exists; the caller may issue cards of its merchant (as `issue`);
    /// - `expiresAt` is later than both the card's expiry and now, and below 2^40;
    /// - `tier` is 1..255; `paymentRef` is not zero and not used before at the merchant.
    function renew(uint256 tokenId, uint256 tier, uint256 expiresAt, bytes32 paymentRef) external;

    /// @notice Card `tokenId` (reverts `MembershipUnknownCard` if there is none).
    function card(uint256 tokenId) external view returns (Card memory);

    /// @notice The id the card of `member` at `merchantId` has (or would have).
    function cardId(uint256 merchantId, address member) external pure returns (uint256);

    /// @notice Whether card `tokenId` exists and has not expired.
    function isValid(uint256 tokenId) external view returns (bool);

    /// @notice Whether `paymentRef` already paid for a card or renewal at `merchantId`.
    function paymentRefUsed(uint256 merchantId, bytes32 paymentRef) external view returns (bool);
}
