//! A snapshot of the keyspace streamed from one member into a local file,
//! checked against the SHA-256 etcd appends to the stream.

use std::path::Path;
use std::time::Duration;

use super::{text, Client};

/// A snapshot saved by [`Client::save_snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The endpoint of the member it came from.
    pub endpoint: String,
    /// The revision that member had reached when the snapshot began.
    pub revision: i64,
    pub size: u64,
    /// SHA-256 (hex) of the whole file.
    pub sha256: String,
}

/// Checks the SHA-256 that etcd appends to a snapshot stream against
/// everything before it, fed chunk by chunk.
#[derive(Default)]
struct TrailingHash {
    body: sha2::Sha256,
    /// The last 32 bytes seen so far: the hash, once the stream has ended.
    tail: Vec<u8>,
}

impl TrailingHash {
    const LEN: usize = 32;

    fn update(&mut self, chunk: &[u8]) {
        use sha2::Digest;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > Self::LEN {
            let body = self.tail.len() - Self::LEN;
            self.body.update(&self.tail[..body]);
            self.tail.drain(..body);
        }
    }

    fn matches(self) -> bool {
        use sha2::Digest;
        self.tail.len() == Self::LEN && self.tail[..] == self.body.finalize()[..]
    }
}

/// The longest wait for the next chunk of a snapshot.
const SNAPSHOT_CHUNK_DEADLINE: Duration = Duration::from_secs(60);

impl Client {
    /// Streams a snapshot of the keyspace from a voter that serves (the
    /// leader if it does; never a learner, nor a member cut off from the
    /// quorum, whose data may be behind) into `file`: written 0600 to a temporary file of its own
    /// beside it (created new, never through a link) and renamed once
    /// complete. etcd ends the stream with the SHA-256 of what came before;
    /// a snapshot whose hash does not match is refused. Whatever fails, no
    /// temporary file is left behind.
    pub async fn save_snapshot(&self, file: &Path) -> Result<Snapshot, String> {
        let endpoint = self.serving_endpoint().await?;
        let (mut client, endpoint, revision) =
            Client::new(vec![endpoint], self.credentials.clone())
                .first_answering(None)
                .await?;
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = std::path::PathBuf::from(name);
        let streamed = async {
            let mut out = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&partial)
                .await
                .map_err(|e| format!("{}: {e}", partial.display()))?;
            let stream = client.snapshot().await.map_err(text)?;
            let streamed = stream_into(stream, &mut out, &endpoint, &partial).await?;
            tokio::fs::rename(&partial, file)
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(streamed)
        }
        .await;
        let (size, sha256) = match streamed {
            Ok(streamed) => streamed,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        Ok(Snapshot {
            endpoint,
            revision,
            size,
            sha256,
        })
    }
}

impl Client {
    /// The endpoint a snapshot is taken from (see [`serving_endpoint`]).
    async fn serving_endpoint(&self) -> Result<String, String> {
        let statuses = self.statuses().await;
        serving_endpoint(&statuses)
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "no member answers a quorum read, so none can give a current snapshot: {}",
                    statuses
                        .iter()
                        .map(|s| format!(
                            "{}: {}",
                            s.endpoint,
                            s.error.as_deref().unwrap_or("unhealthy")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
    }
}

/// The endpoint of the leader if it answers a quorum read, else of the
/// first member that does: a learner does not (etcd refuses it
/// linearizable reads), nor a member cut off from the quorum, whose data
/// may be behind.
fn serving_endpoint(statuses: &[super::EndpointStatus]) -> Option<&str> {
    let serving = || statuses.iter().filter(|s| s.healthy);
    let leader = serving().find(|s| s.member_id.is_some() && s.member_id == s.leader);
    leader
        .or_else(|| serving().next())
        .map(|s| s.endpoint.as_str())
}

/// Writes the snapshot stream into `out`, checking etcd's trailing hash;
/// returns the size and the SHA-256 of the whole file.
async fn stream_into(
    mut stream: etcd_client::SnapshotStreaming,
    out: &mut tokio::fs::File,
    endpoint: &str,
    partial: &Path,
) -> Result<(u64, String), String> {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncWriteExt;

    let mut whole = Sha256::new();
    let mut trailer = TrailingHash::default();
    let mut size = 0u64;
    loop {
        let message = tokio::time::timeout(SNAPSHOT_CHUNK_DEADLINE, stream.message())
            .await
            .map_err(|_| format!("{endpoint}: the snapshot stalled"))?
            .map_err(text)?;
        let Some(message) = message else { break };
        let chunk = message.blob();
        out.write_all(chunk)
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        whole.update(chunk);
        trailer.update(chunk);
        size += chunk.len() as u64;
    }
    out.sync_all()
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    if !trailer.matches() {
        return Err(format!(
            "{endpoint}: the snapshot's trailing SHA-256 does not match its content ({size} bytes); not saved"
        ));
    }
    Ok((size, hex::encode(whole.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn fed_in_chunks(stream: &[u8], chunk: usize) -> bool {
        let mut trailer = TrailingHash::default();
        for piece in stream.chunks(chunk) {
            trailer.update(piece);
        }
        trailer.matches()
    }

    #[test]
    fn a_snapshot_comes_from_the_leader_or_a_member_that_serves_never_a_learner() {
        let status =
            |endpoint: &str, id: u64, leader: u64, healthy: bool| super::super::EndpointStatus {
                endpoint: endpoint.into(),
                member_id: Some(id),
                leader: Some(leader),
                healthy,
                ..Default::default()
            };
        // A learner (no quorum read) and a partitioned member answer status first.
        let statuses = [
            status("learner", 4, 2, false),
            status("cut-off", 1, 1, false),
            status("follower", 3, 2, true),
            status("leader", 2, 2, true),
        ];
        assert_eq!(serving_endpoint(&statuses), Some("leader"));
        assert_eq!(serving_endpoint(&statuses[..3]), Some("follower"));
        assert_eq!(serving_endpoint(&statuses[..2]), None);
    }

    #[test]
    fn a_snapshot_must_end_with_the_hash_of_its_content() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = body.clone();
        stream.extend_from_slice(&sha2::Sha256::digest(&body));
        for chunk in [1, 7, 32, 33, 4096, stream.len()] {
            assert!(fed_in_chunks(&stream, chunk), "chunks of {chunk}");
        }
        let mut corrupt = stream.clone();
        corrupt[100] ^= 1;
        assert!(!fed_in_chunks(&corrupt, 64));
        assert!(!fed_in_chunks(&body, 64), "no hash at the end");
        assert!(!fed_in_chunks(&stream[..20], 64), "shorter than a hash");
    }
}
