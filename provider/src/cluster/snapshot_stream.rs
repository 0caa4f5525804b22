//! The initial snapshot of a new cluster, read once for all its members:
//! its digest is computed first, then one pass over the file feeds every
//! member's upload through a bounded in-memory pipe, so the snapshot is
//! never held in memory and the file is not read once per member. A slow
//! member holds the others back; a member that stops reading (it failed,
//! or its data was already restored from this snapshot) is dropped.

use std::future::Future;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::member::install;

/// How much of the snapshot may wait in memory for one member.
const PIPE_BYTES: usize = 1 << 18;

/// What one member of a new cluster gets of the initial snapshot.
pub struct InitialData {
    /// The local file, to name it in messages.
    pub path: String,
    /// Its SHA-256 (hex), recorded on the member.
    pub digest: String,
    /// Its bytes.
    pub stream: DuplexStream,
}

/// One [`InitialData`] per member, and the future that streams the file
/// into them (run it alongside the members' installs).
pub async fn fan_out(
    path: &str,
    members: usize,
) -> Result<(impl Future<Output = Result<(), String>>, Vec<InitialData>), String> {
    let file = PathBuf::from(path);
    let digest = install::sha256_file(&file)
        .await
        .map_err(|e| format!("initial snapshot {path}: {e}"))?;
    let (writers, readers): (Vec<DuplexStream>, Vec<DuplexStream>) =
        (0..members).map(|_| tokio::io::duplex(PIPE_BYTES)).unzip();
    let data = readers
        .into_iter()
        .map(|stream| InitialData {
            path: path.to_string(),
            digest: digest.clone(),
            stream,
        })
        .collect();
    Ok((pump(file, writers), data))
}

/// Reads `file` once and writes every piece to each writer still open.
async fn pump(file: PathBuf, writers: Vec<DuplexStream>) -> Result<(), String> {
    let shown = |e: std::io::Error| format!("initial snapshot {}: {e}", Path::display(&file));
    let mut source = tokio::fs::File::open(&file).await.map_err(shown)?;
    let mut open: Vec<Option<DuplexStream>> = writers.into_iter().map(Some).collect();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = source.read(&mut buffer).await.map_err(shown)?;
        if n == 0 || open.iter().all(Option::is_none) {
            break;
        }
        for slot in &mut open {
            if let Some(writer) = slot {
                if writer.write_all(&buffer[..n]).await.is_err() {
                    *slot = None;
                }
            }
        }
    }
    for writer in open.iter_mut().flatten() {
        let _ = writer.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_reader_gets_the_whole_file_and_a_dropped_one_holds_no_one_back() {
        let path = std::env::temp_dir().join(format!("fan-out-{}.db", std::process::id()));
        let content: Vec<u8> = (0..3 * PIPE_BYTES as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let (pump, mut data) = fan_out(path.to_str().unwrap(), 3).await.unwrap();
        assert_eq!(data[0].digest, install::sha256_hex(&content));
        drop(data.remove(1));
        let readers = data.into_iter().map(|mut d| async move {
            let mut got = Vec::new();
            d.stream.read_to_end(&mut got).await.unwrap();
            got
        });
        let (pumped, got) = tokio::join!(pump, futures::future::join_all(readers));
        std::fs::remove_file(&path).unwrap();
        pumped.unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|g| *g == content));
    }
}
