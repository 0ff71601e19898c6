//! The browser's part of an OAuth authorization against a sandbox: open the authorize URL,
//! "consent" (the sandboxes approve at once) and read where the provider sends the browser
//! back. Tests, benches and the demo all need this step; doing it here keeps them honest about
//! what a user's browser does (no redirect is followed past the provider).

use std::collections::BTreeMap;

/// Where the provider sent the browser after consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The full redirect URL (`{redirect_uri}?code=...&state=...`).
    pub callback_url: String,
    /// The authorization code.
    pub code: String,
    /// The state the authorize URL carried.
    pub state: String,
}

/// Why consent did not produce a redirect back.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The authorize request failed.
    #[error("authorize request: {0}")]
    Request(#[from] reqwest::Error),
    /// The provider answered without redirecting back.
    #[error("the provider did not redirect back (status {0})")]
    NoRedirect(u16),
    /// The redirect is not a URL with `code` and `state`.
    #[error("the redirect back is not a callback: {0}")]
    BadRedirect(String),
}

/// Opens `authorize_url` like a browser that does not follow the redirect back, and returns
/// the callback URL with its `code` and `state`.
pub async fn consent(authorize_url: &str) -> Result<Consent, ConsentError> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let res = browser.get(authorize_url).send().await?;
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or(ConsentError::NoRedirect(res.status().as_u16()))?
        .to_owned();
    let url =
        url::Url::parse(&location).map_err(|_| ConsentError::BadRedirect(location.clone()))?;
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    match (q.get("code"), q.get("state")) {
        (Some(code), Some(state)) => Ok(Consent {
            code: code.clone(),
            state: state.clone(),
            callback_url: location,
        }),
        _ => Err(ConsentError::BadRedirect(location)),
    }
}
