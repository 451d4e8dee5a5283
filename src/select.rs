//! `--select PAT`: which tensors a command works on, by name.
//!
//! A pattern with glob metacharacters (`*`, `?`, `[`) is a glob over the
//! whole name; any other pattern matches as a substring — the common case is
//! `--select layers.26.` and nobody should have to write `*layers.26.*`.

use crate::error::{Error, Result};

pub struct Selection {
    patterns: Vec<(String, Option<glob::Pattern>)>,
}

impl Selection {
    pub fn new(patterns: &[String]) -> Result<Selection> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let glob = if p.contains(['*', '?', '[']) {
                    Some(glob::Pattern::new(p).map_err(|e| Error::Usage(format!("--select '{p}': bad glob: {e}")))?)
                } else {
                    None
                };
                Ok((p.clone(), glob))
            })
            .collect::<Result<_>>()?;
        Ok(Selection { patterns })
    }

    /// Everything is selected when no pattern is given.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|(p, g)| match g {
                Some(g) => g.matches(name),
                None => name.contains(p.as_str()),
            })
    }

    /// The selected names, or a usage error when patterns were given and
    /// nothing matched (a typo must not turn into an empty, passing check).
    pub fn apply<'a, T>(&self, items: &'a [T], name: impl Fn(&T) -> &str) -> Result<Vec<&'a T>> {
        let chosen: Vec<&T> = items.iter().filter(|t| self.matches(name(t))).collect();
        // Every pattern must match something: a misspelt second pattern
        // beside a good first one would otherwise be silently ignored.
        for (p, g) in &self.patterns {
            let hit = |n: &str| match g {
                Some(g) => g.matches(n),
                None => n.contains(p.as_str()),
            };
            if !chosen.iter().any(|t| hit(name(t))) {
                return Err(Error::Usage(format!("--select '{p}' matches no tensor")));
            }
        }
        Ok(chosen)
    }
}
