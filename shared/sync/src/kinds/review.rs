//! Matching imported master data to what the host already has, and the review list for what
//! cannot be matched with certainty (capability `MasterDataIn::match_existing`).
//!
//! A remote customer or project seen for the first time (no [`RemoteMapping`] yet) is:
//! - **linked** to the host customer with the same organisation number, else to the only host
//!   customer with the same normalised name (case and runs of spaces ignored) whose
//!   organisation number does not contradict it; a project to the only host project with the
//!   same normalised name under the same (linked) customer;
//! - put on the **review list** when several host records have that name, or when none has it
//!   but one is similar (differences in case, spacing, punctuation, diacritics, or an edit
//!   distance of at most two on names of five letters or more);
//! - **created** when nothing is even similar.
//!
//! Only host records that are still the host's own (`managed_by: local`) are candidates. An
//! admin answers a review item with link, create or ignore; an ignored record stays out of
//! syncs until it is reset. Host-only records are never sent anywhere.
//!
//! [`RemoteMapping`]: hourbridge_domain::RemoteMapping

use chrono::{DateTime, Utc};
use hourbridge_domain::{Customer, ManagedBy, Project, RecordId};
use hourbridge_provider_api::{MasterEntity, RemoteRecord};
use hourbridge_store::{Entity, EntityKind, IndexKey, IndexSel};
use serde::{Deserialize, Serialize};

use crate::{Engine, SyncError};

/// A host record a review item could be linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Host id.
    pub id: String,
    /// Host name.
    pub name: String,
    /// Organisation number (customers), which tells same-named customers apart.
    pub organization_number: Option<String>,
}

/// A remote record waiting for an admin's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// `{provider}.{kind}.{remote id}`.
    pub id: String,
    /// The provider.
    pub provider: String,
    /// `customer` or `project`.
    pub kind: String,
    /// The remote record as last seen.
    pub remote: RemoteRecord,
    /// Name of the remote project's customer, for display.
    pub customer_name: Option<String>,
    /// `several_candidates` or `similar_name`.
    pub reason: String,
    /// The host records it could be.
    pub candidates: Vec<Candidate>,
    /// Ignored by an admin: left out of syncs until reset.
    pub ignored: bool,
    /// When it was put on the list.
    pub created_at: DateTime<Utc>,
}

impl Entity for ReviewItem {
    const KIND: EntityKind = EntityKind("review_item");
    fn id(&self) -> String {
        self.id.clone()
    }
    fn index1(&self) -> Option<IndexKey> {
        Some(IndexKey {
            partition: self.provider.clone(),
            sort: self.id.clone(),
        })
    }
}

/// The review item id of a remote record.
pub fn review_id(provider: &str, entity: MasterEntity, remote: &str) -> String {
    let kind = match entity {
        MasterEntity::Customer => "customer",
        _ => "project",
    };
    format!("{provider}.{kind}.{remote}")
}

/// What to do with a remote record seen for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Make it this host record.
    Link(RecordId),
    /// Make a new host record.
    Create,
    /// Put it on the review list.
    Review {
        /// Why.
        reason: &'static str,
        /// The host records it could be.
        candidates: Vec<Candidate>,
    },
}

/// Lower-case, trimmed, inner runs of white space collapsed: what "the same name" compares.
pub fn normalize(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Letters and digits only, lower-case, diacritics folded: what "similar" compares.
pub fn fold(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'č' | 'ć' => "c",
            'ð' | 'ď' | 'đ' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
            'ł' | 'ľ' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'œ' => "oe",
            'ř' => "r",
            'ś' | 'š' | 'ş' => "s",
            'ß' => "ss",
            'ť' | 'ţ' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ž' | 'ź' | 'ż' => "z",
            c if c.is_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(folded);
    }
    out
}

/// Whether two names are similar without being the same.
pub fn similar(a: &str, b: &str) -> bool {
    let (fa, fb) = (fold(a), fold(b));
    if fa.is_empty() || fb.is_empty() {
        return false;
    }
    fa == fb
        || (fa.chars().count().min(fb.chars().count()) >= 5 && strsim::levenshtein(&fa, &fb) <= 2)
}

fn candidate_of_customer(c: &Customer) -> Candidate {
    Candidate {
        id: c.id.to_string(),
        name: c.name.clone(),
        organization_number: c.organization_number.clone(),
    }
}

fn candidate_of_project(p: &Project) -> Candidate {
    Candidate {
        id: p.id.to_string(),
        name: p.name.clone(),
        organization_number: None,
    }
}

fn org(n: &Option<String>) -> Option<String> {
    n.as_deref()
        .map(|s| {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
}

/// The match of a remote customer among the host's own customers.
pub fn match_customer(r: &RemoteRecord, host: &[Customer]) -> Match {
    let own: Vec<&Customer> = host
        .iter()
        .filter(|c| c.managed_by == ManagedBy::Local)
        .collect();
    let remote_org = org(&r.organization_number);
    if let Some(o) = &remote_org {
        let by_org: Vec<&&Customer> = own
            .iter()
            .filter(|c| org(&c.organization_number).as_ref() == Some(o))
            .collect();
        match by_org.as_slice() {
            [one] => return Match::Link(one.id.clone()),
            [] => {}
            many => {
                return Match::Review {
                    reason: "several_candidates",
                    candidates: many.iter().map(|c| candidate_of_customer(c)).collect(),
                };
            }
        }
    }
    let name = normalize(&r.name);
    // Same name, and no organisation number that says it is another company.
    let same: Vec<&&Customer> = own
        .iter()
        .filter(|c| normalize(&c.name) == name)
        .filter(|c| match (&remote_org, org(&c.organization_number)) {
            (Some(a), Some(b)) => *a == b,
            _ => true,
        })
        .collect();
    match same.as_slice() {
        [one] => return Match::Link(one.id.clone()),
        [] => {}
        many => {
            return Match::Review {
                reason: "several_candidates",
                candidates: many.iter().map(|c| candidate_of_customer(c)).collect(),
            };
        }
    }
    let close: Vec<Candidate> = own
        .iter()
        .filter(|c| normalize(&c.name) == name || similar(&c.name, &r.name))
        .map(|c| candidate_of_customer(c))
        .collect();
    if close.is_empty() {
        Match::Create
    } else {
        Match::Review {
            reason: "similar_name",
            candidates: close,
        }
    }
}

/// The match of a remote project among the host's own projects under `customer` (the host
/// customer its remote customer is linked to, `None` for none).
pub fn match_project(r: &RemoteRecord, customer: Option<&RecordId>, host: &[Project]) -> Match {
    let own: Vec<&Project> = host
        .iter()
        .filter(|p| p.managed_by == ManagedBy::Local && p.customer_id.as_ref() == customer)
        .collect();
    let name = normalize(&r.name);
    let same: Vec<&&Project> = own.iter().filter(|p| normalize(&p.name) == name).collect();
    match same.as_slice() {
        [one] => return Match::Link(one.id.clone()),
        [] => {}
        many => {
            return Match::Review {
                reason: "several_candidates",
                candidates: many.iter().map(|p| candidate_of_project(p)).collect(),
            };
        }
    }
    let close: Vec<Candidate> = own
        .iter()
        .filter(|p| similar(&p.name, &r.name))
        .map(|p| candidate_of_project(p))
        .collect();
    if close.is_empty() {
        Match::Create
    } else {
        Match::Review {
            reason: "similar_name",
            candidates: close,
        }
    }
}

/// An admin's answer to a review item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewAction {
    /// Make the remote record this host record.
    Link(RecordId),
    /// Make a new host record.
    Create,
    /// Leave it out of syncs.
    Ignore,
    /// Undo an ignore: the next sync looks at it again.
    Reset,
}

impl Engine {
    /// The connection's review list: pending items first, then ignored ones.
    pub async fn review_items(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Vec<ReviewItem>, SyncError> {
        self.provider(provider)?;
        let q = self
            .store
            .query::<ReviewItem>(ws, IndexSel::Index1(provider.to_owned()), 1000);
        let mut items = self.store.list_all::<ReviewItem>(q).await?;
        items.sort_by_key(|i| (i.ignored, i.created_at));
        Ok(items)
    }

    /// Applies an admin's answer to review item `id` at once.
    pub async fn review(
        &self,
        ws: &str,
        provider: &str,
        id: &str,
        action: ReviewAction,
    ) -> Result<Option<ReviewItem>, SyncError> {
        let (mut item, version) = self
            .store
            .get::<ReviewItem>(ws, id)
            .await?
            .filter(|(i, _)| i.provider == provider)
            .ok_or_else(|| SyncError::NotFound(format!("review item {id:?}")))?;
        match action {
            ReviewAction::Ignore => {
                item.ignored = true;
                self.store.update(ws, &item, version).await?;
                Ok(Some(item))
            }
            ReviewAction::Reset => {
                self.store.delete::<ReviewItem>(ws, id).await?;
                Ok(None)
            }
            ReviewAction::Link(target) => {
                let ok = match item.remote.entity {
                    MasterEntity::Customer => self
                        .store
                        .get::<Customer>(ws, target.as_str())
                        .await?
                        .is_some_and(|(c, _)| c.managed_by == ManagedBy::Local),
                    _ => self
                        .store
                        .get::<Project>(ws, target.as_str())
                        .await?
                        .is_some_and(|(p, _)| p.managed_by == ManagedBy::Local),
                };
                if !ok {
                    return Err(SyncError::Invalid(
                        "target_id names no host record of this kind that is still the host's own"
                            .into(),
                    ));
                }
                super::master_data_in::apply_reviewed(
                    self,
                    ws,
                    provider,
                    &item.remote,
                    Some(target),
                )
                .await?;
                self.store.delete::<ReviewItem>(ws, id).await?;
                Ok(None)
            }
            ReviewAction::Create => {
                super::master_data_in::apply_reviewed(self, ws, provider, &item.remote, None)
                    .await?;
                self.store.delete::<ReviewItem>(ws, id).await?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str, name: &str, org: Option<&str>) -> Customer {
        Customer {
            id: RecordId::parse(id).unwrap(),
            name: name.into(),
            organization_number: org.map(Into::into),
            managed_by: ManagedBy::Local,
            active: true,
        }
    }

    fn remote(name: &str, org: Option<&str>) -> RemoteRecord {
        RemoteRecord {
            entity: MasterEntity::Customer,
            id: "9".into(),
            name: name.into(),
            parent_id: None,
            customer_id: None,
            organization_number: org.map(Into::into),
            start_date: None,
            end_date: None,
            deleted: false,
            email: None,
            inactive: false,
            version: None,
            number: None,
        }
    }

    #[test]
    fn names_fold_case_spacing_punctuation_and_diacritics() {
        assert_eq!(normalize("  Fjord   Tech AS "), "fjord tech as");
        assert_eq!(fold("Bølgen & Møller A/S"), "bolgenmolleras");
        assert!(similar("Fjordtech AS", "Fjord-Tech A.S."));
        assert!(similar("Nordlys Consulting", "Nordlys Konsulting"));
        assert!(!similar("Acme", "Apex"));
    }

    #[test]
    fn customers_link_by_organisation_number_then_by_the_only_same_name() {
        let host = [
            customer("a", "Fjordtech AS", Some("912345678")),
            customer("b", "Havbruk AS", None),
            customer("c", "Nordlys", Some("998877665")),
            customer("d", "Nordlys", Some("111222333")),
        ];
        let id = |s: &str| RecordId::parse(s).unwrap();
        assert_eq!(
            match_customer(&remote("Other name", Some("912 345 678")), &host),
            Match::Link(id("a"))
        );
        assert_eq!(
            match_customer(&remote("havbruk  as", None), &host),
            Match::Link(id("b"))
        );
        // Two same-name customers: the organisation number decides, or a review.
        assert_eq!(
            match_customer(&remote("Nordlys", Some("111222333")), &host),
            Match::Link(id("d"))
        );
        assert!(matches!(
            match_customer(&remote("Nordlys", None), &host),
            Match::Review {
                reason: "several_candidates",
                ..
            }
        ));
        assert!(matches!(
            match_customer(&remote("Fjord-Tech AS", None), &host),
            Match::Review {
                reason: "similar_name",
                ..
            }
        ));
        assert_eq!(
            match_customer(&remote("Brand new", None), &host),
            Match::Create
        );
    }
}
