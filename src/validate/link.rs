//! Link state: is the robot linked to the STACKIT service account whose key this machine uses?
//!
//! STACKIT lets a robot be linked to a service account by its e-mail and id; once linked, the
//! service account logs in with its e-mail and a STACKIT access token and gets the robot's
//! permissions. Upstream Harbor has no such fields and STACKIT has not published its API shape,
//! so the link is either given explicitly ([`LinkSource::Explicit`]) or read from the robot JSON
//! through configurable JSON pointers ([`LinkPointers`]). The expected side comes from the key:
//! `credentials.iss` is the e-mail, `credentials.sub` the id ([`SaIdentity::from_key`]).

use super::findings::{Finding, codes};
use super::robot::{Robot, display_name};
use crate::key::ServiceAccountKey;
use serde::Serialize;
use serde_json::Value;

/// A service account identity: e-mail and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaIdentity {
    /// The e-mail, e.g. `ci-1a2b3c@sa.stackit.cloud`.
    pub email: String,
    /// The id, a UUID.
    pub id: String,
}

impl SaIdentity {
    /// An identity from e-mail and id.
    pub fn new(email: impl Into<String>, id: impl Into<String>) -> SaIdentity {
        SaIdentity {
            email: email.into(),
            id: id.into(),
        }
    }

    /// The identity a service account key authenticates as: `credentials.iss` and `credentials.sub`.
    pub fn from_key(key: &ServiceAccountKey) -> SaIdentity {
        SaIdentity::new(key.iss.clone(), key.sub.clone())
    }
}

/// Where the robot's side of the link is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSource {
    /// Given by the caller: `Some` for a linked robot, `None` for an unlinked one.
    Explicit(Option<SaIdentity>),
    /// Read from the robot JSON.
    Pointers(LinkPointers),
}

/// JSON pointers (RFC 6901) into the robot JSON where the linked e-mail and id may be. The first
/// pointer that resolves wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPointers {
    /// Candidate pointers for the linked e-mail.
    pub email: Vec<String>,
    /// Candidate pointers for the linked id.
    pub id: Vec<String>,
}

/// Guessed default pointers for the linked e-mail. STACKIT's field names are not public; these
/// cover the obvious snake_case and camelCase spellings, nested and flat.
pub const DEFAULT_EMAIL_POINTERS: &[&str] = &[
    "/service_account/email",
    "/serviceAccount/email",
    "/service_account_email",
    "/serviceAccountEmail",
];

/// Guessed default pointers for the linked id (see [`DEFAULT_EMAIL_POINTERS`]).
pub const DEFAULT_ID_POINTERS: &[&str] = &[
    "/service_account/id",
    "/serviceAccount/id",
    "/service_account_id",
    "/serviceAccountId",
];

impl Default for LinkPointers {
    /// The guessed defaults: [`DEFAULT_EMAIL_POINTERS`], [`DEFAULT_ID_POINTERS`]; finding none of
    /// them means "unknown", not "unlinked", because the guess may simply be wrong.
    fn default() -> LinkPointers {
        LinkPointers {
            email: DEFAULT_EMAIL_POINTERS.iter().map(|p| p.to_string()).collect(),
            id: DEFAULT_ID_POINTERS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl LinkPointers {
    /// User-configured pointers: one for the e-mail, one for the id. Their absence from a robot
    /// still means "unknown": a registry may hide the fields from this identity.
    pub fn new(email: impl Into<String>, id: impl Into<String>) -> LinkPointers {
        LinkPointers {
            email: vec![email.into()],
            id: vec![id.into()],
        }
    }
}

/// The link state of a robot relative to the expected service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Linked to the expected service account.
    Linked,
    /// Not linked to any service account.
    Unlinked,
    /// Linked to a different service account.
    Mismatch {
        /// Whether the e-mail differs.
        email: bool,
        /// Whether the id differs.
        id: bool,
    },
    /// The link is there but a part is missing or not well-formed.
    Malformed {
        /// Whether the e-mail is malformed.
        email: bool,
        /// Whether the id is malformed.
        id: bool,
    },
    /// The link could not be read.
    Unknown,
}

/// The result of [`check_link`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkCheck {
    /// The state.
    #[serde(flatten)]
    pub state: LinkState,
    /// The robot's side of the link as read (raw strings), when there was one.
    pub linked: Option<SaIdentity>,
    /// `link.*` findings explaining the state.
    pub findings: Vec<Finding>,
}

/// What a pointer lookup found for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// No pointer resolved.
    Missing,
    /// A pointer resolved to `null` or `""`.
    Empty,
    /// A pointer resolved to a string (or another scalar, rendered as JSON text).
    Value(String),
}

/// What a robot's JSON says about its link, before comparing with the expected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkLookup {
    /// The fields were not found, and absence does not mean unlinked (guessed pointers).
    Unknown,
    /// No link: the fields are `null`/empty, or absent under configured pointers.
    Unlinked,
    /// A link, as read; values may still be malformed, and a missing half reads as `""`.
    Link(SaIdentity),
}

/// Reads the robot's side of the link from its JSON through `pointers`.
pub fn read_link(robot: &Robot, pointers: &LinkPointers) -> LinkLookup {
    let json = robot.to_value();
    let email = lookup(&json, &pointers.email);
    let id = lookup(&json, &pointers.id);
    match (email, id) {
        // No public STACKIT API or spec names the link fields, so their absence says nothing
        // about the link, configured pointers or not: only a present `null`/`""` is "unlinked".
        (Field::Missing, Field::Missing) => LinkLookup::Unknown,
        (Field::Missing | Field::Empty, Field::Missing | Field::Empty) => LinkLookup::Unlinked,
        (email, id) => LinkLookup::Link(SaIdentity::new(field_text(email), field_text(id))),
    }
}

fn lookup(json: &Value, pointers: &[String]) -> Field {
    for pointer in pointers {
        match json.pointer(pointer) {
            None => continue,
            Some(Value::Null) => return Field::Empty,
            Some(Value::String(s)) if s.is_empty() => return Field::Empty,
            Some(Value::String(s)) => return Field::Value(s.clone()),
            // A number or object where a string belongs: keep its JSON text so the malformed
            // finding can show what was there.
            Some(other) => return Field::Value(other.to_string()),
        }
    }
    Field::Missing
}

fn field_text(field: Field) -> String {
    match field {
        Field::Value(s) => s,
        Field::Missing | Field::Empty => String::new(),
    }
}

/// Compares the robot's link (from `source`) with the `expected` service account (A4 check 12):
/// `link.ok`, `link.unlinked`, `link.unknown`, `link.email_malformed`, `link.id_malformed`,
/// `link.email_mismatch`, `link.id_mismatch`. E-mails compare case-insensitively, ids in lower case.
pub fn check_link(robot: &Robot, source: &LinkSource, expected: &SaIdentity) -> LinkCheck {
    let who = display_name(robot);
    let found = match source {
        LinkSource::Explicit(Some(identity)) => LinkLookup::Link(identity.clone()),
        LinkSource::Explicit(None) => LinkLookup::Unlinked,
        LinkSource::Pointers(pointers) => read_link(robot, pointers),
    };
    match found {
        LinkLookup::Unknown => unknown(&who, source),
        LinkLookup::Unlinked => unlinked(&who, expected),
        LinkLookup::Link(linked) => compare(&who, linked, expected),
    }
}

fn unknown(who: &str, source: &LinkSource) -> LinkCheck {
    let tried = match source {
        LinkSource::Pointers(p) => p.email.iter().chain(&p.id).cloned().collect::<Vec<_>>().join(", "),
        LinkSource::Explicit(_) => String::new(),
    };
    LinkCheck {
        state: LinkState::Unknown,
        linked: None,
        findings: vec![Finding::info(
            codes::LINK_UNKNOWN,
            format!(
                "the link state of robot {who} is unknown: none of the fields {tried} is in its JSON (no public STACKIT API names the link fields); if your registry shows them under other names, set robotLink.emailPointer and robotLink.idPointer (JSON pointers) in the helper's config file"
            ),
        )],
    }
}

fn unlinked(who: &str, expected: &SaIdentity) -> LinkCheck {
    LinkCheck {
        state: LinkState::Unlinked,
        linked: None,
        findings: vec![Finding::error(
            codes::LINK_UNLINKED,
            format!("robot {who} is not linked to a service account"),
            format!(
                "link it in the STACKIT portal (Container Registry > Robot accounts > Edit): service account e-mail {}, ID {}",
                expected.email, expected.id
            ),
        )],
    }
}

fn compare(who: &str, linked: SaIdentity, expected: &SaIdentity) -> LinkCheck {
    let email_ok = is_email(&linked.email);
    let id_ok = is_uuid(&linked.id);
    let mut findings = Vec::new();
    if !email_ok {
        findings.push(malformed(
            codes::LINK_EMAIL_MALFORMED,
            who,
            "e-mail",
            &linked.email,
            &expected.email,
        ));
    }
    if !id_ok {
        findings.push(malformed(codes::LINK_ID_MALFORMED, who, "id", &linked.id, &expected.id));
    }
    // Only well-formed values are compared; a malformed one is already explained.
    let email_differs = email_ok && !linked.email.eq_ignore_ascii_case(&expected.email);
    let id_differs = id_ok && !linked.id.eq_ignore_ascii_case(&expected.id);
    if email_differs {
        findings.push(mismatch(
            codes::LINK_EMAIL_MISMATCH,
            who,
            "e-mail",
            &linked.email,
            &expected.email,
            "credentials.iss",
        ));
    }
    if id_differs {
        findings.push(mismatch(
            codes::LINK_ID_MISMATCH,
            who,
            "id",
            &linked.id,
            &expected.id,
            "credentials.sub",
        ));
    }
    let state = if !email_ok || !id_ok {
        LinkState::Malformed {
            email: !email_ok,
            id: !id_ok,
        }
    } else if email_differs || id_differs {
        LinkState::Mismatch {
            email: email_differs,
            id: id_differs,
        }
    } else {
        findings.push(Finding::info(
            codes::LINK_OK,
            format!("robot {who} is linked to service account {}", expected.email),
        ));
        LinkState::Linked
    };
    LinkCheck {
        state,
        linked: Some(linked),
        findings,
    }
}

fn malformed(code: &'static str, who: &str, what: &str, value: &str, expected: &str) -> Finding {
    let shown = if value.is_empty() {
        "missing".to_string()
    } else {
        format!("{value:?}")
    };
    let form = if what == "id" { "a UUID" } else { "an e-mail address" };
    Finding::error(
        code,
        format!("robot {who} is linked with a service account {what} that is not {form}: {shown}"),
        format!("set the robot's service account {what} to {expected} (STACKIT portal: Robot accounts > Edit)"),
    )
}

fn mismatch(code: &'static str, who: &str, what: &str, linked: &str, expected: &str, key_field: &str) -> Finding {
    Finding::error(
        code,
        format!("robot {who} is linked to service account {what} {linked}, but this key's {key_field} is {expected}"),
        format!(
            "link the robot to {expected}, or use the key of the service account the robot is linked to ({linked})"
        ),
    )
}

/// Whether `s` looks like an e-mail address: one `@`, a non-empty local part, a dotted domain,
/// no whitespace or control characters. Deliberately loose; it catches paste errors, not RFC 5322.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    s.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && labels_ok
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `s` is a canonical UUID: `8-4-4-4-12` hex digits (either case).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "ci-1a2b3c@sa.stackit.cloud";
    const ID: &str = "1f0e9c2a-7b3d-4c5e-8f6a-0b1c2d3e4f5a";

    fn expected() -> SaIdentity {
        SaIdentity::new(EMAIL, ID)
    }

    fn robot(json: &str) -> Robot {
        Robot::from_json(json).unwrap()
    }

    fn codes_of(check: &LinkCheck) -> Vec<&'static str> {
        check.findings.iter().map(|f| f.code).collect()
    }

    fn explicit(email: &str, id: &str) -> LinkSource {
        LinkSource::Explicit(Some(SaIdentity::new(email, id)))
    }

    #[test]
    fn explicit_link_states() {
        let r = robot(r#"{"name":"robot$shop+ci"}"#);
        let ok = check_link(&r, &explicit(EMAIL, ID), &expected());
        assert_eq!((ok.state, codes_of(&ok)), (LinkState::Linked, vec![codes::LINK_OK]));
        let none = check_link(&r, &LinkSource::Explicit(None), &expected());
        assert_eq!(
            (none.state, codes_of(&none)),
            (LinkState::Unlinked, vec![codes::LINK_UNLINKED])
        );
        assert!(none.findings[0].hint.as_deref().unwrap().contains(EMAIL));
    }

    #[test]
    fn compares_email_case_insensitively_and_ids_in_lower_case() {
        let r = Robot::default();
        let upper = check_link(&r, &explicit(&EMAIL.to_uppercase(), &ID.to_uppercase()), &expected());
        assert_eq!(upper.state, LinkState::Linked);
        let key_upper = check_link(&r, &explicit(EMAIL, ID), &SaIdentity::new(EMAIL, ID.to_uppercase()));
        assert_eq!(key_upper.state, LinkState::Linked);
    }

    #[test]
    fn mismatches() {
        let r = Robot::default();
        let other_id = "00000000-0000-4000-8000-000000000000";
        let c = check_link(&r, &explicit("other@sa.stackit.cloud", ID), &expected());
        assert_eq!(c.state, LinkState::Mismatch { email: true, id: false });
        assert_eq!(codes_of(&c), [codes::LINK_EMAIL_MISMATCH]);
        assert!(c.findings[0].message.contains("credentials.iss"));
        let c = check_link(&r, &explicit(EMAIL, other_id), &expected());
        assert_eq!(c.state, LinkState::Mismatch { email: false, id: true });
        assert_eq!(codes_of(&c), [codes::LINK_ID_MISMATCH]);
        let c = check_link(&r, &explicit("other@sa.stackit.cloud", other_id), &expected());
        assert_eq!(codes_of(&c), [codes::LINK_EMAIL_MISMATCH, codes::LINK_ID_MISMATCH]);
    }

    #[test]
    fn malformed_values() {
        let r = Robot::default();
        let c = check_link(&r, &explicit("not-an-email", "1234"), &expected());
        assert_eq!(c.state, LinkState::Malformed { email: true, id: true });
        assert_eq!(codes_of(&c), [codes::LINK_EMAIL_MALFORMED, codes::LINK_ID_MALFORMED]);
        // A malformed id does not hide a mismatched e-mail.
        let c = check_link(
            &r,
            &explicit("x@y.z", "{1f0e9c2a-7b3d-4c5e-8f6a-0b1c2d3e4f5a}"),
            &expected(),
        );
        assert_eq!(c.state, LinkState::Malformed { email: false, id: true });
        assert_eq!(codes_of(&c), [codes::LINK_ID_MALFORMED, codes::LINK_EMAIL_MISMATCH]);
    }

    #[test]
    fn reads_default_pointers() {
        let r = robot(&format!(
            r#"{{"name":"robot$shop+ci","service_account":{{"email":"{EMAIL}","id":"{ID}"}}}}"#
        ));
        assert_eq!(read_link(&r, &LinkPointers::default()), LinkLookup::Link(expected()));
        let c = check_link(&r, &LinkSource::Pointers(LinkPointers::default()), &expected());
        assert_eq!(c.state, LinkState::Linked);
        let r = robot(&format!(
            r#"{{"serviceAccountEmail":"{EMAIL}","serviceAccountId":"{ID}"}}"#
        ));
        assert_eq!(read_link(&r, &LinkPointers::default()), LinkLookup::Link(expected()));
    }

    #[test]
    fn absent_fields_are_unknown_whoever_chose_the_pointers() {
        let r = robot(r#"{"name":"robot$shop+ci","level":"project"}"#);
        let c = check_link(&r, &LinkSource::Pointers(LinkPointers::default()), &expected());
        assert_eq!((c.state, codes_of(&c)), (LinkState::Unknown, vec![codes::LINK_UNKNOWN]));
        assert_eq!(c.findings[0].severity, super::super::findings::Severity::Info);
        assert!(c.findings[0].message.contains("/service_account/email"));
        assert!(c.findings[0].message.contains("robotLink.emailPointer"));
        let configured = LinkPointers::new("/x_stackit/sa_email", "/x_stackit/sa_id");
        let c = check_link(&r, &LinkSource::Pointers(configured), &expected());
        assert_eq!(c.state, LinkState::Unknown);
        assert!(c.findings[0].message.contains("/x_stackit/sa_email, /x_stackit/sa_id"));
        // Present but null under configured pointers: unlinked.
        let r = robot(r#"{"x_stackit":{"sa_email":null,"sa_id":null}}"#);
        let configured = LinkPointers::new("/x_stackit/sa_email", "/x_stackit/sa_id");
        assert_eq!(
            check_link(&r, &LinkSource::Pointers(configured), &expected()).state,
            LinkState::Unlinked
        );
    }

    #[test]
    fn null_or_empty_fields_are_unlinked_and_half_links_malformed() {
        let r = robot(r#"{"service_account":{"email":null,"id":""}}"#);
        let c = check_link(&r, &LinkSource::Pointers(LinkPointers::default()), &expected());
        assert_eq!(c.state, LinkState::Unlinked);
        let r = robot(&format!(r#"{{"service_account":{{"email":"{EMAIL}"}}}}"#));
        let c = check_link(&r, &LinkSource::Pointers(LinkPointers::default()), &expected());
        assert_eq!(c.state, LinkState::Malformed { email: false, id: true });
        assert!(c.findings[0].message.contains("missing"));
        let r = robot(r#"{"service_account":{"email":["a"],"id":42}}"#);
        let c = check_link(&r, &LinkSource::Pointers(LinkPointers::default()), &expected());
        assert_eq!(codes_of(&c), [codes::LINK_EMAIL_MALFORMED, codes::LINK_ID_MALFORMED]);
        assert!(c.findings[1].message.contains("\"42\""), "{}", c.findings[1].message);
    }

    #[test]
    fn invalid_pointers_resolve_to_nothing() {
        let r = robot(r#"{"a":{"b":"x@y.z"}}"#);
        let p = LinkPointers::new("no-leading-slash", "/a/b/c/d");
        assert_eq!(read_link(&r, &p), LinkLookup::Unknown);
    }

    #[test]
    fn identity_from_key() {
        let key = ServiceAccountKey::parse(
            &format!(r#"{{"credentials":{{"kid":"k","iss":"{EMAIL}","sub":"{ID}","aud":"https://stackit"}}}}"#),
            "test",
        )
        .unwrap();
        assert_eq!(SaIdentity::from_key(&key), expected());
    }

    #[test]
    fn serialises_state_inline() {
        let c = check_link(&Robot::default(), &explicit(EMAIL, ID), &expected());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["state"], "linked");
        assert_eq!(json["linked"]["email"], EMAIL);
        assert_eq!(json["findings"][0]["code"], "link.ok");
        let m = serde_json::to_value(LinkState::Mismatch { email: true, id: false }).unwrap();
        assert_eq!(m, serde_json::json!({"state":"mismatch","email":true,"id":false}));
    }

    #[test]
    fn email_and_uuid_shapes() {
        for ok in [EMAIL, "a@b.c", "First.Last+tag@example.co.uk"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.c", "a@", "a@b", "a@b..c", "a@@b.c", "a b@c.d", "a@b.c\n", "a@.b.c",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        assert!(is_uuid(ID) && is_uuid(&ID.to_uppercase()));
        for bad in [
            "",
            "1f0e9c2a7b3d4c5e8f6a0b1c2d3e4f5a",
            "1f0e9c2a-7b3d-4c5e-8f6a-0b1c2d3e4f5",
            "g f0e9c2a-7b3d-4c5e-8f6a-0b1c2d3e4f",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }
}
