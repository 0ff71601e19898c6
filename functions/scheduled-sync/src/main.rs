use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ctx = hourbridge_runtime::lambda_context().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        scheduled_sync::handler(&ctx, event)
    }))
    .await
}
