//! The region tree as data: the shipped `spec/regions.toml` (the republic, its regions and
//! cities of republican significance) merged with an operator's extra file of the same format,
//! whose entries add regions or rename shipped ones but never remove any (`spec/identity.md`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use vms_core::region::{RegionCode, RegionNames, RegionTree};
use vms_core::{Error, IoResultExt, bail, err};

/// The shipped file, built in.
const SHIPPED: &str = include_str!("../../spec/regions.toml");

/// The value of `format` this build reads.
const FORMAT: &str = "vms-regions/1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionsFile {
    /// Required: `vms-regions/1`.
    format: String,
    /// The `[[region]]` entries; none by default.
    #[serde(default)]
    region: Vec<RegionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    /// Required: the 9-digit region code.
    code: String,
    /// Required: the Kazakh name in Latin script, 1 to 128 characters, not blank.
    name_kk: String,
    /// Required: the Russian name, likewise.
    name_ru: String,
    /// Required: the English name, likewise.
    name_en: String,
}

/// The region tree: the shipped regions, with `extra`'s entries added or renaming shipped ones.
/// Errors name the file and the entry.
pub fn load(extra: Option<&Path>) -> Result<RegionTree, Error> {
    let mut regions = parse(SHIPPED).map_err(|e| e.context("spec/regions.toml (built in)"))?;
    if let Some(path) = extra {
        let text =
            std::fs::read_to_string(path).io_context(|| format!("reading {}", path.display()))?;
        let entries = parse(&text).map_err(|e| e.context(path.display()))?;
        regions.extend(entries);
    }
    RegionTree::new(regions)
}

/// The entries of one file, each code once.
fn parse(text: &str) -> Result<BTreeMap<RegionCode, RegionNames>, Error> {
    let file: RegionsFile = toml::from_str(text).map_err(|e| err!(InvalidArgument, "{e}"))?;
    if file.format != FORMAT {
        bail!(
            InvalidArgument,
            "format: {:?}, this build reads {FORMAT:?}",
            file.format
        );
    }
    let mut out = BTreeMap::new();
    let mut seen_at = BTreeMap::new();
    for (i, entry) in file.region.into_iter().enumerate() {
        let code: RegionCode = entry
            .code
            .parse()
            .map_err(|e: Error| e.context(format!("region[{i}]: code")))?;
        let names = RegionNames::new(entry.name_kk, entry.name_ru, entry.name_en)
            .map_err(|e| e.context(format!("region[{i}] {code}")))?;
        if let Some(first) = seen_at.insert(code, i) {
            bail!(
                InvalidArgument,
                "region[{i}] {code}: already given as region[{first}]"
            );
        }
        out.insert(code, names);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    fn extra_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn shipped_file_loads() {
        let tree = load(None).unwrap();
        let top = tree.children(&RegionCode::REPUBLIC);
        assert_eq!(top.len(), 17 + 3, "{top:?}");
        assert!(top.iter().all(|c| *c == c.top_level()), "{top:?}");
        for (code, en) in [
            ("100000000", "Abai Region"),
            ("330000000", "Jetisu Region"),
            ("620000000", "Ulytau Region"),
            ("710000000", "Astana"),
            ("750000000", "Almaty"),
            ("790000000", "Shymkent"),
        ] {
            assert_eq!(tree.name(&r(code)).unwrap().en(), en, "{code}");
        }
        assert_eq!(tree.parent(&r("750000000")), Some(RegionCode::REPUBLIC));
        assert_eq!(
            tree.name(&RegionCode::REPUBLIC).unwrap().kk(),
            "Qazaqstan Respublikasy"
        );
        // Every entry of the file made it into the tree (its codes all parsed).
        let entries = SHIPPED.matches("[[region]]").count();
        assert_eq!(entries, 1 + top.len());
    }

    #[test]
    fn extra_file_adds_and_renames() {
        let f = extra_file(
            r#"
            format = "vms-regions/1"
            [[region]]
            code = "751110000"
            name_kk = "Almaly audany"
            name_ru = "Алмалинский район"
            name_en = "Almaly District"
            [[region]]
            code = "710000000"
            name_kk = "Astana qalasy"
            name_ru = "город Астана"
            name_en = "Astana City"
            "#,
        );
        let tree = load(Some(f.path())).unwrap();
        let district = r("751110000");
        assert_eq!(tree.parent(&district), Some(r("750000000")));
        assert_eq!(tree.children(&r("750000000")), [district]);
        // A camera in a settlement of the district, which the file does not list.
        assert_eq!(tree.resolve(&r("751110123")), district);
        assert_eq!(tree.name(&r("710000000")).unwrap().en(), "Astana City");
        assert_eq!(tree.children(&RegionCode::REPUBLIC).len(), 20);
    }

    #[test]
    fn bad_extra_files_name_the_entry() {
        let entry = |code: &str, en: &str| {
            format!(
                "[[region]]\ncode = \"{code}\"\nname_kk = \"k\"\nname_ru = \"r\"\nname_en = \"{en}\"\n"
            )
        };
        let good = entry("751110000", "Almaly District");
        let cases = [
            (
                format!("format = \"vms-regions/1\"\n{good}{}", entry("75111", "x")),
                "region[1]: code: region \"75111\" must be 9 digits",
            ),
            (
                format!(
                    "format = \"vms-regions/1\"\n{good}{}",
                    entry("751210000", " ")
                ),
                "region[1] 751210000: name_en: blank",
            ),
            (
                format!("format = \"vms-regions/1\"\n{good}{good}"),
                "region[1] 751110000: already given as region[0]",
            ),
            (
                format!("format = \"vms-regions/1\"\n{good}population = 1\n"),
                "unknown field `population`",
            ),
            (format!("format = \"vms-regions/2\"\n{good}"), "format"),
            (good.clone(), "missing field `format`"),
        ];
        for (text, want) in cases {
            let f = extra_file(&text);
            let e = load(Some(f.path())).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&f.path().display().to_string()),
                "{want}: {msg}"
            );
            assert!(msg.contains(want), "{want:?} not in {msg:?}");
        }
        let e = load(Some(Path::new("/nonexistent/regions.toml"))).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::NotFound);
    }
}
