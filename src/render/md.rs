//! Markdown escaping, one set of rules for every command's Markdown (check,
//! diff and merge-results, inspect, the noise floor section).
//!
//! GitHub splits a table row into cells before it reads anything inline, at
//! every `|` that no backslash escapes, where a backslash escapes whatever
//! character follows it (cmark-gfm's row scanner). So a `|` in a name or a
//! header (`|x| max`) must be written `\|`, and a backslash written `\\`
//! first: else `a\|b` would come out as `a\\|b`, whose backslash escapes the
//! other backslash and leaves the `|` splitting the row. A cell that splits
//! gives its row more cells than the delimiter row has, and GitHub then
//! renders no table at all.

/// Text for a table cell (or a line of prose): backslashes and pipes
/// escaped, line breaks flattened (a row is one line), HTML kept inert.
pub(super) fn cell(s: &str) -> String {
    html(s).replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `&`, `<` and `>` as entities: a name from a file must not become markup
/// (GitHub renders inline HTML in step summaries).
pub(super) fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Inline code that is safe in a table cell: a fence longer than any
/// backtick run inside, pipes escaped (GitHub unescapes `\|` even inside a
/// code span, which is read after the row is split), line breaks flattened.
/// A backslash right before a `|` cannot be shown inside a code span (its
/// escape eats one backslash, or the row splits), so such a text is written
/// as escaped plain text by [`cell`] instead: right, if not in monospace.
pub(super) fn code(s: &str) -> String {
    if s.contains("\\|") {
        return cell(s);
    }
    let s = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A table: the header row (each through [`cell`]), the delimiter row, and
/// the rows, whose cells are written as given: each already made by
/// [`cell`] or [`code`], as its column needs.
pub(super) fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", head.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "), "---|".repeat(head.len()));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}
