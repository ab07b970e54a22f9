// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Signed actions: EIP-712 messages members sign and a merchant relays, with unordered
/// nonces (a bitmap per member, as Uniswap's Permit2) a member can cancel.
/// @notice The error names keep the `Points` prefix the point programs have always used.
interface ISignedActions {
    /// @dev The signed message's deadline has passed.
    error PointsSignatureExpired(uint256 deadline);
    /// @dev The signed message's deadline is further ahead than allowed (7 days from now).
    error PointsDeadlineTooFar(uint256 deadline, uint256 latest);
    /// @dev The signature is not the member's (or a contract wallet refused it).
    error PointsInvalidSignature(address member);
    /// @dev The member's nonce was already used or cancelled.
    error PointsNonceUsed(address member, uint256 nonce);

    /// @notice Nonces of `member` in word `wordPos` (nonce = wordPos * 256 + bit) whose bits are
    /// set in `mask` can no longer be used.
    event NoncesInvalidated(address indexed member, uint256 indexed wordPos, uint256 mask);

    /// @notice Makes the caller's unused nonces in word `wordPos` whose bits are set in `mask`
    /// unusable (cancels signed messages not yet relayed). Requirements: none.
    function invalidateNonces(uint256 wordPos, uint256 mask) external;

    /// @notice As `invalidateNonces`, relayed so members stay gasless: `member` signed EIP-712
    /// `CancelNonces(address member,uint256 wordPos,uint256 mask,uint256 deadline)`.
    /// Requirements: now <= `deadline` <= now + 7 days; `signature` is the member's (EOA or
    /// ERC-1271 contract wallet).
    function cancelNonces(address member, uint256 wordPos, uint256 mask, uint256 deadline, bytes calldata signature)
        external;

    /// @notice The member's used or cancelled nonces of word `wordPos`: bit b set means nonce
    /// `wordPos * 256 + b` cannot be used.
    function nonceBitmap(address member, uint256 wordPos) external view returns (uint256);

    /// @notice The EIP-712 digest a member signs to cancel nonces.
    function cancelNoncesDigest(address member, uint256 wordPos, uint256 mask, uint256 deadline)
        external
        view
        returns (bytes32);
}
