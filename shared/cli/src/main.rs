use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hourbridge_runtime::{AppContext, Config, Mode, env, init_tracing};

/// Hourbridge, locally: the API on an embedded SQLite store.
#[derive(Parser)]
#[command(name = "hourbridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Data directory (SQLite file, encrypted secrets, generated keys).
        #[arg(long, env = "HOURBRIDGE_DATA_DIR", default_value = ".hourbridge")]
        data_dir: PathBuf,
        /// Seconds a worker holds a connection's lease between renewals (default 120). Tests
        /// shorten it so a run left by a killed process is resumed without a 2-minute wait.
        #[arg(long, hide = true)]
        lease_ttl_secs: Option<i64>,
    },
    /// Run the demo: provider sandboxes, real OAuth, a linked project per provider, a
    /// reset-and-sync with progress, and a report; then Basecamp connected by the owner, its
    /// first import and a host work log pushed to it; then Tripletex: the add-on, the employee
    /// token tested and confirmed, the first sync's links and review list, and a webhook.
    Demo {
        /// Data directory (default: a fresh temporary one).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve the provider sandboxes (Harvest, Hubstaff, Basecamp, Tripletex, TimeLog; demo data)
    /// until Ctrl-C.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9900")]
        addr: SocketAddr,
        /// Extra generated Harvest time entries on "Fleet Portal" (spread over Ada, Bob, Dee
        /// and Eve in the last 44 days), to try large syncs.
        #[arg(long, default_value_t = 0)]
        entries: usize,
        /// Delay before answering each data-API request, in milliseconds (both providers).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Print a bearer token for the local server.
    Token {
        /// Workspace id (the `ws` claim).
        #[arg(long)]
        workspace: String,
        /// Person id (the `sub` claim).
        #[arg(long)]
        person: String,
        /// Role: owner, admin, manager or member; or service (the billing backend: reads and
        /// manages add-ons only).
        #[arg(long)]
        role: String,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24 * 30)]
        ttl_hours: i64,
        /// Data directory whose generated key signs the token.
        #[arg(long, env = "HOURBRIDGE_DATA_DIR", default_value = ".hourbridge")]
        data_dir: PathBuf,
    },
}

fn local_config(data_dir: &std::path::Path) -> anyhow::Result<Config> {
    let dir = data_dir.display().to_string();
    Ok(Config::from_lookup(Mode::Local, |k| {
        if k == env::DATA_DIR {
            Some(dir.clone())
        } else {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        }
    })?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            addr,
            data_dir,
            lease_ttl_secs,
        } => {
            let config = local_config(&data_dir)?;
            init_tracing(config.log_json);
            // Before the store is used: one server per data directory, and what a killed one
            // held is freed at once.
            let _dir_lock = hourbridge_runtime::local::claim_data_dir(&data_dir).await?;
            let mut ctx = AppContext::build(config, None).await?;
            if let Some(secs) = lease_ttl_secs {
                anyhow::ensure!(secs > 0, "--lease-ttl-secs must be positive");
                ctx.engine.settings.lease_ttl = chrono::Duration::seconds(secs);
            }
            // The README promises that `serve` runs syncs: without the in-process worker and
            // scheduler every queued run would stay queued forever.
            let _workers = ctx.start_local_workers();
            // Signal handlers first: a SIGTERM that arrives as soon as the port is open must
            // stop the server gracefully, not kill it.
            let stop = shutdown_signal();
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, data_dir = %data_dir.display(), "hourbridge serving");
            hourbridge::serve(&ctx, listener, stop).await?;
            tracing::info!("stopped");
        }
        Command::Demo { data_dir } => {
            hourbridge_runtime::init_tracing_at(false, "warn");
            match data_dir {
                Some(dir) => hourbridge::demo::run(&dir).await?,
                None => {
                    let dir = tempfile::tempdir()?;
                    hourbridge::demo::run(dir.path()).await?;
                }
            }
        }
        Command::Sandbox {
            addr,
            entries,
            latency_ms,
        } => {
            let sandbox =
                hourbridge_sandbox::Sandbox::start_on(addr, hourbridge_sandbox::Seed::Demo).await?;
            let latency = std::time::Duration::from_millis(latency_ms);
            sandbox.harvest().set_latency(latency);
            sandbox.hubstaff().set_latency(latency);
            if entries > 0 {
                add_harvest_entries(&sandbox.harvest(), entries)?;
            }
            println!("{}", sandbox.describe());
            println!("Point a server at it with:");
            for (var, url) in [
                ("HOURBRIDGE_HARVEST_API_URL", sandbox.harvest_api_url()),
                ("HOURBRIDGE_HARVEST_ID_URL", sandbox.harvest_id_url()),
                ("HOURBRIDGE_HUBSTAFF_API_URL", sandbox.hubstaff_api_url()),
                (
                    "HOURBRIDGE_HUBSTAFF_ACCOUNT_URL",
                    sandbox.hubstaff_account_url(),
                ),
                (
                    "HOURBRIDGE_BASECAMP_LAUNCHPAD_URL",
                    sandbox.basecamp_launchpad_url(),
                ),
                ("HOURBRIDGE_BASECAMP_API_URL", sandbox.basecamp_api_url()),
                // Hourbridge's own Basecamp app is, against the sandbox, its demo client.
                (
                    "HOURBRIDGE_BASECAMP_CLIENT_ID",
                    hourbridge_sandbox::BASECAMP_DEMO_CLIENT_ID.to_owned(),
                ),
                (
                    "HOURBRIDGE_BASECAMP_CLIENT_SECRET",
                    hourbridge_sandbox::BASECAMP_DEMO_CLIENT_SECRET.to_owned(),
                ),
                ("HOURBRIDGE_TRIPLETEX_API_URL", sandbox.tripletex_api_url()),
                // Hourbridge's own Tripletex integration is, against the sandbox, its demo
                // consumer.
                (
                    "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN",
                    hourbridge_sandbox::TRIPLETEX_DEMO_CONSUMER_TOKEN.to_owned(),
                ),
                // The TimeLog sandbox's site is http://127.0.0.1:PORT/{account}/.
                ("HOURBRIDGE_TIMELOG_ALLOW_HTTP", "1".to_owned()),
            ] {
                println!("  export {var}={url}");
            }
            println!(
                "Tripletex: the admin's employee token (PUT /v1/connections/tripletex \
                 {{\"employee_token\": ...}}) is {} (Kari, all entitlements).",
                hourbridge_sandbox::TRIPLETEX_DEMO_EMPLOYEE_TOKEN
            );
            let stop = shutdown_signal();
            // The last line: whoever reads the variables above can stop reading here.
            println!("Sandbox ready; Ctrl-C stops it.");
            stop.await;
            sandbox.stop().await;
        }
        Command::Token {
            workspace,
            person,
            role,
            ttl_hours,
            data_dir,
        } => {
            let ctx = AppContext::build(local_config(&data_dir)?, None).await?;
            let token = hourbridge::issue_token(
                &ctx,
                &workspace,
                &person,
                &role,
                chrono::Duration::hours(ttl_hours),
            )?;
            println!("{token}");
        }
    }
    Ok(())
}

/// Generates `count` stopped entries on the demo's "Fleet Portal", round-robin over the demo
/// users a host can match by e-mail.
fn add_harvest_entries(
    harvest: &hourbridge_sandbox::HarvestControl,
    count: usize,
) -> anyhow::Result<()> {
    let project = harvest
        .find_project("Fleet Portal")
        .context("the demo seed has no \"Fleet Portal\"")?;
    let users = [
        "ada@acme.test",
        "bob.builder@acme.test",
        "dee@elsewhere.test",
        "eve@acme.test",
    ]
    .iter()
    .map(|e| {
        harvest
            .find_user(e)
            .with_context(|| format!("no demo user {e}"))
    })
    .collect::<anyhow::Result<Vec<u64>>>()?;
    let from = chrono::Utc::now().date_naive() - chrono::Days::new(44);
    harvest.bulk_time_entries(project, &users, count, from, 44);
    Ok(())
}

/// Ctrl-C or SIGTERM (what process managers send) both stop the server gracefully.
/// Waits for SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal right after start-up is never the default (fatal) one.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
