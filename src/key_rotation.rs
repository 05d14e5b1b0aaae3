//! The server key's rotation, run by `keygate server-key` beside the serving instances: which
//! keys sealed how many values, and the re-sealing of every value under the current key.
//!
//! A rotation re-seals in batches, each its own transaction, so that it holds no lock for long
//! and an interruption loses at most the batch in flight; running it again takes up what is
//! left, as it only ever reads values sealed under other keys than the current one. Each value
//! is replaced only if it is still what was read (compare and swap on key id and ciphertext),
//! so a value an instance rewrote meanwhile is kept, never overwritten with an older one.

use crate::StartupError;
use crate::bootstrap::check_server_key;
use crate::secrets::server_key::Keyring;
use crate::storage::Store;
use crate::storage::sealed::{Resealed, SealedPlace, SealedTable};

/// One server key of the database: whether it is the current one, and how many values of each
/// table it sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    pub key_id: String,
    pub current: bool,
    /// Sealed values per table, in [`SealedTable::ALL`]'s order.
    pub rows: [i64; 3],
}

impl KeyUse {
    pub fn total(&self) -> i64 {
        self.rows.iter().sum()
    }
}

/// Every key the database records or a sealed value names, the current one first, then by id.
pub async fn status(store: &dyn Store) -> Result<Vec<KeyUse>, StartupError> {
    let mut keys: Vec<KeyUse> = store
        .server_key_checks()
        .await?
        .into_iter()
        .map(|check| KeyUse {
            key_id: check.key_id,
            current: check.is_current,
            rows: [0; 3],
        })
        .collect();
    for count in store.sealed_counts().await? {
        let at = match keys.iter().position(|key| key.key_id == count.key_id) {
            Some(at) => at,
            None => {
                keys.push(KeyUse {
                    key_id: count.key_id.clone(),
                    current: false,
                    rows: [0; 3],
                });
                keys.len() - 1
            }
        };
        let column = SealedTable::ALL
            .iter()
            .position(|table| *table == count.table)
            .expect("every table is in ALL");
        keys[at].rows[column] += count.rows;
    }
    keys.sort_by(|a, b| b.current.cmp(&a.current).then(a.key_id.cmp(&b.key_id)));
    Ok(keys)
}

/// What a rotation did.
#[derive(Clone, Debug, Default)]
pub struct Rotation {
    /// Values now sealed under the current key.
    pub resealed: u64,
    /// Values an instance rewrote between their reading and their replacement: left as they
    /// are (a run afterwards re-seals them if they are still under an old key).
    pub changed_meanwhile: u64,
    /// Values the key their id names does not open: altered, or moved to another row.
    pub unreadable: Vec<SealedPlace>,
    /// The keys other than the current one that still sealed values, once done.
    pub remaining: Vec<KeyUse>,
}

/// Re-seals every value sealed under another key than `ring`'s current one, `batch` values per
/// transaction, and at most `limit` values in all. The ring is checked first as an instance
/// start checks it, which also makes its current key the database's.
pub async fn rotate(
    store: &dyn Store,
    ring: &Keyring,
    batch: u32,
    limit: Option<u64>,
) -> Result<Rotation, StartupError> {
    check_server_key(store, ring).await?;
    let mut rotation = Rotation::default();
    let mut read = 0u64;
    'tables: for table in SealedTable::ALL {
        let mut after: Option<SealedPlace> = None;
        loop {
            let room = limit.map_or(u64::from(batch), |limit| {
                limit.saturating_sub(read).min(u64::from(batch))
            });
            if room == 0 {
                break 'tables;
            }
            let page = store
                .sealed_values(table, ring.id(), after.as_ref(), room as i64)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.place.clone());
            read += page.len() as u64;
            let mut resealed = Vec::with_capacity(page.len());
            for value in page {
                match ring.open(&value.sealed, &value.associated) {
                    Some(plain) => resealed.push(Resealed {
                        new: ring.seal(&plain, &value.associated),
                        old: value.sealed,
                        place: value.place,
                    }),
                    None => rotation.unreadable.push(value.place),
                }
            }
            let replaced = store.reseal(&resealed).await?;
            rotation.resealed += replaced;
            rotation.changed_meanwhile += resealed.len() as u64 - replaced;
            tracing::info!(
                table = table.name(),
                resealed = replaced,
                key_id = ring.id(),
                "re-sealed a batch"
            );
        }
    }
    rotation.remaining = status(store)
        .await?
        .into_iter()
        .filter(|key| !key.current && key.total() > 0)
        .collect();
    Ok(rotation)
}
