//! Streamed response bodies: a body of any size, produced piece by piece, so the function
//! holds one piece at a time (Lambda response streaming deployed, chunked HTTP locally).

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body::Frame;

/// A body written as it is produced.
pub type Streamed = http_body_util::StreamBody<BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;

/// The body of these pieces, in order; an `Err` ends it early (the client sees a cut-short
/// body: the status is already sent).
pub fn streamed(
    pieces: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Streamed {
    http_body_util::StreamBody::new(pieces.map(|p| p.map(Frame::data)).boxed())
}

/// A buffered response (an error's problem+json) as a streamed one.
pub fn buffered_into_streamed(response: crate::Response<crate::Body>) -> crate::Response<Streamed> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        crate::Body::Text(t) => Bytes::from(t),
        crate::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    crate::Response::from_parts(parts, streamed(futures::stream::iter([Ok(bytes)])))
}
