//! TLS for TCP sockets (`socket_tls`): a rustls connection that the socket's task drives
//! from its own readiness loop, so a TLS socket keeps the behaviours of a plain one (pause
//! and start, both send queues, warnings, the unsent cap, half-close). Clients verify the
//! server's name against the system's roots and the node's `tls_ca`; servers present the
//! node's `tls_cert` and `tls_key`. Guests never see key material.

use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A config built from the files named by `K` (the node's settings).
type Cached<K, C> = Mutex<Option<(K, Arc<C>)>>;

/// Configs built once per set of files (they are read from disk, the roots too).
static CLIENT: Cached<Option<String>, rustls::ClientConfig> = Mutex::new(None);
static SERVER: Cached<(String, String), rustls::ServerConfig> = Mutex::new(None);

/// ring's provider: aws-lc-rs (rustls's default) would need cmake and a C build here. ring
/// offers no post-quantum key exchange, hence rustls's deprecation note.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(ca: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut cached = super::lock(&CLIENT);
    if let Some((path, config)) = cached.as_ref() {
        if path.as_deref() == ca {
            return Ok(config.clone());
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    // the system's roots: a certificate the store cannot take is skipped, as browsers do
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("tls_ca {path}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls_ca {path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("tls_ca {path}: no certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("tls_ca {path}: {e}"))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    *cached = Some((ca.map(str::to_string), config.clone()));
    Ok(config)
}

fn server_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cached = super::lock(&SERVER);
    if let Some(((c, k), config)) = cached.as_ref() {
        if c == cert && k == key {
            return Ok(config.clone());
        }
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert {cert}: {e}"))?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {key}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("tls_cert {cert} / tls_key {key}: {e}"))?;
    let config = Arc::new(config);
    *cached = Some(((cert.to_string(), key.to_string()), config.clone()));
    Ok(config)
}

/// A client connection to `name` (a host name or an address, which the server's
/// certificate must name), trusting the system's roots and the `ca` file.
pub(crate) fn client(name: &str, ca: Option<&str>) -> Result<rustls::Connection, String> {
    let server_name = ServerName::try_from(name.trim_matches(['[', ']']).to_string())
        .map_err(|_| format!("tls: {name:?} is not a host name or an address"))?;
    let connection = rustls::ClientConnection::new(client_config(ca)?, server_name)
        .map_err(|e| format!("tls: {e}"))?;
    Ok(connection.into())
}

/// A server connection presenting the `cert` chain (PEM) with its `key`.
pub(crate) fn server(cert: &str, key: &str) -> Result<rustls::Connection, String> {
    let connection = rustls::ServerConnection::new(server_config(cert, key)?)
        .map_err(|e| format!("tls: {e}"))?;
    Ok(connection.into())
}

/// Writes through a non-blocking TCP stream (WouldBlock passes through), for rustls's
/// `write_tls`.
pub(super) struct TryWriter<'s>(pub(super) &'s tokio::net::TcpStream);

impl std::io::Write for TryWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_work_is_refused_with_the_reason() {
        let err = client("not a name!", None).err().unwrap();
        assert!(err.contains("is not a host name or an address"), "{err}");
        let err = client("example.com", Some("/nonexistent/ca.pem"))
            .err()
            .unwrap();
        assert!(err.contains("tls_ca /nonexistent/ca.pem"), "{err}");
        let err = server("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .err()
            .unwrap();
        assert!(err.contains("tls_cert /nonexistent/cert.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = client("example.com", empty.to_str()).err().unwrap();
        assert!(err.contains("no certificate in it"), "{err}");
    }

    #[test]
    fn clients_take_names_and_addresses() {
        assert!(client("example.com", None).is_ok());
        assert!(client("127.0.0.1", None).is_ok());
        assert!(client("[::1]", None).is_ok());
    }
}
