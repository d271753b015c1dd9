//! Who may call: every call carries the cluster cookie, checked in constant time, and the
//! caller's protocol version (`crate::protocol`), refused when more than one version away;
//! Raft calls also carry the caller's cluster id, and a node refuses Raft traffic from
//! another cluster.

use crate::error::Error;
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

pub const COOKIE_HEADER: &str = "x-mnema-cookie";
pub const CLUSTER_HEADER: &str = "x-mnema-cluster";

/// The node's cluster id; it changes when the node joins another cluster.
pub type ClusterId = std::sync::Arc<std::sync::RwLock<String>>;

fn current(id: &ClusterId) -> String {
    id.read().map(|s| s.clone()).unwrap_or_default()
}

/// Server side: refuses calls without the right cookie, and (for Raft) from another cluster.
#[derive(Clone)]
pub struct CheckCookie {
    cookie: std::sync::Arc<[u8]>,
    cluster: Option<ClusterId>,
}

impl CheckCookie {
    pub fn new(cookie: &str) -> Self {
        CheckCookie { cookie: cookie.as_bytes().into(), cluster: None }
    }

    /// Also refuse callers whose cluster id differs from `cluster`.
    pub fn same_cluster(mut self, cluster: ClusterId) -> Self {
        self.cluster = Some(cluster);
        self
    }
}

impl CheckCookie {
    /// The one check of a caller, for every gRPC call (the interceptor below) and every Raft
    /// frames connection and request (`raft::frame_server`): its `cookie`, the `protocol`
    /// version it announces, and, where this check has a cluster, its `cluster` id. `peer`
    /// is where it calls from, for the log.
    pub fn admit(&self, cookie: &[u8], protocol: u32, cluster: &str, peer: &str) -> Result<(), Error> {
        self.admit_caller(cookie, protocol, peer)?;
        self.same_cluster_as(cluster)
    }

    /// [`CheckCookie::admit`] without the cluster id: a Raft frames connection's hello,
    /// whose connection also carries forwarded writes (which the `Cluster` service admits
    /// from any cluster); it asks [`CheckCookie::same_cluster_as`] of each Raft request.
    pub fn admit_caller(&self, cookie: &[u8], protocol: u32, peer: &str) -> Result<(), Error> {
        // ct_eq on slices of unequal length returns false without a timing leak of content.
        if !bool::from(cookie.ct_eq(&self.cookie)) {
            tracing::warn!(%peer, "refused a call with a wrong cookie");
            return Err(Error::CookieMismatch { peer: String::new() });
        }
        if let Err(e) = crate::protocol::check("", protocol) {
            tracing::warn!(%peer, theirs = protocol, ours = crate::protocol::PROTOCOL, "refused a call of another protocol version");
            return Err(e);
        }
        Ok(())
    }

    /// Refuses a caller whose cluster id is not this check's cluster (when it has one): the
    /// id changes when the node joins another cluster, so a long-lived connection asks
    /// again for each request.
    pub fn same_cluster_as(&self, theirs: &str) -> Result<(), Error> {
        let Some(ours) = &self.cluster else { return Ok(()) };
        let ours = current(ours);
        if theirs != ours {
            tracing::warn!(theirs, ours = %ours, "refused a Raft call from another cluster");
            return Err(Error::ForeignCluster {
                peer: String::new(),
                ours: theirs.to_string(),
                reason: format!("the node called is in cluster `{ours}`"),
            });
        }
        Ok(())
    }
}

impl tonic::service::Interceptor for CheckCookie {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req.metadata().get(COOKIE_HEADER).map(|v| v.as_bytes()).unwrap_or(b"");
        // No header: a build from before versions were announced, version 0. A header
        // that is not a number is no version this build knows.
        let protocol = match req.metadata().get(crate::protocol::HEADER) {
            None => 0,
            Some(v) => v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(u32::MAX),
        };
        let cluster = req.metadata().get(CLUSTER_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
        match self.admit(given, protocol, cluster, &peer) {
            Ok(()) => Ok(req),
            Err(e) => Err(super::status::to_status(&e)),
        }
    }
}

/// Client side: attaches our cookie, the protocol version we announce (and cluster id, if
/// we have one) to every call.
#[derive(Clone)]
pub struct AddCookie {
    value: MetadataValue<tonic::metadata::Ascii>,
    protocol: MetadataValue<tonic::metadata::Ascii>,
    announced: u32,
    cluster: Option<ClusterId>,
}

impl AddCookie {
    pub fn new(cookie: &str, cluster: Option<ClusterId>, protocol: u32) -> crate::error::Result<Self> {
        let value =
            cookie.parse().map_err(|_| crate::error::Error::config("node.cookie", "must be printable ASCII"))?;
        Ok(AddCookie { value, protocol: MetadataValue::from(protocol), announced: protocol, cluster })
    }

    /// What this side announces on every call: the cookie, the protocol version and the
    /// cluster id (empty: none yet). A Raft frames connection says the same in its hello.
    pub fn credentials(&self) -> (Vec<u8>, u32, String) {
        (self.value.as_bytes().to_vec(), self.announced, self.cluster_id())
    }

    /// The cluster id this side announces now (empty: none yet).
    pub fn cluster_id(&self) -> String {
        self.cluster.as_ref().map(current).unwrap_or_default()
    }

    /// Whether this side announces `id` now (no copy of it made).
    pub fn announces(&self, id: &str) -> bool {
        match &self.cluster {
            None => id.is_empty(),
            Some(c) => c.read().map(|ours| *ours == id).unwrap_or(false),
        }
    }
}

impl tonic::service::Interceptor for AddCookie {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(COOKIE_HEADER, self.value.clone());
        req.metadata_mut().insert(crate::protocol::HEADER, self.protocol.clone());
        if let Some(id) = &self.cluster
            && let Ok(v) = current(id).parse()
        {
            req.metadata_mut().insert(CLUSTER_HEADER, v);
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(check: &mut CheckCookie, cookie: &str, cluster: Option<&str>) -> Result<(), Status> {
        let id: Option<ClusterId> = cluster.map(|c| std::sync::Arc::new(std::sync::RwLock::new(c.to_string())));
        let mut add = AddCookie::new(cookie, id, crate::protocol::PROTOCOL).unwrap();
        let req = add.call(Request::new(())).unwrap();
        check.call(req).map(|_| ())
    }

    #[test]
    fn cookie_and_cluster_checks() {
        let mut cluster_calls = CheckCookie::new("secret");
        assert!(call(&mut cluster_calls, "secret", None).is_ok());
        let err = call(&mut cluster_calls, "secreT", None).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(matches!(super::super::status::from_status("p", err), Error::CookieMismatch { .. }));

        let ours: ClusterId = std::sync::Arc::new(std::sync::RwLock::new("c1".into()));
        let mut raft_calls = CheckCookie::new("secret").same_cluster(ours.clone());
        assert!(call(&mut raft_calls, "secret", Some("c1")).is_ok());
        let err = call(&mut raft_calls, "secret", Some("c2")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        match super::super::status::from_status("p", err) {
            Error::ForeignCluster { ours, .. } => assert_eq!(ours, "c2"),
            other => panic!("expected ForeignCluster, got {other:?}"),
        }
        assert!(call(&mut raft_calls, "secret", None).is_err(), "no cluster id is a foreign cluster");
        *ours.write().unwrap() = "c2".into();
        assert!(call(&mut raft_calls, "secret", Some("c2")).is_ok(), "follows a join");
    }

    fn call_as(check: &mut CheckCookie, protocol: Option<&str>) -> Result<(), Status> {
        let mut req = AddCookie::new("secret", None, crate::protocol::PROTOCOL).unwrap().call(Request::new(())).unwrap();
        match protocol {
            Some(v) => req.metadata_mut().insert(crate::protocol::HEADER, v.parse().unwrap()),
            None => req.metadata_mut().remove(crate::protocol::HEADER),
        };
        check.call(req).map(|_| ())
    }

    #[test]
    fn a_caller_more_than_one_protocol_version_away_is_refused_naming_both() {
        use crate::protocol::PROTOCOL;
        let mut check = CheckCookie::new("secret");
        for ok in [PROTOCOL - 1, PROTOCOL, PROTOCOL + 1] {
            assert!(call_as(&mut check, Some(&ok.to_string())).is_ok(), "version {ok}");
        }
        assert!(call_as(&mut check, None).is_ok(), "no header: version 0, one before this build's");
        let err = call_as(&mut check, Some(&(PROTOCOL + 2).to_string())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        match super::super::status::from_status("p@h", err) {
            Error::VersionMismatch { peer, ours, theirs } => {
                assert_eq!((peer.as_str(), ours, theirs), ("p@h", PROTOCOL, PROTOCOL + 2))
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
        match super::super::status::from_status("p@h", call_as(&mut check, Some("1.0")).unwrap_err()) {
            Error::VersionMismatch { theirs, .. } => assert_eq!(theirs, u32::MAX),
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }
}
