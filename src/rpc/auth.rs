//! The cluster cookie: every call carries it, every server checks it in constant time.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

pub const COOKIE_HEADER: &str = "x-mnema-cookie";
/// Message a server sends with a refused cookie; clients recognise it.
pub const COOKIE_REFUSED: &str = "cookie mismatch";

/// Server side: refuses calls without the right cookie.
#[derive(Clone)]
pub struct CheckCookie {
    cookie: std::sync::Arc<[u8]>,
}

impl CheckCookie {
    pub fn new(cookie: &str) -> Self {
        CheckCookie {
            cookie: cookie.as_bytes().into(),
        }
    }
}

impl tonic::service::Interceptor for CheckCookie {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get(COOKIE_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        // ct_eq on slices of unequal length returns false without a timing leak of content.
        if bool::from(given.ct_eq(&self.cookie)) {
            Ok(req)
        } else {
            let peer = req
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown".into());
            tracing::warn!(%peer, "refused a call with a wrong cookie");
            Err(Status::unauthenticated(format!(
                "{COOKIE_REFUSED}: this node's node.cookie differs from the caller's"
            )))
        }
    }
}

/// Client side: attaches our cookie to every call.
#[derive(Clone)]
pub struct AddCookie {
    value: MetadataValue<tonic::metadata::Ascii>,
}

impl AddCookie {
    pub fn new(cookie: &str) -> crate::error::Result<Self> {
        let value = cookie
            .parse()
            .map_err(|_| crate::error::Error::config("node.cookie", "must be printable ASCII"))?;
        Ok(AddCookie { value })
    }
}

impl tonic::service::Interceptor for AddCookie {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(COOKIE_HEADER, self.value.clone());
        Ok(req)
    }
}
