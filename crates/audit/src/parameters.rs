//! A request as its event's `requestParameters`: serialized straight into a JSON value with
//! every struct member named in camelCase, as CloudTrail shows them. Map keys are left as they
//! are — maps hold user data (an encryption context, a grant's constraints), not member names.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Value};

/// `requestParameters` of an awsJson request; `None` (JSON null) when it has no members.
pub fn request_parameters<R: Serialize>(request: &R) -> Option<Value> {
    match request.serialize(CamelCase) {
        Ok(Value::Object(map)) if map.is_empty() => None,
        Ok(v) => Some(v),
        Err(_) => None,
    }
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        // Model member names start with an ASCII letter; the rest is copied in one piece.
        if first.is_ascii() {
            out.push(first.to_ascii_lowercase());
        } else {
            out.extend(first.to_lowercase());
        }
        out.push_str(chars.as_str());
    }
    out
}

/// The serializer: primitives as `serde_json` makes them, struct members renamed.
struct CamelCase;

type Error = serde_json::Error;

fn json<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    value.serialize(serde_json::value::Serializer)
}

impl ser::Serializer for CamelCase {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Impossible<Value, Error>;
    type SerializeMap = Object;
    type SerializeStruct = Object;
    type SerializeStructVariant = Impossible<Value, Error>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        json(&v)
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        json(&v)
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        json(v)
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        let mut map = Map::new();
        map.insert(variant.to_string(), value.serialize(self)?);
        Ok(Value::Object(map))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(ser::Error::custom(format!(
            "tuple variant {variant} in request parameters"
        )))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Object, Error> {
        Ok(Object::default())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object, Error> {
        Ok(Object::default())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(ser::Error::custom(format!(
            "struct variant {variant} in request parameters"
        )))
    }
}

struct Seq(Vec<Value>);

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(value.serialize(CamelCase)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

#[derive(Default)]
struct Object {
    map: Map<String, Value>,
    key: Option<String>,
}

impl ser::SerializeMap for Object {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(match json(key)? {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ser::Error::custom("map value without a key"))?;
        self.map.insert(key, value.serialize(CamelCase)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStruct for Object {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.map.insert(camel(key), value.serialize(CamelCase)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Constraints {
        encryption_context_subset: BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        key_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        grant_tokens: Option<Vec<String>>,
        number_of_bytes: u32,
        dry_run: bool,
        encryption_context: BTreeMap<String, String>,
        constraints: Vec<Constraints>,
        #[serde(skip_serializing)]
        plaintext: Vec<u8>,
    }

    #[test]
    fn only_the_first_character_is_lowered() {
        for (name, expected) in [
            ("", ""),
            ("A", "a"),
            ("KeyId", "keyId"),
            ("keyId", "keyId"),
            ("ARN", "aRN"),
            ("Énergie", "énergie"),
            ("İx", "i\u{307}x"),
        ] {
            assert_eq!(camel(name), expected, "{name}");
        }
    }

    #[test]
    fn members_are_camel_cased_and_user_data_is_kept_as_given() {
        let context: BTreeMap<String, String> = [("Department".into(), "Finance".into())]
            .into_iter()
            .collect();
        let request = Request {
            key_id: "alias/x".into(),
            grant_tokens: None,
            number_of_bytes: 32,
            dry_run: false,
            encryption_context: context.clone(),
            constraints: vec![Constraints {
                encryption_context_subset: context,
            }],
            plaintext: b"secret".to_vec(),
        };
        let parameters = request_parameters(&request);
        let text = parameters
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(!text.contains(std::str::from_utf8(&request.plaintext).unwrap()));
        assert_eq!(
            parameters,
            Some(serde_json::json!({
                "keyId": "alias/x",
                "numberOfBytes": 32,
                "dryRun": false,
                "encryptionContext": {"Department": "Finance"},
                "constraints": [{"encryptionContextSubset": {"Department": "Finance"}}],
            }))
        );
        #[derive(Serialize)]
        struct Empty {}
        assert_eq!(request_parameters(&Empty {}), None);
    }
}
