//! `POST /api/v0/audit` answers at once: sealing what is pending and auditing run in the
//! background, one at a time, and `GET /api/v0/audit/last` reports them.

use cairn_core::testgen::Gen;
use cairn_net::{Keypair, NetConfig};
use cairn_repo::Repo;
use cairn_storage_node::node::Node;
use serde_json::Value;

mod common;
use common::opts;

/// A blocking HTTP call: status and JSON body.
fn call(method: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = match method {
        "POST" => {
            let mut req = agent.post(url);
            if let Some(t) = token {
                req = req.header("authorization", &format!("Bearer {t}"));
            }
            req.send_empty().unwrap()
        }
        _ => agent.get(url).call().unwrap(),
    };
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn http(method: &'static str, url: String, token: Option<&'static str>) -> (u16, Value) {
    tokio::task::spawn_blocking(move || call(method, &url, token))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_started_by_hand_answers_at_once_and_reports_when_done() {
    let node = Node::start(
        Repo::in_memory(),
        Keypair::generate_ed25519(),
        NetConfig::default(),
        opts(true),
    )
    .await
    .unwrap();
    // data to seal: the test options seal nothing on their own (day-long intervals)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, Gen::bytes(11, 8 << 10)).unwrap();
    node.put(&path).await.unwrap();

    const TOKEN: &str = "test-token";
    let app =
        cairn_storage_node::api::router(node.clone(), TOKEN.into(), dir.path().to_path_buf(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (st, _) = http("GET", format!("{base}/api/v0/audit/last"), None).await;
    assert_eq!(st, 404, "nothing started yet");
    let (st, _) = http("POST", format!("{base}/api/v0/audit"), None).await;
    assert_eq!(st, 401, "starting an audit needs the token");
    let (st, v) = http("POST", format!("{base}/api/v0/audit?wait=-1"), Some(TOKEN)).await;
    assert_eq!(st, 400, "{v}");

    // the answer comes while the sealing it started is still under way
    let (st, v) = http("POST", format!("{base}/api/v0/audit"), Some(TOKEN)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["started"].clone(), v["done"].clone()),
        (true.into(), false.into()),
        "{v}"
    );
    // one at a time: a second start reports the running one
    let (_, again) = http("POST", format!("{base}/api/v0/audit"), Some(TOKEN)).await;
    assert_eq!(again["started"], false, "{again}");
    assert_eq!(again["running"]["started_at"], v["started_at"], "{again}");

    // its outcome, once done (the wait is a hang guard: sealing takes what the data needs)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let done = loop {
        let (st, last) = http("GET", format!("{base}/api/v0/audit/last"), None).await;
        assert_eq!(st, 200);
        if last["done"] == true {
            break last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the audit never finished: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(done["error"].is_null(), "{done}");
    assert!(done["sealed"].as_u64().unwrap() >= 1, "{done}");
    // a lone node has no peer to audit
    assert!(done["audit"].is_null(), "{done}");

    // with nothing left to seal, a start that waits gets its outcome in the answer
    let (_, quick) = http("POST", format!("{base}/api/v0/audit?wait=20"), Some(TOKEN)).await;
    assert_eq!(
        (quick["started"].clone(), quick["done"].clone()),
        (true.into(), true.into()),
        "{quick}"
    );
    assert_eq!(quick["sealed"], 0, "{quick}");
}
