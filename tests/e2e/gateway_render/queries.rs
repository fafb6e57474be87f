//! The render query as OMERO's clients write it: valid, invalid with their messages, and
//! the lenient forms OMERO reads.

use super::*;

// ---------------------------------------------------------------------------------------
// Query parsing

fn three_channels() -> ImageMeta {
    let mut m = meta_with(
        vec![
            ch(None, None, 0, 100),
            ch(None, None, 0, 200),
            ch(None, None, 0, 300),
        ],
        5,
    );
    m.size_x = 1000;
    m.size_y = 800;
    m.size_t = 2;
    m
}

fn chan(active: bool, start: f64, end: f64, color: [u8; 3], inverted: bool) -> ChannelSettings {
    ChannelSettings {
        active,
        start,
        end,
        color,
        alpha: 255,
        lut: None,
        file_lut: None,
        inverted,
    }
}

#[test]
fn parse_valid_queries() {
    let meta = three_channels();
    let r = parse_query("c=1|100:505$0000FF,-2,3|620:3879$FF0000", &meta).unwrap();
    assert_eq!(
        r.settings.channels,
        vec![
            chan(true, 100.0, 505.0, [0, 0, 255], false),
            chan(false, 0.0, 200.0, [0, 255, 0], false),
            chan(true, 620.0, 3879.0, [255, 0, 0], false),
        ]
    );
    // Partial lists switch the others off; %-encoding and a colour right after the index.
    let r = parse_query("c=2%7C1.5%3A2.5%24abc", &meta).unwrap();
    let active: Vec<bool> = r.settings.channels.iter().map(|c| c.active).collect();
    assert_eq!(active, vec![false, true, false]);
    assert_eq!(
        r.settings.channels[1],
        chan(true, 1.5, 2.5, [0xaa, 0xbb, 0xcc], false)
    );
    let r = parse_query("c=3$00ff00", &meta).unwrap();
    assert_eq!(r.settings.channels[2].color, [0, 255, 0]);

    let r = parse_query("m=g&p=intmax|1:3&q=0.5&z=4&t=1&foo=bar", &meta).unwrap();
    assert_eq!(r.settings.model, Model::Greyscale);
    assert_eq!(r.settings.projection, Projection::IntMax);
    assert_eq!(r.settings.projection_range, Some((1, 3)));
    assert_eq!(
        (r.settings.quality, r.settings.z, r.settings.t),
        (0.5, 4, 1)
    );
    assert_eq!(r.region, None);

    for (p, expected) in [
        ("normal", Projection::Normal),
        ("intmean", Projection::IntMean),
        ("intsum", Projection::IntSum),
    ] {
        let r = parse_query(&format!("p={p}"), &meta).unwrap();
        assert_eq!(
            (r.settings.projection, r.settings.projection_range),
            (expected, None)
        );
    }
    for q in ["0", "1", "0.85", "1.0"] {
        parse_query(&format!("q={q}"), &meta).unwrap();
    }

    let region = |q: &str| parse_query(q, &meta).unwrap().region;
    let rect = |x, y, width, height| {
        Some(Region {
            x,
            y,
            width,
            height,
        })
    };
    assert_eq!(region("region=10,20,30,40"), rect(10, 20, 30, 40));
    assert_eq!(region("region=990,790,30,40"), rect(990, 790, 10, 10));
    assert_eq!(region("tile=0,1,1"), rect(512, 512, 488, 288));
    assert_eq!(region("tile=0,0,0,256,128"), rect(0, 0, 256, 128));
    assert_eq!(region("tile=0,0,0,4096,0"), rect(0, 0, 1000, 512)); // capped, defaulted
    assert_eq!(region("tile=0,0,0&region=1,1,1,1"), rect(0, 0, 512, 512)); // tile wins
    assert_eq!(region("region="), None);

    // maps pair as omero-py's set_active_channels pairs them: the k-th map goes to the
    // k-th channel that c mentions, in channel order, so with c=3,1 the first map is
    // channel 1's.
    let r = parse_query(
        "c=3,1&maps=[{\"inverted\":{\"enabled\":true}},{\"quantization\":{\"family\":\"linear\"}}]",
        &meta,
    )
    .unwrap();
    let inv: Vec<bool> = r.settings.channels.iter().map(|c| c.inverted).collect();
    assert_eq!(inv, vec![true, false, false]);

    // Path z/t overrides.
    let mut r = parse_query("z=1", &meta).unwrap();
    r.set_plane(Some(3), None, &meta).unwrap();
    assert_eq!((r.settings.z, r.settings.t), (3, 0));
    assert!(r.set_plane(None, Some(2), &meta).is_err());
}

#[test]
fn parse_invalid_queries_with_messages() {
    let meta = three_channels();
    let cases: &[(&str, &str)] = &[
        (
            "q=1.5",
            "invalid q \"1.5\": JPEG quality must be a number from 0 to 1",
        ),
        ("q=-0.1", "JPEG quality must be a number from 0 to 1"),
        ("q=high", "JPEG quality must be a number from 0 to 1"),
        ("q=NaN", "JPEG quality must be a number from 0 to 1"),
        ("z=5", "z=5 is out of range: the image has 5 (0 to 4)"),
        ("t=x", "invalid t \"x\": expected a plane index"),
        ("region=1,2,3", "malformed region argument, region=1,2,3"),
        (
            "region=a,b,c,d",
            "malformed region argument, region=a,b,c,d",
        ),
        ("region=-1,0,5,5", "malformed region argument"),
        ("region=0,0,0,5", "malformed region argument"),
        (
            "region=1000,0,5,5",
            "region starts at 1000,0, outside the 1000x800 image",
        ),
        (
            "region=%3Cscript%3E",
            "malformed region argument, region=?script?",
        ),
        ("tile=0,1", "malformed tile argument, tile=0,1"),
        ("tile=0,x,1", "malformed tile argument, tile=0,x,1"),
        ("tile=1,0,0", "Invalid resolution level 1, non pyramid file"),
        ("tile=-1,0,0", "Invalid resolution level -1 < 0"),
        (
            "tile=0,2,0",
            "tile 2,0 of 512x512 is outside the 1000x800 image",
        ),
        ("c=%FF", "query string is not valid UTF-8"),
    ];
    for (query, message) in cases {
        match parse_query(query, &meta) {
            Ok(r) => panic!("{query} was accepted: {r:?}"),
            Err(BadRequest(m)) => assert!(m.contains(message), "{query}: got {m:?}"),
        }
    }
    let huge = format!("c=1,2,3,1,-2,{}", "1,".repeat(20_000));
    let err = parse_query(&huge, &meta).unwrap_err();
    assert!(err.0.contains("query string too long"), "{err}");
}

/// What OMERO's `_get_prepared_image` and omero-py accept and how they read it: nothing
/// here is a 400 there, so nothing is one here.
#[test]
fn lenient_queries_read_as_omero_reads_them() {
    let meta = three_channels();
    let parse = |q: &str| {
        parse_query(q, &meta)
            .unwrap_or_else(|e| panic!("{q} refused: {e}"))
            .settings
    };
    let active = |q: &str| -> Vec<bool> { parse(q).channels.iter().map(|c| c.active).collect() };
    // More entries than channels, unknown and zero indexes: ignored.
    assert_eq!(active("c=1,2,3,1"), vec![true, true, true]);
    assert_eq!(active("c=4,2,9"), vec![false, true, false]);
    assert_eq!(active("c=0"), vec![false, false, false]);
    // Entries that are not integers are dropped; an empty c turns everything off.
    assert_eq!(active("c=x,3"), vec![false, false, true]);
    assert_eq!(active("c=1,,2"), vec![true, true, false]);
    assert_eq!(active("c="), vec![false, false, false]);
    // Windows that do not parse leave the default window.
    for q in ["c=1|100", "c=1|a:b", "c=1|0:nan"] {
        let s = parse(q);
        assert_eq!(
            (s.channels[0].start, s.channels[0].end),
            (0.0, 100.0),
            "{q}"
        );
    }
    // Colours: RGB, RGBA, RRGGBB, RRGGBBAA; anything else keeps the colour.
    let colour = |q: &str| {
        let c = &parse(q).channels[0];
        (c.color, c.alpha, c.lut.clone())
    };
    assert_eq!(colour("c=1$f0a"), ([0xff, 0, 0xaa], 255, None));
    assert_eq!(colour("c=1$f0a8"), ([0xff, 0, 0xaa], 0x88, None));
    assert_eq!(colour("c=1|0:1$00FF0080"), ([0, 255, 0], 0x80, None));
    assert_eq!(colour("c=1|0:1$GG0000"), ([255, 0, 0], 255, None));
    assert_eq!(colour("c=1|0:1$#00FF00"), ([255, 0, 0], 255, None));
    assert_eq!(
        colour("c=1|0:1$cool.lut"),
        ([255, 0, 0], 255, Some("cool.lut".to_string()))
    );
    // A second entry for the same channel is never read: only the first counts.
    assert_eq!(
        colour("c=1$cool.lut,1$00FF00").2,
        Some("cool.lut".to_string())
    );
    // Inactive entries change nothing but still count for the pairing.
    let s = parse("c=-1|5:6$00FF00,2|7:8");
    assert_eq!(s.channels[0], chan(false, 0.0, 100.0, [255, 0, 0], false));
    assert_eq!(s.channels[1], chan(true, 7.0, 8.0, [0, 255, 0], false));
    // Unknown m keeps the default model; unknown p renders as normal.
    assert_eq!(parse("m=x").model, Model::Color);
    assert_eq!(parse("p=max").projection, Projection::Normal);
    // Projection ranges: unparsable → every Z; clipped to the Z planes (to the T
    // count under ia=1); reversed ones are kept, for the renderer to refuse.
    let range = |q: &str| parse(q).projection_range;
    assert_eq!(range("p=intmax|5-9"), None);
    assert_eq!(range("p=intmax|3"), None);
    assert_eq!(range("p=intmax|-2:9"), Some((0, 4)));
    assert_eq!(range("p=intmax|3:1"), Some((3, 1)));
    assert_eq!(range("p=intmax|0:9&ia=1"), Some((0, 1)));
    assert!(parse("ia=1").inverted_axis);
    assert!(!parse("ia=0").inverted_axis);
    // maps: ignored without c and when it does not parse; more maps than channels and
    // entries without a map are fine.
    let inverted =
        |q: &str| -> Vec<bool> { parse(q).channels.iter().map(|c| c.inverted).collect() };
    let on = "{\"inverted\":{\"enabled\":true}}";
    assert_eq!(inverted(&format!("maps=[{on}]")), vec![false, false, false]);
    for bad in ["[{", "{}", "[1]", "[null]"] {
        assert_eq!(
            inverted(&format!("c=1&maps={bad}")),
            vec![false, false, false]
        );
    }
    assert_eq!(
        inverted(&format!(
            "c=1,2&maps=[{on},{{\"reverse\":{{\"enabled\":\"true\"}}}},{on},{on}]"
        )),
        vec![true, true, false]
    );
}
