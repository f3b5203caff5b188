//! Conditional S3 writes made atomic. AWS evaluates a `PutObject`'s or `DeleteObject`'s
//! `If-None-Match`/`If-Match` and makes the write as one step: of two conditional writes
//! racing for one key, one wins and the other gets `412 Precondition Failed` or `409
//! ConditionalRequestConflict`
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>).
//! The emulator (moto 5.2) honours the conditions but checks, then writes, on whichever
//! of its server's threads took the request, with nothing holding a second request of the
//! key off in between: two creates of one key can both succeed. The stack's front
//! therefore forwards conditional writes one at a time ([`ConditionalWrites`]), which
//! gives them AWS's outcome. A plain write racing a conditional one is not ordered
//! (AWS may answer the conditional one `409`; here it lands before or after).

use axum::extract::Request;
use axum::http::Method;
use tokio::sync::{Mutex, MutexGuard};

/// The one-at-a-time turn of the conditional S3 writes passing the front.
#[derive(Debug, Default)]
pub struct ConditionalWrites(Mutex<()>);

impl ConditionalWrites {
    /// Waits for the turn of `request` if it is a conditional S3 write (held until the
    /// guard drops, after the emulator's answer); `None` for any other request.
    pub fn turn<'a>(
        &'a self,
        request: &Request,
    ) -> impl Future<Output = Option<MutexGuard<'a, ()>>> + use<'a> {
        let conditional = is_conditional_write(request);
        async move {
            if conditional {
                Some(self.0.lock().await)
            } else {
                None
            }
        }
    }
}

/// A `PUT` or `DELETE` of an S3 object (no `X-Amz-Target`: not a JSON API) carrying
/// `If-Match` or `If-None-Match`.
fn is_conditional_write(request: &Request) -> bool {
    let headers = request.headers();
    matches!(*request.method(), Method::PUT | Method::DELETE)
        && !headers.contains_key("x-amz-target")
        && (headers.contains_key("if-match") || headers.contains_key("if-none-match"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: Method, header: Option<&str>) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri("/bucket/log/day.json");
        if let Some(name) = header {
            builder = builder.header(name, "*");
        }
        builder.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn conditional_writes_take_turns_and_others_pass() {
        let writes = ConditionalWrites::default();
        let first = writes
            .turn(&request(Method::PUT, Some("If-None-Match")))
            .await;
        assert!(first.is_some());
        assert!(writes.0.try_lock().is_err(), "the turn is held");
        assert!(writes.turn(&request(Method::PUT, None)).await.is_none());
        assert!(
            writes
                .turn(&request(Method::GET, Some("If-Match")))
                .await
                .is_none()
        );
        drop(first);
        assert!(
            writes
                .turn(&request(Method::DELETE, Some("If-Match")))
                .await
                .is_some()
        );
    }
}
