//! `infra/template.yaml` agrees with the code: the environment it sets is what the code reads,
//! and every Lambda crate is deployed.

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
    let want: BTreeSet<String> = hourbridge_runtime::env::LAMBDA
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(set, want, "template env vs runtime::env::LAMBDA");
    // Everything the template sets is a variable the code reads at all.
    let known: BTreeSet<&str> = hourbridge_runtime::env::ALL.iter().copied().collect();
    assert!(set.iter().all(|v| known.contains(v.as_str())));
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

#[test]
fn every_api_route_of_the_code_is_routed_by_the_template_with_the_right_auth() {
    let t = template();
    let mut routed: Vec<(String, String, bool)> = Vec::new();
    for (_, f) in functions(&t) {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (_, e) in events {
                if e["Type"].as_str() == Some("HttpApi") {
                    let p = &e["Properties"];
                    let open = p["Auth"]["Authorizer"].as_str() == Some("NONE");
                    routed.push((
                        p["Method"].as_str().unwrap_or("").to_owned(),
                        p["Path"].as_str().unwrap_or("").to_owned(),
                        open,
                    ));
                }
            }
        }
    }
    let matches = |route: &str, path: &str| -> bool {
        let (r, p): (Vec<&str>, Vec<&str>) =
            (route.split('/').collect(), path.split('/').collect());
        if r.last() == Some(&"{proxy+}") {
            return p.len() >= r.len()
                && r[..r.len() - 1]
                    .iter()
                    .zip(&p)
                    .all(|(a, b)| a == b || a.starts_with('{'));
        }
        r.len() == p.len() && r.iter().zip(&p).all(|(a, b)| a == b || a.starts_with('{'))
    };
    let doc = serde_json::to_value(hourbridge_api::openapi()).unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let public =
                path.starts_with("/oauth/") || path.starts_with("/webhooks/") || path == "/health";
            let found = routed.iter().find(|(m, route, _)| {
                (m == "ANY" || m.eq_ignore_ascii_case(method)) && matches(route, path)
            });
            let (_, route, open) =
                found.unwrap_or_else(|| panic!("{method} {path} is not routed by the template"));
            assert_eq!(
                *open, public,
                "{method} {path} via {route}: authorizer must be off exactly for public routes"
            );
        }
    }
}
