//! How the comparer writes numbers for people (machine output keeps full precision).

/// Three significant digits, scientific, trailing zeros trimmed: `3.1e-3`,
/// `1e-5`, `0`, `NaN`, `inf`, `-inf`; an integer whole: `255`, `-3`.
pub fn short(x: f64) -> String {
    sig(x, 3)
}

/// Below this, an integer-valued number prints as the integer it is.
/// Every integer under 2⁵³ is exact in f64, so `{:.0}` prints its digits
/// exactly; 10¹⁵ keeps that true with room to spare, and above it a count of
/// digits no reader checks one by one reads better as `1.23e17`.
const PLAIN_INTEGER_BELOW: f64 = 1e15;

/// `digits` significant digits, as [`short`]; an integer-valued number
/// (a count, a u8 value, a limit of 255) prints as that integer, every digit
/// kept: `255`, not `2.6e2`, which no reader can tell from 255.4 or 264.
pub fn sig(x: f64, digits: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x.fract() == 0.0 && x.abs() < PLAIN_INTEGER_BELOW {
        // No rounding: x is an integer and below 2⁵³ (see the constant).
        return format!("{x:.0}");
    }
    let s = format!("{:.*e}", digits.saturating_sub(1), x);
    match s.split_once('e') {
        Some((mantissa, exp)) if mantissa.contains('.') => {
            let m = mantissa.trim_end_matches('0').trim_end_matches('.');
            format!("{m}e{exp}")
        }
        _ => s,
    }
}

/// A tensor element for people: plain decimals with 8 significant digits
/// where that reads well (`0.66901326`, `-12.5`), scientific elsewhere.
pub fn value(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return short(x);
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return sig(x, 8);
    }
    let decimals = (7 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A difference for people: an integer tensor's exact |d| in full
/// (`4611686018427387905`, never `4.61e18`), else [`short`].
pub fn diff(x: f64, exact: Option<u64>) -> String {
    match exact {
        Some(d) => d.to_string(),
        None => short(x),
    }
}

/// A value and the limit it broke, each with just enough digits to tell them
/// apart (`1.0004e-3` vs `1e-3`, never `1e-3 > 1e-3`), and to order them as
/// they are: an integer prints whole, so `1000.5` against `1000` must not
/// stop at `1e3` vs `1000`, which differ as text but not as numbers.
pub fn versus(value: f64, limit: f64) -> (String, String) {
    for digits in 2..=17 {
        let (v, l) = (sig(value, digits), sig(limit, digits));
        let ordered = match (v.parse::<f64>(), l.parse::<f64>()) {
            (Ok(pv), Ok(pl)) => pv.partial_cmp(&pl) == value.partial_cmp(&limit),
            // "NaN"/"inf" parse; anything else would be a bug above, but
            // text that differs is still better than no answer.
            _ => true,
        };
        if v != l && ordered {
            return (v, l);
        }
    }
    (format!("{value:e}"), format!("{limit:e}"))
}

/// An exact integer (a max |diff| of integer tensors) and the limit it
/// broke: the integer in full, the limit as an integer when it is a whole
/// number a u64 holds (`9007199254740993` vs `9007199254740992`), else in
/// three significant digits (`3` vs `2.5e0`).
pub fn versus_int(value: u64, limit: f64) -> (String, String) {
    let l = if limit.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&limit) {
        // A whole f64 below 2⁶⁴: the cast is exact.
        (limit as u64).to_string()
    } else {
        short(limit)
    };
    (value.to_string(), l)
}

/// Cosine similarity: close to 1 is where the digits matter, so show up to
/// nine decimals (`0.99999994`), trimmed.
pub fn cosine(c: f64) -> String {
    if !c.is_finite() {
        return short(c);
    }
    let s = format!("{c:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A ratio as a percentage with about two significant digits: `31%`,
/// `3.1%`, `0.31%`, `<0.01%`, `inf%`.
pub fn share(ratio: f64) -> String {
    let p = ratio * 100.0;
    if !p.is_finite() {
        format!("{}%", short(p))
    } else if p >= 10.0 || p == 0.0 {
        format!("{p:.0}%")
    } else if p >= 1.0 {
        format!("{p:.1}%")
    } else if p >= 0.01 {
        format!("{p:.2}%")
    } else {
        "<0.01%".into()
    }
}

/// A level in decibels, one decimal (`24.8`, `-3.0`, `inf`): SQNR spans
/// tens of dB, so a tenth is all the precision a reader compares.
pub fn db(x: f64) -> String {
    if !x.is_finite() {
        return short(x);
    }
    format!("{x:.1}")
}

/// A multi-index as Python prints it: `(3, 17)`, `(5,)`, `()`.
pub fn index(ix: &[usize]) -> String {
    match ix {
        [one] => format!("({one},)"),
        _ => format!("({})", ix.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// A shape as reports write it: `[3072, 1024]`.
pub fn shape(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
}

/// A count and its noun, singular for one: `1 tensor`, `0 tensors`,
/// `3,072 tensors` (thousands separated). `noun` is the singular; every noun
/// parity counts takes an `s`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `3145728` → `3,145,728`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `part / whole` as a percentage that never rounds a non-zero share to 0:
/// `0.04%`, `<0.01%`, `12.5%`, `100%`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 || part == 0 {
        return "0%".into();
    }
    if part == whole {
        return "100%".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p < 0.01 {
        "<0.01%".into()
    } else if p < 1.0 {
        format!("{p:.2}%")
    } else {
        let s = format!("{p:.1}%");
        // 99.96% must not print as 100.0%: the bytes are not all different.
        if s == "100.0%" {
            ">99.9%".into()
        } else {
            s
        }
    }
}

/// A sha256 for people: its first 12 hex digits and an ellipsis.
pub fn short_hash(h: &str) -> String {
    format!("{}…", &h[..h.len().min(12)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_documented() {
        assert_eq!(short(0.0031), "3.1e-3");
        assert_eq!(short(1e-5), "1e-5");
        assert_eq!(short(0.0), "0");
        assert_eq!(versus(1.0004e-3, 1e-3), ("1.0004e-3".into(), "1e-3".into()));
        assert_eq!(versus_int((1 << 53) + 1, 9_007_199_254_740_992.0), ("9007199254740993".into(), "9007199254740992".into()));
        assert_eq!(versus_int(3, 2.5), ("3".into(), "2.5e0".into()));
        assert_eq!(versus_int(u64::MAX, 0.0), ("18446744073709551615".into(), "0".into()));
        assert_eq!(index(&[3, 17]), "(3, 17)");
        assert_eq!(index(&[5]), "(5,)");
        assert_eq!(thousands(3_145_728), "3,145,728");
        assert_eq!(percent(1234, 3_145_728), "0.04%");
        assert_eq!(cosine(0.999999940395355), "0.99999994");
        assert_eq!(value(0.669013261795044), "0.66901326");
        assert_eq!(value(-12.5), "-12.5");
        assert_eq!(share(0.031), "3.1%");
        assert_eq!(share(0.31), "31%");
        assert_eq!(value(3e-7), "3e-7");
        assert_eq!(db(24.7712125), "24.8");
        assert_eq!((db(f64::INFINITY), db(f64::NEG_INFINITY), db(-3.0)), ("inf".into(), "-inf".into(), "-3.0".into()));
    }
}
