//! Typed parameter values: declarations (type, default, choices), coercion from YAML, and the
//! canonical encoding that goes into target keys.
//!
//! Owns: [`ParamType`], [`ParamValue`], [`ParamDecl`]. Must never: read files (the loader does).
//! Invariant: a value's canonical bytes depend only on its type and value, never on how it was
//! spelled in YAML (`-8`, `-8.0` and `-8e0` for a float are the same key).

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
    /// One line of help for `arrakis params`.
    #[serde(default)]
    pub help: Option<String>,
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
    pub fn coerce(&self, v: &serde_yaml::Value) -> Result<Option<ParamValue>, String> {
        if v.is_null() {
            return Ok(if self.nullable {
                Some(ParamValue::Null)
            } else {
                None
            });
        }
        let wrong = || {
            format!(
                "expected {}{}, found {} ({})",
                self.ty.name(),
                if self.nullable { " or null" } else { "" },
                yaml_kind(v),
                serde_yaml::to_string(v)
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', " ")
            )
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
        if let (Some(choices), ParamValue::Str(s)) = (&self.choices, &value) {
            if !choices.iter().any(|c| c == s) {
                return Err(format!(
                    "'{s}' is not one of {}{}",
                    choices.join(", "),
                    crate::diag::did_you_mean(s, choices.iter().map(|c| c.as_str()))
                ));
            }
        }
        Ok(Some(value))
    }

    /// The declared default, coerced. A missing or null default of a non-nullable parameter is
    /// an error (the rule file must give one).
    pub fn default_value(&self) -> Result<ParamValue, String> {
        match self.coerce(&self.default)? {
            Some(v) => Ok(v),
            None => Err("a non-nullable parameter needs a default".into()),
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
        let err = decl(ParamType::Int).coerce(&y("abc")).unwrap_err();
        assert!(err.contains("expected int"), "{err}");
        let mut d = decl(ParamType::String);
        d.choices = Some(vec!["variance".into(), "uniform".into()]);
        let err = d.coerce(&y("varianse")).unwrap_err();
        assert!(err.contains("did you mean 'variance'"), "{err}");
        assert_eq!(
            decl(ParamType::Int).coerce(&y("500_000")).unwrap(),
            Some(ParamValue::Int(500000))
        );
    }

    #[test]
    fn null_means_default_unless_nullable() {
        assert_eq!(decl(ParamType::Int).coerce(&y("null")).unwrap(), None);
        let mut d = decl(ParamType::Float);
        d.nullable = true;
        assert_eq!(d.coerce(&y("null")).unwrap(), Some(ParamValue::Null));
    }
}
