//! How `parity diff` pairs tensors, and which pairs one job takes:
//! `--map 'REGEX=REPLACEMENT'` renames RIGHT's tensors (the rule is
//! `crate::select::NameMap`, shared with `check`), `--partition K/N` splits
//! the pairs into byte-balanced parts. (Which tensors: `crate::select`.)

use crate::error::{Error, Result};
use std::str::FromStr;

pub use crate::select::NameMap;

/// `--partition K/N`: this job compares the K-th of N byte-balanced parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

impl FromStr for Partition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Partition> {
        let bad = |why: &str| Error::Usage(format!("--partition '{s}': {why}"));
        let (k, n) = s.split_once('/').ok_or_else(|| bad("expected K/N, e.g. 2/8"))?;
        let k: usize = k.trim().parse().map_err(|_| bad("K is not a whole number"))?;
        let n: usize = n.trim().parse().map_err(|_| bad("N is not a whole number"))?;
        if n == 0 || k == 0 || k > n {
            return Err(bad("need 1 ≤ K ≤ N"));
        }
        Ok(Partition { k, n })
    }
}

/// Assign each item (name, bytes to read) to one of `n` parts, balanced by
/// bytes: largest first (ties by name), each to the part with the fewest
/// bytes so far (ties to the lowest part). Deterministic: the same items
/// give the same parts on every machine. Returns each item's part, 1-based.
pub fn assign(items: &[(&str, u64)], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then_with(|| items[a].0.cmp(items[b].0)));
    let mut load = vec![0u64; n];
    let mut part = vec![0usize; items.len()];
    for i in order {
        let (p, _) = load.iter().enumerate().min_by_key(|&(j, l)| (*l, j)).expect("n ≥ 1");
        load[p] += items[i].1;
        part[i] = p + 1;
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_balance_bytes_and_cover_everything_once() {
        let items = [("a", 10), ("b", 7), ("c", 5), ("d", 5), ("e", 1), ("f", 0)];
        let parts = assign(&items, 3);
        assert_eq!(parts, vec![1, 2, 3, 3, 2, 2]);
        let mut load = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            load[p - 1] += items[i].1;
        }
        assert_eq!(load, [10, 8, 10]);
    }
}
