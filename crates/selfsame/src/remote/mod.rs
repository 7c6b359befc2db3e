//! The remote replica on S3-compatible storage (docs/REMOTE.md): its
//! records — the wrapped data key, the sealed `HEAD`, checkpoints with
//! their history lines, objects — read and written through a small S3
//! client. Everything but the key file is sealed under the data key and
//! named by a keyed hash. The commands that use it live in `ops`.

pub(crate) mod s3;

use std::fmt;

use crate::crypto::remote::{Keyring, OpenError, MAX_GENERATIONS};
use crate::crypto::{sha256, Credential};
use crate::error::{Error, RemoteProblem, Result};
use crate::format::location::Location;
use s3::{Client, Condition, Put, S3Error};

pub use s3::AwsCredentials;

/// The key file's name (generation 1; generation `g` ≥ 2 is `key-<g>`).
pub const KEY: &str = "key";
/// The sealed head's name.
pub const HEAD: &str = "HEAD";
/// The first line of the sealed head.
pub const HEAD_HEADER: &str = "selfsame-remote-head 1\n";
/// The first line of a checkpoint record.
pub const CHECKPOINT_HEADER: &str = "selfsame-remote-checkpoint 1\n";
/// The first line of a checkpoint record that carries a pack index.
pub const CHECKPOINT_HEADER_PACKS: &str = "selfsame-remote-checkpoint 2\n";

/// How to reach a remote: where it is, and the AWS credentials. Built by
/// the caller from `[remote]` (or a URL) and the environment.
#[derive(Clone)]
pub struct Access {
    location: Location,
    credentials: AwsCredentials,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Access to `url` (`s3://BUCKET/PREFIX`) at `endpoint` (default AWS)
    /// in `region` (default `us-east-1`). The error says what is wrong
    /// with the URL.
    pub fn new(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        credentials: AwsCredentials,
    ) -> std::result::Result<Access, String> {
        Ok(Access {
            location: Location::parse(url, endpoint, region)?,
            credentials,
        })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        self.location.to_string()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.location.endpoint
    }
}

/// The remote's head: the newest checkpoint pushed, and the ETag the next
/// compare-and-swap names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHead {
    /// Its seq.
    pub seq: u64,
    /// Hex SHA-256 of its checkpoint file's bytes.
    pub checkpoint: String,
    /// The ETag of the `HEAD` object as read.
    pub etag: String,
}

/// A checkpoint as the remote keeps it: the file's bytes, the history
/// lines after the previous checkpoint's anchor up to its own, the
/// vault's identity file as it was when the record was pushed, and where
/// the objects the push packed are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The checkpoint file's bytes.
    pub checkpoint: Vec<u8>,
    /// Complete history lines, each with its newline.
    pub history: Vec<u8>,
    /// The identity file's bytes; empty when the vault has none.
    pub identity: Vec<u8>,
    /// The pack index: every object the push that wrote this record put
    /// into packs (on its last record only).
    pub packs: Vec<Packed>,
}

/// Where a packed object is: the pack's keyed name, and the object's
/// place in the pack's plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The pack's name below `p/`: 64 lowercase hex digits.
    pub pack: String,
    /// The object's SHA-256.
    pub object: [u8; 32],
    /// Its first byte in the pack's plaintext.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

impl Packed {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.pack,
            hex::encode(self.object),
            self.offset,
            self.len
        )
    }

    fn parse(line: &str) -> Option<Packed> {
        let is_hex =
            |h: &str| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let number = |t: &str| {
            Some(t)
                .filter(|t| {
                    !t.is_empty()
                        && t.len() <= 19
                        && t.bytes().all(|b| b.is_ascii_digit())
                        && (*t == "0" || !t.starts_with('0'))
                })
                .and_then(|t| t.parse::<u64>().ok())
        };
        let mut parts = line.split(' ');
        let pack = parts.next().filter(|h| is_hex(h))?.to_owned();
        let mut object = [0u8; 32];
        hex::decode_to_slice(parts.next().filter(|h| is_hex(h))?, &mut object).ok()?;
        let offset = number(parts.next()?)?;
        let len = number(parts.next()?)?;
        if parts.next().is_some() || offset.checked_add(len).is_none() {
            return None;
        }
        Some(Packed {
            pack,
            object,
            offset,
            len,
        })
    }
}

impl CheckpointRecord {
    /// The record's plaintext: the header, then each part as its length
    /// in decimal, a newline and its bytes; the pack index is a fourth
    /// part, under the second header, when there is one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let index: Vec<u8> = self
            .packs
            .iter()
            .flat_map(|p| p.line().into_bytes())
            .collect();
        let (header, parts) = if self.packs.is_empty() {
            (
                CHECKPOINT_HEADER,
                &[&self.checkpoint, &self.history, &self.identity][..],
            )
        } else {
            (
                CHECKPOINT_HEADER_PACKS,
                &[&self.checkpoint, &self.history, &self.identity, &index][..],
            )
        };
        let mut out = header.as_bytes().to_vec();
        for part in parts {
            out.extend_from_slice(format!("{}\n", part.len()).as_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Parses a record's plaintext.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (mut rest, names): (&[u8], &[&str]) =
            if let Some(rest) = bytes.strip_prefix(CHECKPOINT_HEADER.as_bytes()) {
                (rest, &["checkpoint", "history", "identity"])
            } else if let Some(rest) = bytes.strip_prefix(CHECKPOINT_HEADER_PACKS.as_bytes()) {
                (rest, &["checkpoint", "history", "identity", "pack index"])
            } else {
                return Err("not a checkpoint record".into());
            };
        let mut parts = Vec::new();
        for what in names {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .filter(|&i| (1..=10).contains(&i))
                .ok_or_else(|| format!("checkpoint record: no {what} length"))?;
            let len: usize = std::str::from_utf8(&rest[..nl])
                .ok()
                .filter(|t| {
                    t.bytes().all(|b| b.is_ascii_digit()) && (*t == "0" || !t.starts_with('0'))
                })
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("checkpoint record: bad {what} length"))?;
            let body = &rest[nl + 1..];
            if body.len() < len {
                return Err(format!("checkpoint record: {what} cut short"));
            }
            parts.push(body[..len].to_vec());
            rest = &body[len..];
        }
        if !rest.is_empty() {
            return Err("checkpoint record: bytes after its last part".into());
        }
        let packs = if parts.len() == 4 {
            let index = parts.pop().expect("four parts");
            let text = std::str::from_utf8(&index)
                .ok()
                .and_then(|t| t.strip_suffix('\n'))
                .ok_or("checkpoint record: the pack index is not lines of text")?;
            text.split('\n')
                .map(Packed::parse)
                .collect::<Option<Vec<_>>>()
                .ok_or("checkpoint record: a bad line in the pack index")?
        } else {
            Vec::new()
        };
        let identity = parts.pop().expect("three parts");
        let history = parts.pop().expect("three parts");
        let checkpoint = parts.pop().expect("three parts");
        if checkpoint.is_empty() {
            return Err("checkpoint record: no checkpoint".into());
        }
        if !history.is_empty() && history.last() != Some(&b'\n') {
            return Err("checkpoint record: history does not end with a newline".into());
        }
        Ok(CheckpointRecord {
            checkpoint,
            history,
            identity,
            packs,
        })
    }
}

/// The plaintext of the sealed head.
pub fn head_text(seq: u64, checkpoint: &str) -> String {
    format!("{HEAD_HEADER}seq {seq}\ncheckpoint {checkpoint}\n")
}

/// Parses the plaintext of the sealed head: seq and checkpoint hash.
pub fn parse_head(bytes: &[u8]) -> std::result::Result<(u64, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "HEAD is not text")?;
    let rest = text.strip_prefix(HEAD_HEADER).ok_or("not a remote HEAD")?;
    let mut lines = rest
        .strip_suffix('\n')
        .ok_or("HEAD: no final newline")?
        .split('\n');
    let seq = lines
        .next()
        .and_then(|l| l.strip_prefix("seq "))
        .filter(|t| !t.starts_with('0') && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or("HEAD: bad seq line")?;
    let hash = lines
        .next()
        .and_then(|l| l.strip_prefix("checkpoint "))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or("HEAD: bad checkpoint line")?;
    if lines.next().is_some() {
        return Err("HEAD: extra lines".into());
    }
    Ok((seq, hash.to_owned()))
}

/// The name of the key file of generation `g`: `key`, `key-2`, `key-3`, …
pub fn key_name(g: usize) -> String {
    if g == 1 {
        KEY.to_owned()
    } else {
        format!("{KEY}-{g}")
    }
}

/// An open remote: a client and the keyring.
#[derive(Debug)]
pub struct Remote {
    client: Client,
    key: Keyring,
    url: String,
}

impl Remote {
    /// Opens the remote: reads its newest key file and opens it under
    /// `cred`. When there is none: `create` makes one (create-only; a
    /// concurrent creator's wins), otherwise the remote holds no vault.
    ///
    /// When the newest key file does not open — the token changed by a
    /// rekey or a bind since the last push — `local`, the vault's copy of
    /// the keyring re-wrapped under the new token, stands in if it holds
    /// as many generations and opens the remote `HEAD`; a writer
    /// (`create`) then adds the next generation: a fresh data key, the key
    /// file `key-<g+1>` with every key so far wrapped under `cred`
    /// (create-only), which seals all it writes from then on.
    pub fn open(
        access: &Access,
        cred: &Credential,
        local: Option<&Keyring>,
        create: bool,
    ) -> Result<Remote> {
        let client = Client::new(access.location.clone(), access.credentials.clone());
        let url = access.url();
        let err = |problem| Error::Remote {
            url: url.clone(),
            problem,
        };
        let get = |name: &str| {
            client
                .get(&access.location.key(name))
                .map(|o| o.map(|(bytes, _)| bytes))
                .map_err(|e| err(s3_problem(e)))
        };
        let put = |name: &str, text: &str| {
            client
                .put(
                    &access.location.key(name),
                    text.as_bytes(),
                    Condition::Absent,
                )
                .map_err(|e| err(s3_problem(e)))
        };
        let Some(first) = get(KEY)? else {
            if !create {
                return Err(err(RemoteProblem::Empty));
            }
            let fresh = Keyring::generate();
            let key = match put(KEY, &fresh.wrap(cred))? {
                Put::Written(_) => fresh,
                Put::ConditionFailed => {
                    let file = get(KEY)?.ok_or_else(|| {
                        err(RemoteProblem::Damaged("the key file vanished".into()))
                    })?;
                    unwrap_key(&file, 1, cred).map_err(err)?
                }
            };
            return Ok(Remote { client, key, url });
        };
        let (mut g, mut file) = (1, first);
        while g < MAX_GENERATIONS {
            match get(&key_name(g + 1))? {
                Some(next) => (g, file) = (g + 1, next),
                None => break,
            }
        }
        let key = match unwrap_key(&file, g, cred) {
            Ok(key) => key,
            Err(RemoteProblem::Key(why)) => {
                let local = local
                    .filter(|l| l.generation() == g)
                    .ok_or_else(|| err(RemoteProblem::Key(why.clone())))?;
                // The copy must be this remote's: it opens its HEAD.
                let head = get(HEAD)?;
                if head.is_none_or(|h| local.open(HEAD, &h).is_err()) {
                    return Err(err(RemoteProblem::Key(why)));
                }
                if create {
                    let next = local.rotated();
                    let name = key_name(g + 1);
                    match put(&name, &next.wrap(cred))? {
                        Put::Written(_) => next,
                        Put::ConditionFailed => {
                            let file = get(&name)?.ok_or_else(|| {
                                err(RemoteProblem::Damaged(format!("{name} vanished")))
                            })?;
                            unwrap_key(&file, g + 1, cred).map_err(err)?
                        }
                    }
                } else {
                    local.clone()
                }
            }
            Err(problem) => return Err(err(problem)),
        };
        Ok(Remote { client, key, url })
    }

    /// The keyring the remote opened with: the vault keeps a copy.
    pub fn keyring(&self) -> &Keyring {
        &self.key
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, problem: RemoteProblem) -> Error {
        Error::Remote {
            url: self.url.clone(),
            problem,
        }
    }

    fn get_sealed(&self, name: &str) -> Result<Option<(Vec<u8>, String)>> {
        let key = self.client.location().key(name);
        let Some((sealed, etag)) = self.client.get(&key).map_err(|e| self.err(s3_problem(e)))?
        else {
            return Ok(None);
        };
        let plain = self
            .key
            .open(name, &sealed)
            .map_err(|e| self.err(RemoteProblem::Damaged(format!("{name}: {e}"))))?;
        Ok(Some((plain, etag)))
    }

    fn put_sealed(&self, name: &str, plain: &[u8], condition: Condition) -> Result<Put> {
        let sealed = self.key.seal(name, plain);
        let key = self.client.location().key(name);
        self.client
            .put(&key, &sealed, condition)
            .map_err(|e| self.err(s3_problem(e)))
    }

    /// The remote's head, `None` when nothing was pushed yet.
    pub fn head(&self) -> Result<Option<RemoteHead>> {
        let Some((plain, etag)) = self.get_sealed(HEAD)? else {
            return Ok(None);
        };
        let (seq, checkpoint) =
            parse_head(&plain).map_err(|e| self.err(RemoteProblem::Damaged(e)))?;
        Ok(Some(RemoteHead {
            seq,
            checkpoint,
            etag,
        }))
    }

    /// Moves the remote head to `seq` by compare-and-swap: only if it is
    /// still `expected` (`None`: only if there is none). `false` when
    /// another writer moved it first.
    pub fn swap_head(
        &self,
        seq: u64,
        checkpoint: &str,
        expected: Option<&RemoteHead>,
    ) -> Result<bool> {
        let condition = match expected {
            Some(h) => Condition::Matches(&h.etag),
            None => Condition::Absent,
        };
        let put = self.put_sealed(HEAD, head_text(seq, checkpoint).as_bytes(), condition)?;
        Ok(matches!(put, Put::Written(_)))
    }

    fn checkpoint_name(&self, seq: u64) -> String {
        format!("c/{}", self.key.name("checkpoint", &seq.to_string()))
    }

    fn object_name(&self, hash: &[u8; 32]) -> String {
        format!("o/{}", self.key.name("object", &hex::encode(hash)))
    }

    /// Checkpoint `seq` as the remote keeps it.
    pub fn checkpoint(&self, seq: u64) -> Result<Option<CheckpointRecord>> {
        let name = self.checkpoint_name(seq);
        let Some((plain, _)) = self.get_sealed(&name)? else {
            return Ok(None);
        };
        CheckpointRecord::parse(&plain)
            .map(Some)
            .map_err(|e| self.err(RemoteProblem::Damaged(format!("checkpoint {seq}: {e}"))))
    }

    /// Writes checkpoint `seq` create-only. `false` when the remote
    /// already holds one under that seq (the caller compares them).
    pub fn put_checkpoint(&self, seq: u64, record: &CheckpointRecord) -> Result<bool> {
        let put = self.put_sealed(
            &self.checkpoint_name(seq),
            &record.to_bytes(),
            Condition::Absent,
        )?;
        Ok(matches!(put, Put::Written(_)))
    }

    /// Object `hash`, checked against its hash; `None` when absent.
    pub fn object(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        let name = self.object_name(hash);
        let Some((plain, _)) = self.get_sealed(&name)? else {
            return Ok(None);
        };
        if sha256(&plain) != *hash {
            return Err(self.err(RemoteProblem::Damaged(format!(
                "object {} does not match its hash",
                hex::encode(hash)
            ))));
        }
        Ok(Some(plain))
    }

    /// Writes a pack — objects one after the other — create-only under
    /// `p/<HMAC(N, "pack\n" + its hex SHA-256)>`: its name, and whether it
    /// was written (a pack of the same bytes is there already otherwise).
    pub fn put_pack(&self, plain: &[u8]) -> Result<(String, bool)> {
        let name = self.key.name("pack", &crate::crypto::sha256_hex(plain));
        let put = self.put_sealed(&format!("p/{name}"), plain, Condition::Absent)?;
        Ok((name, matches!(put, Put::Written(_))))
    }

    /// The pack `name` (below `p/`), opened; `None` when absent.
    pub fn pack(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_sealed(&format!("p/{name}"))?
            .map(|(plain, _)| plain))
    }

    /// Writes object `hash` unless the remote has it (create-only: objects
    /// never change). Whether it was written.
    pub fn put_object(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        let put = self.put_sealed(&self.object_name(hash), bytes, Condition::Absent)?;
        Ok(matches!(put, Put::Written(_)))
    }
}

/// Opens the key file of generation `g` under `cred`: it must hold `g`
/// keys.
fn unwrap_key(
    file: &[u8],
    g: usize,
    cred: &Credential,
) -> std::result::Result<Keyring, RemoteProblem> {
    let name = key_name(g);
    match Keyring::unwrap(file, cred) {
        Ok(key) if key.generation() == g => Ok(key),
        Ok(key) => Err(RemoteProblem::Damaged(format!(
            "{name} holds {} generations of keys",
            key.generation()
        ))),
        Err(e @ OpenError::KeyNotOpened) => Err(RemoteProblem::Key(e.to_string())),
        Err(e) => Err(RemoteProblem::Damaged(format!("{name}: {e}"))),
    }
}

fn s3_problem(e: S3Error) -> RemoteProblem {
    match e {
        S3Error::Unreachable { .. } => RemoteProblem::Unreachable(e.to_string()),
        S3Error::Status { .. } => RemoteProblem::Server(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip() {
        let mut r = CheckpointRecord {
            checkpoint: b"v=1&seq=1\n".to_vec(),
            history: b"{\"n\":1}\n{\"n\":2}\n".to_vec(),
            identity: b"selfsame-identity 1\n".to_vec(),
            packs: vec![Packed {
                pack: "ab".repeat(32),
                object: [7; 32],
                offset: 0,
                len: 12,
            }],
        };
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(CHECKPOINT_HEADER_PACKS.as_bytes()));
        assert_eq!(CheckpointRecord::parse(&bytes).unwrap(), r);
        let bad = String::from_utf8(bytes)
            .unwrap()
            .replace(" 0 12\n", " 0 +2\n");
        assert!(CheckpointRecord::parse(bad.as_bytes()).is_err());
        r.packs.clear();
        assert_eq!(CheckpointRecord::parse(&r.to_bytes()).unwrap(), r);
        r.history.clear();
        r.identity.clear();
        let bytes = r.to_bytes();
        assert!(bytes.ends_with(b"\n0\n0\n"));
        assert_eq!(CheckpointRecord::parse(&bytes).unwrap(), r);
        assert!(CheckpointRecord::parse(&[&bytes[..], b"x"].concat()).is_err());
        let h = head_text(42, &"ab".repeat(32));
        assert_eq!(parse_head(h.as_bytes()).unwrap(), (42, "ab".repeat(32)));
        assert!(parse_head(h.replace("42", "042").as_bytes()).is_err());
        assert!(parse_head(format!("{h}x\n").as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn record_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CheckpointRecord::parse(&bytes);
            let _ = parse_head(&bytes);
            let mut framed = CHECKPOINT_HEADER.as_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            let _ = CheckpointRecord::parse(&framed);
            // A well-framed record whose pack index is arbitrary bytes.
            let mut framed = CHECKPOINT_HEADER_PACKS.as_bytes().to_vec();
            framed.extend_from_slice(format!("1\nx0\n0\n{}\n", bytes.len()).as_bytes());
            framed.extend_from_slice(&bytes);
            let _ = CheckpointRecord::parse(&framed);
        }
    }
}
