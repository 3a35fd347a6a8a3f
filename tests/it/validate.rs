//! The validation plots: rendered for a simulated field, valid PNGs that are not blank, an HTML
//! page that shows every one; a field without `truth.csv` still gets every plot.

use std::path::Path;

use crate::common::*;
use arrakis::simulate::{simulate, SimOptions};

const PLOTS: &[&str] = &[
    "rm_sky",
    "fracpol",
    "rm_glat",
    "snr",
    "leakage",
    "truth_rm",
    "truth_fracpol",
];

/// (width, height, share of pixels that are not the white background, distinct colours).
fn png_stats(path: &Path) -> (u32, u32, f64, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let ink = px.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    let colours: std::collections::HashSet<&[u8]> = px.iter().copied().collect();
    (
        info.width,
        info.height,
        ink as f64 / px.len() as f64,
        colours.len(),
    )
}

#[test]
fn validation_plots_are_rendered_and_not_blank() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_VAL";
    let dir = simulate(data, &SimOptions::small(field, 9)).unwrap();
    let (out, r) = build_real(&data.join("cache"), data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        r.get(&format!("validate/{field}")).map(String::as_str),
        Some("ran")
    );
    let vdir = dir.join("validation");
    let index = std::fs::read_to_string(vdir.join("index.html")).unwrap();
    for name in PLOTS {
        let path = vdir.join(format!("{name}.png"));
        let (w, h, ink, colours) = png_stats(&path);
        eprintln!(
            "{name}: {w}x{h}, {:.1}% ink, {colours} colours",
            100.0 * ink
        );
        assert!(w >= 600 && h >= 400, "{name}: {w}x{h}");
        assert!(
            ink > 0.02 && colours > 20,
            "{name} looks blank: {ink} ink, {colours} colours"
        );
        assert!(
            index.contains(&format!("src=\"{name}.png\"")),
            "index.html lacks {name}"
        );
    }
    // The page links the catalogue files (which exist) and says what made it.
    for ext in ["csv", "fits", "xml"] {
        let name = format!("{field}.catalogue.{ext}");
        assert!(
            index.contains(&format!("href=\"../{name}\"")),
            "index.html lacks {name}"
        );
        assert!(vdir.join("..").join(&name).exists(), "{name}");
    }
    assert!(
        index.contains(arrakis::cli::VERSION) && index.contains("snr_cut = "),
        "{index}"
    );

    // Without truth.csv the field is treated as real: every plot is still written, and a
    // changed input (the truth file going away) reruns only the validation.
    std::fs::remove_file(dir.join("truth.csv")).unwrap();
    let (out, r) = build_real(&data.join("cache"), data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(with_status(&r, "ran"), [format!("validate/{field}")]);
    for name in PLOTS {
        let (_, _, ink, _) = png_stats(&vdir.join(format!("{name}.png")));
        assert!(ink > 0.002, "{name} is blank without truth.csv");
    }
}
