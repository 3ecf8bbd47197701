//! Every way a bearer token can be wrong ends in the gateway's 401.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bookshelf_auth::{Claims, SigningKeys, TokenIssuer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{token, TestApp};

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWT made by hand, as an attacker would: any header, any claims, any signature.
fn jwt(header: Value, claims: &Claims, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(&header), b64(&serde_json::to_value(claims).unwrap()));
    let signature = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

fn hs256(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        ring::hmac::sign(&key, input).as_ref().to_vec()
    }
}

fn ed25519(pkcs8: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).unwrap();
        pair.sign(input).as_ref().to_vec()
    }
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let app = TestApp::start().await;
    let auth = app.register("mallory@example.org", "password123").await;
    let good = token(&auth);
    assert_eq!(app.get("/users/me", Some(&good)).await.status, StatusCode::OK);
    let claims = claims_of(&good);
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().unwrap().to_string();

    let mut attacks: Vec<(&str, String)> = Vec::new();

    // alg: none, no signature.
    attacks.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            parts[1]
        ),
    ));
    // HS256 "signed" with the public key from the JWK Set.
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let hs = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let raw_x = URL_SAFE_NO_PAD.decode(x).unwrap();
    attacks.push(("HS256 with public key", jwt(hs.clone(), &claims, hs256(&raw_x))));
    attacks.push((
        "HS256 with public key text",
        jwt(hs, &claims, hs256(x.as_bytes())),
    ));
    // A key we never published.
    let stranger = SigningKeys::generate();
    attacks.push(("unknown kid", TokenIssuer::new(&stranger).sign(&claims).unwrap()));
    // Our kid, someone else's key.
    let stranger_der = {
        let json: Value = serde_json::from_str(&stranger.to_json()).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(json["keys"][0]["privateKeyPkcs8"].as_str().unwrap())
            .unwrap()
    };
    attacks.push((
        "bad signature",
        jwt(
            json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
            &claims,
            ed25519(&stranger_der),
        ),
    ));
    // No kid at all.
    attacks.push((
        "no kid",
        jwt(
            json!({"alg": "EdDSA", "typ": "JWT"}),
            &claims,
            ed25519(&stranger_der),
        ),
    ));
    // Tampered payload: role admin, original signature.
    let mut forged = serde_json::to_value(&claims).unwrap();
    forged["role"] = json!("admin");
    attacks.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], b64(&forged), parts[2]),
    ));
    // Correctly signed but expired, wrong issuer, wrong audience.
    let issuer = TokenIssuer::new(&app.keys);
    let now = chrono::Utc::now().timestamp();
    let mut c = claims.clone();
    c.iat = now - 1000;
    c.exp = now - 100;
    attacks.push(("expired", issuer.sign(&c).unwrap()));
    let mut c = claims.clone();
    c.iss = "someone-else".into();
    attacks.push(("wrong iss", issuer.sign(&c).unwrap()));
    let mut c = claims.clone();
    c.aud = "other-api".into();
    attacks.push(("wrong aud", issuer.sign(&c).unwrap()));
    // Correctly signed for a session that does not exist.
    let mut c = claims.clone();
    c.sid = uuid::Uuid::new_v4();
    attacks.push(("unknown session", issuer.sign(&c).unwrap()));
    attacks.push(("garbage", "not.a.jwt".into()));

    for (name, bad) in &attacks {
        let r = app.get("/users/me", Some(bad)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.body);
        r.problem(401);
    }

    // Malformed Authorization headers.
    for value in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", &good] {
        let r = app
            .client
            .get(format!("{}/users/me", app.url))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "Authorization: {value:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }

    // A role claim is not trusted: a token claiming admin (properly signed) still gets the
    // database's role.
    let mut c = claims.clone();
    c.role = "admin".into();
    let r = app.get("/users", Some(&issuer.sign(&c).unwrap())).await;
    r.problem(403);
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let app = TestApp::start().await;
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert_eq!(k["kid"], app.keys.active_kid());
    assert!(k.get("d").is_none(), "no private part");
    // The kid of an issued token is in the set.
    let auth = app.register("kid@example.org", "password123").await;
    let header = token(&auth).split('.').next().unwrap().to_string();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], k["kid"]);
}

/// Through the gateway: a rotation between two sign-ins keeps the first token working,
/// the JWK Set publishes both keys, and a key retired at once stops its tokens.
#[tokio::test]
async fn a_key_rotation_keeps_every_token_working_until_its_key_retires() {
    let dir = std::env::temp_dir().join(format!("rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.json");
    let ring = bookshelf_api::keyring::KeyRing::from_file(path.clone())
        .unwrap()
        .reading_every(std::time::Duration::ZERO);
    let app = TestApp::start_custom(None, |s| s.with_key_ring(ring)).await;
    let first = token(&app.register("rotor@example.org", "password123").await);
    let old = SigningKeys::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();

    let now = chrono::Utc::now().timestamp();
    let rotated = old.rotated(now, bookshelf_auth::keys::ROTATION_OVERLAP_SECS);
    bookshelf_config::replace_signing_keys_file(&path, &rotated).unwrap();
    let second = token(&app.login("rotor@example.org", "password123").await);
    let kid = |t: &str| claims_header(t)["kid"].as_str().unwrap().to_string();
    assert_eq!(kid(&first), old.active_kid());
    assert_eq!(kid(&second), rotated.active_kid());
    for t in [&first, &second] {
        assert_eq!(app.get("/users/me", Some(t)).await.status, StatusCode::OK);
    }
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [rotated.active_kid(), old.active_kid()]);

    // The second key leaks: rotated out at once. Its token fails; the first key's lives on.
    let emergency = rotated.rotated(now, 0);
    bookshelf_config::replace_signing_keys_file(&path, &emergency).unwrap();
    app.get("/users/me", Some(&second)).await.problem(401);
    assert_eq!(app.get("/users/me", Some(&first)).await.status, StatusCode::OK);
    let third = token(&app.login("rotor@example.org", "password123").await);
    assert_eq!(kid(&third), emergency.active_kid());
    assert_eq!(app.get("/users/me", Some(&third)).await.status, StatusCode::OK);
    std::fs::remove_dir_all(dir).unwrap();
}

fn claims_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}
