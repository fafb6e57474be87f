//! The zip writer behind multi-file downloads: STORED entries with data descriptors,
//! ZIP64 where sizes, offsets or the entry count need it, the archive's exact length
//! planned from the file sizes before the first byte, and each file's CRC computed as
//! it streams (see the parent module for why).

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{Datelike, Timelike};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use super::{
    FailedBody, ReadJob, clamp_chunk, finish_read, spawn_read, with_path, zip_member_paths,
};
use crate::http_app::Body;

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

    pub(super) fn zip_body(self, chunk_size: usize, counter: Option<Arc<AtomicU64>>) -> ZipBody {
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

pub(super) fn plan(files: Vec<(String, PathBuf)>, force_zip64: bool) -> io::Result<ZipPlan> {
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

pub(super) struct ZipBody {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{concat, frames, pattern, write};
    use super::*;
    use hyper::body::Body as _;
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

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
