//! A store in memory that fails on purpose (test hooks only): every write,
//! flush, publish and removal is one numbered step, and a test arms a
//! [`Fault`] at step N — a full disk, an I/O error, a failed flush, rename
//! or removal, a torn write — to see that whatever runs above it leaves a
//! vault that verifies.
//!
//! It keeps the [`Store`] contract as a careful filesystem does: an entry
//! is visible only whole and, in a batch, only after the commit.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{EntryReader, EntryWriter, Name, NameKind, Store};
use crate::error::{Error, Result};

/// What goes wrong at the armed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full (`ENOSPC`); a write stores nothing.
    NoSpace,
    /// A write stores half its bytes, then fails.
    Torn,
    /// The flush (fsync) fails with an I/O error.
    Sync,
    /// The publish (rename or link) fails with an I/O error.
    Rename,
    /// A removal (prune) fails with an I/O error; the entry stays.
    Delete,
}

/// The kinds of steps, each of which a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    Sync,
    Rename,
    Delete,
}

/// Entries waiting for a batch's commit.
type Batch = Vec<(Name, Vec<u8>)>;

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<Name, Arc<Vec<u8>>>,
    /// Steps taken so far.
    steps: u64,
    armed: Option<(u64, Fault)>,
    /// Entries a torn write left half written, never visible (as a temp
    /// file would be).
    torn: u64,
    /// Whether the armed fault hit its step.
    hit: bool,
}

/// An in-memory store whose steps can be made to fail.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// In batch mode: the entries waiting for the commit.
    batch: Option<Arc<Mutex<Batch>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store holding a copy of this one's entries, with no fault armed
    /// and its own step count.
    pub fn fork(&self) -> Self {
        let entries = self.inner.lock().expect("store").entries.clone();
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                entries,
                ..Inner::default()
            })),
            batch: None,
        }
    }

    /// Makes step `n` (0-based, counted from now) fail with `fault`, when
    /// it is a step the fault applies to (a write for `NoSpace` and `Torn`,
    /// a flush for `Sync`, a publish for `Rename`, a removal for `Delete`);
    /// the steps are counted whatever their kind.
    pub fn arm(&self, n: u64, fault: Fault) {
        let mut inner = self.inner.lock().expect("store");
        inner.armed = Some((inner.steps + n, fault));
        inner.hit = false;
    }

    /// Disarms any fault.
    pub fn disarm(&self) {
        self.inner.lock().expect("store").armed = None;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.inner.lock().expect("store").steps
    }

    /// Whether the fault armed last hit its step.
    pub fn fired(&self) -> bool {
        self.inner.lock().expect("store").hit
    }

    /// Every entry's name and bytes.
    pub fn entries(&self) -> Vec<(Name, Vec<u8>)> {
        let inner = self.inner.lock().expect("store");
        inner
            .entries
            .iter()
            .map(|(n, b)| (*n, b.to_vec()))
            .collect()
    }

    /// Replaces an entry's bytes (a test damaging the store).
    pub fn replace(&self, name: &Name, bytes: Vec<u8>) {
        let mut inner = self.inner.lock().expect("store");
        inner.entries.insert(*name, Arc::new(bytes));
    }

    /// Takes one step of `kind`; the error when the armed fault hits it.
    /// A torn write's half is counted, never shown.
    fn step(&self, kind: Step) -> Result<()> {
        let mut inner = self.inner.lock().expect("store");
        let n = inner.steps;
        inner.steps += 1;
        let Some((at, fault)) = inner.armed else {
            return Ok(());
        };
        let hits = at == n
            && matches!(
                (fault, kind),
                (Fault::NoSpace | Fault::Torn, Step::Write)
                    | (Fault::Sync, Step::Sync)
                    | (Fault::Rename, Step::Rename)
                    | (Fault::Delete, Step::Delete)
            );
        if !hits {
            return Ok(());
        }
        inner.hit = true;
        if fault == Fault::Torn {
            inner.torn += 1;
        }
        let err = match fault {
            Fault::NoSpace => io::Error::from_raw_os_error(28),
            _ => io::Error::from_raw_os_error(5),
        };
        Err(Error::Io {
            path: PathBuf::from("memory:objects"),
            source: err,
        })
    }

    /// Publishes one entry: flush, then rename, unless it exists.
    fn publish(&self, name: &Name, bytes: Vec<u8>) -> Result<bool> {
        self.step(Step::Sync)?;
        self.step(Step::Rename)?;
        let mut inner = self.inner.lock().expect("store");
        if inner.entries.contains_key(name) {
            return Ok(false);
        }
        inner.entries.insert(*name, Arc::new(bytes));
        Ok(true)
    }

    fn stage(&self, name: &Name, bytes: Vec<u8>) -> Result<bool> {
        if self.has(name) {
            return Ok(false);
        }
        match &self.batch {
            Some(batch) => {
                let mut batch = batch.lock().expect("batch");
                if batch.iter().any(|(n, _)| n == name) {
                    return Ok(false);
                }
                batch.push((*name, bytes));
                Ok(true)
            }
            None => self.publish(name, bytes),
        }
    }

    fn bytes(&self, name: &Name) -> Option<Arc<Vec<u8>>> {
        self.inner.lock().expect("store").entries.get(name).cloned()
    }
}

impl Store for MemoryStore {
    fn put(&self, name: &Name, bytes: &[u8]) -> Result<bool> {
        if self.has(name) {
            return Ok(false);
        }
        self.step(Step::Write)?;
        self.stage(name, bytes.to_vec())
    }

    fn create(&self) -> Result<Box<dyn EntryWriter>> {
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            bytes: Vec::new(),
        }))
    }

    fn open(&self, name: &Name) -> Result<Option<(EntryReader, u64)>> {
        Ok(self.bytes(name).map(|b| {
            let len = b.len() as u64;
            (Box::new(Cursor::new(b.to_vec())) as EntryReader, len)
        }))
    }

    fn read_at(&self, name: &Name, offset: u64, len: usize) -> Result<Vec<u8>> {
        let Some(b) = self.bytes(name) else {
            return Err(Error::Io {
                path: self.locate(name),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        };
        let start = (offset as usize).min(b.len());
        let end = start.saturating_add(len).min(b.len());
        Ok(b[start..end].to_vec())
    }

    fn size(&self, name: &Name) -> Option<u64> {
        self.bytes(name).map(|b| b.len() as u64)
    }

    fn exists(&self, name: &Name) -> bool {
        self.has(name)
    }

    fn list(&self, kind: NameKind) -> Result<Vec<Name>> {
        let inner = self.inner.lock().expect("store");
        Ok(inner
            .entries
            .keys()
            .filter(|n| n.kind() == kind)
            .copied()
            .collect())
    }

    fn delete(&self, name: &Name) -> Result<bool> {
        if !self.has(name) {
            return Ok(false);
        }
        self.step(Step::Delete)?;
        Ok(self
            .inner
            .lock()
            .expect("store")
            .entries
            .remove(name)
            .is_some())
    }

    fn begin(&self) -> Arc<dyn Store> {
        Arc::new(MemoryStore {
            inner: self.inner.clone(),
            batch: Some(Arc::default()),
        })
    }

    fn commit(&self) -> Result<()> {
        let Some(batch) = &self.batch else {
            return Ok(());
        };
        let pending = std::mem::take(&mut *batch.lock().expect("batch"));
        if pending.is_empty() {
            return Ok(());
        }
        // One flush for the batch, then a publish each.
        self.step(Step::Sync)?;
        for (name, bytes) in pending {
            self.step(Step::Rename)?;
            let mut inner = self.inner.lock().expect("store");
            inner.entries.entry(name).or_insert_with(|| Arc::new(bytes));
        }
        Ok(())
    }

    fn locate(&self, name: &Name) -> PathBuf {
        PathBuf::from(format!("memory:{name:?}"))
    }
}

struct MemoryWriter {
    store: MemoryStore,
    bytes: Vec<u8>,
}

impl EntryWriter for MemoryWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.store.step(Step::Write)?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, name: &Name) -> Result<bool> {
        self.store.stage(name, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_at_each_step_leaves_no_partial_entry() {
        for fault in [Fault::NoSpace, Fault::Torn, Fault::Sync, Fault::Rename] {
            for n in 0..4 {
                let store = MemoryStore::new();
                store.arm(n, fault);
                let batch = store.begin();
                let name = Name::Object([9; 32]);
                let r = batch.put(&name, b"whole").and_then(|_| batch.commit());
                if r.is_err() {
                    assert_eq!(store.size(&name), None, "{fault:?} at {n}");
                } else {
                    assert_eq!(store.get(&name, 10).unwrap().unwrap(), b"whole");
                }
            }
        }
    }
}
