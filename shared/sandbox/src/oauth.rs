//! The OAuth 2.0 authorization-code grant as both providers run it (RFC 6749), with the one
//! difference that matters to clients: whether refresh tokens rotate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::common::{Params, instant_after, json_response, random_string};

/// Authorization codes live this long, like Harvest's and most providers'.
const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    /// `(method, challenge)` when the client sent PKCE parameters.
    challenge: Option<(String, String)>,
    expires_at: Instant,
}

/// What an access token stands for.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub(crate) client_id: String,
    expires_at: Instant,
}

#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
}

/// Registered clients and every code and token issued to them.
#[derive(Debug)]
pub(crate) struct OAuth {
    clients: HashMap<String, String>,
    codes: HashMap<String, PendingCode>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
    pub(crate) ttl: Duration,
    rotate_refresh: bool,
}

/// Successful token-endpoint answer, with exactly the documented fields.
#[derive(Debug, Serialize)]
pub(crate) struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    fn grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    fn client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let mut r = json_response(
            self.status,
            &serde_json::json!({ "error": self.error, "error_description": self.description }),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 for client authentication must carry a challenge.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sandbox\""),
            );
        }
        r
    }
}

/// Reads token-endpoint parameters from a form body (the standard) or a JSON object (which
/// Harvest also accepts).
fn body_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if !is_json {
        let raw =
            std::str::from_utf8(body).map_err(|_| OAuthError::request("body is not UTF-8"))?;
        return Ok(Params::parse(raw).into_map());
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| OAuthError::request(format!("body is not a JSON object: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// `client_id:client_secret` from HTTP Basic. Both parts are form-decoded first, as RFC 6749
/// §2.3.1 asks clients to encode them (the `oauth2` crate does).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn pkce_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    match method {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge,
        _ => verifier == challenge,
    }
}

impl OAuth {
    pub(crate) fn new(ttl: Duration, rotate_refresh: bool) -> Self {
        OAuth {
            clients: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            ttl,
            rotate_refresh,
        }
    }

    pub(crate) fn register(&mut self, client_id: &str, client_secret: &str) {
        self.clients
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for grant in self.access.values_mut() {
            grant.expires_at = grant.expires_at.min(now);
        }
    }

    pub(crate) fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    /// The grant behind a bearer token, if it exists and has not expired.
    pub(crate) fn access(&self, token: &str, now: Instant) -> Option<&AccessGrant> {
        self.access.get(token).filter(|g| now < g.expires_at)
    }

    /// Auto-consents to an authorization request: validates it and answers the redirect
    /// target carrying a fresh code, `state` and `extra` pairs. `Err` is a message for a 400.
    pub(crate) fn authorize(
        &mut self,
        p: &Params,
        extra: &[(&str, String)],
    ) -> Result<String, String> {
        let client_id = p
            .get("client_id")
            .filter(|c| !c.is_empty())
            .ok_or("client_id is required")?;
        if !self.clients.contains_key(client_id) {
            return Err(format!("unknown client_id {client_id:?}"));
        }
        match p.get("response_type") {
            Some("code") => {}
            other => {
                return Err(format!(
                    "unsupported response_type {other:?}; only \"code\" is supported"
                ));
            }
        }
        let redirect_uri = p
            .get("redirect_uri")
            .filter(|r| !r.is_empty())
            .ok_or("redirect_uri is required")?;
        let mut target =
            url::Url::parse(redirect_uri).map_err(|e| format!("redirect_uri is not a URL: {e}"))?;
        let challenge = p.get("code_challenge").map(|c| {
            (
                p.get("code_challenge_method").unwrap_or("plain").to_owned(),
                c.to_owned(),
            )
        });
        let code = random_string(32);
        self.codes.insert(
            code.clone(),
            PendingCode {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge,
                expires_at: instant_after(Instant::now(), CODE_LIFETIME),
            },
        );
        {
            let mut q = target.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(state) = p.get("state") {
                q.append_pair("state", state);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        Ok(target.into())
    }

    /// Runs the token endpoint. `mint` makes a new access token for a client id.
    pub(crate) fn token(
        &mut self,
        headers: &HeaderMap,
        body: &[u8],
        mint: &mut dyn FnMut(&str) -> String,
    ) -> Result<TokenAnswer, OAuthError> {
        let params = body_params(headers, body)?;
        let (client_id, secret) = match basic_credentials(headers) {
            Some(pair) => pair,
            None => match (params.get("client_id"), params.get("client_secret")) {
                (Some(id), Some(secret)) => (id.clone(), secret.clone()),
                _ => {
                    return Err(OAuthError::client(
                        "client authentication required (HTTP Basic or client_id + client_secret)",
                    ));
                }
            },
        };
        if self.clients.get(&client_id) != Some(&secret) {
            return Err(OAuthError::client("unknown client or wrong client secret"));
        }
        let param = |name: &str| {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| OAuthError::request(format!("{name} is required")))
        };
        let refresh_token = match param("grant_type")?.as_str() {
            "authorization_code" => {
                let pending = self.codes.remove(param("code")?).ok_or_else(|| {
                    OAuthError::grant("authorization code is unknown or was already used")
                })?;
                if pending.expires_at <= Instant::now() {
                    return Err(OAuthError::grant("authorization code expired"));
                }
                if pending.client_id != client_id {
                    return Err(OAuthError::grant(
                        "authorization code was issued to another client",
                    ));
                }
                if params.get("redirect_uri") != Some(&pending.redirect_uri) {
                    return Err(OAuthError::grant(
                        "redirect_uri does not match the authorization request",
                    ));
                }
                if let Some((method, challenge)) = &pending.challenge {
                    let verifier = params
                        .get("code_verifier")
                        .map(String::as_str)
                        .unwrap_or("");
                    if !pkce_matches(method, challenge, verifier) {
                        return Err(OAuthError::grant(
                            "code_verifier does not match code_challenge",
                        ));
                    }
                }
                self.issue_refresh(&client_id)
            }
            "refresh_token" => {
                let presented = param("refresh_token")?.clone();
                match self.refresh.get(&presented) {
                    Some(g) if g.client_id == client_id => {}
                    Some(_) => {
                        return Err(OAuthError::grant(
                            "refresh token was issued to another client",
                        ));
                    }
                    None => {
                        return Err(OAuthError::grant(
                            "refresh token is invalid, revoked or already rotated",
                        ));
                    }
                }
                if self.rotate_refresh {
                    self.refresh.remove(&presented);
                    self.issue_refresh(&client_id)
                } else {
                    presented
                }
            }
            other => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    format!("grant_type {other:?} is not supported"),
                ));
            }
        };
        let access_token = mint(&client_id);
        let expires_at = instant_after(Instant::now(), self.ttl);
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                client_id,
                expires_at,
            },
        );
        Ok(TokenAnswer {
            access_token,
            refresh_token,
            token_type: "bearer",
            expires_in: self.ttl.as_secs(),
        })
    }

    fn issue_refresh(&mut self, client_id: &str) -> String {
        let token = random_string(64);
        self.refresh.insert(
            token.clone(),
            RefreshGrant {
                client_id: client_id.to_owned(),
            },
        );
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenge_is_base64url_sha256_of_the_verifier() {
        // Computed independently with Python's hashlib + base64.urlsafe_b64encode.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWxOEjXk";
        assert!(pkce_matches(
            "S256",
            "O_uB6U03gRg--6ORZ0ZVqgZbsQmdYdFwf4Y3sAFCu7I",
            verifier
        ));
        assert!(!pkce_matches("S256", verifier, verifier));
        assert!(pkce_matches("plain", verifier, verifier));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("my%20app:s%3Acret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("my app".into(), "s:cret".into()))
        );
    }
}
