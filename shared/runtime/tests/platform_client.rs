//! The local binary's platform OAuth client: `HOURBRIDGE_BASECAMP_CLIENT_ID` and
//! `HOURBRIDGE_BASECAMP_CLIENT_SECRET` reach the engine through `AppContext::build`, the secret
//! only as a redacted value that is never written to the local secret store.

use std::collections::BTreeMap;

use hourbridge_domain::{RecordId, SecretStore as _, SecretValue};
use hourbridge_runtime::{AppContext, Config, Mode, env};

const ID: &str = "hourbridge-basecamp-app";
const SECRET: &str = "s3cr3t-basecamp-client-value";

/// The process environment of the child run of
/// [`a_local_context_from_the_process_environment_exposes_the_basecamp_client`].
const CHILD: &str = "HOURBRIDGE_TEST_PLATFORM_CLIENT_CHILD";

fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    let m: BTreeMap<&str, String> = pairs.into_iter().collect();
    move |k| m.get(k).cloned()
}

async fn assert_exposes_the_client(ctx: &AppContext, data_dir: &std::path::Path) {
    let pc = ctx
        .engine
        .settings
        .platform_clients
        .get("basecamp")
        .expect("basecamp has a platform client");
    assert_eq!(pc.client_id, ID);
    let got = ctx.engine.secrets.get(&pc.secret_name).await.unwrap();
    assert_eq!(got.as_ref().map(SecretValue::expose), Some(SECRET));
    // The engine's OAuth flow finds both: authorizing reads the client secret and sends the id.
    let person = RecordId::parse("olga").unwrap();
    ctx.engine
        .connect("acme", &person, "basecamp", BTreeMap::new())
        .await
        .unwrap();
    let url = ctx
        .engine
        .authorize("acme", &person, "basecamp")
        .await
        .unwrap();
    assert!(url.contains(&format!("client_id={ID}")), "{url}");
    // Never shown, never stored, not replaceable through the context's store.
    assert!(!format!("{ctx:?}").contains(SECRET));
    let store = hourbridge_secrets::LocalSecretStore::open(data_dir, None).unwrap();
    assert!(store.get(&pc.secret_name).await.unwrap().is_none());
    let on_disk = std::fs::read(data_dir.join(hourbridge_secrets::SECRETS_FILE)).unwrap();
    assert!(!String::from_utf8_lossy(&on_disk).contains(SECRET));
    assert!(
        ctx.secrets
            .put(&pc.secret_name, &SecretValue::new("other"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_local_context_with_basecamp_client_id_and_secret_exposes_the_client_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_lookup(
        Mode::Local,
        lookup(vec![
            (env::DATA_DIR, dir.path().display().to_string()),
            (env::BASECAMP_CLIENT_ID, ID.into()),
            (env::BASECAMP_CLIENT_SECRET, SECRET.into()),
        ]),
    )
    .unwrap();
    assert!(!format!("{config:?}").contains(SECRET));
    let ctx = AppContext::build(config, None).await.unwrap();
    assert_exposes_the_client(&ctx, dir.path()).await;
}

/// The same through the real process environment (`Config::from_env`, what `hourbridge serve`
/// reads): the test re-runs itself as a child with the variables set.
#[tokio::test]
async fn a_local_context_from_the_process_environment_exposes_the_basecamp_client() {
    if let Ok(dir) = std::env::var(CHILD) {
        let config = Config::from_env(Mode::Local).unwrap();
        let ctx = AppContext::build(config, None).await.unwrap();
        assert_exposes_the_client(&ctx, std::path::Path::new(&dir)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_local_context_from_the_process_environment_exposes_the_basecamp_client",
            "--nocapture",
        ])
        .env_clear()
        .env(CHILD, dir.path())
        .env(env::DATA_DIR, dir.path())
        .env(env::BASECAMP_CLIENT_ID, ID)
        .env(env::BASECAMP_CLIENT_SECRET, SECRET)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn without_a_client_id_basecamp_simply_cannot_be_connected() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_lookup(
        Mode::Local,
        lookup(vec![
            (env::DATA_DIR, dir.path().display().to_string()),
            (env::BASECAMP_CLIENT_SECRET, SECRET.into()),
        ]),
    )
    .unwrap();
    let ctx = AppContext::build(config, None).await.unwrap();
    assert!(ctx.engine.settings.platform_clients.is_empty());
    let err = ctx
        .engine
        .connect(
            "acme",
            &RecordId::parse("olga").unwrap(),
            "basecamp",
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");
}
