//! Webhook callbacks: `{subscriptionId, event, id, value}` POSTed to each active subscription's
//! `targetUrl`, with `idempotency-key`, the optional auth header and, when the subscription has
//! a `hmacSharedSecret`, `x-request-signature` = base64(HMAC-SHA512(secret, key + "&" + body)).
//! Sent over a minimal HTTP/1.1 client (plain HTTP on loopback only).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::net::TcpStream;

use super::{
    MAX_FAILURES, SubscriptionStatus, TripletexDelivery, TripletexState, api, hmac_sha512,
};
use crate::common::random_string;

/// One callback for one subscription.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) subscription: u64,
    pub(crate) event: String,
    pub(crate) object: u64,
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) body: String,
    pub(crate) signature: Option<String>,
    pub(crate) auth_header: Option<(String, String)>,
    pub(crate) duplicate: bool,
    pub(crate) lost: bool,
}

/// `x-request-signature` for `body` sent with `idempotency_key`.
pub(crate) fn signature(secret: &str, idempotency_key: &str, body: &str) -> String {
    let data = format!("{idempotency_key}&{body}");
    STANDARD.encode(hmac_sha512(secret.as_bytes(), data.as_bytes()))
}

/// The callbacks `event` about `id` causes, with queued duplicate/lose faults applied.
pub(crate) fn prepare(s: &mut TripletexState, event: &str, id: u64) -> Vec<Job> {
    let subs: Vec<_> = s
        .subscriptions
        .values()
        .filter(|x| x.event == event && x.status == SubscriptionStatus::Active)
        .cloned()
        .collect();
    let host = api::host_of(&s.origin);
    let mut jobs = Vec::new();
    for sub in subs {
        let value = if event.ends_with(".delete") {
            serde_json::Value::Null
        } else {
            api::event_value(s, &host, event, id, &sub.fields)
        };
        let body = serde_json::json!({
            "subscriptionId": sub.id,
            "event": event,
            "id": id,
            "value": value,
        })
        .to_string();
        let key = format!(
            "{}-{}-{}-{}-{}",
            random_string(8),
            random_string(4),
            random_string(4),
            random_string(4),
            random_string(12)
        )
        .to_lowercase();
        let job = Job {
            subscription: sub.id,
            event: event.to_owned(),
            object: id,
            url: sub.target_url.clone(),
            signature: sub.secret.as_deref().map(|k| signature(k, &key, &body)),
            key,
            body,
            auth_header: sub.auth_header.clone(),
            duplicate: false,
            lost: false,
        };
        if s.lose > 0 {
            s.lose -= 1;
            jobs.push(Job { lost: true, ..job });
            continue;
        }
        let twice = s.duplicates > 0;
        s.duplicates = s.duplicates.saturating_sub(1);
        jobs.push(job.clone());
        if twice {
            jobs.push(Job {
                duplicate: true,
                ..job
            });
        }
    }
    jobs
}

/// POSTs one callback; answers the HTTP status, `None` when unreachable within 10 s.
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
    let mut extra = String::new();
    if !url.username().is_empty() {
        let user = percent(url.username());
        let pass = percent(url.password().unwrap_or(""));
        extra.push_str(&format!(
            "Authorization: Basic {}\r\n",
            STANDARD.encode(format!("{user}:{pass}"))
        ));
    }
    if let Some((name, value)) = &job.auth_header {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(sig) = &job.signature {
        extra.push_str(&format!("x-request-signature: {sig}\r\n"));
    }
    let stream = TcpStream::connect((host, port)).await.ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         User-Agent: Tripletex-Webhook\r\nidempotency-key: {}\r\n{extra}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        job.key,
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

fn percent(v: &str) -> String {
    url::form_urlencoded::parse(format!("x={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Records a delivery; failures in a row disable the subscription. Lost and duplicate
/// deliveries do not count towards that.
pub(crate) fn record(s: &mut TripletexState, job: &Job, status: Option<u16>) {
    s.deliveries.push(TripletexDelivery {
        subscription_id: job.subscription,
        event: job.event.clone(),
        object_id: job.object,
        idempotency_key: job.key.clone(),
        body: job.body.clone(),
        duplicate: job.duplicate,
        lost: job.lost,
        status,
    });
    if job.lost || job.duplicate {
        return;
    }
    let Some(sub) = s.subscriptions.get_mut(&job.subscription) else {
        return;
    };
    if status.is_some_and(|c| (200..300).contains(&c)) {
        sub.failures_in_a_row = 0;
    } else {
        sub.failures_in_a_row += 1;
        if sub.failures_in_a_row >= MAX_FAILURES && sub.status == SubscriptionStatus::Active {
            sub.status = SubscriptionStatus::DisabledTooManyErrors;
        }
    }
}
