//! YAML text to a [`Value`] with a budget: aliases (`*name`) repeat what they point at, so a
//! few hundred bytes can expand to gigabytes (an "alias bomb"). The budget stops that early,
//! and duplicate keys are refused with their key path.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use std::cell::{Cell, RefCell};
use std::fmt;

/// Most values (scalars, mappings, sequences) a spec may expand to.
pub const MAX_NODES: usize = 100_000;
/// Most bytes of text a spec may expand to.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// What was spent, and where the first error happened.
#[derive(Default)]
pub struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    /// Key path of the innermost node that failed (set once, by the deepest failure).
    pub error_path: RefCell<Option<String>>,
}

impl Budget {
    fn spend<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        self.bytes.set(self.bytes.get() + bytes);
        if self.nodes.get() > MAX_NODES || self.bytes.get() > MAX_BYTES {
            // Reworded by `syntax::parse_syntax`.
            return Err(E::custom("the spec expands to more than the budget"));
        }
        Ok(())
    }

    fn note<T, E>(&self, path: &str, r: Result<T, E>) -> Result<T, E> {
        if r.is_err() && self.error_path.borrow().is_none() {
            *self.error_path.borrow_mut() = Some(path.to_string());
        }
        r
    }
}

/// Builds a [`Value`] at `path`, charging `budget`.
pub struct Seed<'a> {
    /// The budget shared by the whole document.
    pub budget: &'a Budget,
    /// The key path of the value being built (`""` for the document).
    pub path: String,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.spend(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.spend(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.spend(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.spend(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.spend(v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.spend(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "YAML tags (`!name`) are not used in a spec; remove the tag",
        ))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.spend(0)?;
        let mut items = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, items.len());
            let seed = Seed {
                budget: self.budget,
                path: path.clone(),
            };
            match self.budget.note(&path, seq.next_element_seed(seed))? {
                Some(v) => items.push(v),
                None => return Ok(Value::Sequence(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.spend(0)?;
        let mut out = Mapping::new();
        loop {
            let key_seed = Seed {
                budget: self.budget,
                path: self.path.clone(),
            };
            let Some(key) = self.budget.note(&self.path, map.next_key_seed(key_seed))? else {
                return Ok(Value::Mapping(out));
            };
            let name = key_text(&key);
            let path = if self.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.path)
            };
            if out.contains_key(&key) {
                *self.budget.error_path.borrow_mut() = Some(path);
                return Err(de::Error::custom(format!(
                    "duplicate key `{name}`; keep only one of them"
                )));
            }
            let seed = Seed {
                budget: self.budget,
                path: path.clone(),
            };
            let value = self.budget.note(&path, map.next_value_seed(seed))?;
            out.insert(key, value);
        }
    }
}
