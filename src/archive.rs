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

/// Put the archived file back at `dest` (atomically) from `tar`, checking its digest.
pub fn restore(tar: &Path, rel: &str, a: &ArchivedFile, dest: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(tar).map_err(|e| {
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

/// Visit every member of a tarball in order: (name, offset of its bytes, size, a reader of its
/// bytes). Members are streamed, never held whole: a field's tarball can be far larger than RAM.
fn each_member(
    tar: &Path,
    mut f: impl FnMut(&str, u64, u64, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let bad = |e: std::io::Error| format!("{}: {e}", tar.display());
    let file = std::fs::File::open(tar).map_err(bad)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().to_string();
        let (offset, size) = (entry.raw_file_position(), entry.size());
        f(&name, offset, size, &mut entry)?;
    }
    Ok(())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
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
    // Keep what an earlier archive run put there (files long gone from disk).
    if tar_path.exists() {
        each_member(&tar_path, |name, _, size, bytes| {
            if rels.iter().any(|r| r == name) {
                return Ok(());
            }
            builder
                .append_data(&mut header(size), name, bytes)
                .map_err(fail)
        })?;
    }
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    for rel in rels {
        let bytes = std::fs::read(field_dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        digests.insert(rel.clone(), Digest(*blake3::hash(&bytes).as_bytes()));
        builder
            .append_data(&mut header(bytes.len() as u64), rel, bytes.as_slice())
            .map_err(fail)?;
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
    each_member(&tmp, |name, offset, size, bytes| {
        let Some(d) = digests.get(name) else {
            return Ok(());
        };
        let mut h = blake3::Hasher::new();
        std::io::copy(bytes, &mut h).map_err(fail)?;
        if h.finalize().as_bytes() != &d.0 {
            return Err(format!(
                "{}: member {name} did not read back intact",
                tmp.display()
            ));
        }
        let a = ArchivedFile {
            tar: Some(tar_rel.to_string()),
            digest: *d,
            offset,
            size,
        };
        records.insert(name.to_string(), a);
        Ok(())
    })?;
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
