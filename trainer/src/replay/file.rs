//! The `.fgr` replay file: what one played episode needs to be re-simulated anywhere, without
//! the networks.
//!
//! ```text
//! magic    8 bytes  "FGREPLAY"
//! version  u32 LE   FORMAT_VERSION
//! header   u32 LE length, then that many bytes of JSON (`Header`)
//! body     u64 LE length, then per round: `action_bytes` actions, then one u32 LE digest per
//!          state column (`Header::columns`)
//! checksum 32 bytes SHA-256 of everything before it
//! ```
//!
//! Reading checks, in order, the magic, the version, the lengths and the checksum, so a file of
//! another kind, of another version, truncated or with one flipped byte is refused with one line
//! before anything in it is used.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"FGREPLAY";
/// Bumped whenever the layout, the header's fields or the digest's definition change: a file of
/// another version is refused, never read as this one.
pub const FORMAT_VERSION: u32 = 1;

/// Who played, what, and from where: everything but the per-round data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// "ah" or "hs".
    pub env: String,
    /// The run directory the policy came from (as given; informative).
    pub run_dir: String,
    /// SHA-256 of the run's `config.toml` as it was read.
    pub config_sha256: String,
    /// The fairground build that recorded the file (`git describe`, else the crate version).
    pub code_version: String,
    /// The checkpoint whose networks played, and their parameter digest.
    pub checkpoint_iteration: u32,
    pub param_hash: String,
    /// The run's seed (the environment's streams derive from it).
    pub seed: u64,
    /// Which episode (AH) or day (HS) of factual instance 0 this is, counted from 0.
    pub episode: u32,
    /// "stochastic" or "greedy".
    pub policy: String,
    /// Worker threads of the recording (the result does not depend on them).
    pub threads: u32,
    /// Rounds recorded: kernel steps (AH) or decision rounds (HS).
    pub rounds: u32,
    /// Bytes of actions per round.
    pub action_bytes: u32,
    /// The state columns each round's digests cover, in order.
    pub columns: Vec<String>,
    /// The digests of the state the episode starts from.
    pub start_digests: Vec<u32>,
    /// The kernel's snapshot at the episode's start (the factual world; HS: every hospital).
    pub start: serde_json::Value,
    /// What the episode ended with (AH: returns by group and per agent; HS: the day's
    /// statistics), checked again by the re-simulation.
    pub outcome: serde_json::Value,
}

/// A whole replay: the header and its rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub header: Header,
    /// `rounds × action_bytes` actions.
    pub actions: Vec<u8>,
    /// `rounds × columns` digests.
    pub digests: Vec<u32>,
}

impl Replay {
    pub fn round_actions(&self, r: usize) -> &[u8] {
        let w = self.header.action_bytes as usize;
        &self.actions[r * w..(r + 1) * w]
    }
    pub fn round_digests(&self, r: usize) -> &[u32] {
        let c = self.header.columns.len();
        &self.digests[r * c..(r + 1) * c]
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let h = &self.header;
        let (w, c) = (h.action_bytes as usize, h.columns.len());
        assert_eq!(
            self.actions.len(),
            h.rounds as usize * w,
            "actions per round"
        );
        assert_eq!(
            self.digests.len(),
            h.rounds as usize * c,
            "digests per round"
        );
        let header = serde_json::to_vec(h).expect("header serialises");
        let mut out = Vec::with_capacity(64 + header.len() + self.actions.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let body = (self.actions.len() + 4 * self.digests.len()) as u64;
        out.extend_from_slice(&body.to_le_bytes());
        for r in 0..h.rounds as usize {
            out.extend_from_slice(&self.actions[r * w..(r + 1) * w]);
            for d in &self.digests[r * c..(r + 1) * c] {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parse and verify a file's bytes; the error is one line saying what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8).ok() != Some(&MAGIC[..]) {
            return Err("not a fairground replay file (no FGREPLAY magic)".into());
        }
        let version = r
            .u32()
            .map_err(|_| "truncated before its version".to_string())?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "replay format version {version}; this fairground reads version \
                 {FORMAT_VERSION} only"
            ));
        }
        if bytes.len() < 32 + 16 {
            return Err("truncated (shorter than its fixed fields)".into());
        }
        let (data, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(data).as_slice() != sum {
            return Err("checksum mismatch: the file is damaged or truncated".into());
        }
        let mut r = Reader {
            bytes: data,
            at: 12,
        };
        let trunc = |what: &str| format!("truncated in its {what}");
        let n = r.u32().map_err(|_| trunc("header length"))? as usize;
        let header: Header = serde_json::from_slice(r.take(n).map_err(|_| trunc("header"))?)
            .map_err(|e| format!("header is not this version's JSON: {e}"))?;
        let body = r.u64().map_err(|_| trunc("body length"))? as usize;
        let (w, c) = (header.action_bytes as usize, header.columns.len());
        let rounds = header.rounds as usize;
        let expected = rounds
            .checked_mul(w + 4 * c)
            .ok_or_else(|| "header's round count overflows".to_string())?;
        if body != expected || r.remaining() != body {
            return Err(format!(
                "body holds {} bytes, its header implies {expected} ({rounds} rounds)",
                r.remaining()
            ));
        }
        let mut actions = Vec::with_capacity(rounds * w);
        let mut digests = Vec::with_capacity(rounds * c);
        for _ in 0..rounds {
            actions.extend_from_slice(r.take(w).map_err(|_| trunc("body"))?);
            for _ in 0..c {
                digests.push(r.u32().map_err(|_| trunc("body"))?);
            }
        }
        if header.start_digests.len() != c {
            return Err(format!(
                "header has {} start digests for {c} columns",
                header.start_digests.len()
            ));
        }
        Ok(Replay {
            header,
            actions,
            digests,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        let end = self.at.checked_add(n).ok_or(())?;
        let s = self.bytes.get(self.at..end).ok_or(())?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ()> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, ()> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Replay {
        Replay {
            header: Header {
                env: "ah".into(),
                run_dir: "r".into(),
                config_sha256: "c".into(),
                code_version: "v".into(),
                checkpoint_iteration: 2,
                param_hash: "p".into(),
                seed: 7,
                episode: 0,
                policy: "stochastic".into(),
                threads: 1,
                rounds: 3,
                action_bytes: 2,
                columns: vec!["a".into(), "b".into()],
                start_digests: vec![1, 2],
                start: serde_json::json!({"x": 1}),
                outcome: serde_json::json!([1.5]),
            },
            actions: vec![0, 1, 2, 3, 4, 5],
            digests: vec![10, 11, 12, 13, 14, 15],
        }
    }

    #[test]
    fn round_trips() {
        let r = tiny();
        assert_eq!(Replay::from_bytes(&r.to_bytes()).unwrap(), r);
        assert_eq!(r.round_actions(1), &[2, 3]);
        assert_eq!(r.round_digests(2), &[14, 15]);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = tiny().to_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(
                Replay::from_bytes(&b).is_err(),
                "byte {i} flipped was accepted"
            );
        }
        for n in 0..bytes.len() {
            assert!(
                Replay::from_bytes(&bytes[..n]).is_err(),
                "{n} bytes accepted"
            );
        }
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let mut b = tiny().to_bytes();
        b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let e = Replay::from_bytes(&b).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let e = Replay::from_bytes(b"PK\x03\x04 not a replay at all").unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
