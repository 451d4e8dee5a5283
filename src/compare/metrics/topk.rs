//! The largest divergences of a stage (`--top-diffs N`): a bounded heap,
//! ordered by |d| then by index so that ties do not depend on threads.


use std::cmp::Ordering;
use std::collections::BinaryHeap;


#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    /// |d|, or +inf for a non-finite mismatch.
    pub(super) key: f64,
    /// Integer dtypes: |d| exactly, breaking the ties of its rounded `key`
    /// (0 for floats).
    pub(super) key_int: u64,
    pub(super) index: usize,
    pub(super) left: f64,
    pub(super) right: f64,
    /// Integer dtypes: the two values exactly.
    pub(super) exact: Option<(i64, i64)>,
}

/// "Less" is "ranks higher": larger key first (the exact integer key
/// breaking ties of the rounded one), then lower index. The heap (a
/// max-heap) therefore keeps the lowest-ranked kept candidate on top.
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.total_cmp(&self.key).then(o.key_int.cmp(&self.key_int)).then(self.index.cmp(&o.index))
    }
}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Candidate {}

pub(super) struct TopK {
    pub(super) k: usize,
    pub(super) heap: BinaryHeap<Candidate>,
    /// A candidate must beat this key to enter (0 until full, then the
    /// lowest kept key: within a chunk indices only grow, so a tie never wins).
    pub(super) floor: f64,
}

impl TopK {
    pub(super) fn new(k: usize) -> TopK {
        TopK { k, heap: BinaryHeap::new(), floor: if k == 0 { f64::INFINITY } else { 0.0 } }
    }
    pub(super) fn offer(&mut self, c: Candidate) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if c < *self.heap.peek().expect("full heap") {
            self.heap.pop();
            self.heap.push(c);
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().expect("full heap").key;
        }
    }
}
