//! Region codes: 9 digits in the structure of KATO, Kazakhstan's classifier of
//! administrative-territorial units (`AB CD EF GHI`: region, district, rural district, settlement),
//! and the region tree built from a list of named codes (`spec/identity.md`).
//! A code is an attribute of a camera or recorder, never part of an id: it can change.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::text::check_text;
use crate::{Error, bail, err};

/// Where the KATO levels end: the region (2 digits), the district (4), the rural district (6),
/// the settlement (9). Zero digits make the republic.
const LEVEL_ENDS: [usize; 5] = [0, 2, 4, 6, 9];

/// A validated 9-digit region code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode([u8; 9]);

impl RegionCode {
    /// `000000000`, the whole republic: the root of every region tree.
    pub const REPUBLIC: RegionCode = RegionCode(*b"000000000");

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("validated ASCII digits")
    }

    /// The code of the top-level region (the first two digits, the rest zero).
    pub fn top_level(&self) -> RegionCode {
        self.truncated(2)
    }

    /// Whether `self` lies in the subtree of `ancestor` (trailing zero groups of the ancestor
    /// are wildcards: `750000000` contains `751110000`). A code contains itself.
    pub fn is_within(&self, ancestor: &RegionCode) -> bool {
        let n = ancestor.significant();
        self.0[..n] == ancestor.0[..n]
    }

    /// The codes whose subtrees hold this one, nearest first, ending with [`Self::REPUBLIC`]:
    /// the code cut after each shorter KATO level, the rest zero. `751110100` has `751110000`,
    /// `751100000`, `750000000` and `000000000`. Each appears once, whether or not KATO lists it.
    pub fn ancestors(&self) -> impl Iterator<Item = RegionCode> + use<> {
        let code = *self;
        let mut last = code;
        LEVEL_ENDS
            .into_iter()
            .rev()
            .filter(move |&n| n < code.significant())
            .filter_map(move |n| {
                let a = code.truncated(n);
                (a != last).then(|| {
                    last = a;
                    a
                })
            })
    }

    /// How many leading digits matter: the end of the deepest level with a non-zero digit.
    fn significant(&self) -> usize {
        LEVEL_ENDS
            .into_iter()
            .find(|&n| self.0[n..].iter().all(|&d| d == b'0'))
            .unwrap_or(9)
    }

    /// The first `n` digits, the rest zero.
    fn truncated(&self, n: usize) -> RegionCode {
        let mut c = *b"000000000";
        c[..n].copy_from_slice(&self.0[..n]);
        RegionCode(c)
    }
}

impl FromStr for RegionCode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes: [u8; 9] = s
            .as_bytes()
            .try_into()
            .map_err(|_| err!(InvalidArgument, "region {s:?} must be 9 digits"))?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(err!(InvalidArgument, "region {s:?} must be 9 digits"));
        }
        if bytes[..2] == *b"00" && bytes.iter().any(|&b| b != b'0') {
            return Err(err!(
                InvalidArgument,
                "region {s:?} has no top-level region (first two digits 00)"
            ));
        }
        Ok(RegionCode(bytes))
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RegionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A region's names in Kazakh (Latin script), Russian and English: each 1 to 128 characters,
/// not blank, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionNames {
    kk: String,
    ru: String,
    en: String,
}

impl RegionNames {
    pub fn new(kk: String, ru: String, en: String) -> Result<RegionNames, Error> {
        for (field, value) in [("name_kk", &kk), ("name_ru", &ru), ("name_en", &en)] {
            check_text(field, value, 128)?;
            if value.trim().is_empty() {
                bail!(InvalidArgument, "{field}: blank");
            }
        }
        Ok(RegionNames { kk, ru, en })
    }

    pub fn kk(&self) -> &str {
        &self.kk
    }

    pub fn ru(&self) -> &str {
        &self.ru
    }

    pub fn en(&self) -> &str {
        &self.en
    }
}

/// The regions a network knows, as a tree: each code's parent is the nearest of its
/// [ancestors](RegionCode::ancestors) that the list holds, and the republic
/// ([`RegionCode::REPUBLIC`]) is the root. Cameras may carry codes deeper than the tree lists;
/// [`RegionTree::resolve`] places them.
#[derive(Clone, Debug)]
pub struct RegionTree {
    nodes: BTreeMap<RegionCode, Node>,
}

#[derive(Clone, Debug)]
struct Node {
    names: RegionNames,
    parent: Option<RegionCode>,
    /// In code order.
    children: Vec<RegionCode>,
}

impl RegionTree {
    /// Builds the tree. Fails on a code listed twice and when the republic is missing.
    pub fn new(
        entries: impl IntoIterator<Item = (RegionCode, RegionNames)>,
    ) -> Result<RegionTree, Error> {
        let mut nodes = BTreeMap::new();
        for (code, names) in entries {
            let node = Node {
                names,
                parent: None,
                children: Vec::new(),
            };
            if nodes.insert(code, node).is_some() {
                bail!(AlreadyExists, "region {code}: listed twice");
            }
        }
        if !nodes.contains_key(&RegionCode::REPUBLIC) {
            bail!(
                InvalidArgument,
                "region {}: the republic, the root, is missing",
                RegionCode::REPUBLIC
            );
        }
        // Codes in ascending order, so each parent's children come out sorted.
        let codes: Vec<RegionCode> = nodes.keys().copied().collect();
        for code in codes {
            let Some(parent) = code.ancestors().find(|a| nodes.contains_key(a)) else {
                continue; // the republic
            };
            nodes.get_mut(&code).expect("listed").parent = Some(parent);
            nodes.get_mut(&parent).expect("listed").children.push(code);
        }
        Ok(RegionTree { nodes })
    }

    /// Whether the tree lists `code` itself.
    pub fn contains(&self, code: &RegionCode) -> bool {
        self.nodes.contains_key(code)
    }

    pub fn name(&self, code: &RegionCode) -> Option<&RegionNames> {
        self.nodes.get(code).map(|n| &n.names)
    }

    /// The parent of a listed code; `None` for the republic and for codes not listed.
    pub fn parent(&self, code: &RegionCode) -> Option<RegionCode> {
        self.nodes.get(code).and_then(|n| n.parent)
    }

    /// The children of a listed code in code order; empty for a leaf or a code not listed.
    pub fn children(&self, code: &RegionCode) -> &[RegionCode] {
        self.nodes
            .get(code)
            .map_or(&[][..], |n| n.children.as_slice())
    }

    /// The listed codes whose subtrees hold `code`, nearest first, ending with the republic.
    /// `code` itself is not among them; it need not be listed.
    pub fn ancestors(&self, code: &RegionCode) -> impl Iterator<Item = RegionCode> + '_ {
        code.ancestors().filter(|a| self.contains(a))
    }

    /// From the republic down to a listed `code`, both included; `None` if it is not listed.
    pub fn path(&self, code: &RegionCode) -> Option<Vec<RegionCode>> {
        if !self.contains(code) {
            return None;
        }
        let mut path: Vec<RegionCode> = self.ancestors(code).collect();
        path.reverse();
        path.push(*code);
        Some(path)
    }

    /// The listed region `code` belongs to: itself if listed, else its nearest listed ancestor
    /// (at worst the republic).
    pub fn resolve(&self, code: &RegionCode) -> RegionCode {
        if self.contains(code) {
            return *code;
        }
        self.ancestors(code)
            .next()
            .expect("the republic is in every tree")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(r("751110000").as_str(), "751110000");
        for bad in [
            "",
            "75111000",
            "7511100000",
            "75111000a",
            "001110000",
            " 75111000",
        ] {
            assert!(bad.parse::<RegionCode>().is_err(), "{bad:?}");
        }
        assert_eq!(r("751110000").top_level(), r("750000000"));
    }

    #[test]
    fn subtrees() {
        let almaty = r("750000000");
        assert!(r("751110000").is_within(&almaty));
        assert!(almaty.is_within(&almaty));
        assert!(!r("711110000").is_within(&almaty));
        assert!(r("751110000").is_within(&r("751100000")));
        assert!(!r("751210000").is_within(&r("751100000")));
        assert!(
            r("751110000").is_within(&r("000000000")),
            "the republic contains everything"
        );
        assert!(!r("000000000").is_within(&almaty));
    }

    #[test]
    fn ancestors_by_level() {
        let a = |s: &str| r(s).ancestors().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            a("751110100"),
            ["751110000", "751100000", "750000000", "000000000"]
        );
        assert_eq!(a("751110000"), ["751100000", "750000000", "000000000"]);
        // Zero groups in the middle: each ancestor once.
        assert_eq!(a("750010000"), ["750000000", "000000000"]);
        assert_eq!(a("750000000"), ["000000000"]);
        assert!(a("000000000").is_empty());
        for code in ["751110100", "750010000", "631000001"] {
            for anc in r(code).ancestors() {
                assert!(r(code).is_within(&anc), "{code} within {anc}");
                assert!(!anc.is_within(&r(code)), "{anc} not within {code}");
            }
        }
    }

    fn names(en: &str) -> RegionNames {
        RegionNames::new(format!("{en} kk"), format!("{en} ru"), en.to_owned()).unwrap()
    }

    fn tree(codes: &[&str]) -> Result<RegionTree, Error> {
        RegionTree::new(codes.iter().map(|c| (r(c), names(c))))
    }

    #[test]
    fn names_are_checked() {
        let n = |kk: &str, ru: &str, en: &str| RegionNames::new(kk.into(), ru.into(), en.into());
        assert_eq!(n("Almaty", "Алматы", "Almaty").unwrap().ru(), "Алматы");
        for (bad, field) in [
            (n("", "Алматы", "Almaty"), "name_kk"),
            (n("Almaty", "  ", "Almaty"), "name_ru"),
            (n("Almaty", "Алматы", "Al\nmaty"), "name_en"),
            (n("Almaty", "Алматы", &"x".repeat(129)), "name_en"),
        ] {
            let e = bad.unwrap_err().to_string();
            assert!(e.starts_with(field), "{field}: {e}");
        }
    }

    #[test]
    fn tree_structure() {
        let t = tree(&[
            "000000000",
            "750000000",
            "751110000",
            "751210000",
            "710000000",
            "751110100",
        ])
        .unwrap();
        let root = RegionCode::REPUBLIC;
        assert_eq!(t.children(&root), [r("710000000"), r("750000000")]);
        // 751100000 is not listed: the districts hang under the city.
        assert_eq!(
            t.children(&r("750000000")),
            [r("751110000"), r("751210000")]
        );
        assert_eq!(t.parent(&r("751110100")), Some(r("751110000")));
        assert_eq!(t.parent(&r("751110000")), Some(r("750000000")));
        assert_eq!(t.parent(&root), None);
        assert_eq!(t.parent(&r("790000000")), None, "not listed");
        assert!(t.children(&r("790000000")).is_empty());
        assert_eq!(t.name(&r("751110000")).unwrap().en(), "751110000");
        assert!(t.name(&r("751100000")).is_none());
        assert!(t.contains(&r("751210000")) && !t.contains(&r("751100000")));
        assert_eq!(
            t.path(&r("751110100")).unwrap(),
            [root, r("750000000"), r("751110000"), r("751110100")]
        );
        assert_eq!(t.path(&root).unwrap(), [root]);
        assert!(t.path(&r("751310000")).is_none());
        assert_eq!(
            t.ancestors(&r("751110199")).collect::<Vec<_>>(),
            [r("751110000"), r("750000000"), root]
        );
    }

    #[test]
    fn resolve_places_unlisted_codes() {
        let t = tree(&["000000000", "750000000", "751110000"]).unwrap();
        assert_eq!(t.resolve(&r("751110000")), r("751110000"));
        assert_eq!(t.resolve(&r("751110123")), r("751110000"));
        assert_eq!(t.resolve(&r("751210000")), r("750000000"));
        assert_eq!(t.resolve(&r("790000000")), RegionCode::REPUBLIC);
    }

    #[test]
    fn tree_rejects_duplicates_and_a_missing_root() {
        let e = tree(&["000000000", "750000000", "750000000"]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("750000000"), "{e}");
        let e = tree(&["750000000"]).unwrap_err();
        assert!(e.to_string().contains("republic"), "{e}");
    }
}
