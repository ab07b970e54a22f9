// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IConsentLedger
/// @notice A member's consents to share a kind of data with one merchant (a birth month for
/// birthday offers, a phone number for the counter, history at other merchants): each grant
/// and revocation is an event carrying only the member's address, the merchant id, the
/// consent kind and the hash of the consent text the member agreed to - never the data - so
/// the member can later prove what was agreed and when. Authorised by the member's EIP-712
/// signature (unordered nonces, deadline at most 7 days ahead), relayed by anyone (gasless
/// for the member: the service relays it).
interface IConsentLedger {
    /// @notice `member` granted `merchantId` the consent of `kind`, to the text of hash `textHash`.
    event ConsentGranted(address indexed member, uint256 indexed merchantId, bytes32 indexed kind, bytes32 textHash);

    /// @notice `member` revoked the consent of `kind` it had granted `merchantId`.
    event ConsentRevoked(address indexed member, uint256 indexed merchantId, bytes32 indexed kind);

    /// @notice The consent is live already (revoke it first to agree to another text).
    error ConsentAlreadyGranted(address member, uint256 merchantId, bytes32 kind);

    /// @notice There is no live consent to revoke.
    error ConsentNotGranted(address member, uint256 merchantId, bytes32 kind);

    /// @notice A consent needs a kind and the hash of its text.
    error ConsentEmpty();

    /// @notice Record `member`'s signed grant to `merchantId` of `kind` (text hash `textHash`).
    /// Requirements:
    /// - `kind` and `textHash` are non-zero (else `ConsentEmpty`);
    /// - `merchantId` is an active merchant of the alliance (else the registry's error);
    /// - the consent is not live (else `ConsentAlreadyGranted`);
    /// - now <= `deadline` <= now + 7 days, `nonce` unused, and `signature` is `member`'s over
    ///   `GrantConsent(member, merchantId, kind, textHash, nonce, deadline)`.
    function grantConsent(
        address member,
        uint256 merchantId,
        bytes32 kind,
        bytes32 textHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Record `member`'s signed revocation of its consent of `kind` to `merchantId`.
    /// Requirements:
    /// - the consent is live (else `ConsentNotGranted`);
    /// - now <= `deadline` <= now + 7 days, `nonce` unused, and `signature` is `member`'s over
    ///   `RevokeConsent(member, merchantId, kind, nonce, deadline)`.
    function revokeConsent(
        address member,
        uint256 merchantId,
        bytes32 kind,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice The hash of the consent text `member` agreed to for `merchantId` and `kind`
    /// (zero: no live consent).
    function consentOf(address member, uint256 merchantId, bytes32 kind) external view returns (bytes32);
}
