//! Where import files go: Amazon S3 deployed (a presigned PUT straight from the client,
//! never through API Gateway or a Lambda payload), or, locally, a directory behind the dev
//! server's stand-in for a presigned URL, which checks what S3 checks: a signature over the
//! method, the key and the expiry, and one upload per URL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("S3 request failed: {0}")]
    S3(String),
    #[error("local object store: {0}")]
    Io(#[from] std::io::Error),
}

/// A URL a client uploads one file to, and the headers it must send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// An object as the importer reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    Bytes(Vec<u8>),
    /// Larger than the reader's limit: not read.
    TooLarge(u64),
    Missing,
}

#[derive(Clone)]
pub enum Objects {
    S3(S3Objects),
    Local(Arc<LocalObjects>),
}

impl Objects {
    /// The deployed bucket (`UPLOAD_BUCKET`), if this function has one.
    pub fn from_env() -> Option<Objects> {
        let bucket = bookshelf_config::settings()
            .ok()?
            .deployed
            .upload_bucket
            .clone()?;
        Some(Objects::S3(S3Objects::new(
            aws_sdk_s3::Client::from_conf(S3Objects::config(bookshelf_config::aws()).build()),
            bucket,
        )))
    }

    /// A presigned URL that accepts one PUT of `key` until `expires_in` has passed.
    pub async fn upload_url(&self, key: &str, expires_in: Duration) -> Result<Upload, ObjectError> {
        match self {
            Objects::S3(s3) => s3.upload_url(key, expires_in).await,
            Objects::Local(local) => Ok(local.upload_url(key, expires_in)),
        }
    }

    /// The object's bytes, unless it is larger than `max` bytes.
    pub async fn get(&self, key: &str, max: u64) -> Result<Fetched, ObjectError> {
        match self {
            Objects::S3(s3) => s3.get(key, max).await,
            Objects::Local(local) => local.get(key, max).await,
        }
    }

    /// Removes the object (an import is done with its file); a missing one is no error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match self {
            Objects::S3(s3) => s3.delete(key).await,
            Objects::Local(local) => local.delete(key).await,
        }
    }

    pub fn local(&self) -> Option<&Arc<LocalObjects>> {
        match self {
            Objects::Local(l) => Some(l),
            Objects::S3(_) => None,
        }
    }
}

/// A bucket through the S3 API (AWS, or moto in the tests).
#[derive(Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn s3_error<E: std::error::Error + Send + Sync + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> ObjectError {
    ObjectError::S3(format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

impl S3Objects {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> S3Objects {
        S3Objects { client, bucket }
    }

    /// The client's settings: checksums only where S3 requires them (a presigned PUT that
    /// demanded one would refuse a plain `curl -T`), and path-style addressing toward a
    /// local endpoint (moto), which has no per-bucket host names.
    pub fn config(sdk: &aws_types::SdkConfig) -> aws_sdk_s3::config::Builder {
        let local = bookshelf_config::settings()
            .ok()
            .and_then(|s| s.local.aws_endpoint_url.clone());
        aws_sdk_s3::config::Builder::from(sdk)
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .force_path_style(local.is_some())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn upload_url(&self, key: &str, expires_in: Duration) -> Result<Upload, ObjectError> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| ObjectError::S3(e.to_string()))?;
        // `If-None-Match: *` is signed in: S3 refuses a second PUT to the key (412), so the
        // URL accepts one upload.
        let signed = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .presigned(presigning)
            .await
            .map_err(s3_error)?;
        let headers = signed
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Upload {
            url: signed.uri().to_string(),
            headers,
            expires_at: Utc::now() + expires_in,
        })
    }

    async fn get(&self, key: &str, max: u64) -> Result<Fetched, ObjectError> {
        let got = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(Fetched::Missing)
            }
            Err(e) => return Err(s3_error(e)),
        };
        let size = got.content_length().unwrap_or(0).max(0) as u64;
        if size > max {
            return Ok(Fetched::TooLarge(size));
        }
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|e| ObjectError::S3(e.to_string()))?
            .into_bytes();
        if bytes.len() as u64 > max {
            return Ok(Fetched::TooLarge(bytes.len() as u64));
        }
        Ok(Fetched::Bytes(bytes.to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }
}

/// Objects as files in a directory, uploaded through the dev server's stand-in URL.
pub struct LocalObjects {
    dir: PathBuf,
    /// Signs this process's URLs; a restart makes older URLs invalid, as an expiry would.
    key: ring::hmac::Key,
    /// The dev server's address (known once it listens).
    base: RwLock<String>,
}

/// Where the stand-in for presigned URLs listens on the dev server.
pub const LOCAL_UPLOAD_PATH: &str = "/_uploads/";

/// Why the stand-in refused an upload (all answer 403, as S3 does for a bad signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    BadSignature,
    Expired,
    AlreadyUploaded,
}

impl LocalObjects {
    pub fn new(dir: PathBuf) -> std::io::Result<LocalObjects> {
        std::fs::create_dir_all(&dir)?;
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| std::io::Error::other("no randomness for the upload signing key"))?;
        Ok(LocalObjects {
            dir,
            key,
            base: RwLock::new("http://127.0.0.1:3000".into()),
        })
    }

    /// The dev server's own URL, which upload URLs start with.
    pub fn set_base(&self, base: &str) {
        *self
            .base
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = base.trim_end_matches('/').into();
    }

    fn signature(&self, method: &str, key: &str, expires: i64) -> String {
        use base64::Engine;
        let tag = ring::hmac::sign(&self.key, format!("{method}\n{key}\n{expires}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn upload_url(&self, key: &str, expires_in: Duration) -> Upload {
        let expires_at = Utc::now() + expires_in;
        let expires = expires_at.timestamp();
        let base = self
            .base
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let path: String = percent_encoding::utf8_percent_encode(key, KEY).to_string();
        Upload {
            url: format!(
                "{base}{LOCAL_UPLOAD_PATH}{path}?expires={expires}&signature={}",
                self.signature("PUT", key, expires)
            ),
            headers: BTreeMap::from([("If-None-Match".to_string(), "*".to_string())]),
            expires_at,
        }
    }

    /// Checks a stand-in URL's signature and expiry for `method` on `key`.
    pub fn check(
        &self,
        method: &str,
        key: &str,
        expires: &str,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refused> {
        let expires: i64 = expires.parse().map_err(|_| Refused::BadSignature)?;
        use base64::Engine;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refused::BadSignature)?;
        // ring compares in constant time.
        ring::hmac::verify(&self.key, format!("{method}\n{key}\n{expires}").as_bytes(), &tag)
            .map_err(|_| Refused::BadSignature)?;
        if now.timestamp() > expires {
            return Err(Refused::Expired);
        }
        Ok(())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        // Keys are ours (`imports/<uuid>.csv`); anything that could leave the directory is not.
        let safe = key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
        safe.then(|| self.dir.join(key))
    }

    /// Stores an upload of `key`, at most once: a second upload to the same key is
    /// refused, whatever it carries. Writes at most `max + 1` bytes, so an oversized
    /// upload is kept only far enough for the reader to see it is too large.
    pub async fn put(&self, key: &str, bytes: &[u8], max: u64) -> Result<Result<(), Refused>, ObjectError> {
        use tokio::io::AsyncWriteExt;
        let Some(path) = self.path(key) else {
            return Ok(Err(Refused::BadSignature));
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Err(Refused::AlreadyUploaded))
            }
            Err(e) => return Err(e.into()),
        };
        let keep = bytes
            .len()
            .min(usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX));
        file.write_all(&bytes[..keep]).await?;
        file.sync_all().await?;
        Ok(Ok(()))
    }

    async fn get(&self, key: &str, max: u64) -> Result<Fetched, ObjectError> {
        let Some(path) = self.path(key) else {
            return Ok(Fetched::Missing);
        };
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.len() > max => Ok(Fetched::TooLarge(m.len())),
            Ok(_) => Ok(Fetched::Bytes(tokio::fs::read(&path).await?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Fetched::Missing),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let Some(path) = self.path(key) else {
            return Ok(());
        };
        // The key stays taken (one upload per URL): the file is emptied, not removed.
        match tokio::fs::write(&path, b"").await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a key's characters become in a URL path: everything but unreserved characters and `/`.
const KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The key of an import's file.
pub fn import_key(id: impl std::fmt::Display) -> String {
    format!("imports/{id}.csv")
}

/// The import an object key names, if it is one of ours.
pub fn import_of_key(key: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .ok()?
        .into_owned();
    decoded
        .strip_prefix("imports/")?
        .strip_suffix(".csv")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> LocalObjects {
        let dir = std::env::temp_dir().join(format!("bookshelf-objects-{}", uuid::Uuid::new_v4()));
        LocalObjects::new(dir).unwrap()
    }

    fn query(url: &str) -> (String, String) {
        let q = url.split_once('?').unwrap().1;
        let mut e = String::new();
        let mut s = String::new();
        for pair in q.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => e = v.into(),
                ("signature", v) => s = v.into(),
                _ => {}
            }
        }
        (e, s)
    }

    #[test]
    fn a_stand_in_url_holds_for_its_method_key_and_expiry_only() {
        let s = store();
        s.set_base("http://127.0.0.1:9");
        let up = s.upload_url("imports/a.csv", Duration::from_secs(60));
        assert!(up.url.starts_with("http://127.0.0.1:9/_uploads/imports/a.csv?"));
        let (expires, sig) = query(&up.url);
        let now = Utc::now();
        assert_eq!(s.check("PUT", "imports/a.csv", &expires, &sig, now), Ok(()));
        assert_eq!(
            s.check("PUT", "imports/b.csv", &expires, &sig, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            s.check("GET", "imports/a.csv", &expires, &sig, now),
            Err(Refused::BadSignature)
        );
        let later: i64 = expires.parse::<i64>().unwrap() + 3600;
        assert_eq!(
            s.check("PUT", "imports/a.csv", &later.to_string(), &sig, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            s.check(
                "PUT",
                "imports/a.csv",
                &expires,
                &sig,
                now + chrono::Duration::seconds(61)
            ),
            Err(Refused::Expired)
        );
        // Another process's key signs differently.
        assert_eq!(
            store().check("PUT", "imports/a.csv", &expires, &sig, now),
            Err(Refused::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_key_takes_one_upload_and_reads_stop_at_the_limit() {
        let s = Objects::Local(Arc::new(store()));
        let local = s.local().unwrap();
        assert_eq!(local.put("imports/x.csv", b"hello", 10).await.unwrap(), Ok(()));
        assert_eq!(
            local.put("imports/x.csv", b"again", 10).await.unwrap(),
            Err(Refused::AlreadyUploaded)
        );
        assert_eq!(
            s.get("imports/x.csv", 10).await.unwrap(),
            Fetched::Bytes(b"hello".to_vec())
        );
        assert_eq!(s.get("imports/x.csv", 4).await.unwrap(), Fetched::TooLarge(5));
        assert_eq!(s.get("imports/none.csv", 4).await.unwrap(), Fetched::Missing);
        assert_eq!(
            local.put("../escape.csv", b"x", 10).await.unwrap(),
            Err(Refused::BadSignature)
        );
        // Oversized: kept only up to one byte past the limit.
        local
            .put("imports/big.csv", &[b'a'; 100], 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.get("imports/big.csv", 10).await.unwrap(), Fetched::TooLarge(11));
    }

    #[test]
    fn import_keys_round_trip_through_notifications() {
        let id = "0b0e3f7e-8d5e-4f59-9a52-6b1d1d6f0a11";
        assert_eq!(import_of_key(&import_key(id)).as_deref(), Some(id));
        assert_eq!(import_of_key("imports%2F0b0e.csv").as_deref(), Some("0b0e"));
        assert_eq!(import_of_key("exports/x.csv"), None);
    }
}
