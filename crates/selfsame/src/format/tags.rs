//! Soul format tags (`v1`, `v2`, …: a checkpoint's `format`) and the sets
//! of them a shell reads (`reads = "v2..v4"`).

use std::fmt;

/// Checks a soul format tag: `v` then a positive decimal number.
pub fn check_format_tag(tag: &str) -> Result<u32, String> {
    tag.strip_prefix('v')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("format tag {tag:?} is not of the form v1, v2, …"))
}

/// The soul formats a shell reads: tags and inclusive ranges, e.g.
/// `v2..v4`, `v3`, `v1,v3..v5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads(Vec<(u32, u32)>);

impl Reads {
    /// Parses a comma-separated list of `vN` and `vA..vB`.
    pub fn parse(text: &str) -> Result<Reads, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err("expected formats like v3, v2..v4 or v1,v3".into());
            }
            let (a, b) = match item.split_once("..") {
                Some((a, b)) => (check_format_tag(a.trim())?, check_format_tag(b.trim())?),
                None => {
                    let n = check_format_tag(item)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(format!("{item:?} is an empty range"));
            }
            ranges.push((a, b));
        }
        Ok(Reads(ranges))
    }

    /// Whether the shell reads format `n`.
    pub fn contains(&self, n: u32) -> bool {
        self.0.iter().any(|&(a, b)| a <= n && n <= b)
    }

    /// The newest format read.
    pub fn newest(&self) -> u32 {
        self.0.iter().map(|&(_, b)| b).max().unwrap_or(0)
    }
}

impl fmt::Display for Reads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    format!("v{a}")
                } else {
                    format!("v{a}..v{b}")
                }
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parses_tags_ranges_and_lists() {
        let r = Reads::parse("v1, v3..v5").unwrap();
        assert!(r.contains(1) && !r.contains(2) && r.contains(4) && r.contains(5));
        assert_eq!(r.newest(), 5);
        assert_eq!(r.to_string(), "v1,v3..v5");
        for bad in ["", "3", "v0", "v5..v3", "v1,", "v01"] {
            assert!(Reads::parse(bad).is_err(), "{bad:?}");
        }
    }
}
