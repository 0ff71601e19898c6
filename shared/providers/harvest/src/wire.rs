//! Harvest's JSON shapes and their mapping onto the provider port's types.
//!
//! The structs only require what Harvest documents as always present; everything else is
//! optional so that a field Harvest leaves out of list responses (assignments, invoice, external
//! reference) never fails a sync.

use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_provider_api::{AccountInfo, RemotePerson, RemoteProject, RemoteWorkLog};
use serde::Deserialize;

/// The `links` block of every paginated Harvest list.
#[derive(Debug, Deserialize)]
pub(crate) struct Links {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// The next-page URL, if any. An empty string is treated like null, as a last page.
pub(crate) fn next_link(links: Option<Links>) -> Option<String> {
    links
        .and_then(|l| l.next)
        .filter(|next| !next.trim().is_empty())
}

/// `{id, name}`, as embedded in a time entry.
#[derive(Debug, Deserialize)]
pub(crate) struct IdName {
    pub(crate) id: u64,
    pub(crate) name: String,
}

/// `GET /v2/time_entries`.
#[derive(Debug, Deserialize)]
pub(crate) struct TimeEntriesPage {
    pub(crate) time_entries: Vec<TimeEntry>,
    #[serde(default)]
    pub(crate) links: Option<Links>,
}

/// One time entry: only the fields Harvest guarantees, plus `notes`.
#[derive(Debug, Deserialize)]
pub(crate) struct TimeEntry {
    pub(crate) id: u64,
    pub(crate) spent_date: NaiveDate,
    pub(crate) user: IdName,
    pub(crate) project: IdName,
    pub(crate) hours: f64,
    #[serde(default)]
    pub(crate) notes: Option<String>,
    pub(crate) is_running: bool,
    pub(crate) updated_at: DateTime<Utc>,
}

/// `GET /v2/projects`.
#[derive(Debug, Deserialize)]
pub(crate) struct ProjectsPage {
    pub(crate) projects: Vec<Project>,
    #[serde(default)]
    pub(crate) links: Option<Links>,
}

/// A project's client; only its name is shown in the link picker.
#[derive(Debug, Deserialize)]
pub(crate) struct ProjectClient {
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// One project.
#[derive(Debug, Deserialize)]
pub(crate) struct Project {
    pub(crate) id: u64,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) client: Option<ProjectClient>,
    // Absent is read as active: hiding a project from the picker because a flag is missing
    // would be worse than showing an archived one as active.
    #[serde(default = "active_by_default")]
    pub(crate) is_active: bool,
}

fn active_by_default() -> bool {
    true
}

/// `GET /v2/users`.
#[derive(Debug, Deserialize)]
pub(crate) struct UsersPage {
    pub(crate) users: Vec<User>,
    #[serde(default)]
    pub(crate) links: Option<Links>,
}

/// One user.
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) first_name: String,
    #[serde(default)]
    pub(crate) last_name: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
}

/// `GET https://id.getharvest.com/api/v2/accounts`.
#[derive(Debug, Deserialize)]
pub(crate) struct AccountsResponse {
    pub(crate) accounts: Vec<Account>,
}

/// One account the login reaches; Forecast accounts come back here too.
#[derive(Debug, Deserialize)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) product: Option<String>,
}

/// Decimal hours to whole minutes. `hours` (not `rounded_hours`) is imported because it is the
/// time actually tracked; the account's rounding is an invoicing concern.
pub(crate) fn minutes(hours: f64) -> u32 {
    if !hours.is_finite() || hours <= 0.0 {
        return 0;
    }
    // `as` saturates, so an absurd value cannot wrap around.
    (hours * 60.0).round() as u32
}

impl From<TimeEntry> for RemoteWorkLog {
    fn from(e: TimeEntry) -> Self {
        RemoteWorkLog {
            id: e.id.to_string(),
            project_id: e.project.id.to_string(),
            // Time entries carry no e-mail; the engine joins with `list_people` by id.
            person: RemotePerson {
                id: e.user.id.to_string(),
                name: e.user.name,
                email: None,
            },
            date: e.spent_date,
            minutes: minutes(e.hours),
            note: e.notes.unwrap_or_default(),
            running: e.is_running,
            updated_at: Some(e.updated_at),
            // Harvest has no deletion feed: the engine reconciles the window.
            deleted: false,
            task_id: None,
        }
    }
}

impl From<Project> for RemoteProject {
    fn from(p: Project) -> Self {
        RemoteProject {
            id: p.id.to_string(),
            name: p.name,
            customer_name: p.client.and_then(|c| c.name),
            archived: !p.is_active,
            parent_id: None,
        }
    }
}

impl From<User> for RemotePerson {
    fn from(u: User) -> Self {
        RemotePerson {
            id: u.id.to_string(),
            name: format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_owned(),
            // Kept exactly as Harvest has it: normalising for matching is the engine's job.
            email: u.email.filter(|e| !e.trim().is_empty()),
        }
    }
}

/// Whether a project matches the picker's search text (case-insensitive, name or client).
/// Blank text matches everything.
pub(crate) fn project_matches(p: &RemoteProject, query: &str) -> bool {
    let needle = query.trim().to_lowercase();
    p.name.to_lowercase().contains(&needle)
        || p.customer_name
            .as_deref()
            .is_some_and(|c| c.to_lowercase().contains(&needle))
}

/// Picks the account a connection uses among the Harvest accounts of a login, or `None` when it
/// has no Harvest account at all.
pub(crate) fn select_account(accounts: Vec<Account>, wanted: Option<&str>) -> Option<AccountInfo> {
    let harvest: Vec<(String, String)> = accounts
        .into_iter()
        .filter(|a| a.product.as_deref() == Some("harvest"))
        .map(|a| (a.id.to_string(), a.name))
        .collect();
    let (account_id, account_name) = wanted
        .and_then(|w| harvest.iter().find(|(id, _)| id == w))
        .or_else(|| harvest.first())
        .cloned()?;
    Some(AccountInfo {
        account_id,
        account_name,
        other_accounts: harvest,
        identity: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME_ENTRIES: &str = include_str!("../tests/fixtures/harvest-time-entries.json");
    const USERS: &str = include_str!("../tests/fixtures/harvest-users.json");
    const ACCOUNTS: &str = include_str!("../tests/fixtures/harvest-accounts.json");

    fn work_logs() -> (Vec<RemoteWorkLog>, Option<String>) {
        let page: TimeEntriesPage = serde_json::from_str(TIME_ENTRIES).unwrap();
        (
            page.time_entries.into_iter().map(Into::into).collect(),
            next_link(page.links),
        )
    }

    #[test]
    fn time_entry_fixture_maps_to_work_logs() {
        let (logs, next) = work_logs();
        assert_eq!(logs.len(), 3);

        let approved = &logs[0];
        assert_eq!(
            approved.id, "2493018877",
            "ids above 32 bits survive intact"
        );
        assert_eq!(approved.project_id, "40117823");
        assert_eq!(
            approved.person,
            RemotePerson {
                id: "4102233".into(),
                name: "Marta Kowalczyk".into(),
                email: None
            }
        );
        assert_eq!(approved.date, NaiveDate::from_ymd_opt(2025, 2, 11).unwrap());
        assert_eq!(
            approved.minutes, 208,
            "3.47 h of `hours`, not 3.5 `rounded_hours`"
        );
        assert_eq!(
            approved.note,
            "Route optimisation endpoint: pagination + tests"
        );
        assert!(!approved.running);
        assert_eq!(
            approved.updated_at,
            Some("2025-02-17T16:40:02Z".parse().unwrap())
        );

        let timer = &logs[1];
        assert_eq!(timer.id, "2493577310");
        assert!(timer.running, "the running timer is flagged");
        assert_eq!(timer.minutes, 37, "0.62 h so far");

        let no_notes = &logs[2];
        assert_eq!(no_notes.id, "2491204466");
        assert_eq!(no_notes.note, "", "`notes: null` becomes an empty note");
        assert_eq!(no_notes.minutes, 90);
        assert_eq!(no_notes.person.id, "4109871");
        assert_eq!(no_notes.date, NaiveDate::from_ymd_opt(2025, 2, 10).unwrap());

        assert_eq!(
            next.as_deref(),
            Some(
                "https://api.harvestapp.com/v2/time_entries?from=2025-02-01&page=2&per_page=3&project_id=40117823&ref=next&to=2025-02-28"
            )
        );
    }

    #[test]
    fn a_time_entry_with_only_the_guaranteed_fields_parses() {
        let body = r#"{"time_entries":[{"id":18446744073709551615,"spent_date":"2025-03-01",
            "user":{"id":1,"name":"A B"},"project":{"id":2,"name":"P"},"hours":0.25,
            "is_running":false,"updated_at":"2025-03-01T10:00:00Z"}]}"#;
        let page: TimeEntriesPage = serde_json::from_str(body).unwrap();
        assert!(next_link(page.links).is_none());
        let log: RemoteWorkLog = page.time_entries.into_iter().next().unwrap().into();
        assert_eq!(log.id, u64::MAX.to_string());
        assert_eq!(log.minutes, 15);
        assert_eq!(log.note, "");
    }

    #[test]
    fn optional_blocks_may_be_null() {
        let body = r#"{"time_entries":[{"id":5,"spent_date":"2025-03-01",
            "user":{"id":1,"name":"A B"},"project":{"id":2,"name":"P"},"hours":1,
            "notes":null,"user_assignment":null,"task_assignment":null,"invoice":null,
            "external_reference":null,"client":null,"task":null,
            "is_running":false,"updated_at":"2025-03-01T10:00:00Z"}],
            "links":{"next":null}}"#;
        let page: TimeEntriesPage = serde_json::from_str(body).unwrap();
        assert!(next_link(page.links).is_none());
        assert_eq!(page.time_entries[0].hours, 1.0);
    }

    #[test]
    fn each_guaranteed_field_is_required() {
        let full = serde_json::json!({
            "id": 5, "spent_date": "2025-03-01", "user": {"id": 1, "name": "A B"},
            "project": {"id": 2, "name": "P"}, "hours": 1.0, "is_running": false,
            "updated_at": "2025-03-01T10:00:00Z"
        });
        assert!(serde_json::from_value::<TimeEntry>(full.clone()).is_ok());
        for field in [
            "id",
            "spent_date",
            "user",
            "project",
            "hours",
            "is_running",
            "updated_at",
        ] {
            let mut entry = full.clone();
            entry.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<TimeEntry>(entry).is_err(),
                "{field} must be required"
            );
        }
    }

    #[test]
    fn minutes_round_and_never_go_negative() {
        assert_eq!(minutes(3.47), 208);
        assert_eq!(minutes(0.0), 0);
        assert_eq!(minutes(-1.5), 0);
        assert_eq!(minutes(f64::NAN), 0);
        assert_eq!(minutes(0.009), 1, "half a minute and more rounds up");
        assert_eq!(minutes(0.008), 0);
        assert_eq!(minutes(24.0), 1440);
    }

    #[test]
    fn users_fixture_keeps_emails_as_given() {
        let page: UsersPage = serde_json::from_str(USERS).unwrap();
        let people: Vec<RemotePerson> = page.users.into_iter().map(Into::into).collect();
        assert_eq!(
            people,
            vec![
                RemotePerson {
                    id: "4115502".into(),
                    name: "Priya Raman".into(),
                    email: Some("priya.raman@northwind-logistics.example".into()),
                },
                RemotePerson {
                    id: "4109871".into(),
                    name: "Jonas Berg".into(),
                    email: Some("Jonas.Berg@Northwind-Logistics.example".into()),
                },
                RemotePerson {
                    id: "4088310".into(),
                    name: "Sam Okafor".into(),
                    email: Some("sam.okafor@freelance-mail.example".into()),
                },
            ]
        );
        assert!(
            next_link(page.links)
                .unwrap()
                .contains("cursor=eyJhZnRlciI6eyJpZCI6NDA4ODMxMH19")
        );
    }

    #[test]
    fn a_blank_email_is_no_email() {
        let u: User =
            serde_json::from_str(r#"{"id":1,"first_name":"Solo","last_name":"","email":" "}"#)
                .unwrap();
        let p: RemotePerson = u.into();
        assert_eq!(p.name, "Solo");
        assert_eq!(p.email, None);
    }

    #[test]
    fn projects_map_archived_and_client_and_filter_by_either() {
        let body = r#"{"projects":[
            {"id":40117823,"name":"Fleet Portal Rebuild","client":{"id":1,"name":"Northwind Logistics","currency":"EUR"},"is_active":true},
            {"id":40117824,"name":"Old Intranet","client":{"id":2,"name":"Contoso"},"is_active":false},
            {"id":40117825,"name":"Internal","client":null,"is_active":true}
        ],"links":{"next":null}}"#;
        let page: ProjectsPage = serde_json::from_str(body).unwrap();
        let projects: Vec<RemoteProject> = page.projects.into_iter().map(Into::into).collect();
        assert_eq!(
            projects[0],
            RemoteProject {
                id: "40117823".into(),
                name: "Fleet Portal Rebuild".into(),
                customer_name: Some("Northwind Logistics".into()),
                archived: false,
                parent_id: None,
            }
        );
        assert!(projects[1].archived);
        assert_eq!(projects[2].customer_name, None);

        let hits = |needle: &str| -> Vec<&str> {
            projects
                .iter()
                .filter(|p| project_matches(p, needle))
                .map(|p| p.id.as_str())
                .collect()
        };
        assert_eq!(hits("portal"), ["40117823"], "by name");
        assert_eq!(hits("contoso"), ["40117824"], "by client name");
        assert_eq!(hits("INT"), ["40117824", "40117825"], "case-insensitive");
        assert!(hits("nothing").is_empty());
        assert_eq!(hits("  ").len(), 3, "blank text matches everything");
    }

    #[test]
    fn accounts_fixture_keeps_only_harvest_accounts_and_honours_the_setting() {
        let accounts = || {
            serde_json::from_str::<AccountsResponse>(ACCOUNTS)
                .unwrap()
                .accounts
        };
        let harvest = vec![
            ("1320977".to_owned(), "Northwind Logistics".to_owned()),
            (
                "1506214".to_owned(),
                "Berg Consulting (side account)".to_owned(),
            ),
        ];

        let first = select_account(accounts(), None).unwrap();
        assert_eq!(first.account_id, "1320977");
        assert_eq!(first.account_name, "Northwind Logistics");
        assert_eq!(
            first.other_accounts, harvest,
            "forecast 1320978 filtered out"
        );

        let chosen = select_account(accounts(), Some("1506214")).unwrap();
        assert_eq!(chosen.account_id, "1506214");
        assert_eq!(chosen.account_name, "Berg Consulting (side account)");
        assert_eq!(chosen.other_accounts, harvest);

        let forecast = select_account(accounts(), Some("1320978")).unwrap();
        assert_eq!(
            forecast.account_id, "1320977",
            "a Forecast account is never selected"
        );

        let only_forecast = vec![Account {
            id: 1,
            name: "F".into(),
            product: Some("forecast".into()),
        }];
        assert!(select_account(only_forecast, None).is_none());
    }
}
