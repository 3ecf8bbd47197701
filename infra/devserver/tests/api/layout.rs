//! The gateway itself, and that what is kept by hand — template.yaml, the handler registry,
//! events/ — describes one set of functions, and what is generated from them is current.

use std::collections::{BTreeMap, BTreeSet};

use bookshelf_api::HTTP_FUNCTIONS;
use bookshelf_devserver::Template;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{repo_root, TestApp};

fn template() -> Template {
    Template::load(&repo_root().join("template.yaml")).unwrap()
}

#[test]
fn template_registry_crates_and_events_agree() {
    let t = template();
    let routed: BTreeSet<String> = t.routes.iter().map(|r| r.function.clone()).collect();
    let registered: BTreeSet<String> = HTTP_FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(routed, registered, "template routes vs. handlers in the registry");

    let all: BTreeSet<String> = t.functions.iter().cloned().collect();
    assert_eq!(all.len(), t.functions.len(), "each binary once in template.yaml");
    assert!(all.contains(&t.authorizer.as_ref().unwrap().function));
    assert!(routed.is_subset(&all));
    let binaries: BTreeSet<String> = bookshelf_api::lambda::binary_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        all, binaries,
        "functions in template.yaml vs. the registry's binaries"
    );

    for f in &all {
        let dir = repo_root().join("events").join(f);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("events/{f}/ is missing"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert!(!files.is_empty(), "events/{f}/ has no sample event");
    }

    // Every sample event has its exact expected outcome (events/expected.json), and
    // every expectation names an event that exists.
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("events/expected.json")).unwrap())
            .unwrap();
    let mut events = BTreeSet::new();
    for f in &all {
        for e in std::fs::read_dir(repo_root().join("events").join(f)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                events.insert(format!("{f}/{name}"));
            }
        }
    }
    let listed: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(events, listed, "events/*/*.json vs. events/expected.json");

    // One route per method and path.
    let mut seen = BTreeSet::new();
    for r in &t.routes {
        assert!(
            seen.insert((r.method.to_string(), r.path.clone())),
            "duplicate route {} {}",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_404() {
    let app = TestApp::start().await;
    for (m, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/"),
        (Method::DELETE, "/auth/login"),
        (Method::GET, "/auth/register"),
        (Method::POST, "/users/me"),
    ] {
        let r = app.send(m.clone(), path, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}");
        r.problem(404);
    }
}

/// The documentation page and its two assets come from the API itself, by relative URLs
/// (so a stage prefix deployed changes nothing), and the page names no other host.
#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_by_the_api() {
    let app = TestApp::start().await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let html = page.body.as_str().unwrap();
    for reference in [
        r#"href="docs/swagger-ui.css""#,
        r#"src="docs/swagger-ui-bundle.js""#,
        r#"url: "openapi.json""#,
        "validatorUrl: null",
    ] {
        assert!(html.contains(reference), "the page lacks {reference}");
    }
    assert!(
        !html.contains("//"),
        "the page names no host, not even by a protocol-relative URL"
    );
    for (asset, kind, start) in [
        ("swagger-ui.css", "text/css", ".swagger-ui"),
        ("swagger-ui-bundle.js", "text/javascript", "/*!"),
    ] {
        let r = app.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert!(r.header("content-type").unwrap().starts_with(kind), "{asset}");
        let text = r.body.as_str().unwrap();
        assert!(
            text.len() > 100_000 && text.starts_with(start),
            "{asset}: {}",
            &text[..40]
        );
    }
    app.get("/docs/index.html", None).await.problem(404);
    app.get("/docs/..%2Fopenapi.json", None).await.problem(404);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let app = TestApp::start().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for route in template().routes {
        let op = &r.body["paths"][&route.path][route.method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from openapi.json",
            route.method,
            route.path
        );
        let secured = op.get("security").is_some();
        assert_eq!(
            secured, route.authorized,
            "{} {}: security vs. authorizer",
            route.method, route.path
        );
        // What the gateway and the wrapper can answer on any route is documented on each.
        let responses = op["responses"].as_object().unwrap();
        let mut expected = vec!["400", "429"];
        if secured {
            expected.push("401");
        }
        if op.get("requestBody").is_some() {
            expected.push("413");
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{} {} does not document {status}",
                route.method,
                route.path
            );
        }
    }
    let unauthorized = &r.body["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert!(unauthorized["content"]["application/problem+json"].is_object());
}

/// The release profile keeps the request path at opt-level 3 by naming its crates; a name
/// that matches no package (renamed, or dropped from the graph) silently puts that code back
/// at "z", and cargo only warns.
#[test]
fn the_hot_path_opt_levels_name_packages_in_the_graph() {
    let read = |f: &str| -> toml::Value {
        std::fs::read_to_string(repo_root().join(f))
            .unwrap()
            .parse()
            .unwrap()
    };
    let manifest = read("Cargo.toml");
    let lock = read("Cargo.lock");
    let locked: BTreeSet<&str> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let named = manifest["profile"]["release"]["package"].as_table().unwrap();
    assert!(named.len() > 10, "the request path's crates are listed");
    let unknown: Vec<&String> = named.keys().filter(|n| !locked.contains(n.as_str())).collect();
    assert!(unknown.is_empty(), "not in Cargo.lock: {unknown:?}");
    // The benchmarked dev server builds with a profile of its own, at 3 throughout.
    let server = &manifest["profile"]["server"];
    assert_eq!(
        (server["inherits"].as_str(), server["opt-level"].as_integer()),
        (Some("release"), Some(3))
    );
}

/// `functions/Cargo.toml`, `functions/bin/` and the watch routes are generated from
/// template.yaml (`make functions`); none is ever edited by hand.
#[test]
fn what_is_generated_from_the_template_is_current() {
    let root = repo_root();
    for (path, current, wanted) in bookshelf_devserver::manifest::generated(&root).unwrap() {
        assert!(current == wanted, "{path} is out of date: run `make functions`");
    }
    let stray = bookshelf_devserver::manifest::stray_binaries(&root).unwrap();
    assert!(stray.is_empty(), "{stray:?}: run `make functions`");
}

#[tokio::test]
async fn a_saturated_pool_sheds_load_with_503_not_a_hang() {
    let app = crate::harness::TestApp::start_custom(None, |s| {
        let options = s.db().unwrap().connect_options();
        s.with_db(bookshelf_storage::DbPool::with_timeout(
            options,
            1,
            std::time::Duration::from_millis(300),
        ))
    })
    .await;
    let auth = app.register("busy@example.org", "password123").await;
    let token = auth["accessToken"].as_str().unwrap().to_string();

    let held = app.state.db().unwrap().acquire().await.unwrap();
    let started = std::time::Instant::now();
    // A handler's own query, and the authorizer's session check, both give up quickly.
    let login = app
        .post(
            "/auth/login",
            None,
            serde_json::json!({"email": "busy@example.org", "password": "password123"}),
        )
        .await;
    login.problem(503);
    assert_eq!(login.header("retry-after"), Some("1"));
    let me = app.get("/users/me", Some(&token)).await;
    me.problem(503);
    assert_eq!(me.header("retry-after"), Some("1"));
    // What API Gateway does with a Lambda authorizer that fails (not one that refuses).
    assert_eq!(
        me.header("x-amzn-errortype"),
        Some("AUTHORIZER_CONFIGURATION_ERROR")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered, did not hang"
    );

    drop(held);
    assert_eq!(app.get("/users/me", Some(&token)).await.status, StatusCode::OK);
}

/// The registry says who may call each function; the template's routes must agree, or a
/// route would skip the authorizer that its handler counts on (or the other way round).
#[test]
fn public_functions_are_exactly_the_routes_without_the_authorizer() {
    for r in &template().routes {
        let f = bookshelf_api::registry::http_handler(&r.function).unwrap();
        assert_eq!(
            f.access == bookshelf_api::registry::Access::Public,
            !r.authorized,
            "{} {} ({}): registry says {:?}",
            r.method,
            r.path,
            r.function,
            f.access
        );
    }
}

/// Configuration has one reader (`libs/config/src/env.rs`), so every variable is trimmed,
/// typed and listed in the README.
#[test]
fn the_environment_is_read_in_one_place() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && name != "tests" && name != "target" {
                sources(&path, out);
            } else if name.ends_with(".rs") && name != "build.rs" {
                // A build script reads cargo's variables (OUT_DIR), never a deployment's.
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for top in ["libs", "functions", "infra"] {
        sources(&repo_root().join(top), &mut files);
    }
    let readers: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("env::var"))
        .map(|f| f.strip_prefix(repo_root()).unwrap().display().to_string())
        .collect();
    assert_eq!(readers, ["libs/config/src/env.rs"]);
}

/// A function the template gives a queue URL announces on it (registry: `Sends`, served by
/// `run_http_sending`); one given a key secret gets keys (`run_http_with_keys`); one given
/// the upload bucket presigns (`Uploads`, `run_http_uploading`); every other HTTP binary
/// links neither an SQS, a Secrets Manager nor an S3 client. Read from the text: a
/// resource's block runs from its two-space-indented name to the next one.
#[test]
fn only_the_binaries_with_a_queue_url_or_a_key_secret_link_those_clients() {
    use bookshelf_api::lambda::{binary, Binary};
    use bookshelf_api::registry::{KeyAccess, Storage};
    let yaml = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    // Binary → the names of the environment variables its function is given.
    let mut env: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut name = None::<String>;
    let is_resource = |l: &str| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':');
    for line in yaml.lines() {
        if is_resource(line) {
            name = None;
        } else if let Some(b) = line.trim().strip_prefix("Binary: ") {
            name = Some(b.to_string());
            env.entry(b.to_string()).or_default();
        } else if let (Some(b), Some("RESPONSE_STREAM")) =
            (&name, line.trim().strip_prefix("ResponseTransferMode: "))
        {
            env.get_mut(b).unwrap().insert("(streams)".to_string());
        } else if let (Some(b), Some((var, _))) = (&name, line.trim().split_once(": ")) {
            if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                env.get_mut(b).unwrap().insert(var.to_string());
            }
        }
    }
    let has = |f: &str, names: &[&str]| names.iter().any(|n| env[f].contains(*n));
    assert!(
        has("orders-create", &["QUEUE_URL"]) && has("auth-login", &["SIGNING_KEYS_SECRET_ARN"]),
        "{env:?}"
    );
    for f in HTTP_FUNCTIONS {
        let sends = has(f.name, &["QUEUE_URL", "ACTIVITY_QUEUE_URL"]);
        let keys = has(f.name, &["SIGNING_KEYS_SECRET_ARN", "PUBLIC_KEYS_SECRET_ARN"]);
        assert_eq!(
            f.storage == Storage::Sends,
            sends,
            "{}: Sends exactly when the template gives a queue URL",
            f.name
        );
        assert_eq!(
            f.keys != KeyAccess::None,
            keys,
            "{}: keys exactly when the template gives a key secret",
            f.name
        );
        assert_eq!(
            f.storage == Storage::Streams,
            has(f.name, &["(streams)"]),
            "{}: Streams exactly when its route streams (ResponseTransferMode)",
            f.name
        );
        assert_eq!(
            matches!(f.handler, bookshelf_api::registry::Handler::Streaming(_)),
            f.storage == Storage::Streams,
            "{}",
            f.name
        );
        let uploads = has(f.name, &["UPLOAD_BUCKET"]);
        assert_eq!(
            f.storage == Storage::Uploads,
            uploads,
            "{}: Uploads exactly when the template gives the upload bucket",
            f.name
        );
        let seals = has(f.name, &["WEBHOOK_KEY_SECRET_ARN"]);
        assert_eq!(
            f.storage == Storage::Seals,
            seals,
            "{}: Seals exactly when the template gives the webhook key's secret",
            f.name
        );
        let served = match binary(f.name) {
            Binary::Http(_) => (false, false, false, false),
            Binary::HttpSending(_) => (true, false, false, false),
            Binary::HttpWithKeys(_) => (false, true, false, false),
            Binary::HttpUploading(_) => (false, false, true, false),
            Binary::HttpSealing(_) => (false, false, false, true),
            _ => panic!("{} is an HTTP function", f.name),
        };
        assert_eq!(
            served,
            (sends, keys, uploads, seals),
            "{}: the binary's wiring",
            f.name
        );
    }
}

/// PostgreSQL text cannot hold U+0000; such input is a 400 naming the field on every route
/// that would store or search it, never a 500 from the database. Fields a body does not
/// define are ignored, NUL or not.
#[tokio::test]
async fn nul_characters_are_400_naming_the_field_everywhere() {
    let app = TestApp::start().await;
    let crate::harness::Scene {
        admin,
        reader: user,
        book,
    } = app.scene("nul@example.org", json!({})).await;
    let nul = "a\u{0}b";
    // (method, path, token, body, the fields the 400 must name)
    type Case<'a> = (Method, String, Option<&'a str>, Value, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/auth/register".into(),
            None,
            json!({"email": "n2@example.org", "password": "password123", "displayName": nul}),
            vec!["displayName"],
        ),
        (
            Method::POST,
            "/auth/login".into(),
            None,
            json!({"email": format!("{nul}@example.org"), "password": "x"}),
            vec!["email"],
        ),
        (
            Method::POST,
            "/auth/refresh".into(),
            None,
            json!({"refreshToken": nul}),
            vec!["refreshToken"],
        ),
        (
            Method::PATCH,
            "/users/me".into(),
            Some(&user),
            json!({"bio": nul, "displayName": nul}),
            vec!["bio", "displayName"],
        ),
        (
            Method::POST,
            "/books".into(),
            Some(&admin),
            json!({"title": nul, "authors": ["ok", nul], "tags": [nul], "description": nul, "priceCents": 1, "stock": 1}),
            vec!["authors", "description", "tags", "title"],
        ),
        (
            Method::PATCH,
            format!("/books/{book}"),
            Some(&admin),
            json!({"authors": [nul]}),
            vec!["authors"],
        ),
        (
            Method::POST,
            format!("/books/{book}/inventory"),
            Some(&admin),
            json!({"delta": 1, "reason": nul}),
            vec!["reason"],
        ),
        (
            Method::PUT,
            format!("/library/{book}"),
            Some(&user),
            json!({"status": "read", "review": nul}),
            vec!["review"],
        ),
    ];
    let r = app
        .send(
            Method::PATCH,
            "/users/me",
            Some(&user),
            Some(json!({"bio": "fine", "x\u{0}": nul})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (method, path, token, body, fields) in cases {
        let r = app.send(method.clone(), &path, token, Some(body)).await;
        assert_eq!(r.bad_fields(), fields, "{method} {path}");
    }
    for query in ["q", "author", "tag"] {
        let r = app.get(&format!("/books?{query}=a%00b"), Some(&user)).await;
        assert_eq!(r.bad_fields(), [query], "GET /books?{query}=");
    }
    let r = app
        .get("/library?favorite=true&status=read%00", Some(&user))
        .await;
    assert_eq!(r.bad_fields(), ["status"]);
}

/// CORS as the template configures it: with an allowed origin, the gateway answers every
/// path's preflight without a token, and every response — the handlers', and the gateway's
/// own 401 and 404 — names the origin and varies by it; another origin is named nowhere.
#[tokio::test]
async fn browsers_on_an_allowed_origin_may_call_the_api_and_others_may_not() {
    const APP: &str = "http://app.test:8080";
    let app = TestApp::start_custom(None, |s| s.with_cors(bookshelf_http::Cors::from_list(APP))).await;
    let user = crate::harness::token(&app.register("cors@example.org", "password123").await);
    let call = |method: Method, path: &str, origin: &str, token: Option<&str>| {
        let mut req = app
            .client
            .request(method, format!("{}{path}", app.url))
            .header("origin", origin);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let preflight = call(
        Method::OPTIONS,
        "/books/00000000-0000-0000-0000-000000000000",
        APP,
        None,
    )
    .await
    .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));

    for (path, token, status) in [
        ("/books", Some(user.as_str()), StatusCode::OK),
        ("/books", None, StatusCode::UNAUTHORIZED),
        ("/no/such/route", Some(user.as_str()), StatusCode::NOT_FOUND),
        ("/openapi.json", None, StatusCode::OK),
    ] {
        let r = call(Method::GET, path, APP, token).await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], APP, "{path}");
        assert_eq!(r.headers()["vary"], "Origin", "{path}");
        assert_eq!(
            r.headers()["access-control-expose-headers"],
            "ETag,Location,Retry-After",
            "{path}"
        );

        let other = call(Method::GET, path, "http://evil.test", token).await.unwrap();
        assert_eq!(other.status(), status, "{path}");
        assert!(
            other.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
        assert_eq!(other.headers()["vary"], "Origin", "{path}");
    }
    let denied = call(Method::OPTIONS, "/books", "http://evil.test", None)
        .await
        .unwrap();
    assert!(denied.headers().get("access-control-allow-origin").is_none());
}

/// Without allowed origins (the default) no response carries a CORS header.
#[tokio::test]
async fn without_allowed_origins_no_cors_header_is_sent() {
    let app = TestApp::start_with(None).await;
    let r = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .header("origin", "http://app.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
    assert!(r.headers().get("vary").is_none());
}
