//! hoop machine identities (`/machineidentities`, also under `/api`): one native credential per
//! connection, shown once, all or nothing, verified per connection.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keygate::domain::machine_identities::{CredentialIssuer, NewMachineIdentity};
use keygate::domain::secret::{NewSecret, now};
use keygate::error::Error;
use keygate::secrets::{PlainSecret, SecretKind};
use keygate::storage::{self, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use uuid::Uuid;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, captured_logs, on_both_backends, read,
};
use crate::connections::{create_connection, put};

on_both_backends!(
    hoops_documented_request_is_answered_in_hoops_shape,
    each_subtype_gets_its_fields,
    the_postgres_connection_string_parses_with_a_postgres_client,
    the_ssh_command_puts_user_and_secret_in_place,
    connections_sharing_an_attribute_get_a_credential_too,
    an_unknown_connection_is_named_and_nothing_is_written,
    duplicate_names_are_409,
    a_failure_midway_through_creation_leaves_nothing_behind,
    verify_answers_identity_connection_and_attributes,
    a_credential_presented_to_another_connection_is_refused,
    update_issues_added_credentials_once_and_ends_removed_ones_at_once,
    attribute_changes_on_either_side_add_and_end_credentials,
    deleting_a_connection_ends_its_credentials_at_once,
    delete_ends_every_credential_and_is_404_when_missing,
    rotation_writes_the_new_credential_before_the_old_one_ends,
    rotation_with_grace_keeps_the_old_credential_working,
    ttl_and_expires_at_bound_every_credential,
    a_new_lifetime_bounds_credentials_in_their_grace_period_too,
    credentials_follow_the_listeners_set_by_operators,
    members_may_read_and_verify_but_not_change_identities,
    machine_credentials_never_reach_logs_errors_or_reads,
);

const SEED_REQUEST: &str = r#"{
    "name": "backend-prod",
    "attributes": ["env:prod", "team:backend"],
    "connection_names": ["prod-postgres", "api-proxy"],
    "description": "Production backend service identity"
}"#;

/// The fields of a JSON object, in alphabetical order.
fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The credential for `connection` in a create, update or rotation answer.
pub(crate) fn credential<'a>(answer: &'a Value, connection: &str) -> &'a Value {
    answer["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|credential| credential["connection_name"] == connection)
        .unwrap_or_else(|| panic!("no credential for {connection}: {answer}"))
}

/// The secret of a credential, wherever its subtype puts it.
pub(crate) fn secret_of(credential: &Value) -> String {
    let field = match credential["connection_subtype"].as_str().unwrap() {
        "postgres" | "mysql" | "mssql" | "mongodb" => "username",
        "ssh" | "rdp" => "password",
        "httpproxy" | "kubernetes" => "proxy_token",
        "aws-ssm" => "aws_secret_access_key",
        _ => "secret_key",
    };
    credential[field].as_str().unwrap().to_owned()
}

pub(crate) async fn create_identity(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/machineidentities", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Verifies `secret` as presented to `connection` (if any): (valid, code, answer).
async fn verify_at(app: &TestApp, secret: &str, connection: Option<&str>) -> (bool, String, Value) {
    let mut body = json!({ "key": secret });
    if let Some(connection) = connection {
        body["connection"] = json!(connection);
    }
    let (status, answer) = app.post("/verify", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (
        answer["valid"].as_bool().unwrap(),
        answer["code"].as_str().unwrap().to_owned(),
        answer,
    )
}

async fn hoops_documented_request_is_answered_in_hoops_shape(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(
        &app,
        "prod-postgres",
        "postgres",
        json!({"database_name": "app"}),
    )
    .await;
    create_connection(&app, "api-proxy", "httpproxy", json!({})).await;
    let (status, created) = read(
        app.request(Method::POST, "/api/machineidentities", Some(ADMIN))
            .header("content-type", "application/json")
            .body(SEED_REQUEST)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        keys(&created),
        [
            "attributes",
            "connection_names",
            "created_at",
            "credentials",
            "description",
            "id",
            "name",
            "updated_at"
        ]
    );
    assert_eq!(created["name"], "backend-prod");
    assert_eq!(created["attributes"], json!(["env:prod", "team:backend"]));
    assert_eq!(
        created["connection_names"],
        json!(["prod-postgres", "api-proxy"]),
        "in the order given"
    );
    assert_eq!(
        created["description"],
        "Production backend service identity"
    );
    assert!(Uuid::parse_str(created["id"].as_str().unwrap()).is_ok());
    for field in ["created_at", "updated_at"] {
        assert!(
            DateTime::parse_from_rfc3339(created[field].as_str().unwrap()).is_ok(),
            "{field}"
        );
    }
    assert_eq!(created["created_at"], created["updated_at"]);
    let credentials = created["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 2, "one per connection");
    let described: Vec<(&Value, &Value, &Value)> = credentials
        .iter()
        .map(|c| {
            (
                &c["connection_name"],
                &c["connection_type"],
                &c["connection_subtype"],
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            (
                &json!("prod-postgres"),
                &json!("database"),
                &json!("postgres")
            ),
            (
                &json!("api-proxy"),
                &json!("application"),
                &json!("httpproxy")
            ),
        ]
    );
    for credential in credentials {
        let secret = secret_of(credential);
        assert!(secret.starts_with("kgmi_"), "{secret}");
        assert_eq!(secret.len(), 5 + 43 + 6);
        assert!(verify_at(&app, &secret, None).await.0);
    }
    let (status, got) = app.get("/api/machineidentities/backend-prod", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&got["id"], &got["connection_names"], &got["attributes"]),
        (
            &created["id"],
            &created["connection_names"],
            &created["attributes"]
        )
    );
}

async fn each_subtype_gets_its_fields(backend: Backend) {
    let app = TestApp::start(backend).await;
    let common = ["connection_name", "connection_subtype", "connection_type"];
    let cases: [(&str, &[&str]); 11] = [
        (
            "postgres",
            &[
                "connection_string",
                "database_name",
                "hostname",
                "password",
                "port",
                "username",
            ],
        ),
        (
            "mysql",
            &[
                "connection_string",
                "database_name",
                "hostname",
                "password",
                "port",
                "username",
            ],
        ),
        (
            "mssql",
            &[
                "connection_string",
                "database_name",
                "hostname",
                "password",
                "port",
                "username",
            ],
        ),
        (
            "mongodb",
            &[
                "connection_string",
                "database_name",
                "hostname",
                "password",
                "port",
                "username",
            ],
        ),
        (
            "ssh",
            &["command", "hostname", "password", "port", "username"],
        ),
        (
            "rdp",
            &["command", "hostname", "password", "port", "username"],
        ),
        (
            "tcp",
            &[
                "command",
                "connection_string",
                "hostname",
                "port",
                "secret_key",
            ],
        ),
        ("httpproxy", &["command", "hostname", "port", "proxy_token"]),
        (
            "kubernetes",
            &["command", "hostname", "port", "proxy_token"],
        ),
        (
            "aws-ssm",
            &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "connection_string",
                "endpoint_url",
            ],
        ),
        ("bash", &["secret_key"]),
    ];
    let mut names = Vec::new();
    for (subtype, _) in &cases {
        let name = format!("{subtype}-conn");
        create_connection(&app, &name, subtype, json!({"database_name": "app"})).await;
        names.push(name);
    }
    let created = create_identity(
        &app,
        json!({"name": "every-kind", "connection_names": names}),
    )
    .await;
    for (subtype, fields) in cases {
        let name = format!("{subtype}-conn");
        let credential = credential(&created, &name);
        let expected: BTreeSet<&str> = common.iter().chain(fields).copied().collect();
        let got: BTreeSet<&str> = keys(credential).into_iter().collect();
        assert_eq!(got, expected, "{subtype}: {credential}");
        let secret = secret_of(credential);
        let (valid, code, _) = verify_at(&app, &secret, Some(&name)).await;
        assert!(valid, "{subtype}: {code}");
        if fields.contains(&"hostname") {
            assert_eq!(credential["hostname"], "127.0.0.1", "{subtype}");
        }
    }
    let port = |subtype: &str| credential(&created, &format!("{subtype}-conn"))["port"].clone();
    for (subtype, expected) in [
        ("postgres", "15432"),
        ("mysql", "13306"),
        ("mssql", "11433"),
        ("mongodb", "17017"),
        ("ssh", "12222"),
        ("rdp", "13389"),
        ("tcp", "19000"),
        ("httpproxy", "18888"),
        ("kubernetes", "18888"),
    ] {
        assert_eq!(
            port(subtype),
            json!(expected),
            "{subtype}: ports are strings, as hoop sends them"
        );
    }

    // Database credentials carry the secret as the user and the fixed proxy password.
    for subtype in ["mysql", "mongodb"] {
        let credential = credential(&created, &format!("{subtype}-conn"));
        let url = url::Url::parse(credential["connection_string"].as_str().unwrap()).unwrap();
        assert_eq!(url.scheme(), subtype);
        assert_eq!(url.username(), secret_of(credential));
        assert_eq!(url.password(), Some("noop"));
        assert_eq!((url.host_str(), url.path()), (Some("127.0.0.1"), "/app"));
    }
    let mysql = credential(&created, "mysql-conn");
    assert!(
        mysql["connection_string"]
            .as_str()
            .unwrap()
            .ends_with("?ssl-mode=DISABLED")
    );
    let mongodb = credential(&created, "mongodb-conn");
    assert!(
        mongodb["connection_string"]
            .as_str()
            .unwrap()
            .ends_with("?directConnection=true&tls=false")
    );
    let mssql = credential(&created, "mssql-conn");
    let pairs: Vec<(&str, &str)> = mssql["connection_string"]
        .as_str()
        .unwrap()
        .split(';')
        .map(|pair| pair.split_once('=').unwrap())
        .collect();
    assert_eq!(
        pairs,
        [
            ("Server", "tcp:127.0.0.1,11433"),
            ("Database", "app"),
            ("User ID", secret_of(mssql).as_str()),
            ("Password", "noop"),
            ("Encrypt", "False"),
        ]
    );
    let rdp = credential(&created, "rdp-conn");
    assert_eq!(
        rdp["command"].as_str().unwrap(),
        format!(
            "xfreerdp /v:127.0.0.1:13389 /u:rdp-conn /p:'{}'",
            secret_of(rdp)
        )
    );
    let tcp = credential(&created, "tcp-conn");
    assert_eq!(
        tcp["connection_string"].as_str().unwrap(),
        format!("tcp://{}@127.0.0.1:19000", secret_of(tcp))
    );
    assert_eq!(
        tcp["command"].as_str().unwrap(),
        format!(
            "{{ printf '%s\\n' '{}'; cat; }} | nc 127.0.0.1 19000",
            secret_of(tcp)
        )
    );
    let proxy = credential(&created, "httpproxy-conn");
    let token = secret_of(proxy);
    assert_eq!(
        proxy["command"].as_str().unwrap(),
        format!(
            "curl -H 'Authorization: Bearer {token}' http://127.0.0.1:18888/\n\
             # in a browser: http://127.0.0.1:18888/?proxy_token={token}"
        )
    );
    let ssm = credential(&created, "aws-ssm-conn");
    let key_id = ssm["aws_access_key_id"].as_str().unwrap();
    assert!(key_id.starts_with("AKIA") && key_id.len() == 20, "{key_id}");
    assert_eq!(ssm["endpoint_url"], "http://127.0.0.1:8009");
    assert_eq!(
        ssm["connection_string"].as_str().unwrap(),
        format!(
            "AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={} aws ssm start-session \
             --target aws-ssm-conn --endpoint-url http://127.0.0.1:8009 --region us-east-1",
            secret_of(ssm)
        )
    );
}

async fn the_postgres_connection_string_parses_with_a_postgres_client(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        config.gateway_host = "gw.example.com".into();
        config.gateway_tls = vec!["postgres".parse().unwrap()];
    })
    .await;
    create_connection(
        &app,
        "prod-postgres",
        "postgres",
        json!({"database_name": "app data"}),
    )
    .await;
    let created = create_identity(
        &app,
        json!({"name": "pg-client", "connection_names": ["prod-postgres"]}),
    )
    .await;
    let credential = credential(&created, "prod-postgres");
    let secret = credential["username"].as_str().unwrap();
    let options = PgConnectOptions::from_str(credential["connection_string"].as_str().unwrap())
        .expect("a Postgres client reads the connection string");
    assert_eq!(
        options.get_username(),
        secret,
        "the secret sits where the proxy reads it"
    );
    assert_eq!(options.get_host(), "gw.example.com");
    assert_eq!(options.get_port(), 15432);
    assert_eq!(options.get_database(), Some("app data"));
    assert!(matches!(options.get_ssl_mode(), PgSslMode::Require));
    assert_eq!(credential["password"], "noop");
    assert_eq!(credential["database_name"], "app data");
    let (valid, _, answer) = verify_at(&app, options.get_username(), Some("prod-postgres")).await;
    assert!(valid, "{answer}");
}

async fn the_ssh_command_puts_user_and_secret_in_place(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "bastion", "ssh", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "deployer", "connection_names": ["bastion"]}),
    )
    .await;
    let credential = credential(&created, "bastion");
    let (username, password) = (
        credential["username"].as_str().unwrap(),
        credential["password"].as_str().unwrap(),
    );
    assert_eq!(username, "bastion", "the user names the connection");
    assert!(password.starts_with("kgmi_"), "the password is the secret");
    let words: Vec<&str> = credential["command"].as_str().unwrap().split(' ').collect();
    assert_eq!(
        words,
        [
            format!("SSHPASS='{password}'").as_str(),
            "sshpass",
            "-e",
            "ssh",
            "-p",
            "12222",
            "bastion@127.0.0.1",
        ]
    );
    let (valid, _, _) = verify_at(&app, password, Some(username)).await;
    assert!(
        valid,
        "the proxy verifies the password for the connection the user names"
    );
}

async fn connections_sharing_an_attribute_get_a_credential_too(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "named-pg", "postgres", json!({})).await;
    create_connection(&app, "prod-ssh", "ssh", json!({"attributes": ["env:prod"]})).await;
    create_connection(
        &app,
        "team-rdp",
        "rdp",
        json!({"attributes": ["team:x", "env:prod"]}),
    )
    .await;
    create_connection(&app, "dev-ssh", "ssh", json!({"attributes": ["env:dev"]})).await;
    let created = create_identity(
        &app,
        json!({"name": "by-attribute", "attributes": ["env:prod"], "connection_names": ["named-pg"]}),
    )
    .await;
    let reached: Vec<&str> = created["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connection_name"].as_str().unwrap())
        .collect();
    assert_eq!(reached, ["named-pg", "prod-ssh", "team-rdp"]);
    assert_eq!(created["connection_names"], json!(["named-pg"]));
    let (_, got) = app.get("/machineidentities/by-attribute", ADMIN).await;
    let reached_by: Vec<(&str, &str)> = got["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["connection_name"].as_str().unwrap(),
                c["reached_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reached_by,
        [
            ("named-pg", "name"),
            ("prod-ssh", "attribute"),
            ("team-rdp", "attribute")
        ]
    );
}

async fn an_unknown_connection_is_named_and_nothing_is_written(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "prod-postgres", "postgres", json!({})).await;
    let pasted = PlainSecret::mint(SecretKind::MachineCredential);
    for (names, message) in [
        (
            json!(["prod-postgres", "nope-db"]),
            "connection_names.1: there is no connection named nope-db",
        ),
        (
            json!([pasted.expose(), "prod-postgres"]),
            "connection_names.0: there is no such connection",
        ),
        (
            json!(["prod-postgres", "prod-postgres"]),
            "connection_names.1: it is listed twice",
        ),
    ] {
        for path in ["/machineidentities", "/api/machineidentities"] {
            let body = json!({"name": "half-made", "connection_names": names});
            let (status, err) = app.post(path, ADMIN, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
            assert_eq!(err, json!({ "message": message }));
        }
    }
    assert_eq!(
        app.get("/machineidentities/half-made", ADMIN).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/machineidentities", ADMIN).await.1, json!([]));
    // The name was never taken.
    create_identity(
        &app,
        json!({"name": "half-made", "connection_names": ["prod-postgres"]}),
    )
    .await;
}

async fn duplicate_names_are_409(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "shared-pg", "postgres", json!({})).await;
    let body = json!({"name": "twin", "connection_names": ["shared-pg"]});
    create_identity(&app, body.clone()).await;
    let (status, err) = app.post("/api/machineidentities", ADMIN, body).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::CONFLICT,
            json!({"message": "resource already exists"})
        )
    );
}

/// Issues every credential with one digest, so the second one breaks the secrets table's
/// uniqueness after the identity, its attributes and its first credential were written.
struct SameDigest(PlainSecret);

impl CredentialIssuer for SameDigest {
    fn issue(&self, expires_at: Option<DateTime<Utc>>) -> NewSecret {
        NewSecret::from_plain(SecretKind::MachineCredential, &self.0, expires_at)
    }
}

async fn a_failure_midway_through_creation_leaves_nothing_behind(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "first-pg", "postgres", json!({})).await;
    create_connection(&app, "second-ssh", "ssh", json!({"attributes": ["env:x"]})).await;
    let store: Arc<dyn Store> = storage::connect(&app.config.database_url(), 2)
        .await
        .unwrap();
    let org = store.find_org_by_name("default").await.unwrap().unwrap().id;
    let identity = NewMachineIdentity {
        id: Uuid::now_v7(),
        org_id: org,
        name: "doomed".into(),
        description: String::new(),
        attributes: vec!["env:x".into()],
        connection_names: vec!["first-pg".into()],
        expires_at: None,
        created_at: now(),
    };
    let repeated = SameDigest(PlainSecret::mint(SecretKind::MachineCredential));
    let change = crate::storage::host_change(org);
    let failed = store
        .create_machine_identity(&identity, &repeated, &change)
        .await;
    assert!(matches!(failed, Err(Error::AlreadyExists)), "{failed:?}");
    assert!(
        store
            .find_machine_identity(org, "doomed")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_machine_credential_by_secret(&repeated.0.hash())
            .await
            .unwrap()
            .is_none(),
        "the first credential went with the rest"
    );
    assert_eq!(app.get("/machineidentities", ADMIN).await.1, json!([]));
    // The owner row went too: the same id and name can be written afresh.
    let issued = store
        .create_machine_identity(
            &identity,
            &keygate::domain::machine_identities::CredentialMint::default(),
            &change,
        )
        .await
        .unwrap();
    assert_eq!(issued.len(), 2);
}

async fn verify_answers_identity_connection_and_attributes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let connection = create_connection(&app, "prod-postgres", "postgres", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "verified", "attributes": ["team:a", "env:b"], "connection_names": ["prod-postgres"]}),
    )
    .await;
    let secret = secret_of(credential(&created, "prod-postgres"));
    let member = app.create_api_key("member").await;
    for connection_field in [None, Some("prod-postgres")] {
        let mut body = json!({"key": secret});
        if let Some(name) = connection_field {
            body["connection"] = json!(name);
        }
        let (status, answer) = app.post("/verify", &member, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["valid"], true, "{answer}");
        assert_eq!(answer["code"], "valid");
        assert_eq!(answer["kind"], "machine_credential");
        assert_eq!(
            answer["machine_identity"],
            json!({"id": created["id"], "name": "verified", "attributes": ["team:a", "env:b"]})
        );
        assert_eq!(
            answer["connection"],
            json!({"id": connection["id"], "name": "prod-postgres", "type": "database", "subtype": "postgres"})
        );
        assert!(answer["secret_id"].is_string() && answer["org_id"].is_string());
        assert!(answer.get("agent").is_none());
    }
    // Another organization's proxy does not learn of it.
    let (_, other_admin) = app.create_org("other-org").await;
    let (_, answer) = app
        .post("/verify", &other_admin, json!({"key": secret}))
        .await;
    assert_eq!(
        (answer["valid"].clone(), answer["code"].clone()),
        (json!(false), json!("not_found"))
    );
}

async fn a_credential_presented_to_another_connection_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-a", "postgres", json!({})).await;
    create_connection(&app, "pg-b", "postgres", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "scoped", "connection_names": ["pg-a", "pg-b"]}),
    )
    .await;
    let (a, b) = (
        secret_of(credential(&created, "pg-a")),
        secret_of(credential(&created, "pg-b")),
    );
    let (valid, code, answer) = verify_at(&app, &a, Some("pg-b")).await;
    assert_eq!((valid, code.as_str()), (false, "connection_mismatch"));
    assert!(
        answer.get("machine_identity").is_none() && answer.get("connection").is_none(),
        "whose it is is told only for a valid credential: {answer}"
    );
    assert_eq!(
        verify_at(&app, &a, Some("no-such")).await.1,
        "connection_mismatch"
    );
    assert!(verify_at(&app, &a, Some("pg-a")).await.0);
    assert!(verify_at(&app, &b, Some("pg-b")).await.0);
    // A garbled credential is refused before any lookup.
    let last = if a.ends_with('x') { 'y' } else { 'x' };
    let garbled = format!("{}{last}", &a[..a.len() - 1]);
    assert_eq!(verify_at(&app, &garbled, Some("pg-a")).await.1, "malformed");
}

async fn update_issues_added_credentials_once_and_ends_removed_ones_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (name, subtype) in [
        ("kept-pg", "postgres"),
        ("dropped-ssh", "ssh"),
        ("added-rdp", "rdp"),
    ] {
        create_connection(&app, name, subtype, json!({})).await;
    }
    let created = create_identity(
        &app,
        json!({"name": "changing", "description": "before", "connection_names": ["kept-pg", "dropped-ssh"]}),
    )
    .await;
    let kept = secret_of(credential(&created, "kept-pg"));
    let dropped = secret_of(credential(&created, "dropped-ssh"));

    let body = json!({"connection_names": ["added-rdp", "kept-pg"], "description": "after"});
    let (status, updated) = put(&app, "/api/machineidentities/changing", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["connection_names"], json!(["added-rdp", "kept-pg"]));
    assert_eq!(updated["description"], "after");
    assert_eq!(
        (&updated["id"], &updated["created_at"]),
        (&created["id"], &created["created_at"])
    );
    let issued = updated["credentials"].as_array().unwrap();
    assert_eq!(
        issued.len(),
        1,
        "only the added connection's credential: {updated}"
    );
    let added = secret_of(credential(&updated, "added-rdp"));
    assert!(verify_at(&app, &added, Some("added-rdp")).await.0);
    assert!(
        verify_at(&app, &kept, Some("kept-pg")).await.0,
        "kept ones keep working"
    );
    let (valid, code, _) = verify_at(&app, &dropped, None).await;
    assert!(
        !valid,
        "the removed connection's credential stops at once ({code})"
    );

    let (_, got) = app.get("/machineidentities/changing", ADMIN).await;
    assert!(!got.to_string().contains(&added) && !got.to_string().contains(&kept));
    let listed: Vec<&str> = got["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connection_name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["added-rdp", "kept-pg"]);

    // Adding back a removed connection issues a fresh credential; the old one stays ended.
    let body = json!({"connection_names": ["added-rdp", "kept-pg", "dropped-ssh"]});
    let (status, again) = put(&app, "/machineidentities/changing", ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let fresh = secret_of(credential(&again, "dropped-ssh"));
    assert!(verify_at(&app, &fresh, Some("dropped-ssh")).await.0);
    assert!(!verify_at(&app, &dropped, Some("dropped-ssh")).await.0);

    for (body, message) in [
        (
            json!({"connection_names": ["nope-x"]}),
            "connection_names.0: there is no connection named nope-x",
        ),
        (
            json!({"name": "renamed"}),
            "name: a machine identity cannot be renamed",
        ),
    ] {
        let (status, err) = put(&app, "/api/machineidentities/changing", ADMIN, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err, json!({ "message": message }));
    }
    assert!(
        verify_at(&app, &kept, Some("kept-pg")).await.0,
        "a refused update changes nothing"
    );
    for path in [
        "/machineidentities/missing",
        "/api/machineidentities/missing",
    ] {
        let (status, err) = put(&app, path, ADMIN, json!({"description": "x"})).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::NOT_FOUND,
                json!({"message": "machine identity not found"})
            ),
            "not hoop's 400"
        );
    }
}

async fn attribute_changes_on_either_side_add_and_end_credentials(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "prod-ssh", "ssh", json!({"attributes": ["env:prod"]})).await;
    create_connection(
        &app,
        "named-ssh",
        "ssh",
        json!({"attributes": ["env:prod"]}),
    )
    .await;
    let created = create_identity(
        &app,
        json!({"name": "attr-id", "connection_names": ["named-ssh"]}),
    )
    .await;
    assert_eq!(created["credentials"].as_array().unwrap().len(), 1);

    // The identity gains the attribute: the connection carrying it is reached.
    let (_, updated) = put(
        &app,
        "/machineidentities/attr-id",
        ADMIN,
        json!({"attributes": ["env:prod"]}),
    )
    .await;
    let reached = secret_of(credential(&updated, "prod-ssh"));
    assert_eq!(
        updated["credentials"].as_array().unwrap().len(),
        1,
        "{updated}"
    );
    assert!(verify_at(&app, &reached, Some("prod-ssh")).await.0);

    // The connection loses it: the credential reached through it ends at once, while one the
    // identity names is kept whatever the attributes.
    let body =
        json!({"type": "application", "subtype": "ssh", "agent_id": "default", "attributes": []});
    assert_eq!(
        put(&app, "/connections/prod-ssh", ADMIN, body.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        put(&app, "/connections/named-ssh", ADMIN, body).await.0,
        StatusCode::OK
    );
    assert!(!verify_at(&app, &reached, Some("prod-ssh")).await.0);
    let named = secret_of(credential(&created, "named-ssh"));
    assert!(verify_at(&app, &named, Some("named-ssh")).await.0);
    let (_, got) = app.get("/machineidentities/attr-id", ADMIN).await;
    assert_eq!(got["credentials"].as_array().unwrap().len(), 1, "{got}");

    // Given back to the connection, the attribute reaches it again at the identity's next
    // update, with a fresh credential.
    let body = json!({"type": "application", "subtype": "ssh", "agent_id": "default", "attributes": ["env:prod"]});
    put(&app, "/connections/prod-ssh", ADMIN, body).await;
    let (_, again) = put(&app, "/machineidentities/attr-id", ADMIN, json!({})).await;
    let fresh = secret_of(credential(&again, "prod-ssh"));
    assert!(verify_at(&app, &fresh, Some("prod-ssh")).await.0);

    // The identity drops the attribute: that credential ends.
    put(
        &app,
        "/machineidentities/attr-id",
        ADMIN,
        json!({"attributes": []}),
    )
    .await;
    assert!(!verify_at(&app, &fresh, Some("prod-ssh")).await.0);
    assert!(verify_at(&app, &named, Some("named-ssh")).await.0);
}

async fn deleting_a_connection_ends_its_credentials_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "going-pg", "postgres", json!({})).await;
    create_connection(&app, "staying-pg", "postgres", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "holder", "connection_names": ["going-pg", "staying-pg"]}),
    )
    .await;
    let rotated = {
        let (status, rotated) = app
            .post(
                "/machineidentities/holder/credentials/going-pg/rotate",
                ADMIN,
                json!({"grace_period_seconds": 600}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rotated}");
        secret_of(&rotated)
    };
    let old = secret_of(credential(&created, "going-pg"));
    assert!(verify_at(&app, &old, None).await.0, "in its grace period");
    assert_eq!(
        app.delete("/connections/going-pg", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    for secret in [&old, &rotated] {
        assert!(
            !verify_at(&app, secret, None).await.0,
            "grace-period ones end too"
        );
    }
    let staying = secret_of(credential(&created, "staying-pg"));
    assert!(verify_at(&app, &staying, None).await.0);
    let (_, got) = app.get("/machineidentities/holder", ADMIN).await;
    assert_eq!(got["connection_names"], json!(["staying-pg"]));
}

async fn delete_ends_every_credential_and_is_404_when_missing(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-1", "postgres", json!({})).await;
    create_connection(&app, "ssh-1", "ssh", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "gone-soon", "connection_names": ["pg-1", "ssh-1"]}),
    )
    .await;
    let secrets: Vec<String> = created["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(secret_of)
        .collect();
    assert_eq!(
        app.delete("/api/machineidentities/gone-soon", ADMIN)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for secret in &secrets {
        let (valid, code, _) = verify_at(&app, secret, None).await;
        assert_eq!((valid, code.as_str()), (false, "not_found"));
    }
    for path in [
        "/machineidentities/gone-soon",
        "/api/machineidentities/gone-soon",
    ] {
        let (status, err) = app.delete(path, ADMIN).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::NOT_FOUND,
                json!({"message": "machine identity not found"})
            )
        );
        let rotate = format!("{path}/credentials/pg-1/rotate");
        let (status, err) = app.post(&rotate, ADMIN, json!({})).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::NOT_FOUND,
                json!({"message": "machine identity not found"})
            ),
            "not hoop's 400"
        );
    }
}

async fn rotation_writes_the_new_credential_before_the_old_one_ends(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(
        &app,
        "rotating-pg",
        "postgres",
        json!({"database_name": "app"}),
    )
    .await;
    create_connection(&app, "other-ssh", "ssh", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "rotator", "connection_names": ["rotating-pg", "other-ssh"]}),
    )
    .await;
    let old = secret_of(credential(&created, "rotating-pg"));
    let other = secret_of(credential(&created, "other-ssh"));
    let path = "/api/machineidentities/rotator/credentials/rotating-pg/rotate";
    let (status, rotated) = app.post(path, ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(
        (&rotated["connection_name"], &rotated["database_name"]),
        (&json!("rotating-pg"), &json!("app")),
        "the same fields as at creation"
    );
    let new = secret_of(&rotated);
    assert_ne!(new, old);
    assert!(verify_at(&app, &new, Some("rotating-pg")).await.0);
    assert_eq!(verify_at(&app, &old, None).await.1, "revoked");
    assert!(
        verify_at(&app, &other, None).await.0,
        "other connections' credentials are untouched"
    );

    // No gap: the successor was written before (in the same transaction as) the old one ended.
    let store = storage::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let old_hash = PlainSecret::parse(&old).unwrap().hash();
    let new_hash = PlainSecret::parse(&new).unwrap().hash();
    let ended = store
        .find_machine_credential_by_secret(&old_hash)
        .await
        .unwrap()
        .unwrap()
        .0;
    let (successor, _) = store
        .find_machine_credential_by_secret(&new_hash)
        .await
        .unwrap()
        .unwrap();
    let org = store.find_org_by_name("default").await.unwrap().unwrap().id;
    let identity = store
        .find_machine_identity(org, "rotator")
        .await
        .unwrap()
        .unwrap();
    let current = &identity.credential_for("rotating-pg").unwrap().secret;
    assert_eq!(current.id, successor.id);
    assert!(current.created_at <= ended.revoked_at.unwrap());

    let (status, err) = app
        .post(path, ADMIN, json!({"grace_period_seconds": -1}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let missing = "/machineidentities/rotator/credentials/not-held/rotate";
    let (status, err) = app.post(missing, ADMIN, json!({})).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "credential not found"})
        )
    );
}

async fn rotation_with_grace_keeps_the_old_credential_working(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "graced-pg", "postgres", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "graceful", "connection_names": ["graced-pg"]}),
    )
    .await;
    let old = secret_of(credential(&created, "graced-pg"));
    let path = "/machineidentities/graceful/credentials/graced-pg/rotate";
    let rotation = app.post(path, ADMIN, json!({"grace_period_seconds": 600}));
    // Checked all along the rotation: the old credential never stops working.
    let watch = async {
        for check in 0..20 {
            assert!(
                verify_at(&app, &old, Some("graced-pg")).await.0,
                "a gap at check {check}"
            );
        }
    };
    let ((status, rotated), ()) = tokio::join!(rotation, watch);
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = secret_of(&rotated);
    assert!(verify_at(&app, &new, Some("graced-pg")).await.0);
    let (valid, _, answer) = verify_at(&app, &old, Some("graced-pg")).await;
    assert!(valid, "{answer}");
    let grace_end = DateTime::parse_from_rfc3339(answer["expires_at"].as_str().unwrap()).unwrap();
    let left = grace_end.with_timezone(&Utc) - now();
    assert!(
        left.num_seconds() > 590 && left.num_seconds() <= 600,
        "{left}"
    );
}

async fn ttl_and_expires_at_bound_every_credential(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-ttl", "postgres", json!({})).await;
    create_connection(&app, "ssh-ttl", "ssh", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "short-lived", "connection_names": ["pg-ttl"], "ttl": 2}),
    )
    .await;
    let expires_at = created["expires_at"].as_str().unwrap().to_owned();
    assert_eq!(
        credential(&created, "pg-ttl")["expires_at"],
        expires_at.as_str()
    );
    let secret = secret_of(credential(&created, "pg-ttl"));
    assert!(verify_at(&app, &secret, None).await.0);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(verify_at(&app, &secret, None).await.1, "expired");
    let body = json!({"connection_names": ["pg-ttl", "ssh-ttl"]});
    let (status, err) = put(&app, "/machineidentities/short-lived", ADMIN, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an expired identity gets no credential"
    );
    assert!(
        err["message"].as_str().unwrap().starts_with("expires_at:"),
        "{err}"
    );

    // A new expiry revives every credential it holds and bounds those it is issued.
    let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut renewed = body.clone();
    renewed["expires_at"] = json!(later);
    let (status, updated) = put(&app, "/machineidentities/short-lived", ADMIN, renewed).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(verify_at(&app, &secret, None).await.0);
    let added = credential(&updated, "ssh-ttl");
    assert_eq!(added["expires_at"], updated["expires_at"]);

    for (body, message) in [
        (
            json!({"name": "bad-ttl", "ttl": 60, "expires_at": later}),
            "ttl: give either ttl or expires_at, not both",
        ),
        (
            json!({"name": "bad-ttl", "ttl": 0}),
            "ttl: it must be between 1 and 315360000 seconds",
        ),
        (
            json!({"name": "bad-ttl", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at: it must be in the future",
        ),
    ] {
        let (status, err) = app.post("/machineidentities", ADMIN, body).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": message })
            )
        );
    }
    let (status, _) = app
        .post(
            "/machineidentities",
            ADMIN,
            json!({"name": "bad-ttl", "ttl": -5}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The expiry `POST /verify` reports for `secret`.
async fn expiry_of(app: &TestApp, secret: &str) -> DateTime<Utc> {
    let (_, _, answer) = verify_at(app, secret, None).await;
    let expiry = answer["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    DateTime::parse_from_rfc3339(expiry)
        .unwrap()
        .with_timezone(&Utc)
}

async fn a_new_lifetime_bounds_credentials_in_their_grace_period_too(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-graced-ttl", "postgres", json!({})).await;
    let created = create_identity(
        &app,
        json!({"name": "shortened", "connection_names": ["pg-graced-ttl"]}),
    )
    .await;
    let old = secret_of(credential(&created, "pg-graced-ttl"));
    let path = "/machineidentities/shortened/credentials/pg-graced-ttl/rotate";
    let (status, rotated) = app
        .post(path, ADMIN, json!({"grace_period_seconds": 60}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = secret_of(&rotated);
    let grace_end = expiry_of(&app, &old).await;

    // A longer lifetime leaves the grace period as it was.
    let (status, updated) = put(
        &app,
        "/machineidentities/shortened",
        ADMIN,
        json!({"ttl": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(expiry_of(&app, &old).await, grace_end);
    assert!(expiry_of(&app, &new).await > grace_end);

    // A shorter one ends the credential in its grace period with the current one.
    let (status, updated) = put(
        &app,
        "/machineidentities/shortened",
        ADMIN,
        json!({"ttl": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let expires_at = updated["expires_at"].as_str().unwrap();
    let expires_at = DateTime::parse_from_rfc3339(expires_at)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(expiry_of(&app, &old).await, expires_at);
    assert_eq!(expiry_of(&app, &new).await, expires_at);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(verify_at(&app, &new, None).await.1, "expired");
    assert_eq!(verify_at(&app, &old, None).await.1, "expired");
}

async fn credentials_follow_the_listeners_set_by_operators(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-moved", "postgres", json!({})).await;
    create_connection(&app, "ssm-moved", "aws-ssm", json!({})).await;
    let body = json!({"host": "2001:db8::5", "port": 5432, "tls": true});
    assert_eq!(
        put(&app, "/gateway/listeners/postgres", ADMIN, body)
            .await
            .0,
        StatusCode::OK
    );
    let body = json!({"host": "api.example.com", "port": 443, "tls": true});
    assert_eq!(
        put(&app, "/gateway/listeners/api", ADMIN, body).await.0,
        StatusCode::OK
    );
    let created = create_identity(
        &app,
        json!({"name": "moved", "connection_names": ["pg-moved", "ssm-moved"]}),
    )
    .await;
    let pg = credential(&created, "pg-moved");
    assert_eq!(
        (&pg["hostname"], &pg["port"]),
        (&json!("2001:db8::5"), &json!("5432"))
    );
    let options = PgConnectOptions::from_str(pg["connection_string"].as_str().unwrap()).unwrap();
    // sqlx keeps the brackets an IPv6 host has in a URL.
    assert_eq!(
        (options.get_host(), options.get_port()),
        ("[2001:db8::5]", 5432)
    );
    assert!(matches!(options.get_ssl_mode(), PgSslMode::Require));
    assert_eq!(
        credential(&created, "ssm-moved")["endpoint_url"],
        "https://api.example.com:443"
    );
}

async fn members_may_read_and_verify_but_not_change_identities(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "pg-ro", "postgres", json!({})).await;
    create_identity(
        &app,
        json!({"name": "guarded-id", "connection_names": ["pg-ro"]}),
    )
    .await;
    let member = app.create_api_key("member").await;
    assert_eq!(
        app.get("/machineidentities", &member).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/machineidentities/guarded-id", &member).await.0,
        StatusCode::OK
    );
    let body = json!({"name": "sneaky-id"});
    assert_eq!(
        app.post("/machineidentities", &member, body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&app, "/machineidentities/guarded-id", &member, body)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/machineidentities/guarded-id", &member).await.0,
        StatusCode::FORBIDDEN
    );
    let rotate = "/machineidentities/guarded-id/credentials/pg-ro/rotate";
    assert_eq!(
        app.post(rotate, &member, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, err) = app.get_anonymous("/api/machineidentities").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err, json!({"message": "missing or invalid credentials"}));
}

async fn machine_credentials_never_reach_logs_errors_or_reads(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (name, subtype) in [
        ("leak-pg", "postgres"),
        ("leak-ssh", "ssh"),
        ("leak-ssm", "aws-ssm"),
        ("leak-http", "httpproxy"),
    ] {
        create_connection(&app, name, subtype, json!({"attributes": ["leak:yes"]})).await;
    }
    let created = create_identity(
        &app,
        json!({"name": "leaky", "attributes": ["leak:yes"], "connection_names": ["leak-pg"]}),
    )
    .await;
    let mut secrets: Vec<String> = created["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(secret_of)
        .collect();
    let (_, rotated) = app
        .post(
            "/machineidentities/leaky/credentials/leak-ssh/rotate",
            ADMIN,
            json!({"grace_period_seconds": 60}),
        )
        .await;
    secrets.push(secret_of(&rotated));
    assert_eq!(secrets.len(), 5);

    // Use them rightly and wrongly, and paste them where they do not belong.
    let mut error_bodies = Vec::new();
    for secret in &secrets {
        verify_at(&app, secret, Some("leak-pg")).await;
        verify_at(&app, secret, Some("elsewhere")).await;
        for body in [
            json!({"name": secret, "ttl": 0}),
            json!({"name": "fine-name", "connection_names": [secret]}),
            json!({"name": "fine-name", "attributes": [secret, secret]}),
            json!({"name": "fine-name", "description": 5, "ttl": secret}),
            json!({"name": "fine-name", "expires_at": secret}),
        ] {
            let (status, err) = app.post("/machineidentities", ADMIN, body).await;
            assert!(status.is_client_error(), "{status}");
            error_bodies.push(err.to_string());
        }
        let (status, err) = put(
            &app,
            "/machineidentities/leaky",
            ADMIN,
            json!({"connection_names": [secret]}),
        )
        .await;
        assert!(status.is_client_error());
        error_bodies.push(err.to_string());
        let (status, err) = app
            .post(
                "/connections",
                ADMIN,
                json!({"name": "c-x", "type": "custom", "subtype": "x", "agent_id": secret}),
            )
            .await;
        assert!(status.is_client_error());
        error_bodies.push(err.to_string());
    }
    let reads = [
        app.get("/machineidentities", ADMIN).await.1.to_string(),
        app.get("/api/machineidentities/leaky", ADMIN)
            .await
            .1
            .to_string(),
        app.get("/connections", ADMIN).await.1.to_string(),
    ];
    assert!(
        reads[1].contains("kgmi_…"),
        "reads show a hint: {}",
        reads[1]
    );

    let logs = captured_logs();
    assert!(
        logs.contains("/machineidentities"),
        "the request logs were captured"
    );
    assert!(
        logs.contains("machine_identity.credential_rotated"),
        "changes are audited"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
        for read in &reads {
            assert!(!read.contains(secret.as_str()), "a secret was read back");
        }
        for err in &error_bodies {
            assert!(
                !err.contains(secret.as_str()),
                "a secret came back in an error: {err}"
            );
        }
    }
}
