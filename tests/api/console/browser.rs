//! The console in a real browser: headless Chromium driven through chromedriver's WebDriver
//! protocol (HTTP and JSON, spoken here over reqwest). Ignored like the Postgres suite, since it
//! needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); run it with
//! `--include-ignored`. With `KEYGATE_UPDATE_SCREENSHOTS=1` it saves a screenshot of each page
//! into `docs/console/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, minted_secrets_in};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process on a free local port, ended when dropped.
struct Driver {
    process: Child,
    base: String,
    client: reqwest::Client,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {CHROMEDRIVER} (apt-get install chromium-driver): {err}")
            });
        let driver = Driver {
            process,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        for _ in 0..200 {
            let ready = driver
                .client
                .get(format!("{}/status", driver.base))
                .send()
                .await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A headless Chromium window of 1280 × 900 CSS pixels.
    async fn browser(&self) -> Browser<'_> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Root in a container: Chromium's sandbox cannot start there.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--hide-scrollbars", "--force-device-scale-factor=1"],
            },
        }}});
        let response = self
            .client
            .post(format!("{}/session", self.base))
            .json(&capabilities)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {body}"));
        Browser {
            driver: self,
            session: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// One WebDriver session: a browser with its windows.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl Browser<'_> {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .driver
            .client
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {method} {path}: {body}");
        body["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap().to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|element| element[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        let found = self.find_all(css).await;
        if found.is_empty() {
            panic!("no {css} on {}: {}", self.url().await, self.source().await);
        }
        found[0].clone()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Clicks what loads another page (a link, a form's button), and waits until that page has
    /// loaded: a click returns as soon as it is dispatched.
    async fn follow(&self, css: &str) {
        self.script("window.keygateOldPage = true;").await;
        self.click(css).await;
        for _ in 0..400 {
            let loaded = self
                .script("return !window.keygateOldPage && document.readyState === 'complete';")
                .await;
            if loaded == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clicking {css} loaded no page");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn value(&self, css: &str) -> String {
        let element = self.find(css).await;
        let value = self
            .get(&format!("/element/{element}/property/value"))
            .await;
        value.as_str().unwrap().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self.get(&format!("/element/{element}/text")).await;
        text.as_str().unwrap().to_owned()
    }

    /// How the page fits the window's width: whether it scrolls sideways; how many table cells
    /// lack the label a card shows them with (every cell but the actions has one); how many row
    /// actions (the buttons, links and visible fields of a table's `td.actions`) it has, and which
    /// of them a tap cannot reach: outside the window's width, smaller than 24 × 24 px (WCAG's
    /// minimum target), or covered at their middle. Scrolls the window down to each action.
    async fn fit(&self) -> Fit {
        let fit = self
            .script(
                "const width = window.innerWidth;
                 const actions = document.querySelectorAll(
                     'td.actions button, td.actions a, td.actions input:not([type=hidden])');
                 const unreachable = [];
                 for (const action of actions) {
                     // Down to the action, never sideways (scrollIntoView would scroll a
                     // table's box too): what lies beyond the width is out of a thumb's reach.
                     window.scrollTo(0, window.scrollY + action.getBoundingClientRect().top
                         - window.innerHeight / 2);
                     const box = action.getBoundingClientRect();
                     const tapped = document.elementFromPoint(
                         box.left + box.width / 2, box.top + box.height / 2);
                     if (box.left < 0 || box.right > width || box.width < 24 || box.height < 24
                         || !action.contains(tapped)) {
                         unreachable.push(`${action.outerHTML} at x ${box.left}…${box.right}`);
                     }
                 }
                 return { sideways: document.documentElement.scrollWidth > width,
                          unlabelled: document.querySelectorAll(
                              'td:not([data-label]):not(.actions)').length,
                          actions: actions.length, unreachable };",
            )
            .await;
        serde_json::from_value(fit).unwrap()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Opens a new tab and switches to it; returns the previous tab's handle.
    async fn new_tab(&self) -> String {
        let previous = self.get("/window").await.as_str().unwrap().to_owned();
        let tab = self.post("/window/new", json!({"type": "tab"})).await;
        self.post("/window", json!({"handle": tab["handle"]})).await;
        previous
    }

    async fn switch_to(&self, handle: &str) {
        self.post("/window", json!({ "handle": handle })).await;
    }

    /// Saves a screenshot of the window as `docs/console/<name>.png` when asked to.
    async fn screenshot(&self, name: &str) {
        if std::env::var_os("KEYGATE_UPDATE_SCREENSHOTS").is_none() {
            return;
        }
        let png = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn quit(self) {
        self.command(reqwest::Method::DELETE, "", None).await;
    }
}

/// How a page fits the window's width, as [`Browser::fit`] measures it.
#[derive(Debug, serde::Deserialize)]
struct Fit {
    sideways: bool,
    unlabelled: usize,
    actions: usize,
    unreachable: Vec<String>,
}

/// Serves, on another local port (another origin), a page whose form posts an agent to
/// `target` without a CSRF token; returns the page's address.
async fn serve_forgery(target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/", listener.local_addr().unwrap());
    let page = format!(
        "<!doctype html><title>Win a prize</title><form method=post action=\"{target}\">\
         <input name=name value=forged><input name=mode value=standard>\
         <button type=submit>Claim</button></form>"
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{page}",
        page.len()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); pass --include-ignored"]
async fn the_console_in_a_real_browser() {
    let app = TestApp::start(Backend::Sqlite).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let at = |path: &str| app.url(path);
    // Every page seen after a secret was shown, to prove it is never there again.
    let mut later_pages = Vec::new();
    let mut secrets: Vec<String> = Vec::new();

    // Signing in: the console sends an unknown browser to the sign-in page.
    browser.goto(&at("/console/")).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
    browser.type_into("#key", "not-a-working-key").await;
    browser.follow("button[type=submit]").await;
    let refused = browser.source().await;
    assert!(refused.contains("does not work"), "{refused}");
    browser.screenshot("sign-in").await;
    browser.type_into("#key", ADMIN).await;
    browser.follow("button[type=submit]").await;
    // The first page after sign-in is the overview.
    assert!(browser.url().await.ends_with("/console/overview"));
    browser.goto(&at("/console/agents")).await;

    // Creating an agent: its DSN is shown once, with a copy button.
    browser.type_into("#agent-name", "ci-runner").await;
    browser
        .follow("form[action='/console/agents'] button")
        .await;
    let dsn = browser.value("#secret").await;
    assert!(dsn.starts_with("grpc://ci-runner:"), "{dsn}");
    assert!(browser.source().await.contains("you will not see it again"));
    browser.click("button.copy").await;
    assert!(!browser.text(".copied").await.is_empty());
    browser.screenshot("agent-created").await;
    let (_, verified) = app.verify(ADMIN, &dsn).await;
    assert_eq!(verified["valid"], true, "{verified}");
    secrets.push(dsn.clone());

    browser.goto(&at("/console/agents")).await;
    assert!(browser.source().await.contains("ci-runner"));
    browser.screenshot("agents").await;
    later_pages.push(browser.source().await);

    // Rotating with a grace period: the old DSN works for a while, the new one too.
    browser
        .type_into("input[name=grace_period_seconds]", "600")
        .await;
    browser.follow("form[action$='/rotate'] button").await;
    let rotated = browser.value("#secret").await;
    assert_ne!(rotated, dsn);
    for secret in [&dsn, &rotated] {
        let (_, verified) = app.verify(ADMIN, secret).await;
        assert_eq!(verified["valid"], true, "{verified}");
    }
    secrets.push(rotated.clone());

    // Deleting, after a confirmation: neither DSN verifies any more.
    browser.goto(&at("/console/agents")).await;
    later_pages.push(browser.source().await);
    browser.follow("a.danger").await;
    assert!(
        browser
            .url()
            .await
            .ends_with("/console/agents/ci-runner/delete")
    );
    browser.screenshot("agent-delete").await;
    browser.follow("button.danger").await;
    assert!(browser.url().await.ends_with("/console/agents"));
    assert!(!browser.source().await.contains("ci-runner"));
    for secret in [&dsn, &rotated] {
        let (_, verified) = app.verify(ADMIN, secret).await;
        assert_eq!(verified["valid"], false, "{verified}");
    }

    // API keys: an auditor's key, created here and shown once.
    browser.goto(&at("/console/apikeys")).await;
    browser.type_into("#key-name", "reviewer").await;
    browser.click("#key-role").await;
    browser.click("#key-role option[value=auditor]").await;
    browser
        .follow("form[action='/console/apikeys'] button")
        .await;
    let auditor_key = browser.value("#secret").await;
    assert_eq!(
        minted_secrets_in(&auditor_key),
        std::slice::from_ref(&auditor_key)
    );
    secrets.push(auditor_key.clone());
    browser.goto(&at("/console/apikeys")).await;
    browser.screenshot("api-keys").await;
    later_pages.push(browser.source().await);

    // Agentex keys of an agent.
    app.create_agent("edge-1").await;
    browser.goto(&at("/console/agents")).await;
    browser
        .follow("a[href='/console/agents/edge-1/keys']")
        .await;
    browser
        .type_into("#agentex-name", "octo-org/hello-world")
        .await;
    browser.click("#agentex-type").await;
    browser.click("#agentex-type option[value=github]").await;
    browser.follow("form[action$='/keys'] button").await;
    secrets.push(browser.value("#secret").await);
    browser.goto(&at("/console/agents/edge-1/keys")).await;
    browser.screenshot("agentex-keys").await;
    later_pages.push(browser.source().await);

    // A connection, and a machine identity with its credential for it, shown once.
    browser.goto(&at("/console/connections")).await;
    browser.type_into("#conn-name", "prod-postgres").await;
    browser.type_into("#conn-subtype", "postgres").await;
    browser.type_into("#conn-agent", "edge-1").await;
    browser.type_into("#conn-db", "app").await;
    browser
        .follow("form[action='/console/connections'] button")
        .await;
    assert!(browser.source().await.contains("prod-postgres"));
    browser.screenshot("connections").await;
    browser.goto(&at("/console/identities")).await;
    browser.type_into("#mi-name", "backend-prod").await;
    browser.type_into("#mi-conns", "prod-postgres").await;
    browser
        .follow("form[action='/console/identities'] button")
        .await;
    let credential = browser.source().await;
    let issued = minted_secrets_in(&credential);
    assert!(!issued.is_empty(), "{credential}");
    secrets.extend(issued);
    browser.screenshot("identity-created").await;
    browser.goto(&at("/console/identities")).await;
    browser.screenshot("identities").await;
    later_pages.push(browser.source().await);

    // Ops Manager: a project and its agent API key; a key pair of the organization.
    browser.goto(&at("/console/projects")).await;
    browser.type_into("#project-name", "prod").await;
    browser
        .follow("form[action='/console/projects'] button")
        .await;
    let project = browser.url().await;
    browser.type_into("#agent-key-desc", "ops-agent").await;
    browser.follow("form[action$='/agentapikeys'] button").await;
    secrets.push(browser.value("#secret").await);
    browser.goto(&project).await;
    browser.screenshot("project").await;
    later_pages.push(browser.source().await);
    browser.goto(&at("/console/keypairs")).await;
    browser.type_into("#pair-desc", "automation").await;
    browser
        .follow("form[action='/console/keypairs'] button")
        .await;
    secrets.push(browser.value("#secret").await);
    browser.goto(&at("/console/keypairs")).await;
    browser.screenshot("key-pairs").await;
    later_pages.push(browser.source().await);

    // The verification tester answers as the API does, without showing the secret back.
    browser.goto(&at("/console/verify")).await;
    browser.type_into("#verify-key", &rotated).await;
    browser
        .follow("form[action='/console/verify'] button")
        .await;
    assert!(browser.text("#answer").await.contains("not valid"));
    browser.screenshot("verify").await;
    later_pages.push(browser.source().await);

    // The audit log shows what was done, filtered.
    browser.goto(&at("/console/audit")).await;
    assert!(browser.source().await.contains("agent.deleted"));
    browser.screenshot("audit").await;
    later_pages.push(browser.source().await);
    browser.type_into("#f-action", "agent.rotated").await;
    browser.follow("form[action='/console/audit'] button").await;
    let filtered = browser.source().await;
    assert!(filtered.contains("agent.rotated") && !filtered.contains(">agent.created<"));
    later_pages.push(filtered);

    // The overview: the gateway's verifications as charts drawn by the server (inline SVG, no
    // script), the keys by kind, the busiest keys and, for the operator, refused credentials.
    let busy = app.create_agent("busy-gateway").await;
    for _ in 0..5 {
        app.verify(ADMIN, &busy).await;
    }
    app.verify(ADMIN, "xagt-not-a-key").await;
    let wrong = app
        .request(reqwest::Method::GET, "/agents", Some("wrong-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Counts are written by the usage flush (every 50 ms in the tests); the refused credential
    // by the audit queue.
    let mut overview = String::new();
    for _ in 0..100 {
        browser.goto(&at("/console/overview")).await;
        overview = browser.source().await;
        if overview.contains("busy-gateway")
            && overview.contains("Latest refused")
            && !overview.contains("None refused")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(overview.contains("busy-gateway"), "{overview}");
    let bars = browser.find_all("#main svg rect.s-valid").await;
    assert!(!bars.is_empty(), "no valid bars: {overview}");
    assert!(
        !browser
            .find_all("#main svg rect.s-not-found")
            .await
            .is_empty(),
        "{overview}"
    );
    assert_eq!(browser.find_all("#main figure.chart svg").await.len(), 2);
    // The charts' colours come from the stylesheet (the page's policy refuses inline styles):
    // a valid bar is drawn green, not in the default black.
    let fill = browser
        .script("return getComputedStyle(document.querySelector('rect.s-valid')).fill;")
        .await;
    assert_eq!(fill, "rgb(30, 107, 52)");
    assert!(!overview.contains("style="), "{overview}");
    browser.screenshot("overview").await;
    later_pages.push(overview);
    // Each key's page shows its usage: a week of hours, the busy agent's five uses.
    browser
        .follow("a[href='/console/agents/busy-gateway/usage']")
        .await;
    assert!(
        browser
            .source()
            .await
            .contains("Usage of Agent busy-gateway")
    );
    assert!(
        browser
            .text("#main figcaption")
            .await
            .contains("(5 in all)")
    );
    assert_eq!(browser.find_all("#main svg rect.s-uses").await.len(), 1);
    browser.screenshot("agent-usage").await;
    later_pages.push(browser.source().await);

    // A phone-sized window: each table row is a card, its actions within reach of a tap, and no
    // page scrolls sideways. The screenshots show the list, scrolled to.
    browser.resize(390, 844).await;
    for (page, name) in [
        (at("/console/agents"), "agents-390"),
        (at("/console/agents/edge-1/keys"), "agentex-keys-390"),
        (at("/console/apikeys"), "api-keys-390"),
        (at("/console/connections"), "connections-390"),
        (at("/console/identities"), "identities-390"),
        (at("/console/keypairs"), "key-pairs-390"),
        (project.clone(), "project-390"),
        (at("/console/audit"), "audit-390"),
        (at("/console/overview"), "overview-390"),
    ] {
        browser.goto(&page).await;
        let fit = browser.fit().await;
        assert!(!fit.sideways, "{page} scrolls sideways");
        assert_eq!(fit.unlabelled, 0, "{page}: cells without a data-label");
        assert!(fit.unreachable.is_empty(), "{page}: {:?}", fit.unreachable);
        // The audit log and the overview are the lists without row actions.
        assert!(
            fit.actions > 0 || name == "audit-390" || name == "overview-390",
            "{page}: no row actions"
        );
        browser
            .script(
                "const table = document.querySelector('table');
                 (table.closest('section') ?? table).scrollIntoView();",
            )
            .await;
        browser.screenshot(name).await;
    }
    browser.resize(1280, 900).await;

    // A form on another site posting to the console, as a signed-in user's browser sends it
    // (the session cookie goes along: the two sites differ only by port), is refused.
    let elsewhere = serve_forgery(&app.url("/console/agents")).await;
    browser.goto(&elsewhere).await;
    browser.follow("button").await;
    assert!(browser.source().await.contains("sent from another site"));
    let (_, agents) = app.get("/agents", ADMIN).await;
    assert!(!agents.to_string().contains("forged"), "{agents}");
    browser.goto(&at("/console/agents")).await;

    // Signing out in one tab ends the session in every tab.
    let first_tab = browser.new_tab().await;
    browser.goto(&at("/console/agents")).await;
    assert!(browser.url().await.ends_with("/console/agents"));
    let second_tab = browser.new_tab().await;
    browser.switch_to(&first_tab).await;
    browser.follow(".signout button").await;
    assert!(browser.source().await.contains("You have signed out"));
    browser.switch_to(&second_tab).await;
    browser.goto(&at("/console/apikeys")).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));

    // An auditor's pages offer no change: the only form that posts is signing out.
    browser.type_into("#key", &auditor_key).await;
    browser.follow("button[type=submit]").await;
    for path in [
        "/console/agents",
        "/console/agents/edge-1/keys",
        "/console/apikeys",
        "/console/connections",
        "/console/identities",
        "/console/projects",
        "/console/keypairs",
        "/console/audit",
        "/console/verify",
    ] {
        browser.goto(&at(path)).await;
        let forms = browser.find_all("form[method=post]").await;
        assert_eq!(forms.len(), 1, "{path}");
        assert!(browser.find_all(".danger").await.is_empty(), "{path}");
        later_pages.push(browser.source().await);
    }
    browser.goto(&at("/console/apikeys")).await;
    browser.screenshot("auditor-api-keys").await;

    for page in &later_pages {
        for secret in &secrets {
            assert!(!page.contains(secret.as_str()), "a secret was shown again");
        }
    }
    browser.quit().await;
}
