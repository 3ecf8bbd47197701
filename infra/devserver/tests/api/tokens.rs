//! Every way a bearer token can be wrong ends in the gateway's 401.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bookshelf_auth::{Claims, SigningKeys, TokenIssuer};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
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
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.clone());
    attacks.push((
        "HS256 with public key",
        encode(
            &h,
            &claims,
            &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(x).unwrap()),
        )
        .unwrap(),
    ));
    attacks.push((
        "HS256 with public key text",
        encode(&h, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap(),
    ));
    // A key we never published.
    let stranger = SigningKeys::generate();
    attacks.push(("unknown kid", TokenIssuer::new(&stranger).sign(&claims).unwrap()));
    // Our kid, someone else's key.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.clone());
    let stranger_der = {
        let json: Value = serde_json::from_str(&stranger.to_json()).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(json["keys"][0]["privateKeyPkcs8"].as_str().unwrap())
            .unwrap()
    };
    attacks.push((
        "bad signature",
        encode(&h, &claims, &EncodingKey::from_ed_der(&stranger_der)).unwrap(),
    ));
    // No kid at all.
    attacks.push((
        "no kid",
        encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(&stranger_der),
        )
        .unwrap(),
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
