use hourbridge_runtime::{AppContext, Config, Mode, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.log_json);
    let ctx = AppContext::build(config, None).await?;
    lambda_http::run(workspace_api::app(&ctx)).await
}
