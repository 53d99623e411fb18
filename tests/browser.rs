//! Drives the dashboard in headless Chromium through ChromeDriver: filter
//! the runs list to failed runs, open one, read the step error, press
//! retry and watch the page turn to succeeded. Saves screenshots of the
//! three pages under `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages; without them
//! the test fails and says how to install them.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// ChromeDriver started for one test, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: TempDir,
    profile_dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_browser() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} not found: install Chromium and ChromeDriver with \
             `apt-get install -y --no-install-recommends chromium chromium-driver` \
             (.ci/run does this) to run the browser test"
        );
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("bound address").port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let profile = TempDir::new().expect("creating a browser profile directory");
    let profile_dir = profile.path().to_path_buf();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
        profile_dir,
    };
    // Readiness wait only: chromedriver opens its port shortly after start.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not open port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn open_browser(driver: &Driver) -> Client {
    let args = json!([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        format!("--user-data-dir={}", driver.profile_dir.display()),
    ]);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("opening a Chromium session")
}

fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the test temporary directory is inside target/");
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/screenshots");
    dir
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("taking a screenshot");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("writing a screenshot");
}

/// Waits until the browser has navigated to a URL containing `part`.
async fn wait_for_url(browser: &Client, part: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = browser.current_url().await.expect("current URL");
        if url.as_str().contains(part) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the browser never reached {part}: at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the text of the element matching `css`, waiting for it to appear.
async fn text_of(browser: &Client, css: &str) -> String {
    let element = browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .expect(css);
    element.text().await.expect("element text")
}

/// Waits until the run page shows `status`, refreshed by the page's own
/// polling script.
async fn wait_for_status(browser: &Client, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(element) = browser.find(Locator::Css("#run-status")).await
            && element.text().await.is_ok_and(|text| text == status)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run page never showed {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn place_server(supplier: &Supplier) -> TestServer {
    let project = Project::bundled();
    project.add_workflow(
        "place.yaml",
        "name: place\ndescription: Places one supplier order.\ntrigger: manual\nsteps:\n  - id: place\n    uses: supplier.create_order\n    with: { reference: \"#1042\" }\n",
    );
    TestServer::start(&project, shop_env(supplier)).await
}

async fn start_run(server: &TestServer, path: &str, body: serde_json::Value) -> String {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("starting a run");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id").to_string();
    server.wait_for_run(&run_id).await;
    run_id
}

#[tokio::test]
async fn browser_retries_failed_run() {
    require_browser();
    let supplier = Supplier::sequence(vec![
        Answer::json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "unknown sku HL-200" }),
        ),
        Answer::order_created("SO-2611-000123"),
    ])
    .await;
    let server = place_server(&supplier).await;
    start_run(&server, "/hooks/hello", json!({ "name": "Mira" })).await;
    let order = json!({ "name": "#1042", "email": "mira@example.com" });
    let failed = start_run(&server, "/api/workflows/place/runs", order).await;
    let driver = start_driver().await;
    let browser = open_browser(&driver).await;

    browser
        .goto(&server.url("/"))
        .await
        .expect("opening the runs list");
    save_screenshot(&browser, "runs-list.png").await;
    let status = browser
        .find(Locator::Id("filter-status"))
        .await
        .expect("status filter");
    status
        .select_by_value("failed")
        .await
        .expect("choosing failed");
    browser
        .find(Locator::Id("apply-filters"))
        .await
        .expect("filter button")
        .click()
        .await
        .expect("filtering");
    wait_for_url(&browser, "status=failed").await;
    let rows = browser
        .find_all(Locator::Css("a.run-link"))
        .await
        .expect("run links");
    assert_eq!(rows.len(), 1, "only the failed run is listed");
    assert_eq!(rows[0].text().await.expect("link text"), failed);
    rows[0].click().await.expect("opening the run");

    wait_for_url(&browser, &format!("/runs/{failed}")).await;
    let error = text_of(&browser, ".step-error").await;
    assert!(
        error.contains("400"),
        "step error names the status: {error}"
    );
    assert!(
        error.contains("unknown sku HL-200"),
        "step error shows the body: {error}"
    );
    save_screenshot(&browser, "run-detail-failed.png").await;
    browser
        .find(Locator::Id("retry"))
        .await
        .expect("retry button")
        .click()
        .await
        .expect("pressing retry");
    wait_for_status(&browser, "succeeded").await;
    save_screenshot(&browser, "run-detail.png").await;

    browser
        .goto(&server.url("/workflows"))
        .await
        .expect("opening workflows");
    let table = text_of(&browser, "#workflows").await;
    assert!(table.contains("place"), "{table}");
    save_screenshot(&browser, "workflows.png").await;
    browser.close().await.expect("closing the browser");
    assert_eq!(
        supplier.received().len(),
        2,
        "one failed call and one retry"
    );
}
