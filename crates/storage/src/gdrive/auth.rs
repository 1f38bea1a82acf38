//! Google OAuth for Drive: a user's refresh token, or a service account's RS256-signed JWT
//! (RFC 7523) exchanged for an access token. The token is cached until shortly before it expires.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::error::{StorageError, describe_reqwest_error};

pub(crate) const BACKEND_NAME: &str = "Google Drive";
pub const DRIVE_SCOPE: &str = "https://www.googleapis.com/auth/drive";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token is renewed this long before Google says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub enum GoogleDriveCredentials {
    /// An installed-app OAuth client and a user's refresh token.
    OAuthRefreshToken {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    ServiceAccount(ServiceAccountKey),
}

impl std::fmt::Debug for GoogleDriveCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GoogleDriveCredentials::OAuthRefreshToken { client_id, .. } => formatter
                .debug_struct("OAuthRefreshToken")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            GoogleDriveCredentials::ServiceAccount(key) => formatter
                .debug_struct("ServiceAccount")
                .field("client_email", &key.client_email)
                .finish_non_exhaustive(),
        }
    }
}

impl GoogleDriveCredentials {
    /// The texts no error or log line may show.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            GoogleDriveCredentials::OAuthRefreshToken {
                client_secret,
                refresh_token,
                ..
            } => vec![client_secret.as_str(), refresh_token.as_str()],
            GoogleDriveCredentials::ServiceAccount(key) => vec![key.private_key.as_str()],
        }
    }
}

/// The fields of a service account's JSON key file that are used.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URL.to_string()
}

impl ServiceAccountKey {
    pub fn from_json(text: &str) -> Result<Self, StorageError> {
        let key: ServiceAccountKey =
            serde_json::from_str(text).map_err(|error| StorageError::Credentials {
                backend: BACKEND_NAME,
                detail: format!("the service account JSON is not readable: {error}"),
            })?;
        // Fail now rather than at the first upload.
        parse_private_key(&key.private_key)?;
        Ok(key)
    }

    /// The signed assertion for the token endpoint at `audience`, valid for an hour from
    /// `issued_at_unix_seconds`.
    pub fn signed_assertion(
        &self,
        audience: &str,
        issued_at_unix_seconds: u64,
    ) -> Result<String, StorageError> {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": DRIVE_SCOPE,
            "aud": audience,
            "iat": issued_at_unix_seconds,
            "exp": issued_at_unix_seconds + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key_pair = parse_private_key(&self.private_key)?;
        let mut signature = vec![0u8; key_pair.public_modulus_len()];
        key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| StorageError::Credentials {
                backend: BACKEND_NAME,
                detail: "signing the service account assertion failed".to_string(),
            })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn parse_private_key(pem: &str) -> Result<RsaKeyPair, StorageError> {
    let der = pem_body(pem, "PRIVATE KEY").ok_or_else(|| StorageError::Credentials {
        backend: BACKEND_NAME,
        detail: "the service account private_key is not a PKCS#8 PEM block".to_string(),
    })?;
    RsaKeyPair::from_pkcs8(&der).map_err(|rejected| StorageError::Credentials {
        backend: BACKEND_NAME,
        detail: format!("the service account private_key is not a usable RSA key: {rejected}"),
    })
}

/// The decoded body of the first `-----BEGIN <label>-----` block.
pub fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let base64_text: String = pem[start..stop]
        .chars()
        .filter(|character| !character.is_whitespace())
        .collect();
    STANDARD.decode(base64_text).ok()
}

#[derive(Debug, Clone)]
struct CachedToken {
    access_token: String,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Hands out access tokens, fetching a new one when the cached one is about to expire.
#[derive(Debug)]
pub(crate) struct AccessTokenSource {
    credentials: GoogleDriveCredentials,
    token_url: String,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

impl AccessTokenSource {
    pub(crate) fn new(
        credentials: GoogleDriveCredentials,
        token_url_override: Option<String>,
    ) -> Self {
        let token_url = token_url_override.unwrap_or_else(|| match &credentials {
            GoogleDriveCredentials::ServiceAccount(key) => key.token_uri.clone(),
            GoogleDriveCredentials::OAuthRefreshToken { .. } => DEFAULT_TOKEN_URL.to_string(),
        });
        AccessTokenSource {
            credentials,
            token_url,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn access_token(
        &self,
        client: &reqwest::Client,
    ) -> Result<String, StorageError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.access_token.clone());
        }
        let fresh = self.fetch_token(client).await?;
        let access_token = fresh.access_token.clone();
        *cached = Some(fresh);
        Ok(access_token)
    }

    /// Forgets the cached token (after a 401).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch_token(&self, client: &reqwest::Client) -> Result<CachedToken, StorageError> {
        let form: Vec<(&str, String)> = match &self.credentials {
            GoogleDriveCredentials::OAuthRefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("refresh_token", refresh_token.clone()),
            ],
            GoogleDriveCredentials::ServiceAccount(key) => {
                let now_unix_seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs())
                    .unwrap_or_default();
                vec![
                    ("grant_type", JWT_BEARER_GRANT_TYPE.to_string()),
                    (
                        "assertion",
                        key.signed_assertion(&self.token_url, now_unix_seconds)?,
                    ),
                ]
            }
        };
        let requested_at = Instant::now();
        let token_endpoint_error = |error: reqwest::Error| StorageError::Network {
            backend: BACKEND_NAME,
            detail: format!("token endpoint: {}", describe_reqwest_error(error)),
        };
        let response = client
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(token_endpoint_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(token_endpoint_error)?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenErrorResponse>(&body)
                .map(|parsed| format!("{} {}", parsed.error, parsed.error_description))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                StorageError::HttpStatus {
                    backend: BACKEND_NAME,
                    status: status.as_u16(),
                    detail: format!("token endpoint: {}", detail.trim()),
                }
            } else {
                StorageError::Authentication {
                    backend: BACKEND_NAME,
                    detail: format!("token endpoint answered {status}: {}", detail.trim()),
                }
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|error| StorageError::InvalidResponse {
                backend: BACKEND_NAME,
                detail: format!("token endpoint: {error}"),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok(CachedToken {
            access_token: parsed.access_token,
            renew_at: requested_at + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn test_key_pem() -> (String, RsaKeyPair) {
        let key_pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate a test key");
        let der = key_pair.as_der().expect("pkcs8");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        (pem, key_pair)
    }

    #[test]
    fn assertions_are_rs256_jwts_that_verify_with_the_public_key() {
        let (pem, key_pair) = test_key_pem();
        let key = ServiceAccountKey::from_json(
            &serde_json::json!({
                "type": "service_account",
                "client_email": "bot@example.iam.gserviceaccount.com",
                "private_key": pem,
                "token_uri": "http://127.0.0.1:9/token",
            })
            .to_string(),
        )
        .expect("key parses");
        let assertion = key
            .signed_assertion("http://127.0.0.1:9/token", 1_700_000_000)
            .expect("signs");
        let pieces: Vec<&str> = assertion.split('.').collect();
        assert_eq!(pieces.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(pieces[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(pieces[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "bot@example.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "http://127.0.0.1:9/token");
        assert_eq!(claims["scope"], DRIVE_SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        let signature = URL_SAFE_NO_PAD.decode(pieces[2]).expect("b64");
        let public_key =
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key_pair.public_key().as_ref());
        public_key
            .verify(
                format!("{}.{}", pieces[0], pieces[1]).as_bytes(),
                &signature,
            )
            .expect("the signature verifies");
    }

    #[test]
    fn unusable_keys_are_refused_up_front() {
        let text = serde_json::json!({
            "client_email": "bot@example.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        })
        .to_string();
        assert!(matches!(
            ServiceAccountKey::from_json(&text),
            Err(StorageError::Credentials { .. })
        ));
        assert!(ServiceAccountKey::from_json("not json").is_err());
    }
}
