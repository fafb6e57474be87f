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
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{Datelike, Timelike};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::http_app::Body;

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

fn clamp_chunk(chunk_size: usize) -> usize {
    chunk_size.clamp(MIN_CHUNK, MAX_CHUNK)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------
// Reading chunks on the blocking pool

type ReadJob = JoinHandle<io::Result<(File, Vec<u8>)>>;

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
fn spawn_read(
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
fn finish_read(
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

// ---------------------------------------------------------------------------------
// The zip

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const ZIP64_END_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// Bit 3: CRC and sizes follow the data in a descriptor. Bit 11: the name is UTF-8.
const FLAG_DESCRIPTOR: u16 = 0x0008;
const FLAG_UTF8: u16 = 0x0800;
/// "Made by" Unix (so the external attributes are a file mode), spec version 4.5.
const MADE_BY: u16 = (3 << 8) | 45;
const FILE_MODE: u32 = 0o100644;
const U32_MAX: u64 = 0xFFFF_FFFF;

/// A zip archive laid out from the files' current sizes, ready to stream.
pub struct ZipPlan {
    entries: Vec<ZipEntry>,
    cd_offset: u64,
    cd_size: u64,
    zip64_end: bool,
    len: u64,
    /// The directory every member must lie beneath, checked on each opened file.
    within: Option<PathBuf>,
}

struct ZipEntry {
    name: String,
    path: PathBuf,
    size: u64,
    dos_time: u16,
    dos_date: u16,
    unix_mtime: u32,
    /// Offset of the local header in the archive.
    offset: u64,
    /// 64-bit sizes in the local header, descriptor and central record.
    zip64: bool,
    /// 64-bit offset in the central record.
    zip64_offset: bool,
    crc: u32,
}

/// Lays out the archive: member paths by OMERO's clash rule, sizes from `stat` now
/// (one `stat` per file: for long lists, call it on the blocking pool).
pub fn plan_zip(files: Vec<(String, PathBuf)>) -> io::Result<ZipPlan> {
    plan(files, false)
}

/// A body that streams the zip of `files` (name in the zip, path on disk); a file
/// that cannot be read fails the body. `plan_zip` + `into_body`, for callers that
/// want the archive's length or member paths first.
/// With `within`, every file must lie beneath that (canonical) directory.
pub fn stream_zip(
    files: Vec<(String, PathBuf)>,
    within: Option<PathBuf>,
    chunk_size: usize,
) -> Body {
    match plan_zip(files) {
        Ok(mut plan) => {
            plan.within = within;
            plan.into_body(chunk_size)
        }
        Err(e) => FailedBody(Some(e)).boxed(),
    }
}

impl ZipPlan {
    /// The exact length of the archive in bytes.
    pub fn archive_len(&self) -> u64 {
        self.len
    }

    /// The members as they appear in the archive (path, size), in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|e| (e.name.as_str(), e.size))
    }

    pub fn into_body(self, chunk_size: usize) -> Body {
        self.zip_body(chunk_size, None).boxed()
    }

    fn zip_body(self, chunk_size: usize, counter: Option<Arc<AtomicU64>>) -> ZipBody {
        ZipBody {
            plan: self,
            chunk: clamp_chunk(chunk_size),
            step: Step::Entry(0),
            out: Vec::new(),
            sent: 0,
            file: None,
            remaining: 0,
            want: 0,
            hasher: crc32fast::Hasher::new(),
            job: None,
            counter,
            failed: false,
        }
    }
}

fn plan(files: Vec<(String, PathBuf)>, force_zip64: bool) -> io::Result<ZipPlan> {
    let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    let mut entries = Vec::with_capacity(files.len());
    let mut offset = 0u64;
    for ((_, path), name) in files.into_iter().zip(zip_member_paths(&names)) {
        let meta = fs::metadata(&path).map_err(|e| with_path(e, &path))?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if name.len() > usize::from(u16::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file name too long for a zip: {}", path.display()),
            ));
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let (dos_time, dos_date) = dos_date_time(mtime);
        let entry = ZipEntry {
            name,
            path,
            size: meta.len(),
            dos_time,
            dos_date,
            unix_mtime: unix_mtime(mtime),
            offset,
            zip64: force_zip64 || meta.len() >= U32_MAX,
            zip64_offset: force_zip64 || offset >= U32_MAX,
            crc: 0,
        };
        offset += (local_header(&entry).len() + descriptor(&entry).len()) as u64 + entry.size;
        entries.push(entry);
    }
    let cd_offset = offset;
    let cd_size: u64 = entries.iter().map(|e| central_record(e).len() as u64).sum();
    let zip64_end =
        force_zip64 || entries.len() >= 0xFFFF || cd_offset >= U32_MAX || cd_size >= U32_MAX;
    let mut plan = ZipPlan {
        within: None,
        entries,
        cd_offset,
        cd_size,
        zip64_end,
        len: 0,
    };
    plan.len = cd_offset + cd_size + end_records(&plan).len() as u64;
    Ok(plan)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn flags(entry: &ZipEntry) -> u16 {
    if entry.name.is_ascii() {
        FLAG_DESCRIPTOR
    } else {
        FLAG_DESCRIPTOR | FLAG_UTF8
    }
}

fn version_needed(entry: &ZipEntry) -> u16 {
    if entry.zip64 || entry.zip64_offset {
        45
    } else {
        20
    }
}

/// The "extended timestamp" extra field: the exact mtime in UTC, which unzip prefers
/// over the DOS date (local time of unknown zone, 2 s steps).
fn put_timestamp_extra(out: &mut Vec<u8>, entry: &ZipEntry) {
    put16(out, 0x5455);
    put16(out, 5);
    out.push(1);
    put32(out, entry.unix_mtime);
}

fn local_header(entry: &ZipEntry) -> Vec<u8> {
    let mut extra = Vec::new();
    if entry.zip64 {
        // Sizes follow in the descriptor; with bit 3 set they are zero here.
        put16(&mut extra, 0x0001);
        put16(&mut extra, 16);
        put64(&mut extra, 0);
        put64(&mut extra, 0);
    }
    put_timestamp_extra(&mut extra, entry);
    let size_field = if entry.zip64 { u32::MAX } else { 0 };
    let mut out = Vec::with_capacity(30 + entry.name.len() + extra.len());
    put32(&mut out, LOCAL_HEADER_SIG);
    put16(&mut out, version_needed(entry));
    put16(&mut out, flags(entry));
    put16(&mut out, 0); // stored
    put16(&mut out, entry.dos_time);
    put16(&mut out, entry.dos_date);
    put32(&mut out, 0); // CRC: in the descriptor
    put32(&mut out, size_field);
    put32(&mut out, size_field);
    put16(&mut out, entry.name.len() as u16);
    put16(&mut out, extra.len() as u16);
    out.extend_from_slice(entry.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

fn descriptor(entry: &ZipEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    put32(&mut out, DESCRIPTOR_SIG);
    put32(&mut out, entry.crc);
    if entry.zip64 {
        put64(&mut out, entry.size);
        put64(&mut out, entry.size);
    } else {
        put32(&mut out, entry.size as u32);
        put32(&mut out, entry.size as u32);
    }
    out
}

fn central_record(entry: &ZipEntry) -> Vec<u8> {
    let mut zip64 = Vec::new();
    if entry.zip64 {
        put64(&mut zip64, entry.size);
        put64(&mut zip64, entry.size);
    }
    if entry.zip64_offset {
        put64(&mut zip64, entry.offset);
    }
    let mut extra = Vec::new();
    if !zip64.is_empty() {
        put16(&mut extra, 0x0001);
        put16(&mut extra, zip64.len() as u16);
        extra.extend_from_slice(&zip64);
    }
    put_timestamp_extra(&mut extra, entry);
    let size_field = if entry.zip64 {
        u32::MAX
    } else {
        entry.size as u32
    };
    let offset_field = if entry.zip64_offset {
        u32::MAX
    } else {
        entry.offset as u32
    };
    let mut out = Vec::with_capacity(46 + entry.name.len() + extra.len());
    put32(&mut out, CENTRAL_SIG);
    put16(&mut out, MADE_BY);
    put16(&mut out, version_needed(entry));
    put16(&mut out, flags(entry));
    put16(&mut out, 0);
    put16(&mut out, entry.dos_time);
    put16(&mut out, entry.dos_date);
    put32(&mut out, entry.crc);
    put32(&mut out, size_field);
    put32(&mut out, size_field);
    put16(&mut out, entry.name.len() as u16);
    put16(&mut out, extra.len() as u16);
    put16(&mut out, 0); // comment
    put16(&mut out, 0); // disk
    put16(&mut out, 0); // internal attributes
    put32(&mut out, FILE_MODE << 16);
    put32(&mut out, offset_field);
    out.extend_from_slice(entry.name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// ZIP64 end record and locator when needed, then the classic end record.
fn end_records(plan: &ZipPlan) -> Vec<u8> {
    let count = plan.entries.len() as u64;
    let mut out = Vec::new();
    if plan.zip64_end {
        let zip64_end_offset = plan.cd_offset + plan.cd_size;
        put32(&mut out, ZIP64_END_SIG);
        put64(&mut out, 44); // size of the rest of this record
        put16(&mut out, MADE_BY);
        put16(&mut out, 45);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put64(&mut out, count);
        put64(&mut out, count);
        put64(&mut out, plan.cd_size);
        put64(&mut out, plan.cd_offset);
        put32(&mut out, ZIP64_LOCATOR_SIG);
        put32(&mut out, 0);
        put64(&mut out, zip64_end_offset);
        put32(&mut out, 1);
    }
    put32(&mut out, END_SIG);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count.min(0xFFFF) as u16);
    put16(&mut out, count.min(0xFFFF) as u16);
    put32(&mut out, plan.cd_size.min(U32_MAX) as u32);
    put32(&mut out, plan.cd_offset.min(U32_MAX) as u32);
    put16(&mut out, 0);
    out
}

/// MS-DOS date and time (UTC; clamped to 1980–2107, the range the format has).
fn dos_date_time(t: SystemTime) -> (u16, u16) {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    if dt.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    if dt.year() > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = (dt.hour() << 11) | (dt.minute() << 5) | (dt.second() / 2);
    let date = (((dt.year() - 1980) as u32) << 9) | (dt.month() << 5) | dt.day();
    (time as u16, date as u16)
}

fn unix_mtime(t: SystemTime) -> u32 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs().min(u64::from(u32::MAX)) as u32,
        Err(_) => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Next: the local header of entry i (the central directory when i == count).
    Entry(usize),
    /// Streaming entry i's data.
    Data(usize),
    /// Next: the central record of entry i (the end records when i == count).
    Central(usize),
    Done,
}

struct ZipBody {
    plan: ZipPlan,
    chunk: usize,
    step: Step,
    /// Small structures (headers, descriptors, central directory) waiting to go out.
    out: Vec<u8>,
    sent: u64,
    file: Option<File>,
    remaining: u64,
    want: usize,
    hasher: crc32fast::Hasher,
    job: Option<ReadJob>,
    counter: Option<Arc<AtomicU64>>,
    failed: bool,
}

impl ZipBody {
    fn emit(&mut self, bytes: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.sent += bytes.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))))
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.failed = true;
        self.job = None;
        self.file = None;
        self.out = Vec::new();
        Poll::Ready(Some(Err(e)))
    }

    /// The layout computed up front must match what is sent, byte for byte.
    fn check_position(&self, expected: u64) -> io::Result<()> {
        let at = self.sent + self.out.len() as u64;
        if at == expected {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "zip layout mismatch: at byte {at}, expected {expected}"
            )))
        }
    }
}

impl hyper::body::Body for ZipBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            if let Some(job) = this.job.as_mut() {
                let result = ready!(Pin::new(job).poll(cx));
                this.job = None;
                let Step::Data(i) = this.step else {
                    unreachable!("reads happen only while streaming data")
                };
                return match finish_read(result, this.want, &this.plan.entries[i].path) {
                    Ok((file, buf)) => {
                        this.hasher.update(&buf);
                        this.remaining -= buf.len() as u64;
                        this.file = Some(file);
                        this.emit(buf)
                    }
                    Err(e) => this.fail(e),
                };
            }
            let count = this.plan.entries.len();
            match this.step {
                Step::Entry(i) if i < count => {
                    if let Err(e) = this.check_position(this.plan.entries[i].offset) {
                        return this.fail(e);
                    }
                    let header = local_header(&this.plan.entries[i]);
                    this.out.extend_from_slice(&header);
                    this.hasher = crc32fast::Hasher::new();
                    this.remaining = this.plan.entries[i].size;
                    this.file = None;
                    this.step = Step::Data(i);
                }
                Step::Entry(_) => {
                    if let Err(e) = this.check_position(this.plan.cd_offset) {
                        return this.fail(e);
                    }
                    this.step = Step::Central(0);
                }
                Step::Data(i) if this.remaining == 0 => {
                    let hasher = std::mem::take(&mut this.hasher);
                    this.plan.entries[i].crc = hasher.finalize();
                    this.file = None;
                    let descriptor = descriptor(&this.plan.entries[i]);
                    this.out.extend_from_slice(&descriptor);
                    this.step = Step::Entry(i + 1);
                }
                Step::Data(i) => {
                    // Headers go out before the data that follows them.
                    if !this.out.is_empty() {
                        let out = std::mem::take(&mut this.out);
                        return this.emit(out);
                    }
                    this.want = this.remaining.min(this.chunk as u64) as usize;
                    let path = this.plan.entries[i].path.clone();
                    let within = this.plan.within.clone();
                    let job = spawn_read(
                        this.file.take(),
                        path,
                        within,
                        this.want,
                        this.counter.clone(),
                    );
                    this.job = Some(job);
                }
                Step::Central(i) if i < count => {
                    let record = central_record(&this.plan.entries[i]);
                    this.out.extend_from_slice(&record);
                    this.step = Step::Central(i + 1);
                    // A directory of many thousands of entries goes out in pieces.
                    if this.out.len() >= this.chunk {
                        let out = std::mem::take(&mut this.out);
                        return this.emit(out);
                    }
                }
                Step::Central(_) => {
                    let end = end_records(&this.plan);
                    this.out.extend_from_slice(&end);
                    this.step = Step::Done;
                }
                Step::Done => {
                    if !this.out.is_empty() {
                        let out = std::mem::take(&mut this.out);
                        return this.emit(out);
                    }
                    if this.sent != this.plan.len {
                        let e = this.check_position(this.plan.len).unwrap_err();
                        return this.fail(e);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.step == Step::Done && self.out.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.plan.len.saturating_sub(self.sent))
    }
}

/// A body that fails with the given error on its first poll.
struct FailedBody(Option<io::Error>);

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
    use super::*;
    use hyper::body::Body as _;
    use std::process::Command;
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

    fn write(dir: &Path, rel: &str, data: &[u8]) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        path
    }

    /// Deterministic bytes that differ from chunk to chunk.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    async fn frames<B>(mut body: B) -> io::Result<Vec<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes, Error = io::Error> + Unpin,
    {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame?.into_data().unwrap());
        }
        Ok(out)
    }

    fn concat(frames: &[Bytes]) -> Vec<u8> {
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

    fn unzip(archive: &Path, args: &[&str], dir: &Path) -> String {
        let out = Command::new("unzip")
            // UTF-8 names are only written as such in a UTF-8 locale.
            .env("LC_ALL", "C.UTF-8")
            .args(args)
            .arg(archive)
            .current_dir(dir)
            .output()
            .expect("the `unzip` program (Debian package unzip) is needed by this test");
        assert!(
            out.status.success(),
            "unzip {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn check_zip_with_unzip(force_zip64: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let mut files = Vec::new();
        let mut expected = Vec::new();
        for (name, rel, data) in [
            ("a.tif", "one/a.tif", pattern(10_000, 1)),
            ("empty.png", "empty.png", Vec::new()),
            ("a.tif", "two/a.tif", pattern(4096 * 5 + 3, 2)),
            ("zellé 1,2.jpg", "zelle.jpg", pattern(7, 3)),
            ("a.tif", "three/a.tif", pattern(1, 4)),
        ] {
            let path = write(&src, rel, &data);
            files.push((name.to_string(), path));
            expected.push(data);
        }
        let plan = plan(files, force_zip64).unwrap();
        let members: Vec<String> = plan.members().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            members,
            vec!["a.tif", "empty.png", "1/a.tif", "zellé 1,2.jpg", "2/a.tif"]
        );
        let len = plan.archive_len();
        let body = plan.into_body(4096);
        assert_eq!(body.size_hint().exact(), Some(len));
        let archive = concat(&frames(body).await.unwrap());
        assert_eq!(archive.len() as u64, len);

        let zip_path = tmp.path().join("out.zip");
        fs::write(&zip_path, &archive).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        unzip(&zip_path, &["-tq"], tmp.path());
        unzip(&zip_path, &["-q"], &out);
        for (member, data) in members.iter().zip(&expected) {
            assert_eq!(&fs::read(out.join(member)).unwrap(), data, "{member}");
        }
        let mut listed: Vec<String> = unzip(&zip_path, &["-Z1"], tmp.path())
            .lines()
            .map(str::to_string)
            .collect();
        listed.sort();
        let mut want = members.clone();
        want.sort();
        assert_eq!(listed, want);
        // The mtime survives (extended timestamp field).
        let src_mtime = fs::metadata(src.join("one/a.tif"))
            .unwrap()
            .modified()
            .unwrap();
        let out_mtime = fs::metadata(out.join("a.tif")).unwrap().modified().unwrap();
        let diff = src_mtime
            .duration_since(out_mtime)
            .unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_secs(1), "{diff:?}");
    }

    #[tokio::test]
    async fn zip_extracts_with_unzip() {
        check_zip_with_unzip(false).await;
    }

    #[tokio::test]
    async fn zip64_extracts_with_unzip() {
        check_zip_with_unzip(true).await;
    }

    #[tokio::test]
    async fn zip_of_a_missing_file_fails_the_body() {
        let tmp = tempfile::tempdir().unwrap();
        let body = stream_zip(
            vec![("x.tif".into(), tmp.path().join("missing"))],
            None,
            4096,
        );
        let err = frames(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        // Removed after planning: the body fails when it gets there.
        let a = write(tmp.path(), "a.tif", &pattern(100, 0));
        let b = write(tmp.path(), "b.tif", &pattern(100, 0));
        let body = stream_zip(
            vec![("a.tif".into(), a), ("b.tif".into(), b.clone())],
            None,
            4096,
        );
        fs::remove_file(&b).unwrap();
        let err = frames(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn totals_and_many_entries_switch_to_zip64_end() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(tmp.path(), "a.tif", b"12345");
        let files = vec![("a.tif".to_string(), a.clone()), ("b.tif".to_string(), a)];
        assert!(!plan(files, false).unwrap().zip64_end);
    }
}
