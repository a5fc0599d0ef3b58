//! CLOB authentication and order signatures, checked the way Polymarket's CLOB checks them
//! (reference §3.3, §3.4): what the official `polymarket_client_sdk_v2` sends is accepted,
//! anything else is refused with the real error bodies.
//!
//! - **L1** (`POST /auth/api-key`, `GET /auth/derive-api-key`): headers `POLY_ADDRESS`,
//!   `POLY_SIGNATURE`, `POLY_TIMESTAMP`, `POLY_NONCE`; the signature is EIP-712 over
//!   `ClobAuth(address address,string timestamp,uint256 nonce,string message)` in the domain
//!   `{name: "ClobAuthDomain", version: "1", chainId}` and must recover to `POLY_ADDRESS`.
//! - **L2** (every trading endpoint): headers `POLY_ADDRESS`, `POLY_API_KEY`,
//!   `POLY_PASSPHRASE`, `POLY_SIGNATURE`, `POLY_TIMESTAMP`; the signature is
//!   `base64url(HMAC-SHA256(base64url_decode(secret), timestamp + METHOD + path + body))`
//!   over the exact path the request arrived on (no query string) and its exact body bytes.
//! - **Orders**: the V2 struct `Order(uint256 salt,address maker,address signer,uint256
//!   tokenId,uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256
//!   timestamp,bytes32 metadata,bytes32 builder)` in the domain `{name: "Polymarket CTF
//!   Exchange", version: "2", chainId, verifyingContract: <V2 exchange>}`; the V1 struct and
//!   domain are known only to recognise (and refuse) V1-signed orders. `POLY_1271`
//!   (deposit wallet) signatures are the ERC-7739 wrapped blob the SDK builds.
//!
//! API credentials are a pure function of (address, nonce), so a restarted venue hands out
//! the same key again, as the real derive endpoint does.

use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, Mac};
use std::borrow::Cow;
use std::str::FromStr;

/// The private key of Anvil/Hardhat test account 0: public, never holds real money. The
/// loopback's default wallet and the key its tests sign with.
pub const ANVIL_PRIVATE_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The address of [`ANVIL_PRIVATE_KEY`].
pub const ANVIL_ADDRESS: Address =
    alloy::primitives::address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

/// Polygon mainnet, the only chain the CLOB runs on (the SDK also accepts Amoy, 80002).
pub const POLYGON_CHAIN_ID: u64 = 137;

/// CTF Exchange V2: the verifying contract of V2 orders on standard markets (BTC up/down).
pub const EXCHANGE_V2: Address =
    alloy::primitives::address!("0xE111180000d2663C0091e4f400237545B87B996B");

/// Neg Risk CTF Exchange V2: the verifying contract of V2 orders on neg-risk markets.
pub const NEG_RISK_EXCHANGE_V2: Address =
    alloy::primitives::address!("0xe2222d279d744050d28e00520010520000310F59");

/// CTF Exchange V1 (retired 2026-04-28): only used to recognise V1-signed orders.
pub const EXCHANGE_V1: Address =
    alloy::primitives::address!("0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E");

/// Neg Risk Adapter: a spender the wallet approves pUSD to (shown in `/balance-allowance`).
pub const NEG_RISK_ADAPTER: Address =
    alloy::primitives::address!("0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296");

/// The message every `ClobAuth` signs.
pub const ATTEST_MESSAGE: &str = "This message attests that I control the given wallet";

/// The V2 order type string (also the `contentsType` of a `POLY_1271` wrapped signature).
pub const ORDER_V2_TYPE: &str = "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)";

const TYPED_DATA_SIGN_TYPE: &str = "TypedDataSign(Order contents,string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)";

// Each struct sits in its own module so that `sol!` names it exactly as the contracts do
// (`Order`, `ClobAuth`): the name is part of the EIP-712 type hash.
mod clob_auth {
    alloy::sol! {
        struct ClobAuth {
            address address;
            string timestamp;
            uint256 nonce;
            string message;
        }
    }
}

mod v1 {
    alloy::sol! {
        struct Order {
            uint256 salt;
            address maker;
            address signer;
            address taker;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint256 expiration;
            uint256 nonce;
            uint256 feeRateBps;
            uint8 side;
            uint8 signatureType;
        }
    }
}

mod v2 {
    alloy::sol! {
        struct Order {
            uint256 salt;
            address maker;
            address signer;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint8 side;
            uint8 signatureType;
            uint256 timestamp;
            bytes32 metadata;
            bytes32 builder;
        }
    }
}

pub use clob_auth::ClobAuth;
pub use v1::Order as OrderV1;
pub use v2::Order as OrderV2;

/// Why a request's authentication or an order's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is not what it must be (not an address, not a number, …).
    #[error("malformed header {0}")]
    BadHeader(&'static str),
    /// A signature is not 65 bytes of hex, or recovers to nobody.
    #[error("malformed signature")]
    BadSignature,
    /// The signature recovers to another address than the claimed one.
    #[error("signature of {recovered} does not match {claimed}")]
    WrongSigner {
        /// The address the request claims.
        claimed: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
    /// The API key is unknown, or its passphrase or address do not match.
    #[error("unknown API key or passphrase")]
    UnknownKey,
    /// The HMAC does not verify.
    #[error("HMAC does not verify")]
    BadHmac,
}

/// API credentials the venue issued: the key (a UUID), the base64url secret and the
/// passphrase, and whom they belong to.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCreds {
    /// The API key, a UUID (the order's `owner`).
    pub key: String,
    /// The HMAC secret, base64url with padding.
    pub secret: String,
    /// The passphrase.
    pub passphrase: String,
    /// The signer address the key was made for (`POLY_ADDRESS`).
    pub address: Address,
    /// The L1 nonce it was made with.
    pub nonce: u64,
}

impl std::fmt::Debug for ApiCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Test-only secrets, but still not printed: the habit is what matters.
        f.debug_struct("ApiCreds")
            .field("key", &self.key)
            .field("address", &self.address)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl ApiCreds {
    /// The credentials of `address` with L1 nonce `nonce`: deterministic, so a derive after
    /// a venue restart finds the same key.
    pub fn derive(address: Address, nonce: u64) -> ApiCreds {
        let h = |label: &str| {
            let mut m = label.as_bytes().to_vec();
            m.extend_from_slice(address.as_slice());
            m.extend_from_slice(&nonce.to_be_bytes());
            keccak256(m)
        };
        let k = hex::encode(&h("updown-loopback/api-key")[..16]);
        let key = format!(
            "{}-{}-4{}-a{}-{}",
            &k[0..8],
            &k[8..12],
            &k[13..16],
            &k[17..20],
            &k[20..32]
        );
        let secret = URL_SAFE.encode(h("updown-loopback/secret"));
        let passphrase = hex::encode(h("updown-loopback/passphrase"));
        ApiCreds {
            key,
            secret,
            passphrase,
            address,
            nonce,
        }
    }

    /// The body `/auth/api-key` and `/auth/derive-api-key` answer with.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "apiKey": self.key,
            "secret": self.secret,
            "passphrase": self.passphrase,
        })
    }
}

/// The `ClobAuth` domain: `{name: "ClobAuthDomain", version: "1", chainId}`.
pub fn clob_auth_domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Borrowed("ClobAuthDomain")),
        version: Some(Cow::Borrowed("1")),
        chain_id: Some(U256::from(chain_id)),
        ..Eip712Domain::default()
    }
}

/// An exchange domain: `{name: "Polymarket CTF Exchange", version, chainId,
/// verifyingContract}`.
pub fn order_domain(chain_id: u64, version: &'static str, exchange: Address) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Borrowed("Polymarket CTF Exchange")),
        version: Some(Cow::Borrowed(version)),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: Some(exchange),
        ..Eip712Domain::default()
    }
}

/// The address a 65-byte hex signature over `hash` recovers to.
pub fn recover(signature_hex: &str, hash: &B256) -> Result<Address, AuthError> {
    let sig = Signature::from_str(signature_hex.trim()).map_err(|_| AuthError::BadSignature)?;
    sig.recover_address_from_prehash(hash)
        .map_err(|_| AuthError::BadSignature)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    let v = headers
        .get(name)
        .ok_or(AuthError::MissingHeader(name))?
        .to_str()
        .map_err(|_| AuthError::BadHeader(name))?
        .trim();
    if v.is_empty() {
        return Err(AuthError::MissingHeader(name));
    }
    Ok(v)
}

/// Checks L1 headers: the `ClobAuth` signature must recover to `POLY_ADDRESS`. Returns the
/// address and the nonce.
pub fn verify_l1(headers: &HeaderMap, chain_id: u64) -> Result<(Address, u64), AuthError> {
    let address = Address::from_str(header(headers, "poly_address")?)
        .map_err(|_| AuthError::BadHeader("POLY_ADDRESS"))?;
    let signature = header(headers, "poly_signature")?;
    let timestamp = header(headers, "poly_timestamp")?;
    if timestamp.parse::<i64>().is_err() {
        return Err(AuthError::BadHeader("POLY_TIMESTAMP"));
    }
    let nonce = match headers.get("poly_nonce") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(AuthError::BadHeader("POLY_NONCE"))?,
    };
    let auth = ClobAuth {
        address,
        timestamp: timestamp.to_string(),
        nonce: U256::from(nonce),
        message: ATTEST_MESSAGE.to_string(),
    };
    let hash = auth.eip712_signing_hash(&clob_auth_domain(chain_id));
    let recovered = recover(signature, &hash)?;
    if recovered != address {
        return Err(AuthError::WrongSigner {
            claimed: address,
            recovered,
        });
    }
    Ok((address, nonce))
}

/// The L2 headers of a request.
#[derive(Clone, Debug)]
pub struct L2Headers {
    /// `POLY_ADDRESS`.
    pub address: Address,
    /// `POLY_API_KEY`.
    pub api_key: String,
    /// `POLY_PASSPHRASE`.
    pub passphrase: String,
    /// `POLY_SIGNATURE`.
    pub signature: String,
    /// `POLY_TIMESTAMP`.
    pub timestamp: String,
}

/// Reads the L2 headers (all five must be present).
pub fn read_l2(headers: &HeaderMap) -> Result<L2Headers, AuthError> {
    let address = Address::from_str(header(headers, "poly_address")?)
        .map_err(|_| AuthError::BadHeader("POLY_ADDRESS"))?;
    Ok(L2Headers {
        address,
        api_key: header(headers, "poly_api_key")?.to_string(),
        passphrase: header(headers, "poly_passphrase")?.to_string(),
        signature: header(headers, "poly_signature")?.to_string(),
        timestamp: header(headers, "poly_timestamp")?.to_string(),
    })
}

/// `base64url(HMAC-SHA256(base64url_decode(secret), message))`, as the CLOB computes it.
pub fn hmac_signature(secret: &str, message: &str) -> Result<String, AuthError> {
    let key = URL_SAFE.decode(secret).map_err(|_| AuthError::UnknownKey)?;
    let mut mac =
        Hmac::<sha2_010::Sha256>::new_from_slice(&key).map_err(|_| AuthError::UnknownKey)?;
    mac.update(message.as_bytes());
    Ok(URL_SAFE.encode(mac.finalize().into_bytes()))
}

/// Checks an L2 request signed with `creds`: the key, passphrase and address must match,
/// and the HMAC of `timestamp + method + path + body` must verify. The SDK signs the body
/// with `'` replaced by `"`, so that form is accepted too.
pub fn verify_l2(
    h: &L2Headers,
    creds: &ApiCreds,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(), AuthError> {
    if h.api_key != creds.key || h.passphrase != creds.passphrase || h.address != creds.address {
        return Err(AuthError::UnknownKey);
    }
    let body = String::from_utf8_lossy(body);
    let candidates = [body.to_string(), body.replace('\'', "\"")];
    for b in &candidates {
        let message = format!("{}{method}{path}{b}", h.timestamp);
        if hmac_signature(&creds.secret, &message)? == h.signature {
            return Ok(());
        }
    }
    Err(AuthError::BadHmac)
}

/// Checks a `POLY_1271` (deposit wallet) wrapped signature of `order` in `app_domain`:
/// `innerSig(65) ‖ appDomainSeparator(32) ‖ contentsHash(32) ‖ contentsType ‖ uint16(len)`,
/// where the inner signature is over the ERC-7739 `TypedDataSign` digest whose verifying
/// contract is the wallet (`order.signer`). Returns the address the inner signature
/// recovers to (the wallet's owner).
pub fn recover_poly1271(
    wrapped: &str,
    order: &OrderV2,
    app_domain: &Eip712Domain,
    chain_id: u64,
) -> Result<Address, AuthError> {
    let bytes = hex::decode(wrapped.trim().trim_start_matches("0x"))
        .map_err(|_| AuthError::BadSignature)?;
    let fixed = 65 + 32 + 32;
    if bytes.len() < fixed + 2 {
        return Err(AuthError::BadSignature);
    }
    let (body, len) = bytes.split_at(bytes.len() - 2);
    let type_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if body.len() != fixed + type_len {
        return Err(AuthError::BadSignature);
    }
    let inner = &body[..65];
    let app_separator = &body[65..97];
    let contents_hash = &body[97..129];
    let contents_type = &body[129..];
    let expected_separator = app_domain.hash_struct();
    let expected_contents = order.eip712_hash_struct();
    if app_separator != expected_separator.as_slice()
        || contents_hash != expected_contents.as_slice()
        || contents_type != ORDER_V2_TYPE.as_bytes()
    {
        return Err(AuthError::BadSignature);
    }
    let struct_hash = keccak256(
        (
            keccak256(TYPED_DATA_SIGN_TYPE.as_bytes()),
            expected_contents,
            keccak256("DepositWallet".as_bytes()),
            keccak256("1".as_bytes()),
            U256::from(chain_id),
            order.signer,
            B256::ZERO,
        )
            .abi_encode(),
    );
    let mut digest = [0_u8; 66];
    digest[0] = 0x19;
    digest[1] = 0x01;
    digest[2..34].copy_from_slice(expected_separator.as_slice());
    digest[34..66].copy_from_slice(struct_hash.as_slice());
    let sig = Signature::from_raw(inner).map_err(|_| AuthError::BadSignature)?;
    sig.recover_address_from_prehash(&keccak256(digest))
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_published_vectors() {
        let secret = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(
            hmac_signature(secret, r#"1000000test-sign/orders{"hash":"0x123"}"#).unwrap(),
            "4gJVbox-R6XlDK4nlaicig0_ANVL1qdcahiL8CXfXLM="
        );
        assert_eq!(
            hmac_signature(secret, "1GET/").unwrap(),
            "eHaylCwqRSOa2LFD77Nt_SaTpbsxzN8eTEI3LryhEj4="
        );
    }

    #[test]
    fn clob_auth_vector_recovers_to_the_anvil_address() {
        // Reference §3.3: chain 80002, ts 10000000, nonce 23.
        let auth = ClobAuth {
            address: ANVIL_ADDRESS,
            timestamp: "10000000".into(),
            nonce: U256::from(23),
            message: ATTEST_MESSAGE.into(),
        };
        let hash = auth.eip712_signing_hash(&clob_auth_domain(80_002));
        let sig = "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b70c25ae232aff0ab2331e2b164a1aedc1b";
        assert_eq!(recover(sig, &hash).unwrap(), ANVIL_ADDRESS);
        let other = auth.eip712_signing_hash(&clob_auth_domain(POLYGON_CHAIN_ID));
        assert_ne!(recover(sig, &other).unwrap(), ANVIL_ADDRESS);
    }

    #[test]
    fn credentials_are_deterministic_and_shaped_like_the_real_ones() {
        let a = ApiCreds::derive(ANVIL_ADDRESS, 0);
        assert_eq!(a, ApiCreds::derive(ANVIL_ADDRESS, 0));
        assert_ne!(a.key, ApiCreds::derive(ANVIL_ADDRESS, 1).key);
        assert_eq!(a.key.len(), 36);
        assert_eq!(a.key.matches('-').count(), 4);
        assert!(URL_SAFE.decode(&a.secret).is_ok());
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn the_v2_type_string_is_the_contracts() {
        assert_eq!(OrderV2::eip712_encode_type(), ORDER_V2_TYPE);
    }
}
