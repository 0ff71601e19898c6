//! Tripletex's HTTP surface under `/tripletex/v2`. Paths carry literal `:create` and `>whoAmI`
//! segments (clients may percent-encode them), so routing is by hand on decoded segments.

use std::cmp::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::routing::any;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    COMPANY_ID, Customer, Employee, Project, RateInfo, Session, Subscription, SubscriptionStatus,
    TripletexControl, TripletexState, from_oslo, oslo_local, oslo_today, session_end,
};
use crate::common::{Injected, Params, json_response, parse_bool};

/// Where the Tripletex emulation is mounted inside the sandbox server.
const PREFIX: &str = "/tripletex";

/// Events a subscription may name, with the model their `value` has.
const EVENTS: &[(&str, &str)] = &[
    ("customer.create", "Customer"),
    ("customer.update", "Customer"),
    ("customer.delete", "Customer"),
    ("project.create", "Project"),
    ("project.update", "Project"),
    ("project.delete", "Project"),
    ("employee.create", "Employee"),
    ("employee.update", "Employee"),
    ("employee.delete", "Employee"),
];

/// Builds the Tripletex routes (mounted under [`PREFIX`] by the sandbox).
pub(crate) fn router(h: TripletexControl) -> Router {
    Router::new()
        .route("/v2", any(api))
        .route("/v2/{*rest}", any(api))
        .with_state(h)
}

/// An error answer in Tripletex's shape.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    code: u32,
    message: String,
    validation: Vec<(String, String)>,
}

fn reject(status: StatusCode, code: u32, message: impl Into<String>) -> Reject {
    Reject {
        status,
        code,
        message: message.into(),
        validation: Vec::new(),
    }
}

fn unauthorized(message: &str) -> Reject {
    reject(StatusCode::UNAUTHORIZED, 3000, message)
}

fn forbidden(message: &str) -> Reject {
    reject(StatusCode::FORBIDDEN, 9000, message)
}

fn not_found(what: &str) -> Reject {
    reject(StatusCode::NOT_FOUND, 6000, format!("{what} not found"))
}

fn bad_param(name: &str, value: &str) -> Reject {
    reject(
        StatusCode::UNPROCESSABLE_ENTITY,
        21000,
        format!("Wrong parameter: {name}={value}"),
    )
}

fn validation(field: &str, message: &str) -> Reject {
    Reject {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 18000,
        message: "Validation failed".into(),
        validation: vec![(field.to_owned(), message.to_owned())],
    }
}

fn not_allowed() -> Reject {
    reject(
        StatusCode::METHOD_NOT_ALLOWED,
        4000,
        "HTTP method not allowed",
    )
}

impl Reject {
    fn into_response(self, request_id: &str) -> Response<Body> {
        let validation = if self.validation.is_empty() {
            Value::Null
        } else {
            Value::Array(
                self.validation
                    .iter()
                    .map(|(f, m)| json!({ "field": f, "message": m }))
                    .collect(),
            )
        };
        let mut r = json_response(
            self.status,
            &json!({
                "status": self.status.as_u16(),
                "code": self.code,
                "message": self.message,
                "link": "https://tripletex.no/v2-docs/",
                "developerMessage": null,
                "validationMessages": validation,
                "requestId": request_id,
            }),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Tripletex\""),
            );
        }
        r
    }
}

async fn api(
    State(h): State<TripletexControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let latency = h.with(|s| {
        s.requests += 1;
        s.faults.latency
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    h.with(|s| {
        let request_id = format!(
            "{}-{}",
            crate::common::random_string(8).to_lowercase(),
            s.requests
        );
        let mut rate = None;
        let mut resp = match serve(s, &method, &uri, &headers, &body, &mut rate) {
            Ok(r) => {
                if method != Method::GET && r.status().is_success() {
                    s.writes += 1;
                }
                r
            }
            Err(e) => e.into_response(&request_id),
        };
        let hs = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            hs.insert("x-tlx-request-id", v);
        }
        if let Some((limit, remaining, reset)) = rate {
            hs.insert("X-Rate-Limit-Limit", HeaderValue::from(limit));
            hs.insert("X-Rate-Limit-Remaining", HeaderValue::from(remaining));
            hs.insert("X-Rate-Limit-Reset", HeaderValue::from(reset));
        }
        resp
    })
}

/// Percent-decodes one path segment (`%3EwhoAmI` → `>whoAmI`, `%3Acreate` → `:create`).
fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `127.0.0.1:PORT/tripletex/v2` from `http://127.0.0.1:PORT`: Tripletex's `url`s carry no
/// scheme (`tripletex.no/v2/customer/1`).
pub(crate) fn host_of(origin: &str) -> String {
    let o = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    format!("{o}{PREFIX}/v2")
}

/// The request as the handlers see it.
struct Req<'a> {
    method: &'a Method,
    segs: Vec<String>,
    params: Params,
    body: &'a [u8],
    host: String,
    session: Session,
}

fn serve(
    s: &mut TripletexState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    rate: &mut Option<RateInfo>,
) -> Result<Response<Body>, Reject> {
    let path = uri.path();
    let path = path.strip_prefix(PREFIX).unwrap_or(path);
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let segs: Vec<String> = path
        .split('/')
        .filter(|x| !x.is_empty())
        .map(decode)
        .collect();
    let params = Params::from_uri(uri);
    let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) if !h.is_empty() => format!("{h}{PREFIX}/v2"),
        _ => host_of(&s.origin),
    };
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Endpoints that need no authentication.
    match seg.as_slice() {
        ["token", "session", ":create"] => {
            if method != Method::PUT {
                return Err(not_allowed());
            }
            return create_session(s, &params, &host);
        }
        ["event"] if method == Method::GET => return Ok(single_list(event_map())),
        ["event", name] if *name != "subscription" && method == Method::GET => {
            return event_example(name);
        }
        _ => {}
    }
    if let Some(fault) = s.faults.take_injected() {
        let status = match fault {
            Injected::Fail(st) => st,
            Injected::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        return Err(reject(status, 1000, format!("Injected failure ({fault})")));
    }
    let session = authenticate(s, headers)?;
    let entitled = s
        .employee_tokens
        .get(&session.employee_token)
        .is_some_and(|t| t.entitled);
    let key = format!("{}/{}", session.consumer_id, session.employee_token);
    match s.budget.check(&key, Instant::now()) {
        Ok(info) => *rate = Some(info),
        Err(info) => {
            *rate = Some(info);
            return Err(reject(
                StatusCode::TOO_MANY_REQUESTS,
                0,
                "Request rate limit exceeded",
            ));
        }
    }
    if !entitled {
        return Err(forbidden(
            "You do not have permission to access this feature.",
        ));
    }
    let r = Req {
        method,
        segs: segs.clone(),
        params,
        body,
        host,
        session,
    };
    dispatch(s, &r)
}

fn authenticate(s: &TripletexState, headers: &HeaderMap) -> Result<Session, Reject> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("Authorization header missing"))?;
    let (scheme, value) = raw
        .split_once(' ')
        .ok_or_else(|| unauthorized("Malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthorized("Basic authentication required"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| unauthorized("Malformed Basic credentials"))?;
    let (user, token) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("Malformed Basic credentials"))?;
    let session = s
        .session(token, Utc::now())
        .cloned()
        .ok_or_else(|| unauthorized("Invalid or expired token"))?;
    match user.trim() {
        "" | "0" => Ok(session),
        u if u == COMPANY_ID.to_string() => Ok(session),
        u if u.parse::<u64>().is_ok() => Err(forbidden("No access to this company")),
        _ => Err(unauthorized("The username must be a company id (0)")),
    }
}

/// Creates a session for known tokens: `(token, id)`.
pub(crate) fn new_session(
    s: &mut TripletexState,
    consumer: &str,
    employee: &str,
    expiration: NaiveDate,
) -> Option<(String, u64)> {
    let consumer_id = *s.consumers.get(consumer)?;
    s.employee_tokens.get(employee)?;
    let id = 88_412_200 + s.sessions.len() as u64 + 1;
    let token = TripletexControl::mint_session_token(id);
    s.sessions.insert(
        token.clone(),
        Session {
            consumer_id,
            employee_token: employee.to_owned(),
            expires_at: session_end(expiration),
        },
    );
    Some((token, id))
}

fn create_session(
    s: &mut TripletexState,
    p: &Params,
    host: &str,
) -> Result<Response<Body>, Reject> {
    let mut missing = Vec::new();
    for name in ["consumerToken", "employeeToken", "expirationDate"] {
        if p.get(name).is_none_or(str::is_empty) {
            missing.push((name.to_owned(), "Kan ikke være null.".to_owned()));
        }
    }
    if !missing.is_empty() {
        return Err(Reject {
            validation: missing,
            ..validation("", "")
        });
    }
    let consumer = p.get("consumerToken").unwrap_or_default();
    let employee = p.get("employeeToken").unwrap_or_default();
    let raw_date = p.get("expirationDate").unwrap_or_default();
    let date = NaiveDate::parse_from_str(raw_date, "%Y-%m-%d")
        .map_err(|_| bad_param("expirationDate", raw_date))?;
    if date <= oslo_today(Utc::now()) {
        return Err(validation(
            "expirationDate",
            "The expiration date must be later than today.",
        ));
    }
    if !s.consumers.contains_key(consumer) || !s.employee_tokens.contains_key(employee) {
        return Err(forbidden("Invalid consumer or employee token"));
    }
    let consumer_id = s.consumers[consumer];
    let employee_id = s.employee_tokens[employee].id;
    let (token, id) = new_session(s, consumer, employee, date)
        .ok_or_else(|| forbidden("Invalid consumer or employee token"))?;
    Ok(single(json!({
        "id": id,
        "version": 0,
        "url": format!("{host}/token/session/{id}"),
        "consumerToken": { "id": consumer_id, "url": format!("{host}/token/consumer/{consumer_id}") },
        "employeeToken": { "id": employee_id, "url": format!("{host}/token/employee/{employee_id}") },
        "expirationDate": date.format("%Y-%m-%d").to_string(),
        "token": token,
    })))
}

fn event_map() -> Value {
    let mut m = Map::new();
    for (event, model) in EVENTS {
        let (object, verb) = event.split_once('.').unwrap_or((event, ""));
        m.insert(
            (*event).to_owned(),
            json!({
                "description": format!("{object} {verb}d"),
                "payloadModel": model,
            }),
        );
    }
    Value::Object(m)
}

fn event_example(name: &str) -> Result<Response<Body>, Reject> {
    if !EVENTS.iter().any(|(e, _)| e == &name) {
        return Err(not_found("Event"));
    }
    let value = if name.ends_with(".delete") {
        Value::Null
    } else {
        json!({ "id": 1, "version": 0 })
    };
    Ok(single(json!({
        "subscriptionId": 0,
        "event": name,
        "id": 1,
        "value": value,
    })))
}

fn single(value: Value) -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "value": value }))
}

fn single_list(value: Value) -> Response<Body> {
    single(value)
}

fn id(seg: &str) -> Result<u64, Reject> {
    seg.parse().map_err(|_| {
        reject(
            StatusCode::BAD_REQUEST,
            12000,
            format!("Illegal path parameter: {seg}"),
        )
    })
}

fn dispatch(s: &mut TripletexState, r: &Req<'_>) -> Result<Response<Body>, Reject> {
    let seg: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let get = r.method == Method::GET;
    match seg.as_slice() {
        ["token", "session", ">whoAmI"] if get => who_am_i(s, r),
        ["token", "session", ">whoAmI"] => Err(not_allowed()),
        ["token", "session", token] if r.method == Method::DELETE => {
            if s.sessions.remove(*token).is_none() {
                return Err(not_found("Session token"));
            }
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ["customer"] if get => list(s, r, Kind::Customer),
        ["customer", x] if get => one(s, r, Kind::Customer, id(x)?),
        ["project"] if get => list(s, r, Kind::Project),
        ["project", x] if get => one(s, r, Kind::Project, id(x)?),
        ["employee"] if get => list(s, r, Kind::Employee),
        ["employee", x] if get => one(s, r, Kind::Employee, id(x)?),
        ["customer" | "project" | "employee", ..] => Err(not_allowed()),
        ["event", "subscription"] if get => list_subscriptions(s, r),
        ["event", "subscription"] if r.method == Method::POST => create_subscription(s, r),
        ["event", "subscription", x] => {
            let sid = id(x)?;
            let owned = s
                .subscriptions
                .get(&sid)
                .is_some_and(|x| x.owner == r.session.employee_token);
            if !owned {
                return Err(not_found("Subscription"));
            }
            match *r.method {
                Method::GET => Ok(single(subscription_json(&r.host, &s.subscriptions[&sid]))),
                Method::PUT => update_subscription(s, r, sid),
                Method::DELETE => {
                    s.subscriptions.remove(&sid);
                    Ok(empty(StatusCode::NO_CONTENT))
                }
                _ => Err(not_allowed()),
            }
        }
        ["event", "subscription"] => Err(not_allowed()),
        _ => Err(reject(StatusCode::NOT_FOUND, 6000, "Endpoint not found")),
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn who_am_i(s: &TripletexState, r: &Req<'_>) -> Result<Response<Body>, Reject> {
    let employee = s
        .employee_tokens
        .get(&r.session.employee_token)
        .map(|t| t.employee)
        .unwrap_or_default();
    let full = json!({
        "employeeId": employee,
        "actualEmployeeId": employee,
        "companyId": COMPANY_ID,
        "employee": { "id": employee, "url": format!("{}/employee/{employee}", r.host) },
        "company": {
            "id": COMPANY_ID,
            "url": format!("{}/company/{COMPANY_ID}", r.host),
            "name": s.company_name,
            "organizationNumber": s.company_org,
        },
        "language": "NO",
        "loggedInWithConnect": false,
        "employeeIsProxy": false,
    });
    let mut full = full;
    // Sub-fields asked for the employee expand it, as on every other endpoint.
    if let Some(sub) = r
        .params
        .get("fields")
        .and_then(parse_fields)
        .and_then(|f| f.into_iter().find(|f| f.name == "employee"))
        .and_then(|f| f.sub)
        && s.employees.contains_key(&employee)
    {
        full["employee"] = render(s, &r.host, Kind::Employee, employee, &sub);
    }
    Ok(single(full))
}

// ---- models, fields filter, rendering ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Customer,
    Project,
    Employee,
}

impl Kind {
    fn model(self) -> &'static str {
        match self {
            Kind::Customer => "CustomerDTO",
            Kind::Project => "ProjectDTO",
            Kind::Employee => "EmployeeDTO",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Project => "project",
            Kind::Employee => "employee",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Customer => &[
                "id",
                "version",
                "changes",
                "url",
                "name",
                "organizationNumber",
                "customerNumber",
                "supplierNumber",
                "isCustomer",
                "isSupplier",
                "isInactive",
                "accountManager",
                "email",
                "invoiceEmail",
                "phoneNumber",
                "phoneNumberMobile",
                "description",
                "language",
                "displayName",
                "isPrivateIndividual",
            ],
            Kind::Project => &[
                "id",
                "version",
                "changes",
                "url",
                "name",
                "number",
                "displayName",
                "description",
                "projectManager",
                "mainProject",
                "startDate",
                "endDate",
                "customer",
                "customerName",
                "isClosed",
                "isInternal",
                "isOffer",
                "isFixedPrice",
                "numberOfSubProjects",
                "hierarchyLevel",
                "hierarchyNameAndNumber",
                "accessType",
            ],
            Kind::Employee => &[
                "id",
                "version",
                "changes",
                "url",
                "firstName",
                "lastName",
                "displayName",
                "employeeNumber",
                "email",
                "userType",
                "allowInformationRegistration",
                "isContact",
            ],
        }
    }

    /// The model a nested object field has.
    fn nested(self, key: &str) -> Option<Kind> {
        match (self, key) {
            (Kind::Customer, "accountManager") => Some(Kind::Employee),
            (Kind::Project, "projectManager") => Some(Kind::Employee),
            (Kind::Project, "mainProject") => Some(Kind::Project),
            (Kind::Project, "customer") => Some(Kind::Customer),
            _ => None,
        }
    }

    fn for_event(event: &str) -> Option<Kind> {
        match event.split('.').next()? {
            "customer" => Some(Kind::Customer),
            "project" => Some(Kind::Project),
            "employee" => Some(Kind::Employee),
            _ => None,
        }
    }
}

/// One entry of a `fields` filter: `name` or `name(sub,fields)`; `*` is all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    name: String,
    sub: Option<Vec<Field>>,
}

fn illegal_field(name: &str, kind: Kind) -> Reject {
    reject(
        StatusCode::BAD_REQUEST,
        11000,
        format!(
            "Illegal field in fields filter: {name}. {name} does not match a field in the model: {}",
            kind.model()
        ),
    )
}

/// Parses `id,name,customer(id,name)`.
pub(crate) fn parse_fields(raw: &str) -> Option<Vec<Field>> {
    fn list(chars: &[char], i: &mut usize) -> Option<Vec<Field>> {
        let mut out = Vec::new();
        loop {
            let start = *i;
            while *i < chars.len() && !matches!(chars[*i], ',' | '(' | ')') {
                *i += 1;
            }
            let name: String = chars[start..*i]
                .iter()
                .collect::<String>()
                .trim()
                .to_owned();
            let mut sub = None;
            if *i < chars.len() && chars[*i] == '(' {
                *i += 1;
                sub = Some(list(chars, i)?);
                if *i >= chars.len() || chars[*i] != ')' {
                    return None;
                }
                *i += 1;
            }
            if name.is_empty() {
                return None;
            }
            out.push(Field { name, sub });
            if *i < chars.len() && chars[*i] == ',' {
                *i += 1;
                continue;
            }
            return Some(out);
        }
    }
    let chars: Vec<char> = raw.chars().collect();
    let mut i = 0;
    let out = list(&chars, &mut i)?;
    (i == chars.len()).then_some(out)
}

fn star() -> Vec<Field> {
    vec![Field {
        name: "*".into(),
        sub: None,
    }]
}

fn validate(kind: Kind, fields: &[Field]) -> Result<(), Reject> {
    for f in fields {
        if f.name == "*" {
            continue;
        }
        if !kind.keys().contains(&f.name.as_str()) {
            return Err(illegal_field(&f.name, kind));
        }
        if let Some(sub) = &f.sub {
            match kind.nested(&f.name) {
                Some(nk) => validate(nk, sub)?,
                None if f.name == "changes" => {
                    for c in sub {
                        if !["*", "employeeId", "timestamp", "changeType"]
                            .contains(&c.name.as_str())
                        {
                            return Err(illegal_field(&c.name, kind));
                        }
                    }
                }
                None => return Err(illegal_field(&f.name, kind)),
            }
        }
    }
    Ok(())
}

fn fields_param(p: &Params, kind: Kind) -> Result<Vec<Field>, Reject> {
    match p.get("fields") {
        None | Some("") => Ok(star()),
        Some(raw) => {
            let f = parse_fields(raw).ok_or_else(|| illegal_field(raw, kind))?;
            validate(kind, &f)?;
            Ok(f)
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    oslo_local(t).format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn reference(host: &str, kind: Kind, id: Option<u64>) -> Value {
    match id {
        Some(id) => json!({ "id": id, "url": format!("{host}/{}/{id}", kind.path()) }),
        None => Value::Null,
    }
}

fn changes_json(changes: &[super::Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| {
                json!({
                    "employeeId": c.employee,
                    "timestamp": ts(c.at),
                    "changeType": c.kind,
                })
            })
            .collect(),
    )
}

fn customer_full(host: &str, c: &Customer) -> Map<String, Value> {
    let opt = |v: &str| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(v.to_owned())
        }
    };
    let v = json!({
        "id": c.id,
        "version": c.version,
        "changes": changes_json(&c.changes),
        "url": format!("{host}/customer/{}", c.id),
        "name": c.name,
        "organizationNumber": c.organization_number,
        "customerNumber": c.customer_number,
        "supplierNumber": 0,
        "isCustomer": true,
        "isSupplier": false,
        "isInactive": c.is_inactive,
        "accountManager": reference(host, Kind::Employee, c.account_manager),
        "email": opt(&c.email),
        "invoiceEmail": opt(&c.email),
        "phoneNumber": null,
        "phoneNumberMobile": null,
        "description": null,
        "language": "NO",
        "displayName": format!("{} ({})", c.name, c.customer_number),
        "isPrivateIndividual": c.is_private,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// A project with every field; `numberOfSubProjects` (a scan of all projects) only when
/// `with_subs`, so listing N projects is not N scans.
fn project_full(
    s: &TripletexState,
    host: &str,
    p: &Project,
    with_subs: bool,
) -> Map<String, Value> {
    let level = s.hierarchy_level(p.id);
    let subs = if with_subs {
        s.projects
            .values()
            .filter(|x| x.main_project == Some(p.id))
            .count()
    } else {
        0
    };
    let mut chain = Vec::new();
    let mut cur = Some(p.id);
    while let Some(id) = cur {
        let Some(x) = s.projects.get(&id) else { break };
        chain.push(format!("{} {}", x.number, x.name));
        cur = x.main_project;
        if chain.len() > 100 {
            break;
        }
    }
    chain.reverse();
    let customer = p.customer.and_then(|c| s.customers.get(&c));
    let v = json!({
        "id": p.id,
        "version": p.version,
        "changes": changes_json(&p.changes),
        "url": format!("{host}/project/{}", p.id),
        "name": p.name,
        "number": p.number,
        "displayName": format!("{} {}", p.number, p.name),
        "description": p.description,
        "projectManager": reference(host, Kind::Employee, Some(p.manager)),
        "mainProject": reference(host, Kind::Project, p.main_project),
        "startDate": day(p.start_date),
        "endDate": p.end_date.map(day),
        "customer": reference(host, Kind::Customer, p.customer),
        "customerName": customer.map(|c| c.name.clone()),
        "isClosed": p.is_closed,
        "isInternal": p.is_internal,
        "isOffer": false,
        "isFixedPrice": false,
        "numberOfSubProjects": subs,
        "hierarchyLevel": level,
        "hierarchyNameAndNumber": chain.join(" > "),
        "accessType": "WRITE",
    });
    v.as_object().cloned().unwrap_or_default()
}

fn employee_full(host: &str, e: &Employee) -> Map<String, Value> {
    let v = json!({
        "id": e.id,
        "version": 1,
        "changes": [],
        "url": format!("{host}/employee/{}", e.id),
        "firstName": e.first_name,
        "lastName": e.last_name,
        "displayName": format!("{} {}", e.first_name, e.last_name),
        "employeeNumber": e.number,
        "email": e.email,
        "userType": "STANDARD",
        "allowInformationRegistration": true,
        "isContact": false,
    });
    v.as_object().cloned().unwrap_or_default()
}

fn full_with(
    s: &TripletexState,
    host: &str,
    kind: Kind,
    id: u64,
    with_subs: bool,
) -> Option<Map<String, Value>> {
    match kind {
        Kind::Customer => s.customers.get(&id).map(|c| customer_full(host, c)),
        Kind::Project => s
            .projects
            .get(&id)
            .map(|p| project_full(s, host, p, with_subs)),
        Kind::Employee => s.employees.get(&id).map(|e| employee_full(host, e)),
    }
}

/// The object filtered by validated `fields`.
fn render(s: &TripletexState, host: &str, kind: Kind, id: u64, fields: &[Field]) -> Value {
    let with_subs = fields
        .iter()
        .any(|f| f.name == "*" || f.name == "numberOfSubProjects");
    let Some(all) = full_with(s, host, kind, id, with_subs) else {
        return Value::Null;
    };
    let mut out = Map::new();
    if fields.iter().any(|f| f.name == "*") {
        for (k, v) in &all {
            if k != "changes" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for f in fields.iter().filter(|f| f.name != "*") {
        let v = all.get(&f.name).cloned().unwrap_or(Value::Null);
        let v = match (&f.sub, kind.nested(&f.name)) {
            (Some(sub), Some(nk)) => match v.get("id").and_then(Value::as_u64) {
                Some(nid) => render(s, host, nk, nid, sub),
                None => Value::Null,
            },
            (Some(sub), None) => match v {
                Value::Array(items) if !sub.iter().any(|x| x.name == "*") => Value::Array(
                    items
                        .into_iter()
                        .map(|item| {
                            let mut m = Map::new();
                            for x in sub {
                                if let Some(val) = item.get(&x.name) {
                                    m.insert(x.name.clone(), val.clone());
                                }
                            }
                            Value::Object(m)
                        })
                        .collect(),
                ),
                other => other,
            },
            (None, _) => v,
        };
        out.insert(f.name.clone(), v);
    }
    Value::Object(out)
}

/// A callback `value` for a subscription's `fields` (all fields when empty or invalid).
pub(crate) fn event_value(
    s: &TripletexState,
    host: &str,
    event: &str,
    id: u64,
    fields: &str,
) -> Value {
    let Some(kind) = Kind::for_event(event) else {
        return Value::Null;
    };
    let f = parse_fields(fields)
        .filter(|f| validate(kind, f).is_ok())
        .unwrap_or_else(star);
    render(s, host, kind, id, &f)
}

fn one(s: &TripletexState, r: &Req<'_>, kind: Kind, id: u64) -> Result<Response<Body>, Reject> {
    let fields = fields_param(&r.params, kind)?;
    if full_with(s, &r.host, kind, id, false).is_none() {
        return Err(not_found(kind.model().trim_end_matches("DTO")));
    }
    Ok(single(render(s, &r.host, kind, id, &fields)))
}

// ---- list filters ----

fn param_u64(p: &Params, name: &str) -> Result<Option<u64>, Reject> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().parse().map_err(|_| bad_param(name, v)))
        .transpose()
}

fn param_bool(p: &Params, name: &str) -> Result<Option<bool>, Reject> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| parse_bool(v).ok_or_else(|| bad_param(name, v)))
        .transpose()
}

/// A comma-separated id list (`id=1,2,3`).
fn param_ids(p: &Params, name: &str) -> Result<Option<Vec<u64>>, Reject> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.split(',')
                .map(|x| x.trim().parse().map_err(|_| bad_param(name, v)))
                .collect()
        })
        .transpose()
}

/// `changedSince`: `YYYY-MM-DDThh:mm:ss` (Oslo), a bare date (Oslo midnight) or RFC 3339.
fn param_since(p: &Params) -> Result<Option<DateTime<Utc>>, Reject> {
    let Some(v) = p.get("changedSince").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(Some(from_oslo(t)));
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(from_oslo(t)))
        .ok_or_else(|| bad_param("changedSince", v))
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn customer_ids(s: &TripletexState, p: &Params) -> Result<Vec<u64>, Reject> {
    let ids = param_ids(p, "id")?;
    let numbers = param_ids(p, "customerAccountNumber")?;
    let inactive = param_bool(p, "isInactive")?.unwrap_or(false);
    let manager = param_u64(p, "accountManagerId")?;
    let since = param_since(p)?;
    let org = p.get("organizationNumber").filter(|v| !v.is_empty());
    let email = p.get("email").filter(|v| !v.is_empty());
    let invoice = p.get("invoiceEmail").filter(|v| !v.is_empty());
    let name = p.get("customerName").filter(|v| !v.is_empty());
    let mobile = p.get("phoneNumberMobile").filter(|v| !v.is_empty());
    Ok(s.customers
        .values()
        .filter(|c| ids.as_ref().is_none_or(|l| l.contains(&c.id)))
        .filter(|c| {
            numbers
                .as_ref()
                .is_none_or(|l| l.contains(&u64::from(c.customer_number)))
        })
        .filter(|c| c.is_inactive == inactive)
        .filter(|c| manager.is_none_or(|m| c.account_manager == Some(m)))
        .filter(|c| {
            since.is_none_or(|t| {
                c.changes
                    .last()
                    .is_some_and(|x| x.at.timestamp() >= t.timestamp())
            })
        })
        .filter(|c| org.is_none_or(|o| c.organization_number == o))
        .filter(|c| email.is_none_or(|e| c.email.eq_ignore_ascii_case(e)))
        .filter(|c| invoice.is_none_or(|e| c.email.eq_ignore_ascii_case(e)))
        .filter(|c| name.is_none_or(|n| contains(&c.name, n)))
        .filter(|_| mobile.is_none())
        .map(|c| c.id)
        .collect())
}

fn project_ids(s: &TripletexState, p: &Params) -> Result<Vec<u64>, Reject> {
    let ids = param_ids(p, "id")?;
    let closed = param_bool(p, "isClosed")?;
    let recently = param_bool(p, "includeRecentlyClosed")?.unwrap_or(false);
    let offer = param_bool(p, "isOffer")?;
    let customer = param_u64(p, "customerId")?;
    let manager = param_u64(p, "projectManagerId")?;
    let name = p.get("name").filter(|v| !v.is_empty());
    let number = p.get("number").filter(|v| !v.is_empty());
    let cutoff = Utc::now() - chrono::Duration::days(91);
    Ok(s.projects
        .values()
        .filter(|x| ids.as_ref().is_none_or(|l| l.contains(&x.id)))
        .filter(|x| match closed {
            None => true,
            Some(true) => x.is_closed,
            Some(false) => !x.is_closed || (recently && x.closed_at.is_some_and(|t| t >= cutoff)),
        })
        .filter(|_| offer != Some(true))
        .filter(|x| customer.is_none_or(|c| x.customer == Some(c)))
        .filter(|x| manager.is_none_or(|m| x.manager == m))
        .filter(|x| name.is_none_or(|n| contains(&x.name, n)))
        .filter(|x| number.is_none_or(|n| x.number == n))
        .map(|x| x.id)
        .collect())
}

fn employee_ids(s: &TripletexState, p: &Params) -> Result<Vec<u64>, Reject> {
    let ids = param_ids(p, "id")?;
    let first = p.get("firstName").filter(|v| !v.is_empty());
    let last = p.get("lastName").filter(|v| !v.is_empty());
    let email = p.get("email").filter(|v| !v.is_empty());
    let number = p.get("employeeNumber").filter(|v| !v.is_empty());
    Ok(s.employees
        .values()
        .filter(|e| ids.as_ref().is_none_or(|l| l.contains(&e.id)))
        .filter(|e| first.is_none_or(|n| contains(&e.first_name, n)))
        .filter(|e| last.is_none_or(|n| contains(&e.last_name, n)))
        .filter(|e| email.is_none_or(|n| contains(&e.email, n)))
        .filter(|e| number.is_none_or(|n| e.number == n))
        .map(|e| e.id)
        .collect())
}

/// `(from, count)`, defaults 0 and 1000.
fn paging(p: &Params) -> Result<(usize, usize), Reject> {
    let get = |name: &str, default: usize| -> Result<usize, Reject> {
        match p.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| bad_param(name, v)),
        }
    };
    Ok((get("from", 0)?, get("count", 1000)?))
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or_default()
            .partial_cmp(&y.as_f64().unwrap_or_default())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn sort(
    s: &TripletexState,
    host: &str,
    kind: Kind,
    ids: &mut [u64],
    raw: &str,
) -> Result<(), Reject> {
    let mut keys = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        if !kind.keys().contains(&name) || name == "changes" {
            return Err(reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                17000,
                format!("Illegal sorting field: {name}"),
            ));
        }
        keys.push((desc, name.to_owned()));
    }
    let rows: std::collections::HashMap<u64, Map<String, Value>> = ids
        .iter()
        .filter_map(|&id| {
            let with_subs = keys.iter().any(|(_, k)| k == "numberOfSubProjects");
            full_with(s, host, kind, id, with_subs).map(|m| (id, m))
        })
        .collect();
    ids.sort_by(|a, b| {
        for (desc, k) in &keys {
            let va = rows.get(a).and_then(|m| m.get(k)).unwrap_or(&Value::Null);
            let vb = rows.get(b).and_then(|m| m.get(k)).unwrap_or(&Value::Null);
            let o = compare(va, vb);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.cmp(b)
    });
    Ok(())
}

fn list(s: &TripletexState, r: &Req<'_>, kind: Kind) -> Result<Response<Body>, Reject> {
    let fields = fields_param(&r.params, kind)?;
    let (from, count) = paging(&r.params)?;
    let mut ids = match kind {
        Kind::Customer => customer_ids(s, &r.params)?,
        Kind::Project => project_ids(s, &r.params)?,
        Kind::Employee => employee_ids(s, &r.params)?,
    };
    if let Some(raw) = r.params.get("sorting").filter(|v| !v.is_empty()) {
        sort(s, &r.host, kind, &mut ids, raw)?;
    }
    let values: Vec<Value> = ids
        .iter()
        .map(|&id| render(s, &r.host, kind, id, &fields))
        .collect();
    Ok(envelope(values, from, count))
}

/// The list envelope over the full result; `versionDigest` hashes all of it.
fn envelope(values: Vec<Value>, from: usize, count: usize) -> Response<Body> {
    let mut h = Sha256::new();
    for v in &values {
        h.update(v.to_string().as_bytes());
        h.update(b"\n");
    }
    let digest: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let total = values.len();
    let page: Vec<Value> = values.into_iter().skip(from).take(count).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "fullResultSize": total,
            "from": from,
            "count": page.len(),
            "versionDigest": digest,
            "values": page,
        }),
    )
}

// ---- event subscriptions ----

fn subscription_json(host: &str, x: &Subscription) -> Value {
    json!({
        "id": x.id,
        "version": x.version,
        "url": format!("{host}/event/subscription/{}", x.id),
        "event": x.event,
        "targetUrl": x.target_url,
        "fields": x.fields,
        "status": x.status.as_str(),
        "authHeaderName": x.auth_header.as_ref().map(|(n, _)| n.clone()),
    })
}

fn list_subscriptions(s: &TripletexState, r: &Req<'_>) -> Result<Response<Body>, Reject> {
    let (from, count) = paging(&r.params)?;
    let values = s
        .subscriptions
        .values()
        .filter(|x| x.owner == r.session.employee_token)
        .map(|x| subscription_json(&r.host, x))
        .collect();
    Ok(envelope(values, from, count))
}

fn body_object(r: &Req<'_>) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(r.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            22000,
            "Request body is not a valid JSON object",
        )),
    }
}

fn str_field(m: &Map<String, Value>, name: &str) -> Result<Option<String>, Reject> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(validation(name, "Must be a string.")),
    }
}

fn check_event(event: &str) -> Result<(), Reject> {
    if EVENTS.iter().any(|(e, _)| *e == event) {
        Ok(())
    } else {
        Err(validation("event", &format!("Unknown event: {event}")))
    }
}

fn check_target(url: &str) -> Result<(), Reject> {
    let bad = || validation("targetUrl", "Must be an absolute HTTPS URL.");
    let u = url::Url::parse(url).map_err(|_| bad())?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if u.scheme() == "https" || (u.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_sub_fields(event: &str, fields: &str) -> Result<(), Reject> {
    if fields.is_empty() {
        return Ok(());
    }
    let Some(kind) = Kind::for_event(event) else {
        return Ok(());
    };
    let f = parse_fields(fields).ok_or_else(|| illegal_field(fields, kind))?;
    validate(kind, &f)
}

fn create_subscription(s: &mut TripletexState, r: &Req<'_>) -> Result<Response<Body>, Reject> {
    let m = body_object(r)?;
    let event =
        str_field(&m, "event")?.ok_or_else(|| validation("event", "Kan ikke være null."))?;
    let target = str_field(&m, "targetUrl")?
        .ok_or_else(|| validation("targetUrl", "Kan ikke være null."))?;
    check_event(&event)?;
    check_target(&target)?;
    let fields = str_field(&m, "fields")?.unwrap_or_default();
    check_sub_fields(&event, &fields)?;
    let auth_header = match (
        str_field(&m, "authHeaderName")?,
        str_field(&m, "authHeaderValue")?,
    ) {
        (Some(n), Some(v)) if !n.is_empty() => Some((n, v)),
        (Some(n), None) if !n.is_empty() => {
            return Err(validation("authHeaderValue", "Kan ikke være null."));
        }
        _ => None,
    };
    let secret = str_field(&m, "hmacSharedSecret")?.filter(|x| !x.is_empty());
    let id = s.next_id();
    let sub = Subscription {
        id,
        version: 0,
        owner: r.session.employee_token.clone(),
        event,
        target_url: target,
        fields,
        auth_header,
        secret,
        status: SubscriptionStatus::Active,
        failures_in_a_row: 0,
    };
    let body = subscription_json(&r.host, &sub);
    s.subscriptions.insert(id, sub);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "value": body }),
    ))
}

fn update_subscription(
    s: &mut TripletexState,
    r: &Req<'_>,
    id: u64,
) -> Result<Response<Body>, Reject> {
    let m = body_object(r)?;
    let current = s.subscriptions[&id].clone();
    if let Some(v) = m.get("version").and_then(Value::as_u64)
        && v != u64::from(current.version)
    {
        return Err(reject(
            StatusCode::CONFLICT,
            8000,
            "Revision exception: the object was changed since it was read",
        ));
    }
    let mut next = current;
    if let Some(e) = str_field(&m, "event")? {
        check_event(&e)?;
        next.event = e;
    }
    if let Some(t) = str_field(&m, "targetUrl")? {
        check_target(&t)?;
        next.target_url = t;
    }
    if let Some(f) = str_field(&m, "fields")? {
        next.fields = f;
    }
    check_sub_fields(&next.event, &next.fields)?;
    if let Some(st) = str_field(&m, "status")? {
        next.status =
            SubscriptionStatus::parse(&st).ok_or_else(|| validation("status", "Unknown status"))?;
        if next.status == SubscriptionStatus::Active {
            next.failures_in_a_row = 0;
        }
    }
    if let Some(secret) = str_field(&m, "hmacSharedSecret")? {
        next.secret = Some(secret).filter(|x| !x.is_empty());
    }
    if let Some(n) = str_field(&m, "authHeaderName")? {
        let v = str_field(&m, "authHeaderValue")?
            .or_else(|| next.auth_header.as_ref().map(|(_, v)| v.clone()))
            .unwrap_or_default();
        next.auth_header = Some((n, v)).filter(|(n, _)| !n.is_empty());
    }
    next.version += 1;
    let body = subscription_json(&r.host, &next);
    s.subscriptions.insert(id, next);
    Ok(single(body))
}
