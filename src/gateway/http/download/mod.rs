//! Original-file downloads (`archived_files/download`), streamed without temp files.
//!
//! OMERO.web copies every file to a temp dir, zips that into a temp file and only then
//! sends the first byte, which is why big downloads fill disks and hit proxy and
//! worker timeouts. Here both a single file and a multi-file zip are produced while
//! they are sent:
//!
//! * Bodies are pull-driven: a chunk is read (on tokio's blocking pool) only when the
//!   server asks for the next frame, so a slow client never makes us read ahead. A
//!   body holds at most one chunk of file data at a time.
//! * The zip uses STORED entries (images are compressed or incompressible, and it keeps
//!   CPU off the hot path) with data descriptors, so each CRC is computed while its file
//!   streams. Since nothing is compressed, the archive's exact length is known from the
//!   file sizes before the first byte: the body reports it, and hyper sends a
//!   `Content-Length`, as OMERO does, so clients show progress.
//! * Each file is sent with exactly the length it had when the download started: a file
//!   that shrinks meanwhile fails the body (the client sees a cut transfer, never a
//!   wrong file); bytes appended meanwhile are not sent.
//! * ZIP64 is used when an entry is 4 GiB or more, an offset passes 4 GiB, or there are
//!   65535 entries or more.
//!
//! `omero.web.chunk_size` is honoured between 4 KiB and 16 MiB: the property allows up
//! to 1 GiB, which would be 1 GiB of memory per download in flight.

use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::http_app::Body;

mod zip;

pub use zip::{ZipPlan, plan_zip, stream_zip};

/// OMERO's `Content-Type` for downloads.
pub const CONTENT_TYPE: &str = "application/force-download";
pub const MIN_CHUNK: usize = 4 << 10;
pub const MAX_CHUNK: usize = 16 << 20;

/// OMERO's file name for `Content-Disposition`: spaces → `_`, commas → `.` (a comma
/// would otherwise split the header).
pub fn attachment_name(name: &str) -> String {
    name.replace(' ', "_").replace(',', ".")
}

/// The whole `Content-Disposition` value: `attachment; filename=NAME` as OMERO sends
/// it (spaces → `_`, commas → `.`). When that differs from the real name, or is not a
/// plain ASCII token, the RFC 6266 `filename*` form carries the real name, spaces and
/// all, percent-encoded, and a quoted ASCII `filename` stays as the fallback (so the
/// header value is always valid).
pub fn content_disposition(name: &str) -> String {
    let omero = attachment_name(name);
    let plain = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';');
    let token = !omero.is_empty() && omero.bytes().all(plain);
    if token && omero == name {
        return format!("attachment; filename={omero}");
    }
    let fallback = if token {
        omero
    } else {
        let quoted: String = omero
            .chars()
            .map(|c| match c {
                '"' | '\\' => '_',
                c if c.is_ascii_graphic() => c,
                _ => '_',
            })
            .collect();
        format!("\"{quoted}\"")
    };
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename={fallback}; filename*=UTF-8''{encoded}")
}

/// OMERO's zip name: the last image's name (or `?zipname=`), cleaned like
/// `attachment_name`, with `.zip` added unless present; if that equals
/// `<member>.zip` for a member file, `<member>_folder.zip` instead (macOS would
/// otherwise unpack the archive as that single file).
pub fn zip_name(last_image_name: &str, member_names: &[String]) -> String {
    let mut zip = attachment_name(last_image_name);
    if !zip.ends_with(".zip") {
        zip.push_str(".zip");
    }
    for member in member_names {
        if zip == format!("{member}.zip") {
            zip = format!("{member}_folder.zip");
        }
    }
    zip
}

/// OMERO's 403 text when the files' summed size exceeds
/// `maximum_multifile_download_size`.
pub fn too_large_message(total: u64, maximum: u64) -> String {
    format!("Total size of files {total} is larger than {maximum}. Try requesting fewer files.")
}

/// Where each file goes in the archive, by OMERO's rule: the first file of a name sits
/// at the top; each later file whose name is taken there goes into a new numbered
/// folder (`1/`, `2/`, …), skipping numbers already taken at the top. Slashes and
/// backslashes in names become `_` (no member can climb out of the extraction dir).
pub fn zip_member_paths(names: &[String]) -> Vec<String> {
    let mut top: HashSet<String> = HashSet::new();
    let mut next_folder = 1u64;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let name = match name.replace(['/', '\\'], "_") {
            n if n.is_empty() || n == "." || n == ".." => "_".to_string(),
            n => n,
        };
        if top.insert(name.clone()) {
            out.push(name);
            continue;
        }
        let folder = loop {
            let folder = next_folder.to_string();
            next_folder += 1;
            if !top.contains(&folder) {
                break folder;
            }
        };
        top.insert(folder.clone());
        out.push(format!("{folder}/{name}"));
    }
    out
}

pub(super) fn clamp_chunk(chunk_size: usize) -> usize {
    chunk_size.clamp(MIN_CHUNK, MAX_CHUNK)
}

pub(super) fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------
// Reading chunks on the blocking pool

pub(super) type ReadJob = JoinHandle<io::Result<(File, Vec<u8>)>>;

/// Opens a file to stream: a regular file, and with `within`, one whose descriptor
/// lies beneath that directory.
fn open_file(path: &Path, within: Option<&Path>) -> io::Result<File> {
    match within {
        Some(root) => crate::fsutil::open_regular_beneath(path, root),
        None => crate::fsutil::open_regular(path),
    }
    .map_err(|e| with_path(e, path))
}

/// Reads up to `want` bytes (fewer only at end of file) on the blocking pool; opens
/// `path` first when no file is given.
pub(super) fn spawn_read(
    file: Option<File>,
    path: PathBuf,
    within: Option<PathBuf>,
    want: usize,
    counter: Option<Arc<AtomicU64>>,
) -> ReadJob {
    crate::http_app::blocking::spawn_blocking("download (read)", move || {
        let mut file = match file {
            Some(file) => file,
            None => open_file(&path, within.as_deref())?,
        };
        let mut buf = Vec::with_capacity(want);
        (&mut file)
            .take(want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| with_path(e, &path))?;
        if let Some(counter) = counter {
            counter.fetch_add(buf.len() as u64, Ordering::SeqCst);
        }
        Ok((file, buf))
    })
}

/// The outcome of a finished read job, with a short read (the file shrank) as an error.
pub(super) fn finish_read(
    result: Result<io::Result<(File, Vec<u8>)>, tokio::task::JoinError>,
    want: usize,
    path: &Path,
) -> io::Result<(File, Vec<u8>)> {
    let (file, buf) = result.map_err(io::Error::other)??;
    if buf.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{}: file shrank while being sent", path.display()),
        ));
    }
    Ok((file, buf))
}

// ---------------------------------------------------------------------------------
// One file

/// Opens `path` and returns its length and a body that streams exactly that many
/// bytes in `chunk_size` pieces. Errors opening the file are returned here; errors
/// while reading fail the body.
/// With `within`, the opened file must lie beneath that (canonical) directory.
pub fn stream_file(
    path: &Path,
    within: Option<&Path>,
    chunk_size: usize,
) -> io::Result<(u64, Body)> {
    let (len, body) = file_body(path, within, chunk_size, None)?;
    Ok((len, body.boxed()))
}

fn file_body(
    path: &Path,
    within: Option<&Path>,
    chunk_size: usize,
    counter: Option<Arc<AtomicU64>>,
) -> io::Result<(u64, FileBody)> {
    let file = open_file(path, within)?;
    let meta = file.metadata().map_err(|e| with_path(e, path))?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let body = FileBody {
        path: path.to_path_buf(),
        file: Some(file),
        remaining: meta.len(),
        chunk: clamp_chunk(chunk_size),
        job: None,
        want: 0,
        counter,
    };
    Ok((meta.len(), body))
}

struct FileBody {
    path: PathBuf,
    file: Option<File>,
    remaining: u64,
    chunk: usize,
    job: Option<ReadJob>,
    want: usize,
    counter: Option<Arc<AtomicU64>>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.job.is_none() {
            let Some(file) = this.file.take().filter(|_| this.remaining > 0) else {
                return Poll::Ready(None);
            };
            this.want = this.remaining.min(this.chunk as u64) as usize;
            let job = spawn_read(
                Some(file),
                this.path.clone(),
                None,
                this.want,
                this.counter.clone(),
            );
            this.job = Some(job);
        }
        let job = this.job.as_mut().expect("a read is in flight");
        let result = ready!(Pin::new(job).poll(cx));
        this.job = None;
        match finish_read(result, this.want, &this.path) {
            Ok((file, buf)) => {
                this.remaining -= buf.len() as u64;
                this.file = Some(file);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.job.is_none() && (self.remaining == 0 || self.file.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A body that fails with the given error on its first poll.
pub(super) struct FailedBody(Option<io::Error>);

impl hyper::body::Body for FailedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

#[cfg(test)]
mod tests {
    use super::zip::plan;
    use super::*;
    use hyper::body::Body as _;
    use std::fs;
    use std::time::Duration;

    /// Issue 20: a file swapped for a FIFO after the repository's check (a race the
    /// site's owner can win) is refused at the open instead of blocking the thread for
    /// ever, for downloads and for every image decoder; the error names only the file.
    #[test]
    fn a_fifo_in_place_of_an_image_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("swapped\u{1b}[31m.ome.tiff");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let download = stream_file(&path, None, 4096)
                .map(drop)
                .map_err(|e| e.kind());
            let decode = crate::gateway::imaging::source::open(&path, &Default::default())
                .map(drop)
                .map_err(|e| e.to_string());
            let _ = tx.send((download, decode));
        });
        let (download, decode) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("opening a FIFO must not block");
        assert_eq!(download, Err(io::ErrorKind::InvalidInput));
        let decode = decode.unwrap_err();
        assert!(decode.contains("not a regular file"), "{decode}");
        assert!(!decode.contains(dir.path().to_str().unwrap()), "{decode}");
        assert!(!decode.contains('\u{1b}'), "{decode}");
    }

    pub(super) fn write(dir: &Path, rel: &str, data: &[u8]) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        path
    }

    /// Deterministic bytes that differ from chunk to chunk.
    pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    pub(super) async fn frames<B>(mut body: B) -> io::Result<Vec<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes, Error = io::Error> + Unpin,
    {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame?.into_data().unwrap());
        }
        Ok(out)
    }

    pub(super) fn concat(frames: &[Bytes]) -> Vec<u8> {
        frames.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn header_helpers_follow_omero() {
        assert_eq!(attachment_name("my image, 2.tif"), "my_image._2.tif");
        assert_eq!(
            content_disposition("a_b.tif"),
            "attachment; filename=a_b.tif"
        );
        // OMERO's name as the fallback; the real one, spaces kept, in filename*.
        assert_eq!(
            content_disposition("a b,c.tif"),
            "attachment; filename=a_b.c.tif; filename*=UTF-8''a%20b%2Cc.tif"
        );
        assert_eq!(
            content_disposition("zellé;\".tif"),
            "attachment; filename=\"zell_;_.tif\"; filename*=UTF-8''zell%C3%A9%3B%22.tif"
        );
        let members = vec!["a.tif".to_string(), "b.tif".to_string()];
        assert_eq!(zip_name("my image", &members), "my_image.zip");
        assert_eq!(zip_name("x.zip", &members), "x.zip");
        assert_eq!(zip_name("b.tif", &members), "b.tif_folder.zip");
        assert_eq!(
            too_large_message(5, 4),
            "Total size of files 5 is larger than 4. Try requesting fewer files."
        );
    }

    #[test]
    fn member_paths_get_numbered_folders_on_clashes() {
        let names: Vec<String> = ["a.tif", "b.tif", "a.tif", "1", "a.tif", "b.tif", "../x", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            zip_member_paths(&names),
            vec![
                "a.tif", "b.tif", "1/a.tif", "2/1", "3/a.tif", "4/b.tif", ".._x", "_"
            ]
        );
        let names: Vec<String> = ["1", "a", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(zip_member_paths(&names), vec!["1", "a", "2/a"]);
    }

    #[tokio::test]
    async fn single_files_are_sent_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        for (len, chunk) in [
            (0usize, 4096usize),
            (10, 4096),
            (4096, 4096),
            (4096 * 3 + 17, 4096),
        ] {
            let data = pattern(len, 3);
            let path = write(tmp.path(), &format!("f{len}.tif"), &data);
            let (size, body) = stream_file(&path, None, chunk).unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(body.size_hint().exact(), Some(len as u64));
            let got = frames(body).await.unwrap();
            assert!(got.iter().all(|f| f.len() <= chunk && !f.is_empty()));
            assert_eq!(got.len(), len.div_ceil(chunk));
            assert_eq!(concat(&got), data);
        }
        assert_eq!(
            stream_file(&tmp.path().join("missing.tif"), None, 4096)
                .err()
                .unwrap()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn a_file_that_shrinks_fails_the_body_and_growth_is_not_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), "a.tif", &pattern(20_000, 1));
        let (_, body) = stream_file(&path, None, 4096).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        let err = frames(body).await.unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");

        let path = write(tmp.path(), "b.tif", &pattern(5000, 1));
        let (len, body) = stream_file(&path, None, 4096).unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        io::Write::write_all(&mut f, b"more").unwrap();
        assert_eq!(concat(&frames(body).await.unwrap()), pattern(5000, 1));
        assert_eq!(len, 5000);
    }

    /// A slow consumer takes frames one at a time: the body must never read ahead.
    #[tokio::test]
    async fn memory_stays_bounded_with_a_slow_consumer() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big.tif");
        // 64 MiB, sparse: costs no disk.
        File::create(&big).unwrap().set_len(64 << 20).unwrap();
        let small = write(tmp.path(), "small.tif", b"small");
        let chunk = 1 << 20;

        let counter = Arc::new(AtomicU64::new(0));
        let (_, mut body) = file_body(&big, None, chunk, Some(counter.clone())).unwrap();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap().into_data().unwrap();
            assert!(frame.len() <= chunk);
            received += frame.len() as u64;
            // Everything read so far has been handed out: nothing is buffered.
            assert_eq!(counter.load(Ordering::SeqCst), received);
            if received.is_multiple_of(16 << 20) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert_eq!(counter.load(Ordering::SeqCst), received);
            }
        }
        assert_eq!(received, 64 << 20);

        let counter = Arc::new(AtomicU64::new(0));
        let files = vec![
            ("small.tif".to_string(), small),
            ("big.tif".to_string(), big),
        ];
        let mut body = plan(files, false)
            .unwrap()
            .zip_body(chunk, Some(counter.clone()));
        let (mut received, mut largest) = (0u64, 0usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap().into_data().unwrap();
            largest = largest.max(frame.len());
            received += frame.len() as u64;
            // File bytes read never exceed archive bytes handed out.
            assert!(counter.load(Ordering::SeqCst) <= received);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(counter.load(Ordering::SeqCst), (64 << 20) + 5);
        assert!(largest <= chunk, "{largest}");
    }
}
