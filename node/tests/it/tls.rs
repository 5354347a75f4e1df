//! The API over TLS when the config names a certificate and key.

use crate::common;

use common::*;
use veilwatt_node::config::Home;
use veilwatt_node::run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("api.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("api.key"), cert.key_pair.serialize_pem()).unwrap();
    let g = genesis("tls-test", 60, 30);
    let home = make_home(dir.path(), &g, |c| {
        c.api.tls_cert = Some(dir.path().join("api.crt"));
        c.api.tls_key = Some(dir.path().join("api.key"));
    });
    let node = run::start(&Home::load(&home).unwrap()).await.unwrap();
    let port = node.api_addr.port();

    // A client that trusts the certificate gets the status over https.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["chain_id"], "tls-test");

    // A client that does not trust it is refused, and plain http gets no answer.
    let untrusting = reqwest::Client::new();
    assert!(untrusting
        .get(format!("https://localhost:{port}/v1/status"))
        .send()
        .await
        .is_err());
    let plain = reqwest::Client::new()
        .get(format!("http://localhost:{port}/v1/status"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_tls_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis("tls-half", 60, 30);
    let home = make_home(dir.path(), &g, |c| {
        c.api.tls_cert = Some(dir.path().join("api.crt"));
    });
    let err = run::start(&Home::load(&home).unwrap()).await.err().unwrap();
    assert!(err.to_string().contains("tls_cert and tls_key"), "{err}");
}
