//! `hourbridge demo`: the whole Harvest and Hubstaff flow on one machine, through the same HTTP
//! API a host product uses — sandboxes for the providers, the real OAuth flow, a linked project
//! per provider, a reset-and-sync with progress, and a short report — then Basecamp: the owner
//! connects, chooses the `bc3` account, the first import, a host work log pushed to Basecamp —
//! then Tripletex: the billing backend enables the add-on, the admin's employee token is tested
//! and confirmed, the first sync links, imports and lists for review, and a webhook brings a
//! rename in Tripletex to the host.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use hourbridge_runtime::{AppContext, Config, Mode, env};
use hourbridge_sandbox::{Sandbox, Seed};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status();
        let text = res.text().await?;
        ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

/// Runs the demo with its data in `data_dir`.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    // The demo serves from its data directory like `serve` does: one process per directory.
    let _dir_lock = hourbridge_runtime::local::claim_data_dir(data_dir).await?;
    let sandbox = Sandbox::start(Seed::Demo)
        .await
        .context("starting the provider sandboxes")?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let vars = [
        (env::DATA_DIR, data_dir.display().to_string()),
        (env::PUBLIC_URL, base.clone()),
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
        (
            "HOURBRIDGE_BASECAMP_CLIENT_ID",
            hourbridge_sandbox::BASECAMP_DEMO_CLIENT_ID.to_owned(),
        ),
        (
            "HOURBRIDGE_BASECAMP_CLIENT_SECRET",
            hourbridge_sandbox::BASECAMP_DEMO_CLIENT_SECRET.to_owned(),
        ),
        ("HOURBRIDGE_TRIPLETEX_API_URL", sandbox.tripletex_api_url()),
        (
            "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN",
            hourbridge_sandbox::TRIPLETEX_DEMO_CONSUMER_TOKEN.to_owned(),
        ),
        // The TimeLog sandbox is reached over http on 127.0.0.1.
        (env::TIMELOG_ALLOW_HTTP, "1".to_owned()),
    ];
    let config = Config::from_lookup(Mode::Local, |k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })?;
    let ctx = AppContext::build(config, None).await?;
    let _workers = ctx.start_local_workers();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_ctx = ctx.clone();
    let server = tokio::spawn(async move {
        crate::serve(&server_ctx, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    println!(
        "Hourbridge API on {base}; provider sandboxes on {}",
        sandbox.base_url()
    );

    let workspace = format!("demo-{}", &hourbridge_domain::new_id().as_str()[24..]);
    let token = crate::issue_token(
        &ctx,
        &workspace,
        "olga",
        "owner",
        chrono::Duration::hours(2),
    )?;
    let api = Api {
        base: base.clone(),
        token,
        http: reqwest::Client::new(),
    };
    api.call(
        reqwest::Method::POST,
        "/v1/workspaces",
        Some(json!({"name": "Acme (demo)", "time_zone": "Europe/Oslo", "owner": {"name": "Olga Owner", "email": "olga@acme.test"}})),
    )
    .await?;
    for (name, email, role) in [
        ("Ada Admin", "ada@acme.test", "admin"),
        ("Bob Builder", "bob.builder@acme.test", "manager"),
        ("Eve Engineer", "eve@acme.test", "member"),
    ] {
        api.call(
            reqwest::Method::POST,
            "/v1/people",
            Some(json!({"name": name, "email": email, "role": role})),
        )
        .await?;
    }
    let today = chrono::Utc::now().date_naive();
    let mut report = Vec::new();
    for (provider, client, secret, project, remote_names) in [
        (
            "harvest",
            "demo-harvest-client",
            "demo-harvest-secret",
            "Fleet & Mobile",
            ["Fleet Portal", "Mobile App"],
        ),
        (
            "hubstaff",
            "demo-hubstaff-client",
            "demo-hubstaff-secret",
            "Support & Research",
            ["Support Desk", "Research"],
        ),
    ] {
        let conn = api
            .call(
                reqwest::Method::PUT,
                &format!("/v1/connections/{provider}"),
                Some(json!({"client_id": client, "client_secret": secret})),
            )
            .await?;
        println!(
            "\n{provider}: paste this redirect URL into the OAuth app: {}",
            conn["redirect_url"].as_str().unwrap_or_default()
        );
        authorize(&api, provider).await?;
        let conn = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/connections/{provider}"),
                None,
            )
            .await?;
        println!(
            "{provider}: connected to {} ({})",
            conn["account"]["name"], conn["state"]
        );

        let remote = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/connections/{provider}/remote-projects"),
                None,
            )
            .await?;
        let ids: Vec<String> = remote["items"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|p| remote_names.contains(&p["name"].as_str().unwrap_or_default()))
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        ensure!(
            ids.len() == 2,
            "{provider}: expected the two demo projects, found {remote}"
        );
        let p = api
            .call(
                reqwest::Method::POST,
                "/v1/projects",
                Some(json!({"name": project, "start_date": (today - chrono::Duration::days(60)).to_string(), "end_date": (today + chrono::Duration::days(30)).to_string()})),
            )
            .await?;
        let pid = p["id"]
            .as_str()
            .ok_or_else(|| anyhow!("project without id"))?
            .to_owned();
        api.call(
            reqwest::Method::PUT,
            &format!("/v1/projects/{pid}/integrations/{provider}"),
            Some(json!({"remote_project_ids": ids, "sync_from": (today - chrono::Duration::days(60)).to_string(), "trim_assignments": true})),
        )
        .await?;
        let started = api
            .call(
                reqwest::Method::POST,
                &format!("/v1/projects/{pid}/integrations/{provider}/reset-and-sync"),
                Some(json!({"mode": "refetch"})),
            )
            .await?;
        let run_id = started["run_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no run id"))?
            .to_owned();
        let run = follow(&api, &format!("{provider} reset-and-sync"), &run_id).await?;
        let link = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/projects/{pid}/integrations/{provider}"),
                None,
            )
            .await?;
        let assignments = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/projects/{pid}/assignments"),
                None,
            )
            .await?;
        report.push((provider, project, run, link, assignments));
    }

    let people = api.call(reqwest::Method::GET, "/v1/people", None).await?;
    let name_of = |id: &Value| -> String {
        people["items"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| &p["id"] == id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    println!("\n=== Report ===");
    for (provider, project, run, link, assignments) in &report {
        let c = &run["counts"];
        println!(
            "{provider} → project \"{project}\": run {}",
            run["state"].as_str().unwrap_or("?")
        );
        println!(
            "  work logs: {} created, {} updated, {} deleted, {} unchanged, {} skipped (running timers or unmatched people)",
            c["created"], c["updated"], c["deleted"], c["unchanged"], c["skipped"]
        );
        let missing = link["missing_people"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if missing.is_empty() {
            println!("  missing people: none");
        } else {
            println!("  missing people (add them as Manager or Employee with this e-mail):");
            for m in missing {
                println!(
                    "    - {} <{}>",
                    m["name"].as_str().unwrap_or("?"),
                    m["email"].as_str().unwrap_or("no e-mail in provider")
                );
            }
        }
        println!("  assignments (trimmed to each person's synced logs):");
        for a in assignments["items"].as_array().cloned().unwrap_or_default() {
            println!(
                "    - {}: {} to {}",
                name_of(&a["person_id"]),
                a["start_date"].as_str().unwrap_or("open"),
                a["end_date"].as_str().unwrap_or("open")
            );
        }
    }
    basecamp(&api, &sandbox).await?;
    let service = Api {
        base: base.clone(),
        token: crate::issue_token(
            &ctx,
            &workspace,
            "billing",
            "service",
            chrono::Duration::hours(2),
        )?,
        http: reqwest::Client::new(),
    };
    tripletex(&api, &service, &sandbox).await?;
    timelog(&api, &sandbox).await?;
    // The Integrations UI, signed in as the owner. The token rides in the URL fragment, which
    // browsers never send to a server (so no access log holds it), and the page removes it
    // from the address bar as soon as it has read it.
    println!(
        "\n=== Integrations UI ===\nClick through what the demo connected (as Olga, the owner; \
         valid 2 hours, while the demo runs):\n  {base}/connect#token={}",
        api.token
    );
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        println!("The demo keeps serving until you press Ctrl-C.");
        tokio::signal::ctrl_c().await?;
    } else {
        println!(
            "(Not started from a terminal, so the demo stops now: run it in one to click through.)"
        );
    }
    println!(
        "\nThe demo's data is in {} (kept only with --data-dir). Serve it with: hourbridge serve --data-dir <dir>, \
         then: hourbridge token --workspace {workspace} --person olga --role owner --data-dir <dir>",
        data_dir.display()
    );
    let _ = stop_tx.send(());
    server.await??;
    sandbox.stop().await;
    Ok(())
}

/// Runs the OAuth authorization-code flow like a browser would: open the authorize URL, follow
/// the provider's redirect to our callback.
async fn authorize(api: &Api, provider: &str) -> anyhow::Result<()> {
    let a = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/connections/{provider}/authorize"),
            None,
        )
        .await?;
    let url = a["authorize_url"]
        .as_str()
        .ok_or_else(|| anyhow!("no authorize_url"))?;
    let back = hourbridge_sandbox::consent(url)
        .await
        .map_err(|e| anyhow!("{provider}: {e}"))?
        .callback_url;
    let browser = reqwest::Client::new();
    let done = browser.get(&back).send().await?;
    if !done.status().is_success() {
        bail!("callback failed: {}", done.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Polls a run, showing progress, until it ends.
async fn follow(api: &Api, label: &str, run_id: &str) -> anyhow::Result<Value> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let run = api
            .call(reqwest::Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await?;
        let c = &run["counts"];
        bar.set_message(format!(
            "{} — {} created, {} updated, {} deleted, {} unchanged, {} skipped",
            run["state"].as_str().unwrap_or("?"),
            c["created"],
            c["updated"],
            c["deleted"],
            c["unchanged"],
            c["skipped"]
        ));
        match run["state"].as_str() {
            Some("succeeded") => {
                bar.finish();
                return Ok(run);
            }
            Some("failed") => {
                bar.abandon();
                bail!(
                    "{label} run failed: {} {}",
                    run["failure"],
                    run["failure_message"]
                );
            }
            _ if std::time::Instant::now() > deadline => {
                bail!("{label} run did not finish in 5 minutes")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Basecamp as its owner uses it: connect with a daily time, authorize, choose the `bc3`
/// account, the first import (read-only projects and tasks), then a host work log on an
/// imported to-do pushed to Basecamp with "Synchronize now".
async fn basecamp(api: &Api, sandbox: &Sandbox) -> anyhow::Result<()> {
    println!("\n=== Basecamp ===");
    // A host person whose e-mail is a Basecamp member's: their time is pushed under their name.
    let jonas = api
        .call(
            reqwest::Method::POST,
            "/v1/people",
            Some(json!({"name": "Jonas Berg", "email": "jonas.berg@nordlys.example", "role": "member"})),
        )
        .await?;
    let jonas = jonas["id"]
        .as_str()
        .ok_or_else(|| anyhow!("person without id"))?
        .to_owned();
    let conn = api
        .call(
            reqwest::Method::PUT,
            "/v1/connections/basecamp",
            Some(json!({"sync_at": "18:30"})),
        )
        .await?;
    println!(
        "basecamp: daily synchronization at 18:30 (workspace time); {}",
        conn["state"].as_str().unwrap_or("?")
    );
    let a = api
        .call(
            reqwest::Method::POST,
            "/v1/connections/basecamp/authorize",
            None,
        )
        .await?;
    let url = a["authorize_url"]
        .as_str()
        .ok_or_else(|| anyhow!("no authorize_url"))?;
    let back = hourbridge_sandbox::consent(url)
        .await
        .map_err(|e| anyhow!("basecamp: {e}"))?
        .callback_url;
    let res = reqwest::get(&back).await?;
    let status = res.status();
    let text = res.text().await?;
    ensure!(status.is_success(), "basecamp callback failed: {text}");
    let cb: Value = serde_json::from_str(&text)?;
    ensure!(
        cb["state"] == "pending_account_choice",
        "basecamp: expected an account choice, got {cb}"
    );
    let mut accounts = vec![format!(
        "{} ({})",
        cb["account"].as_str().unwrap_or("?"),
        cb["account_id"].as_str().unwrap_or("?")
    )];
    accounts.extend(
        cb["accounts"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|a| {
                format!(
                    "{} ({})",
                    a["name"].as_str().unwrap_or("?"),
                    a["id"].as_str().unwrap_or("?")
                )
            }),
    );
    println!(
        "basecamp: authorized at Launchpad; the login has {} Basecamp accounts ({}), so the owner chooses one",
        accounts.len(),
        accounts.join(", ")
    );
    let conn = api
        .call(
            reqwest::Method::POST,
            "/v1/connections/basecamp/account",
            Some(json!({"account_id": hourbridge_sandbox::BASECAMP_DEMO_ACCOUNT_ID.to_string()})),
        )
        .await?;
    println!(
        "basecamp: chose {} ({}); the first import runs",
        conn["account"]["name"].as_str().unwrap_or("?"),
        conn["state"].as_str().unwrap_or("?")
    );
    let conn = settled(api, None).await?;
    ensure!(
        conn["status"]["kind"] == "succeeded",
        "basecamp: the first import failed: {}",
        conn["status"]
    );
    println!(
        "basecamp: {}",
        conn["status"]["label"].as_str().unwrap_or("?")
    );
    println!("  imported: {}", counts(&conn["status"]["imported"]));

    let projects = api
        .call(reqwest::Method::GET, "/v1/projects?limit=1000", None)
        .await?;
    let imported: Vec<Value> = projects["items"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|p| p["managed_by"] == "basecamp")
        .cloned()
        .collect();
    println!("  read-only projects (managed_by basecamp):");
    let mut target = None;
    for p in &imported {
        let id = p["id"].as_str().unwrap_or_default();
        let tasks = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/projects/{id}/tasks?limit=1000"),
                None,
            )
            .await?;
        let tasks = tasks["items"].as_array().cloned().unwrap_or_default();
        println!(
            "    - {}: {} task{}",
            p["name"].as_str().unwrap_or("?"),
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" }
        );
        if p["name"] == "Nordlys website relaunch" {
            target = tasks
                .iter()
                .find(|t| t["name"] == "Draft onboarding email sequence")
                .and_then(|t| t["id"].as_str())
                .map(|t| (id.to_owned(), t.to_owned()));
        }
    }
    let (project, task) = target.ok_or_else(|| {
        anyhow!(
            "basecamp: no \"Draft onboarding email sequence\" task on \"Nordlys website relaunch\""
        )
    })?;

    let date = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    api.call(
        reqwest::Method::POST,
        "/v1/worklogs",
        Some(
            json!({"person_id": jonas, "project_id": project, "task_id": task,
            "date": date.to_string(), "minutes": 20, "note": "Onboarding emails: first draft"}),
        ),
    )
    .await?;
    println!(
        "\nJonas Berg logs 20 minutes on \"Draft onboarding email sequence\" ({date}); Synchronize now:"
    );
    let before = conn["status"]["run_id"].as_str().map(str::to_owned);
    let started = api
        .call(reqwest::Method::POST, "/v1/connections/basecamp/sync", None)
        .await?;
    let run_id = started["run_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no run id"))?
        .to_owned();
    follow(api, "basecamp sync", &run_id).await?;
    let conn = settled(api, before.as_deref()).await?;
    let st = &conn["status"];
    println!("basecamp: {}", st["label"].as_str().unwrap_or("?"));
    println!("  work logs: {}", counts(&st["counts"]));
    println!("  imported: {}", counts(&st["imported"]));
    let problems = st["problems"].as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        println!("  problems: none");
    } else {
        println!("  problems:");
        for p in problems {
            println!(
                "    - {}: {}",
                p["code"].as_str().unwrap_or("?"),
                p["message"].as_str().unwrap_or("?")
            );
        }
    }
    let bc = sandbox.basecamp();
    let bc_web = bc
        .find_project("Nordlys website relaunch")
        .ok_or_else(|| anyhow!("no Basecamp project \"Nordlys website relaunch\""))?;
    let todo = bc.find_todo("Draft onboarding email sequence");
    println!("  Basecamp's timesheet of \"Nordlys website relaunch\" now holds:");
    for e in bc.timesheet_entries(bc_web) {
        println!(
            "    - {} {}:{:02} on {}: {}",
            e.date,
            e.seconds / 3600,
            e.seconds % 3600 / 60,
            if Some(e.recording_id) == todo {
                "\"Draft onboarding email sequence\""
            } else {
                "the project"
            },
            e.description
        );
    }
    Ok(())
}

/// TimeLog as an admin connects it: Activate with the seven fields, people linked by their
/// suggested e-mail match, one project linked; then a 15-minute cycle both ways, and a
/// registration made in TimeLog coming into the host.
async fn timelog(api: &Api, sandbox: &Sandbox) -> anyhow::Result<()> {
    use reqwest::Method;
    println!("\n=== TimeLog ===");
    let conn = api
        .call(
            Method::PUT,
            "/v1/connections/timelog",
            Some(sandbox.timelog_connect_body()),
        )
        .await?;
    println!(
        "timelog: Activate → {} (both APIs accepted the credentials; next cycle {})",
        conn["state"].as_str().unwrap_or("?"),
        conn["next_run_at"].as_str().unwrap_or("?")
    );
    let users = api
        .call(Method::GET, "/v1/connections/timelog/remote-users", None)
        .await?;
    let mut linked = Vec::new();
    for u in users["items"].as_array().cloned().unwrap_or_default() {
        let Some(person) = u["suggested_person_id"].as_str() else {
            println!(
                "  TimeLog user {} ({}): no host person with that e-mail, not linked",
                u["name"].as_str().unwrap_or("?"),
                u["email"].as_str().unwrap_or("no e-mail")
            );
            continue;
        };
        api.call(
            Method::PUT,
            &format!("/v1/people/{person}/integrations/timelog"),
            Some(json!({"remote_user_id": u["id"]})),
        )
        .await?;
        println!(
            "  linked TimeLog user {} ({}, {}) to host person {person} (same e-mail)",
            u["name"].as_str().unwrap_or("?"),
            u["initials"].as_str().unwrap_or("?"),
            u["email"].as_str().unwrap_or("?")
        );
        linked.push(person.to_owned());
    }
    let projects = api
        .call(
            Method::GET,
            "/v1/connections/timelog/remote-projects?q=intranet",
            None,
        )
        .await?;
    let remote = projects["items"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no TimeLog project matches \"intranet\": {projects}"))?
        .to_owned();
    let project = api
        .call(
            Method::POST,
            "/v1/projects",
            Some(json!({"name": "Intranet relaunch (TimeLog)"})),
        )
        .await?;
    let project = project["id"]
        .as_str()
        .ok_or_else(|| anyhow!("project without id"))?
        .to_owned();
    api.call(
        Method::PUT,
        &format!("/v1/projects/{project}/integrations/timelog"),
        Some(json!({"remote_project_ids": [remote]})),
    )
    .await?;
    println!("host project {project} linked to TimeLog project {remote}");
    let task = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/tasks"),
            Some(json!({"name": "Homepage copy", "assignee_ids": linked})),
        )
        .await?;
    let task = task["id"]
        .as_str()
        .ok_or_else(|| anyhow!("task without id"))?
        .to_owned();
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    if let Some(person) = linked.first() {
        for (minutes, note) in [(90, "homepage draft"), (30, "review call")] {
            api.call(
                Method::POST,
                "/v1/worklogs",
                Some(
                    json!({"person_id": person, "project_id": project, "task_id": task,
                    "date": day, "minutes": minutes, "note": note}),
                ),
            )
            .await?;
        }
        println!("host: task \"Homepage copy\" assigned to the linked people, two work logs");
    }
    let run = cycle(api, "timelog cycle (Synchronize now)").await?;
    println!(
        "  tasks pushed: {}; work logs both ways: {}",
        counts(&run["tasks_pushed"]),
        counts(&run["counts"])
    );
    for p in run["problems"].as_array().cloned().unwrap_or_default() {
        println!(
            "  problem {}: {}",
            p["code"].as_str().unwrap_or("?"),
            p["message"].as_str().unwrap_or("?")
        );
    }
    let tl = sandbox.timelog();
    let ours = tl
        .tasks()
        .into_iter()
        .find(|t| t.external_keys.iter().any(|(_, k)| *k == task));
    let Some(t) = ours else {
        bail!("the host task did not reach TimeLog");
    };
    println!(
        "  in TimeLog: task {} \"{}\" with {} registrations",
        t.id,
        t.name,
        tl.work().iter().filter(|w| w.task_id == t.id).count()
    );
    let someone = tl.employees().into_iter().find(|e| {
        e.active
            && e.initials != hourbridge_sandbox::TIMELOG_SYNC_INITIALS
            && tl.allocation_count(e.id, t.id) > 0
    });
    if let Some(e) = someone {
        let today = chrono::Utc::now().date_naive();
        if tl
            .register_work(&e.initials, &t.guid, today, 45, "registered in TimeLog")
            .is_some()
        {
            let run = cycle(api, "timelog cycle after a registration in TimeLog").await?;
            println!(
                "  {} registered 45 minutes in TimeLog → host work logs: {}",
                e.name,
                counts(&run["counts"])
            );
        }
    }
    Ok(())
}

/// "Synchronize now" of TimeLog, followed to its end.
async fn cycle(api: &Api, label: &str) -> anyhow::Result<Value> {
    let started = api
        .call(reqwest::Method::POST, "/v1/connections/timelog/sync", None)
        .await?;
    let run_id = started["run_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no run id"))?
        .to_owned();
    follow(api, label, &run_id).await
}

/// Tripletex as an admin connects it: the billing backend enables the add-on, the employee
/// token is saved, tested and confirmed, "Start synchronization" links host records by
/// organisation number and name and lists the unclear ones for review; then a project renamed
/// in Tripletex reaches the host by webhook.
async fn tripletex(api: &Api, service: &Api, sandbox: &Sandbox) -> anyhow::Result<()> {
    use reqwest::Method;
    println!("\n=== Tripletex ===");
    let id_of = |v: Value| -> anyhow::Result<String> {
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("record without id: {v}"))
    };
    // What the host has before the first sync: one customer with its organisation number, one
    // spelt differently and without one, and a project under the first.
    let fjordkraft = id_of(
        api.call(
            Method::POST,
            "/v1/customers",
            Some(json!({"name": "Fjordkraft Digital AS", "organization_number": "998877665"})),
        )
        .await?,
    )?;
    api.call(
        Method::POST,
        "/v1/customers",
        Some(json!({"name": "Hansen Rorlegger ENK"})),
    )
    .await?;
    api.call(
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "Fjordkraft intranett", "customer_id": fjordkraft})),
    )
    .await?;
    println!(
        "host: customers \"Fjordkraft Digital AS\" (998877665) and \"Hansen Rorlegger ENK\", project \"Fjordkraft intranett\""
    );

    service
        .call(Method::PUT, "/v1/workspace/addons/tripletex", None)
        .await?;
    println!(
        "billing backend (service token): PUT /v1/workspace/addons/tripletex → add-on enabled"
    );
    let conn = api
        .call(
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": hourbridge_sandbox::TRIPLETEX_DEMO_EMPLOYEE_TOKEN})),
        )
        .await?;
    println!(
        "tripletex: employee token saved ({})",
        conn["state"].as_str().unwrap_or("?")
    );
    let t = api
        .call(Method::POST, "/v1/connections/tripletex/test", None)
        .await?;
    println!(
        "tripletex: Test API → company {} ({}), employee {} ({})",
        t["company"]["name"].as_str().unwrap_or("?"),
        match &t["company"]["id"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        },
        // The name when Tripletex gives one, else the employee's id.
        t["employee"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| match &t["employee"]["id"] {
                Value::String(s) => format!("id {s}"),
                v => format!("id {v}"),
            }),
        t["state"].as_str().unwrap_or("?")
    );
    let conn = api
        .call(Method::POST, "/v1/connections/tripletex/confirm", None)
        .await?;
    println!(
        "tripletex: confirmed ({}); {} webhook subscriptions in Tripletex",
        conn["state"].as_str().unwrap_or("?"),
        sandbox.tripletex().subscriptions().len()
    );
    let started = api
        .call(Method::POST, "/v1/connections/tripletex/sync", None)
        .await?;
    let run_id = started["run_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no run id"))?
        .to_owned();
    follow(api, "tripletex Start synchronization", &run_id).await?;

    let customers = api
        .call(Method::GET, "/v1/customers?limit=1000", None)
        .await?;
    let customers: Vec<Value> = customers["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["managed_by"] == "tripletex")
        .collect();
    println!("  customers (managed_by tripletex, read-only):");
    for c in &customers {
        println!(
            "    - {} ({}){}{}",
            c["name"].as_str().unwrap_or("?"),
            c["organization_number"]
                .as_str()
                .unwrap_or("no organisation number"),
            if c["id"] == fjordkraft.as_str() {
                ", linked by organisation number"
            } else {
                ""
            },
            if c["active"] == false {
                ", inactive"
            } else {
                ""
            }
        );
    }
    let projects = api
        .call(Method::GET, "/v1/projects?limit=1000", None)
        .await?;
    let projects: Vec<Value> = projects["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["managed_by"] == "tripletex")
        .collect();
    let name_of = |id: &Value| {
        projects
            .iter()
            .find(|p| &p["id"] == id)
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    println!("  projects (managed_by tripletex, read-only):");
    for p in &projects {
        println!(
            "    - {}{}{}",
            p["name"].as_str().unwrap_or("?"),
            if p["parent_id"].is_string() {
                format!(", sub-project of \"{}\"", name_of(&p["parent_id"]))
            } else {
                String::new()
            },
            if p["active"] == false { ", closed" } else { "" }
        );
    }
    let review = api
        .call(Method::GET, "/v1/connections/tripletex/review", None)
        .await?;
    println!("  review list (answer with POST /v1/connections/tripletex/review/{{id}}):");
    for i in review["items"].as_array().cloned().unwrap_or_default() {
        let org = |v: &Value| {
            v["organization_number"]
                .as_str()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default()
        };
        let candidates: Vec<String> = i["candidates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| format!("\"{}\"{}", c["name"].as_str().unwrap_or("?"), org(c)))
            .collect();
        println!(
            "    - {} \"{}\"{}: {}, could be {}",
            i["kind"].as_str().unwrap_or("?"),
            i["remote"]["name"].as_str().unwrap_or("?"),
            org(&i["remote"]),
            i["reason"].as_str().unwrap_or("?"),
            candidates.join(" or ")
        );
    }
    let conn = api
        .call(Method::GET, "/v1/connections/tripletex", None)
        .await?;
    println!("  problems:");
    for p in conn["status"]["problems"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!(
            "    - {}: {}",
            p["code"].as_str().unwrap_or("?"),
            p["message"].as_str().unwrap_or("?")
        );
    }

    let tx = sandbox.tripletex();
    let remote = tx
        .find_project("Fjordkraft intranett")
        .ok_or_else(|| anyhow!("no Tripletex project \"Fjordkraft intranett\""))?;
    ensure!(
        tx.rename_project(remote, "Fjordkraft intranett 2.0"),
        "renaming the Tripletex project"
    );
    println!(
        "\nIn Tripletex, \"Fjordkraft intranett\" is renamed \"Fjordkraft intranett 2.0\"; the webhook:"
    );
    let started = std::time::Instant::now();
    loop {
        let projects = api
            .call(Method::GET, "/v1/projects?limit=1000", None)
            .await?;
        if projects["items"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Fjordkraft intranett 2.0"))
        {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "tripletex: the webhook did not rename the host project in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "tripletex: the host's project is \"Fjordkraft intranett 2.0\" after {} ms",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// The connection view once its latest run (other than `after`) has ended.
async fn settled(api: &Api, after: Option<&str>) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let c = api
            .call(reqwest::Method::GET, "/v1/connections/basecamp", None)
            .await?;
        let run = c["status"]["run_id"].as_str();
        if run.is_some()
            && run != after
            && matches!(c["status"]["kind"].as_str(), Some("succeeded" | "failed"))
        {
            return Ok(c);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "basecamp: the run did not end in 2 minutes: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run counts as `1 created, 0 updated, 0 deleted, 0 unchanged, 0 skipped`.
fn counts(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return "none".to_owned();
    };
    let order = ["created", "updated", "deleted", "unchanged", "skipped"];
    order
        .iter()
        .filter_map(|k| o.get(*k).map(|n| format!("{n} {k}")))
        .chain(
            o.iter()
                .filter(|(k, _)| !order.contains(&k.as_str()))
                .map(|(k, n)| format!("{n} {k}")),
        )
        .collect::<Vec<_>>()
        .join(", ")
}
