//! The image gateway end to end: demo data, the real pool, real HTTP, the private
//! nginx in front.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{TestSite, decode_jpeg, fetch, free_port, header, nginx_available, wait_until};

const LONG: Duration = Duration::from_secs(60);

fn demo_site(workers: u32, class: &str) -> TestSite {
    TestSite::with_demo(
        workers,
        &format!("\"omero.web.wsgi_worker_class\" = \"{class}\"\n"),
        &[
            "--images",
            "3",
            "--size",
            "300",
            "--channels",
            "3",
            "--z",
            "3",
        ],
    )
}

#[test]
fn thumbnails_planes_imgdata_and_pages() {
    let site = demo_site(2, "gevent");
    site.ok(&["start"]);
    let port = site.port;

    let (status, headers, _) = fetch(port, "/", &[]);
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("/webclient/"))
    );
    let (status, _, body) = fetch(port, "/webclient/", &[]);
    let html = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("3 images"), "{html}");
    for id in 1..=3 {
        assert!(html.contains(&format!("/webclient/render_thumbnail/{id}/")));
    }

    // Default thumbnail: a colour JPEG, 96 px on its longest side, cached.
    let (status, headers, jpeg) = fetch(port, "/webgateway/render_thumbnail/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    let (w, h, c, _) = decode_jpeg(&jpeg);
    assert_eq!((w, h, c), (96, 96, 3));
    // The cache is written in the background, shortly after the response.
    assert!(wait_until(LONG, || {
        std::fs::read_dir(site.root().join("var/cache/thumbnails")).is_ok_and(|d| d.count() > 0)
    }));
    let (_, _, small) = fetch(port, "/webgateway/render_thumbnail/1/40/", &[]);
    assert_eq!(decode_jpeg(&small).0, 40);
    let (_, _, exact) = fetch(port, "/webgateway/render_thumbnail/1/60/30/", &[]);
    let (w, h, _, _) = decode_jpeg(&exact);
    assert_eq!((w, h), (60, 30));

    // Conditional requests.
    let etag = header(&headers, "etag").unwrap().to_string();
    let (status, _, body) = fetch(
        port,
        "/webgateway/render_thumbnail/1/",
        &[("If-None-Match", &etag)],
    );
    assert_eq!((status, body.len()), (304, 0));
    let modified = header(&headers, "last-modified").unwrap().to_string();
    assert_eq!(
        fetch(
            port,
            "/webgateway/render_thumbnail/1/",
            &[("If-Modified-Since", &modified)]
        )
        .0,
        304
    );

    // A full plane of a 3-channel image is a colour JPEG of the plane's size.
    let (status, _, jpeg) = fetch(port, "/webgateway/render_image/2/", &[]);
    assert_eq!(status, 200);
    let (w, h, c, pixels) = decode_jpeg(&jpeg);
    assert_eq!((w, h, c), (300, 300, 3));
    let plane = (w * h) as usize;
    let differs = (0..plane)
        .filter(|&i| pixels[i] != pixels[plane + i] || pixels[i] != pixels[2 * plane + i])
        .count();
    assert!(
        differs > plane / 20,
        "the plane looks grey ({differs} coloured pixels)"
    );
    // Only channel 1, in red: green and blue stay dark.
    let (_, _, jpeg) = fetch(
        port,
        "/webgateway/render_image/2/1/0/?c=1|0:5000$FF0000,-2,-3&m=c",
        &[],
    );
    let (_, _, _, pixels) = decode_jpeg(&jpeg);
    let max_of = |k: usize| {
        pixels[k * plane..(k + 1) * plane]
            .iter()
            .copied()
            .max()
            .unwrap()
    };
    assert!(
        max_of(0) > 150 && max_of(1) < 60 && max_of(2) < 60,
        "r {} g {} b {}",
        max_of(0),
        max_of(1),
        max_of(2)
    );
    // A region.
    let (status, _, jpeg) = fetch(
        port,
        "/webgateway/render_image_region/2/0/0/?region=10,20,64,32",
        &[],
    );
    assert_eq!(status, 200);
    let (w, h, _, _) = decode_jpeg(&jpeg);
    assert_eq!((w, h), (64, 32));

    // OMERO's errors.
    let (status, _, body) = fetch(
        port,
        "/webgateway/render_image_region/2/0/0/?region=1,2",
        &[],
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).starts_with("malformed region argument"));
    assert_eq!(
        fetch(port, "/webgateway/render_image_region/2/0/0/", &[]).0,
        400
    );
    assert_eq!(fetch(port, "/webgateway/render_image/2/?q=1.5", &[]).0, 400);
    assert_eq!(fetch(port, "/webgateway/render_image/99/", &[]).0, 404);
    assert_eq!(fetch(port, "/webgateway/render_thumbnail/99/", &[]).0, 404);
    // Bounded sizes: a huge thumbnail or output is refused, not rendered.
    assert_eq!(
        fetch(port, "/webgateway/render_thumbnail/1/8192/8192/", &[]).0,
        400
    );
    assert_eq!(fetch(port, "/webgateway/render_thumbnail/1/0/", &[]).0, 400);
    let (status, headers, _) = fetch(port, "/webclient/render_thumbnail/99/", &[]);
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, Some("image/jpeg"))
    );

    // imgData in OMERO's shape.
    let (status, _, body) = fetch(port, "/webgateway/imgData/2/", &[]);
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["id"], 2);
    assert_eq!(
        json["size"],
        serde_json::json!({"width": 300, "height": 300, "z": 3, "t": 1, "c": 3})
    );
    assert_eq!(json["meta"]["pixelsType"], "uint16");
    assert_eq!(json["rdefs"]["model"], "color");
    assert_eq!(json["rdefs"]["defaultZ"], 1);
    assert_eq!(json["channels"].as_array().unwrap().len(), 3);
    assert_eq!(json["channels"][0]["active"], true);
    assert!(json["channels"][0]["label"].is_string() && json["channels"][0]["color"].is_string());

    // The viewer page and the static files it uses.
    let (status, _, body) = fetch(port, "/webclient/img_detail/2/", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("/webgateway/render_image/2/1/0/"));
    let (status, headers, _) = fetch(port, "/static/webclient/viewer.js", &[]);
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, Some("text/javascript; charset=utf-8"))
    );
    assert_eq!(fetch(port, "/static/../etc/omero-web.toml", &[]).0, 404);
}

#[test]
fn downloads_stream_the_original_bytes_and_honour_the_policy() {
    let site = demo_site(1, "gevent");
    site.ok(&["start"]);
    let port = site.port;
    let file =
        |name: &str| std::fs::read(site.root().join("var/repository/demo").join(name)).unwrap();

    let (status, headers, body) = fetch(port, "/webgateway/archived_files/download/1/", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/force-download")
    );
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=demo-001.ome.tiff")
    );
    assert_eq!(body, file("demo-001.ome.tiff"));

    let (status, headers, zip) = fetch(
        port,
        "/webgateway/archived_files/download/?image=1&image=3",
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some(zip.len().to_string().as_str())
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.zip"), &zip).unwrap();
    let unzip = std::process::Command::new("unzip")
        .args(["-q", "a.zip"])
        .current_dir(dir.path())
        .status()
        .expect("unzip");
    assert!(unzip.success());
    assert_eq!(
        std::fs::read(dir.path().join("demo-001.ome.tiff")).unwrap(),
        file("demo-001.ome.tiff")
    );
    assert_eq!(
        std::fs::read(dir.path().join("demo-003.ome.tiff")).unwrap(),
        file("demo-003.ome.tiff")
    );

    // A zip name with control characters is sanitised, not a crash.
    let (status, headers, _) = fetch(
        port,
        "/webgateway/archived_files/download/?image=1&image=3&zipname=a%0Db%22c",
        &[],
    );
    assert_eq!(status, 200);
    let disposition = header(&headers, "content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=") && !disposition.contains('\r'),
        "{disposition}"
    );

    let (status, _, body) = fetch(port, "/webgateway/archived_files/download/", &[]);
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).starts_with("No images or wells specified"));

    // Above maximum_multifile_download_size: 403 with OMERO's message.
    site.ok(&[
        "config",
        "set",
        "omero.web.maximum_multifile_download_size",
        "1000",
    ]);
    site.ok(&["reload"]);
    let (status, _, body) = fetch(
        port,
        "/webgateway/archived_files/download/?image=1&image=2",
        &[],
    );
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).starts_with("Total size of files"));

    // omero.policy.binary_access=-read: downloads answer 404 with an empty body.
    site.ok(&["config", "set", "omero.policy.binary_access", "-read"]);
    site.ok(&["reload"]);
    let (status, _, body) = fetch(port, "/webgateway/archived_files/download/1/", &[]);
    assert_eq!((status, body.len()), (404, 0));
}

#[test]
fn files_added_while_running_get_new_stable_ids() {
    let site = demo_site(1, "gevent");
    site.ok(&["start"]);
    let repo = site.root().join("var/repository");
    std::fs::copy(
        repo.join("demo/demo-002.ome.tiff"),
        repo.join("added.ome.tiff"),
    )
    .unwrap();
    assert!(wait_until(LONG, || {
        let (_, _, body) = fetch(site.port, "/webclient/", &[]);
        String::from_utf8_lossy(&body).contains("added.ome.tiff")
    }));
    let (_, _, body) = fetch(site.port, "/webclient/", &[]);
    // The card of image 4, its thumbnail URL versioned (gateway::thumbnail_version).
    let html = String::from_utf8_lossy(&body);
    let card = html
        .split("<li ")
        .find(|card| card.contains("alt=\"added.ome.tiff\""))
        .unwrap_or_else(|| panic!("no card for added.ome.tiff: {html}"));
    assert!(
        card.contains("/webclient/img_detail/4/\"><img src=\"/webclient/render_thumbnail/4/?v="),
        "{card}"
    );
    // Removing an image leaves a gap; ids survive a restart.
    std::fs::remove_file(repo.join("demo/demo-001.ome.tiff")).unwrap();
    site.ok(&["restart"]);
    assert!(wait_until(LONG, || fetch(
        site.port,
        "/webgateway/render_thumbnail/1/",
        &[]
    )
    .0 == 404));
    assert_eq!(fetch(site.port, "/webgateway/imgData/4/", &[]).0, 200);
}

#[test]
fn through_nginx_a_long_download_streams_while_thumbnails_keep_coming() {
    if !nginx_available("through_nginx_a_long_download_streams") {
        return;
    }
    let site = demo_site(1, "gevent");
    // A 48 MiB "original file" (downloads do not parse it).
    let big: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(site.root().join("var/repository/big.tif"), &big).unwrap();
    site.ok(&["start"]);
    let http = free_port();
    site.ok(&["nginx", "start", "--http", &http.to_string()]);

    let (_, _, body) = fetch(http, "/webclient/", &[]);
    let html = String::from_utf8_lossy(&body).into_owned();
    assert!(
        html.contains("4 images") && html.contains("big.tif"),
        "{html}"
    );
    let big_id = html
        .split("/webclient/img_detail/")
        .skip(1)
        .find(|s| s.contains("alt=\"big.tif\""))
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();

    // A slow client reads the download; meanwhile the one gevent worker keeps
    // serving thumbnails through nginx.
    let mut download = TcpStream::connect(("127.0.0.1", http)).unwrap();
    download
        .write_all(
            format!("GET /webgateway/archived_files/download/{big_id}/ HTTP/1.0\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut thumbnails = 0;
    loop {
        let n = download.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        if received.len() % (4 << 20) < n && thumbnails < 10 {
            let (status, _, jpeg) = fetch(http, "/webgateway/render_thumbnail/2/", &[]);
            assert_eq!(status, 200);
            assert_eq!(decode_jpeg(&jpeg).0, 96);
            thumbnails += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let split = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        thumbnails >= 5,
        "only {thumbnails} thumbnails during the download"
    );
    assert!(
        received[split + 4..] == big[..],
        "the download through nginx differs from the file"
    );
}

#[test]
fn an_idle_worker_gives_back_the_memory_rendering_took() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "1",
            "--size",
            "1536",
            "--channels",
            "3",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];
    let rss_mib = || {
        std::fs::read_to_string(format!("/proc/{worker}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024
    };
    let idle = rss_mib();
    // Whole 1536² planes (mixed a band of rows at a time: a 6.75 MiB RGB buffer and a
    // JPEG), and regions one column narrower, which are read as whole planes: three
    // 4.5 MiB channels decoded besides. Then thumbnails, read from a mapping of the
    // 13.5 MiB file that the worker keeps while busy (its pages count in RSS).
    for path in [
        "/webgateway/render_image/1/",
        "/webgateway/render_image_region/1/0/0/?region=1,0,1535,1536",
        "/webgateway/render_thumbnail/1/95/",
    ] {
        for _ in 0..3 {
            let (status, _, body) = fetch(site.port, path, &[]);
            assert_eq!(status, 200, "{path}");
            assert!(!body.is_empty());
        }
    }
    let busy = rss_mib();
    assert!(
        busy > idle + 15,
        "rendering took memory: {idle} → {busy} MiB"
    );
    // Rendering keeps freed buffers and the mapping for the next request; idle, the
    // worker unmaps and trims.
    assert!(
        wait_until(LONG, || rss_mib() < idle + 8),
        "an idle worker keeps {} MiB (it had {idle} MiB before rendering)",
        rss_mib()
    );
}

#[test]
fn a_file_truncated_while_it_is_downloaded_or_rendered_costs_only_that_request() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "2",
            "--size",
            "1024",
            "--channels",
            "3",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];
    let victim = site.root().join("var/repository/demo/demo-001.ome.tiff");
    let full = std::fs::metadata(&victim).unwrap().len();

    // A slow download: read the head, then the file is cut short in place.
    let mut stream = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /webgateway/archived_files/download/1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = stream.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(full / 3)
        .unwrap();
    // The response ends (whole if it was already sent, else cut short with the
    // connection closed); it never hangs until the read times out.
    let mut rest = Vec::new();
    if let Err(e) = stream.read_to_end(&mut rest) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the download hung after the file was cut: {e}"
        );
    }
    assert!(
        ((n + rest.len()) as u64) < full + 4096,
        "more than the file was sent"
    );

    // Rendering the cut file fails cleanly; the other image and the worker are fine.
    let (status, _, _) = fetch(site.port, "/webgateway/render_image/1/", &[]);
    assert!(status == 404 || status == 500, "status {status}");
    let (status, _, _) = fetch(site.port, "/webgateway/render_thumbnail/2/", &[]);
    assert_eq!(status, 200);
    assert_eq!(site.ready_pids(), [worker], "the worker survived");
    assert_eq!(site.status_json()["restarts"], 0);
}

/// Thumbnails read their sampled rows from a mapping of the file that the worker keeps
/// (`source::mapped`): a file cut short while such a read runs would raise SIGBUS in the
/// worker, whose default action kills it. Here the file is cut and restored over and
/// over while two clients ask for its thumbnails: every answer is a thumbnail or an
/// error of that request alone, the worker is never replaced, and once the file is whole
/// again its thumbnail is the one it had before.
#[test]
fn a_file_cut_and_restored_under_thumbnails_read_from_its_mapping_costs_no_worker() {
    use std::os::unix::fs::FileExt;
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "1",
            "--size",
            "1024",
            "--channels",
            "3",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];
    let victim = site.root().join("var/repository/demo/demo-001.ome.tiff");
    let original = std::fs::read(&victim).unwrap();
    let thumbnail = "/webgateway/render_thumbnail/1/96/";
    let (status, _, before) = fetch(site.port, thumbnail, &[]);
    assert_eq!(status, 200);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let port = site.port;
            std::thread::spawn(move || {
                let mut answers = std::collections::BTreeMap::<u16, u32>::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // 0: no answer at all (the connection broke: the worker died).
                    let status =
                        std::panic::catch_unwind(|| fetch(port, thumbnail, &[]).0).unwrap_or(0);
                    *answers.entry(status).or_default() += 1;
                }
                answers
            })
        })
        .collect();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    let started = std::time::Instant::now();
    let mut cuts = 0;
    // Whole for a while (the thumbnails come from one kept mapping), then cut for a
    // moment under the reads in flight.
    while started.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(250));
        file.set_len(original.len() as u64 / 3).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        file.write_all_at(&original[original.len() / 3..], original.len() as u64 / 3)
            .unwrap();
        cuts += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for client in clients {
        for (status, n) in client.join().unwrap() {
            *answers.entry(status).or_default() += n;
        }
    }
    eprintln!("{cuts} cuts; answers by status: {answers:?}");
    assert!(answers.get(&200).copied().unwrap_or(0) > 0, "{answers:?}");
    assert!(
        answers.keys().all(|s| [200, 404, 500].contains(s)),
        "only thumbnails and errors of their own request (0: no answer): {answers:?}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), original);
    assert_eq!(site.ready_pids(), [worker], "the worker survived every cut");
    assert_eq!(site.status_json()["restarts"], 0);
    let (status, _, after) = fetch(site.port, thumbnail, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        after, before,
        "the restored file's thumbnail is the one it had"
    );
}

/// A PNG chunk: length, type, data, CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    chunk
}

#[test]
fn corrupt_and_hostile_repository_files_cost_only_their_own_requests() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "1",
            "--size",
            "64",
            "--channels",
            "2",
            "--z",
            "1",
        ],
    );
    let repo = site.root().join("var/repository/bad");
    std::fs::create_dir_all(&repo).unwrap();
    let good = std::fs::read(site.root().join("var/repository/demo/demo-001.ome.tiff")).unwrap();
    // An OME-TIFF whose first directory points far past the end of the file.
    let mut lost_ifd = good.clone();
    lost_ifd[4..8].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    // An OME-TIFF cut in the middle of its pixels.
    let cut = good[..good.len() / 2].to_vec();
    // A PNG that declares 100000 × 100000 16-bit pixels in a few bytes.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[16, 0, 0, 0, 0]);
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bomb.extend(png_chunk(b"IEND", &[]));
    let files: [(&str, Vec<u8>); 7] = [
        ("empty.ome.tiff", Vec::new()),
        ("noise.tif", {
            let mut v = b"II*\0\x08\0\0\0".to_vec();
            v.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
            v
        }),
        ("lost-ifd.ome.tiff", lost_ifd),
        ("cut.ome.tiff", cut),
        ("bomb.png", bomb),
        ("cut.png", b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0".to_vec()),
        (
            "noise.jpg",
            b"\xff\xd8\xff\xe0\0\x10JFIF\0garbage garbage".to_vec(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(repo.join(name), bytes).unwrap();
    }
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];

    // Every ID the repository could have given, through every kind of image route:
    // each is answered (a refusal, not a dropped connection), none takes the worker.
    let mut good_thumbnails = 0;
    for id in 1..=files.len() as u32 + 1 {
        for path in [
            format!("/webgateway/render_thumbnail/{id}/"),
            format!("/webgateway/render_image/{id}/0/0/"),
            format!("/webgateway/render_image_region/{id}/0/0/?region=0,0,32,32"),
            format!("/webgateway/imgData/{id}/"),
            format!("/webgateway/archived_files/download/{id}/"),
        ] {
            let (status, _, body) = fetch(site.port, &path, &[]);
            assert!(
                [200, 400, 404, 500].contains(&status),
                "{path}: status {status}"
            );
            if status == 200 && path.contains("render_thumbnail") {
                decode_jpeg(&body);
                good_thumbnails += 1;
            }
        }
    }
    // The good image among them renders, the seven bad ones do not; the worker never
    // died.
    assert_eq!(good_thumbnails, 1, "only the demo image renders");
    assert_eq!(site.ready_pids(), [worker], "the worker survived");
    let status = site.status_json();
    assert_eq!(status["restarts"], 0, "{status}");
}

#[test]
fn traversal_in_any_segment_and_any_encoding_reaches_no_file_outside() {
    let site = TestSite::with_demo(
        1,
        "",
        &[
            "--images",
            "1",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    // A marker in the config: whatever leaks it shows.
    site.append_config("\"omero.web.login_logo\" = \"/static/SECRET-MARKER.png\"\n");
    site.ok(&["start"]);
    let worker = site.ready_pids()[0];
    let targets = ["etc/omero-web.toml", "etc/passwd"];
    let dots = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e.",
        "%252e%252e",
        "..%c0%af",
    ];
    let slashes = ["/", "%2f", "%2F", "%5c", "\\", "%252f", "//"];
    let mut paths = Vec::new();
    for dot in dots {
        for slash in slashes {
            // Two steps up from var/static is the site (its etc/omero-web.toml),
            // three from var/static/webclient; six reach / (and /etc/passwd).
            for (up, target) in [2, 3, 6]
                .iter()
                .flat_map(|&n| targets.map(|t| (format!("{dot}{slash}").repeat(n), t)))
            {
                for prefix in [
                    "/static/",
                    "/static/webclient/",
                    "/webgateway/render_thumbnail/",
                    "/webgateway/archived_files/download/",
                    "/webclient/img_detail/",
                    "/webgateway/imgData/",
                    "/webgateway/render_image/1/0/",
                    "/",
                ] {
                    paths.push(format!("{prefix}{up}{target}"));
                }
            }
        }
    }
    for path in &paths {
        let (status, _, body) = fetch(site.port, path, &[]);
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("SECRET-MARKER") && !text.contains("root:x:0:0"),
            "{path}: a file outside was served ({status})"
        );
        assert!(
            [301, 302, 400, 404].contains(&status),
            "{path}: status {status}"
        );
    }
    assert_eq!(site.ready_pids(), [worker], "the worker survived");
    assert!(paths.len() > 2000, "{} paths", paths.len());
}

#[test]
fn a_request_sent_after_reload_returns_meets_the_new_settings() {
    let site = TestSite::with_demo(
        3,
        "",
        &[
            "--images",
            "1",
            "--size",
            "64",
            "--channels",
            "1",
            "--z",
            "1",
        ],
    );
    site.ok(&["start"]);
    // Each reload flips the download policy; the very next request, on a new
    // connection, must see it: no old worker may still be accepting.
    for round in 0..6 {
        let (policy, expected) = if round % 2 == 0 {
            ("-read", 404)
        } else {
            ("+read", 200)
        };
        site.ok(&["config", "set", "omero.policy.binary_access", policy]);
        site.ok(&["reload"]);
        for _ in 0..5 {
            let (status, _, _) = fetch(site.port, "/webgateway/archived_files/download/1/", &[]);
            assert_eq!(status, expected, "round {round}: binary_access {policy}");
        }
    }
}

#[test]
fn webclient_favicon_error_pages_etags_and_download_names() {
    let site = demo_site(1, "gthread");
    std::fs::copy(
        site.root().join("var/repository/demo/demo-001.ome.tiff"),
        site.root().join("var/repository/my cells, day 1.ome.tiff"),
    )
    .unwrap();
    std::fs::write(
        site.root().join("var/repository/zz-broken.tif"),
        b"II*\0 not really a TIFF",
    )
    .unwrap();
    site.ok(&["start"]);
    let port = site.port;

    // The favicon is there (no 404, so no WARN line in OMEROweb.log) and is an ICO.
    let (status, headers, icon) = fetch(port, "/favicon.ico", &[]);
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, Some("image/x-icon"))
    );
    assert_eq!(&icon[..4], &[0, 0, 1, 0]);
    let (status, _, svg) = fetch(port, "/static/webclient/favicon.svg", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&svg).starts_with("<svg"));

    // OMERO's viewer link opens the viewer; an unknown image or page gets a styled
    // page with a way back.
    let (status, _, body) = fetch(port, "/webgateway/img_detail/1/", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("id=\"viewer\""));
    let html = String::from_utf8(fetch(port, "/webclient/?q=broken", &[]).2).unwrap();
    let broken = html
        .split("/webclient/img_detail/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (status, _, body) = fetch(port, &format!("/webclient/img_detail/{broken}/"), &[]);
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, 404);
    assert!(
        html.contains(&format!("Image {broken} (zz-broken.tif) cannot be read"))
            && html.contains("class=\"error\""),
        "{html}"
    );
    for path in ["/webclient/img_detail/999/", "/webclient/nothing/here/"] {
        let (status, headers, body) = fetch(port, path, &[]);
        let html = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(
            html.contains("class=\"error\"") && html.contains("href=\"/webclient/\""),
            "{html}"
        );
    }

    // One render, one ETag, however the query is encoded.
    let etag = |path: &str| {
        let (status, headers, _) = fetch(port, path, &[]);
        assert_eq!(status, 200, "{path}");
        header(&headers, "etag").unwrap().to_string()
    };
    let plain = etag("/webgateway/render_image/1/0/0/?c=1|0:255$FF0000&m=g");
    let encoded = etag("/webgateway/render_image/1/0/0/?c=1%7C0%3A255%24FF0000&m=g");
    assert_eq!(plain, encoded);
    assert_ne!(
        plain,
        etag("/webgateway/render_image/1/0/0/?c=1|0:255$FF0000&m=c")
    );
    let (status, _, _) = fetch(
        port,
        "/webgateway/render_image/1/0/0/?c=1|0:255$FF0000&m=g",
        &[("If-None-Match", &encoded)],
    );
    assert_eq!(status, 304);

    // A download keeps the real name, spaces and all, in filename*.
    let html = String::from_utf8(fetch(port, "/webclient/?q=my%20cells", &[]).2).unwrap();
    assert!(html.contains("1 image of 5"), "{html}");
    let id = html
        .split("/webclient/img_detail/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let (status, headers, _) = fetch(
        port,
        &format!("/webgateway/archived_files/download/{id}/"),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-disposition"),
        Some(
            "attachment; filename=my_cells._day_1.ome.tiff; filename*=UTF-8''my%20cells%2C%20day%201.ome.tiff"
        )
    );

    assert!(wait_until(LONG, || site
        .log()
        .contains("/webclient/nothing/here/")));
    assert!(!site.log().contains("favicon"), "{}", site.log());
}
