//! Webhook delivery: the payload Basecamp POSTs for a `todo_*` event, sent over a minimal
//! HTTP/1.1 client (the sandbox serves and delivers plain HTTP on loopback only).

use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpStream;

use super::{BasecampState, MillisTs, WebhookDelivery, api};

/// Failed deliveries in a row after which Basecamp deactivates a webhook.
const MAX_FAILURES: u32 = 10;

/// One payload for one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    webhook: u64,
    event_id: u64,
    kind: String,
    recording: u64,
    url: String,
    body: String,
}

/// The deliveries an event on `todo` causes: one per active webhook of its project that
/// subscribes to `Todo` (or to every type).
pub(crate) fn prepare(s: &mut BasecampState, todo: u64, kind: &str) -> Vec<Job> {
    let Some(t) = s.todos.get(&todo).cloned() else {
        return Vec::new();
    };
    let hooks: Vec<(u64, String)> = s
        .webhooks
        .values()
        .filter(|w| {
            w.project == t.project
                && w.active
                && (w.types.is_empty() || w.types.iter().any(|x| x == "Todo"))
        })
        .map(|w| (w.id, w.payload_url.clone()))
        .collect();
    if hooks.is_empty() {
        return Vec::new();
    }
    let Some(project) = s.projects.get(&t.project).cloned() else {
        return Vec::new();
    };
    let account = project.account;
    let origin = format!("{}/basecamp/api/{account}", s.common.origin);
    let creator = s
        .me(account)
        .and_then(|id| s.people.get(&id))
        .map(|p| api::person_json(&origin, p))
        .unwrap_or(serde_json::Value::Null);
    let parent = s.lists.get(&t.list).cloned();
    hooks
        .into_iter()
        .map(|(webhook, url)| {
            let event_id = s.next_id();
            // The generic recording shape: no `completed`, `assignees` or `description`.
            let body = serde_json::json!({
                "id": event_id,
                "kind": kind,
                "details": {},
                "created_at": MillisTs(Utc::now()),
                "recording": {
                    "id": t.id,
                    "status": t.status.as_str(),
                    "visible_to_clients": false,
                    "created_at": MillisTs(t.created_at),
                    "updated_at": MillisTs(t.updated_at),
                    "title": t.title,
                    "inherits_status": true,
                    "type": "Todo",
                    "url": format!("{origin}/todos/{}.json", t.id),
                    "app_url": format!("https://3.basecamp.com/{account}/buckets/{}/todos/{}", t.project, t.id),
                    "content": t.title,
                    "parent": parent.as_ref().map(|l| serde_json::json!({
                        "id": l.id,
                        "title": l.name,
                        "type": "Todolist",
                        "url": format!("{origin}/todolists/{}.json", l.id),
                    })),
                    "bucket": { "id": project.id, "name": project.name, "type": "Project" },
                    "creator": creator,
                },
                "creator": creator,
            })
            .to_string();
            Job {
                webhook,
                event_id,
                kind: kind.to_owned(),
                recording: t.id,
                url,
                body,
            }
        })
        .collect()
}

/// POSTs one payload; answers the HTTP status, `None` when the URL could not be reached or
/// answered no readable status line within 10 s.
pub(crate) async fn post(job: &Job) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(10), post_inner(job))
        .await
        .ok()
        .flatten()
}

async fn post_inner(job: &Job) -> Option<u16> {
    let url = url::Url::parse(&job.url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let stream = TcpStream::connect((host, port)).await.ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n\
         User-Agent: Basecamp3 Webhook\r\nX-Request-Id: {}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        job.event_id,
        job.body.len(),
        job.body
    );
    // Plain readiness + try_* calls: the sandbox's Tokio has no `io-util`.
    let mut data = request.as_bytes();
    while !data.is_empty() {
        stream.writable().await.ok()?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        stream.readable().await.ok()?;
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Records a delivery; only 2xx counts, and too many failures in a row deactivate the hook.
pub(crate) fn record(s: &mut BasecampState, job: &Job, status: Option<u16>) {
    let Some(w) = s.webhooks.get_mut(&job.webhook) else {
        return;
    };
    w.deliveries.push(WebhookDelivery {
        event_id: job.event_id,
        kind: job.kind.clone(),
        recording_id: job.recording,
        status,
    });
    if w.deliveries.len() > 25 {
        w.deliveries.remove(0);
    }
    if status.is_some_and(|c| (200..300).contains(&c)) {
        w.failures_in_a_row = 0;
    } else {
        w.failures_in_a_row += 1;
        if w.failures_in_a_row >= MAX_FAILURES {
            w.active = false;
        }
    }
}
