//! `infra/template.yaml` agrees with the code: the environment it sets is what the code reads,
//! every Lambda crate is deployed, and each HTTP function gets exactly the routes of its part of
//! the code's route table (`hourbridge_api::HttpFunction`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).expect("template");
    serde_norway::from_str(&text).expect("template is YAML")
}

fn functions(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn template_sets_exactly_the_environment_the_code_reads_in_lambda() {
    let t = template();
    let mut set = keys(&t["Globals"]["Function"]["Environment"]["Variables"]);
    for (_, f) in functions(&t) {
        set.extend(keys(&f["Properties"]["Environment"]["Variables"]));
    }
    let want: BTreeSet<String> = hourbridge_runtime::env::lambda_vars().into_iter().collect();
    assert_eq!(set, want, "template env vs runtime::env::lambda_vars()");
    // Everything the template sets is a variable the code reads at all, and none of the
    // local-only ones (the Basecamp client secret or a provider's secret by value, for one).
    let known: BTreeSet<String> = hourbridge_runtime::env::all_vars().into_iter().collect();
    assert!(set.iter().all(|v| known.contains(v)));
    for v in hourbridge_runtime::env::local_only_vars() {
        assert!(!set.contains(&v), "{v} is local only");
    }
}

/// The functions that build an engine able to connect, refresh or sync a platform-client
/// provider (Basecamp): they get its client id and secret name, and only they.
const PLATFORM_CLIENT_FUNCTIONS: [&str; 4] = [
    "ConnectionsFunction",
    "OAuthCallbackFunction",
    "ProjectSyncFunction",
    "SyncWorkerFunction",
];

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("YAML")
}

/// The expression naming the Basecamp client secret: the parameter, else the stage's default.
const BASECAMP_SECRET_NAME: &str = r#"!If
  - BasecampClientSecretNameGiven
  - !Ref BasecampClientSecretName
  - !Sub "hourbridge-platform/${Stage}/basecamp/oauth-client-secret"
"#;

/// Every `secretsmanager:*` grant of function `f`: (actions, resource).
fn secret_grants(f: &Value) -> Vec<(BTreeSet<String>, Value)> {
    let mut out = Vec::new();
    for p in f["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for st in p["Statement"].as_sequence().into_iter().flatten() {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            let actions: BTreeSet<String> = match &st["Action"] {
                Value::String(a) => BTreeSet::from([a.clone()]),
                v => v
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
            };
            if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                out.push((actions, st["Resource"].clone()));
            }
        }
    }
    out
}

#[test]
fn the_platform_client_secret_is_read_only_and_granted_exactly_to_the_functions_that_use_it() {
    let t = template();
    assert_eq!(
        t["Parameters"]["BasecampClientId"]["Default"].as_str(),
        Some("")
    );
    assert_eq!(
        t["Parameters"]["BasecampClientSecretName"]["Default"].as_str(),
        Some("")
    );
    let name = yaml(BASECAMP_SECRET_NAME);
    let connection_prefix = yaml(
        r#"!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:hourbridge/${Stage}/*""#,
    );
    // The platform secret: exactly one secret (its name plus the six random characters Secrets
    // Manager appends); its default name is outside the connections' prefix, so no prefix grant
    // (which includes writes) reaches it.
    let platform_grant = yaml(&format!(
        "!Sub\n  - \"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:${{Name}}-??????\"\n  - Name: {}",
        BASECAMP_SECRET_NAME.replace('\n', "\n      ")
    ));
    for (fname, f) in functions(&t) {
        let vars = &f["Properties"]["Environment"]["Variables"];
        let grants = secret_grants(f);
        // (Provider secrets have their own grants; see
        // `each_provider_secret_is_read_only_and_granted_exactly_to_the_functions_that_use_it`.)
        let provider_grants = provider_secret_grants();
        let platform: Vec<_> = grants
            .iter()
            .filter(|(_, r)| *r != connection_prefix && !provider_grants.contains(r))
            .collect();
        // Apart from the platform secret, a function may touch only the connections' prefix.
        if PLATFORM_CLIENT_FUNCTIONS.contains(&fname.as_str()) {
            assert_eq!(
                vars["HOURBRIDGE_BASECAMP_CLIENT_ID"],
                yaml("!Ref BasecampClientId"),
                "{fname}"
            );
            assert_eq!(
                vars["HOURBRIDGE_BASECAMP_CLIENT_SECRET_NAME"], name,
                "{fname}: the secret it reads is the one it may read"
            );
            assert_eq!(platform.len(), 1, "{fname}: one platform secret grant");
            let (actions, resource) = platform[0];
            assert_eq!(
                actions,
                &BTreeSet::from(["secretsmanager:GetSecretValue".to_owned()]),
                "{fname}: read only"
            );
            assert_eq!(resource, &platform_grant, "{fname}: exactly that secret");
        } else {
            assert!(
                vars["HOURBRIDGE_BASECAMP_CLIENT_ID"].is_null()
                    && vars["HOURBRIDGE_BASECAMP_CLIENT_SECRET_NAME"].is_null(),
                "{fname} does not connect providers"
            );
            assert!(platform.is_empty(), "{fname}: no secret beyond its prefix");
        }
    }
}

/// The functions that create provider sessions (a connection's Test API, syncs, pushes,
/// disconnect's webhook removal) and so read the providers' secrets (Tripletex's consumer
/// token). Webhook receipt, the OAuth callback and the schedule create none.
const PROVIDER_SECRET_FUNCTIONS: [&str; 3] = [
    "ConnectionsFunction",
    "ProjectSyncFunction",
    "SyncWorkerFunction",
];

/// Per provider secret variable: its template parameter and default secret name.
const PROVIDER_SECRETS: [(&str, &str, &str); 1] = [(
    "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN",
    "TripletexConsumerTokenSecretName",
    "hourbridge-platform/${Stage}/tripletex/consumer-token",
)];

/// The expression naming the secret of parameter `param` with default `default`.
fn named_secret(param: &str, default: &str) -> String {
    format!("!If\n  - {param}Given\n  - !Ref {param}\n  - !Sub \"{default}\"\n")
}

/// The read-only grant on exactly the secret `name` names (plus the six random characters
/// Secrets Manager appends).
fn exact_secret_grant(name: &str) -> Value {
    yaml(&format!(
        "!Sub\n  - \"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:${{Name}}-??????\"\n  - Name: {}",
        name.replace('\n', "\n      ")
    ))
}

fn provider_secret_grants() -> Vec<Value> {
    PROVIDER_SECRETS
        .iter()
        .map(|(_, param, default)| exact_secret_grant(&named_secret(param, default)))
        .collect()
}

#[test]
fn each_provider_secret_is_read_only_and_granted_exactly_to_the_functions_that_use_it() {
    let t = template();
    // Every secret an adapter declares is deployed this way (and no other).
    let declared: BTreeSet<&str> = hourbridge_runtime::env::provider_secret_vars()
        .into_iter()
        .collect();
    let deployed: BTreeSet<&str> = PROVIDER_SECRETS.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(declared, deployed);
    for (var, param, default) in PROVIDER_SECRETS {
        let name_var = hourbridge_runtime::env::secret_name_var(var);
        let p = &t["Parameters"][param];
        assert_eq!(p["Default"].as_str(), Some(""), "{param}");
        assert_eq!(
            p["AllowedPattern"].as_str(),
            Some("^[A-Za-z0-9/_+=.@-]{0,256}$"),
            "{param}"
        );
        assert_eq!(
            t["Conditions"][format!("{param}Given").as_str()],
            yaml(&format!("!Not [!Equals [!Ref {param}, \"\"]]")),
            "{param}"
        );
        // Outside the connections' prefix (`hourbridge/{Stage}/`, writable by some functions).
        assert!(!default.starts_with("hourbridge/"), "{default}");
        let name = yaml(&named_secret(param, default));
        let grant = exact_secret_grant(&named_secret(param, default));
        for (fname, f) in functions(&t) {
            let vars = &f["Properties"]["Environment"]["Variables"];
            assert!(
                vars[var].is_null(),
                "{fname}: {var} is never a plain variable"
            );
            let grants: Vec<_> = secret_grants(f)
                .into_iter()
                .filter(|(_, r)| *r == grant)
                .collect();
            if PROVIDER_SECRET_FUNCTIONS.contains(&fname.as_str()) {
                assert_eq!(
                    vars[name_var.as_str()],
                    name,
                    "{fname}: the secret it reads is the one it may read"
                );
                assert_eq!(grants.len(), 1, "{fname}: one grant on {param}");
                assert_eq!(
                    grants[0].0,
                    BTreeSet::from(["secretsmanager:GetSecretValue".to_owned()]),
                    "{fname}: read only"
                );
            } else {
                assert!(
                    vars[name_var.as_str()].is_null(),
                    "{fname} creates no sessions"
                );
                assert!(grants.is_empty(), "{fname}: no grant on {param}");
            }
        }
    }
}

#[test]
fn every_lambda_crate_is_deployed_by_the_template_and_nothing_else() {
    let t = template();
    let deployed: BTreeSet<String> = functions(&t)
        .iter()
        .filter_map(|(_, f)| {
            f["Properties"]["CodeUri"]
                .as_str()
                .map(|u| u.trim_start_matches("../functions/").to_owned())
        })
        .collect();
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(deployed, crates);
    for (name, f) in functions(&t) {
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
    }
    assert_eq!(
        t["Globals"]["Function"]["Runtime"].as_str(),
        Some("provided.al2023")
    );
    assert_eq!(
        t["Globals"]["Function"]["Architectures"][0].as_str(),
        Some("x86_64")
    );
}

/// One `HttpApi` event of the template: method (or `ANY`), path, whether the JWT authorizer is
/// off, and the crate of the function it invokes.
#[derive(Debug, Clone)]
struct Event {
    method: String,
    path: String,
    open: bool,
    function: String,
}

fn http_events(t: &Value) -> Vec<Event> {
    let mut out = Vec::new();
    for (name, f) in functions(t) {
        let function = f["Properties"]["CodeUri"]
            .as_str()
            .map(|u| u.trim_start_matches("../functions/").to_owned())
            .unwrap_or(name);
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (_, e) in events {
                if e["Type"].as_str() == Some("HttpApi") {
                    let p = &e["Properties"];
                    out.push(Event {
                        method: p["Method"].as_str().unwrap_or("").to_owned(),
                        path: p["Path"].as_str().unwrap_or("").to_owned(),
                        open: p["Auth"]["Authorizer"].as_str() == Some("NONE"),
                        function: function.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Whether API Gateway route `route` (with `{param}` and a trailing `{proxy+}`) matches the
/// OpenAPI path `path` (with `{param}`).
fn matches(route: &str, path: &str) -> bool {
    let (r, p): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    let seg = |a: &&str, b: &&str| a == b || a.starts_with('{');
    if r.last() == Some(&"{proxy+}") {
        return p.len() >= r.len() && r[..r.len() - 1].iter().zip(&p).all(|(a, b)| seg(a, b));
    }
    r.len() == p.len() && r.iter().zip(&p).all(|(a, b)| seg(a, b))
}

impl Event {
    fn takes(&self, method: &str, path: &str) -> bool {
        (self.method == "ANY" || self.method.eq_ignore_ascii_case(method))
            && matches(&self.path, path)
    }

    /// API Gateway's preference among matching routes: no greedy `{proxy+}` first, then more
    /// literal segments, then an exact method over `ANY`.
    fn specificity(&self) -> (bool, usize, bool) {
        (
            !self.path.ends_with("{proxy+}"),
            self.path
                .split('/')
                .filter(|s| !s.is_empty() && !s.starts_with('{'))
                .count(),
            self.method != "ANY",
        )
    }
}

/// `(method, path)` of every route function `f` serves, by the code's route table.
fn code_routes(f: hourbridge_api::HttpFunction) -> Vec<(String, String)> {
    let doc = serde_json::to_value(hourbridge_api::function_openapi(f)).unwrap();
    let mut out: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    if f.serves_openapi_json() {
        out.push(("GET".into(), "/openapi.json".into()));
    }
    out
}

#[test]
fn each_function_is_routed_exactly_its_own_routes_by_the_template_with_the_right_auth() {
    use hourbridge_api::HttpFunction;
    let t = template();
    let events = http_events(&t);
    // Only HTTP functions have HTTP events.
    for e in &events {
        assert!(
            HttpFunction::from_crate_name(&e.function).is_some(),
            "{} {} is routed to {}, which is not an HTTP function",
            e.method,
            e.path,
            e.function
        );
    }
    for f in HttpFunction::ALL {
        let name = f.crate_name();
        let routes = code_routes(f);
        assert!(!routes.is_empty(), "{name} serves no route");
        // Code → template: API Gateway sends each of the function's routes to the function
        // (the most specific matching event is one of its own), with the authorizer off
        // exactly for the public routes.
        for (method, path) in &routes {
            let best = events
                .iter()
                .filter(|e| e.takes(method, path))
                .max_by_key(|e| e.specificity())
                .unwrap_or_else(|| {
                    panic!("{method} {path} ({name}) is not routed by the template")
                });
            assert_eq!(
                best.function, name,
                "{method} {path} is served by {name} but routed to {} via {}",
                best.function, best.path
            );
            let public = path.starts_with("/oauth/")
                || path.starts_with("/webhooks/")
                || path == "/health"
                || path == "/openapi.json"
                || path == "/connect"
                || path.starts_with("/connect/");
            assert_eq!(
                best.open, public,
                "{method} {path} via {}: authorizer must be off exactly for public routes",
                best.path
            );
        }
        // Template → code: every event of the function reaches at least one of its routes, so
        // the template sends it nothing it would answer 404 for.
        for e in events.iter().filter(|e| e.function == name) {
            assert!(
                routes.iter().any(|(m, p)| e.takes(m, p)),
                "the template routes {} {} to {name}, which serves nothing there",
                e.method,
                e.path
            );
        }
    }
}

#[test]
fn the_functions_route_tables_partition_the_whole_api() {
    use hourbridge_api::HttpFunction;
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for f in HttpFunction::ALL {
        for r in code_routes(f) {
            assert!(seen.insert(r.clone()), "{r:?} is served by two functions");
        }
    }
    let all = serde_json::to_value(hourbridge_api::openapi()).unwrap();
    let mut whole: BTreeSet<(String, String)> = all["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    whole.insert(("GET".into(), "/openapi.json".into()));
    assert_eq!(seen, whole, "the local server serves exactly the union");
}
