#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = hourbridge_runtime::lambda_context().await?;
    lambda_http::run(workspace_api::app(&ctx)).await
}
