//! The REST API's security, from the outside (negative cases first): tokens (401),
//! roles and scopes (403), revocation at once, cross-site and DNS-rebinding requests,
//! the SSE watch's token or ticket, TLS, the first admin token's file, the slowloris
//! bound, and error answers in the JSON shape.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use workbus_hub::api::server::ServerLimits;
use workbus_hub::api::tls::TlsFiles;
use workbus_hub::cli::client::{CliError, Client, ClientSettings};
use workbus_hub::{ApiSettings, BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};

/// A hub whose broker is never reached (these tests need the API only).
async fn api_hub(dir: &std::path::Path, api: ApiSettings) -> HubHandle {
    Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: unique("sec"),
        // Port 9 (discard): nothing listens; the hub retries in the background.
        broker: BrokerSettings::Address {
            host: "127.0.0.1".into(),
            port: 9,
        },
        api,
        ..HubConfig::new()
    })
    .await
    .expect("hub starts")
}

fn with_admin() -> ApiSettings {
    ApiSettings {
        admin_token: Some(TOKEN.into()),
        ..ApiSettings::default()
    }
}

/// Makes a token through the API; returns its secret.
async fn make_token(hub: &HubHandle, body: Value) -> String {
    let r = http(
        "POST",
        format!("{}/api/v1/tokens", hub.base_url()),
        None,
        Some(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["token"].as_str().expect("the secret").to_string()
}

fn reason(r: &Resp) -> &str {
    r.body["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401_in_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(dir.path(), with_admin()).await;
    let url = format!("{}/api/v1/clusters", hub.base_url());
    for token in [None, Some("wbt_not-a-token"), Some("")] {
        let r = http_as(token, "GET", url.clone(), None, None).await;
        assert_eq!((r.status, reason(&r)), (401, "Unauthorized"), "{token:?}");
        assert_eq!(r.body["code"], 401);
    }
    let r = http_with(
        "GET",
        url.clone(),
        None,
        None,
        vec![("authorization".into(), format!("Basic {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 401);
    // The header names the scheme.
    let raw = raw_request(
        hub.rest_addr(),
        "GET /api/v1/clusters HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{raw}"
    );
    // Health, the OpenAPI document and (from loopback) metrics need no token.
    for public in ["/healthz", "/openapi.json", "/metrics"] {
        let r = http_as(
            None,
            "GET",
            format!("{}{public}", hub.base_url()),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{public}");
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn roles_and_scopes_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(dir.path(), with_admin()).await;
    let base = hub.base_url();
    for c in ["a", "b"] {
        assert_eq!(create_cluster(&hub, c).await.status, 201);
    }
    let reader = make_token(&hub, json!({"name": "viewer", "role": "reader"})).await;
    let writer = make_token(&hub, json!({"name": "ci", "role": "writer"})).await;
    let scoped = make_token(
        &hub,
        json!({"name": "team-a", "role": "writer", "clusters": ["a"]}),
    )
    .await;
    let put = |token: String, cluster: &str| {
        let work = work_json(cluster, "w", "x");
        let url = format!("{base}/api/v1/clusters/{cluster}/works/w");
        async move { http_as(Some(&token), "PUT", url, None, Some(work.to_string())).await }
    };

    // A reader reads, and cannot create works or clusters.
    let r = http_as(
        Some(&reader),
        "GET",
        format!("{base}/api/v1/works"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = put(reader.clone(), "a").await;
    assert_eq!((r.status, reason(&r)), (403, "Forbidden"));
    let r = http_as(
        Some(&reader),
        "POST",
        format!("{base}/api/v1/clusters"),
        None,
        Some(json!({"name": "c"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 403);

    // A writer changes works and cannot manage tokens.
    assert_eq!(put(writer.clone(), "b").await.status, 201);
    for (method, path, body) in [
        ("GET", "/api/v1/tokens", None),
        (
            "POST",
            "/api/v1/tokens",
            Some(json!({"role": "admin"}).to_string()),
        ),
        ("DELETE", "/api/v1/tokens/viewer", None),
    ] {
        let r = http_as(Some(&writer), method, format!("{base}{path}"), None, body).await;
        assert_eq!(r.status, 403, "{method} {path}");
    }

    // A scoped writer touches its own cluster only, and sees only it.
    assert_eq!(put(scoped.clone(), "a").await.status, 201);
    let r = put(scoped.clone(), "b").await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    for path in [
        "/api/v1/clusters/b/works/w",
        "/api/v1/clusters/b",
        "/api/v1/works",
        "/api/v1/works?cluster=b",
        "/api/v1/watch/works?cluster=b",
        "/api/v1/outbox/parked",
    ] {
        let r = http_as(Some(&scoped), "GET", format!("{base}{path}"), None, None).await;
        assert_eq!(r.status, 403, "{path}");
    }
    let r = http_as(
        Some(&scoped),
        "DELETE",
        format!("{base}/api/v1/clusters/b/works/w"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = http_as(
        Some(&scoped),
        "GET",
        format!("{base}/api/v1/clusters"),
        None,
        None,
    )
    .await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    let r = http_as(
        Some(&scoped),
        "GET",
        format!("{base}/api/v1/works?cluster=a"),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    // The listing never shows a secret or digest.
    let r = http("GET", format!("{base}/api/v1/tokens"), None, None).await;
    let text = r.body.to_string();
    assert!(!text.contains(&writer) && !text.contains("hash"), "{text}");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 4);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(dir.path(), with_admin()).await;
    let url = format!("{}/api/v1/clusters", hub.base_url());
    let token = make_token(&hub, json!({"name": "temp", "role": "reader"})).await;
    assert_eq!(
        http_as(Some(&token), "GET", url.clone(), None, None)
            .await
            .status,
        200
    );
    let r = http(
        "DELETE",
        format!("{}/api/v1/tokens/temp", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = http_as(Some(&token), "GET", url.clone(), None, None).await;
    assert_eq!((r.status, reason(&r)), (401, "Unauthorized"));
    // Revoking again: nothing left to revoke.
    let r = http(
        "DELETE",
        format!("{}/api/v1/tokens/temp", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    hub.shutdown().await;
}

#[tokio::test]
async fn cross_site_and_rebinding_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(
        dir.path(),
        ApiSettings {
            allowed_hosts: vec!["hub.example".into()],
            ..with_admin()
        },
    )
    .await;
    let base = hub.base_url();
    // A cross-site HTML form: form-encoded body, the attacker's Origin, no token (a
    // browser cannot add one; cookies are never accepted).
    let form = http_with(
        "POST",
        format!("{base}/api/v1/clusters"),
        Some("application/x-www-form-urlencoded"),
        Some("name=evil".into()),
        vec![("origin".into(), "https://evil.example".into())],
    )
    .await;
    assert_eq!((form.status, reason(&form)), (403, "Forbidden"));
    // Even with a valid token, a cross-site origin is refused...
    let r = http_with(
        "POST",
        format!("{base}/api/v1/clusters"),
        None,
        Some(json!({"name": "evil"}).to_string()),
        vec![
            ("origin".into(), "https://evil.example".into()),
            ("authorization".into(), format!("Bearer {TOKEN}")),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    // ... and so is a body a form could send, or one without a type.
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let r = http(
            "POST",
            format!("{base}/api/v1/clusters"),
            Some(ct),
            Some(json!({"name": "evil"}).to_string()),
        )
        .await;
        assert_eq!(
            (r.status, reason(&r)),
            (415, "UnsupportedMediaType"),
            "{ct:?}"
        );
    }
    // A rebinding page: our address under the attacker's name.
    let raw = raw_request(
        hub.rest_addr(),
        &format!(
            "GET /api/v1/clusters HTTP/1.1\r\nHost: rebind.evil.example:8080\r\n\
             Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    assert!(raw.contains("\"Forbidden\""), "{raw}");
    // A configured name and a same-origin request pass.
    let raw = raw_request(
        hub.rest_addr(),
        &format!(
            "GET /api/v1/clusters HTTP/1.1\r\nHost: hub.example\r\nOrigin: https://hub.example\r\n\
             Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let r = http("GET", format!("{base}/api/v1/clusters"), None, None).await;
    assert_eq!(r.body["items"], json!([]), "nothing was created");
    hub.shutdown().await;
}

#[tokio::test]
async fn the_watch_needs_a_token_or_a_one_use_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(dir.path(), with_admin()).await;
    let base = hub.base_url();
    let watch = format!("{base}/api/v1/watch/works");
    let r = http_as(None, "GET", watch.clone(), None, None).await;
    assert_eq!(r.status, 401);
    let r = http_as(
        None,
        "GET",
        format!("{watch}?ticket=wbt_made-up"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // A ticket (asked for with the token) opens the watch once.
    let t = http(
        "POST",
        format!("{base}/api/v1/watch/tickets"),
        None,
        Some("{}".into()),
    )
    .await;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let ticket = t.body["ticket"].as_str().unwrap().to_string();
    let addr = hub.rest_addr();
    let head = |ticket: String| async move {
        raw_head(
            addr,
            &format!("GET /api/v1/watch/works?ticket={ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        )
        .await
    };
    assert!(head(ticket.clone()).await.starts_with("HTTP/1.1 200"));
    assert!(head(ticket).await.starts_with("HTTP/1.1 401"));
    // A token revoked after its ticket was issued voids the ticket.
    let reader = make_token(&hub, json!({"name": "browser", "role": "reader"})).await;
    let t = http_as(
        Some(&reader),
        "POST",
        format!("{base}/api/v1/watch/tickets"),
        None,
        Some("{}".into()),
    )
    .await;
    let ticket = t.body["ticket"].as_str().unwrap().to_string();
    http(
        "DELETE",
        format!("{base}/api/v1/tokens/browser"),
        None,
        None,
    )
    .await;
    assert!(head(ticket).await.starts_with("HTTP/1.1 401"));
    hub.shutdown().await;
}

#[tokio::test]
async fn the_first_admin_token_is_written_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.token");
    let settings = ApiSettings {
        admin_token_file: Some(file.clone()),
        ..ApiSettings::default()
    };
    let hub = api_hub(dir.path(), settings.clone()).await;
    let secret = hub
        .admin_token()
        .expect("made on the first start")
        .to_string();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let r = http_as(
        Some(&secret),
        "GET",
        format!("{}/api/v1/tokens", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"][0]["role"], "admin");
    hub.shutdown().await;
    // Tokens exist now: a restart makes none.
    let hub = api_hub(dir.path(), settings).await;
    assert_eq!(hub.admin_token(), None);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret);
    hub.shutdown().await;
}

#[tokio::test]
async fn errors_made_by_the_framework_use_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(dir.path(), with_admin()).await;
    let huge = "x".repeat(3 * 1024 * 1024);
    let r = http(
        "PUT",
        format!("{}/api/v1/clusters/a/works/w", hub.base_url()),
        None,
        Some(huge),
    )
    .await;
    assert_eq!(
        (r.status, reason(&r)),
        (413, "RequestEntityTooLarge"),
        "{:?}",
        r.body
    );
    let raw = raw_request(
        hub.rest_addr(),
        &format!(
            "PATCH /api/v1/clusters/a/works/w HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.contains("\"MethodNotAllowed\""), "{raw}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_slowloris_is_closed_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let hub = api_hub(
        dir.path(),
        ApiSettings {
            limits: ServerLimits {
                header_read_timeout: Duration::from_secs(1),
                ..ServerLimits::default()
            },
            ..with_admin()
        },
    )
    .await;
    let addr = hub.rest_addr();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        // One header byte every 100 ms, never finishing the head.
        for b in b"GET /healthz HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain([b'a'; 200].iter())
            .cycle()
        {
            if s.write_all(&[*b]).is_err() {
                return started.elapsed();
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => return started.elapsed(), // the 408 answer, then close
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return started.elapsed(),
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never closed");
        }
        unreachable!()
    });
    // Meanwhile, a normal client is served.
    let r = http(
        "GET",
        format!("{}/api/v1/clusters", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let held = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(5),
        "closed after {held:?}"
    );
    // An idle kept-alive connection is closed by the same timer.
    let idle = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        (n, started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        idle.1 < Duration::from_secs(5),
        "idle connection kept {idle:?}"
    );
    hub.shutdown().await;
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
fn test_pki(dir: &std::path::Path) -> (TlsFiles, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "workbus test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    (files, ca)
}

#[tokio::test]
async fn tls_serves_the_cli_with_the_ca_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = test_pki(dir.path());
    let hub = api_hub(
        &dir.path().join("hub"),
        ApiSettings {
            tls: Some(files),
            ..with_admin()
        },
    )
    .await;
    let base = hub.base_url();
    assert!(base.starts_with("https://"), "{base}");
    let addr = hub.rest_addr();
    let (plain, trusted, untrusted, no_token) = tokio::task::spawn_blocking(move || {
        // Plain HTTP to the TLS port gets no HTTP answer.
        let plain = raw_request_blocking(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
        let settings = ClientSettings {
            server: base.clone(),
            token: Some(TOKEN.into()),
            ca_file: Some(ca),
        };
        let trusted = Client::with_settings(&settings)
            .unwrap()
            .get("/api/v1/clusters")
            .map(|a| a.status);
        let untrusted = Client::new(&base)
            .with_token(Some(TOKEN.into()))
            .get("/api/v1/clusters")
            .map(|a| a.status);
        let no_token = Client::with_settings(&ClientSettings {
            token: None,
            ..settings
        })
        .unwrap()
        .get("/api/v1/clusters")
        .map(|a| a.status);
        (plain, trusted, untrusted, no_token)
    })
    .await
    .unwrap();
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert_eq!(trusted.unwrap(), 200);
    assert!(
        matches!(untrusted, Err(CliError::Transport { .. })),
        "{untrusted:?}"
    );
    assert!(
        matches!(no_token, Err(CliError::Server { code: 401, .. })),
        "{no_token:?}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn plaintext_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir.path()),
        listen: "0.0.0.0:0".parse().unwrap(),
        ..HubConfig::new()
    })
    .await
    .err()
    .expect("refused");
    assert!(e.to_string().contains("refusing plaintext"), "{e}");
}

/// [`raw_request_blocking`] on the blocking pool (the test runtime has one thread,
/// which the hub's tasks need).
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let request = request.to_string();
    tokio::task::spawn_blocking(move || raw_request_blocking(addr, &request))
        .await
        .unwrap()
}

/// [`raw_head_blocking`] on the blocking pool.
async fn raw_head(addr: std::net::SocketAddr, request: &str) -> String {
    let request = request.to_string();
    tokio::task::spawn_blocking(move || raw_head_blocking(addr, &request))
        .await
        .unwrap()
}

/// One raw HTTP/1.1 exchange (the caller sends `Connection: close`): the whole answer.
fn raw_request_blocking(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status line and headers of an answer whose body may never end (the watch).
fn raw_head_blocking(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
