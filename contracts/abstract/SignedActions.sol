// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ISignedActions} from "../interfaces/ISignedActions.sol";

/// @title SignedActions
/// @notice What a contract needs to act on messages members sign (EIP-712) and a merchant
/// relays: the domain, digests, signature checks (EOA first, then ERC-1271), deadlines capped
/// at 7 days ahead, and unordered nonces in a bitmap (word = nonce >> 8, bit = nonce & 0xff,
/// as Uniswap's Permit2 SignatureTransfer) that a member can cancel, directly or by signature.
///
/// @dev The domain carries a `salt` the contract names (the point programs: their registry),
/// so two deployments that share a deployer, name and version - and so clone addresses - on
/// one chain do not accept each other's signatures. OpenZeppelin's EIP712 has no salt field:
/// only the domain separator is our own line; the typed-data hashing is OpenZeppelin's
/// (MessageHashUtils) and `eip712Domain` reports the salt (ERC-5267, fields 0x1f).
abstract contract SignedActions is ISignedActions, IERC5267 {
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)"
    );
    bytes32 private constant CANCEL_NONCES_TYPEHASH =
        keccak256("CancelNonces(address member,uint256 wordPos,uint256 mask,uint256 deadline)");
    /// @dev How far ahead a signed message may be valid: a leaked or forgotten signature dies
    /// within a week, and the member's wallet never has to track older ones.
    uint256 internal constant MAX_DEADLINE_AHEAD = 7 days;

    mapping(address member => mapping(uint256 wordPos => uint256 bits)) private _nonceBitmap;

    /// @dev The EIP-712 domain name and version (constants of the concrete contract).
    function _domainNameAndVersion() internal pure virtual returns (string memory name, string memory version);

    /// @dev The EIP-712 domain salt binding signatures to this deployment's alliance.
    function _domainSalt() internal view virtual returns (bytes32);

    /// @inheritdoc ISignedActions
    function invalidateNonces(uint256 wordPos, uint256 mask) external {
        _invalidateNonces(msg.sender, wordPos, mask);
    }

    /// @inheritdoc ISignedActions
    function cancelNonces(address member, uint256 wordPos, uint256 mask, uint256 deadline, bytes calldata signature)
        external
    {
        _requireDeadline(deadline);
        _requireSignedBy(member, _cancelNoncesDigest(member, wordPos, mask, deadline), signature);
        _invalidateNonces(member, wordPos, mask);
    }

    /// @inheritdoc ISignedActions
    function nonceBitmap(address member, uint256 wordPos) external view returns (uint256) {
        return _nonceBitmap[member][wordPos];
    }

    /// @inheritdoc ISignedActions
    function cancelNoncesDigest(address member, uint256 wordPos, uint256 mask, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _cancelNoncesDigest(member, wordPos, mask, deadline);
    }

    /// @inheritdoc IERC5267
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        (name, version) = _domainNameAndVersion();
        return (hex"1f", name, version, block.chainid, address(this), _domainSalt(), new uint256[](0));
    }

    /// @dev The domain separator. Computed, not cached: a clone has no immutables, and hashing
    /// six words costs less than reading a cached value from a cold slot.
    function _domainSeparator() internal view returns (bytes32) {
        (string memory name, string memory version) = _domainNameAndVersion();
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                block.chainid,
                address(this),
                _domainSalt()
            )
        );
    }

    /// @dev Marks `nonce` of `member` used. Reverts if it was used or cancelled before.
    function _useNonce(address member, uint256 nonce) internal {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = _nonceBitmap[member][nonce >> 8] ^= bit;
        if (flipped & bit == 0) revert PointsNonceUsed(member, nonce);
    }

    /// @dev Reverts unless now <= `deadline` <= now + 7 days.
    function _requireDeadline(uint256 deadline) internal view {
        if (block.timestamp > deadline) revert PointsSignatureExpired(deadline);
        uint256 latest = block.timestamp + MAX_DEADLINE_AHEAD;
        if (deadline > latest) revert PointsDeadlineTooFar(deadline, latest);
    }

    /// @dev An EOA's signature is recovered first (no code lookup on the hot path); otherwise a
    /// contract wallet is asked through ERC-1271.
    function _requireSignedBy(address member, bytes32 digest, bytes calldata signature) internal view {
        // The third value only details a malformed signature; any error falls through to ERC-1271.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == member) return;
        if (!SignatureChecker.isValidERC1271SignatureNowCalldata(member, digest, signature)) {
            revert PointsInvalidSignature(member);
        }
    }

    function _typedDataHash(bytes32 domain, bytes32 structHash) internal pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(domain, structHash);
    }

    function _invalidateNonces(address member, uint256 wordPos, uint256 mask) private {
        _nonceBitmap[member][wordPos] |= mask;
        emit NoncesInvalidated(member, wordPos, mask);
    }

    function _cancelNoncesDigest(address member, uint256 wordPos, uint256 mask, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _typedDataHash(
            _domainSeparator(), keccak256(abi.encode(CANCEL_NONCES_TYPEHASH, member, wordPos, mask, deadline))
        );
    }
}
