//! Central's embedded store: named tables of JSON values over sled, the same store the
//! recorder's index uses. This is the only module that touches sled. Values are JSON so that
//! a record written by an older build still reads (unknown fields ignored); keys are bytes
//! chosen by each table's owner so that they sort the way it scans.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vms_core::{Error, err};

fn db_err(e: sled::Error) -> Error {
    err!(Internal, "store: {e}")
}

fn decode<T: DeserializeOwned>(table: &str, key: &[u8], v: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(v).map_err(|e| {
        err!(
            DataLoss,
            "store table {table}: undecodable value at key {}: {e}",
            String::from_utf8_lossy(key)
        )
    })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| err!(Internal, "store: encoding a value: {e}"))
}

/// The whole store: one sled database in central's data directory.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|e| err!(Unavailable, "opening the store {}: {e}", path.display()))?;
        Ok(Store { db })
    }

    pub fn table(&self, name: &'static str) -> Result<Table, Error> {
        let tree = self.db.open_tree(name).map_err(db_err)?;
        Ok(Table { name, tree })
    }

    /// Makes every write so far durable. Blocking: call it off the async threads.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush().map(|_| ()).map_err(db_err)
    }
}

/// One table: keys of bytes, values of JSON.
#[derive(Clone)]
pub struct Table {
    name: &'static str,
    tree: sled::Tree,
}

/// Writes to one table that land all together or not at all.
#[derive(Default)]
pub struct Batch(sled::Batch);

impl Batch {
    pub fn put<T: Serialize>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        self.0.insert(key.as_ref(), encode(value)?);
        Ok(())
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.0.remove(key.as_ref());
    }
}

impl Table {
    pub fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error> {
        let key = key.as_ref();
        match self.tree.get(key).map_err(db_err)? {
            Some(v) => decode(self.name, key, &v).map(Some),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&self, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        self.tree
            .insert(key.as_ref(), encode(value)?)
            .map_err(db_err)?;
        Ok(())
    }

    /// Inserts only when the key is absent; false when it was there.
    pub fn put_new<T: Serialize>(&self, key: impl AsRef<[u8]>, value: &T) -> Result<bool, Error> {
        let r = self
            .tree
            .compare_and_swap(key.as_ref(), None as Option<&[u8]>, Some(encode(value)?))
            .map_err(db_err)?;
        Ok(r.is_ok())
    }

    /// Removes the key and returns what it held: exactly one caller gets a value.
    pub fn take<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error> {
        let key = key.as_ref();
        match self.tree.remove(key).map_err(db_err)? {
            Some(v) => decode(self.name, key, &v).map(Some),
            None => Ok(None),
        }
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        Ok(self.tree.remove(key.as_ref()).map_err(db_err)?.is_some())
    }

    pub fn apply(&self, batch: Batch) -> Result<(), Error> {
        self.tree.apply_batch(batch.0).map_err(db_err)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), Error>> + '_ {
        self.tree.scan_prefix(prefix.as_ref()).map(move |kv| {
            let (k, v) = kv.map_err(db_err)?;
            let value = decode(self.name, &k, &v)?;
            Ok((k.to_vec(), value))
        })
    }

    /// Entries with keys in `[from, to)`, in key order.
    pub fn range<T: DeserializeOwned>(
        &self,
        from: &[u8],
        to: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), Error>> + '_ {
        self.tree.range(from..to).map(move |kv| {
            let (k, v) = kv.map_err(db_err)?;
            let value = decode(self.name, &k, &v)?;
            Ok((k.to_vec(), value))
        })
    }

    /// The entry with the greatest key under `prefix`.
    pub fn last<T: DeserializeOwned>(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        self.tree
            .scan_prefix(prefix.as_ref())
            .next_back()
            .map(|kv| {
                let (k, v) = kv.map_err(db_err)?;
                Ok((k.to_vec(), decode(self.name, &k, &v)?))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_batches_and_one_time_takes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let t = store.table("things").unwrap();
        t.put("a/1", &1u32).unwrap();
        let mut b = Batch::default();
        b.put("a/2", &2u32).unwrap();
        b.put("b/1", &3u32).unwrap();
        t.apply(b).unwrap();
        let a: Vec<u32> = t.scan("a/").map(|r| r.unwrap().1).collect();
        assert_eq!(a, [1, 2]);
        assert_eq!(t.last::<u32>("a/").unwrap().unwrap().1, 2);
        assert!(!t.put_new("a/1", &9u32).unwrap());
        assert_eq!(t.get::<u32>("a/1").unwrap(), Some(1));
        assert_eq!(t.take::<u32>("a/1").unwrap(), Some(1));
        assert_eq!(t.take::<u32>("a/1").unwrap(), None);
        t.tree.insert("bad", &b"{"[..]).unwrap();
        let e = t.get::<u32>("bad").unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
        store.flush().unwrap();
    }
}
