// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IERC5192, IMembershipCards} from "./interfaces/IMembershipCards.sol";
import {MerchantGated} from "./abstract/MerchantGated.sol";

/// @title MembershipCards
/// @notice The alliance's non-transferable membership cards (see IMembershipCards).
/// @dev Gas choices:
/// - the card's id names its merchant and member, so "one card per pair" needs no index;
/// - a card is one slot (merchant, tier, issued, expiry) next to ERC-721's owner and balance;
/// - `_mint`, not `_safeMint`: no receiver call, so nothing can re-enter;
/// - transfers, burns and approvals are refused in `_update` / `_approve` /
///   `_setApprovalForAll`, the three places every ERC-721 path goes through.
contract MembershipCards is IMembershipCards, ERC721, MerchantGated {
    uint256 private constant MAX_TIER = 255;
    uint256 private constant MAX_TIME = 2 ** 40;

    mapping(uint256 tokenId => Card) private _cards;
    mapping(uint256 merchantId => mapping(bytes32 paymentRef => bool)) private _paymentRefs;

    constructor(IAllianceRegistry registry_) ERC721("Alliance Membership", "AMBR") {
        __MerchantGated_init(registry_, 0);
    }

    // ------------------------------------------------------------------
    // Issue and renew
    // ------------------------------------------------------------------

    /// @inheritdoc IMembershipCards
    function issue(uint256 merchantId, address member, uint256 tier, uint256 expiresAt, bytes32 paymentRef)
        external
        returns (uint256 tokenId)
    {
        _requireIssuer(merchantId);
        _checkTerms(tier, expiresAt, block.timestamp);
        tokenId = cardId(merchantId, member);
        if (_ownerOf(tokenId) != address(0)) revert MembershipCardExists(tokenId);
        _usePaymentRef(merchantId, paymentRef);
        _cards[tokenId] = Card({
            merchantId: uint32(merchantId),
            tier: uint8(tier),
            issuedAt: uint40(block.timestamp),
            expiresAt: uint40(expiresAt)
        });
        _mint(member, tokenId);
        emit Locked(tokenId);
        emit CardIssued(tokenId, merchantId, member, tier, expiresAt, paymentRef);
    }

    /// @inheritdoc IMembershipCards
    function renew(uint256 tokenId, uint256 tier, uint256 expiresAt, bytes32 paymentRef) external {
        Card storage c = _card(tokenId);
        uint256 merchantId = c.merchantId;
        _requireIssuer(merchantId);
        uint256 current = c.expiresAt;
        _checkTerms(tier, expiresAt, current > block.timestamp ? current : block.timestamp);
        _usePaymentRef(merchantId, paymentRef);
        c.tier = uint8(tier);
        c.expiresAt = uint40(expiresAt);
        emit CardRenewed(tokenId, merchantId, tier, expiresAt, paymentRef);
    }

    // ------------------------------------------------------------------
    // Reads
    // ------------------------------------------------------------------

    /// @inheritdoc IMembershipCards
    function card(uint256 tokenId) external view returns (Card memory) {
        return _card(tokenId);
    }

    /// @inheritdoc IMembershipCards
    function cardId(uint256 merchantId, address member) public pure returns (uint256) {
        return (merchantId << 160) | uint256(uint160(member));
    }

    /// @inheritdoc IMembershipCards
    function isValid(uint256 tokenId) external view returns (bool) {
        return _ownerOf(tokenId) != address(0) && _cards[tokenId].expiresAt >= block.timestamp;
    }

    /// @inheritdoc IMembershipCards
    function paymentRefUsed(uint256 merchantId, bytes32 paymentRef) external view returns (bool) {
        return _paymentRefs[merchantId][paymentRef];
    }

    /// @inheritdoc IERC5192
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return true;
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view override(ERC721) returns (bool) {
        return interfaceId == type(IERC5192).interfaceId || super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------
    // Non-transferable
    // ------------------------------------------------------------------

    /// @dev Only a mint passes: a card never leaves its member (nor burns).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (_ownerOf(tokenId) != address(0)) revert MembershipNonTransferable(tokenId);
        return super._update(to, tokenId, auth);
    }

    function _approve(address, uint256 tokenId, address, bool) internal pure override {
        revert MembershipNonTransferable(tokenId);
    }

    function _setApprovalForAll(address, address, bool) internal pure override {
        revert MembershipNonTransferable(0);
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    function _card(uint256 tokenId) private view returns (Card storage c) {
        if (_ownerOf(tokenId) == address(0)) revert MembershipUnknownCard(tokenId);
        c = _cards[tokenId];
    }

    /// @dev Merchant 0 (alliance-wide cards) is the operator's; any other, its active account.
    function _requireIssuer(uint256 merchantId) private view {
        if (merchantId == 0) {
            if (!_isOperator(msg.sender)) revert MembershipUnauthorized(msg.sender, 0);
            return;
        }
        if (merchantId > type(uint32).max) revert MembershipUnauthorized(msg.sender, merchantId);
        IAllianceRegistry.Merchant memory m = _registry.merchant(merchantId);
        if (m.account != msg.sender) revert MembershipUnauthorized(msg.sender, merchantId);
        if (m.status != IAllianceRegistry.MerchantStatus.Active) revert MembershipMerchantNotActive(merchantId);
    }

    function _checkTerms(uint256 tier, uint256 expiresAt, uint256 after_) private pure {
        if (tier == 0 || tier > MAX_TIER) revert MembershipInvalidTier(tier);
        if (expiresAt <= after_ || expiresAt >= MAX_TIME) revert MembershipInvalidExpiry(expiresAt);
    }

    function _usePaymentRef(uint256 merchantId, bytes32 paymentRef) private {
        if (paymentRef == bytes32(0)) revert MembershipInvalidPaymentRef();
        if (_paymentRefs[merchantId][paymentRef]) revert MembershipPaymentRefUsed(merchantId, paymentRef);
        _paymentRefs[merchantId][paymentRef] = true;
    }
}
