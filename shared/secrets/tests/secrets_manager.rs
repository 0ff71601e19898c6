//! The Secrets Manager backend against moto_server.

use hourbridge_secrets::{SecretStore, SecretValue, SecretsManagerStore};

#[tokio::test]
async fn secrets_manager_stores_one_secret_per_connection() {
    let Some(config) = hourbridge_testkit::moto_config("Secrets Manager backend").await else {
        return;
    };
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let prefix = format!("{}/", hourbridge_testkit::unique_name("hourbridge"));
    let store = SecretsManagerStore::new(client.clone(), prefix.clone());

    assert!(store.get("ws-1/harvest").await.unwrap().is_none());
    store
        .put("ws-1/harvest", &SecretValue::new("{\"refresh\":\"r1\"}"))
        .await
        .unwrap();
    store
        .put("ws-1/hubstaff", &SecretValue::new("h1"))
        .await
        .unwrap();
    // Rotation overwrites in place.
    store
        .put("ws-1/harvest", &SecretValue::new("{\"refresh\":\"r2\"}"))
        .await
        .unwrap();
    assert_eq!(
        store.get("ws-1/harvest").await.unwrap().unwrap().expose(),
        "{\"refresh\":\"r2\"}"
    );

    // Stored under the prefix, one secret per connection.
    let listed = client.list_secrets().send().await.unwrap();
    let mut names: Vec<String> = listed
        .secret_list()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("{prefix}ws-1/harvest"),
            format!("{prefix}ws-1/hubstaff")
        ]
    );

    store.delete("ws-1/harvest").await.unwrap();
    store.delete("ws-1/harvest").await.unwrap();
    assert!(store.get("ws-1/harvest").await.unwrap().is_none());
    assert_eq!(
        store.get("ws-1/hubstaff").await.unwrap().unwrap().expose(),
        "h1"
    );
}
