// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IAllianceRegistry} from "./interfaces/IAllianceRegistry.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {SignedActions} from "./abstract/SignedActions.sol";

/// @title ConsentLedger
/// @notice See {IConsentLedger}: members' consents per merchant and kind, on chain as events
/// with the consent text's hash only, authorised by the member's EIP-712 signature.
contract ConsentLedger is IConsentLedger, SignedActions {
    bytes32 private constant GRANT_TYPEHASH = keccak256(
        "GrantConsent(address member,uint256 merchantId,bytes32 kind,bytes32 textHash,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant REVOKE_TYPEHASH =
        keccak256("RevokeConsent(address member,uint256 merchantId,bytes32 kind,uint256 nonce,uint256 deadline)");

    IAllianceRegistry private immutable _registry;
    mapping(address member => mapping(uint256 merchantId => mapping(bytes32 kind => bytes32 textHash))) private
        _consents;

    constructor(IAllianceRegistry registry_) {
        _registry = registry_;
    }

    /// @inheritdoc IConsentLedger
    function grantConsent(
        address member,
        uint256 merchantId,
        bytes32 kind,
        bytes32 textHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (kind == bytes32(0) || textHash == bytes32(0)) revert ConsentEmpty();
        // Reverts with the registry's own error unless the merchant exists and is active.
        // slither-disable-next-line unused-return
        _registry.activeAccount(merchantId);
        if (_consents[member][merchantId][kind] != bytes32(0)) {
            revert ConsentAlreadyGranted(member, merchantId, kind);
        }
        _requireDeadline(deadline);
        bytes32 digest = _typedDataHash(
            _domainSeparator(),
            keccak256(abi.encode(GRANT_TYPEHASH, member, merchantId, kind, textHash, nonce, deadline))
        );
        _requireSignedBy(member, digest, signature);
        _useNonce(member, nonce);
        _consents[member][merchantId][kind] = textHash;
        emit ConsentGranted(member, merchantId, kind, textHash);
    }

    /// @inheritdoc IConsentLedger
    function revokeConsent(
        address member,
        uint256 merchantId,
        bytes32 kind,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (_consents[member][merchantId][kind] == bytes32(0)) {
            revert ConsentNotGranted(member, merchantId, kind);
        }
        _requireDeadline(deadline);
        bytes32 digest = _typedDataHash(
            _domainSeparator(), keccak256(abi.encode(REVOKE_TYPEHASH, member, merchantId, kind, nonce, deadline))
        );
        _requireSignedBy(member, digest, signature);
        _useNonce(member, nonce);
        delete _consents[member][merchantId][kind];
        emit ConsentRevoked(member, merchantId, kind);
    }

    /// @inheritdoc IConsentLedger
    function consentOf(address member, uint256 merchantId, bytes32 kind) external view returns (bytes32) {
        return _consents[member][merchantId][kind];
    }

    function _domainNameAndVersion() internal pure override returns (string memory, string memory) {
        return ("Alliance Consent", "1");
    }

    function _domainSalt() internal view override returns (bytes32) {
        return bytes32(uint256(uint160(address(_registry))));
    }
}
