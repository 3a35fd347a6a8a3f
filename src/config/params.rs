//! Typed parameter values: declarations (type, default, choices, range), coercion from YAML, and
//! the canonical encoding that goes into target keys.
//!
//! Owns: [`ParamType`], [`ParamValue`], [`ParamDecl`] (a declaration as a rule set holds it),
//! [`ParamSpec`] (the same, written as a `static` by the code that reads the parameter) and
//! [`Range`]. Must never: read files (the loader does).
//! Invariants: a value's canonical bytes depend only on its type and value, never on how it was
//! spelled in YAML (`-8`, `-8.0` and `-8e0` for a float are the same key); a coerced value is
//! of the declared type, one of the declared choices, finite and inside the declared range.

use serde::{Deserialize, Serialize};

/// The type a rule declares for a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// true / false.
    Bool,
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float (integers are accepted and widened).
    Float,
    /// A string (numbers are accepted and written as text).
    String,
    /// A list of scalars (a scalar is accepted as a one-element list; a comma-separated string
    /// is split, as Arrakis's `multiscale_scales: 0,2,4` is).
    List,
}

impl ParamType {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Bool => "bool",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::List => "list",
        }
    }
}

/// A parameter value after coercion to its declared type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ParamValue {
    /// YAML null (only for `nullable` declarations).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list of scalars.
    List(Vec<ParamValue>),
}

impl ParamValue {
    /// Canonical bytes for the key: a type tag followed by a fixed encoding.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            ParamValue::Null => out.push(b'n'),
            ParamValue::Bool(b) => {
                out.push(b'b');
                out.push(*b as u8);
            }
            ParamValue::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            ParamValue::Float(f) => {
                out.push(b'f');
                // -0.0 and 0.0 mean the same parameter value.
                let f = if *f == 0.0 { 0.0 } else { *f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            ParamValue::Str(s) => {
                out.push(b's');
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            ParamValue::List(items) => {
                out.push(b'l');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    it.encode_into(out);
                }
            }
        }
    }

    /// Human-readable form (for `explain`, reports and command-line substitution).
    pub fn display(&self) -> String {
        match self {
            ParamValue::Null => "null".into(),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.1}")
                } else {
                    format!("{f}")
                }
            }
            ParamValue::Str(s) => s.clone(),
            ParamValue::List(items) => items
                .iter()
                .map(|v| v.display())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The value as f64, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as i64, if an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as bool, if a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a string slice, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, ParamValue::Null)
    }
}

/// A `range:` that is not an interval.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    /// Not in interval notation.
    #[error("range '{0}' is not an interval: write e.g. \"[0, 1]\", \"(0, 1]\" or \"[0, inf)\"")]
    Syntax(String),
    /// Lower end above the upper.
    #[error("range '{0}' is empty: its lower end is above its upper")]
    Empty(String),
}

/// The values a numeric parameter may take: an interval, each end closed, open or absent.
/// Written `[0, 1]`, `(0, 1]`, `[0, inf)` in rule files and messages.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Range {
    /// Lower end and whether it is included.
    pub min: Option<(f64, bool)>,
    /// Upper end and whether it is included.
    pub max: Option<(f64, bool)>,
}

impl Range {
    /// Any finite value.
    pub const ANY: Range = Range {
        min: None,
        max: None,
    };
    /// `[lo, inf)`.
    pub const fn at_least(lo: f64) -> Range {
        Range {
            min: Some((lo, true)),
            max: None,
        }
    }
    /// `(lo, inf)`.
    pub const fn above(lo: f64) -> Range {
        Range {
            min: Some((lo, false)),
            max: None,
        }
    }
    /// `[lo, hi]`.
    pub const fn closed(lo: f64, hi: f64) -> Range {
        Range {
            min: Some((lo, true)),
            max: Some((hi, true)),
        }
    }
    /// `(lo, hi]`.
    pub const fn open_closed(lo: f64, hi: f64) -> Range {
        Range {
            min: Some((lo, false)),
            max: Some((hi, true)),
        }
    }
    /// `[lo, hi)`.
    pub const fn closed_open(lo: f64, hi: f64) -> Range {
        Range {
            min: Some((lo, true)),
            max: Some((hi, false)),
        }
    }

    /// Whether `v` lies inside.
    pub fn contains(&self, v: f64) -> bool {
        let lo = self
            .min
            .is_none_or(|(m, inc)| if inc { v >= m } else { v > m });
        let hi = self
            .max
            .is_none_or(|(m, inc)| if inc { v <= m } else { v < m });
        lo && hi
    }

    /// Whether any end is set.
    pub fn is_bounded(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    /// Read the interval notation `[a, b]`, `(a, b]`, `[a, inf)`, `(-inf, b]`.
    pub fn parse(s: &str) -> Result<Range, RangeError> {
        let bad = || RangeError::Syntax(s.to_string());
        let t = s.trim();
        let open = t.chars().next().ok_or_else(bad)?;
        let close = t.chars().last().ok_or_else(bad)?;
        if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') || t.len() < 2 {
            return Err(bad());
        }
        let (a, b) = t[1..t.len() - 1].split_once(',').ok_or_else(bad)?;
        let end = |x: &str, inc: bool, inf: f64| -> Result<Option<(f64, bool)>, RangeError> {
            let v: f64 = x.trim().parse().map_err(|_| bad())?;
            if v == inf {
                // An infinite end is always open: the value itself must be finite.
                Ok(None)
            } else if v.is_finite() {
                Ok(Some((v, inc)))
            } else {
                Err(bad())
            }
        };
        let r = Range {
            min: end(a, open == '[', f64::NEG_INFINITY)?,
            max: end(b, close == ']', f64::INFINITY)?,
        };
        if let (Some((lo, _)), Some((hi, _))) = (r.min, r.max) {
            if lo > hi {
                return Err(RangeError::Empty(s.to_string()));
            }
        }
        Ok(r)
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.min {
            Some((v, inc)) => write!(f, "{}{v}", if inc { '[' } else { '(' })?,
            None => write!(f, "(-inf")?,
        }
        match self.max {
            Some((v, inc)) => write!(f, ", {v}{}", if inc { ']' } else { ')' }),
            None => write!(f, ", inf)"),
        }
    }
}

impl Serialize for Range {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Range, D::Error> {
        let s = String::deserialize(d)?;
        Range::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A default value a [`ParamSpec`] can hold in a `static`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultValue {
    /// null (nullable parameters).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(&'static str),
}

impl DefaultValue {
    /// A float default (for command-line options that share it); NaN for another kind.
    pub const fn float(self) -> f64 {
        match self {
            DefaultValue::Float(f) => f,
            DefaultValue::Int(i) => i as f64,
            _ => f64::NAN,
        }
    }
    /// An integer default; 0 for another kind.
    pub const fn int(self) -> i64 {
        match self {
            DefaultValue::Int(i) => i,
            _ => 0,
        }
    }
    /// A string default; "" for another kind.
    pub const fn str(self) -> &'static str {
        match self {
            DefaultValue::Str(s) => s,
            _ => "",
        }
    }

    fn yaml(self) -> serde_yaml::Value {
        match self {
            DefaultValue::Null => serde_yaml::Value::Null,
            DefaultValue::Bool(b) => b.into(),
            DefaultValue::Int(i) => i.into(),
            DefaultValue::Float(f) => f.into(),
            DefaultValue::Str(s) => s.into(),
        }
    }
}

/// One parameter as the code that reads it declares it: the single place its type, default,
/// choices, range and help are written. A rule lists it by name; [`ParamSpec::decl`] is what the
/// rule set then holds.
#[derive(Debug)]
pub struct ParamSpec {
    /// The name (Arrakis's key name where Arrakis has the option).
    pub name: &'static str,
    /// The type.
    pub ty: ParamType,
    /// The default.
    pub default: DefaultValue,
    /// Whether null is a meaningful value.
    pub nullable: bool,
    /// Allowed values of a string parameter (empty: any).
    pub choices: &'static [&'static str],
    /// Allowed values of a numeric parameter.
    pub range: Range,
    /// One line for `arrakis params`, with the unit.
    pub help: &'static str,
}

impl ParamSpec {
    /// A parameter with no choices, any finite value, not nullable.
    pub const fn new(
        name: &'static str,
        ty: ParamType,
        default: DefaultValue,
        help: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default,
            nullable: false,
            choices: &[],
            range: Range::ANY,
            help,
        }
    }
    /// The same, null allowed (and meaningful).
    pub const fn nullable(self) -> ParamSpec {
        ParamSpec {
            nullable: true,
            ..self
        }
    }
    /// The same, restricted to `range`.
    pub const fn range(self, range: Range) -> ParamSpec {
        ParamSpec { range, ..self }
    }
    /// The same, restricted to `choices`.
    pub const fn choices(self, choices: &'static [&'static str]) -> ParamSpec {
        ParamSpec { choices, ..self }
    }

    /// The declaration a rule set holds.
    pub fn decl(&self) -> ParamDecl {
        ParamDecl {
            ty: self.ty,
            default: self.default.yaml(),
            choices: (!self.choices.is_empty())
                .then(|| self.choices.iter().map(|c| c.to_string()).collect()),
            nullable: self.nullable,
            range: self.range.is_bounded().then_some(self.range),
            help: (!self.help.is_empty()).then(|| self.help.to_string()),
        }
    }
}

/// A rule's declaration of one parameter it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// The declared type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// The default value (coerced to `ty` when the rule is loaded).
    #[serde(default)]
    pub default: serde_yaml::Value,
    /// Allowed values for a string parameter.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// Whether null is a meaningful value (e.g. `window: null` = no window). When false, a null in
    /// a config file means "use the default" (as Arrakis's configargparse treats empty keys).
    #[serde(default)]
    pub nullable: bool,
    /// Allowed values of a numeric parameter (`range: "(0, 1]"`).
    #[serde(default)]
    pub range: Option<Range>,
    /// One line of help for `arrakis params`.
    #[serde(default)]
    pub help: Option<String>,
}

/// Why a value is not one a declaration accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Not of the declared type.
    #[error("expected {expected}, found {found} ({value})")]
    Type {
        /// The declared type (and "or null").
        expected: String,
        /// What kind of YAML value was given.
        found: &'static str,
        /// The value as written.
        value: String,
    },
    /// A string that is not one of the choices.
    #[error("'{value}' is not one of {choices}{hint}")]
    Choice {
        /// The value.
        value: String,
        /// The choices, comma-separated.
        choices: String,
        /// ", did you mean ...?" or empty.
        hint: String,
    },
    /// A number that is NaN or infinite.
    #[error("{0} is not a finite number")]
    NotFinite(f64),
    /// A number outside the declared range.
    #[error("{value} is outside the allowed range {range}")]
    Range {
        /// The value as displayed.
        value: String,
        /// The range.
        range: Range,
    },
    /// A non-nullable parameter declared without a default.
    #[error("a non-nullable parameter needs a default")]
    NoDefault,
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

fn scalar(v: &serde_yaml::Value) -> Option<ParamValue> {
    match v {
        serde_yaml::Value::Bool(b) => Some(ParamValue::Bool(*b)),
        serde_yaml::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => ParamValue::Int(i),
            None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        serde_yaml::Value::String(s) => Some(ParamValue::Str(s.clone())),
        _ => None,
    }
}

impl ParamDecl {
    /// Coerce a YAML value to this declaration's type. `Ok(None)` means "null: use the default".
    /// The error says what was expected and what was found.
    pub fn coerce(&self, v: &serde_yaml::Value) -> Result<Option<ParamValue>, ValueError> {
        if v.is_null() {
            return Ok(if self.nullable {
                Some(ParamValue::Null)
            } else {
                None
            });
        }
        let wrong = || ValueError::Type {
            expected: format!(
                "{}{}",
                self.ty.name(),
                if self.nullable { " or null" } else { "" }
            ),
            found: yaml_kind(v),
            value: serde_yaml::to_string(v)
                .unwrap_or_default()
                .trim()
                .replace('\n', " "),
        };
        let value = match self.ty {
            ParamType::Bool => match v {
                serde_yaml::Value::Bool(b) => ParamValue::Bool(*b),
                _ => return Err(wrong()),
            },
            ParamType::Int => match v {
                serde_yaml::Value::Number(n) if n.as_i64().is_some() => {
                    ParamValue::Int(n.as_i64().unwrap_or_default())
                }
                // YAML 1.2 does not read `500_000` as a number; Arrakis's config uses it.
                serde_yaml::Value::String(s) => match s.replace('_', "").parse::<i64>() {
                    Ok(i) => ParamValue::Int(i),
                    Err(_) => return Err(wrong()),
                },
                _ => return Err(wrong()),
            },
            ParamType::Float => match v {
                serde_yaml::Value::Number(n) => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                serde_yaml::Value::String(s) => match s.replace('_', "").parse::<f64>() {
                    Ok(f) => ParamValue::Float(f),
                    Err(_) => return Err(wrong()),
                },
                _ => return Err(wrong()),
            },
            ParamType::String => match v {
                serde_yaml::Value::String(s) => ParamValue::Str(s.clone()),
                serde_yaml::Value::Number(n) => ParamValue::Str(n.to_string()),
                serde_yaml::Value::Bool(b) => ParamValue::Str(b.to_string()),
                _ => return Err(wrong()),
            },
            ParamType::List => match v {
                serde_yaml::Value::Sequence(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for it in items {
                        out.push(scalar(it).ok_or_else(wrong)?);
                    }
                    ParamValue::List(out)
                }
                serde_yaml::Value::String(s) => ParamValue::List(
                    s.split(',')
                        .map(|p| {
                            let p = p.trim();
                            p.parse::<i64>()
                                .map(ParamValue::Int)
                                .or_else(|_| p.parse::<f64>().map(ParamValue::Float))
                                .unwrap_or_else(|_| ParamValue::Str(p.to_string()))
                        })
                        .collect(),
                ),
                other => ParamValue::List(vec![scalar(other).ok_or_else(wrong)?]),
            },
        };
        if let Some(x) = value.as_f64() {
            if !x.is_finite() {
                return Err(ValueError::NotFinite(x));
            }
            if let Some(r) = &self.range {
                if !r.contains(x) {
                    return Err(ValueError::Range {
                        value: value.display(),
                        range: *r,
                    });
                }
            }
        }
        if let (Some(choices), ParamValue::Str(s)) = (&self.choices, &value) {
            if !choices.iter().any(|c| c == s) {
                return Err(ValueError::Choice {
                    value: s.clone(),
                    choices: choices.join(", "),
                    hint: crate::diag::did_you_mean(s, choices.iter().map(|c| c.as_str())),
                });
            }
        }
        Ok(Some(value))
    }

    /// The declared default, coerced. A missing or null default of a non-nullable parameter is
    /// an error (the rule file must give one).
    pub fn default_value(&self) -> Result<ParamValue, ValueError> {
        match self.coerce(&self.default)? {
            Some(v) => Ok(v),
            None => Err(ValueError::NoDefault),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(ty: ParamType) -> ParamDecl {
        ParamDecl {
            ty,
            default: serde_yaml::Value::Null,
            choices: None,
            nullable: false,
            range: None,
            help: None,
        }
    }

    fn y(s: &str) -> serde_yaml::Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn floats_are_canonical_whatever_the_spelling() {
        let d = decl(ParamType::Float);
        let a = d.coerce(&y("-8")).unwrap().unwrap();
        let b = d.coerce(&y("-8.0")).unwrap().unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(
            a.canonical(),
            d.coerce(&y("-3")).unwrap().unwrap().canonical()
        );
    }

    #[test]
    fn wrong_types_and_choices_are_explained() {
        let err = decl(ParamType::Int)
            .coerce(&y("abc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected int"), "{err}");
        let mut d = decl(ParamType::String);
        d.choices = Some(vec!["variance".into(), "uniform".into()]);
        let err = d.coerce(&y("varianse")).unwrap_err().to_string();
        assert!(err.contains("did you mean 'variance'"), "{err}");
        assert_eq!(
            decl(ParamType::Int).coerce(&y("500_000")).unwrap(),
            Some(ParamValue::Int(500000))
        );
    }

    #[test]
    fn ranges_are_read_written_and_enforced() {
        for (text, inside, outside) in [
            ("(0, 1]", 1.0, 0.0),
            ("[0, inf)", 0.0, -1e-9),
            ("(-inf, 5)", -1e300, 5.0),
            ("[-1, -1]", -1.0, -0.5),
        ] {
            let r = Range::parse(text).unwrap();
            assert_eq!(r.to_string(), text);
            assert!(r.contains(inside) && !r.contains(outside), "{text}");
        }
        for bad in ["0, 1", "[1, 0]", "[a, 1]", "[0 1]", "[nan, 1]", ""] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
        let mut d = decl(ParamType::Float);
        d.range = Some(Range::open_closed(0.0, 1.0));
        let e = d.coerce(&y("5")).unwrap_err().to_string();
        assert!(e.contains("outside the allowed range (0, 1]"), "{e}");
        assert!(d.coerce(&y("0.5")).is_ok());
        let e = d.coerce(&y(".nan")).unwrap_err().to_string();
        assert!(e.contains("not a finite number"), "{e}");
        let e = decl(ParamType::Float)
            .coerce(&y("nan"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a finite number"), "{e}");
        let mut i = decl(ParamType::Int);
        i.range = Some(Range::at_least(0.0));
        assert!(i
            .coerce(&y("-1"))
            .unwrap_err()
            .to_string()
            .contains("[0, inf)"));
    }

    #[test]
    fn null_means_default_unless_nullable() {
        assert_eq!(decl(ParamType::Int).coerce(&y("null")).unwrap(), None);
        let mut d = decl(ParamType::Float);
        d.nullable = true;
        assert_eq!(d.coerce(&y("null")).unwrap(), Some(ParamValue::Null));
    }
}
