#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = hourbridge_runtime::lambda_context().await?;
    lambda_http::run(webhooks::app(&ctx)).await
}
