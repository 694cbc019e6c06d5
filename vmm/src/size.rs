//! Byte sizes on the command line: `4096`, `64K`, `2M`, `1G`, `1GiB`.
//!
//! Hand-written because the sizes here are binary (1G = 2^30) and must be
//! exact; the popular size crates default to decimal units.

/// Parses a size with an optional binary suffix (K, M, G, T; `iB`/`B` may
/// follow), case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size (examples: 4096, 64K, 2M, 1G)"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    let unit = suffix.to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{suffix}' (use K, M, G or T)"
            ))
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Formats a byte count with the largest exact binary unit ("2M", "1G").
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, unit) in UNITS {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A clap value parser for a power-of-two size within `[min, max]`.
pub fn power_of_two_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |text| {
        let value = parse_size(text)?;
        if !value.is_power_of_two() {
            return Err(format!("{text} is not a power of two"));
        }
        if !(min..=max).contains(&value) {
            return Err(format!(
                "{text} is outside the allowed range {} ..= {}",
                format_size(min),
                format_size(max)
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_suffixed_sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4MB"), Ok(4 << 20));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
    }

    #[test]
    fn rejects_garbage_with_a_message() {
        for bad in [
            "",
            "G",
            "1X",
            "1.5G",
            "-1",
            "99999999999999999999",
            "20000000000T",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(bad) || bad.is_empty(), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_exact_units() {
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(3 << 20), "3M");
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn range_parser_checks_power_of_two_and_bounds() {
        let parse = power_of_two_in(4 << 10, 1 << 30);
        assert_eq!(parse("64K"), Ok(64 << 10));
        assert!(parse("48K").unwrap_err().contains("power of two"));
        assert!(parse("2K").unwrap_err().contains("4K ..= 1G"));
        assert!(parse("2G").unwrap_err().contains("outside"));
    }
}
