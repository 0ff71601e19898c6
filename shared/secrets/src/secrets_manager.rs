use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use hourbridge_domain::{SecretError, SecretStore, SecretValue, check_secret_name as check_name};

/// AWS Secrets Manager: one secret per connection, named `{prefix}{name}`. IAM limits the
/// functions to that prefix (see `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> SecretError {
    if matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)) {
        return SecretError::Unavailable(format!("{e:?}"));
    }
    match e.code() {
        Some("ThrottlingException" | "InternalServiceError" | "ServiceUnavailable") => {
            SecretError::Unavailable(e.code().unwrap_or_default().to_owned())
        }
        // Only the code: messages of some errors echo request parameters.
        code => SecretError::Backend(code.unwrap_or("unknown").to_owned()),
    }
}

impl SecretsManagerStore {
    /// A store whose secrets are all named `{prefix}...`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn full_name(&self, name: &str) -> Result<String, SecretError> {
        check_name(name)?;
        let full = format!("{}{name}", self.prefix);
        check_name(&full)?;
        Ok(full)
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        let id = self.full_name(name)?;
        let created = self
            .client
            .create_secret()
            .name(&id)
            .secret_string(value.expose())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceExistsException") => {
                self.client
                    .put_secret_value()
                    .secret_id(&id)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(())
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        let id = self.full_name(name)?;
        match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretValue::new)),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        let id = self.full_name(name)?;
        match self
            .client
            .delete_secret()
            .secret_id(&id)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}
