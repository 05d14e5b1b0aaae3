//! The web console, spoken to as a browser would (forms, a cookie, no redirects followed):
//! security headers, the session cookie, sign-in failures counted like API ones, CSRF, roles,
//! sign-out and timeouts, and secrets shown once and never logged. `browser.rs` drives the same
//! console in headless Chromium.

mod browser;

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, assert_no_secret_logged, captured_logs,
    minted_secrets_in, on_both_backends,
};

on_both_backends!(
    every_console_answer_carries_the_security_headers,
    the_session_cookie_is_http_only_strict_and_secure_behind_tls,
    failed_sign_ins_count_against_the_authentication_limiter,
    a_post_without_the_right_csrf_token_or_from_another_site_changes_nothing,
    an_auditor_is_offered_no_change_and_a_forged_one_is_refused,
    signing_out_ends_the_session_for_every_tab,
    an_idle_session_ends,
    a_session_ends_at_its_lifetime_however_busy,
    revoking_the_api_key_ends_its_sessions,
    rotating_the_api_key_without_grace_ends_the_sessions_its_old_secret_opened,
    a_session_ends_with_the_grace_period_of_the_secret_it_signed_in_with,
    a_minted_secret_is_shown_once_and_never_logged,
    a_change_made_in_the_console_is_audited_with_the_browsers_address_and_request,
    bad_input_gets_a_clear_4xx_page,
    every_control_has_a_label_and_every_page_a_heading,
);

/// A browser's view of one answer.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// Where a redirect sends the browser.
    fn location(&self) -> &str {
        self.header("location")
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let (_, rest) = self
            .body
            .split_once("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF token in {}", self.body));
        rest.split('"').next().unwrap().to_owned()
    }
}

/// A browser without a JavaScript engine: it keeps the session cookie, follows no redirect.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub cookie: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.app.url(path));
        match &self.cookie {
            Some(cookie) => request.header("cookie", format!("keygate_session={cookie}")),
            None => request,
        }
    }

    async fn send(request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::send(self.request(Method::POST, path).form(form)).await
    }

    /// Posts `form` with the CSRF token of the page at `from`.
    pub async fn submit(&self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        self.post(path, &form).await
    }

    /// Signs in with `key`, keeping the session cookie; the sign-in answer.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.post("/console/sign-in", &[("key", key)]).await;
        if let Some(value) = page
            .header("set-cookie")
            .strip_prefix("keygate_session=")
            .and_then(|rest| rest.split(';').next())
        {
            self.cookie = Some(value.to_owned());
        }
        page
    }

    /// Signs in with `key` and checks that it worked.
    pub async fn signed_in(app: &'a TestApp, key: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let page = browser.sign_in(key).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), "/console/overview");
        browser
    }
}

/// Whether the browser is sent to sign in.
fn sent_to_sign_in(page: &Page) -> bool {
    page.status == StatusCode::SEE_OTHER && page.location() == "/console/sign-in"
}

async fn agent_names(app: &TestApp) -> Vec<String> {
    let (status, agents) = app.get("/agents", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    agents
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_console_answer_carries_the_security_headers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let anonymous = Browser::new(&app);
    let browser = Browser::signed_in(&app, ADMIN).await;
    let pages = [
        anonymous.get("/console/sign-in").await,
        anonymous.get("/console/agents").await,
        anonymous.get("/console/no-such-page").await,
        browser.get("/console/agents").await,
        browser.get("/console/apikeys").await,
        browser.get("/console/audit").await,
        browser.get("/console/verify").await,
        browser.get("/console/agents/nobody/delete").await,
        browser.get("/console/connections").await,
        browser.get("/console/identities").await,
        browser.get("/console/projects").await,
        browser.get("/console/keypairs").await,
    ];
    for page in &pages {
        assert_eq!(
            page.header("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("cache-control"), "no-store");
        // Nothing inline: the policy would block it.
        assert!(!page.body.contains("<script>") && !page.body.contains("style="));
    }
    assert_eq!(pages[2].status, StatusCode::NOT_FOUND);
    for file in ["console.css", "console.js"] {
        let page = anonymous.get(&format!("/console/static/{file}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("cache-control"), "public, max-age=86400");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
    }
    // The console is not part of the API's document.
    let (_, doc) = app.get_anonymous("/openapi.json").await;
    assert!(
        !doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|path| path.starts_with("/console"))
    );
}

async fn the_session_cookie_is_http_only_strict_and_secure_behind_tls(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let page = Browser::new(&app).sign_in(ADMIN).await;
    let cookie = page.header("set-cookie");
    assert!(cookie.starts_with("keygate_session="), "{cookie}");
    for attribute in ["; Path=/console", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // The key never comes back to the browser.
    assert!(!page.body.contains(ADMIN) && !cookie.contains(ADMIN));

    let behind_tls = Browser::send(
        Browser::new(&app)
            .request(Method::POST, "/console/sign-in")
            .header("x-forwarded-proto", "https")
            .form(&[("key", ADMIN)]),
    )
    .await;
    assert!(behind_tls.header("set-cookie").ends_with("; Secure"));

    let configured =
        TestApp::start_with(backend, |config| config.console_secure_cookie = true).await;
    let page = Browser::new(&configured).sign_in(ADMIN).await;
    assert!(page.header("set-cookie").ends_with("; Secure"));
}

async fn failed_sign_ins_count_against_the_authentication_limiter(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 3).await;
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let page = browser.sign_in("kgk_not-a-key-at-all").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("This API key does not work"));
        assert!(browser.cookie.is_none());
    }
    let page = browser.sign_in("kgk_not-a-key-at-all").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Too many failed sign-ins"));
    // The same limiter as the API's: a wrong bearer key from the address is refused too ...
    let (status, _) = app.get("/agents", "kgk_another-wrong-key").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ... while a working key still signs in.
    Browser::signed_in(&app, ADMIN).await;
    // Each refused sign-in reaches the audit trail (written in the background).
    let mut refused = 0;
    for _ in 0..100 {
        let (_, events) = app.get("/audit?action=authentication.refused", ADMIN).await;
        refused = events["items"].as_array().unwrap().len();
        if refused >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused >= 3, "{refused} refusals recorded");
}

async fn a_post_without_the_right_csrf_token_or_from_another_site_changes_nothing(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    let csrf = browser.get("/console/agents").await.csrf();
    let create = |name: &'static str| [("name", name), ("mode", "standard")];

    let missing = browser.post("/console/agents", &create("no-token")).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("nothing was changed"));
    let mut wrong = create("wrong-token").to_vec();
    wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(
        browser.post("/console/agents", &wrong).await.status,
        StatusCode::FORBIDDEN
    );
    // Another session's token is no good here.
    let other = Browser::signed_in(&app, ADMIN).await;
    let mut foreign = create("foreign-token").to_vec();
    let other_csrf = other.get("/console/agents").await.csrf();
    assert_ne!(other_csrf, csrf);
    foreign.push(("csrf", &other_csrf));
    assert_eq!(
        browser.post("/console/agents", &foreign).await.status,
        StatusCode::FORBIDDEN
    );
    // A cross-site form, even one carrying the right token.
    let mut form = create("cross-site").to_vec();
    form.push(("csrf", &csrf));
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "http://127.0.0.1.evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let page = Browser::send(
            browser
                .request(Method::POST, "/console/agents")
                .header(header, value)
                .form(&form),
        )
        .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{header}: {value}");
    }
    assert!(agent_names(&app).await.is_empty());
    // Sign-out is a form like any other.
    assert_eq!(
        browser.post("/console/sign-out", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(browser.get("/console/agents").await.status, StatusCode::OK);

    // The same form from the console itself works.
    let same_origin = Browser::send(
        browser
            .request(Method::POST, "/console/agents")
            .header("origin", app.base.as_str())
            .header("sec-fetch-site", "same-origin")
            .form(&form),
    )
    .await;
    assert_eq!(same_origin.status, StatusCode::OK, "{}", same_origin.body);
    assert_eq!(agent_names(&app).await, ["cross-site"]);
}

async fn an_auditor_is_offered_no_change_and_a_forged_one_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("existing").await;
    let auditor = app.create_api_key("auditor").await;
    let browser = Browser::signed_in(&app, &auditor).await;
    for path in [
        "/console/agents",
        "/console/agents/existing/keys",
        "/console/apikeys",
        "/console/connections",
        "/console/identities",
        "/console/projects",
        "/console/keypairs",
        "/console/audit",
        "/console/verify",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        // The only form that posts is signing out.
        let posts = page.body.matches("method=\"post\"").count();
        assert_eq!(posts, 1, "{path}: {}", page.body);
        assert!(!page.body.contains("Delete") && !page.body.contains("Revoke"));
    }
    assert!(
        browser
            .get("/console/agents")
            .await
            .body
            .contains("existing")
    );

    let forged = browser
        .submit(
            "/console/agents",
            "/console/agents",
            &[("name", "forged"), ("mode", "standard")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        forged.body.contains("role does not allow this"),
        "{}",
        forged.body
    );
    let delete = browser
        .submit("/console/agents", "/console/agents/existing/delete", &[])
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    assert_eq!(agent_names(&app).await, ["existing"]);
}

async fn signing_out_ends_the_session_for_every_tab(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first_tab = Browser::signed_in(&app, ADMIN).await;
    let mut second_tab = Browser::new(&app);
    second_tab.cookie = first_tab.cookie.clone();
    let csrf = second_tab.get("/console/agents").await.csrf();

    let signed_out = first_tab
        .submit("/console/agents", "/console/sign-out", &[])
        .await;
    assert_eq!(signed_out.status, StatusCode::OK);
    assert!(signed_out.body.contains("You have signed out"));
    assert!(signed_out.header("set-cookie").contains("Max-Age=0"));

    for tab in [&first_tab, &second_tab] {
        assert!(sent_to_sign_in(&tab.get("/console/agents").await));
        assert!(sent_to_sign_in(&tab.get("/console/apikeys").await));
    }
    let late = second_tab
        .post(
            "/console/agents",
            &[
                ("name", "after-sign-out"),
                ("mode", "standard"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
    assert!(agent_names(&app).await.is_empty());
}

async fn an_idle_session_ends(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.console_idle_timeout_secs = 1).await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    assert_eq!(browser.get("/console/agents").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(sent_to_sign_in(&browser.get("/console/agents").await));
    // Ended for good, not only refused once.
    assert!(sent_to_sign_in(&browser.get("/console/agents").await));
}

async fn a_session_ends_at_its_lifetime_however_busy(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        config.console_session_lifetime_secs = 2;
    })
    .await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    for _ in 0..3 {
        assert_eq!(browser.get("/console/agents").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(sent_to_sign_in(&browser.get("/console/agents").await));
}

async fn revoking_the_api_key_ends_its_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "console user", "role": "admin"});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let browser = Browser::signed_in(&app, key).await;
    assert_eq!(browser.get("/console/agents").await.status, StatusCode::OK);

    let (status, _) = app.delete(&format!("/apikeys/{id}"), ADMIN).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sent_to_sign_in(&browser.get("/console/agents").await));
    let again = Browser::new(&app).sign_in(key).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // Revoking through the console itself ends the revoked key's sessions too.
    let (_, created) = app
        .post(
            "/apikeys",
            ADMIN,
            json!({"name": "second", "role": "member"}),
        )
        .await;
    let member = Browser::signed_in(&app, created["key"].as_str().unwrap()).await;
    let admin = Browser::signed_in(&app, ADMIN).await;
    let id = created["id"].as_str().unwrap();
    let confirm = admin.get(&format!("/console/apikeys/{id}/revoke")).await;
    assert!(confirm.body.contains("Revoke key"));
    let revoked = admin
        .submit(
            "/console/apikeys",
            &format!("/console/apikeys/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(sent_to_sign_in(&member.get("/console/agents").await));
}

/// Rotating a leaked key is the remedy: a session opened with the leaked secret must not go on
/// minting keys after the rotation.
async fn rotating_the_api_key_without_grace_ends_the_sessions_its_old_secret_opened(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "leaked", "role": "admin"});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let (old, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let thief = Browser::signed_in(&app, old).await;
    assert_eq!(thief.get("/console/apikeys").await.status, StatusCode::OK);
    let csrf = thief.get("/console/apikeys").await.csrf();

    let rotate = json!({"grace_period_seconds": 0});
    let (status, rotated) = app
        .post(&format!("/apikeys/{id}/rotate"), ADMIN, rotate)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (status, _) = app.get("/apikeys", old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert!(sent_to_sign_in(&thief.get("/console/apikeys").await));
    let minted = thief
        .post(
            "/console/apikeys",
            &[("name", "backdoor"), ("role", "admin"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(minted.status, StatusCode::UNAUTHORIZED, "{}", minted.body);
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let names: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"backdoor"), "{names:?}");

    // The key itself lives on: its new secret signs in.
    let owner = Browser::signed_in(&app, rotated["key"].as_str().unwrap()).await;
    assert_eq!(owner.get("/console/apikeys").await.status, StatusCode::OK);
}

async fn a_session_ends_with_the_grace_period_of_the_secret_it_signed_in_with(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"name": "rotated", "role": "member"});
    let (_, created) = app.post("/apikeys", ADMIN, body).await;
    let (old, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let before = Browser::signed_in(&app, old).await;

    let rotate = json!({"grace_period_seconds": 2});
    let (status, rotated) = app
        .post(&format!("/apikeys/{id}/rotate"), ADMIN, rotate)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    // Within the grace period the old secret and its sessions still work…
    assert_eq!(before.get("/console/agents").await.status, StatusCode::OK);
    let during = Browser::signed_in(&app, old).await;
    let after = Browser::signed_in(&app, rotated["key"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    // …and end with it, while a session of the new secret goes on.
    assert!(sent_to_sign_in(&before.get("/console/agents").await));
    assert!(sent_to_sign_in(&during.get("/console/agents").await));
    assert_eq!(after.get("/console/agents").await.status, StatusCode::OK);
}

async fn a_minted_secret_is_shown_once_and_never_logged(backend: Backend) {
    let app = TestApp::start(backend).await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    let created = browser
        .submit(
            "/console/agents",
            "/console/agents",
            &[("name", "shown-once"), ("mode", "standard")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.header("cache-control"), "no-store");
    assert!(created.body.contains("you will not see it again"));
    let dsn = minted_secrets_in(&created.body);
    assert_eq!(dsn.len(), 1, "{}", created.body);
    let (_, verified) = app.verify(ADMIN, &dsn[0]).await;
    assert_eq!(verified["valid"], true, "{verified}");

    let rotated = browser
        .submit(
            "/console/agents",
            "/console/agents/shown-once/rotate",
            &[("grace_period_seconds", "60")],
        )
        .await;
    let new_dsn = minted_secrets_in(&rotated.body);
    assert_eq!(new_dsn.len(), 1, "{}", rotated.body);
    assert_ne!(new_dsn, dsn);
    let key = browser
        .submit(
            "/console/apikeys",
            "/console/apikeys",
            &[("name", "minted here"), ("role", "member")],
        )
        .await;
    let api_key = minted_secrets_in(&key.body);
    assert_eq!(api_key.len(), 1, "{}", key.body);
    // Rotating it without grace: the new key works, the old one no longer does.
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let id = keys["items"][1]["id"].as_str().unwrap().to_owned();
    let rotated_key = browser
        .submit(
            "/console/apikeys",
            &format!("/console/apikeys/{id}/rotate"),
            &[("grace_period_seconds", "")],
        )
        .await;
    let rotated_key = minted_secrets_in(&rotated_key.body);
    assert_eq!(rotated_key.len(), 1);
    assert_eq!(
        app.get("/agents", &api_key[0]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/agents", &rotated_key[0]).await.0, StatusCode::OK);
    let api_key = [api_key[0].clone(), rotated_key[0].clone()];
    // Every other kind the console mints: each shown once, in the answer that minted it.
    let mut others = Vec::new();
    let agentex = browser
        .submit(
            "/console/agents",
            "/console/agents/shown-once/keys",
            &[("name", "edge"), ("api_key_type", "external")],
        )
        .await;
    others.extend(minted_secrets_in(&agentex.body));
    let connection = browser
        .submit(
            "/console/connections",
            "/console/connections",
            &[
                ("name", "prod-pg"),
                ("type", "database"),
                ("subtype", "postgres"),
                ("agent", "shown-once"),
                ("database_name", "app"),
            ],
        )
        .await;
    assert_eq!(
        connection.status,
        StatusCode::SEE_OTHER,
        "{}",
        connection.body
    );
    let identity = browser
        .submit(
            "/console/identities",
            "/console/identities",
            &[("name", "backend"), ("connection_names", "prod-pg")],
        )
        .await;
    assert!(
        identity.body.contains("For connection prod-pg"),
        "{}",
        identity.body
    );
    others.extend(minted_secrets_in(&identity.body));
    let rotated_credential = browser
        .submit(
            "/console/identities",
            "/console/identities/backend/credentials/prod-pg/rotate",
            &[("grace_period_seconds", "0")],
        )
        .await;
    others.extend(minted_secrets_in(&rotated_credential.body));
    let project = browser
        .submit(
            "/console/projects",
            "/console/projects",
            &[("name", "prod")],
        )
        .await;
    let project = project.location().to_owned();
    let agent_key = browser
        .submit(
            &project,
            &format!("{project}/agentapikeys"),
            &[("desc", "agent")],
        )
        .await;
    others.extend(minted_secrets_in(&agent_key.body));
    let pair = browser
        .submit(
            "/console/keypairs",
            "/console/keypairs",
            &[("desc", "automation"), ("role", "ORG_OWNER")],
        )
        .await;
    others.extend(minted_secrets_in(&pair.body));
    let (_, orgs) = app.get("/api/public/v1.0/orgs", ADMIN).await;
    let org = orgs["results"][0]["id"].as_str().unwrap().to_owned();
    let (_, pairs) = app.get(&format!("/orgs/{org}/apiKeys"), ADMIN).await;
    let pair_id = pairs["results"][0]["id"].as_str().unwrap().to_owned();
    let rotated_pair = browser
        .submit(
            "/console/keypairs",
            &format!("/console/keypairs/{pair_id}/rotate"),
            &[("grace_period_seconds", "60")],
        )
        .await;
    assert!(
        rotated_pair.body.contains("rotated"),
        "{}",
        rotated_pair.body
    );
    others.extend(minted_secrets_in(&rotated_pair.body));
    others.sort();
    others.dedup();
    // Agentex key, two credentials, an agent API key, a private key and its successor.
    assert_eq!(others.len(), 6, "{others:?}");
    // Verifying through the tester does not show the secret back.
    let tested = browser
        .submit(
            "/console/verify",
            "/console/verify",
            &[("key", &new_dsn[0])],
        )
        .await;
    assert!(tested.body.contains("valid"), "{}", tested.body);

    let mut minted = vec![&dsn[0], &new_dsn[0], &api_key[0], &api_key[1]];
    minted.extend(&others);
    let mut later = Vec::new();
    for path in [
        "/console/agents",
        "/console/agents/shown-once/keys",
        "/console/apikeys",
        "/console/connections",
        "/console/identities",
        "/console/projects",
        project.as_str(),
        "/console/keypairs",
        "/console/audit",
        "/console/verify",
    ] {
        later.push(browser.get(path).await);
    }
    later.push(tested);
    for page in &later {
        for secret in &minted {
            assert!(!page.body.contains(secret.as_str()));
            assert!(!page.headers.iter().any(|(_, value)| {
                value
                    .to_str()
                    .is_ok_and(|value| value.contains(secret.as_str()))
            }));
        }
    }
    let logs = captured_logs();
    for secret in &minted {
        assert!(
            !logs.contains(secret.as_str()),
            "a minted secret was logged"
        );
    }
    assert_no_secret_logged();
}

async fn a_change_made_in_the_console_is_audited_with_the_browsers_address_and_request(
    backend: Backend,
) {
    let app = TestApp::start_with(backend, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    let csrf = browser.get("/console/agents").await.csrf();
    let created = Browser::send(
        browser
            .request(Method::POST, "/console/agents")
            .header("x-forwarded-for", "198.51.100.7")
            .form(&[("name", "audited"), ("mode", "standard"), ("csrf", &csrf)]),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let request_id = created.header("x-request-id");
    assert!(!request_id.is_empty());

    let (_, events) = app.get("/audit?action=agent.created", ADMIN).await;
    let event = &events["items"][0];
    assert_eq!(event["client"], "198.51.100.7", "{events}");
    assert_eq!(event["request_id"], request_id, "{events}");
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    assert_eq!(
        event["actor"], keys["items"][0]["id"],
        "the signed-in key acted"
    );
}

async fn bad_input_gets_a_clear_4xx_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    let csrf = browser.get("/console/agents").await.csrf();
    let pages = [
        browser.get("/console/projects/not-a-project-id").await,
        browser.get("/console/agents?cursor=not-a-cursor").await,
        browser.get("/console/audit?since=yesterday").await,
        browser.get("/console/projects?page=first").await,
        browser
            .get("/console/agents/no-such-agent/keys?page=-1")
            .await,
        browser.get("/console/agents/no-such-agent/keys").await,
        browser.post("/console/agents", &[("csrf", &csrf)]).await,
        browser
            .post(
                "/console/agents/no-such-agent/rotate",
                &[("csrf", &csrf), ("grace_period_seconds", "soon")],
            )
            .await,
        browser
            .post(
                "/console/agents/no-such-agent/rotate",
                &[("csrf", &csrf), ("grace_period_seconds", "5")],
            )
            .await,
        browser
            .post(
                "/console/agents",
                &[("csrf", &csrf), ("name", "x"), ("mode", "sideways")],
            )
            .await,
    ];
    for page in &pages {
        assert!(
            page.status.is_client_error(),
            "{}: {}",
            page.status,
            page.body
        );
        assert!(page.header("content-type").starts_with("text/html"));
        assert!(page.body.contains("class=\"error\""), "{}", page.body);
    }
    assert!(agent_names(&app).await.is_empty());
}

/// What a screen reader needs from each page, with rows in every table: a language, a title,
/// one top-level heading, and a label naming every control a user fills in or chooses.
async fn every_control_has_a_label_and_every_page_a_heading(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("edge-1").await;
    app.create_api_key("member").await;
    let browser = Browser::signed_in(&app, ADMIN).await;
    let project = browser
        .submit(
            "/console/projects",
            "/console/projects",
            &[("name", "prod")],
        )
        .await;
    let project = project.location().to_owned();
    browser
        .submit(
            &project,
            &format!("{project}/agentapikeys"),
            &[("desc", "rack")],
        )
        .await;
    let pair = [("desc", "automation"), ("role", "ORG_MEMBER")];
    browser
        .submit("/console/keypairs", "/console/keypairs", &pair)
        .await;
    let connection = json!({
        "name": "pg-prod", "type": "database", "subtype": "postgres", "agent_id": "edge-1",
    });
    assert_eq!(
        app.post("/connections", ADMIN, connection).await.0,
        StatusCode::CREATED
    );
    let identity = json!({ "name": "backend", "connection_names": ["pg-prod"] });
    assert_eq!(
        app.post("/machineidentities", ADMIN, identity).await.0,
        StatusCode::CREATED
    );

    let control = regex::Regex::new(r"<(?:input|select|textarea)\s[^>]*>").unwrap();
    let id = regex::Regex::new(r#"\sid="([^"]+)""#).unwrap();
    let label = regex::Regex::new(r#"<label[^>]*\sfor="([^"]+)""#).unwrap();
    let anonymous = Browser::new(&app);
    let mut pages = vec![("/console/sign-in", anonymous.get("/console/sign-in").await)];
    for path in [
        "/console/agents",
        "/console/agents/edge-1/keys",
        "/console/agents/edge-1/delete",
        "/console/apikeys",
        "/console/connections",
        "/console/identities",
        "/console/projects",
        project.as_str(),
        "/console/keypairs",
        "/console/audit",
        "/console/verify",
    ] {
        pages.push((path, browser.get(path).await));
    }
    for (path, page) in &pages {
        let body = &page.body;
        assert_eq!(page.status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains("<html lang=\"en\">"), "{path}");
        assert!(
            body.contains("<title>") && body.contains("</title>"),
            "{path}"
        );
        assert_eq!(body.matches("<h1").count(), 1, "{path}");
        let labelled: Vec<&str> = label
            .captures_iter(body)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        for tag in control.find_iter(body).map(|found| found.as_str()) {
            if tag.contains(r#"type="hidden""#) {
                continue;
            }
            let named = id
                .captures(tag)
                .is_some_and(|c| labelled.contains(&c.get(1).unwrap().as_str()));
            assert!(
                named || tag.contains("aria-label="),
                "{path}: {tag} has no label"
            );
        }
    }
    // Rows were there to be labelled: the rotate controls of each list.
    assert!(
        pages
            .iter()
            .filter(|(_, page)| page.body.contains("Grace (s)"))
            .count()
            >= 5
    );
}
