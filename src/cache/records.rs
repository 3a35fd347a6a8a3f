//! The records the cache holds and their encoding: a schema byte, 8 bytes of BLAKE3 over the
//! payload, then the bincode 1.3 payload.
//!
//! Must never: decode a record whose checksum or schema byte does not match (that is a
//! [`DecodeError`], which the cache reports naming the key).
//! Layout of a target's record: the hot part ([`TargetState`], tree `targets`: status, key,
//! output digests and signatures) read by every evaluation, and the cold part
//! ([`TargetDetails`], tree `details`: parameters and input digests behind the key, error,
//! timing, host) read by `explain` and written with it.

use serde::{Deserialize, Serialize};

use super::SCHEMA_VERSION;
use crate::hash::{Digest, StatSig};

/// Outcome of a target's last run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    /// The action succeeded and every output is recorded.
    Ok,
    /// The action failed; `error` says why. Outputs are not recorded.
    Failed,
}

/// One input file as it went into a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The input slot name declared by the rule.
    pub slot: String,
    /// Path relative to the field directory.
    pub path: String,
    /// Content digest.
    pub digest: Digest,
}

/// One output file of a successful run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The output name declared by the rule.
    pub name: String,
    /// Path relative to the field directory.
    pub path: String,
    /// Content digest.
    pub digest: Digest,
    /// Stat signature right after the rename into place.
    pub sig: StatSig,
}

/// What the cache remembers of one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The key the target was last run with.
    pub key: Digest,
    /// Ok or failed.
    pub status: RunStatus,
    /// The action descriptor that went into the key.
    pub action: String,
    /// Parameter name → canonical display value, sorted by name.
    pub params: Vec<(String, String)>,
    /// Inputs in declared order.
    pub inputs: Vec<InputRecord>,
    /// Outputs (empty when failed).
    pub outputs: Vec<OutputRecord>,
    /// Wall time of the action in seconds.
    pub seconds: f64,
    /// Host the action ran on.
    pub host: String,
    /// The error message when failed.
    pub error: Option<String>,
}

/// Outputs of an earlier successful run kept in the content store (`crate::store`), indexed by
/// the key they were made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreEntry {
    /// The field and target they belong to.
    pub field: String,
    /// Target id.
    pub target: String,
    /// (path relative to the field directory, digest, size), in the graph's order.
    pub outputs: Vec<(String, Digest, u64)>,
    /// Seconds since the Unix epoch when stored or last restored (least recently used goes
    /// first).
    pub used: u64,
}

/// One output as every build checks it: digest and stat signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputState {
    /// Content digest.
    pub digest: Digest,
    /// Stat signature right after the rename into place.
    pub sig: StatSig,
}

/// Records read in bulk ([`Cache::scan_states`]): the ids in one string, in the database's
/// order (byte order of the ids), beside the records.
#[derive(Default)]
pub struct ScannedStates {
    pub(super) ids: String,
    pub(super) ends: Vec<usize>,
    pub(super) states: Vec<TargetState>,
}

impl ScannedStates {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no record was read.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Id of record `i`.
    pub fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.ids[start..self.ends[i]]
    }

    /// Index of the record of target `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        // The database yields keys in byte order, which is `str`'s order.
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id(mid).cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The records, by index, without their ids.
    pub fn into_states(mut self) -> Vec<TargetState> {
        self.states.shrink_to_fit();
        self.states
    }
}

/// The part of a target's record that every build reads (kept small so a no-op build of a big
/// field reads little): key, status and the outputs' digests and signatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The key the target was last run with.
    pub key: Digest,
    /// Ok or failed.
    pub status: RunStatus,
    /// Digest of the output paths, in order ([`outputs_id`]).
    pub outputs_id: Digest,
    /// Outputs (empty when failed), in the graph's order.
    pub outputs: Vec<OutputState>,
}

/// The rest of a record: read by `explain`, stale-reason messages and reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TargetDetails {
    pub(super) action: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) inputs: Vec<InputRecord>,
    pub(super) outputs: Vec<(String, String)>,
    pub(super) seconds: f64,
    pub(super) host: String,
    pub(super) error: Option<String>,
}

/// Digest identifying a list of output paths.
pub fn outputs_id<'a>(paths: impl Iterator<Item = &'a str>) -> Digest {
    let mut h = blake3::Hasher::new();
    for p in paths {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    Digest(*h.finalize().as_bytes())
}

impl TargetRecord {
    /// The hot part of this record.
    pub fn state(&self) -> TargetState {
        TargetState {
            key: self.key,
            status: self.status,
            outputs_id: outputs_id(self.outputs.iter().map(|o| o.path.as_str())),
            outputs: self
                .outputs
                .iter()
                .map(|o| OutputState {
                    digest: o.digest,
                    sig: o.sig,
                })
                .collect(),
        }
    }
}

/// A stat-cache entry: a file's signature and the digest it had at that signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Stat signature when hashed.
    pub sig: StatSig,
    /// Content digest.
    pub digest: Digest,
}

/// A file `arrakis archive` removed on purpose: where its bytes went and what they were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchivedFile {
    /// The tarball holding it (relative to the field directory); `None` when it was deleted
    /// without a copy (beam cubes: imaging makes them again).
    pub tar: Option<String>,
    /// Its digest when it was removed.
    pub digest: Digest,
    /// Where its bytes start in the tarball, and how many there are.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // bincode of plain structs of owned data cannot fail.
    let payload = bincode::serialize(value).unwrap_or_default();
    let sum = blake3::hash(&payload);
    let mut out = Vec::with_capacity(payload.len() + 9);
    out.push(SCHEMA_VERSION);
    out.extend_from_slice(&sum.as_bytes()[..8]);
    out.extend_from_slice(&payload);
    out
}

/// Why a stored record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its header.
    #[error("record is {0} bytes, too short")]
    Short(usize),
    /// Written by another schema.
    #[error("record schema byte {0} (expected {SCHEMA_VERSION})")]
    Schema(u8),
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The payload does not decode.
    #[error("undecodable: {0}")]
    Payload(#[from] bincode::Error),
    /// The two parts of a target's record do not belong together.
    #[error("{0}")]
    Mismatch(&'static str),
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < 9 {
        return Err(DecodeError::Short(bytes.len()));
    }
    if bytes[0] != SCHEMA_VERSION {
        return Err(DecodeError::Schema(bytes[0]));
    }
    let payload = &bytes[9..];
    if blake3::hash(payload).as_bytes()[..8] != bytes[1..9] {
        return Err(DecodeError::Checksum);
    }
    Ok(bincode::deserialize(payload)?)
}
