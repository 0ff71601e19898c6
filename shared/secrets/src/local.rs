use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;

use hourbridge_domain::{SecretError, SecretStore, SecretValue, check_secret_name as check_name};

/// File holding the encrypted secrets, in the data directory.
pub const SECRETS_FILE: &str = "secrets.enc.json";
/// File holding the generated key when none is given by environment, created with mode 0600.
pub const KEY_FILE: &str = "secrets.key";

const NONCE_LEN: usize = 12;

/// Secrets encrypted with AES-256-GCM in one JSON file (`name -> base64(nonce || ciphertext)`).
/// The secret's name is the associated data, so a ciphertext moved to another name fails to
/// decrypt instead of handing one connection's token to another.
pub struct LocalSecretStore {
    path: PathBuf,
    cipher: Aes256Gcm,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LocalSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecretStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> SecretError {
    SecretError::Backend(e.to_string())
}

impl LocalSecretStore {
    /// Opens the store in `data_dir`. The key is `key_b64` (32 bytes, base64) when given;
    /// otherwise it is read from [`KEY_FILE`], which is created (mode 0600) on first use.
    pub fn open(data_dir: &Path, key_b64: Option<&SecretValue>) -> Result<Self, SecretError> {
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let key = match key_b64 {
            Some(k) => decode_key(k.expose())?,
            None => load_or_create_key(&data_dir.join(KEY_FILE))?,
        };
        Ok(Self {
            path: data_dir.join(SECRETS_FILE),
            cipher: Aes256Gcm::new_from_slice(&key)
                .map_err(|e| SecretError::Backend(e.to_string()))?,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn read_all(&self) -> Result<BTreeMap<String, String>, SecretError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| SecretError::Undecryptable(self.path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(e)),
        }
    }

    fn write_all(&self, all: &BTreeMap<String, String>) -> Result<(), SecretError> {
        let bytes =
            serde_json::to_vec_pretty(all).map_err(|e| SecretError::Backend(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        write_private(&tmp, &bytes)?;
        // Rename is atomic: a crash leaves the old file or the new one, never half of one.
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    fn seal(&self, name: &str, plain: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Backend("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    fn open_sealed(&self, name: &str, sealed: &str) -> Result<SecretValue, SecretError> {
        let bad = || SecretError::Undecryptable(name.to_owned());
        let raw = B64.decode(sealed).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(plain)
            .map(SecretValue::new)
            .map_err(|_| bad())
    }
}

fn decode_key(b64: &str) -> Result<Vec<u8>, SecretError> {
    let key = B64
        .decode(b64.trim())
        .map_err(|_| SecretError::Backend("secrets key is not base64".into()))?;
    if key.len() != 32 {
        return Err(SecretError::Backend(
            "secrets key must be 32 bytes (base64)".into(),
        ));
    }
    Ok(key)
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(path, B64.encode(key).as_bytes())?;
            Ok(key.to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes a file readable by its owner only (mode 0600 from creation, never wider).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        check_name(name)?;
        let _g = self.lock.lock().await;
        let mut all = self.read_all()?;
        all.insert(name.to_owned(), self.seal(name, value.expose())?);
        self.write_all(&all)
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        check_name(name)?;
        let _g = self.lock.lock().await;
        match self.read_all()?.get(name) {
            Some(sealed) => self.open_sealed(name, sealed).map(Some),
            None => Ok(None),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        check_name(name)?;
        let _g = self.lock.lock().await;
        let mut all = self.read_all()?;
        if all.remove(name).is_some() {
            self.write_all(&all)?;
        }
        Ok(())
    }
}
