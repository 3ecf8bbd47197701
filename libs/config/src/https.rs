//! The AWS SDK clients' HTTP client: HTTP/1.1 over hyper, TLS by rustls with ring and the
//! webpki root store — the TLS stack and roots sqlx already links for RDS Proxy.
//!
//! Why not `aws-smithy-http-client`: its client always links HTTP/2 (hyper's and the `h2`
//! crate; sizes in scripts/bench-notes.md), a proxy matcher and the platform's certificate loader. The SQS
//! and Secrets Manager APIs need nothing beyond HTTP/1.1, and a Lambda function reaches them
//! without a proxy, so every SDK-using binary carried those for nothing. This adapter is the
//! hyper-util client that crate builds on, without them.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector as TcpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

type Hyper = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// The client every SDK client here is built with (`bookshelf_config::aws`).
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(Https::default())
}

/// One pooled hyper client per connect timeout: the SDK asks for a connector on every
/// request attempt, and a fresh hyper client each time would lose the kept-alive connection
/// (a TLS handshake per request).
#[derive(Debug, Default)]
struct Https {
    clients: Mutex<HashMap<Option<Duration>, Hyper>>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connect_timeout = settings.connect_timeout();
        let client = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(connect_timeout)
            .or_insert_with(|| hyper(connect_timeout))
            .clone();
        SharedHttpConnector::new(Connector {
            client,
            read_timeout: settings.read_timeout(),
        })
    }
}

fn hyper(connect_timeout: Option<Duration>) -> Hyper {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        // http:// only for a local SQS-compatible server (AWS_ENDPOINT_URL_SQS); AWS's
        // endpoints are https.
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(https)
}

#[derive(Debug)]
struct Connector {
    client: Hyper,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Which failures the SDK's retry strategy may retry: as aws-smithy-http-client classifies
/// hyper's errors (connect and I/O failures, a connection closed under a request, a
/// truncated response), less its HTTP/2 cases.
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let hyper = source::<hyper::Error>(&e);
    if let Some(h) = hyper {
        if h.is_timeout() {
            return ConnectorError::timeout(e.into());
        }
        if h.is_user() {
            return ConnectorError::user(e.into());
        }
        if h.is_incomplete_message() {
            return ConnectorError::other(e.into(), Some(ErrorKind::TransientError));
        }
    }
    let io = hyper.is_some_and(|h| h.is_closed() || h.is_canceled())
        || e.is_connect()
        || source::<std::io::Error>(&e).is_some();
    if io {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

fn source<'a, E: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Reads one HTTP/1.1 request (head and `content-length` body) off the connection.
    async fn read_request(conn: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.expect("reading the request");
            assert!(n > 0, "the client closed before sending a whole request");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .map_or(0, |v| v.parse::<usize>().expect("a content-length"));
                if seen.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    }

    /// A kept-alive connection the server drops under a request is what an idle timeout on
    /// the service's side looks like: the SDK must see a retryable failure and try again on
    /// a new connection, not give up (which it does for an unclassified connector error).
    #[tokio::test]
    async fn a_connection_closed_under_a_request_is_retried_on_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        let served = connections.clone();
        let server = tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.expect("a connection");
                let request = read_request(&mut conn).await;
                if served.fetch_add(1, Ordering::SeqCst) == 0 {
                    drop(conn); // the first: closed without an answer
                    continue;
                }
                assert!(request.contains("secretsmanager.GetSecretValue"), "{request}");
                let body = r#"{"ARN":"arn:aws:secretsmanager:eu-west-1:1:secret:k","Name":"k","SecretString":"s3cret"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).await.expect("writing");
                conn.write_all(body.as_bytes()).await.expect("writing");
            }
        });

        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .retry_config(RetryConfig::standard().with_initial_backoff(std::time::Duration::from_millis(5)))
            .http_client(super::client())
            .build();
        let out = aws_sdk_secretsmanager::Client::from_conf(config)
            .get_secret_value()
            .secret_id("k")
            .send()
            .await
            .expect("the retry succeeds");
        assert_eq!(out.secret_string(), Some("s3cret"));
        assert_eq!(connections.load(Ordering::SeqCst), 2, "one dropped, one answered");
        server.abort();
    }

    /// TLS is on and verified against the webpki roots: a server whose certificate no
    /// public root signed is refused, and the failure is not a response.
    #[tokio::test]
    async fn an_untrusted_certificate_is_refused() {
        let Some(server) = SelfSigned::start() else {
            eprintln!("SKIP: no openssl command to serve a self-signed certificate");
            return;
        };
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
            .endpoint_url(format!("https://localhost:{}", server.port))
            .retry_config(RetryConfig::disabled())
            .http_client(super::client())
            .build();
        let err = aws_sdk_secretsmanager::Client::from_conf(config)
            .get_secret_value()
            .secret_id("k")
            .send()
            .await
            .expect_err("an untrusted certificate");
        let chain = format!("{:?}", aws_sdk_secretsmanager::error::DisplayErrorContext(&err));
        assert!(chain.contains("InvalidCertificate(UnknownIssuer)"), "{chain}");
    }

    /// `openssl s_server` with a fresh self-signed certificate for `localhost`.
    struct SelfSigned {
        child: std::process::Child,
        port: u16,
        dir: std::path::PathBuf,
    }

    impl SelfSigned {
        fn start() -> Option<Self> {
            use std::process::{Command, Stdio};
            let dir = std::env::temp_dir().join(format!("bookshelf-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let made = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=localhost",
                ])
                .args([
                    "-addext",
                    "subjectAltName=DNS:localhost",
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()?;
            if !made.success() {
                return None;
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let child = Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "openssl s_server did not start"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Some(SelfSigned { child, port, dir })
        }
    }

    impl Drop for SelfSigned {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
