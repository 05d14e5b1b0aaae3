//! The authorization matrix: every operation of the served document, called by every kind of
//! caller (keygate's admin, member and auditor keys, an Ops Manager key pair owning or reading
//! one project, no credentials), on a resource of the caller's own organization and on one of
//! another organization. Each cell's status follows the operation's rule, and no answer names
//! the other organization's resources.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Estate, figures, send, send_digest};
use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, operations, read,
};

on_both_backends!(every_route_answers_every_role_of_either_organization_by_its_rule);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Nobody,
    ProjectReadOnly,
    ProjectOwner,
    Auditor,
    Member,
    Admin,
}

/// The roles in the order they are tried: those who may delete come last.
const ROLES: [Role; 6] = [
    Role::Nobody,
    Role::ProjectReadOnly,
    Role::Auditor,
    Role::Member,
    Role::ProjectOwner,
    Role::Admin,
];

/// Who an operation lets in.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// No credentials needed.
    Public,
    /// Signed by GitHub, not authenticated by any credential of keygate's: every caller here
    /// is refused, as it cannot sign.
    GitHubSigned,
    /// Any keygate API key.
    Anyone,
    /// Admin and member keys.
    User,
    /// Admin and auditor keys.
    AuditReader,
    /// Admin keys (of `default`, for the operators' routes: the admin here is one).
    Admin,
    /// Ops Manager: reading (any key pair with a role where it reads, any bearer key).
    OpsRead,
    /// Ops Manager: changing a project (its owners, and bearer admins as organization owners).
    OpsProjectOwner,
    /// Ops Manager: changing the organization (bearer admins as organization owners).
    OpsOrgOwner,
}

/// The rule of an operation, read off the document: its security, family and method, with the
/// few operations whose rule differs from their family's default named here.
fn rule(method: &Method, template: &str, operation: &Value) -> Rule {
    if template == "/secret-scanning/github" {
        return Rule::GitHubSigned;
    }
    if operation.get("security").is_none() {
        return Rule::Public;
    }
    let ops_manager = operation["tags"][0] == "Ops Manager";
    match (method.as_str(), template) {
        ("POST", "/verify" | "/agent_api_keys/verify-signature") => Rule::User,
        ("GET", "/audit") => Rule::AuditReader,
        // The operators' listing of organizations, and the metrics of the whole instance.
        ("GET", "/orgs" | "/metrics") => Rule::Admin,
        ("GET", _) if ops_manager => Rule::OpsRead,
        (_, _) if ops_manager && template.contains("{PROJECT-ID}") => Rule::OpsProjectOwner,
        (_, _) if ops_manager => Rule::OpsOrgOwner,
        ("GET", _) => Rule::Anyone,
        _ => Rule::Admin,
    }
}

/// Whether `role` passes `rule`.
fn allowed(rule: Rule, role: Role) -> bool {
    use Role::*;
    match rule {
        Rule::Public => true,
        Rule::GitHubSigned => false,
        Rule::Anyone => matches!(role, Admin | Member | Auditor),
        Rule::User => matches!(role, Admin | Member),
        Rule::AuditReader => matches!(role, Admin | Auditor),
        Rule::Admin => role == Admin,
        Rule::OpsRead => role != Nobody,
        Rule::OpsProjectOwner => matches!(role, Admin | ProjectOwner),
        Rule::OpsOrgOwner => role == Admin,
    }
}

/// The credentials of each role in the organization `default`.
struct Callers {
    member: String,
    auditor: String,
    project_owner: (String, String),
    project_reader: (String, String),
}

impl Callers {
    async fn of(app: &TestApp, estate: &Estate) -> Callers {
        let pair = |project_role: &'static str| async move {
            let body = json!({"desc": project_role, "roles": ["ORG_MEMBER"]});
            let path = format!("/orgs/{}/apiKeys", estate.ops_org);
            let (_, pair) = send(app, Method::POST, &path, ADMIN, Some(body)).await;
            let path = format!(
                "/groups/{}/apiKeys/{}",
                estate.project,
                pair["id"].as_str().unwrap()
            );
            let (status, _) = send(
                app,
                Method::PATCH,
                &path,
                ADMIN,
                Some(json!({"roles": [project_role]})),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let field = |name: &str| pair[name].as_str().unwrap().to_owned();
            (field("publicKey"), field("privateKey"))
        };
        Callers {
            member: app.create_api_key("member").await,
            auditor: app.create_api_key("auditor").await,
            project_owner: pair("GROUP_OWNER").await,
            project_reader: pair("GROUP_READ_ONLY").await,
        }
    }

    async fn send(
        &self,
        app: &TestApp,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let pair = |(public, private): &(String, String)| (public.clone(), private.clone());
        let bearer = match role {
            Role::Admin => ADMIN,
            Role::Member => &self.member,
            Role::Auditor => &self.auditor,
            Role::ProjectOwner | Role::ProjectReadOnly => {
                let (public, private) = pair(if role == Role::ProjectOwner {
                    &self.project_owner
                } else {
                    &self.project_reader
                });
                return send_digest(app, method, path, (&public, &private), body).await;
            }
            Role::Nobody => {
                let request = app.request(method, path, None);
                let request = match body {
                    Some(body) => request.json(&body),
                    None => request,
                };
                return read(request.send().await.unwrap()).await;
            }
        };
        send(app, method, path, bearer, body).await
    }
}

/// The body sent with an operation that takes one: the fields it requires, left empty. Whether
/// the caller may act is decided before the body is read.
fn body_of(operation: &Value) -> Option<Value> {
    operation.get("requestBody").map(|_| json!({}))
}

async fn every_route_answers_every_role_of_either_organization_by_its_rule(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        // Key pairs try the routes that take no Digest, on purpose.
        config.auth_failures_per_minute = 1_000_000;
    })
    .await;
    let own = Estate::build(&app, ADMIN, "own").await;
    let (_, other_admin) = app.create_org("other").await;
    let other = Estate::build(&app, &other_admin, "other").await;
    let callers = Callers::of(&app, &own).await;

    let operations = operations(&app).await;
    // Every role tries everything but deletions, then every role the deletions, the deepest
    // path first: each operation finds its resource unless a deletion allowed to an earlier
    // caller removed it.
    let (mut deletions, others): (Vec<_>, Vec<_>) = operations
        .iter()
        .partition(|(method, _, _)| *method == Method::DELETE);
    deletions.sort_by_key(|(_, template, _)| std::cmp::Reverse(template.len()));
    let cells_in_order = [others, deletions].into_iter().flat_map(|pass| {
        ROLES.into_iter().flat_map(move |role| {
            pass.clone()
                .into_iter()
                .map(move |operation| (role, operation))
        })
    });
    let revealing = other.identifiers();
    let mut cells = 0;
    let mut tally: BTreeMap<u16, usize> = BTreeMap::new();
    {
        for (role, (method, template, operation)) in cells_in_order {
            let rule = rule(method, template, operation);
            let mut targets = vec![(own.path(template), true)];
            // A path naming a resource names one of the other organization too.
            if template.contains('{') && !template.contains("{protocol}") {
                targets.push((other.path(template), false));
            }
            for (path, own_organization) in targets {
                let (status, answer) = callers
                    .send(&app, role, method.clone(), &path, body_of(operation))
                    .await;
                cells += 1;
                *tally.entry(status.as_u16()).or_default() += 1;
                let cell = format!("{role:?} {method} {path} ({rule:?}): {status} {answer}");
                assert!(!status.is_server_error(), "{cell}");
                let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
                if !own_organization {
                    assert!(!status.is_success(), "another organization's: {cell}");
                } else if allowed(rule, role) {
                    assert!(!refused.contains(&status), "allowed: {cell}");
                } else {
                    assert!(refused.contains(&status), "refused: {cell}");
                }
                // Echoing what the caller sent (Agentex's "Item with name 'x' does not exist.")
                // reveals nothing; anything else of the other organization's would.
                let text = answer.to_string();
                for identifier in revealing.iter().filter(|id| !path.contains(*id)) {
                    assert!(
                        !text.contains(identifier),
                        "{cell}: the answer names another organization's resource"
                    );
                }
            }
        }
    }
    figures(
        "authorization matrix",
        backend,
        format_args!(
            "operations={} roles={} cells={cells} statuses={tally:?} wrong_cells=0 leaks=0",
            operations.len(),
            ROLES.len()
        ),
    );
}
