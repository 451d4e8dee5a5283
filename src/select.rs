//! Which tensors and stages a command works on — the selections every
//! command shares, below them all: `--select PAT` (by name), `--layers A..B`
//! (by layer number), `--stages all|a,b` (by stage), and `--map REGEX=REPLACEMENT`
//! (how RIGHT's names are paired with LEFT's).
//!
//! `--select`:
//! A pattern with glob metacharacters (`*`, `?`, `[`) is a glob over the
//! whole name; any other pattern matches as a substring — the common case is
//! `--select layers.26.` and nobody should have to write `*layers.26.*`.

use crate::error::{Error, Result};
use std::str::FromStr;

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

/// `--layers A..B`: layer numbers A (inclusive) to B (exclusive), as
/// aprender's `--save-tensor-layers`. A tensor's layer number is the integer
/// path segment right after `layers`, `layer`, `h`, `blocks` or `block`
/// (`model.layers.3.mlp…`, `transformer.h.3.attn…`); tensors without one
/// (embeddings, the final norm) are always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRange {
    pub start: u64,
    pub end: u64,
}

impl LayerRange {
    pub fn keeps(&self, name: &str) -> bool {
        match layer_number(name) {
            Some(l) => self.start <= l && l < self.end,
            None => true,
        }
    }
}

impl FromStr for LayerRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<LayerRange> {
        let bad = || Error::Usage(format!("--layers '{s}': expected START..END with whole numbers, START < END (END exclusive), e.g. 0..4"));
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let start: u64 = a.trim().parse().map_err(|_| bad())?;
        let end: u64 = b.trim().parse().map_err(|_| bad())?;
        if start >= end {
            return Err(bad());
        }
        Ok(LayerRange { start, end })
    }
}

impl std::fmt::Display for LayerRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// The layer number of a tensor name, if it has one.
pub fn layer_number(name: &str) -> Option<u64> {
    let parts: Vec<&str> = name.split(['.', '/']).collect();
    parts
        .windows(2)
        .find(|w| matches!(w[0], "layers" | "layer" | "h" | "blocks" | "block") && w[1].parse::<u64>().is_ok())
        .and_then(|w| w[1].parse().ok())
}

/// `--stages all|a,b`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StageSelection {
    #[default]
    All,
    /// Only these stages (names checked against the selected tensors' stages).
    Named(Vec<String>),
}

impl StageSelection {
    pub fn includes(&self, stage: &str) -> bool {
        match self {
            StageSelection::All => true,
            StageSelection::Named(names) => names.iter().any(|n| n == stage),
        }
    }
}

impl FromStr for StageSelection {
    type Err = Error;
    fn from_str(s: &str) -> Result<StageSelection> {
        if s.trim() == "all" {
            return Ok(StageSelection::All);
        }
        let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
        if names.iter().any(String::is_empty) {
            return Err(Error::Usage(format!("--stages '{s}': expected 'all' or stage names separated by commas")));
        }
        Ok(StageSelection::Named(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_numbers_follow_the_spec_s_segments() {
        assert_eq!(layer_number("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_number("transformer.h.3.attn.c_attn.weight"), Some(3));
        assert_eq!(layer_number("encoder.layer.0.attention.self.query.weight"), Some(0));
        assert_eq!(layer_number("blocks.7.norm"), Some(7));
        assert_eq!(layer_number("model.embed_tokens.weight"), None);
        assert_eq!(layer_number("model.layers.x.weight"), None);
        assert_eq!(layer_number("h.weight"), None);
    }
}

/// `--map 'REGEX=REPLACEMENT'`: a rename rule for RIGHT's names. Split at
/// the last `=`; the replacement may use `$1`, `${name}` as the regex crate
/// defines them.
#[derive(Clone, Debug)]
pub struct NameMap {
    pub rule: String,
    regex: regex::Regex,
    replacement: String,
}

impl NameMap {
    /// A rule from its two halves (a name-map file's `[regex, replacement]`);
    /// `rule` is how messages show it.
    pub fn new(regex: &str, replacement: &str, rule: String) -> Result<NameMap> {
        let re = regex::Regex::new(regex).map_err(|e| Error::Usage(format!("{rule}: invalid regex: {}", one_line(&e.to_string()))))?;
        Ok(NameMap { rule, regex: re, replacement: replacement.to_string() })
    }

    pub fn apply(&self, name: &str) -> String {
        self.regex.replace_all(name, self.replacement.as_str()).into_owned()
    }
}

impl FromStr for NameMap {
    type Err = Error;
    fn from_str(s: &str) -> Result<NameMap> {
        let (re, rep) = s
            .rsplit_once('=')
            .ok_or_else(|| Error::Usage(format!("--map '{s}': expected REGEX=REPLACEMENT")))?;
        if re.is_empty() {
            return Err(Error::Usage(format!("--map '{s}': the regex is empty")));
        }
        let regex = regex::Regex::new(re).map_err(|e| Error::Usage(format!("--map '{s}': invalid regex: {}", one_line(&e.to_string()))))?;
        Ok(NameMap { rule: s.to_string(), regex, replacement: rep.to_string() })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
