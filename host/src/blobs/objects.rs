//! Where blob bytes live: an `object_store` behind one small interface, either a local
//! directory (the default, `<data-dir>/blobs`, whose layout is the same object keys as files)
//! or an S3-compatible bucket named by URL (`s3://bucket/prefix`, endpoint and credentials
//! from the standard `AWS_*` environment), which every replica shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::BlobError;

/// Parts of a streamed upload are this large (S3's minimum part size is 5 MiB); below it a
/// file is one PUT.
const PART_BYTES: usize = 8 << 20;

/// Parts of one upload in flight at once: an upload holds at most about this many parts in
/// memory.
const PARTS_IN_FLIGHT: usize = 2;

/// An upload staged under `tmp/` older than this is left over from a crash.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

/// The object store and where under it the blobs are.
#[derive(Clone)]
pub(super) struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// The directory, for a local store.
    local: Option<PathBuf>,
    /// What to call it in messages (never credentials).
    name: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Objects {
    /// A local directory, created if need be.
    pub(super) fn local(root: PathBuf) -> Result<Self, BlobError> {
        std::fs::create_dir_all(&root)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)?
            // Deleting a blob's last file leaves no empty fan-out directories behind.
            .with_automatic_cleanup(true);
        Ok(Objects {
            store: Arc::new(store),
            prefix: Key::default(),
            name: root.display().to_string(),
            local: Some(root),
        })
    }

    /// The store a URL names: `s3://bucket[/prefix]` (the `AWS_*` environment supplies the
    /// endpoint, region and credentials, `AWS_ALLOW_HTTP=true` a plain-http endpoint, and
    /// `options` override it), `file:///dir`, or a plain directory path.
    pub(super) fn from_url(
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, BlobError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BlobError::Invalid(format!("{url}: no bucket named")));
            }
            let mut builder = object_store::aws::AmazonS3Builder::from_env();
            for (key, value) in options {
                let key: object_store::aws::AmazonS3ConfigKey =
                    key.to_ascii_lowercase().parse().map_err(|_| {
                        BlobError::Invalid(format!("blobs.store-options: unknown S3 option {key}"))
                    })?;
                builder = builder.with_config(key, value);
            }
            let store = builder.with_bucket_name(bucket).build()?;
            return Ok(Objects {
                store: Arc::new(store),
                prefix: Key::parse(prefix.trim_matches('/'))
                    .map_err(|e| BlobError::Invalid(format!("{url}: {e}")))?,
                local: None,
                name: url.to_string(),
            });
        }
        if !options.is_empty() {
            return Err(BlobError::Invalid(
                "blobs.store-options apply to an s3:// store only".into(),
            ));
        }
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(PathBuf::from(dir));
        }
        if url.contains("://") {
            return Err(BlobError::Invalid(format!(
                "{url}: blob stores are s3://bucket/prefix, file:///dir or a directory"
            )));
        }
        Self::local(PathBuf::from(url))
    }

    fn key(&self, rel: &str) -> Key {
        rel.split('/')
            .fold(self.prefix.clone(), |key, part| key.join(part))
    }

    /// A streamed upload to `rel` (multipart past [`PART_BYTES`]); completed by
    /// `shutdown`, or `abort`ed, which leaves nothing.
    pub(super) fn writer(&self, rel: &str) -> BufWriter {
        BufWriter::with_capacity(self.store.clone(), self.key(rel), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT)
    }

    pub(super) async fn exists(&self, rel: &str) -> Result<bool, BlobError> {
        match self.store.head(&self.key(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Move `from` to `to` (a rename on disk; copy and delete on S3).
    pub(super) async fn rename(&self, from: &str, to: &str) -> Result<(), BlobError> {
        self.store.rename(&self.key(from), &self.key(to)).await?;
        // A rename on disk is durable only once the file's bytes are.
        if let Some(root) = &self.local {
            let file = tokio::fs::File::open(root.join(to)).await?;
            file.sync_all().await?;
        }
        Ok(())
    }

    pub(super) async fn delete(&self, rel: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.key(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `rel`, all of them or the inclusive range `first..=last`.
    pub(super) async fn read(
        &self,
        rel: &str,
        range: Option<(u64, u64)>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, BlobError> {
        let options = GetOptions {
            range: range.map(|(first, last)| GetRange::Bounded(first..last + 1)),
            ..Default::default()
        };
        let got = self.store.get_opts(&self.key(rel), options).await?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Whether the store answers: the directory lists, or the bucket does.
    pub(super) async fn check(&self) -> Result<(), BlobError> {
        if let Some(root) = &self.local {
            let mut dir = tokio::fs::read_dir(root).await?;
            dir.next_entry().await?;
            return Ok(());
        }
        self.store.list_with_delimiter(Some(&self.prefix)).await?;
        Ok(())
    }

    /// Drop uploads staged under `tmp/` by a process that died mid-upload. Uploads of
    /// processes still running (other replicas, the CLI) are younger and stay.
    pub(super) async fn sweep_stale_uploads(&self) -> Result<usize, BlobError> {
        let cutoff = stale_before();
        if let Some(root) = &self.local {
            // On disk, staged parts (`<key>#<n>`) are not objects a listing shows.
            let mut swept = 0;
            let Ok(mut dir) = tokio::fs::read_dir(root.join("tmp")).await else {
                return Ok(0);
            };
            while let Some(entry) = dir.next_entry().await? {
                let modified = entry.metadata().await?.modified()?;
                let secs = modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs() as i64;
                if secs < cutoff && tokio::fs::remove_file(entry.path()).await.is_ok() {
                    swept += 1;
                }
            }
            return Ok(swept);
        }
        let tmp = self.key("tmp");
        let stale: Vec<Key> = self
            .store
            .list(Some(&tmp))
            .try_filter(|m| std::future::ready(m.last_modified.timestamp() < cutoff))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for key in &stale {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(stale.len())
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

/// The Unix time (seconds) before which a staged upload is stale.
fn stale_before() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(STALE_UPLOAD).as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_all(o: &Objects, rel: &str, range: Option<(u64, u64)>) -> Vec<u8> {
        let chunks: Vec<Bytes> = o
            .read(rel, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn a_local_store_keeps_the_files_where_the_old_layout_had_them() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::from_url(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let mut w = o.writer("tmp/upload");
        w.put(Bytes::from_static(b"hello, ")).await.unwrap();
        w.put(Bytes::from_static(b"firmware")).await.unwrap();
        w.shutdown().await.unwrap();
        o.rename("tmp/upload", "sha256/ab/abcd").await.unwrap();
        assert!(!o.exists("tmp/upload").await.unwrap());
        assert_eq!(
            std::fs::read(dir.path().join("sha256/ab/abcd")).unwrap(),
            b"hello, firmware"
        );
        assert_eq!(
            read_all(&o, "sha256/ab/abcd", None).await,
            b"hello, firmware"
        );
        assert_eq!(read_all(&o, "sha256/ab/abcd", Some((7, 10))).await, b"firm");
        o.check().await.unwrap();
        o.delete("sha256/ab/abcd").await.unwrap();
        o.delete("sha256/ab/abcd").await.unwrap();
        assert!(!o.exists("sha256/ab/abcd").await.unwrap());
    }

    #[tokio::test]
    async fn an_aborted_upload_leaves_nothing_and_only_old_leftovers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::local(dir.path().to_path_buf()).unwrap();
        let mut w = o.writer("tmp/refused");
        w.put(Bytes::from(vec![7u8; PART_BYTES + 1])).await.unwrap();
        w.abort().await.unwrap();
        assert!(!o.exists("tmp/refused").await.unwrap());
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("fresh"), b"x").unwrap();
        let old = std::fs::File::create(tmp.join("old")).unwrap();
        old.set_modified(std::time::SystemTime::now() - 2 * STALE_UPLOAD)
            .unwrap();
        assert_eq!(o.sweep_stale_uploads().await.unwrap(), 1);
        assert!(tmp.join("fresh").exists() && !tmp.join("old").exists());
    }

    #[test]
    fn urls_name_stores_and_options_need_s3() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert!(Objects::from_url(&url, &Default::default()).is_ok());
        let options = [("aws_region".to_string(), "us-east-1".to_string())].into();
        assert!(matches!(
            Objects::from_url(&url, &options),
            Err(BlobError::Invalid(_))
        ));
        assert!(matches!(
            Objects::from_url("gs://bucket", &Default::default()),
            Err(BlobError::Invalid(_))
        ));
        let bad = [("aws_no_such_thing".to_string(), "1".to_string())].into();
        assert!(matches!(
            Objects::from_url("s3://bucket/p", &bad),
            Err(BlobError::Invalid(_))
        ));
        let s3 = Objects::from_url("s3://bucket/some/prefix", &options).unwrap();
        assert_eq!(s3.key("sha256/ab/x").as_ref(), "some/prefix/sha256/ab/x");
    }
}
