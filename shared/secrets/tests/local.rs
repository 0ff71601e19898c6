//! The encrypted local secret store.

use hourbridge_secrets::{
    KEY_FILE, LocalSecretStore, SECRETS_FILE, SecretError, SecretStore, SecretValue,
};

const TOKEN: &str = "hb-plaintext-refresh-token-4f1c";

#[tokio::test]
async fn local_secrets_file_does_not_contain_the_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecretStore::open(dir.path(), None).unwrap();
    store
        .put("ws-1/harvest", &SecretValue::new(TOKEN))
        .await
        .unwrap();

    for file in [SECRETS_FILE, KEY_FILE] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(TOKEN), "{file} holds the plaintext");
        assert!(
            !text.contains("refresh-token"),
            "{file} holds part of the plaintext"
        );
    }
    assert_eq!(
        store.get("ws-1/harvest").await.unwrap().unwrap().expose(),
        TOKEN
    );
}

#[cfg(unix)]
#[tokio::test]
async fn generated_key_and_secrets_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecretStore::open(dir.path(), None).unwrap();
    store.put("a", &SecretValue::new("x")).await.unwrap();
    for file in [KEY_FILE, SECRETS_FILE] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file} mode {mode:o}");
    }
}

#[tokio::test]
async fn secrets_survive_reopening_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalSecretStore::open(dir.path(), None).unwrap();
        store.put("ws/a", &SecretValue::new("one")).await.unwrap();
        store.put("ws/b", &SecretValue::new("two")).await.unwrap();
        store
            .put("ws/a", &SecretValue::new("one-rotated"))
            .await
            .unwrap();
    }
    let store = LocalSecretStore::open(dir.path(), None).unwrap();
    assert_eq!(
        store.get("ws/a").await.unwrap().unwrap().expose(),
        "one-rotated"
    );
    store.delete("ws/a").await.unwrap();
    store.delete("ws/a").await.unwrap();
    assert!(store.get("ws/a").await.unwrap().is_none());
    assert_eq!(store.get("ws/b").await.unwrap().unwrap().expose(), "two");
}

#[tokio::test]
async fn a_wrong_key_cannot_read_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = SecretValue::new(base64_key(1));
    let key_b = SecretValue::new(base64_key(2));
    LocalSecretStore::open(dir.path(), Some(&key_a))
        .unwrap()
        .put("ws/x", &SecretValue::new("secret"))
        .await
        .unwrap();
    assert!(
        !dir.path().join(KEY_FILE).exists(),
        "a key given by env is not written to disk"
    );
    let other = LocalSecretStore::open(dir.path(), Some(&key_b)).unwrap();
    assert!(matches!(
        other.get("ws/x").await,
        Err(SecretError::Undecryptable(_))
    ));
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_name_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecretStore::open(dir.path(), None).unwrap();
    store
        .put("ws-a/harvest", &SecretValue::new("token-a"))
        .await
        .unwrap();
    let path = dir.path().join(SECRETS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ws-a/harvest", "ws-b/harvest");
    std::fs::write(&path, text).unwrap();
    assert!(matches!(
        store.get("ws-b/harvest").await,
        Err(SecretError::Undecryptable(_))
    ));
}

fn base64_key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}
