//! Import and export: files stream through in chunks, never whole in memory.

use crate::error::Result;
use crate::http::{Call, Payload};
use crate::project::ProjectClient;
use crate::types::{CodeFilter, FileFormat, ImportResult};
use futures_util::stream;
use reqwest::Method;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Told the number of bytes moved so far, after every chunk.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

const CHUNK: usize = 64 * 1024;

/// What an export covers.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: FileFormat,
    pub filter: CodeFilter,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { format: FileFormat::Csv, filter: CodeFilter::default() }
    }
}

impl ProjectClient {
    /// Uploads a CSV (header row naming `code`) or JSON Lines file of codes.
    pub async fn import<R>(&self, format: FileFormat, reader: R, progress: Option<Progress>) -> Result<ImportResult>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let chunks = stream::try_unfold((reader, 0u64), move |(mut reader, sent)| {
            let progress = progress.clone();
            async move {
                let mut buf = vec![0u8; CHUNK];
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buf.truncate(n);
                let sent = sent + n as u64;
                if let Some(p) = &progress {
                    p(sent);
                }
                Ok(Some((buf, (reader, sent))))
            }
        });
        let mut call = Call::new(Method::POST, self.path("/codes/import")).long();
        call.payload =
            Payload::Stream { body: Some(reqwest::Body::wrap_stream(chunks)), content_type: format.content_type() };
        self.client.json(call).await
    }

    /// Streams an export into `writer`; returns the number of bytes written.
    pub async fn export<W>(&self, options: &ExportOptions, writer: &mut W, progress: Option<Progress>) -> Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let mut q = vec![("format", options.format.as_str().to_owned())];
        options.filter.push_query(&mut q);
        let mut resp = self.client.execute(Call::new(Method::GET, self.path("/codes/export")).long().query(q)).await?;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            writer.write_all(&chunk).await?;
            written += chunk.len() as u64;
            if let Some(p) = &progress {
                p(written);
            }
        }
        writer.flush().await?;
        Ok(written)
    }
}
