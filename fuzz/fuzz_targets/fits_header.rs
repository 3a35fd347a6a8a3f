//! The FITS reader on arbitrary files: header cards read, the shape and data size checked against
//! the file (exactly its size, unless an extension follows), or an error naming the file; never a
//! panic, never an allocation beyond what the file holds.
#![no_main]

use std::sync::OnceLock;

use arrakis::fits::{read_header, Image, PlaneReader};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("cube.fits");
    std::fs::write(&path, data).expect("write");
    let named = |e: &dyn std::fmt::Display| {
        let msg = e.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "error without the file: {msg}");
    };
    match read_header(&path) {
        Ok((h, (nx, ny, nchan))) => {
            // Header values read back as numbers or text without panicking.
            for key in ["CRVAL1", "CDELT1", "BMAJ", "CTYPE3", "BUNIT"] {
                let _ = (h.get_f64(key), h.get_str(key));
            }
            match PlaneReader::open(&path) {
                Ok(mut r) => {
                    // Read without cfitsio where the header is plain: the same cards.
                    assert_eq!(r.header, h, "the reader's header is not cfitsio's");
                    // A header that opened promises no more pixels than the file holds.
                    assert!((nx * ny * nchan * 4) as u64 <= data.len() as u64);
                    let mut plane = vec![0f32; nx * ny];
                    if let Err(e) = r.read_plane(0, &mut plane) {
                        named(&e);
                    }
                }
                Err(e) => named(&e),
            }
        }
        Err(e) => named(&e),
    }
    if let Err(e) = Image::read(&path) {
        named(&e);
    }
});
