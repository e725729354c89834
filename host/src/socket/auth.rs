//! The opt-in handshake between skywasm nodes that share a secret (`cluster_secret` for the
//! cluster, `harbor_secret` for the harbor): mutual challenge-response with HMAC-SHA256,
//! before any packet of the protocol. skynet has no authentication, so a skynet node cannot
//! take part: use it only between skywasm nodes.
//!
//! On a new connection the accepting node sends a challenge, the connecting node answers it
//! and sends its own, and the accepting node answers that (each proves it holds the secret
//! without sending it; fresh nonces keep an answer from being replayed):
//!
//! ```text
//! accepting → connecting   len  0xa5  server_nonce[16]
//! connecting → accepting   len  0xa5  client_nonce[16]  hmac(secret, "<realm> client" ‖ server_nonce ‖ client_nonce)[32]
//! accepting → connecting   len  0xa5  hmac(secret, "<realm> server" ‖ client_nonce ‖ server_nonce)[32]
//! ```
//!
//! The realm (`skywasm-cluster`, `skywasm-harbor`) keeps a proof made for one protocol
//! from being used in the other.
//!
//! The packets have skynet's 2-byte big-endian length and a kind byte (0xa5) no skynet
//! packet uses. Any mismatch, malformed packet or silence past the time limit ends the
//! connection.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The kind byte of handshake packets.
const KIND: u8 = 0xa5;
const NONCE: usize = 16;
const MAC: usize = 32;
/// Longest wait for the other side's part of the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which protocol a handshake opens: its label in the proofs and its config key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Realm {
    label: &'static str,
    key: &'static str,
}

/// The cluster's handshake (`cluster_secret`).
pub(crate) const CLUSTER: Realm = Realm {
    label: "skywasm-cluster",
    key: "cluster_secret",
};

/// The harbor's handshake (`harbor_secret`).
pub(crate) const HARBOR: Realm = Realm {
    label: "skywasm-harbor",
    key: "harbor_secret",
};

impl Realm {
    fn role(&self, role: &str) -> Vec<u8> {
        format!("{} {role}", self.label).into_bytes()
    }
}

/// A shared secret, never shown in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], role: &[u8], first: &[u8], second: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(role);
    mac.update(first);
    mac.update(second);
    mac
}

fn nonce() -> std::io::Result<[u8; NONCE]> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce)
        .map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    Ok(nonce)
}

async fn send(stream: &mut TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut packet = Vec::with_capacity(2 + len);
    packet.extend_from_slice(&(len as u16).to_be_bytes());
    packet.push(KIND);
    for part in parts {
        packet.extend_from_slice(part);
    }
    stream.write_all(&packet).await
}

/// Reads one handshake packet of exactly `size` bytes after its kind byte.
async fn receive(stream: &mut TcpStream, size: usize, realm: Realm) -> std::io::Result<Vec<u8>> {
    let read = async {
        let mut header = [0u8; 3];
        stream.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[0], header[1]]) as usize;
        if header[2] != KIND || len != 1 + size {
            return Err(refused("the peer did not answer with skywasm's handshake"));
        }
        let mut body = vec![0u8; size];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read).await {
        Err(_) => Err(refused(&format!(
            "no handshake from the peer in time (is {} set on both nodes?)",
            realm.key
        ))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(refused(&format!(
            "the peer closed the connection during the handshake (another {}?)",
            realm.key
        ))),
        Ok(result) => result,
    }
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string())
}

/// The accepting node's side: challenges the peer, checks its answer, proves itself.
///
/// # Errors
/// The peer does not hold the secret, does not speak the handshake, or is too slow.
pub(crate) async fn accept(
    stream: &mut TcpStream,
    secret: &[u8],
    realm: Realm,
) -> std::io::Result<()> {
    let server_nonce = nonce()?;
    send(stream, &[&server_nonce]).await?;
    let answer = receive(stream, NONCE + MAC, realm).await?;
    let (client_nonce, proof) = answer.split_at(NONCE);
    mac(secret, &realm.role("client"), &server_nonce, client_nonce)
        .verify_slice(proof)
        .map_err(|_| refused(&format!("the peer does not hold this node's {}", realm.key)))?;
    let mine = mac(secret, &realm.role("server"), client_nonce, &server_nonce);
    send(stream, &[&mine.finalize().into_bytes()]).await
}

/// The connecting node's side: answers the challenge, checks the peer's proof.
///
/// # Errors
/// As [`accept`].
pub(crate) async fn connect(
    stream: &mut TcpStream,
    secret: &[u8],
    realm: Realm,
) -> std::io::Result<()> {
    let server_nonce = receive(stream, NONCE, realm).await?;
    let client_nonce = nonce()?;
    let proof = mac(secret, &realm.role("client"), &server_nonce, &client_nonce);
    send(stream, &[&client_nonce, &proof.finalize().into_bytes()]).await?;
    let answer = receive(stream, MAC, realm).await?;
    mac(secret, &realm.role("server"), &client_nonce, &server_nonce)
        .verify_slice(&answer)
        .map_err(|_| refused(&format!("the peer does not hold this node's {}", realm.key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(
        (server_secret, server_realm): (&'static [u8], Realm),
        (client_secret, client_realm): (&'static [u8], Realm),
    ) -> (bool, bool) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            accept(&mut stream, server_secret, server_realm)
                .await
                .is_ok()
        });
        let mut stream = TcpStream::connect(at).await.unwrap();
        let client = connect(&mut stream, client_secret, client_realm)
            .await
            .is_ok();
        drop(stream);
        (server.await.unwrap(), client)
    }

    #[test]
    fn the_same_secret_passes_and_another_does_not() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let s = |secret: &'static [u8]| (secret, CLUSTER);
            assert_eq!(pair(s(b"s3cret"), s(b"s3cret")).await, (true, true));
            assert_eq!(pair(s(b"s3cret"), s(b"other")).await, (false, false));
            assert_eq!(
                pair((b"s3cret", HARBOR), (b"s3cret", HARBOR)).await,
                (true, true)
            );
            assert_eq!(
                pair((b"s3cret", CLUSTER), (b"s3cret", HARBOR)).await,
                (false, false),
                "a proof for one protocol does not open the other"
            );
        });
    }
}
