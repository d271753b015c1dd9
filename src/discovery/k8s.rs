//! `k8s` discovery: the pods behind a Kubernetes service, from its Endpoints object
//! (`GET {apiserver}/api/v1/namespaces/{namespace}/endpoints/{service_name}`).
//!
//! Each ready address becomes a node name `{app}@{host}`, `app` being the part of this
//! node's name before `@`, and `host` by `cluster.k8s.address_type`: `ip` (the pod IP),
//! `dns` (`10-0-0-1.{namespace}.{suffix}`) or `hostname`
//! (`{hostname}.{service_name}.{namespace}.{suffix}`). In a pod, the service account's
//! token and CA (`/var/run/secrets/kubernetes.io/serviceaccount/`) are used when present.

use super::k8s_peers;
use crate::config::K8sSection;
use crate::error::{Error, Result};
use crate::name::Peer;
use http_body_util::BodyExt;
use std::path::Path;
use std::time::Duration;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const MAX_BODY: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

fn err(reason: impl std::fmt::Display) -> Error {
    Error::discovery("kubernetes apiserver", reason)
}

/// The nodes behind the service now.
pub async fn discover(k8s: &K8sSection, app: &str, base_port: u16) -> Result<Vec<Peer>> {
    let url = format!(
        "{}/api/v1/namespaces/{}/endpoints/{}",
        k8s.apiserver.trim_end_matches('/'),
        k8s.namespace,
        k8s.service_name
    );
    let body =
        tokio::time::timeout(TIMEOUT, get(&url)).await.map_err(|_| err(format!("no answer within {TIMEOUT:?}")))??;
    k8s_peers(&body, k8s, app, base_port)
}

async fn get(url: &str) -> Result<Vec<u8>> {
    let uri: hyper::Uri = url.parse().map_err(|e| err(format!("apiserver URL `{url}`: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(err(format!("apiserver URL `{url}` is not http(s)"))),
    };
    let host = uri.host().ok_or_else(|| err(format!("apiserver URL `{url}` has no host")))?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await.map_err(err)?;
    let token = std::fs::read_to_string(Path::new(SERVICE_ACCOUNT).join("token")).ok();
    let mut req = hyper::Request::get(path).header(hyper::header::HOST, &host);
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {}", t.trim()));
    }
    let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).map_err(err)?;
    if https {
        let tls = tls_connector()?;
        let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string()).map_err(err)?;
        let stream = tls.connect(name, tcp).await.map_err(err)?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    }
}

async fn send<S>(io: S, req: hyper::Request<http_body_util::Empty<bytes::Bytes>>) -> Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(err)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(err)?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(err)?.to_bytes();
    if !status.is_success() {
        return Err(err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))));
    }
    Ok(body.to_vec())
}

/// Trust the pod's service-account CA (the apiserver's issuer).
fn tls_connector() -> Result<tokio_rustls::TlsConnector> {
    let ca_path = Path::new(SERVICE_ACCOUNT).join("ca.crt");
    let pem = std::fs::read(&ca_path).map_err(|e| err(format!("{}: {e}", ca_path.display())))?;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(err)?).map_err(err)?;
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}
