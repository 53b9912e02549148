//! Free-text fields people type (case numbers, reasons, names): bounded and printable, so that
//! they can go into logs, manifests and headers without surprises.

use crate::{Error, bail};

/// `value` has 1 to `max` characters and no control characters; the error names `field`.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    let n = value.chars().count();
    if n == 0 || n > max || value.chars().any(char::is_control) {
        bail!(
            InvalidArgument,
            "{field}: 1 to {max} characters, no control characters"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_controls() {
        assert!(check_text("case", "KZ-2026-1 Қазақ", 16).is_ok());
        for bad in ["", "a\nb", "a\u{0}", "\u{7f}", "seventeen chars!!"] {
            let e = check_text("case", bad, 16).unwrap_err();
            assert!(e.to_string().starts_with("case: "), "{e}");
        }
    }
}
