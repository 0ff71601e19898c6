//! Provider secrets (each adapter's `SECRET_ENV_VARS`, e.g. Tripletex's consumer token) reach
//! the adapter through `AppContext::build`: locally from the variable itself, in Lambda from the
//! Secrets Manager secret `<VAR>_SECRET_NAME` names, read once at start-up. Never shown.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use hourbridge_domain::SecretValue;
use hourbridge_provider_api::ProviderSession;
use hourbridge_runtime::{AppContext, Config, Mode, StartupError, env};

const TOKEN: &str = "consumer-token-s3cr3t-value";
const TOKEN_VAR: &str = "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN";
const API_URL_VAR: &str = "HOURBRIDGE_TRIPLETEX_API_URL";

/// A server that answers every request 400 and remembers each request's head.
fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v2", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                  content-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (url, seen)
}

/// Asks the context's Tripletex adapter for a session and returns what reached the server.
async fn consumer_token_sent(ctx: &AppContext, seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    let provider = ctx
        .providers
        .get("tripletex")
        .expect("tripletex is registered");
    let creds = ProviderSession {
        workspace_id: "acme".into(),
        secrets: BTreeMap::from([(
            "employee_token".to_owned(),
            SecretValue::new("employee-token"),
        )]),
        settings: serde_json::json!({}),
    };
    let res = provider
        .create_session(&creds, chrono::Utc::now() + chrono::Duration::days(1))
        .await;
    let err = res.expect_err("the recording server refuses");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    seen.lock().unwrap().clone()
}

fn assert_sent(heads: &[String]) {
    assert!(
        heads
            .iter()
            .any(|h| h.contains(&format!("consumerToken={TOKEN}"))),
        "{heads:?}"
    );
}

#[tokio::test]
async fn a_local_context_hands_the_consumer_token_to_the_adapter_redacted() {
    assert!(env::provider_secret_vars().contains(&TOKEN_VAR));
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recording_server();
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        (env::DATA_DIR, dir.path().display().to_string()),
        (TOKEN_VAR, TOKEN.to_owned()),
        (API_URL_VAR, url),
    ]);
    let cfg = Config::from_lookup(Mode::Local, |k| vars.get(k).cloned()).unwrap();
    let ctx = AppContext::build(cfg, None).await.unwrap();
    assert!(!format!("{ctx:?}").contains(TOKEN));
    assert_sent(&consumer_token_sent(&ctx, &seen).await);
}

#[tokio::test]
async fn a_lambda_context_reads_the_consumer_token_from_secrets_manager_once_at_start() {
    let Some(aws) = hourbridge_testkit::moto_config("provider secret from Secrets Manager").await
    else {
        return;
    };
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let name = format!(
        "{}/tripletex/consumer-token",
        hourbridge_testkit::unique_name("hourbridge-platform")
    );
    sm.create_secret()
        .name(&name)
        .secret_string(TOKEN)
        .send()
        .await
        .expect("create secret");
    // Provider calls are counted against the store's budget.
    let table = hourbridge_testkit::unique_name("hbps");
    hourbridge_store_dynamodb::DynamoBackend::create_table(
        &aws_sdk_dynamodb::Client::new(&aws),
        &table,
    )
    .await
    .expect("table");
    let (url, seen) = recording_server();
    let name_var = env::secret_name_var(TOKEN_VAR);
    let mut vars: BTreeMap<String, String> = [
        (env::TABLE_NAME, table.as_str()),
        (env::SECRETS_PREFIX, "hourbridge/test/"),
        (env::JOBS_BUS, "unused-bus"),
        (env::PUBLIC_URL, "https://api.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.insert(name_var.clone(), name.clone());
    vars.insert(API_URL_VAR.to_owned(), url);
    let cfg = Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).unwrap();
    assert!(!format!("{cfg:?}").contains(TOKEN));
    let ctx = AppContext::build(cfg, Some(aws.clone())).await.unwrap();
    // Read at start-up: the secret changing afterwards does not reach this context.
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("rotated-later")
        .send()
        .await
        .unwrap();
    assert!(!format!("{ctx:?}").contains(TOKEN));
    assert_sent(&consumer_token_sent(&ctx, &seen).await);

    // A secret that does not exist leaves the provider unconfigured (it says so when used);
    // one that cannot be read stops start-up, naming the variable and the secret.
    vars.insert(name_var.clone(), format!("{name}-missing"));
    let cfg = Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).unwrap();
    let ctx = AppContext::build(cfg, Some(aws.clone())).await.unwrap();
    let provider = ctx.providers.get("tripletex").unwrap();
    let creds = ProviderSession {
        workspace_id: "acme".into(),
        secrets: BTreeMap::from([("employee_token".to_owned(), SecretValue::new("e"))]),
        settings: serde_json::json!({}),
    };
    let err = provider
        .create_session(&creds, chrono::Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");

    let broken = hourbridge_testkit::config_for("http://127.0.0.1:1").await;
    vars.insert(name_var.clone(), name.clone());
    let cfg = Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).unwrap();
    match AppContext::build(cfg, Some(broken)).await {
        Err(e @ StartupError::ProviderSecret { .. }) => {
            let text = e.to_string();
            assert!(text.contains(TOKEN_VAR) && text.contains(&name), "{text}");
        }
        other => panic!("expected a provider secret error, got {other:?}"),
    }
}
