//! `arrakis archive FIELD`: the cleanup stage of Arrakis, made safe. The per-beam cutouts of
//! every up-to-date cutout target go into `cutouts.tar` in the field directory (uncompressed,
//! members named by their path in the field), the tarball is checked member by member against
//! the recorded digests, the cache records each file as archived (with its place in the
//! tarball), and only then are the files removed. With `--remove-beam-cubes` the beam cubes the
//! cutouts were made from are removed too (recorded as deleted without a copy: imaging makes
//! them again).
//!
//! Archived files make nothing stale. A target that must run again and reads an archived file
//! gets it back from the tarball first (`restore`: one seek and read), checked against its
//! digest.
//! Must never: remove a file before the tarball holding it is in place and verified, or remove a
//! file whose bytes differ from its record.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::cache::ArchivedFile;
use crate::hash::Digest;

/// Put the archived file back at `dest` (atomically), checking its digest.
pub fn restore(field_dir: &Path, rel: &str, a: &ArchivedFile, dest: &Path) -> Result<(), String> {
    let tar = field_dir.join(&a.tar);
    let mut file = std::fs::File::open(&tar).map_err(|e| {
        format!(
            "{rel} was archived into {}, which cannot be opened: {e}",
            tar.display()
        )
    })?;
    let mut bytes = vec![0u8; a.size as usize];
    file.seek(SeekFrom::Start(a.offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| format!("{}: reading {rel}: {e}", tar.display()))?;
    if blake3::hash(&bytes).as_bytes() != &a.digest.0 {
        return Err(format!(
            "{rel} in {} is not the file that was archived (digest differs); the tarball was changed",
            tar.display()
        ));
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::exec::action::write_atomic(dest, &bytes).map_err(|e| format!("{}: {e}", dest.display()))
}

/// Every member of a tarball: (name, offset of its bytes, its bytes).
fn members(tar: &Path) -> Result<Vec<(String, u64, Vec<u8>)>, String> {
    let file = std::fs::File::open(tar).map_err(|e| format!("{}: {e}", tar.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut out = Vec::new();
    let bad = |e: std::io::Error| format!("{}: {e}", tar.display());
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().to_string();
        let offset = entry.raw_file_position();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        out.push((name, offset, bytes));
    }
    Ok(out)
}

/// Write the files `rels` (relative to `field_dir`), plus the members of an existing tarball
/// that are not being replaced, into `field_dir/tar_rel`, atomically; read it back and check
/// every new member. Returns each new member's record.
pub fn write_tarball(
    field_dir: &Path,
    tar_rel: &str,
    rels: &[String],
) -> Result<BTreeMap<String, ArchivedFile>, String> {
    let tar_path = field_dir.join(tar_rel);
    let tmp = crate::exec::action::temp_path_for(&tar_path);
    let fail = |e: std::io::Error| format!("writing {}: {e}", tmp.display());
    let out = std::fs::File::create(&tmp).map_err(fail)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    let mut append = |name: &str, bytes: &[u8]| -> Result<(), String> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, bytes).map_err(fail)
    };
    // Keep what an earlier archive run put there (files long gone from disk).
    if tar_path.exists() {
        for (name, _, bytes) in members(&tar_path)? {
            if !rels.contains(&name) {
                append(&name, &bytes)?;
            }
        }
    }
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    for rel in rels {
        let bytes = std::fs::read(field_dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        digests.insert(rel.clone(), Digest(*blake3::hash(&bytes).as_bytes()));
        append(rel, &bytes)?;
    }
    let f = builder
        .into_inner()
        .map_err(fail)?
        .into_inner()
        .map_err(|e| fail(e.into_error()))?;
    f.sync_all().map_err(fail)?;
    drop(f);
    // Read it back before it replaces anything.
    let mut records = BTreeMap::new();
    for (name, offset, bytes) in members(&tmp)? {
        if let Some(d) = digests.get(&name) {
            if blake3::hash(&bytes).as_bytes() != &d.0 {
                return Err(format!(
                    "{}: member {name} did not read back intact",
                    tmp.display()
                ));
            }
            let a = ArchivedFile {
                tar: tar_rel.to_string(),
                digest: *d,
                offset,
                size: bytes.len() as u64,
            };
            records.insert(name, a);
        }
    }
    if records.len() != digests.len() {
        return Err(format!(
            "{}: {} of {} members read back",
            tmp.display(),
            records.len(),
            digests.len()
        ));
    }
    std::fs::rename(&tmp, &tar_path).map_err(|e| format!("{}: {e}", tar_path.display()))?;
    Ok(records)
}
